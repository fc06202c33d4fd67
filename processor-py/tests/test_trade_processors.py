"""TradeProcessor and CandlesProcessor (data_types/trades.py, data_types/candles.py) on a hand-built
trade frame."""

from helpers import T0, S, trade_frame

from market_data_tick_handler.streaming_service.data_types import CandlesProcessor, TradeProcessor
from market_data_tick_handler.wire import decode_frame

TF = ("15s", "1m")


def test_trades_and_candles_processors():
    frame = decode_frame(
        trade_frame(
            [
                (0, T0 + S, 100.0, 1.0, "buy"),
                (0, T0 + 2 * S, -1.0, 1.0, "sell"),
                (0, T0 + 16 * S, 101.0, 2.0, "sell"),
            ]
        )
    )
    trades = TradeProcessor().process(frame)
    assert [(r.price, r.side, r.id) for r in trades.records] == [(100.0, "buy", "0"), (101.0, "sell", "2")]
    assert trades.bad_rows == 1
    candles = CandlesProcessor(timeframes=TF).process(frame).records
    # the trade at 16 s closes the 15 s candle [0, 15) holding the one valid trade before it
    assert [(c.timeframe, c.timestamp_in - T0, c.close, c.volume) for c in candles] == [
        ("15s", 0, 100.0, 1.0)
    ]
