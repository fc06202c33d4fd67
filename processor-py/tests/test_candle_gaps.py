"""``has_gap`` of every candle, published or revised, against its definition: some gap reported so far on
that instrument overlaps the candle (``candle_gaps.py``); and the engine keeps only the gaps that can still
say something new, however long it runs."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market_data_tick_handler.streaming_service.candle_processor import CandleEngine
from market_data_tick_handler.streaming_service.candle_processor.timeframes import parse_timeframes

S = 1_000_000
T0 = 1_723_161_600 * S  # 2024-08-09 00:00 UTC
SYMBOLS = ["AAA", "BBB", "CCC"]
TIMEFRAMES = ("15s", "1m", "5m")
MICROS = {tf.name: tf.micros for tf in parse_timeframes(TIMEFRAMES)}


def _overlaps(known: list, symbol: str, start: int, end: int) -> bool:
    """The definition: a gap [g0, g1) (g1 None: open) overlaps the candle [start, end)."""
    return any(s == symbol and g0 < end and (g1 is None or g1 > start) for s, g0, g1 in known)


def _report(known: list, symbol: str, start: int, end: int | None) -> None:
    """``CandleEngine.set_gap``'s contract: an end ends the open gap of that start, if any."""
    for gap in known:
        if gap[0] == symbol and gap[1] == start and gap[2] is None:
            gap[2] = None if end is None else max(end, start)
            return
    known.append([symbol, start, end])


@st.composite
def _steps(draw):
    """Frames of trades (some late, some on a boundary) over three symbols, with gap reports between
    them: opened, ended a few frames on, ended at once, zero-length, reaching back before published
    candles or ahead past the clock."""
    steps, t, open_ = [], T0, []
    for _ in range(draw(st.integers(5, 40))):
        rows = []
        for _ in range(draw(st.integers(0, 6))):
            t += draw(st.sampled_from([0, 1, S, 7 * S, 15 * S - t % (15 * S), 40 * S, 200 * S]))
            back = draw(st.sampled_from([0, 0, 0, 3 * S, 20 * S, 90 * S]))  # late by this much
            rows.append((draw(st.sampled_from(range(3))), t - back, draw(st.sampled_from([1.0, 2.5, 0.1]))))
        steps.append(("trades", rows))
        for _ in range(draw(st.integers(0, 2))):
            symbol = draw(st.sampled_from(SYMBOLS))
            start = t - draw(st.sampled_from([0, 1, 14 * S, 60 * S, 400 * S]))
            kind = draw(st.sampled_from(["open", "ended", "zero", "end_one"]))
            if kind == "end_one" and open_:
                symbol, start = open_.pop(draw(st.integers(0, len(open_) - 1)))
                steps.append(("gap", symbol, start, t + draw(st.sampled_from([-30 * S, 0, 1, 20 * S]))))
            elif kind == "open":
                open_.append((symbol, start))
                steps.append(("gap", symbol, start, None))
            elif kind == "zero":
                steps.append(("gap", symbol, start, start))
            else:
                length = draw(st.sampled_from([1, 15 * S, 100 * S, 900 * S]))
                steps.append(("gap", symbol, start, start + length))
    return steps


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_steps(), st.sampled_from(["revise", "drop"]), st.sampled_from([0, 3 * S]))
def test_every_candle_has_gap_exactly_when_a_reported_gap_overlaps_it(steps, policy, grace):
    engine = CandleEngine("x", TIMEFRAMES, late_policy=policy, grace_us=grace, revise_window=8)
    known: list[list] = []  # [symbol, start, end or None], every gap reported so far

    def check(candles) -> None:
        for c in candles:
            end = c.timestamp_in + MICROS[c.timeframe]
            assert c.has_gap == _overlaps(known, c.exchange_symbol, c.timestamp_in, end), c

    for step in steps:
        if step[0] == "gap":
            _, symbol, start, end = step
            _report(known, symbol, start, end)
            engine.set_gap([symbol], start, end)
            continue
        rows = step[1]
        if rows:
            sym = np.array([r[0] for r in rows])
            ts = np.array([r[1] for r in rows], dtype=np.int64)
            price = np.array([r[2] for r in rows])
            check(engine.on_trades(SYMBOLS, sym, ts, price, np.ones(len(rows)), np.ones(len(rows), np.uint8)))
    check(engine.finish())


def test_a_day_of_instruments_going_quiet_and_coming_back_keeps_a_few_gaps_not_a_day_of_them():
    """1,000 instruments, each silent for 20 s and back every minute, for six hours of exchange time:
    360,000 gaps; the engine keeps those still open or ending in an open bucket, and the candles
    still say which minutes had one."""
    n = 1000
    symbols = [f"S{i:04d}" for i in range(n)]
    engine = CandleEngine("x", ("15s", "1m", "5m", "15m", "4h", "24h"))
    sym = np.arange(n)
    ones = np.ones(n)
    most = 0
    flagged = {"1m": 0, "24h": 0}
    for minute in range(360):
        t = T0 + minute * 60 * S
        engine.set_gap(symbols, t + 10 * S, None)
        most = max(most, len(engine._gaps.live))
        engine.set_gap(symbols, t + 10 * S, t + 30 * S)
        for c in engine.on_trades(symbols, sym, np.full(n, t + 45 * S), ones, ones, np.ones(n, np.uint8)):
            if c.timeframe in flagged:
                flagged[c.timeframe] += c.has_gap
        most = max(most, len(engine._gaps.live))
    for c in engine.finish():
        if c.timeframe in flagged:
            flagged[c.timeframe] += c.has_gap
    assert most <= 2 * n  # one open and one just ended per instrument, at most
    assert flagged == {"1m": 360 * n, "24h": n}  # every minute had a gap; the one (partial) day too
