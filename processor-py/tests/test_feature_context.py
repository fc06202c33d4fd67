"""Live features with book, derivative-ticker and liquidation context (hft_features) equal
HFTFeatureCalculator.compute_batch on the same columns; the context values are worked out by hand."""

import asyncio
import math

import pytest
from helpers import T0, S, book_frame, candle_columns, liquidation_frame, ticker_frame, trade_frame

from market_data_tick_handler.streaming_service import HFTFeatureCalculator
from market_data_tick_handler.streaming_service.hft_features import FEATURE_NAMES
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler

TF = ("15s", "1m")


def _same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and (a == b or math.isclose(a, b)))


def test_live_features_with_book_derivative_and_liquidation_context_equal_compute_batch():
    ex = "binance-futures"
    symbols = ((ex, "BTCUSDT"),)
    h = TickHandler(
        CandleSettings(
            timeframes=TF,
            grace_ms=0,
            hft_timeframes=("15s",),
            feature_groups=("book", "derivative", "liquidations"),
        )
    )
    frames = [
        trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy")], seq=0, symbols=symbols),
        book_frame(
            [(0, T0 + 2 * S, [(100.0, 1.0), (99.0, 2.0)], [(101.0, 3.0), (102.0, 4.0)])],
            seq=1, symbols=symbols, depth=2,
        ),
        ticker_frame(
            [{"sym": 0, "ts": T0 + 3 * S, "funding_rate": 0.0001, "open_interest": 1000.0,
              "mark_price": 100.5, "index_price": 100.4}],
            seq=2,
        ),
        liquidation_frame(
            [(0, T0 + 4 * S, 100.0, 0.5, 1, "a"), (0, T0 + 5 * S, 100.0, 0.25, 2, "b")],
            seq=3,
            symbols=symbols,
        ),
        trade_frame([(0, T0 + 6 * S, 101.0, 2.0, "sell")], seq=4, symbols=symbols),
        book_frame([(0, T0 + 14_900_000, [(100.5, 2.0)], [(100.7, 1.0)])], seq=5, symbols=symbols, depth=2),
        # after the end of [0, 15), before the trade that closes it: not that candle's book
        book_frame(
            [(0, T0 + 15_100_000, [(101.0, 1.0), (100.0, 1.0)], [(102.0, 2.0), (103.0, 2.0)])],
            seq=6, symbols=symbols, depth=2,
        ),
        trade_frame([(0, T0 + 16 * S, 102.0, 1.0, "buy")], seq=7, symbols=symbols),
        liquidation_frame([(0, T0 + 20 * S, 101.0, 1.0, 2, "c")], seq=8, symbols=symbols),
        trade_frame([(0, T0 + 31 * S, 103.0, 1.0, "buy")], seq=9, symbols=symbols),
    ]  # fmt: skip
    candles = []
    for data in frames:
        candles += [c for c in h.handle_bytes(data).candles if c.timeframe == "15s"]
    assert [c.timestamp_in - T0 for c in candles] == [0, 15 * S]
    live = [c.hft_features for c in candles]
    # candle [0, 15): book at 14.9 s (bid 100.5 x 2, ask 100.7 x 1), ticker at 3 s, liquidations 0.5 / 0.25
    first = live[0]
    assert first["mid_price"] == pytest.approx(100.6)
    assert first["spread_bps"] == pytest.approx(0.2 / 100.6 * 1e4)  # 19.88 bps
    assert first["microprice"] == pytest.approx((100.5 * 1.0 + 100.7 * 2.0) / 3.0)  # 100.6333
    assert first["depth_imbalance_5"] == pytest.approx((2.0 - 1.0) / 3.0)
    assert (first["funding_rate"], first["open_interest"]) == (0.0001, 1000.0)
    assert first["basis_bps"] == pytest.approx(0.1 / 100.4 * 1e4)  # 9.96 bps
    assert (first["liquidation_buy_volume"], first["liquidation_sell_volume"]) == (0.5, 0.25)
    # candle [15, 30): the book at 15.1 s (depth 2 vs 4), no new ticker (open interest unchanged),
    # the sell liquidation at 20 s
    second = live[1]
    assert second["depth_imbalance_5"] == pytest.approx((2.0 - 4.0) / 6.0)
    assert second["spread_bps"] == pytest.approx(1.0 / 101.5 * 1e4)
    assert second["open_interest_change"] == 0.0
    assert (second["liquidation_buy_volume"], second["liquidation_sell_volume"]) == (0.0, 1.0)
    context = {
        "bid_price": [100.5, 101.0], "ask_price": [100.7, 102.0], "bid_size": [2.0, 1.0],
        "ask_size": [1.0, 2.0],
        "bid_depth_5": [2.0, 2.0], "ask_depth_5": [1.0, 4.0], "funding_rate": [0.0001, 0.0001],
        "open_interest": [1000.0, 1000.0], "mark_price": [100.5, 100.5], "index_price": [100.4, 100.4],
        "liquidation_buy_volume": [0.5, 0.0], "liquidation_sell_volume": [0.25, 1.0],
    }  # fmt: skip
    frame = candle_columns(candles) | context
    batch = asyncio.run(HFTFeatureCalculator("BTC-USDT-PERP").compute_batch(frame, timeframe="15s"))
    assert set(live[0]) == set(FEATURE_NAMES)
    for got, expected in zip(live, batch, strict=True):
        for name in FEATURE_NAMES:
            assert _same(got[name], getattr(expected, name)), (name, got[name], getattr(expected, name))
