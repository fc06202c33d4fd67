"""The engine's event-clock path for ONE instrument, compiled: trades in, closed candles out, with no
Python between two trades or two boundaries.

``CandleEngine`` runs this instead of its array path when it holds one instrument, on the event clock,
with the late policy ``drop``, once its clock is anchored (``candle_engine.py``: the
module doc says what every rule below means). It works on the engine's own state (the ring of base
buckets, the open roll-ups, the last close, the counters), in place, so the array path can take over at
any trade and give the same candles: the two are one set of rules, and ``tests/test_batch_engine.py``
checks them against each other, bit for bit, on real recordings and on generated streams.

It stops, and hands back the index it stopped at, where a rule needs the array path:

- a trade more than ``max_jump_us`` ahead of the clock that the next ``jump_confirm`` trades of this call
  do not confirm in the simplest way (all as far ahead, none earlier than it): the array path holds,
  confirms or drops it;
- a clock move that would close more than ``max_walk`` base buckets (the hole is skipped there);
- no room left in ``out`` for the candles of the next boundary (the caller empties it and calls again).

Sums are accumulated trade by trade in arrival order and roll-ups child by child, as the engine does
(``trade_groups.py``, ``buckets.py``), so the floating-point results are the same to the last bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# state: int64 [clock_us, closed_through, observed_from]
CLOCK, CLOSED_THROUGH, OBSERVED_FROM = 0, 1, 2
# stats: int64 [trades, late_ticks, late_dropped, empty_candles, applied, gap_candles]
TRADES, LATE_TICKS, LATE_DROPPED, EMPTY_CANDLES, APPLIED, GAP_CANDLES = 0, 1, 2, 3, 4, 5
# out columns: int64 [tf, start, count, first_ts, last_ts, is_partial, has_gap] and float64 [open, high,
# low, close, volume, buy, sell, notional, previous_close]
O_TF, O_START, O_COUNT, O_FIRST, O_LAST, O_PARTIAL, O_GAP = 0, 1, 2, 3, 4, 5, 6
O_OPEN, O_HIGH, O_LOW, O_CLOSE, O_SUMS, O_PREVIOUS = 0, 1, 2, 3, 4, 8
INT_COLUMNS, FLOAT_COLUMNS = 7, 9
_I64_MAX = np.iinfo(np.int64).max


@njit(cache=True, inline="always")
def _merge(
    at, open_, high, low, close, count, first_ts, last_ts, c_open, c_high, c_low, c_close, c_count, c_first,
    c_last,
):  # fmt: skip
    """``Buckets.merge_prices`` for one row ``at`` and one group (count > 0)."""
    fresh = count[at] == 0
    if fresh or c_first < first_ts[at]:
        open_[at] = c_open
        first_ts[at] = c_first
    if fresh or c_last >= last_ts[at]:
        close[at] = c_close
        last_ts[at] = c_last
    if fresh:
        high[at] = c_high
        low[at] = c_low
    else:
        high[at] = max(high[at], c_high)
        low[at] = min(low[at], c_low)
    count[at] += c_count


@njit(cache=True, inline="always")
def _store(
    row, o, h, lw, c, cnt, first, last, s0, s1, s2, s3, b_open, b_high, b_low, b_close, b_count, b_first,
    b_last, b_sums,
):  # fmt: skip
    """The base bucket ``row`` held in locals (``run_one``) written back to the ring."""
    b_open[row], b_high[row], b_low[row], b_close[row] = o, h, lw, c
    b_count[row], b_first[row], b_last[row] = cnt, first, last
    b_sums[row, 0], b_sums[row, 1], b_sums[row, 2], b_sums[row, 3] = s0, s1, s2, s3


@njit(cache=True, inline="always")
def _emit(
    out_i, out_f, k, tf, start, end, observed_from, open_, high, low, close, count, first_ts, last_ts, sums,
    row, previous_close, stats, candles, gap_start, gap_end,
):  # fmt: skip
    """``CandleEngine._publish`` of one candle; returns the next free row of ``out``."""
    n = count[row]
    if n == 0 and np.isnan(previous_close):
        return k  # nothing to carry yet
    out_i[k, O_TF] = tf
    out_i[k, O_START] = start
    out_i[k, O_COUNT] = n
    out_i[k, O_FIRST] = first_ts[row]
    out_i[k, O_LAST] = last_ts[row]
    out_i[k, O_PARTIAL] = 1 if start < observed_from else 0
    gap = 0
    for g in range(len(gap_start)):  # CandleEngine._gap_mask
        if gap_start[g] < end and gap_end[g] > start:
            gap = 1
            break
    out_i[k, O_GAP] = gap
    stats[GAP_CANDLES] += gap
    out_f[k, O_OPEN] = open_[row]
    out_f[k, O_HIGH] = high[row]
    out_f[k, O_LOW] = low[row]
    out_f[k, O_CLOSE] = close[row]
    for s in range(4):
        out_f[k, O_SUMS + s] = sums[row, s]
    out_f[k, O_PREVIOUS] = previous_close
    candles[tf] += 1
    if n == 0:
        stats[EMPTY_CANDLES] += 1
    return k + 1


@njit(cache=True, inline="never")
def _take_bucket(ts, price, amount, side, i, lo, limit, clock, o, h, lw, c, first, last, cnt, s0, s1, s2, s3):
    """Trades ``i:`` while they fall in ``[lo, limit)``: the base bucket held in locals (``o`` ... ``s3``)
    takes each (``Buckets.merge_prices`` for one trade, and the sums, in arrival order), the clock
    following. The common case, in a function of its own (not inlined) so that its few values stay in
    registers; ``run_one`` has checked that none of these trades closes a bucket, jumps or is late.
    Returns the index it stopped at and the values."""
    n = len(ts)
    j = i
    while j < n:
        u = np.uint64(j)  # an unsigned index: no test for a negative one
        t = ts[u]
        if t < lo or t >= limit:
            break
        clock = max(clock, t)
        p = price[u]
        a = amount[u]
        if t < first:
            o = p
            first = t
        if t >= last:
            c = p
            last = t
        h = max(h, p)
        lw = min(lw, p)
        cnt += 1
        s0 += a
        # without a branch (a trade's side is as good as random): adding +0.0 leaves a sum as it is
        # (a sum that starts at +0.0 is never -0.0), so the bits are those of the engine's sums
        sd = side[u]
        s1 += a if sd == 1 else 0.0
        s2 += a if sd == 2 else 0.0
        s3 += p * a
        j += 1
    return j, clock, o, h, lw, c, first, last, cnt, s0, s1, s2, s3


@njit(cache=True, nogil=True)  # batch.py encodes the next piece's sides in a thread meanwhile
def run_one(
    ts, price, amount, side, begin,
    base_us, grace_us, max_jump_us, jump_confirm, max_walk, micros, parent, ring,
    state, last_close,
    b_open, b_high, b_low, b_close, b_count, b_first, b_last, b_sums,
    r_open, r_high, r_low, r_close, r_count, r_first, r_last, r_sums,
    stats, candles, gap_start, gap_end, out_i, out_f,
):  # fmt: skip
    """Trades ``begin:`` of one instrument (arrival order) through the event clock. ``b_*``: the ring of
    base buckets (``ring`` rows, row = bucket start / base % ring); ``r_*``: the open roll-up of each
    longer timeframe (row ``tf - 1``); ``gap_*``: the instrument's gaps (an open one ends at the largest
    int64). Returns (the index it stopped at, candles written to ``out``)."""
    n = len(ts)
    ntf = len(micros)
    clock = state[CLOCK]
    closed = state[CLOSED_THROUGH]
    observed_from = state[OBSERVED_FROM]
    capacity = out_i.shape[0]
    k = 0
    i = begin
    trades = late = 0
    # the base bucket of the last trade, [lo, hi), and its ring row ``cur``, held in locals while it
    # takes trades (``loaded``) and written back before anything else reads the ring
    lo = hi = 0
    cur = 0
    loaded = False
    o = h = lw = c = 0.0
    cnt = first = last = 0
    s0 = s1 = s2 = s3 = 0.0
    while i < n:
        t = ts[i]
        if t > clock + max_jump_us:  # far ahead: only a jump the next trades plainly confirm
            if i + jump_confirm >= n:
                break
            confirmed = True
            for j in range(i + 1, i + jump_confirm + 1):
                if ts[j] <= clock + max_jump_us or ts[j] < t:
                    confirmed = False
                    break
            if not confirmed:
                break
        if t > clock:
            # the clock closes the base buckets that end at or before t - grace; ``closed`` is a bucket
            # start, so there is one to close only from ``closed + base_us`` on (no division per trade)
            if t - grace_us >= closed + base_us:
                target = t - grace_us
                target -= target % base_us
                walk = (target - closed) // base_us
                if walk > max_walk or k + walk * ntf > capacity:
                    break
                if loaded:
                    _store(
                        cur, o, h, lw, c, cnt, first, last, s0, s1, s2, s3,
                        b_open, b_high, b_low, b_close, b_count, b_first, b_last, b_sums,
                    )  # fmt: skip
                    loaded = False
                    lo = hi = 0
                while closed < target:  # CandleEngine._close_base, bucket by bucket
                    start = closed
                    closed += base_us
                    row = (start // base_us) % ring
                    k = _emit(
                        out_i, out_f, k, 0, start, closed, observed_from, b_open, b_high, b_low, b_close,
                        b_count, b_first, b_last, b_sums, row, last_close[0], stats, candles, gap_start,
                        gap_end,
                    )  # fmt: skip
                    if b_count[row] > 0:
                        last_close[0] = b_close[row]
                        for c in range(1, ntf):
                            if parent[c] == 0:
                                _merge(
                                    c - 1, r_open, r_high, r_low, r_close, r_count, r_first, r_last,
                                    b_open[row], b_high[row], b_low[row], b_close[row], b_count[row],
                                    b_first[row], b_last[row],
                                )  # fmt: skip
                                for s in range(4):
                                    r_sums[c - 1, s] += b_sums[row, s]
                    b_count[row] = 0
                    for s in range(4):
                        b_sums[row, s] = 0.0
                    for tf in range(1, ntf):  # CandleEngine._close_rollup, each that ends here
                        if closed % micros[tf] == 0:
                            at = tf - 1
                            k = _emit(
                                out_i, out_f, k, tf, closed - micros[tf], closed, observed_from, r_open,
                                r_high, r_low, r_close, r_count, r_first, r_last, r_sums, at, last_close[0],
                                stats, candles, gap_start, gap_end,
                            )  # fmt: skip
                            if r_count[at] > 0:
                                for c in range(tf + 1, ntf):
                                    if parent[c] == tf:
                                        _merge(
                                            c - 1, r_open, r_high, r_low, r_close, r_count, r_first,
                                            r_last, r_open[at], r_high[at], r_low[at], r_close[at],
                                            r_count[at], r_first[at], r_last[at],
                                        )  # fmt: skip
                                        for s in range(4):
                                            r_sums[c - 1, s] += r_sums[at, s]
                            r_count[at] = 0
                            for s in range(4):
                                r_sums[at, s] = 0.0
            clock = t
        if t < lo or t >= hi:
            if loaded:
                _store(
                    cur, o, h, lw, c, cnt, first, last, s0, s1, s2, s3,
                    b_open, b_high, b_low, b_close, b_count, b_first, b_last, b_sums,
                )  # fmt: skip
            lo = t - t % base_us
            hi = lo + base_us
            cur = (lo // base_us) % ring
            o, h, lw, c = b_open[cur], b_high[cur], b_low[cur], b_close[cur]
            cnt, first, last = b_count[cur], b_first[cur], b_last[cur]
            s0, s1, s2, s3 = b_sums[cur, 0], b_sums[cur, 1], b_sums[cur, 2], b_sums[cur, 3]
            loaded = True
        if lo < closed:  # late: its bucket is closed (policy drop)
            trades += 1
            late += 1
            i += 1
            continue
        if cnt == 0:  # a fresh bucket: its open, high, low and first time are this trade's
            o = h = lw = c = price[i]
            first = last = t
        # this trade, then those after it in the same bucket that close nothing and jump nowhere
        limit = min(hi, closed + base_us + grace_us)
        if max_jump_us < _I64_MAX - clock:
            limit = min(limit, clock + max_jump_us + 1)
        limit = max(limit, t + 1)  # this trade: in its bucket, not late, at or before the clock
        j, clock, o, h, lw, c, first, last, cnt, s0, s1, s2, s3 = _take_bucket(
            ts, price, amount, side, i, lo, limit, clock, o, h, lw, c, first, last, cnt, s0, s1, s2, s3
        )
        trades += j - i
        i = j
    if loaded:
        _store(
            cur, o, h, lw, c, cnt, first, last, s0, s1, s2, s3,
            b_open, b_high, b_low, b_close, b_count, b_first, b_last, b_sums,
        )  # fmt: skip
    stats[TRADES] += trades
    stats[LATE_TICKS] += late
    stats[LATE_DROPPED] += late
    stats[APPLIED] += trades - late
    state[CLOCK] = clock
    state[CLOSED_THROUGH] = closed
    return i, k


def inputs(ts, price, amount, side) -> tuple[np.ndarray, ...]:
    """The trade columns as ``run_one`` takes them: contiguous, of its dtypes, and read-only views (wire
    frames are read-only, DataFrame columns may not be), so that one compiled version serves them all."""
    out = []
    for column, dtype in ((ts, np.int64), (price, np.float64), (amount, np.float64), (side, np.uint8)):
        view = np.ascontiguousarray(column, dtype=dtype).view()
        view.flags.writeable = False
        out.append(view)
    return tuple(out)


def compile_kernel() -> None:
    """Load ``run_one`` from numba's cache (or compile it: seconds) now, not at the first trade: the
    service calls this at start (``hot_path.py``)."""
    from .live_candle_processor import LiveCandleProcessor

    processor = LiveCandleProcessor("X-Y")
    ts = np.array([1, 15_000_001, 15_000_002], dtype=np.int64)  # the second closes a candle: anchored
    one = np.ones(3)
    side = np.ones(3, dtype=np.uint8)
    processor.add_trades(ts[:2], one[:2], one[:2], side[:2])
    if not processor.engine._compiled_ready():
        raise RuntimeError("compile_kernel: the engine did not reach its compiled path")
    processor.add_trades(ts[2:], one[2:], one[2:], side[2:])  # the compiled path
