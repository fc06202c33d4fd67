"""Every count the frame router keeps, owned in one place, and the two ledgers read from them.

Nothing is lost silently: a frame is counted once in :meth:`Counters.frame_ledger` (received = decoded +
undecodable; handled = applied + duplicate + seq_jump + failed + unhandled), every row once in
:meth:`Counters.row_ledger` (received = applied + dropped, by reason). Bad input is logged, at most
``LOG_FIRST`` times per kind and then every ``LOG_EVERY``-th, and always counted.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from ...wire import Frame
from ..candle_processor import CandleEngine
from ..candle_processor.candle_engine import LEDGER
from ..data_types.base import RowCheck

log = logging.getLogger(__name__)

LOG_FIRST, LOG_EVERY = 20, 1000  # a kind of bad input is logged 20 times, then every 1000th time
#: frame-level counts of ``frame_ledger``: received = decoded + undecodable; decoded frames are
#: applied, duplicate, seq_jump, failed or unhandled
FRAME_COUNTS = (
    "frames_received", "frames_decoded", "frames_undecodable", "frames_applied", "frames_duplicate",
    "frames_seq_jump", "frames_failed", "frames_unhandled", "frames_lost",
)  # fmt: skip


class Counters:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.ticks_by_type: Counter[str] = Counter()
        self.ticks_by_symbol: dict[str, Counter[str]] = {}  # "exchange:SYMBOL" -> ticks per frame type
        #: exchange -> exchange symbol -> the same counters (``CandleEngine.tick_counts``)
        self.ticks: dict[str, dict[str, Counter[str]]] = defaultdict(dict)
        self.records_by_type: Counter[str] = Counter()
        self.bad_rows: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.errors: list[str] = []  # the last few error messages, for get_stats()
        self.accounted = 0  # rows of the frame being handled counted so far (applied or dropped)
        self._logged: Counter[str] = Counter()  # occurrences per kind of logged bad input

    # -- one frame ---------------------------------------------------------------------------------
    def frame(self, frame: Frame) -> None:
        """A decoded frame is being handled: its rows are received."""
        self.counts["frames"] += 1
        if frame.n:
            self.counts[f"rows_received.{frame.type}"] += frame.n
        self.accounted = 0

    def rows(self, frame: Frame) -> None:
        """The frame's rows, by frame type and by instrument (``ticks_by_type``, ``ticks_by_symbol``)."""
        n, symbols, kind = frame.n, frame.symbols, frame.type
        self.ticks_by_type[kind] += n
        if not n:
            return
        sym = frame.columns["sym"]
        if len(symbols) == 1 and int(sym.max()) == 0:
            counts = [n]
        else:
            counts = np.bincount(sym, minlength=len(symbols)).tolist()
        for (exchange, symbol), k in zip(symbols, counts, strict=False):
            if k:
                counter = self.ticks[exchange].get(symbol)
                if counter is None:
                    counter = self.ticks[exchange][symbol] = self.ticks_by_symbol[f"{exchange}:{symbol}"] = (
                        Counter()
                    )
                counter[kind] += k

    def applied(self, frame_type: str, count: int) -> None:
        if count > 0:
            self.counts[f"rows_applied.{frame_type}"] += count
            self.accounted += count

    def dropped(self, frame_type: str, reason: str, count: int) -> None:
        if count > 0:
            self.drops[f"{frame_type}.{reason}"] += count
            self.accounted += count

    def bad(self, frame_type: str, data_type: str, check: RowCheck) -> None:
        """The bad rows a check dropped: counted by reason (``bad_<data_type>``, ``bad_rows``) and the
        first named in the log."""
        if check.count:
            self.bad_rows[frame_type] += check.count
            self.error(f"bad_{data_type}", check.error or "", count=check.count)
            for reason, k in check.reasons.items():
                self.dropped(frame_type, reason, k)

    # -- errors --------------------------------------------------------------------------------------
    def error(self, counter: str, message: str, count: int = 1, kind: str = "") -> None:
        """Count ``count`` under ``counter`` and log ``message`` (see ``log_limited``; ``kind`` refines
        the key, e.g. the reason a frame is undecodable)."""
        self.counts[counter] += count
        self.log_limited(f"{counter}:{kind}", message)

    def log_limited(self, key: str, message: str) -> None:
        """An ERROR line for each of the first ``LOG_FIRST`` occurrences of a kind of bad input, then
        for every ``LOG_EVERY``-th: a flood of bad input must not become a flood of log lines (every
        occurrence is counted all the same)."""
        self.recent(message)
        n = self._logged[key] = self._logged[key] + 1
        if n <= LOG_FIRST:
            log.error(
                "%s%s", message, f" (logging only every {LOG_EVERY}th from now on)" if n == LOG_FIRST else ""
            )
        elif n % LOG_EVERY == 0:
            log.error("%s (occurrence %d of this kind)", message, n)

    def recent(self, message: str) -> None:
        """Keep ``message`` among the last ten errors (``get_stats()['recent_errors']``)."""
        self.errors = [*self.errors[-9:], message]

    # -- the ledgers ---------------------------------------------------------------------------------
    def frame_ledger(self) -> dict[str, Any]:
        """Frame-level counts (``FRAME_COUNTS``): ``frames_received`` (through ``handle_bytes`` or
        ``decode``) = ``frames_decoded`` + ``frames_undecodable``; every frame handled = applied +
        duplicate + seq_jump + failed + unhandled; ``undecodable``: by reason (``WireError.reason``)."""
        c = self.counts
        out: dict[str, Any] = {k: c.get(k, 0) for k in FRAME_COUNTS}
        out["frames_handled"] = c.get("frames", 0)
        out["undecodable"] = {
            k.removeprefix("frame."): v
            for k, v in self.drops.items()
            if k.startswith("frame.") and not k.startswith("frame.failed.")
        }
        out["failed"] = {
            k.removeprefix("frame.failed."): v for k, v in self.drops.items() if k.startswith("frame.failed.")
        }
        return out

    def row_ledger(self, engines: Iterable[CandleEngine]) -> dict[str, dict[str, Any]]:
        """Per frame type that carried rows: ``received`` = ``applied`` + sum(``dropped``), dropped by
        reason: a frame-level one (``duplicate_frame``, ``frame_failed``, ``disabled``, ``unhandled``)
        or the first bad field of the row (``sym``, ``timestamp``, ``price``, ...). A trade is applied
        when it is handed to the candle engines (``engines``); what they did with it is ``candles``:
        ``received`` (= the trades applied) = ``applied`` (in a candle, or revising one) +
        sum(``dropped``: ``late``, ``late_too_old``, ``ahead``, ``jump``) + ``held`` (waiting for a clock
        jump's confirmation). Counters only, read on demand."""
        out: dict[str, dict[str, Any]] = {}
        prefix = "rows_received."
        for key, received in self.counts.items():
            if key.startswith(prefix):
                kind = key.removeprefix(prefix)
                applied = self.counts.get(f"rows_applied.{kind}", 0)
                out[kind] = {"received": received, "applied": applied, "dropped": {}}
        for key, k in self.drops.items():
            kind, _, reason = key.partition(".")
            if kind in out and reason:
                out[kind]["dropped"][reason] = k
        if "trade" in out:
            engines = list(engines)
            ledger = Counter[str]()
            for engine in engines:
                ledger.update(engine.ledger)
            out["trade"]["candles"] = {
                "received": out["trade"]["applied"],
                "applied": ledger["applied"],
                "dropped": {r: ledger[r] for r in LEDGER if r != "applied" and ledger[r]},
                "held": sum(engine.held for engine in engines),
            }
        return out
