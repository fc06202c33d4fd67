"""HFT features: equal to TA-Lib on real and synthetic candles, the per-candle features worked out by
hand, null before warm-up, and batch == incremental == live."""

import asyncio
import math

import numpy as np
import orjson
import pytest
import talib
from helpers import candle_columns, trade_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from market_data_tick_handler.streaming_service import HFTFeatureCalculator, candles_from_trades
from market_data_tick_handler.streaming_service.candle_processor import Stamps
from market_data_tick_handler.streaming_service.hft_features import FEATURE_NAMES, catalogue, read_candles
from market_data_tick_handler.streaming_service.messages import candle_messages
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler
from support.binance_reference import BINANCE_WS, expected_candles, read_trades
from support.talib_reference import talib_reference

SPOT = [BINANCE_WS / "spot_btcusdt_20240808.gz", BINANCE_WS / "spot_btcusdt_20240809.gz"]
USDM = [BINANCE_WS / "usdm_btcusdt_20240808.gz"]


def trade_columns(trades):
    return {
        "timestamp": [t.ts_us for t in trades],
        "price": [t.price for t in trades],
        "amount": [t.qty for t in trades],
        "side": ["sell" if t.taker_sells else "buy" for t in trades],
    }


def frame_rows(trades):
    return [(0, t.ts_us, t.price, t.qty, "sell" if t.taker_sells else "buy") for t in trades]


def batch(calc, candles, timeframe="1m"):
    return asyncio.run(calc.compute_batch(candles, timeframe=timeframe))


def column(records, name):
    return np.array([np.nan if (v := getattr(r, name)) is None else v for r in records])


def assert_equal_to_talib(records, close, volume, label):
    for name, expected in talib_reference(close, volume).items():
        got = column(records, name)
        assert np.array_equal(np.isnan(got), np.isnan(expected)), f"{label} {name}: warm-up differs"
        if name.startswith("rsi"):
            # TA-Lib returns 0 when the window never moved; the catalogue says 50 (flat is not oversold)
            flat = (expected == 0) & (got == 50)
            expected = np.where(flat, 50.0, expected)
        scale = np.nanmax(np.abs(expected)) if name.startswith("price_volatility") else 1.0
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12 * scale, err_msg=f"{label} {name}")


@pytest.fixture(scope="module")
def spot_trades():
    return read_trades(*SPOT)


@pytest.mark.parametrize("timeframe", ["1s", "5s", "15s"])
def test_window_features_equal_talib_on_real_binance_candles(spot_trades, timeframe):
    candles = expected_candles(spot_trades, timeframe)  # built from the raw frames, not by our engine
    assert len(candles) > 40
    frame = {k: [c[k] for c in candles] for k in ("timestamp_in", "close", "high", "low", "volume")}
    records = batch(HFTFeatureCalculator("BTC-USDT"), frame, timeframe)
    close, volume = np.array(frame["close"]), np.array(frame["volume"])
    assert_equal_to_talib(records, close, volume, f"spot {timeframe}")


def test_window_features_equal_talib_on_perpetual_candles():
    candles = expected_candles(read_trades(*USDM), "1s")
    frame = {k: [c[k] for c in candles] for k in ("timestamp_in", "close", "volume")}
    records = batch(HFTFeatureCalculator("BTC-USDT"), frame, "1s")
    assert_equal_to_talib(records, np.array(frame["close"]), np.array(frame["volume"]), "usdm 1s")


def test_window_features_equal_talib_on_a_long_synthetic_series():
    rng = np.random.default_rng(20240809)
    n = 20_000
    steps = rng.standard_t(3, n) * 0.002
    steps[rng.random(n) < 0.15] = 0.0  # flat candles, as in quiet markets
    close = 30_000 * np.exp(np.cumsum(steps))
    volume = rng.exponential(2.0, n) * (steps != 0)
    records = batch(HFTFeatureCalculator("BTC-USDT"), {"close": close, "volume": volume}, "15s")
    assert len(records) == n
    assert_equal_to_talib(records, close, volume, "synthetic")


def test_per_candle_features_worked_out_by_hand():
    calc = HFTFeatureCalculator("BTC-USDT")
    candles = {
        "timestamp_in": [0, 15_000_000],
        "close": [100.0, 101.0],
        "high": [100.5, 102.0],
        "low": [99.0, 100.0],
        "volume": [3.0, 0.0],
        "buy_volume": [2.0, 0.0],
        "sell_volume": [1.0, 0.0],
        "vwap": [99.5, np.nan],  # the second candle is empty
        "trade_count": [6, 0],
        "bid_price": [99.9, 100.9],
        "ask_price": [100.1, 101.1],
        "bid_size": [1.0, 3.0],
        "ask_size": [3.0, 1.0],
        "bid_depth_5": [10.0, 4.0],
        "ask_depth_5": [30.0, 4.0],
        "funding_rate": [0.0001, 0.00012],
        "open_interest": [5000.0, 5100.0],
        "mark_price": [100.2, 101.0],
        "index_price": [100.0, 101.0],
        "liquidation_buy_volume": [0.0, 1.5],
        "liquidation_sell_volume": [2.0, 0.0],
    }
    first, second = batch(calc, candles, "15s")
    assert first.log_return is None and second.log_return == pytest.approx(math.log(101 / 100), rel=1e-15)
    assert first.vwap_deviation_bps == pytest.approx(0.5 / 99.5 * 1e4, rel=1e-12)
    assert second.vwap_deviation_bps is None and second.avg_trade_size is None
    assert first.volume_imbalance == pytest.approx(1 / 3, rel=1e-15) and second.volume_imbalance is None
    assert first.trades_per_second == pytest.approx(6 / 15) and second.trades_per_second == 0.0
    assert first.avg_trade_size == pytest.approx(0.5)
    assert first.hl_range_bps == pytest.approx(1.5 / 100 * 1e4) and second.hl_range_bps == pytest.approx(
        2e4 / 101
    )
    # book: mid 100, spread 0.2 -> 20 bps; microprice weights bid by the ask size
    assert first.mid_price == pytest.approx(100.0) and first.spread_bps == pytest.approx(20.0)
    assert first.microprice == pytest.approx((99.9 * 3 + 100.1 * 1) / 4)
    assert first.depth_imbalance_5 == pytest.approx(-0.5) and second.depth_imbalance_5 == 0.0
    assert first.funding_rate == 0.0001 and first.open_interest == 5000.0
    assert first.open_interest_change is None and second.open_interest_change == pytest.approx(100.0)
    assert first.basis_bps == pytest.approx(20.0) and second.basis_bps == 0.0
    assert (second.liquidation_buy_volume, second.liquidation_sell_volume) == (1.5, 0.0)
    assert first.sma_5 is None and first.rsi_5 is None  # two candles: no window is full


def test_values_are_null_until_the_window_is_full_and_after_a_hole():
    calc = HFTFeatureCalculator("BTC-USDT")
    minute = 60_000_000
    starts = [i * minute for i in range(25)] + [(30 + i) * minute for i in range(6)]  # a hole after 25
    records = batch(calc, {"timestamp_in": starts, "close": np.linspace(100, 130, 31), "volume": np.ones(31)})
    first_index = {"sma_5": 4, "ema_5": 4, "rsi_5": 5, "price_volatility_5": 5, "sma_20": 19, "rsi_20": 20}
    first_index["log_return"] = 1  # (the index of the first candle with a value)
    for name, index in first_index.items():
        assert [getattr(r, name) is None for r in records[:25]] == [True] * index + [False] * (25 - index), (
            name
        )
    after = records[25:]
    assert [r.sma_5 is None for r in after] == [True] * 4 + [False] * 2  # warm-up starts again
    assert after[4].sma_5 == pytest.approx(np.mean(np.linspace(100, 130, 31)[25:30]))
    assert calc.engine.stats["resets"] == 1
    assert records[24].rsi_20 == 100.0  # only gains


def test_bad_candles_are_refused_with_the_row_named():
    calc = HFTFeatureCalculator("BTC-USDT")
    with pytest.raises(ValueError, match="candle row 2: timestamp_in is not after row 1"):
        batch(calc, {"timestamp_in": [0, 60_000_000, 60_000_000], "close": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="candle row 1: close must be a positive number"):
        batch(calc, {"close": [1.0, float("nan")]})
    with pytest.raises(ValueError, match="is ETH-USDT, this calculator is for BTC-USDT"):
        batch(calc, {"symbol": ["ETH-USDT"], "close": [1.0]})


# -- one implementation: batch == incremental == live ---------------------------------------------


@st.composite
def candle_series(draw):
    n = draw(st.integers(1, 80))
    minute = 60_000_000
    start, rows, close = draw(st.integers(0, 10_000)) * minute, [], draw(st.floats(1.0, 1e5))
    for _ in range(n):
        start += minute * (
            draw(st.integers(2, 5)) if draw(st.booleans()) and draw(st.integers(0, 9)) == 0 else 1
        )
        empty = draw(st.integers(0, 4)) == 0
        if not empty:
            close *= math.exp(draw(st.floats(-0.05, 0.05)))
        volume = 0.0 if empty else draw(st.floats(1e-6, 100.0))
        buy = volume * draw(st.floats(0.0, 1.0))
        trades = 0 if empty else draw(st.integers(1, 500))
        rows.append(
            {
                "timestamp_in": start, "close": close, "high": close * 1.001, "low": close * 0.999,
                "volume": volume, "buy_volume": buy, "sell_volume": volume - buy,
                "vwap": None if empty else close * 1.0001, "trade_count": trades,
            }
        )  # fmt: skip
    return rows


def same(a, b):
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-12 * abs(b))


@settings(max_examples=150, deadline=None)
@given(candle_series())
def test_batch_and_incremental_give_the_same_features(rows):
    whole = batch(HFTFeatureCalculator("BTC-USDT"), {k: [r[k] for r in rows] for k in rows[0]})
    live = HFTFeatureCalculator("BTC-USDT")
    one_by_one = [asyncio.run(live.compute_incremental(dict(r, timeframe="1m"))) for r in rows]
    for i, (a, b) in enumerate(zip(whole, one_by_one, strict=True)):
        for name in FEATURE_NAMES:
            assert same(getattr(a, name), getattr(b, name)), (i, name, getattr(a, name), getattr(b, name))


def test_live_features_on_real_frames_equal_the_batch_and_are_json_nulls(spot_trades):
    handler = TickHandler(CandleSettings(grace_ms=0, hft_timeframes=("15s", "1m")))
    published = []
    for seq, i in enumerate(range(0, len(spot_trades), 500)):
        rows = [
            (0, t.ts_us, t.price, t.qty, "sell" if t.taker_sells else "buy") for t in spot_trades[i : i + 500]
        ]
        for closed in handler.handle_bytes(trade_frame(rows, seq=seq)).batches:
            published += [m for part in candle_messages(closed, Stamps(0, 0)) for m in part]
    for closed in handler.finish():
        published += [m for part in candle_messages(closed, Stamps(0, 0)) for m in part]
    wire = [orjson.loads(orjson.dumps(m)) for m in published]
    assert all(b"NaN" not in orjson.dumps(m) for m in published)
    assert {m["timeframe"] for m in wire if "hft_features" in m} == {"15s", "1m"}
    assert all("hft_features" not in m for m in wire if m["timeframe"] not in ("15s", "1m"))
    all_candles = candles_from_trades(trade_columns(spot_trades), exchange_symbol="BTCUSDT")
    for tf in ("15s", "1m"):
        candles = [c for c in all_candles if c.timeframe == tf]
        expected = batch(HFTFeatureCalculator("BTC-USDT"), candle_columns(candles), tf)
        got = [m["hft_features"] for m in wire if m["timeframe"] == tf]
        assert len(got) == len(expected)
        live_names = set(got[0])
        assert live_names == {
            s.name for s in catalogue(groups=())
        }  # no book/derivative/liquidation data here
        for g, e in zip(got, expected, strict=True):
            for name in live_names:
                assert same(g[name], getattr(e, name)), (tf, name, g[name], getattr(e, name))
    first_15s = next(m for m in wire if m["timeframe"] == "15s")["hft_features"]
    assert first_15s["sma_5"] is None and first_15s["log_return"] is None


def test_warm_up_from_a_candle_file_gives_the_first_live_candle_full_windows(spot_trades, tmp_path):
    midnight = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z: the second file starts here
    before = [t for t in spot_trades if t.ts_us < midnight]
    after = [t for t in spot_trades if t.ts_us >= midnight]
    history = candles_from_trades(trade_columns(before), exchange_symbol="BTCUSDT")
    path = tmp_path / "recent.jsonl"
    path.write_bytes(
        b"\n".join(
            orjson.dumps(m) for part in candle_messages(_batch_of(history), Stamps(0, 0)) for m in part
        )
    )

    def first_live(warm: bool):
        handler = TickHandler(CandleSettings(grace_ms=0, hft_timeframes=("15s", "1m")))
        if warm:
            assert handler.warm_up(read_candles(path)) == sum(c.timeframe in ("15s", "1m") for c in history)
        closed = handler.handle_bytes(trade_frame(frame_rows(after))).batches
        messages = [m for b in closed for part in candle_messages(b, Stamps(0, 0)) for m in part]
        return next(m for m in messages if m["timeframe"] == "15s")

    cold, warm = first_live(False), first_live(True)
    assert cold["timestamp_in"] == warm["timestamp_in"] == "2024-08-09T00:00:00.000000Z"
    assert cold["hft_features"]["sma_20"] is None
    full = [
        c
        for c in candles_from_trades(trade_columns(spot_trades), exchange_symbol="BTCUSDT")
        if c.timeframe == "15s"
    ]
    at = next(i for i, c in enumerate(full) if c.timestamp_in == midnight)
    closes = [c.close for c in full[: at + 1]]
    assert warm["hft_features"]["sma_20"] == pytest.approx(np.mean(closes[-20:]), rel=1e-12)
    assert warm["hft_features"]["rsi_20"] == pytest.approx(talib.RSI(np.array(closes), 20)[-1], rel=1e-9)


def _batch_of(candles):
    from market_data_tick_handler.streaming_service import CandleBatch

    return CandleBatch.from_candles(candles)


def test_the_docs_catalogue_lists_every_feature():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "FEATURES.md").read_text()
    rows = [line.split("|")[1].strip().strip("`") for line in doc.splitlines() if line.startswith("| `")]
    expected = [s.name for s in catalogue()]
    assert rows == expected
