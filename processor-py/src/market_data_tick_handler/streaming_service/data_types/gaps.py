"""gaps (fallback, disconnect_and_stale_detection): :class:`Gap` records, from four sources:

- ``disconnect`` frames: the exchange connection of these symbols dropped; the gap starts at the
  exchange clock (replays) or at the disconnect's local time (live) and ends at the next message of
  that exchange;
- ``frames_lost``: a jump in the wire ``seq``; every symbol seen so far gets a gap from the last time
  its exchange was heard from until its next message;
- ``ingester_exit``: the ingester exited without ending its session; the same gaps as ``frames_lost``
  (what it had not sent is lost);
- ``stale``: no message of any type on a subscribed symbol (one in a frame's symbol table) for
  ``data_types.gaps.stale_after_ms``, measured on the wall clock live and on the exchange clock (the
  highest exchange timestamp seen on the exchange) in replays. It starts at the symbol's last message
  and ends at its next one; a silence noticed only when the next message comes gives a closed gap.

A gap is reported when it opens (``end`` None) and when it ends; ``TickHandler`` passes each one to
the candle engine (``CandleEngine.set_gap``), whose candles overlapping it get ``has_gap``.

Only the rows ``TickHandler`` kept are seen (``kept``), and in event mode a row more than the candle
engine's ``max_jump_us`` ahead of its clock (``horizon``) does not move the exchange clock: one
message stamped a day ahead must not make every symbol look silent for a day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...timeutil import now_us
from ...wire import Frame
from ..instrument_service import InstrumentMapper
from .base import DataTypeProcessor, Processed
from .records import Gap

UNKNOWN = np.iinfo(np.int64).min
EXCHANGE_WIDE = ("disconnect", "frames_lost", "ingester_exit")  # ended by the next message of the exchange


@dataclass(slots=True)
class _Open:
    reason: str
    start: int


@dataclass(slots=True)
class _Exchange:
    name: str
    names: list[str] = field(default_factory=list)  # exchange symbols
    index: dict[str, int] = field(default_factory=dict)
    last_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    is_open: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    open: dict[int, _Open] = field(default_factory=dict)
    clock: int | None = None  # exchange time (event mode) or last receipt (wall mode)
    checked: tuple[int, int] | None = None  # event mode: (clock, symbols) at the last check, unchanged since

    def add(self, name: str) -> int:
        i = self.index.get(name)
        if i is None:
            i = self.index[name] = len(self.names)
            self.names.append(name)
            if i >= len(self.last_seen):
                extra = max(16, len(self.last_seen))
                self.last_seen = np.concatenate([self.last_seen, np.full(extra, UNKNOWN, dtype=np.int64)])
                self.is_open = np.concatenate([self.is_open, np.zeros(extra, dtype=bool)])
        return i


class GapProcessor(DataTypeProcessor):
    data_type = "gaps"
    frame_types = ("disconnect",)

    def __init__(
        self,
        mapper: InstrumentMapper | None = None,
        stale_after_ms: int = 30_000,
        clock: str = "event",
        now: Callable[[], int] = now_us,
    ) -> None:
        super().__init__(mapper)
        self.stale_us = stale_after_ms * 1000
        self.clock = clock
        self._now = now
        self.exchanges: dict[str, _Exchange] = {}
        self._maps: dict[tuple[tuple[str, str], ...], list[tuple[_Exchange, np.ndarray, np.ndarray]]] = {}
        self._pending: dict[tuple[str, str, str, int], Gap] = {}
        self.opened: dict[str, int] = {"disconnect": 0, "stale": 0, "frames_lost": 0, "ingester_exit": 0}

    # -- input ---------------------------------------------------------------------------------
    def _table(self, frame: Frame) -> list[tuple[_Exchange, np.ndarray, np.ndarray]]:
        """Per exchange of the frame's symbol table: (its state, the table positions of its symbols,
        their indexes in the state); every symbol of the table is registered as subscribed."""
        key = tuple((e, s) for e, s in frame.symbols)
        got = self._maps.get(key)
        if got is None:
            if len(self._maps) >= 64:
                self._maps.clear()
            groups: dict[str, tuple[list[int], list[int]]] = {}
            for j, (exchange, symbol) in enumerate(key):
                state = self.exchanges.get(exchange)
                if state is None:
                    state = self.exchanges[exchange] = _Exchange(exchange)
                positions, indexes = groups.setdefault(exchange, ([], []))
                positions.append(j)
                indexes.append(state.add(symbol))
            got = [
                (self.exchanges[e], np.array(p, dtype=np.int64), np.array(i, dtype=np.int64))
                for e, (p, i) in groups.items()
            ]
            self._maps[key] = got
        return got

    def observe(
        self, frame: Frame, kept: np.ndarray | None = None, horizon: dict[str, int] | None = None
    ) -> None:
        """A data frame arrived: every symbol of its table is subscribed; the rows' symbols (``kept``:
        the mask of valid rows, default all) were heard from (at their exchange timestamps in event
        mode, now in wall mode). ``horizon``: exchange -> latest exchange time a row may have to count
        (event mode; see the module doc)."""
        groups = self._table(frame)
        if not frame.n or "timestamp" not in frame.columns:
            return
        sym = frame.columns["sym"]
        k = len(frame.symbols)
        if kept is not None and not kept.all():
            sym = sym[kept]
        if self.clock == "wall":
            now = self._now()
            present = np.bincount(sym, minlength=k)[:k] > 0
            first = np.full(k, now, dtype=np.int64)
            last = first
            inner: list[tuple[int, int, int]] = []
        else:
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
            if horizon and len(groups) == 1:  # one exchange (the common case): one bound
                h = horizon.get(groups[0][0].name)
                if h is not None and len(ts) and int(ts.max()) > h:
                    ok &= ts <= h
            elif horizon and k:
                limit = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
                for state, positions, _ in groups:
                    h = horizon.get(state.name)
                    if h is not None:
                        limit[positions] = h
                ok &= ts <= limit[np.minimum(sym, k - 1)]
            if not ok.all():
                sym, ts = sym[ok], ts[ok]
            first = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
            last = np.full(k, UNKNOWN, dtype=np.int64)
            np.minimum.at(first, sym, ts)
            np.maximum.at(last, sym, ts)
            present = last != UNKNOWN
            inner = self._silences_within(sym, ts)
        for state, positions, indexes in groups:
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

    def _silences_within(self, sym: np.ndarray, ts: np.ndarray) -> list[tuple[int, int, int]]:
        """(frame symbol index, from, to) of every silence of ``stale_after_ms`` or more between two
        rows of one symbol in one frame: in a replay at full speed one frame can span many seconds."""
        if len(ts) < 2 or int(ts.max()) - int(ts.min()) < self.stale_us:
            return []
        order = np.lexsort((ts, sym))
        s, t = sym[order], ts[order]
        hit = np.flatnonzero((s[1:] == s[:-1]) & (t[1:] - t[:-1] >= self.stale_us))
        return [(int(s[j]), int(t[j]), int(t[j + 1])) for j in hit.tolist()]

    def process(self, frame: Frame) -> Processed:
        """A ``disconnect`` frame: its symbols' data may be missing from now on. Returns every gap
        opened or ended since the last ``drain``."""
        check = self.validate(frame, {})
        self.disconnect(frame, check.kept)
        return Processed(self.drain(), check.kept, check.count, check.error, check.reasons)

    def disconnect(self, frame: Frame, kept: np.ndarray | None = None) -> None:
        """Open the gaps of a ``disconnect`` frame (reported by the next ``drain``); ``kept``: the mask
        of its valid rows (default all)."""
        where: dict[int, tuple[_Exchange, int]] = {}
        for state, positions, indexes in self._table(frame):
            for j, i in zip(positions.tolist(), indexes.tolist(), strict=True):
                where[j] = (state, i)
        sym, local = frame.columns["sym"], frame.columns["local_timestamp"]
        if kept is not None and not kept.all():
            sym, local = sym[kept], local[kept]
        for j, lt in zip(sym.tolist(), local.tolist(), strict=True):
            if j not in where:
                continue
            state, i = where[j]
            if self.clock == "event" and state.clock is not None:
                start = state.clock
            else:
                start = int(lt) if lt > 0 else self._now()
            if i not in state.open:
                self._open(state, i, "disconnect", start)

    def frames_lost(self, reason: str = "frames_lost") -> None:
        """Frames of the session were lost (``reason``: ``frames_lost``, or ``ingester_exit`` when the
        ingester died): every symbol seen so far may miss data since its exchange was last heard from."""
        for state in self.exchanges.values():
            if state.clock is None:
                continue
            for i in range(len(state.names)):
                if i not in state.open:
                    self._open(state, i, reason, state.clock)

    def check(self, now: int | None = None) -> None:
        """Open a stale gap for every symbol silent for ``stale_after_ms`` (wall clock, or each
        exchange's clock in event mode)."""
        for state in self.exchanges.values():
            clock = (now if now is not None else self._now()) if self.clock == "wall" else state.clock
            if clock is None:
                continue
            n = len(state.names)
            if self.clock != "wall":
                if state.checked == (clock, n):
                    continue  # nothing this check depends on changed since the last one
                state.checked = (clock, n)
            seen = state.last_seen[:n]
            unknown = seen == UNKNOWN
            if unknown.any():
                seen[unknown] = clock  # subscribed, never heard from: counted from now
            stale = np.flatnonzero((clock - seen >= self.stale_us) & ~state.is_open[:n]).tolist()
            for i in stale:
                self._open(state, i, "stale", int(seen[i]))

    def next_deadline_us(self) -> int | None:
        """Wall mode: when the next symbol becomes stale, if nothing arrives."""
        if self.clock != "wall":
            return None
        times = []
        for state in self.exchanges.values():
            n = len(state.names)
            seen = state.last_seen[:n][~state.is_open[:n] & (state.last_seen[:n] != UNKNOWN)]
            if len(seen):
                times.append(int(seen.min()) + self.stale_us)
        return min(times, default=None)

    # -- records -------------------------------------------------------------------------------
    def _record(self, state: _Exchange, i: int, gap: _Open, end: int | None) -> Gap:
        exchange = state.name
        symbol = state.names[i]
        return Gap(
            exchange=exchange,
            symbol=self.mapper.to_symbol(exchange, symbol),
            exchange_symbol=symbol,
            timestamp=gap.start,
            local_timestamp=self._now(),
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
