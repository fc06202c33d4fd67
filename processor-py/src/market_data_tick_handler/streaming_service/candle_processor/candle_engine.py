"""Candles of every instrument of one exchange, on every configured timeframe, and the clock that
closes them.

State is kept as arrays (see ``buckets.py``): each instrument has a *slot*; base buckets live in a ring
of ``RING`` rows per slot, longer timeframes in one roll-up row per slot. A wire frame is merged with a
few whole-array operations, and a boundary closes the bucket of every instrument at once, so the cost
of a frame or of a boundary hardly depends on how many trades or instruments it holds.

Roll-ups form a tree: a closed candle is merged into the open candles of the timeframes it is the
*parent* of (the longest shorter timeframe that divides them: 15s -> 1m -> 5m -> 15m -> 4h -> 24h),
so a boundary costs one merge per timeframe that closes, not one per timeframe.

A candle is closed by the clock (an object, ``clock.py``), never by the next trade of its own instrument:

- ``WallClock``: live. A base bucket ``[s, e)`` closes when the wall clock reaches ``e + grace``: the
  clock's timer (``next_deadline_us``) says when, and ``advance`` closes it.
- ``EventClock``: replays and historical batches. The clock is the highest exchange timestamp seen on the
  exchange (the engine sets it on the clock, where the gap tracker reads it); ``[s, e)`` closes when it
  reaches ``e + grace``. Inside a wire frame the trades are cut at that point, so a trade that moves the
  clock past a boundary closes the bucket before it is applied.

Every instrument that has traded gets one candle per bucket and timeframe from then on (empty ones carry
the previous close). A trade whose bucket is already closed is *late*: counted, then dropped or used to
revise the candle (``late_policy``). A trade more than ``RING - 1`` base buckets ahead of the clock
(possible only on the wall clock, when the local clock is badly behind the exchange's) is counted and
dropped with an error naming it.

Clock jumps (event clock; ``max_jump_us`` and ``jump_confirm`` are the clock's). One trade stamped a day
or a century ahead must neither move the clock there (every trade after it would be late) nor make the
engine close every bucket in between. So:

- a trade more than ``max_jump_us`` ahead of the clock is *held*, not applied. The clock jumps only when
  it is confirmed: the held trade and at least ``jump_confirm`` further trades (any symbol, in arrival
  order, across frames) are all that far ahead. The clock then moves to the earliest of those first
  ``jump_confirm + 1`` trades, and they are applied from there (a stray among them is held again and
  dropped as below). A trade back within ``max_jump_us`` of the clock before that refutes the held
  trades: they are dropped and counted (``jump_dropped``). Held trades still unconfirmed at the end
  of the stream are dropped the same way. A legitimate hole (a recording gap, a halted market) costs
  nothing but the wait for ``jump_confirm`` trades: they are applied, not dropped.
- the first trade anchors the clock only provisionally, until ``jump_confirm + 1`` trades were applied
  at it or a candle closed. Until then trades far *behind* the anchor count as far too, and a jump
  confirmed back before the anchor, or forward by more than ``max_walk`` buckets (below), means the
  anchor was the stray: its trades are dropped (``jump_dropped``) and the clock anchors at the jump,
  so a first trade dated 1970 (or 2099) publishes nothing. (A shorter jump forward is an ordinary
  one: a sparse market's first trades are not strays.)
- whatever the clock does, one move closes at most ``max_walk`` base buckets (a day, or the longest
  timeframe if longer: 5,760 of 15 s): every candle of a legitimate hole up to that long is published,
  empty ones included; beyond it the remaining empty buckets are skipped (``buckets_skipped``, a
  WARNING), every open candle having been closed by then. A walk of years is impossible by
  construction.

``max_jump_us`` defaults to 60 s: four 15 s buckets, what ``revise_window`` (4) can still revise, so a
bad timestamp that stays under it costs at most the trades of one minute, which ``late_policy:
revise`` can still take; and a replay of a liquid market never goes a minute without a trade except
in a hole, where the confirmation costs only ``jump_confirm`` trades of latency.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..clock import Clock, EventClock, make_clock, past_reach
from ..instrument_service import InstrumentTable
from .buckets import Buckets
from .candle_batch import CandleBatch, CandleColumns
from .candle_gaps import CandleGaps
from .candle_table import CandleTable, kernel_columns
from .timeframes import parse_timeframes
from .trade_groups import TradeGroups, group_trades

if TYPE_CHECKING:
    from .live_candle_processor import LiveCandleProcessor

log = logging.getLogger(__name__)

LatePolicy = Literal["drop", "revise"]
DEFAULT_TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")
RING = 8  # open base buckets per instrument: the current one, the next (grace) and room for clock skew
MAX_WALK_US = 86_400_000_000  # one clock move publishes the candles of a hole up to a day long
_I64_MAX = np.iinfo(np.int64).max
SLOT_STATS = (
    "trades",  # every valid trade, late ones included
    "late_ticks",
    "late_dropped",
    "late_too_old",  # late for the revise policy, but older than its window
    "revisions",
    "empty_candles",
    "gap_candles",
    "gaps",
    "ahead_dropped",
    "jump_dropped",  # event clock: far ahead and never confirmed, or a stray first anchor (module doc)
)
#: what became of the trades handed to ``on_trades`` (``ledger``): applied (on time, or revising a
#: candle), or dropped as late, late_too_old (revise policy: no candle left to revise), ahead (wall
#: clock, beyond the ring) or jump; ``held`` trades wait for a jump's confirmation
LEDGER = ("applied", "late", "late_too_old", "ahead", "jump")
_ARRAY_WINDOW = 256  # trades the array path takes at a time where the compiled one stopped (``_run``)
_KERNEL_ROWS = 4096  # candles the compiled path writes before handing them over
_ROW = ("open", "high", "low", "close", "count", "first_ts", "last_ts")  # a roll-up's accumulators, but sums


@dataclass(frozen=True, slots=True)
class _Published:
    """A published bucket kept for revisions (late policy ``revise``)."""

    buckets: Buckets  # one row per slot in ``slots``
    slots: np.ndarray  # sorted
    revision: np.ndarray
    is_partial: bool
    has_gap: np.ndarray  # what folded gaps say of it (``candle_gaps.py``); the live ones are asked again


def candle_values(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    count: np.ndarray,
    first_ts: np.ndarray,
    last_ts: np.ndarray,
    sums: np.ndarray,
    previous_close: np.ndarray,
) -> dict[str, np.ndarray]:
    """The candle fields (but ``has_gap``, ``is_partial`` and ``revision``) of buckets given as their
    accumulators (``buckets.py``): an empty one carries the previous close. Every candle the engine emits
    is made here, by the array path and the compiled one (``batch_kernel.py``)."""
    empty = count == 0
    volume = sums[:, 0]
    return {
        "open": np.where(empty, previous_close, open_),
        "high": np.where(empty, previous_close, high),
        "low": np.where(empty, previous_close, low),
        "close": np.where(empty, previous_close, close),
        "volume": volume,
        "buy_volume": sums[:, 1],
        "sell_volume": sums[:, 2],
        "vwap": np.divide(sums[:, 3], volume, out=np.full(len(count), np.nan), where=volume > 0),
        "trade_count": count,
        "first_trade_time": np.where(empty, 0, first_ts),
        "last_trade_time": np.where(empty, 0, last_ts),
        "is_empty": empty,
    }


class CandleEngine:
    def __init__(
        self,
        exchange: str,
        timeframes: Iterable[str] = DEFAULT_TIMEFRAMES,
        clock: Clock | str | None = None,
        grace_us: int = 0,
        late_policy: LatePolicy = "drop",
        revise_window: int = 4,
        instruments: InstrumentTable | None = None,
        symbol_of: Callable[[str, str], str] | None = None,
    ) -> None:
        """``clock``: the time the candles close on (module doc), or its name (``make_clock``); default an
        ``EventClock`` of its own. ``instruments``: the exchange's instrument table, shared with the gap
        tracker and the feature context of the exchange; default a table of its own, whose symbols are
        ``symbol_of(exchange, exchange_symbol)``."""
        if late_policy not in ("drop", "revise"):
            raise ValueError(f"late_policy must be 'drop' or 'revise', not {late_policy!r}")
        self.exchange = exchange
        self.timeframes = parse_timeframes(timeframes)
        self.timeframe_names = tuple(tf.name for tf in self.timeframes)
        self.base_us = self.timeframes[0].micros
        if grace_us < 0 or grace_us >= self.base_us:
            raise ValueError(f"grace must be at least 0 and below the smallest timeframe ({self.base_us} us)")
        self.clock = make_clock(clock) if isinstance(clock, str) else clock or EventClock()
        self.grace_us = grace_us
        self.max_jump_us = self.clock.max_jump_us
        self.jump_confirm = self.clock.jump_confirm
        #: base buckets one clock move closes at most (module doc)
        self.max_walk = max(max(self.timeframes[-1].micros, MAX_WALK_US) // self.base_us, RING)
        self.late_policy = late_policy
        self.revise_window = revise_window
        self.instruments = InstrumentTable(exchange, symbol_of) if instruments is None else instruments
        if self.instruments.exchange != exchange:
            raise ValueError(f"{exchange}'s engine given the instrument table of {self.instruments.exchange}")
        self._capacity = 0
        self._base = Buckets()  # row = slot * RING + (bucket start / base) % RING
        self._rollups = [Buckets() for _ in self.timeframes[1:]]  # row = slot
        self._children: list[list[int]] = [[] for _ in self.timeframes]  # roll-up tree, by tf index
        self._descendants: list[set[int]] = [set() for _ in self.timeframes]
        for i in range(len(self.timeframes) - 1, 0, -1):
            micros = self.timeframes[i].micros
            parent = max(j for j in range(i) if micros % self.timeframes[j].micros == 0)
            self._children[parent].append(i)
            for j in range(i):
                if j == parent or parent in self._descendants[j]:
                    self._descendants[j] |= {i, *self._descendants[i]}
        self._last_close = np.empty(0)  # NaN until the instrument's first base candle with trades
        self._stats = {name: np.zeros(0, dtype=np.int64) for name in SLOT_STATS}
        self._candles = np.zeros((0, len(self.timeframes)), dtype=np.int64)
        self._gaps = CandleGaps()
        self._recent: list[OrderedDict[int, _Published]] = [OrderedDict() for _ in self.timeframes]
        self._processors: dict[str, LiveCandleProcessor] = {}
        #: whether an engine of one instrument on the event clock runs its compiled path
        #: (``batch_kernel.py``); False: the array path only (tests compare the two)
        self.compiled = True
        self._kernel_out: tuple[np.ndarray, np.ndarray] | None = None  # the compiled path's output rows
        self._parent = self._micros = np.empty(0, dtype=np.int64)
        #: exchange symbol -> ticks per wire type (all data types), kept by the frame router that owns it
        self.tick_counts: Mapping[str, Mapping[str, int]] = {}
        self.closed_through: int | None = None  # every base bucket ending at or before this is closed
        self.observed_from: int | None = None  # buckets starting earlier are partial
        self.observed_until: int | None = None  # set at the end: buckets ending later are partial
        self.ledger: Counter[str] = Counter({k: 0 for k in LEDGER})
        self.buckets_skipped = 0  # empty base buckets of holes longer than max_walk, not published
        self._held: tuple[np.ndarray, ...] | None = None  # (slot, ts, price, amount, side) awaiting a jump
        self._anchor: int | None = None  # event clock: where it was anchored ...
        self._provisional = False  # ... and whether that can still turn out to be a stray
        self._anchor_trades = 0
        self.instruments.on_grow(self._grow)  # the arrays by slot: as large as the table's capacity
        start = self.clock.start_us()
        if start is not None:  # the wall clock: from now
            self.observed_from = start
            self.closed_through = self._boundary(start - grace_us)

    def _boundary(self, t: int) -> int:
        return t - t % self.base_us

    def _batch(self) -> CandleBatch:
        return CandleBatch(self.exchange, self.symbols, self.exchange_symbols)

    # -- instruments ---------------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        """The instruments' symbols (e.g. BTC-USDT) by slot: the instrument table's."""
        return self.instruments.symbols

    @property
    def exchange_symbols(self) -> list[str]:
        return self.instruments.exchange_symbols

    def slot(self, exchange_symbol: str) -> int:
        return self.instruments.slot(exchange_symbol)

    def _grow(self, capacity: int) -> None:
        """The instrument table outgrew the arrays kept by slot: they grow to ``capacity``."""
        extra = capacity - self._capacity
        self._base.grow(capacity * RING)
        for acc in self._rollups:
            acc.grow(capacity)
        self._last_close = np.concatenate([self._last_close, np.full(extra, np.nan)])
        for name, values in self._stats.items():
            self._stats[name] = np.concatenate([values, np.zeros(extra, dtype=np.int64)])
        self._candles = np.vstack([self._candles, np.zeros((extra, len(self.timeframes)), dtype=np.int64)])
        self._gaps.grow(capacity)
        self._capacity = capacity

    def processor(self, exchange_symbol: str) -> LiveCandleProcessor:
        """The candles of one instrument (a view on this engine)."""
        from .live_candle_processor import LiveCandleProcessor

        p = self._processors.get(exchange_symbol)
        if p is None:
            p = self._processors[exchange_symbol] = LiveCandleProcessor.of(self, exchange_symbol)
        return p

    @property
    def processors(self) -> dict[str, LiveCandleProcessor]:
        return {s: self.processor(s) for s in self.exchange_symbols}

    # -- input ---------------------------------------------------------------------------------
    def on_trades(
        self,
        symbols: Sequence[str],
        sym: np.ndarray,
        ts: np.ndarray,
        price: np.ndarray,
        amount: np.ndarray,
        side: np.ndarray,
    ) -> CandleBatch:
        """Apply a batch of trades (``sym`` indexes ``symbols``, exchange symbols; "" for rows that are
        not this engine's, which must not be in the batch) and return every candle it closed or revised,
        in order. Rows must already be valid (see ``data_types/trades.py``)."""
        if len(ts) == 0:
            return self._batch()
        return self.on_slots(self.instruments.slots(symbols)[sym], ts, price, amount, side)

    def on_slots(
        self, slot: np.ndarray, ts: np.ndarray, price: np.ndarray, amount: np.ndarray, side: np.ndarray
    ) -> CandleBatch:
        """``on_trades`` with each row's instrument given as its slot in the instrument table."""
        out = self._batch()
        self._run(slot, ts, price, amount, side, out, _parts_of(self, out))
        return out

    def run_table(
        self, ts: np.ndarray, price: np.ndarray, amount: np.ndarray, side: np.ndarray,
        table: CandleTable | None = None,
    ) -> CandleTable:  # fmt: skip
        """The trades of the engine's one instrument (historical batches: ``batch.py``): the candles they
        closed, as one table rather than a part per candle (appended to ``table`` if given: the trades
        that follow those of an earlier call)."""
        if len(self.symbols) != 1:
            raise ValueError(f"run_table is for an engine of one instrument, not {len(self.symbols)}")
        if table is None:
            table = CandleTable(self.exchange, self.symbols[0], self.exchange_symbols[0])
        self._run(None, ts, price, amount, side, self._batch(), table.add_run, table)
        return table

    def _run(self, slot, ts, price, amount, side, out: CandleBatch, emit, table=None) -> None:
        """The compiled path (``batch_kernel.py``) wherever it applies, the array path elsewhere: the
        array path takes a window at a time in an engine the compiled path can serve, so that the compiled
        one resumes after a jump; the whole batch otherwise (as before). ``slot`` None: every row is slot 0
        (made only for the rows the array path takes)."""
        n = len(ts)
        if n == 0:
            return
        if slot is None and not self._compiled_capable():
            slot = np.zeros(n, dtype=np.int64)
        if not self.clock.trades_move_time:  # wall clock: the timer closes the buckets (``advance``)
            self._apply(slot, ts, price, amount, side, out)
            return
        capable = self._compiled_capable()
        i = 0
        while i < n:
            if capable and self._compiled_ready():
                i = self._compiled(ts, price, amount, side, i, emit)
                if i >= n:
                    break
            stop = min(n, i + _ARRAY_WINDOW) if capable else n
            before = len(out.parts)
            rows = np.zeros(stop - i, dtype=np.int64) if slot is None else slot[i:stop]
            self._on_slots_array(rows, ts[i:stop], price[i:stop], amount[i:stop], side[i:stop], out)
            if table is not None:
                table.add_parts(out.parts[before:])
                del out.parts[before:]
            i = stop

    def _compiled_capable(self) -> bool:
        return self.compiled and self.late_policy == "drop" and len(self.symbols) == 1

    def _compiled_ready(self) -> bool:
        return self._held is None and not self._provisional and self.closed_through is not None

    def _compiled(self, ts, price, amount, side, begin: int, emit) -> int:
        """Trades ``begin:`` through the compiled path until it stops (module doc of ``batch_kernel``);
        returns where it stopped. The engine's state of slot 0 goes in and comes back."""
        from . import batch_kernel as kernel

        if self._kernel_out is None:
            self._kernel_out = (
                np.empty((_KERNEL_ROWS, kernel.INT_COLUMNS), dtype=np.int64),
                np.empty((_KERNEL_ROWS, kernel.FLOAT_COLUMNS)),
            )
            self._parent = np.array([-1, *(self._parent_of(i) for i in range(1, len(self.timeframes)))])
            self._micros = np.array([tf.micros for tf in self.timeframes], dtype=np.int64)
        out_i, out_f = self._kernel_out
        ts, price, amount, side = kernel.inputs(ts, price, amount, side)
        state = np.array([self.clock_us, self.closed_through, self.observed_from], dtype=np.int64)
        b = self._base
        rolls = self._rollups
        r = [
            np.array([getattr(acc, name)[0] for acc in rolls], dtype=getattr(b, name).dtype) for name in _ROW
        ]
        r_sums = np.array([acc.sums[0] for acc in rolls]).reshape(len(rolls), 4)
        last_close = self._last_close[:1].copy()
        stats = np.zeros(6, dtype=np.int64)
        candles = np.zeros(len(self.timeframes), dtype=np.int64)
        gap_start, gap_end = self._gaps.intervals(0)
        i = begin
        while True:
            stop, k = kernel.run_one(
                ts, price, amount, side, i, self.base_us, self.grace_us, self.max_jump_us, self.jump_confirm,
                self.max_walk, self._micros, self._parent, RING, state, last_close,
                b.open, b.high, b.low, b.close, b.count, b.first_ts, b.last_ts, b.sums,
                *r, r_sums, stats, candles, gap_start, gap_end, out_i, out_f,
            )  # fmt: skip
            if k:
                emit(self.timeframe_names, out_i[:k], out_f[:k])
            if stop >= len(ts) or (stop == i and k == 0):
                break
            i = stop
        self.clock_us, self.closed_through = int(state[kernel.CLOCK]), int(state[kernel.CLOSED_THROUGH])
        for j, acc in enumerate(rolls):
            for name, values in zip(_ROW, r, strict=True):
                getattr(acc, name)[0] = values[j]
            acc.sums[0] = r_sums[j]
        self._last_close[0] = last_close[0]
        st = self._stats
        st["trades"][0] += stats[kernel.TRADES]
        st["late_ticks"][0] += stats[kernel.LATE_TICKS]
        st["late_dropped"][0] += stats[kernel.LATE_DROPPED]
        st["empty_candles"][0] += stats[kernel.EMPTY_CANDLES]
        st["gap_candles"][0] += stats[kernel.GAP_CANDLES]
        self._fold_gaps()
        self._candles[0] += candles
        self.ledger["applied"] += int(stats[kernel.APPLIED])
        self.ledger["late"] += int(stats[kernel.LATE_DROPPED])
        return stop

    def _parent_of(self, tf_index: int) -> int:
        return next(p for p, children in enumerate(self._children) if tf_index in children)

    def _on_slots_array(
        self, slot: np.ndarray, ts: np.ndarray, price: np.ndarray, amount: np.ndarray, side: np.ndarray,
        out: CandleBatch,
    ) -> None:  # fmt: skip
        """The array path of the event clock: the jump rule, then whole-array merges between boundaries."""
        cols = (slot, ts, price, amount, side)
        if self._held is not None:
            cols = tuple(np.concatenate([h, c]) for h, c in zip(self._held, cols, strict=True))
            self._held = None
        drop, hold_from = self._screen(cols[1])
        if hold_from < len(cols[1]):
            self._held = tuple(c[hold_from:] for c in cols)
            cols = tuple(c[:hold_from] for c in cols)
        if drop is not None:
            drop = drop[:hold_from]
            self._drop_jumped(cols[0][drop], cols[1][drop])
            cols = tuple(c[~drop] for c in cols)
        slot, ts, price, amount, side = cols
        n = len(ts)
        if n == 0:
            return
        if self.clock_us is None:
            assert self._anchor is not None
            self.clock_us = self.observed_from = self._anchor
            self.closed_through = self._boundary(self.clock_us)
        running = np.maximum.accumulate(ts)
        np.maximum(running, self.clock_us, out=running)
        i = 0
        while i < n:
            deadline = self.closed_through + self.base_us + self.grace_us  # type: ignore[operator]
            j = int(np.searchsorted(running, deadline, side="left"))
            if j > i:
                self._apply(slot[i:j], ts[i:j], price[i:j], amount[i:j], side[i:j], out)
            if j >= n:
                break
            self.clock_us = int(running[j])
            self._close_until(self._boundary(self.clock_us - self.grace_us), out)
            self._provisional = False  # a candle closed: the anchor stands
            i = j
        self.clock_us = int(running[-1])

    def _screen(self, ts: np.ndarray) -> tuple[np.ndarray | None, int]:
        """The event clock's jump rule (module doc) over a batch in arrival order: returns the mask of
        rows dropped (None: none) and the index from which the rows are held (``len(ts)``: none).
        Whole-array operations between jumps; re-anchoring undoes the stray anchor's trades."""
        n = len(ts)
        jump, confirm = self.max_jump_us, self.jump_confirm
        drop: np.ndarray | None = None
        c = self.clock_us
        if c is not None and not self._provisional and int(ts.max()) <= c + jump:
            return None, n  # nothing far ahead (the common case)
        if c is None:
            c = self._anchor = int(ts[0])
            self._provisional, self._anchor_trades = True, 0
        epoch = 0  # first row of this batch applied at the current anchor
        i = 0
        while i < n:
            seg = ts[i:]
            off, run = past_reach(seg, c, jump)
            if self._provisional:
                off |= seg < self._anchor - jump  # type: ignore[operator]
            k = int(np.argmax(off)) if off.any() else len(seg)
            if k:
                c = max(c, int(run[k - 1]))
                if self._provisional:
                    self._anchor_trades += k
                    self._provisional = self._anchor_trades <= confirm
            if k == len(seg):
                break
            first = i + k
            rest = ts[first:]
            away = rest > min(c + jump, _I64_MAX)
            if self._provisional:
                away |= rest < self._anchor - jump  # type: ignore[operator]
            r = len(rest) if away.all() else int(np.argmin(away))
            if r > confirm:  # the far trade and at least `confirm` further ones: the clock moves
                target = int(rest[: confirm + 1].min())
                if self._provisional and (
                    target < self._anchor or target - c > self.max_walk * self.base_us  # type: ignore[operator]
                ):  # the anchor was the stray
                    if drop is None:
                        drop = np.zeros(n, dtype=bool)
                    drop[epoch:first] = True
                    self._undo_anchor(target)
                    epoch = first
                c = target
                i = first
                continue
            if first + r == n:  # far ahead up to the end of the batch: wait for the next trades
                return drop, first
            if drop is None:
                drop = np.zeros(n, dtype=bool)
            drop[first : first + r] = True  # refuted by the trade after them
            i = first + r
        return drop, n

    def _undo_anchor(self, anchor: int) -> None:
        """A provisional anchor turned out to be a stray: its trades (all still in the ring: no candle
        has closed) are dropped as ``jump_dropped``; the clock will anchor at ``anchor``."""
        n = len(self.symbols)
        if self.clock_us is not None and n:
            counts = self._base.count[: n * RING].reshape(n, RING).sum(axis=1)
            total = int(counts.sum())
            if total:
                self._stats["jump_dropped"][:n] += counts
                self.ledger["applied"] -= total
                self.ledger["jump"] += total
                log.error(
                    "%s: %d trade(s) at exchange time %d us anchored the clock, but the trades after them"
                    " are all more than %d us away (from %d us): dropped as a stray anchor",
                    self.exchange,
                    total,
                    self._anchor,
                    self.max_jump_us,
                    anchor,
                )
            self._base.reset(slice(0, n * RING))
            for acc in self._rollups:
                acc.reset(slice(0, n))
        self.clock_us = self.closed_through = self.observed_from = None
        self._anchor, self._provisional, self._anchor_trades = anchor, True, 0

    def _drop_jumped(self, slot: np.ndarray, ts: np.ndarray) -> None:
        """Trades far ahead of the clock that were never confirmed (module doc): counted and dropped."""
        if not len(slot):
            return
        np.add.at(self._stats["jump_dropped"], slot, 1)
        np.add.at(self._stats["trades"], slot, 1)
        self.ledger["jump"] += len(slot)
        log.error(
            "%s:%s: %d trade(s) from exchange time %d us more than %d us away from the exchange clock"
            " (%s us) and not confirmed by the trades after them: dropped (jump_dropped)",
            self.exchange,
            self.exchange_symbols[int(slot[0])],
            len(slot),
            int(ts[0]),
            self.max_jump_us,
            self.clock_us,
        )

    def _apply(self, slot, ts, price, amount, side, out: CandleBatch) -> None:
        g = group_trades(slot, ts, price, amount, side, self.base_us)
        np.add.at(self._stats["trades"], g.sym, g.count)
        closed = self.closed_through
        late = g.bucket_start < closed
        ahead = g.bucket_start >= closed + RING * self.base_us
        odd = late | ahead
        keep = np.flatnonzero(~odd) if odd.any() else slice(None)
        rows = (g.sym * RING + (g.bucket_start // self.base_us) % RING)[keep]
        seeds = np.zeros((len(g), 4))
        seeds[keep] = self._base.sums[rows]
        sums = g.seeded_sums(seeds)  # late groups: their own sums, from 0
        self.ledger["applied"] += int(g.count[keep].sum()) if odd.any() else len(ts)
        self._base.merge_prices(
            rows, g.open[keep], g.high[keep], g.low[keep], g.close[keep], g.count[keep], g.first_ts[keep],
            g.last_ts[keep],
        )  # fmt: skip
        self._base.sums[rows] = sums[keep]
        if odd.any():
            for k in np.flatnonzero(late).tolist():
                self._late(g, k, sums[k], out)
            for k in np.flatnonzero(ahead).tolist():
                self._ahead(g, k)

    def _ahead(self, g: TradeGroups, k: int) -> None:
        slot, count = int(g.sym[k]), int(g.count[k])
        self._stats["ahead_dropped"][slot] += count
        self.ledger["ahead"] += count
        log.error(
            "%s:%s: %d trade(s) at exchange time %d us are more than %d buckets ahead of the clock (%s us):"
            " dropped; is the local clock behind?",
            self.exchange,
            self.exchange_symbols[slot],
            count,
            int(g.first_ts[k]),
            RING - 1,
            self.closed_through,
        )

    def _late(self, g: TradeGroups, k: int, sums: np.ndarray, out: CandleBatch) -> None:
        """Trades of an already closed base bucket: counted, then dropped or used to revise every candle
        that contains them. The shortest candle still open simply takes them (its longer ones get them
        when it closes)."""
        slot, count, bucket = int(g.sym[k]), int(g.count[k]), int(g.bucket_start[k])
        stats = self._stats
        stats["late_ticks"][slot] += count
        if self.late_policy == "drop":
            stats["late_dropped"][slot] += count
            self.ledger["late"] += count
            return
        took = False
        one = slice(k, k + 1)
        prices = (
            g.open[one],
            g.high[one],
            g.low[one],
            g.close[one],
            g.count[one],
            g.first_ts[one],
            g.last_ts[one],
        )
        covered: set[int] = set()  # timeframes that will get the trades through an open shorter candle
        for i, tf in enumerate(self.timeframes):
            if i in covered:
                continue
            start = tf.bucket_start(bucket)
            if i and start == tf.bucket_start(self.closed_through):  # type: ignore[arg-type]
                acc = self._rollups[i - 1]
                acc.merge_prices(np.array([slot]), *prices)
                acc.sums[slot] += sums
                covered |= self._descendants[i]
                took = True
                continue
            published = self._recent[i].get(start)
            j = -1 if published is None else int(np.searchsorted(published.slots, slot))
            if published is None or j >= len(published.slots) or published.slots[j] != slot:
                stats["late_too_old"][slot] += count
                continue
            row, end = np.array([j]), start + tf.micros
            published.buckets.merge_prices(row, *prices)
            published.buckets.sums[j] += sums
            published.revision[j] += 1
            stats["revisions"][slot] += 1
            took = True
            out.add(
                self._columns(
                    i, start, published.buckets, row, published.slots[row], np.zeros(1),
                    published.is_partial, published.revision[row],
                    published.has_gap[row] | self._gaps.live_mask(published.slots[row], start, end),
                )
            )  # fmt: skip
        self.ledger["applied" if took else "late_too_old"] += count

    def set_gap(self, exchange_symbols: Iterable[str], start: int, end: int | None) -> None:
        """Data of these symbols may be missing from ``start`` until ``end`` (None: until a call with the
        same ``start`` and an end): every candle overlapping it gets ``has_gap`` (data_types/gaps.py)."""
        for s in exchange_symbols:
            slot = self.slot(s)
            if self._gaps.set(slot, start, end):
                self._stats["gaps"][slot] += 1
        if end is not None:
            self._fold_gaps()

    def _fold_gaps(self) -> None:
        """Gaps ending in closed buckets keep only what they say of open and published candles
        (``candle_gaps.py``)."""
        if self.closed_through is not None and self._gaps.live:
            recent = [(tf.micros, self._recent[i]) for i, tf in enumerate(self.timeframes)]
            self._gaps.fold(self.closed_through, recent if self.late_policy == "revise" else ())

    # -- clock ---------------------------------------------------------------------------------
    @property
    def clock_us(self) -> int | None:
        """The time reached: exchange time (event clock) or the last wall time seen; kept on the clock,
        where the gap tracker reads it."""
        return self.clock.time_us(self.exchange)

    @clock_us.setter
    def clock_us(self, value: int | None) -> None:
        self.clock.set_time(self.exchange, value)

    def next_deadline_us(self) -> int | None:
        """When the clock's timer must fire for the next bucket to close (wall clock), else None."""
        if self.closed_through is None:
            return None
        return self.clock.deadline_us(self.closed_through + self.base_us + self.grace_us)

    def advance(self, now_us: int | None = None) -> CandleBatch:
        """The clock's timer fired (``now_us``, default the clock's now): close what it has passed. On the
        event clock nothing: trades move it."""
        out = self._batch()
        now = self.clock.timer_now(now_us)
        if now is not None:
            self.clock_us = now
            self._close_until(self._boundary(now - self.grace_us), out)
        return out

    def finish(self) -> CandleBatch:
        """End of stream: close the bucket holding the clock, and every longer candle still open; those
        end after the clock and are marked partial."""
        out = self._batch()
        if self._held is not None:
            slot, ts = self._held[0], self._held[1]
            self._held = None
            self._drop_jumped(slot, ts)
        if self.closed_through is None:
            return out  # event clock, and no trade ever came
        clock = self.clock_us if self.clock_us is not None else self.clock.now_us()
        self.observed_until = clock
        self._close_until(self._boundary(clock) + self.base_us, out)
        for i, tf in enumerate(self.timeframes[1:], start=1):
            if self.closed_through % tf.micros:  # type: ignore[operator]
                self._close_rollup(i, tf.bucket_start(self.closed_through), out)  # type: ignore[arg-type]
        return out

    def _close_until(self, t: int, out: CandleBatch) -> None:
        """Close every base bucket ending at or before ``t``, at most ``max_walk`` of them (module doc)."""
        walked = 0
        while self.closed_through < t:  # type: ignore[operator]
            if walked == self.max_walk:
                self._skip_to(t)
                break
            start = self.closed_through
            self.closed_through = start + self.base_us  # type: ignore[operator]
            self._close_base(start, out)  # type: ignore[arg-type]
            walked += 1
        self._fold_gaps()

    def _skip_to(self, t: int) -> None:
        """The clock moved more than ``max_walk`` buckets: every open candle is closed by now (the walk
        covered the longest timeframe and the ring) and every bucket left before ``t`` is empty: skip
        them."""
        skipped = (t - self.closed_through) // self.base_us  # type: ignore[operator]
        self.buckets_skipped += skipped
        log.warning(
            "%s: the clock moved to %d us: the %d base buckets after the first %d closed are empty and"
            " not published (a hole longer than max_walk)",
            self.exchange,
            t,
            skipped,
            self.max_walk,
        )
        self.closed_through = t

    def _close_base(self, start: int, out: CandleBatch) -> None:
        """Close base bucket ``start`` of every instrument, and every longer candle ending with it."""
        n = len(self.symbols)
        rows = np.arange(n) * RING + (start // self.base_us) % RING
        base = self._base
        self._publish(0, start, base, rows, out)
        traded = base.count[rows] > 0
        self._last_close[:n] = np.where(traded, base.close[rows], self._last_close[:n])
        self._roll_up(0, base, rows[traded], rows[traded] // RING)
        base.reset(rows)
        end = start + self.base_us
        for i, tf in enumerate(self.timeframes[1:], start=1):
            if end % tf.micros == 0:
                self._close_rollup(i, end - tf.micros, out)

    def _close_rollup(self, tf_index: int, start: int, out: CandleBatch) -> None:
        n = len(self.symbols)
        acc = self._rollups[tf_index - 1]
        slots = np.arange(n)
        self._publish(tf_index, start, acc, slots, out)
        traded = slots[acc.count[:n] > 0]
        self._roll_up(tf_index, acc, traded, traded)
        acc.reset(slice(0, n))

    def _roll_up(self, tf_index: int, closed: Buckets, rows: np.ndarray, slots: np.ndarray) -> None:
        """Merge closed candles (``rows`` of ``closed``, instruments ``slots``, each with trades) into
        the open candles of the timeframes they are the parent of."""
        if len(rows):
            for child in self._children[tf_index]:
                self._rollups[child - 1].merge_rows(slots, closed, rows)

    def _publish(
        self, tf_index: int, start: int, buckets: Buckets, rows: np.ndarray, out: CandleBatch
    ) -> None:
        """Emit the candles of ``rows`` (one per instrument, in slot order), count them, and keep them
        for revisions."""
        n = len(self.symbols)
        columns = self._columns(tf_index, start, buckets, rows, np.arange(n), self._last_close[:n])
        slots = columns.slots
        if not len(slots):
            return
        self._candles[slots, tf_index] += 1
        self._stats["empty_candles"][slots] += columns.is_empty
        self._stats["gap_candles"][slots] += columns.has_gap
        if self.late_policy == "revise":
            recent = self._recent[tf_index]
            recent[start] = _Published(
                buckets.take(rows[slots]), slots, columns.revision.copy(), columns.is_partial,
                self._gaps.through[slots] > start,
            )  # fmt: skip
            while len(recent) > self.revise_window:
                recent.popitem(last=False)
        out.add(columns)

    def _columns(
        self,
        tf_index: int,
        start: int,
        buckets: Buckets,
        rows: np.ndarray,
        slots: np.ndarray,
        previous_close: np.ndarray,
        is_partial: bool | None = None,
        revision: np.ndarray | None = None,
        has_gap: np.ndarray | None = None,
    ) -> CandleColumns:
        """The candles of ``rows`` (instruments ``slots``): those with trades, and the empty ones of
        instruments that have a previous close to carry; ``has_gap`` default: as open candles."""
        count = buckets.count[rows]
        empty = count == 0
        publish = ~empty | ~np.isnan(previous_close)
        if not publish.all():
            rows, slots, count, empty = rows[publish], slots[publish], count[publish], empty[publish]
            previous_close = previous_close[publish]
        end = start + self.timeframes[tf_index].micros
        if is_partial is None:
            is_partial = (self.observed_from is not None and start < self.observed_from) or (
                self.observed_until is not None and end > self.observed_until
            )
        b = buckets
        return CandleColumns(
            timeframe=self.timeframes[tf_index].name,
            timestamp_in=start,
            slots=slots,
            **candle_values(
                b.open[rows],
                b.high[rows],
                b.low[rows],
                b.close[rows],
                count,
                b.first_ts[rows],
                b.last_ts[rows],
                b.sums[rows],
                previous_close,
            ),
            has_gap=self._gaps.mask(slots, start, end) if has_gap is None else has_gap,
            is_partial=is_partial,
            revision=np.zeros(len(rows), dtype=np.int64) if revision is None else revision,
        )

    # -- stats ---------------------------------------------------------------------------------
    @property
    def held(self) -> int:
        """Trades held for a jump's confirmation (event clock)."""
        return 0 if self._held is None else len(self._held[0])

    def slot_stats(self, slot: int) -> dict:
        open_rows = self._base.count[slot * RING : (slot + 1) * RING]
        stats = {name: int(values[slot]) for name, values in self._stats.items()}
        ticks = self.tick_counts.get(self.exchange_symbols[slot])
        return {
            "exchange": self.exchange,
            "symbol": self.symbols[slot],
            "exchange_symbol": self.exchange_symbols[slot],
            "timeframes": list(self.timeframe_names),
            "open_buckets": int(np.count_nonzero(open_rows)),
            **stats,
            "ticks_by_type": dict(ticks) if ticks is not None else {"trade": stats["trades"]},
            "drops": {
                "late": stats["late_dropped"],
                "late_too_old": stats["late_too_old"],
                "ahead": stats["ahead_dropped"],
                "jump": stats["jump_dropped"],
            },
            "candles": dict(zip(self.timeframe_names, self._candles[slot].tolist(), strict=True)),
        }

    @property
    def open_trades(self) -> int:
        """Trades in base buckets not closed yet (closed buckets are reset)."""
        return int(self._base.count.sum())

    def get_stats(self) -> dict:
        n = len(self.symbols)
        return {
            "exchange": self.exchange,
            "clock": self.clock.name,
            "clock_us": self.clock_us,
            "closed_through": self.closed_through,
            "symbols": n,
            **{name: int(values[:n].sum()) for name, values in self._stats.items()},
            "held": self.held,
            "buckets_skipped": self.buckets_skipped,
            "ledger": {**self.ledger, "held": self.held},
            "candles_by_timeframe": dict(
                zip(self.timeframe_names, self._candles[:n].sum(axis=0).tolist(), strict=True)
            ),
        }


def _parts_of(engine: CandleEngine, out: CandleBatch):
    """What the compiled path's candles become in ``on_slots``: a part each, as the array path emits."""
    slots = np.zeros(1, dtype=np.int64)
    revision = np.zeros(1, dtype=np.int64)

    def emit(names: tuple[str, ...], rows_i: np.ndarray, rows_f: np.ndarray) -> None:
        tf, start, partial, values = kernel_columns(rows_i, rows_f)
        for j, (t, s, p) in enumerate(zip(tf.tolist(), start.tolist(), partial.tolist(), strict=True)):
            one = {name: column[j : j + 1] for name, column in values.items()}
            out.add(
                CandleColumns(
                    timeframe=names[t], timestamp_in=s, slots=slots, **one, is_partial=p,
                    revision=revision,
                )
            )  # fmt: skip

    return emit
