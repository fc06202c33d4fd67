"""The injected clock (streaming_service/clock.py): the wall clock's timer, the event clock moved by the
candle engine and read by the gap tracker. Every time is worked out by hand, in µs."""

import numpy as np
import pytest
from helpers import T0, S, trade_frame

from market_data_tick_handler.streaming_service.candle_processor import CandleEngine
from market_data_tick_handler.streaming_service.clock import EventClock, WallClock, make_clock
from market_data_tick_handler.streaming_service.data_types import GapProcessor
from market_data_tick_handler.wire import decode_frame

TF = ("15s", "1m")


def test_the_wall_clock_reads_the_system_and_has_a_timer():
    clock = WallClock(now=lambda: T0 + 5)
    assert clock.name == "wall" and not clock.trades_move_time
    assert clock.now_us() == clock.start_us() == clock.received_us() == T0 + 5
    assert clock.timer_now() == T0 + 5 and clock.timer_now(T0 + 7) == T0 + 7
    assert clock.deadline_us(T0 + 9) == T0 + 9
    assert clock.horizon_us("binance") is None
    # a disconnect starts at its own local time, or now when it has none
    assert clock.gap_start_us(T0 + 100, T0 + 3) == T0 + 3
    assert clock.gap_start_us(T0 + 100, 0) == T0 + 5


def test_the_event_clock_is_the_time_each_exchange_reached_and_has_no_timer():
    clock = EventClock(now=lambda: 42, max_jump_us=10 * S)
    assert clock.name == "event" and clock.trades_move_time
    assert clock.start_us() is None and clock.timer_now(T0) is None and clock.deadline_us(T0) is None
    assert clock.received_us() is None
    assert clock.time_us("binance") is None and clock.horizon_us("binance") is None
    clock.set_time("binance", T0)
    assert clock.time_us("binance") == T0 and clock.horizon_us("binance") == T0 + 10 * S
    assert clock.horizon_us("deribit") is None
    # a disconnect starts at the exchange time reached, else at its local time, else now (42)
    assert clock.gap_start_us(T0, T0 + 3) == T0
    assert clock.gap_start_us(None, T0 + 3) == T0 + 3
    assert clock.gap_start_us(None, 0) == 42
    clock.set_time("binance", None)
    assert clock.time_us("binance") is None


def test_make_clock_builds_the_configured_one():
    assert isinstance(make_clock("wall"), WallClock) and isinstance(make_clock("event"), EventClock)
    assert make_clock("event", max_jump_us=5 * S).max_jump_us == 5 * S
    with pytest.raises(ValueError, match="clock must be 'wall' or 'event', not 'auto'"):
        make_clock("auto")
    with pytest.raises(ValueError, match="max_jump_us must be positive and jump_confirm at least 1"):
        EventClock(max_jump_us=0)


def test_a_candle_engine_on_the_wall_clock_starts_now_and_closes_on_its_timer():
    now = [T0 + 1 * S]
    engine = CandleEngine("binance", TF, WallClock(now=lambda: now[0]), grace_us=250_000)
    assert engine.get_stats()["clock"] == "wall"
    # it starts at 1 s: the bucket [0, 15 s) closes at 15 s + the grace
    assert engine.next_deadline_us() == T0 + 15 * S + 250_000
    engine.on_trades(["BTCUSDT"], *_trade(T0 + 2 * S))
    assert list(engine.advance(T0 + 15 * S)) == []  # the trade moved nothing: the timer has not fired
    assert [c.timestamp_in for c in engine.advance(T0 + 15 * S + 250_000)] == [T0]
    assert engine.clock_us == T0 + 15 * S + 250_000


def test_a_candle_engine_on_the_event_clock_moves_it_and_the_gap_tracker_reads_how_far_ahead_counts():
    clock = EventClock(max_jump_us=60 * S)
    engine = CandleEngine("binance", TF, clock)
    assert engine.next_deadline_us() is None and engine.get_stats()["clock"] == "event"
    engine.on_trades(["BTCUSDT"], *_trade(T0 + 1 * S))
    assert clock.time_us("binance") == engine.clock_us == T0 + 1 * S
    assert clock.horizon_us("binance") == T0 + 61 * S
    gaps = GapProcessor(stale_after_ms=300_000, clock=clock)
    gaps.observe(decode_frame(trade_frame([(0, T0 + 1 * S, 100.0, 1.0, "buy")])))
    # 62 s is beyond the horizon (61 s): it does not move the exchange's time for the gaps
    gaps.observe(decode_frame(trade_frame([(0, T0 + 62 * S, 100.0, 1.0, "buy")], seq=1)))
    gaps.frames_lost()
    assert [(g.reason, g.start) for g in gaps.drain()] == [("frames_lost", T0 + 1 * S)]
    # 60 s is within it
    gaps.observe(decode_frame(trade_frame([(0, T0 + 60 * S, 100.0, 1.0, "buy")], seq=2)))
    assert [(g.reason, g.start, g.end) for g in gaps.drain()] == [("frames_lost", T0 + 1 * S, T0 + 60 * S)]
    gaps.frames_lost()
    assert [(g.reason, g.start) for g in gaps.drain()] == [("frames_lost", T0 + 60 * S)]


def _trade(ts: int) -> tuple[np.ndarray, ...]:
    """One buy of 1 at 100 at ``ts``, as ``on_trades``' columns (sym 0)."""
    return (
        np.zeros(1, dtype=np.uint16),
        np.array([ts], dtype=np.int64),
        np.array([100.0]),
        np.array([1.0]),
        np.array([1], dtype=np.uint8),
    )
