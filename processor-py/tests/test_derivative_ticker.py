"""Derivative tickers (data_types/derivative_ticker.py): fields, missing values and bad rows, from
hand-built wire frames; see docs/DATA_TYPES.md."""

from helpers import T0, S, ticker_frame

from market_data_tick_handler.streaming_service.data_types import DerivativeTickerProcessor
from market_data_tick_handler.streaming_service.messages import record_message
from market_data_tick_handler.wire import decode_frame


def test_derivative_ticker_fields_and_missing_values():
    f1 = T0 + 8 * 3600 * S
    frame = decode_frame(
        ticker_frame(
            [
                {"sym": 0, "ts": T0 + S, "last_price": 37_000.5, "open_interest": 12_345.0,
                 "funding_rate": 0.0001, "funding_timestamp": f1, "predicted_funding_rate": 0.00012,
                 "index_price": 36_990.0, "mark_price": 36_995.25},
                {"sym": 0, "ts": T0 + 2 * S, "mark_price": 36_996.0},  # a partial update
                {"sym": 0, "ts": T0 + 3 * S, "mark_price": -1.0},  # bad
            ]
        )
    )  # fmt: skip
    done = DerivativeTickerProcessor().process(frame)
    full, partial = done.records
    assert (full.symbol, full.exchange_symbol, full.exchange) == (
        "BTC-USDT-PERP",
        "BTCUSDT",
        "binance-futures",
    )
    assert (full.last_price, full.open_interest, full.funding_rate) == (37_000.5, 12_345.0, 0.0001)
    assert (full.funding_timestamp, full.predicted_funding_rate) == (f1, 0.00012)
    assert (full.index_price, full.mark_price, full.local_timestamp) == (36_990.0, 36_995.25, T0 + S + 9)
    assert (partial.mark_price, partial.funding_rate, partial.funding_timestamp) == (36_996.0, None, None)
    assert done.bad_rows == 1 and "row 2 (binance-futures:BTCUSDT): mark_price=-1.0" in done.error
    message = record_message(full)
    assert message["funding_timestamp"] == "2023-11-15T06:14:00.000000Z"  # T0 + 8 h
    assert record_message(partial)["funding_rate"] is None
