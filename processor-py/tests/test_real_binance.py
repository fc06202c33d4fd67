"""Candles from real Binance frames: checked against the raw-frame reference, and live == batch."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from helpers import trade_frame

from market_data_tick_handler.streaming_service import candles_from_trades
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler
from support.binance_reference import BINANCE_WS, assert_candles_match, expected_candles, read_trades

SPOT = [BINANCE_WS / "spot_btcusdt_20240808.gz", BINANCE_WS / "spot_btcusdt_20240809.gz"]


@pytest.fixture(scope="module")
def spot_trades():
    return read_trades(*SPOT)


def _frame(trades):
    return pd.DataFrame(
        {
            "timestamp": [t.ts_us for t in trades],
            "price": [t.price for t in trades],
            "amount": [t.qty for t in trades],
            "side": ["sell" if t.taker_sells else "buy" for t in trades],
        }
    )


def test_batch_candles_equal_the_raw_frame_reference(spot_trades):
    assert len(spot_trades) == 9_757 + 10_147  # shared/data/README.md
    candles = candles_from_trades(_frame(spot_trades), exchange="binance", exchange_symbol="BTCUSDT")
    for tf in ("15s", "1m", "5m", "15m", "4h", "24h"):
        got = [asdict(c) for c in candles if c.timeframe == tf]
        assert_candles_match(got, expected_candles(spot_trades, tf), f"spot {tf}")
    # the data spans 23:54:15 -> 00:05:05: midnight closes the 24h candle of 2024-08-08 (partial)
    days = [c for c in candles if c.timeframe == "24h"]
    assert [pd.Timestamp(c.timestamp_in, unit="us").date().isoformat() for c in days] == [
        "2024-08-08",
        "2024-08-09",
    ]
    assert all(c.is_partial for c in days)
    assert all(c.symbol == "BTC-USDT" for c in candles)


@pytest.mark.parametrize("frame_size", [1, 37, 1000])
def test_live_frames_give_the_same_candles_as_the_batch(spot_trades, frame_size):
    trades = spot_trades[:6000] if frame_size == 1 else spot_trades
    batch = candles_from_trades(_frame(trades), exchange="binance", exchange_symbol="BTCUSDT")
    handler = TickHandler(CandleSettings(grace_ms=0))
    live = []
    for seq, i in enumerate(range(0, len(trades), frame_size)):
        chunk = trades[i : i + frame_size]
        rows = [(0, t.ts_us, t.price, t.qty, "sell" if t.taker_sells else "buy") for t in chunk]
        live += handler.handle_bytes(trade_frame(rows, seq=seq)).candles
    live += [c for batch in handler.finish() for c in batch]
    assert live == batch


def test_batch_accepts_datetimes_and_arrays(spot_trades):
    sample = spot_trades[:500]
    frame = _frame(sample)
    as_datetimes = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], unit="us", utc=True))
    as_arrays = {k: np.asarray(v) for k, v in frame.items()}
    expected = candles_from_trades(frame)
    assert candles_from_trades(as_datetimes) == expected
    assert candles_from_trades(as_arrays) == expected
