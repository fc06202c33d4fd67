"""Candle building, with expected values worked out by hand (see the comments)."""

import pytest
from helpers import T0, S, control_frame, trade_frame

from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler

TF = ("15s", "1m")


def _handler(**kw):
    return TickHandler(CandleSettings(timeframes=TF, grace_ms=kw.pop("grace_ms", 0), **kw))


def _flat(batches):
    return [c for batch in batches for c in batch]


def _by_tf(candles, tf):
    return [c for c in candles if c.timeframe == tf]


def _ohlcv(c):
    return (
        c.timestamp_in - T0,
        c.open,
        c.high,
        c.low,
        c.close,
        c.volume,
        c.buy_volume,
        c.sell_volume,
        c.trade_count,
    )


def test_event_clock_buckets_empty_candles_rollup_and_end():
    h = _handler()
    out = []
    out += h.handle_bytes(
        trade_frame(
            [
                (0, T0 + 1 * S, 100.0, 1.0, "buy"),
                (0, T0 + 5 * S, 102.0, 2.0, "sell"),
                (0, T0 + 14_999_000, 101.0, 1.0, "unknown"),
            ],
            seq=0,
        )
    ).candles
    assert out == []  # nothing closes before the clock passes 15 s
    out += h.handle_bytes(trade_frame([(0, T0 + 16 * S, 103.0, 3.0, "buy")], seq=1)).candles
    # the trade at 16 s closed [0, 15) before being applied
    assert [_ohlcv(c) for c in out] == [(0, 100.0, 102.0, 100.0, 101.0, 4.0, 1.0, 2.0, 3)]
    assert out[0].vwap == pytest.approx((100 + 204 + 101) / 4)  # 101.25
    assert out[0].first_trade_time == T0 + S and out[0].last_trade_time == T0 + 14_999_000
    assert out[0].is_partial  # the stream began at 1 s, after the bucket start
    out += h.handle_bytes(
        trade_frame([(0, T0 + 47 * S, 99.0, 1.0, "sell"), (0, T0 + 61 * S, 104.0, 1.0, "buy")], seq=2)
    ).candles
    out += h.handle_bytes(control_frame("end", 3, reason="replay_finished", error=None, counts={})).candles
    fifteen = _by_tf(out, "15s")
    assert [_ohlcv(c) for c in fifteen] == [
        (0, 100.0, 102.0, 100.0, 101.0, 4.0, 1.0, 2.0, 3),
        (15 * S, 103.0, 103.0, 103.0, 103.0, 3.0, 3.0, 0.0, 1),
        (30 * S, 103.0, 103.0, 103.0, 103.0, 0.0, 0.0, 0.0, 0),  # empty: previous close
        (45 * S, 99.0, 99.0, 99.0, 99.0, 1.0, 0.0, 1.0, 1),
        (60 * S, 104.0, 104.0, 104.0, 104.0, 1.0, 1.0, 0.0, 1),
    ]
    assert [c.is_empty for c in fifteen] == [False, False, True, False, False]
    assert fifteen[2].vwap is None and fifteen[2].first_trade_time is None
    assert [c.is_partial for c in fifteen] == [True, False, False, False, True]  # last: the stream ended
    minute = _by_tf(out, "1m")
    assert [_ohlcv(c) for c in minute] == [
        (0, 100.0, 103.0, 99.0, 99.0, 8.0, 4.0, 3.0, 5),
        (60 * S, 104.0, 104.0, 104.0, 104.0, 1.0, 1.0, 0.0, 1),
    ]
    assert minute[0].vwap == pytest.approx((405 + 309 + 99) / 8)  # 101.625
    # the 1m candle [0, 60) closed together with the 15 s candle [45, 60), before [60, 75)
    assert out.index(minute[0]) == out.index(fifteen[3]) + 1


def test_grace_keeps_a_bucket_open_and_later_ticks_are_late():
    h = _handler(grace_ms=500)
    out = h.handle_bytes(
        trade_frame(
            [
                (0, T0 + 1 * S, 100.0, 1.0, "buy"),
                (0, T0 + 15_200_000, 110.0, 1.0, "buy"),  # clock 15.2 s < 15 s + 0.5 s: [0, 15) stays open
                (0, T0 + 14_900_000, 90.0, 1.0, "sell"),  # so this one still counts in [0, 15)
                (0, T0 + 15_600_000, 111.0, 1.0, "buy"),  # clock passes 15.5 s: [0, 15) closes
                (0, T0 + 14_000_000, 500.0, 1.0, "buy"),  # late: dropped and counted
            ]
        )
    ).candles
    assert [_ohlcv(c) for c in out] == [(0, 100.0, 100.0, 90.0, 90.0, 2.0, 1.0, 1.0, 2)]
    stats = h.get_stats()
    assert stats["late_ticks"] == 1
    p = h.engines["binance"].processors["BTCUSDT"]
    assert p.get_stats()["late_dropped"] == 1


def test_revise_policy_republishes_with_a_new_revision():
    h = _handler(late_policy="revise")
    out = h.handle_bytes(
        trade_frame(
            [
                (0, T0 + 1 * S, 100.0, 1.0, "buy"),
                (0, T0 + 16 * S, 101.0, 1.0, "buy"),  # closes [0, 15): revision 0
                (0, T0 + 2 * S, 200.0, 3.0, "sell"),  # late for [0, 15); the 1m candle is still open
            ]
        )
    ).candles
    assert [(c.timeframe, c.revision, c.high, c.volume, c.trade_count) for c in out] == [
        ("15s", 0, 100.0, 1.0, 1),
        ("15s", 1, 200.0, 4.0, 2),
    ]
    assert out[1].close == 200.0  # the late trade is the latest by exchange time in [0, 15)
    end = h.handle_bytes(control_frame("end", 1, reason="replay_finished", error=None, counts={})).candles
    minute = _by_tf(end, "1m")[0]
    # the open 1m candle took the late trade directly: 100x1 + 200x3 + 101x1
    assert (minute.revision, minute.volume, minute.high, minute.trade_count) == (0, 5.0, 200.0, 3)
    assert minute.vwap == pytest.approx((100 + 600 + 101) / 5)


def test_wall_clock_closes_candles_without_trades():
    now = [T0 + 1 * S]
    h = TickHandler(CandleSettings(timeframes=TF, clock="wall", grace_ms=250), now=lambda: now[0])
    h.engine("binance")
    h.handle_bytes(trade_frame([(0, T0 + 2 * S, 100.0, 1.0, "buy")]))
    assert h.next_deadline_us() == T0 + 15 * S + 250_000
    assert _flat(h.advance(T0 + 15_200_000)) == []  # within the grace delay
    first = _flat(h.advance(T0 + 15_250_000))
    assert [_ohlcv(c) for c in first] == [(0, 100.0, 100.0, 100.0, 100.0, 1.0, 1.0, 0.0, 1)]
    quiet = _flat(h.advance(T0 + 45_300_000))  # no trade since: two empty candles, one per bucket
    assert [(c.timestamp_in - T0, c.is_empty, c.close) for c in quiet] == [
        (15 * S, True, 100.0),
        (30 * S, True, 100.0),
    ]
    late = h.handle_bytes(trade_frame([(0, T0 + 20 * S, 1.0, 1.0, "buy")], seq=1))
    assert late.candles == [] and h.get_stats()["late_ticks"] == 1


def test_disconnect_flags_every_overlapping_candle():
    h = _handler()
    symbols = (("binance", "BTCUSDT"),)
    out = h.handle_bytes(trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy")], seq=0)).candles
    h.handle_bytes(control_frame("disconnect", 1, symbols=symbols, rows=[(0, T0 + 3 * S)]))
    # data resumes at 50 s: the gap is (1 s, 50 s) in exchange time
    out += h.handle_bytes(
        trade_frame([(0, T0 + 50 * S, 101.0, 1.0, "buy"), (0, T0 + 75 * S, 102.0, 1.0, "buy")], seq=2)
    ).candles
    flags = [(c.timeframe, (c.timestamp_in - T0) // S, c.has_gap) for c in out]
    assert flags == [
        ("15s", 0, True),
        ("15s", 15, True),
        ("15s", 30, True),
        ("15s", 45, True),
        ("1m", 0, True),
        ("15s", 60, False),
    ]
    assert h.get_stats()["counts"]["disconnects"] == 1


def test_quiet_symbol_gets_one_candle_per_bucket_from_the_exchange_clock():
    h = _handler()
    symbols = (("binance", "BTCUSDT"), ("binance", "ETHUSDT"))
    out = h.handle_bytes(
        trade_frame(
            [
                (0, T0 + 1 * S, 100.0, 1.0, "buy"),
                (1, T0 + 2 * S, 10.0, 1.0, "buy"),
                (0, T0 + 31 * S, 101.0, 1.0, "buy"),
            ],
            symbols=symbols,
        )
    ).candles
    eth = [(c.timestamp_in - T0, c.is_empty, c.close) for c in out if c.exchange_symbol == "ETHUSDT"]
    assert eth == [(0, False, 10.0), (15 * S, True, 10.0)]
    assert {c.symbol for c in out} == {"BTC-USDT", "ETH-USDT"}


def test_bad_rows_are_dropped_counted_and_named_and_good_rows_kept(caplog):
    h = _handler()
    out = h.handle_bytes(
        trade_frame(
            [
                (0, T0 + 1 * S, 100.0, 1.0, "buy"),
                (0, T0 + 2 * S, float("nan"), 1.0, "buy"),
                (0, T0 + 3 * S, 102.0, -1.0, "sell"),
                (0, T0 + 4 * S, 103.0, 2.0, "sell"),
            ],
            seq=5,
        )
    ).candles
    out += _flat(h.finish())
    first = _by_tf(out, "15s")[0]
    assert (first.trade_count, first.volume, first.close) == (2, 3.0, 103.0)
    assert h.get_stats()["counts"]["bad_trades"] == 2
    assert "trade frame seq=5 row 1 (binance:BTCUSDT): price=nan" in caplog.text
    assert "2 bad row(s) in this frame dropped, the other 2 kept" in caplog.text


def test_undecodable_frames_and_lost_frames_are_counted():
    h = _handler()
    h.handle_bytes(b"garbage that is not a frame")
    h.handle_bytes(trade_frame([(0, T0 + S, 1.0, 1.0, "buy")], seq=0))
    h.handle_bytes(trade_frame([(0, T0 + 2 * S, 1.0, 1.0, "buy")], seq=3))
    counts = h.get_stats()["counts"]
    assert counts["bad_frames"] == 1 and counts["frames_lost"] == 2


async def test_process_tick_takes_one_tick_as_a_dict_and_refuses_bad_ones():
    h = TickHandler()
    tick = {
        "symbol": "BTC-USDT",
        "exchange": "binance",
        "timestamp": "2024-10-25T12:51:00.500000+00:00",
        "type": "trades",
        "price": 67000.0,
        "amount": 0.1,
        "side": "buy",
    }
    assert await h.process_tick(tick) is True
    assert await h.process_tick({**tick, "price": -1}) is False
    assert await h.process_tick({"type": "trades"}) is False
    stats = h.get_stats()
    assert stats["ticks_by_symbol"]["binance:BTCUSDT"]["trade"] == 2
    assert stats["counts"]["bad_trades"] == 1 and stats["counts"]["bad_ticks"] == 1
    p = h.engines["binance"].processors["BTCUSDT"]
    assert p.get_stats()["trades"] == 1 and p.symbol == "BTC-USDT"


def test_a_trade_far_ahead_of_the_wall_clock_is_counted_and_named(caplog):
    # wall clock at 1 s; the ring holds 8 base buckets (2 min of 15 s): a trade 3 min ahead cannot be held
    h = TickHandler(CandleSettings(timeframes=TF, clock="wall", grace_ms=0), now=lambda: T0 + 1 * S)
    h.handle_bytes(
        trade_frame([(0, T0 + 2 * S, 100.0, 1.0, "buy"), (0, T0 + 180 * S, 101.0, 1.0, "buy")], seq=0)
    )
    stats = h.engines["binance"].processor("BTCUSDT").get_stats()
    assert (stats["trades"], stats["ahead_dropped"], stats["open_buckets"]) == (2, 1, 1)
    assert "BTCUSDT: 1 trade(s)" in caplog.text and "is the local clock behind?" in caplog.text
