"""Funding rates extracted from derivative tickers (data_types/funding_rates.py): one record per change;
see docs/DATA_TYPES.md."""

from helpers import T0, S, ticker_frame

from market_data_tick_handler.streaming_service.data_types import FundingRate, FundingRateProcessor
from market_data_tick_handler.wire import decode_frame


def test_funding_rates_one_record_per_change_first_included():
    f1, f2 = T0 + 3600 * S, T0 + 9 * 3600 * S
    symbols = (("binance-futures", "BTCUSDT"), ("binance-futures", "ETHUSDT"))
    p = FundingRateProcessor()
    first = p.process(
        decode_frame(
            ticker_frame(
                [
                    {"sym": 0, "ts": T0 + 1, "funding_rate": 0.0001, "funding_timestamp": f1},  # first BTC
                    {"sym": 0, "ts": T0 + 2, "funding_rate": 0.0001, "funding_timestamp": f1},  # same
                    {"sym": 1, "ts": T0 + 3, "funding_rate": 0.0002, "funding_timestamp": f1},  # first ETH
                    {"sym": 0, "ts": T0 + 4, "funding_rate": 0.00015, "funding_timestamp": f1},  # rate
                    {"sym": 0, "ts": T0 + 5, "mark_price": 37_000.0},  # no funding rate: nothing
                ],
                symbols=symbols,
            )
        )
    )
    second = p.process(
        decode_frame(
            ticker_frame(
                [
                    {"sym": 0, "ts": T0 + 6, "funding_rate": 0.00015, "funding_timestamp": f2},  # next time
                    {"sym": 1, "ts": T0 + 7, "funding_rate": 0.0002, "funding_timestamp": f1},  # same
                    {"sym": 0, "ts": T0 + 8, "funding_rate": 0.00015, "funding_timestamp": f2},  # same
                ],
                seq=1,
                symbols=symbols,
            )
        )
    )
    got = [(r.symbol, r.timestamp - T0, r.funding_rate, r.funding_timestamp) for r in first.records]
    assert got == [
        ("BTC-USDT-PERP", 1, 0.0001, f1),
        ("ETH-USDT-PERP", 3, 0.0002, f1),
        ("BTC-USDT-PERP", 4, 0.00015, f1),
    ]
    assert [(r.symbol, r.timestamp - T0, r.funding_timestamp) for r in second.records] == [
        ("BTC-USDT-PERP", 6, f2)
    ]
    assert isinstance(second.records[0], FundingRate)
