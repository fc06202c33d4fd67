"""FeatureStage (hft_features/stage.py) on candle engines of its own, as the frame router drives it: the
window features equal TA-Lib and the candle features are worked out by hand on real Binance candles; the
book, derivative and liquidation context by hand, per exchange; the warm-up from columns and from every
form it is given in, held for an exchange not attached yet; the groups and the stats (the context's
bounds: test_memory_bounds.py)."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pandas as pd
import pytest
import talib
from helpers import T0, S

from market_data_tick_handler.streaming_service import CandleBatch, candles_from_trades
from market_data_tick_handler.streaming_service.candle_processor import (
    CandleEngine,
    Stamps,
    candles_to_frame,
)
from market_data_tick_handler.streaming_service.hft_features import (
    FeatureStage,
    catalogue,
    context,
    read_candles,
)
from market_data_tick_handler.streaming_service.messages import candle_messages
from support.binance_reference import BINANCE_WS, TIMEFRAMES_US, expected_candles, read_trades
from support.talib_reference import talib_reference

SPOT = [BINANCE_WS / "spot_btcusdt_20240808.gz", BINANCE_WS / "spot_btcusdt_20240809.gz"]
MIDNIGHT = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z: the second file starts here
M = 60 * S
SIDES = {"buy": 1, "sell": 2}
NAN = float("nan")


def _engine(exchange="binance", timeframes=("15s", "1m"), **kw):
    return CandleEngine(exchange, timeframes=timeframes, grace_us=0, **kw)  # on an event clock of its own


def _trades(stage, engine, rows, symbol="BTCUSDT"):
    """rows: (ts, price, amount, side); the candles they closed, with their features."""
    ts, price, amount, side = (np.array(c) for c in zip(*rows, strict=True))
    batch = engine.on_trades(
        [symbol], np.zeros(len(ts), dtype=np.uint16), ts.astype(np.int64), price.astype(float),
        amount.astype(float), np.array([SIDES[s] for s in side], dtype=np.uint8),
    )  # fmt: skip
    stage.annotate(engine.exchange, batch)
    return list(batch)


def _finish(stage, engine):
    batch = engine.finish()
    stage.annotate(engine.exchange, batch)
    return list(batch)


@pytest.fixture(scope="module")
def spot_trades():
    return read_trades(*SPOT)


def _raw_rows(trades):
    return [(t.ts_us, t.price, t.qty, "sell" if t.taker_sells else "buy") for t in trades]


# -- features of real candles -----------------------------------------------------------------------


def test_window_features_equal_talib_and_candle_features_are_worked_out_by_hand(spot_trades):
    stage = FeatureStage(("15s", "1m"), ())
    engine = _engine()
    stage.attach("binance", engine)
    rows = _raw_rows(spot_trades)
    candles = []
    for i in range(0, len(rows), 500):
        candles += _trades(stage, engine, rows[i : i + 500])
    candles += _finish(stage, engine)
    for tf in ("15s", "1m"):
        live = [c for c in candles if c.timeframe == tf]
        reference = expected_candles(spot_trades, tf)  # from the raw frames, not by our engine
        assert [c.timestamp_in for c in live] == [r["timestamp_in"] for r in reference]
        assert {name for c in live for name in c.hft_features} == {s.name for s in catalogue(groups=())}
        close = np.array([r["close"] for r in reference])
        volume = np.array([r["volume"] for r in reference])
        for name, expected in talib_reference(close, volume).items():
            got = np.array([NAN if (v := c.hft_features[name]) is None else v for c in live])
            assert np.array_equal(np.isnan(got), np.isnan(expected)), f"{tf} {name}: warm-up differs"
            if name.startswith("rsi"):  # TA-Lib's 0 for a window that never moved is the catalogue's 50
                expected = np.where((expected == 0) & (got == 50), 50.0, expected)
            if np.isnan(expected).all():
                continue
            scale = np.nanmax(np.abs(expected)) if name.startswith("price_volatility") else 1.0
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12 * scale, err_msg=f"{tf} {name}")
        seconds = TIMEFRAMES_US[tf] / 1e6
        previous = None
        for c, r in zip(live, reference, strict=True):
            f = c.hft_features
            sided = r["buy_volume"] + r["sell_volume"]
            expected = {
                "log_return": None if previous is None else math.log(r["close"] / previous),
                "vwap_deviation_bps": None
                if r["vwap"] is None
                else (r["close"] - r["vwap"]) / r["vwap"] * 1e4,
                "volume_imbalance": None if sided == 0 else (r["buy_volume"] - r["sell_volume"]) / sided,
                "trades_per_second": r["trade_count"] / seconds,
                "avg_trade_size": None if r["trade_count"] == 0 else r["volume"] / r["trade_count"],
                "hl_range_bps": (r["high"] - r["low"]) / r["close"] * 1e4,
            }
            for name, want in expected.items():
                if want is None:
                    assert f[name] is None, (tf, c.timestamp_in, name)
                else:
                    assert f[name] == pytest.approx(want, rel=1e-9, abs=1e-9), (tf, c.timestamp_in, name)
            previous = r["close"]
    featured = sum(c.timeframe in ("15s", "1m") for c in candles)
    assert stage.stats == {"binance": {"candles": featured, "resets": 0, "out_of_order": 0}}


def test_a_revised_candle_carries_no_features():
    stage = FeatureStage(("15s",), ())
    engine = _engine(late_policy="revise")
    stage.attach("binance", engine)
    first = _trades(stage, engine, [(T0 + S, 100.0, 1.0, "buy"), (T0 + 16 * S, 101.0, 1.0, "buy")])
    assert [(c.timeframe, c.revision) for c in first] == [("15s", 0)]
    assert first[0].hft_features is not None
    revised = _trades(stage, engine, [(T0 + 2 * S, 99.0, 1.0, "sell")])  # late, into [0, 15)
    assert [(c.timeframe, c.timestamp_in, c.revision) for c in revised] == [("15s", T0, 1)]
    assert revised[0].hft_features is None
    assert stage.stats["binance"]["candles"] == 1


# -- context ------------------------------------------------------------------------------------------


def _levels(*sides):
    """Each side: [(price, amount), ...] -> (prices, amounts) shaped (1, 2), NaN-padded."""
    out = []
    for levels in sides:
        padded = list(levels) + [(NAN, NAN)] * (2 - len(levels))
        out += [np.array([[p for p, _ in padded]]), np.array([[a for _, a in padded]])]
    return out


def _book(stage, exchange, ts, bids, asks):
    bid_price, bid_amount, ask_price, ask_amount = _levels(bids, asks)
    stage.on_book(exchange, np.array([0]), np.array([ts]), bid_price, bid_amount, ask_price, ask_amount)


def test_book_derivative_and_liquidation_features_worked_out_by_hand_for_each_exchange():
    stage = FeatureStage(("15s",), ("book", "derivative", "liquidations"))
    futures, bybit = _engine("binance-futures"), _engine("bybit")
    stage.attach("binance-futures", futures)
    stage.attach("bybit", bybit)
    assert futures.slot("BTCUSDT") == bybit.slot("BTCUSDT") == 0  # the same slot in each: kept apart
    ex = "binance-futures"
    candles = _trades(stage, futures, [(T0 + S, 100.0, 1.0, "buy")])
    candles += _trades(stage, bybit, [(T0 + S, 50.0, 1.0, "buy")])
    _book(stage, ex, T0 + 2 * S, [(100.0, 1.0), (99.0, 2.0)], [(101.0, 3.0), (102.0, 4.0)])
    _book(stage, "bybit", T0 + 2 * S, [(49.0, 1.0)], [(51.0, 1.0)])
    one = np.array([0])
    stage.on_derivative(
        ex, one, np.array([T0 + 3 * S]), np.array([0.0001]), np.array([1000.0]), np.array([100.5]),
        np.array([100.4]),
    )  # fmt: skip
    stage.on_liquidations(
        ex, np.array([0, 0]), np.array([T0 + 4 * S, T0 + 5 * S]), np.array([1, 2], dtype=np.uint8),
        np.array([0.5, 0.25]),
    )  # fmt: skip
    candles += _trades(stage, futures, [(T0 + 6 * S, 101.0, 2.0, "sell")])
    _book(stage, ex, T0 + 14_900_000, [(100.5, 2.0)], [(100.7, 1.0)])
    # after the end of [0, 15), arrived before the trade that closes it: not that candle's book
    _book(stage, ex, T0 + 15_100_000, [(101.0, 1.0), (100.0, 1.0)], [(102.0, 2.0), (103.0, 2.0)])
    candles += _trades(stage, futures, [(T0 + 16 * S, 102.0, 1.0, "buy")])
    candles += _trades(stage, bybit, [(T0 + 16 * S, 52.0, 1.0, "buy")])
    stage.on_liquidations(ex, one, np.array([T0 + 20 * S]), np.array([2], dtype=np.uint8), np.array([1.0]))
    candles += _trades(stage, futures, [(T0 + 31 * S, 103.0, 1.0, "buy")])
    mine = [c.hft_features for c in candles if c.exchange == ex and c.timeframe == "15s"]
    assert [c.timestamp_in - T0 for c in candles if c.exchange == ex and c.timeframe == "15s"] == [0, 15 * S]
    # [0, 15): book at 14.9 s (bid 100.5 x 2, ask 100.7 x 1), ticker at 3 s, liquidations 0.5 buy, 0.25 sell
    first = mine[0]
    assert set(first) == {s.name for s in catalogue()}
    assert first["mid_price"] == pytest.approx(100.6, rel=1e-15)
    assert first["spread_bps"] == pytest.approx(0.2 / 100.6 * 1e4, rel=1e-9)  # 19.88 bps
    assert first["microprice"] == pytest.approx((100.5 * 1.0 + 100.7 * 2.0) / 3.0, rel=1e-15)
    assert first["depth_imbalance_5"] == pytest.approx((2.0 - 1.0) / 3.0, rel=1e-15)
    assert (first["funding_rate"], first["open_interest"]) == (0.0001, 1000.0)
    assert first["open_interest_change"] is None  # the series' first candle
    assert first["basis_bps"] == pytest.approx(0.1 / 100.4 * 1e4, rel=1e-9)  # 9.96 bps
    assert (first["liquidation_buy_volume"], first["liquidation_sell_volume"]) == (0.5, 0.25)
    # [15, 30): the book at 15.1 s (top-5 depth 2 vs 4), the same ticker, the sell liquidation at 20 s
    second = mine[1]
    assert second["mid_price"] == 101.5 and second["spread_bps"] == pytest.approx(1.0 / 101.5 * 1e4)
    assert second["microprice"] == pytest.approx((101.0 * 2.0 + 102.0 * 1.0) / 3.0, rel=1e-15)
    assert second["depth_imbalance_5"] == pytest.approx((2.0 - 4.0) / 6.0, rel=1e-15)
    assert second["open_interest_change"] == 0.0
    assert (second["liquidation_buy_volume"], second["liquidation_sell_volume"]) == (0.0, 1.0)
    # bybit: its own book only; no ticker (null), no liquidations (0)
    (other,) = [c.hft_features for c in candles if c.exchange == "bybit" and c.timeframe == "15s"]
    assert other["mid_price"] == 50.0 and other["spread_bps"] == pytest.approx(2.0 / 50.0 * 1e4)
    assert other["funding_rate"] is None and other["basis_bps"] is None
    assert (other["liquidation_buy_volume"], other["liquidation_sell_volume"]) == (0.0, 0.0)
    # closed through 30 s, the longest hft timeframe 15 s: no open candle holds the liquidations before 15 s
    assert stage.contexts[ex]._liquidation_events()[1].tolist() == [T0 + 20 * S]
    assert stage.stats == {
        ex: {"candles": 2, "resets": 0, "out_of_order": 0},
        "bybit": {"candles": 1, "resets": 0, "out_of_order": 0},
    }


def test_the_groups_in_use_decide_the_context_kept_and_the_features_published():
    with pytest.raises(ValueError, match=r"unknown feature group\(s\) \['books'\]"):
        FeatureStage(("15s",), ("books",))
    stage = FeatureStage(("15s", "1m"), ("book", "derivative", "liquidations"))
    assert stage.longest_us == 60 * S
    stage.groups = ("book",)  # the start frame says derivative tickers and liquidations are not streamed
    engine = _engine()
    stage.attach("binance", engine)
    assert stage.groups == ("book",) and stage.live["binance"].features.groups == ("book",)
    _trades(stage, engine, [(T0 + S, 100.0, 1.0, "buy")])
    _book(stage, "binance", T0 + 2 * S, [(99.0, 1.0)], [(101.0, 1.0)])
    stage.on_derivative(
        "binance", np.array([0]), np.array([T0 + 3 * S]), *(np.array([1.0]) for _ in range(4))
    )  # not in use: not kept
    stage.on_liquidations("binance", np.array([0]), np.array([T0 + 4 * S]), np.array([1]), np.array([1.0]))
    (candle,) = [
        c for c in _trades(stage, engine, [(T0 + 16 * S, 101.0, 1.0, "buy")]) if c.timeframe == "15s"
    ]
    assert set(candle.hft_features) == {s.name for s in catalogue(groups=("book",))}
    assert candle.hft_features["mid_price"] == 100.0
    ctx = stage.contexts["binance"]
    assert ctx._liquidation_events() == () and np.isnan(ctx.derivative.values).all()
    # without groups no context; without hft timeframes no features at all
    plain = FeatureStage(("15s",), ())
    plain.attach("binance", _engine())
    plain.on_book("binance", np.array([0]), np.array([T0]), *_levels([(1.0, 1.0)], [(2.0, 1.0)]))
    assert plain.contexts == {} and list(plain.live) == ["binance"]
    off = FeatureStage((), ("book",))
    engine = _engine()
    off.attach("binance", engine)
    assert off.longest_us == 0 and off.live == {} and off.stats == {}
    closed = _trades(off, engine, [(T0, 1.0, 1.0, "buy"), (T0 + M, 1.0, 1.0, "buy")])
    assert len(closed) == 5 and all(c.hft_features is None for c in closed)
    assert (
        off.warm_up([{"exchange_symbol": "BTCUSDT", "timeframe": "15s", "timestamp_in": T0, "close": 1.0}])
        == 0
    )
    # an hft timeframe the engine does not make, an engine attached twice or under another name
    with pytest.raises(ValueError, match=r"hft_timeframes \['5s'\] are not candle timeframes"):
        FeatureStage(("5s",), ()).attach("binance", _engine())
    twice = FeatureStage(("15s",), ())
    first = _engine()
    twice.attach("binance", first)
    twice.attach("binance", first)  # the same engine: nothing to do
    with pytest.raises(ValueError, match="binance has an engine already"):
        twice.attach("binance", _engine())
    with pytest.raises(ValueError, match="the engine of bybit attached as binance"):
        FeatureStage(("15s",), ()).attach("binance", _engine("bybit"))


def test_dropped_liquidations_show_in_the_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "MAX_LIQUIDATIONS", 10)
    stage = FeatureStage(("15s",), ("liquidations",))
    stage.attach("binance", _engine())
    for ts in range(1, 1 + 2 * context.MERGE_EVERY):
        stage.on_liquidations("binance", np.array([0]), np.array([ts]), np.array([2]), np.array([1.0]))
    dropped = stage.contexts["binance"].liquidations_dropped
    # merged at the 64th frame (64 events: 54 dropped) and at the 127th (the 10 kept and 63 more: 63 dropped)
    assert dropped == (context.MERGE_EVERY - 10) + (context.MERGE_EVERY - 1) == 117
    assert stage.stats["binance"] == {
        "candles": 0,
        "resets": 0,
        "out_of_order": 0,
        "liquidations_dropped": dropped,
    }


# -- warm-up ------------------------------------------------------------------------------------------


def _series(closes, start=T0, timeframe="1m", **extra):
    """Columns of consecutive candles of BTCUSDT."""
    n = len(closes)
    return {
        "exchange_symbol": np.array(["BTCUSDT"] * n, dtype=object),
        "timeframe": np.array([timeframe] * n, dtype=object),
        "timestamp_in": start + TIMEFRAMES_US[timeframe] * np.arange(n, dtype=np.int64),
        "close": np.asarray(closes, dtype=float),
        **{k: np.asarray(v) for k, v in extra.items()},
    }


def _concat(*parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_a_warm_up_before_the_engine_is_made_is_held_and_counted_as_if_it_were_not():
    stage = FeatureStage(("1m",), ())
    columns = _concat(
        _series([7.0], timeframe="15s") | {"exchange": np.array(["binance"], dtype=object)},  # not hft
        _series([100.0, 101.0, 102.0, 103.0, 104.0]) | {"exchange": np.array([None] * 5, dtype=object)},
        _series([50.0]) | {"exchange": np.array(["deribit"], dtype=object)},
    )  # None: binance
    assert stage.warm_up(columns) == 6
    # again, overlapping: only the candles after the last one held count
    assert stage.warm_up(_series([103.0, 104.0, 105.0, 106.0], start=T0 + 3 * M)) == 2
    with pytest.raises(ValueError, match="candle row 1: close must be a positive number"):
        stage.warm_up(_series([107.0, 0.0], start=T0 + 7 * M))  # refused whole: nothing of it held
    assert stage.stats == {}
    engine = _engine()
    stage.attach("binance", engine)
    assert stage.stats == {"binance": {"candles": 7, "resets": 0, "out_of_order": 0}}
    assert stage.warm_up(_series([106.0, 107.0], start=T0 + 6 * M)) == 1  # attached: after the lane's last
    candles = _trades(
        stage, engine, [(T0 + 8 * M + S, 108.0, 1.0, "buy"), (T0 + 9 * M + S, 109.0, 1.0, "buy")]
    )
    (live,) = [c.hft_features for c in candles if c.timeframe == "1m"]
    assert live["sma_5"] == pytest.approx((104 + 105 + 106 + 107 + 108) / 5, rel=1e-15)
    assert live["log_return"] == pytest.approx(math.log(108 / 107), rel=1e-15)
    assert live["sma_10"] is None  # 9 candles
    assert stage.stats["binance"] == {"candles": 9, "resets": 0, "out_of_order": 0}
    deribit_engine = _engine("deribit")
    stage.attach("deribit", deribit_engine)
    assert stage.stats["deribit"] == {"candles": 1, "resets": 0, "out_of_order": 0}


def test_warm_up_columns_name_what_they_lack():
    stage = FeatureStage(("1m",), ())
    with pytest.raises(ValueError, match="warm-up candles need exchange_symbol"):
        stage.warm_up({"timeframe": ["1m"], "timestamp_in": [T0], "close": [1.0]})
    with pytest.raises(ValueError, match="candle row 1: no exchange_symbol"):
        stage.warm_up(_series([1.0, 2.0]) | {"exchange_symbol": np.array(["BTCUSDT", None], dtype=object)})
    assert stage.warm_up({}) == stage.warm_up([]) == 0


def test_warmed_up_open_interest_carries_into_the_first_live_candle():
    """The derivative group's open_interest_change of the first live candle is against the last warm-up
    candle's open interest; a warm-up without it leaves the change unknown."""

    def first_live(warm):
        stage = FeatureStage(("1m",), ("derivative",))
        engine = _engine("binance-futures", timeframes=("1m",))
        assert stage.warm_up(warm) == len(warm)
        stage.attach("binance-futures", engine)
        one = np.array([0])
        stage.on_derivative(
            "binance-futures", one, np.array([T0 + 3 * M + 5 * S]), np.array([0.0001]), np.array([1_012.5]),
            np.array([103.0]), np.array([103.0]),
        )  # fmt: skip
        _trades(stage, engine, [(T0 + 3 * M + 6 * S, 103.0, 1.0, "buy")])
        (candle,) = _trades(stage, engine, [(T0 + 4 * M + 1, 104.0, 1.0, "buy")])
        assert candle.timestamp_in == T0 + 3 * M
        return candle.hft_features

    stored = [
        {"exchange": "binance-futures", "exchange_symbol": "BTCUSDT", "timeframe": "1m",
         "timestamp_in": T0 + k * M, "close": 100.0 + k, "volume": 1.0}
        for k in range(3)
    ]  # fmt: skip
    stored[2]["open_interest"] = 1_000.0  # only the last one has it: the others lack the key
    warm = first_live(stored)
    assert warm["open_interest"] == 1_012.5 and warm["open_interest_change"] == 12.5
    assert warm["log_return"] == pytest.approx(math.log(103.0 / 102.0), rel=1e-15)
    cold = first_live([])
    assert cold["open_interest_change"] is None and cold["log_return"] is None


def test_every_form_of_warm_up_gives_the_first_live_candle_full_windows(spot_trades, tmp_path):
    before = [t for t in spot_trades if t.ts_us < MIDNIGHT]
    after = [t for t in spot_trades if t.ts_us >= MIDNIGHT]
    trades = {
        "timestamp": [t.ts_us for t in before], "price": [t.price for t in before],
        "amount": [t.qty for t in before], "side": ["sell" if t.taker_sells else "buy" for t in before],
    }  # fmt: skip
    history = candles_from_trades(trades, exchange_symbol="BTCUSDT")
    messages = [m for part in candle_messages(CandleBatch.from_candles(history), Stamps(0, 0)) for m in part]
    jsonl = tmp_path / "recent.jsonl"
    jsonl.write_bytes(b"\n".join(orjson.dumps(m) for m in messages))
    csv = tmp_path / "recent.csv"
    candles_to_frame(history).to_csv(csv, index=False)
    names = ("exchange_symbol", "timeframe", "timestamp_in", "close", "high", "low", "volume")
    forms = {
        "columns": {k: np.array([getattr(c, k) for c in history]) for k in names},
        "candles": history,
        "messages": messages,
        "dataframe": candles_to_frame(history),
        "jsonl": read_candles(jsonl),
        "csv": read_candles(csv),
    }
    for label in ("jsonl", "csv"):  # a file is read into columns, one per field
        assert {"exchange_symbol", "timeframe", "timestamp_in", "close", "vwap"} <= set(forms[label]), label
        assert all(len(column) == len(history) for column in forms[label].values()), label
    expected_used = sum(c.timeframe in ("15s", "1m") for c in history)
    reference = expected_candles(spot_trades, "15s")  # both files, from the raw frames
    at = next(i for i, c in enumerate(reference) if c["timestamp_in"] == MIDNIGHT)
    closes = np.array([c["close"] for c in reference[: at + 1]])

    def first_live(form, attach_first):
        stage = FeatureStage(("15s", "1m"), ())
        engine = _engine()
        if attach_first:
            stage.attach("binance", engine)
        used = stage.warm_up(form) if form is not None else 0
        stage.attach("binance", engine)
        candles = _trades(stage, engine, _raw_rows(after))
        return used, next(c for c in candles if c.timeframe == "15s")

    _, cold = first_live(None, True)
    assert cold.timestamp_in == MIDNIGHT and cold.hft_features["sma_20"] is None
    for label, form in forms.items():
        for attach_first in (True, False):
            used, warm = first_live(form, attach_first)
            assert used == expected_used, label
            assert warm.timestamp_in == MIDNIGHT
            f = warm.hft_features
            assert f["sma_20"] == pytest.approx(np.mean(closes[-20:]), rel=1e-12), label
            assert f["rsi_20"] == pytest.approx(talib.RSI(closes, 20)[-1], rel=1e-9), label
            assert f["ema_20"] == pytest.approx(talib.EMA(closes, 20)[-1], rel=1e-9), label
            assert f["log_return"] == pytest.approx(math.log(closes[-1] / closes[-2]), rel=1e-12), label


def test_warm_up_candles_of_another_exchange_go_to_its_own_engine():
    stage = FeatureStage(("1m",), ())
    a, b = _engine("binance"), _engine("bybit")
    stage.attach("binance", a)
    stage.attach("bybit", b)
    frame = pd.DataFrame(
        {"exchange": ["bybit", "binance", "bybit"], "exchange_symbol": ["ETHUSDT", "BTCUSDT", "ETHUSDT"],
         "timeframe": "1m", "timestamp_in": [T0 + M, T0, T0], "close": [2.0, 1.0, 3.0]}
    )  # fmt: skip
    assert stage.warm_up(frame) == 3
    assert stage.stats == {
        "binance": {"candles": 1, "resets": 0, "out_of_order": 0},
        "bybit": {"candles": 2, "resets": 0, "out_of_order": 0},  # sorted by time: no candle refused
    }
    assert a.exchange_symbols == ["BTCUSDT"] and b.exchange_symbols == ["ETHUSDT"]


def test_a_candle_file_that_is_not_json_lines_names_its_line(tmp_path):
    path = tmp_path / "recent.jsonl"
    path.write_bytes(
        b'{"exchange_symbol": "BTCUSDT", "timeframe": "1m", "timestamp_in": 0, "close": 1.0}\n\n{oops\n'
    )
    with pytest.raises(ValueError, match=r"recent\.jsonl:3: not a JSON candle"):
        read_candles(path)
