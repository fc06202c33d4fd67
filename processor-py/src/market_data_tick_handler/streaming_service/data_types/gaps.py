"""gaps (fallback, disconnect_and_stale_detection): :class:`Gap` records, from four sources:

- ``disconnect`` frames: the exchange connection of these symbols dropped; the gap starts at the
  exchange clock (replays) or at the disconnect's local time (live) and ends at the next message of
  that exchange;
- ``frames_lost``: a jump in the wire ``seq``; every symbol seen so far gets a gap from the last time
  its exchange was heard from until its next message;
- ``ingester_exit``: the ingester exited without ending its session; the same gaps as ``frames_lost``
  (what it had not sent is lost);
- ``processor_restart``: a processor restarted from its checkpoint whose ingester had stopped with the
  one before it (docs/ARCHITECTURE.md "Journal and checkpoints"), and ``journal_missing``: frames asked
  of the journal that its retention had deleted; the same gaps as ``frames_lost``;
- ``stale``: no message of any type on a subscribed symbol (one in a frame's symbol table) for
  ``data_types.gaps.stale_after_ms``, measured on the wall clock live and on the exchange clock (the
  highest exchange timestamp seen on the exchange) in replays. It starts at the symbol's last message
  and ends at its next one; a silence noticed only when the next message comes gives a closed gap.

Time comes from the clock (``clock.py``) the candle engines run on: a message is heard from when it
arrives (``WallClock``) or at its exchange timestamp (``EventClock``); the wall clock's timer says when the
next symbol goes stale (``next_deadline_us``). Symbols are the slots of each exchange's instrument table
(``instrument_service/instrument_table.py``), the candle engine's and the feature context's too.

A gap is reported when it opens (``end`` None) and when it ends; the frame router passes each one to
the candle engine (``CandleEngine.set_gap``), whose candles overlapping it get ``has_gap``.

Only the rows the router kept are seen (``kept``), and on the event clock a row beyond its horizon (more
than ``max_jump_us`` ahead of the time the exchange's candle engine reached) does not move the exchange
clock: one message stamped a day ahead must not make every symbol look silent for a day.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...wire import Frame
from ..clock import Clock, EventClock, past_reach
from ..instrument_service import ExchangeEntries, Instruments, InstrumentTable
from .base import DataTypeProcessor, RowCheck
from .records import Gap, Record

UNKNOWN = np.iinfo(np.int64).min
#: ended by the next message of the exchange
EXCHANGE_WIDE = ("disconnect", "frames_lost", "ingester_exit", "processor_restart", "journal_missing")


@dataclass(slots=True)
class _Open:
    reason: str
    start: int


@dataclass(slots=True)
class _Exchange:
    """One exchange's symbols, by slot of its instrument table."""

    table: InstrumentTable
    last_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    is_open: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    subscribed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # in a frame's table
    count: int = 0  # subscribed symbols
    open: dict[int, _Open] = field(default_factory=dict)
    clock: int | None = None  # exchange time (event clock) or last receipt (wall clock)
    checked: tuple[int, int] | None = None  # event clock: (clock, count) at the last check, unchanged since

    @property
    def name(self) -> str:
        return self.table.exchange

    def grow(self, capacity: int) -> None:
        extra = capacity - len(self.last_seen)
        if extra > 0:
            self.last_seen = np.concatenate([self.last_seen, np.full(extra, UNKNOWN, dtype=np.int64)])
            self.is_open = np.concatenate([self.is_open, np.zeros(extra, dtype=bool)])
            self.subscribed = np.concatenate([self.subscribed, np.zeros(extra, dtype=bool)])

    def subscribe(self, slots: np.ndarray) -> None:
        new = ~self.subscribed[slots]
        if new.any():
            self.subscribed[slots[new]] = True
            self.count = int(np.count_nonzero(self.subscribed))


def moves_clock(ts: np.ndarray, clock: int, jump: int, confirm: int) -> np.ndarray:
    """Which rows of ``ts`` (one exchange's, in arrival order) move an event clock at ``clock``, by the
    candle engine's jump rule (``candle_engine.py``): a row more than ``jump`` past the clock counts once
    it and at least ``confirm`` rows right after it are all that far ahead (a hole in the data: the
    clock then moves to the earliest of them); rows refuted by a row back within reach (strays), and
    rows still unconfirmed when the frame ends, do not. The gap tracker hears a symbol only from rows
    that count, so the end of a silence longer than ``jump`` is its first trade, not a later frame's."""
    n = len(ts)
    ok = np.ones(n, dtype=bool)
    c, i = clock, 0
    while i < n:
        seg = ts[i:]
        off, run = past_reach(seg, c, jump)
        k = int(np.argmax(off)) if off.any() else len(seg)
        if k:
            c = max(c, int(run[k - 1]))
        if k == len(seg):
            break
        first = i + k
        rest = ts[first:]
        away = rest > c + jump
        r = len(rest) if away.all() else int(np.argmin(away))
        if r > confirm:  # confirmed: the clock moves to the earliest of them, and they are taken from there
            c, i = int(rest[: confirm + 1].min()), first
            continue
        ok[first : first + r] = False
        i = first + r
    return ok


class GapProcessor(DataTypeProcessor):
    data_type = "gaps"

    def __init__(
        self, instruments: Instruments | None = None, stale_after_ms: int = 30_000, clock: Clock | None = None
    ) -> None:
        """``clock``: the candle engines' (default an ``EventClock`` of its own)."""
        super().__init__(instruments)
        self.stale_us = stale_after_ms * 1000
        self.clock = clock or EventClock()
        self.exchanges: dict[str, _Exchange] = {}
        self._pending: dict[tuple[str, str, str, int], Gap] = {}
        self.opened: dict[str, int] = {"disconnect": 0, "stale": 0, **{r: 0 for r in EXCHANGE_WIDE[1:]}}

    @classmethod
    def create(cls, instruments: Instruments, config: object, clock: Clock) -> GapProcessor:
        return cls(instruments, config.stale_after_ms, clock)  # type: ignore[attr-defined]

    # -- input ---------------------------------------------------------------------------------
    def _state(self, table: InstrumentTable) -> _Exchange:
        state = self.exchanges.get(table.exchange)
        if state is None:
            state = self.exchanges[table.exchange] = _Exchange(table)
            table.on_grow(state.grow)
        return state

    def _table(self, frame: Frame) -> list[tuple[_Exchange, ExchangeEntries]]:
        """Per exchange of the frame's symbol table: its state and its entries; every symbol of the table
        is subscribed from now on."""
        groups = []
        for entries in self.instruments.of(frame.symbols).exchanges:
            state = self._state(entries.table)
            state.subscribe(entries.slots)
            groups.append((state, entries))
        return groups

    def observe(self, frame: Frame, kept: np.ndarray | None = None) -> None:
        """A data frame arrived: every symbol of its table is subscribed; the rows' symbols (``kept``:
        the mask of valid rows, default all) were heard from (at their exchange timestamps on the event
        clock, now on the wall clock)."""
        groups = self._table(frame)
        if not frame.n or "timestamp" not in frame.columns:
            return
        sym = frame.columns["sym"]
        k = len(frame.symbols)
        if kept is not None and not kept.all():
            sym = sym[kept]
        now = self.clock.received_us()
        if now is not None:  # heard from now
            present = np.bincount(sym, minlength=k)[:k] > 0
            first = np.full(k, now, dtype=np.int64)
            last = first
            inner: list[tuple[int, int, int]] = []
        else:  # heard from at the exchange's time
            ts = frame.columns["timestamp"]
            local = frame.columns.get("local_timestamp")
            if kept is not None and not kept.all():
                ts = ts[kept]
                local = local[kept] if local is not None else None
            ok = (sym < k) & (ts > 0)
            if local is not None:
                # no exchange time: tardis-dev gives such a message (a BitMEX liquidation, a Coinbase
                # book image) its arrival time, which in a replay is today: it must not move the clock
                ok &= ts != local
            jump, confirm = self.clock.max_jump_us, self.clock.jump_confirm
            for state, entries in groups:
                h = self.clock.horizon_us(state.name)
                if h is None or not len(ts) or int(ts.max()) <= h:
                    continue  # no clock yet, or nothing past it (the common case)
                rows = np.flatnonzero(ok if len(groups) == 1 else ok & np.isin(sym, entries.positions))
                ok[rows[~moves_clock(ts[rows], h - jump, jump, confirm)]] = False
            if not ok.all():
                sym, ts = sym[ok], ts[ok]
            first = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
            last = np.full(k, UNKNOWN, dtype=np.int64)
            if k == 1 and len(ts):  # one symbol (a backfill's frames): no scatter
                first[0], last[0] = ts.min(), ts.max()
            else:
                np.minimum.at(first, sym, ts)
                np.maximum.at(last, sym, ts)
            present = last != UNKNOWN
            inner = self._silences_within(sym, ts, k)
        for state, entries in groups:
            positions, indexes = entries.positions, entries.slots
            here = present[positions]
            if not here.any():
                continue
            where, idx = positions[here], indexes[here]
            t0, t1 = first[where], last[where]
            seen = state.last_seen[idx]
            was_open = state.is_open[idx]  # a copy (fancy indexing)
            if state.open:
                for i, start in zip(
                    idx[state.is_open[idx]].tolist(), t0[state.is_open[idx]].tolist(), strict=True
                ):
                    if state.open[i].reason == "stale":
                        self._close(state, i, start)
            silent = (seen != UNKNOWN) & (t0 - seen >= self.stale_us) & ~was_open
            for i, since, back in zip(
                idx[silent].tolist(), seen[silent].tolist(), t0[silent].tolist(), strict=True
            ):
                self._open(state, i, "stale", since)  # a silence noticed only now: a closed gap
                self._close(state, i, back)
            for k_sym, since, back in inner:
                at = np.flatnonzero(positions == k_sym)
                if len(at):
                    i = int(indexes[at[0]])
                    self._open(state, i, "stale", since)  # a silence inside the frame (a fast replay)
                    self._close(state, i, back)
            state.last_seen[idx] = np.maximum(seen, t1)
            state.checked = None
            if state.open:
                resumed = int(t0.min())
                for i, gap in list(state.open.items()):
                    if gap.reason in EXCHANGE_WIDE:
                        self._close(state, i, resumed)
            top = int(t1.max())
            state.clock = top if state.clock is None else max(state.clock, top)

    def _silences_within(self, sym: np.ndarray, ts: np.ndarray, k: int) -> list[tuple[int, int, int]]:
        """(frame symbol index, from, to) of every silence of ``stale_after_ms`` or more between two
        rows of one symbol in one frame (``k`` symbols in its table): in a replay at full speed one
        frame can span many seconds."""
        if len(ts) < 2 or int(ts.max()) - int(ts.min()) < self.stale_us:
            return []
        if k == 1:  # one symbol: its times in order are enough (most often they are in order already)
            t = ts if (ts[1:] >= ts[:-1]).all() else np.sort(ts)
            hit = np.flatnonzero(t[1:] - t[:-1] >= self.stale_us)
            return [(0, int(t[j]), int(t[j + 1])) for j in hit.tolist()]
        order = np.lexsort((ts, sym))
        s, t = sym[order], ts[order]
        hit = np.flatnonzero((s[1:] == s[:-1]) & (t[1:] - t[:-1] >= self.stale_us))
        return [(int(s[j]), int(t[j]), int(t[j + 1])) for j in hit.tolist()]

    def records(self, frame: Frame, check: RowCheck) -> list[Record]:
        """A ``disconnect`` frame (its valid rows): its symbols' data may be missing from now on. Returns
        every gap opened or ended since the last ``drain``."""
        self.disconnect(frame, check.kept)
        return list(self.drain())

    def disconnect(self, frame: Frame, kept: np.ndarray | None = None) -> None:
        """Open the gaps of a ``disconnect`` frame (reported by the next ``drain``); ``kept``: the mask
        of its valid rows (default all)."""
        where: dict[int, tuple[_Exchange, int]] = {}
        for state, entries in self._table(frame):
            for j, i in zip(entries.positions.tolist(), entries.slots.tolist(), strict=True):
                where[j] = (state, i)
        sym, local = frame.columns["sym"], frame.columns["local_timestamp"]
        if kept is not None and not kept.all():
            sym, local = sym[kept], local[kept]
        for j, lt in zip(sym.tolist(), local.tolist(), strict=True):
            if j not in where:
                continue
            state, i = where[j]
            if i not in state.open:
                self._open(state, i, "disconnect", self.clock.gap_start_us(state.clock, lt))

    def frames_lost(self, reason: str = "frames_lost") -> None:
        """Frames of the session were lost (``reason``: ``frames_lost``; ``ingester_exit`` when the
        ingester died; ``processor_restart``, ``journal_missing``): every symbol seen so far may miss data
        since its exchange was last heard from."""
        for state in self.exchanges.values():
            if state.clock is None:
                continue
            for i in np.flatnonzero(state.subscribed).tolist():
                if i not in state.open:
                    self._open(state, i, reason, state.clock)

    def check(self, now: int | None = None) -> None:
        """Open a stale gap for every symbol silent for ``stale_after_ms`` (on the wall clock: its timer,
        ``now`` or the system's time; on the event clock: each exchange's clock)."""
        timer = self.clock.timer_now(now)
        for state in self.exchanges.values():
            clock = timer if timer is not None else state.clock
            if clock is None:
                continue
            if timer is None:
                if state.checked == (clock, state.count):
                    continue  # nothing this check depends on changed since the last one
                state.checked = (clock, state.count)
            n = len(state.table)
            subscribed = state.subscribed[:n]
            seen = state.last_seen[:n]
            unknown = (seen == UNKNOWN) & subscribed
            if unknown.any():
                seen[unknown] = clock  # subscribed, never heard from: counted from now
            stale = np.flatnonzero(
                subscribed & (seen != UNKNOWN) & (clock - seen >= self.stale_us) & ~state.is_open[:n]
            ).tolist()
            for i in stale:
                self._open(state, i, "stale", int(seen[i]))

    def next_deadline_us(self) -> int | None:
        """When the clock's timer must fire for the next symbol to become stale if nothing arrives (the
        wall clock's; None on the event clock)."""
        times = []
        for state in self.exchanges.values():
            n = len(state.table)
            seen = state.last_seen[:n][~state.is_open[:n] & (state.last_seen[:n] != UNKNOWN)]
            if len(seen):
                times.append(int(seen.min()) + self.stale_us)
        return self.clock.deadline_us(min(times)) if times else None

    # -- records -------------------------------------------------------------------------------
    def _record(self, state: _Exchange, i: int, gap: _Open, end: int | None) -> Gap:
        return Gap(
            exchange=state.name,
            symbol=state.table.symbols[i],
            exchange_symbol=state.table.exchange_symbols[i],
            timestamp=gap.start,
            local_timestamp=self.clock.now_us(),
            reason=gap.reason,
            start=gap.start,
            end=end,
        )

    def _open(self, state: _Exchange, i: int, reason: str, start: int) -> None:
        gap = state.open[i] = _Open(reason, start)
        state.is_open[i] = True
        self.opened[reason] += 1
        record = self._record(state, i, gap, None)
        self._pending[(record.exchange, record.exchange_symbol, reason, start)] = record

    def _close(self, state: _Exchange, i: int, end: int) -> None:
        gap = state.open.pop(i)
        state.is_open[i] = False
        state.checked = None
        record = self._record(state, i, gap, max(end, gap.start))
        self._pending[(record.exchange, record.exchange_symbol, gap.reason, gap.start)] = record

    def drain(self) -> list[Gap]:
        """Gaps opened or ended since the last call (one record for a gap that did both)."""
        records = list(self._pending.values())
        self._pending.clear()
        return records

    @property
    def open_gaps(self) -> int:
        return sum(len(state.open) for state in self.exchanges.values())
