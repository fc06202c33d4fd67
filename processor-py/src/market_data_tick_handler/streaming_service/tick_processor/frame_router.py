"""Wire frames in, closed candles and records out: ``FrameRouter`` decodes a frame, checks its sequence
and hands it to the handler its type has in one table (:attr:`FrameRouter.handlers`), built from the
data-type registry (``data_types/registry.py``):

- a frame of data types (book snapshots, derivative tickers, liquidations, option summaries): every
  enabled type made from it checks its rows and makes its records (``data_types/``), counted alike; the
  valid rows feed the features' context (``hft_features/stage.py``) of the feature group the type feeds;
- ``trade``: checked as the ``trades`` type, the valid rows go to the candle engine of their exchange
  (``candle_processor/candle_engine.py``), whose closed candles get their features;
- control frames: ``start`` (what the ingester streams), ``disconnect`` (gaps), ``ledger``, ``end``.

Every data frame feeds gap detection (``data_types/gaps.py``), whose gaps reach the candle engines
(``has_gap``). One clock (``clock.py``) drives the engines and the gaps, and one instrument table per
exchange (``instrument_service/instrument_table.py``) numbers the instruments of the engine, the gaps
and the features. Every count is in one :class:`~.counters.Counters`, which the ledgers read.

Bad input never stops it. A frame that cannot be decoded (``wire/codec.py`` checks the layout and the
header) is counted by reason and skipped; a repeated or older ``seq`` of a session is dropped
(``frames_duplicate``), never applied twice; a bad row (symbol index, timestamp outside
2000..2100, price, amount, enum code, invalid UTF-8, ...: ``data_types/base.py``) is dropped by
reason and the good rows of its frame are kept; and an exception while applying a frame is caught in
:meth:`FrameRouter.handle_frame`, counted (``frames_failed``) and logged with the frame's seq and type.
Every row ends up counted once: :meth:`FrameRouter.row_ledger` and :meth:`FrameRouter.frame_ledger`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from ...timeutil import iso_us, now_us
from ...wire import Frame, WireError, decode_frame, load_schema
from ..candle_processor import DEFAULT_TIMEFRAMES, Candle, CandleBatch, CandleEngine
from ..clock import DEFAULT_MAX_JUMP_US, make_clock
from ..data_types import DataTypeRouter, GapProcessor, Record
from ..data_types.base import TS_MAX_US, TS_MIN_US, check_rows
from ..data_types.book_snapshots import BookSnapshotProcessor
from ..data_types.registry import FEATURE_GROUP_OF, TYPES_OF_FRAME
from ..data_types.trades import TradeRows, compile_trade_check
from ..hft_features import FeatureStage
from ..instrument_service import InstrumentMapper
from .counters import Counters
from .log_budget import LogBudget

log = logging.getLogger(__name__)

MAX_SESSIONS = 64  # sessions whose next seq is remembered (the least recently seen is forgotten)
MAX_SEQ_JUMP = 1_000_000  # a seq further ahead is dropped unless the next frame follows it
#: feature group -> the data type that feeds it
FEATURE_TYPE_OF = {group: data_type for data_type, group in FEATURE_GROUP_OF.items()}


def _names(value: Any) -> bool:
    """A list of strings, as the ingester writes a header's list of types."""
    return type(value) is list and all(type(v) is str for v in value)


@dataclass(frozen=True, slots=True)
class ExchangeAsk:
    """What the ingester was asked for on one exchange: the wire frame types and the feature groups its
    candles carry (``DataTypeRouter``'s for the exchange, narrowed by its ``data_types`` in
    ``ingest.exchanges``). The start frame is checked against it, exchange by exchange."""

    frames: tuple[str, ...]
    feature_groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CandleSettings:
    timeframes: tuple[str, ...] = DEFAULT_TIMEFRAMES
    clock: str = "event"  # the clock made (``clock.make_clock``): "event" (replay, batch) or "wall" (live)
    grace_ms: int = 250
    late_policy: str = "drop"
    revise_window: int = 4
    hft_timeframes: tuple[str, ...] = ()  # features on these timeframes (none by default here)
    feature_groups: tuple[str, ...] = ()  # book, derivative, liquidations, as those types are enabled
    max_jump_us: int = DEFAULT_MAX_JUMP_US  # event clock: a trade further ahead needs confirming
    # by exchange, what was asked of it (several exchanges); an exchange not in it: every enabled type it
    # can have (``DataTypeRouter``) and ``feature_groups``
    asked: Mapping[str, ExchangeAsk] = field(default_factory=dict)


@dataclass(slots=True)
class FrameResult:
    """What one frame produced: candles closed or revised (a batch per exchange), the records of the
    other data types (``data_types/records.py``; gaps first), and whether the session ended."""

    batches: list[CandleBatch] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    ended: bool = False
    end_header: dict[str, Any] | None = None
    recv_mono_us: int | None = None  # ingester receipt of the frame's oldest tick (CLOCK_MONOTONIC)
    trades: int = 0  # trade rows the frame carried
    #: its valid trade rows, by reference, when the router keeps them (``FrameRouter.keep_trades``)
    trade_rows: list[TradeRows] = field(default_factory=list)

    @property
    def candle_count(self) -> int:
        return sum(len(batch) for batch in self.batches)

    @property
    def candles(self) -> list[Candle]:
        return [c for batch in self.batches for c in batch]


class FrameRouter:
    def __init__(
        self,
        settings: CandleSettings | None = None,
        mapper: InstrumentMapper | None = None,
        now: Callable[[], int] = now_us,
        router: DataTypeRouter | None = None,
    ) -> None:
        """``settings``: the candles and their clock (``now``: its system time); ``router``: the data types
        (default: every type, the registry's defaults), whose processors run on this clock and on its
        instrument tables (``mapper``'s, when it makes them)."""
        self.settings = settings or CandleSettings()
        self.clock = make_clock(self.settings.clock, now, self.settings.max_jump_us)
        self.router = router or DataTypeRouter(mapper=mapper, clock=self.clock)
        self.router.bind(self.clock)
        self.instruments = self.router.instruments
        self.mapper = self.instruments.mapper
        self._schema = load_schema()
        self.counters = Counters()
        self.engines: dict[str, CandleEngine] = {}
        self.features = FeatureStage(self.settings.hft_timeframes, self.settings.feature_groups)
        #: exchange -> the feature groups of its candles (an exchange not in it: ``feature_groups``)
        self.feature_groups_of = {x: a.feature_groups for x, a in self.settings.asked.items()}
        self.gaps: GapProcessor = self.router.processor("gaps")  # type: ignore[assignment]
        self._sessions: dict[str, int] = {}  # session -> next expected seq, least recently seen first
        self._seq_jumps: dict[str, int] = {}  # session -> seq of a frame dropped as an implausible jump
        self._gap_records: list[Record] = []
        #: gap lines in the log: at most 20 a minute, the others counted in one line (every gap is counted)
        self.gap_log = LogBudget(log, "gap")
        #: hand each trade frame's valid rows on (``FrameResult.trade_rows``): set when a sink wants them
        self.keep_trades = False
        #: frame type -> its handler
        self.handlers: dict[str, Callable[[Frame], FrameResult]] = {
            "start": self._on_start,
            "end": self._on_end,
            "ledger": self._on_ledger,
            "disconnect": self._on_disconnect,
            "trade": self._on_trades,
        }
        for frame_type, data_types in TYPES_OF_FRAME.items():
            self.handlers.setdefault(frame_type, partial(self._on_data_types, data_types))
        #: feature group -> what feeds the feature context from a frame's valid rows
        self._feeds: dict[str, Callable[[Frame, np.ndarray | None], None]] = {
            "book": self._feed_book,
            "derivative": self._feed_derivative,
            "liquidations": self._feed_liquidations,
        }
        compile_trade_check()  # at start, not at the first trade frame

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A checkpoint's router (pickled whole); one made before the gap log had a budget gets one."""
        self.__dict__.update(state)
        self.__dict__.setdefault("gap_log", LogBudget(log, "gap"))

    # -- the counts, as attributes -------------------------------------------------------------------
    @property
    def counts(self) -> Counter[str]:
        return self.counters.counts

    @property
    def ticks_by_type(self) -> Counter[str]:
        return self.counters.ticks_by_type

    @property
    def ticks_by_symbol(self) -> dict[str, Counter[str]]:
        return self.counters.ticks_by_symbol

    @property
    def records_by_type(self) -> Counter[str]:
        return self.counters.records_by_type

    @property
    def bad_rows(self) -> Counter[str]:
        return self.counters.bad_rows

    @property
    def drops(self) -> Counter[str]:
        return self.counters.drops

    @property
    def errors(self) -> list[str]:
        return self.counters.errors

    # -- engines -------------------------------------------------------------------------------
    def engine(self, exchange: str) -> CandleEngine:
        engine = self.engines.get(exchange)
        if engine is None:
            s = self.settings
            engine = self.engines[exchange] = CandleEngine(
                exchange,
                timeframes=s.timeframes,
                clock=self.clock,
                grace_us=s.grace_ms * 1000,
                late_policy=s.late_policy,  # type: ignore[arg-type]
                revise_window=s.revise_window,
                instruments=self.instruments.table(exchange),
            )
            engine.tick_counts = self.counters.ticks[exchange]
            self.features.attach(exchange, engine, self.feature_groups_of.get(exchange, s.feature_groups))
        return engine

    def warm_up(self, candles: Iterable[Any]) -> int:
        """Load recent candles (``FeatureStage.warm_up``) so that live features start full; returns how
        many were used."""
        used = self.features.warm_up(candles)
        self.counts["warmup_candles"] += used
        return used

    def _annotated(self, exchange: str, batch: CandleBatch) -> CandleBatch:
        self.features.annotate(exchange, batch)
        return batch

    # -- frames --------------------------------------------------------------------------------
    def handle_bytes(self, data: bytes | memoryview) -> FrameResult:
        frame = self.decode(data)
        return FrameResult() if frame is None else self.handle_frame(frame)

    def decode(self, data: bytes | memoryview) -> Frame | None:
        """The first step of ``handle_bytes``: the frame, or None when undecodable (counted by reason
        and logged); for a caller that looks at the frame before ``handle_frame`` (``first_tick_us``)."""
        self.counts["frames_received"] += 1
        try:
            frame = decode_frame(data, self._schema)
        except WireError as exc:
            self.counts["frames_undecodable"] += 1
            self.drops[f"frame.{exc.reason}"] += 1
            self.counters.error(
                "bad_frames", f"undecodable frame of {len(data)} bytes: {exc}", kind=exc.reason
            )
            return None
        self.counts["frames_decoded"] += 1
        return frame

    @staticmethod
    def first_tick_us(frame: Frame) -> int | None:
        """The earliest exchange timestamp of a frame that carries ticks (trades, book snapshots, tickers,
        liquidations, option summaries), among those in the sane range (``data_types/base.py``); None
        for control frames (start, end, disconnect) and empty ones."""
        ts = frame.columns.get("timestamp") if frame.n else None
        if ts is None:
            return None
        ts = ts[(ts >= TS_MIN_US) & (ts < TS_MAX_US)]
        return int(ts.min()) if len(ts) else None

    def handle_frame(self, frame: Frame) -> FrameResult:
        """Apply one decoded frame. Never raises: an exception is the last resort, caught here, counted
        (``frames_failed``, and the frame's unaccounted rows as ``<type>.frame_failed``), logged with
        the frame's seq and type, and the processor goes on."""
        c = self.counters
        c.frame(frame)
        n = frame.n
        try:
            if not self._check_seq(frame):
                c.dropped(frame.type, "duplicate_frame", n)
                return FrameResult()
            handler = self.handlers.get(frame.type)
            if handler is None:
                self.counts["frames_unhandled"] += 1
                self.counts[f"frames_unhandled_{frame.type}"] += 1
                c.dropped(frame.type, "unhandled", n)
                if self.counts[f"frames_unhandled_{frame.type}"] == 1:
                    log.warning("no processor for %s frames: counted and skipped", frame.type)
                return FrameResult()
            result = handler(frame)
            self._apply_gaps()
            if self._gap_records:
                result.records[:0] = self._gap_records
                self._gap_records = []
            recv = frame.header.get("recv_mono_us")
            if type(recv) is int and 0 < recv <= time.monotonic_ns() // 1000:
                result.recv_mono_us = recv
            self.counts["frames_applied"] += 1
            return result
        except Exception as exc:  # the last resort: one frame is lost, never the processor
            self.counts["frames_failed"] += 1
            self.drops[f"frame.failed.{type(exc).__name__}"] += 1
            c.dropped(frame.type, "frame_failed", n - c.accounted)
            message = (
                f"frame seq={frame.seq} type={frame.type} session={frame.session} failed:"
                f" {type(exc).__name__}: {exc}; counted (frames_failed) and skipped"
            )
            log.error("%s", message, exc_info=True)
            c.recent(message)
            if frame.type == "end":  # the session is over all the same
                return FrameResult(ended=True, end_header=frame.header)
            return FrameResult()

    def _check_seq(self, frame: Frame) -> bool:
        """Whether to apply the frame: a repeated or older seq of its session is not
        (``frames_duplicate``), nor a seq more than ``MAX_SEQ_JUMP`` ahead unless the next frame
        follows it (``frames_seq_jump``; one absurd seq must not make the rest of the session look
        repeated). A skipped seq is ``frames_lost`` and a gap."""
        session, seq = frame.session, frame.seq
        expected = self._sessions.pop(session, None)
        if expected is None:
            if self._sessions:
                log.warning("new ingester session %s (seq %d)", session, seq)
            self.counts["sessions"] += 1
            if len(self._sessions) >= MAX_SESSIONS:
                forgotten = next(iter(self._sessions))
                del self._sessions[forgotten]
                self._seq_jumps.pop(forgotten, None)
        elif seq < expected:
            self._sessions[session] = expected
            self.counts["frames_duplicate"] += 1
            self.counts["frames_out_of_order"] += 1
            self.counters.log_limited(
                "frames_duplicate",
                f"session {session}: frame seq {seq} repeats or precedes seq {expected - 1}: dropped"
                " (frames_duplicate)",
            )
            return False
        elif seq > expected:
            if seq - expected > MAX_SEQ_JUMP and self._seq_jumps.get(session) != seq - 1:
                self._sessions[session] = expected
                self._seq_jumps[session] = seq
                self.counts["frames_seq_jump"] += 1
                self.counters.log_limited(
                    "frames_seq_jump",
                    f"session {session}: frame seq {seq} is {seq - expected} ahead of the next expected"
                    f" ({expected}): dropped (frames_seq_jump) unless the next frame follows it",
                )
                return False
            lost = seq - expected - (1 if self._seq_jumps.pop(session, None) == seq - 1 else 0)
            self.counts["frames_lost"] += lost
            self.counters.log_limited(
                "frames_lost", f"session {session}: {lost} frame(s) lost (seq {expected}..{seq - 1})"
            )
            self.gaps.frames_lost()
        self._sessions[session] = seq + 1
        return True

    # -- control frames --------------------------------------------------------------------------
    def _on_start(self, frame: Frame) -> FrameResult:
        """What the ingester streams, against what was asked, exchange by exchange (``streams``, with
        several; else the header's ``data_types`` and ``unavailable``): each missing type is warned
        about, and before any candle engine exists the feature groups it would feed are left out of that
        exchange's candles (no context will come for them: not published as nulls)."""
        h = frame.header
        log.info(
            "ingester session %s: source=%s exchanges=%s data_types=%s speed=%s",
            frame.session,
            h.get("source"),
            h.get("exchanges"),
            h.get("data_types"),
            h.get("speed"),
        )
        data_types, exchanges, streams = h.get("data_types"), h.get("exchanges"), h.get("streams")
        if h.get("source") == "synthetic" or not _names(data_types):
            return FrameResult()
        if type(streams) is dict and streams:
            what = {
                x: (s.get("data_types"), s.get("unavailable")) for x, s in streams.items() if type(s) is dict
            }
        else:
            exchanges = [x for x in exchanges if type(x) is str] if type(exchanges) is list else []
            what = {x: (data_types, h.get("unavailable")) for x in exchanges}
        groups_of = {}
        for exchange, (streamed, reasons) in what.items():
            streamed = list(streamed) if _names(streamed) else []
            asked = self.settings.asked.get(exchange)
            if asked is not None:  # frames not asked of it (its data_types) are not missing
                streamed += [f for f in self.router.ingester_data_types(exchange) if f not in asked.frames]
            reasons = reasons if type(reasons) is dict else None
            missing = set(self.router.check_start([exchange], streamed, reasons))
            missing.update(self.router.unavailable(exchange))
            groups = self.feature_groups_of.get(exchange, self.settings.feature_groups)
            groups_of[exchange] = tuple(g for g in groups if FEATURE_TYPE_OF.get(g) not in missing)
        if groups_of and not self.engines:
            self.feature_groups_of.update(groups_of)
            union = tuple(g for g in self.settings.feature_groups if any(g in x for x in groups_of.values()))
            self.settings = replace(self.settings, feature_groups=union)
        return FrameResult()

    def _on_end(self, frame: Frame) -> FrameResult:
        h = frame.header
        if h.get("reason") == "error":
            message = f"ingester session {frame.session} failed: {h.get('error')}"
            self.counters.error("ingester_errors", message)
        return FrameResult(batches=self.finish(), ended=True, end_header=h)

    def _on_ledger(self, frame: Frame) -> FrameResult:
        """The ingester's periodic counts: the service holds them against what it received
        (``StreamingService._check_ledger_frame``); nothing to apply here."""
        return FrameResult()

    def _on_disconnect(self, frame: Frame) -> FrameResult:
        c = self.counters
        c.rows(frame)
        check = self.gaps.validate(frame)
        c.bad(frame.type, "disconnects", check)
        sym = frame.columns["sym"][check.kept]
        for exchange in dict.fromkeys(frame.symbols[i][0] for i in sym.tolist()):
            self.counts["disconnects"] += 1
            log.warning("%s disconnected: candles until its next message are flagged has_gap", exchange)
        self.gaps.disconnect(frame, check.kept)
        c.applied(frame.type, frame.n - check.count)
        return FrameResult()

    # -- gaps ----------------------------------------------------------------------------------
    def _observe(self, frame: Frame, kept: np.ndarray | None = None) -> None:
        """Every data frame: counted, and its valid rows (``kept``, default all) seen by gap detection
        (which may end or open gaps)."""
        self.counters.rows(frame)
        self.gaps.observe(frame, kept)
        self.gaps.check()
        self._apply_gaps()

    def _apply_gaps(self) -> None:
        """Gaps opened or ended since the last call: to the candle engines (has_gap), the log and the
        next result."""
        records = self.gaps.drain()
        if not records:
            return
        groups: dict[tuple[str, str, int, int | None], list[str]] = defaultdict(list)
        for r in records:
            self.engine(r.exchange).set_gap([r.exchange_symbol], r.start, r.end)
            groups[(r.exchange, r.reason, r.start, r.end)].append(r.exchange_symbol)
            if r.end is None:
                self.counts[f"gaps_{r.reason}"] += 1
        for (exchange, reason, start, end), symbols in groups.items():
            if not self.gap_log.allow(reason):
                continue
            names = ", ".join(symbols[:10]) + (f" and {len(symbols) - 10} more" if len(symbols) > 10 else "")
            log.warning(
                "gap (%s) on %s %s: from %s %s; candles in it are flagged has_gap",
                reason,
                exchange,
                names,
                iso_us(start),
                "until now (open)" if end is None else f"to {iso_us(end)}",
            )
        if self.router.enabled("gaps"):
            self._gap_records.extend(records)
            self.records_by_type["gaps"] += len(records)

    # -- data types ----------------------------------------------------------------------------
    def _on_data_types(self, data_types: tuple[str, ...], frame: Frame) -> FrameResult:
        """A frame that data types are made from (``TYPES_OF_FRAME``): each enabled one checks the rows
        and makes its records; the rows are counted once, by the first. The valid rows are seen by gap
        detection and feed the feature groups of the types (a frame of no enabled type: its rows are
        dropped as ``disabled``, and still seen by gap detection)."""
        c = self.counters
        wanted = [t for t in data_types if self.router.enabled(t)]
        if not wanted:
            self._observe(frame, check_rows(frame, {}).kept)
            self.drops[f"{data_types[0]}_disabled"] += frame.n
            c.dropped(frame.type, "disabled", frame.n)
            return FrameResult()
        records: list[Record] = []
        kept = None
        for k, data_type in enumerate(wanted):
            processor = self.router.processor(data_type)
            check = processor.validate(frame)
            if k == 0:  # the same rows, the same checks: counted once
                c.bad(frame.type, data_type, check)
                c.applied(frame.type, frame.n - check.count)
            made = processor.records(frame, check)
            self.records_by_type[data_type] += len(made)
            records += made
            kept = check.kept
        self._observe(frame, kept)
        if self.settings.hft_timeframes:
            for data_type in data_types:
                group = FEATURE_GROUP_OF.get(data_type)
                if group is not None and group in self.settings.feature_groups:
                    self._feeds[group](frame, kept)
        return FrameResult(records=records)

    def _context_rows(
        self, frame: Frame, kept: np.ndarray | None
    ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(exchange, instrument slots, frame rows) of the valid rows, per exchange of the frame; each
        exchange's engine is made (its features' context with it)."""
        rows = np.flatnonzero(kept) if kept is not None else np.arange(frame.n)
        if not len(rows):
            return
        sym = frame.columns["sym"][rows]
        for entries in self.instruments.of(frame.symbols).exchanges:
            exchange = entries.table.exchange
            self.engine(exchange)
            slots = entries.slot_of[sym]
            mine = slots >= 0
            yield exchange, slots[mine], rows[mine]

    def _feed_book(self, frame: Frame, kept: np.ndarray | None) -> None:
        processor: BookSnapshotProcessor = self.router.processor("book_snapshots")  # type: ignore[assignment]
        levels = processor.levels(frame)
        ts = frame.columns["timestamp"]
        for exchange, slots, rows in self._context_rows(frame, kept):
            self.features.on_book(
                exchange, slots, ts[rows], levels["bid_price"][rows], levels["bid_amount"][rows],
                levels["ask_price"][rows], levels["ask_amount"][rows],
            )  # fmt: skip

    def _feed_derivative(self, frame: Frame, kept: np.ndarray | None) -> None:
        c = frame.columns
        for exchange, slots, rows in self._context_rows(frame, kept):
            self.features.on_derivative(
                exchange, slots, c["timestamp"][rows], c["funding_rate"][rows], c["open_interest"][rows],
                c["mark_price"][rows], c["index_price"][rows],
            )  # fmt: skip

    def _feed_liquidations(self, frame: Frame, kept: np.ndarray | None) -> None:
        c = frame.columns
        for exchange, slots, rows in self._context_rows(frame, kept):
            self.features.on_liquidations(
                exchange, slots, c["timestamp"][rows], c["side"][rows], c["amount"][rows]
            )

    def _on_trades(self, frame: Frame) -> FrameResult:
        """Trades: checked as the ``trades`` type (its records are not made), seen by gap detection, and
        handed to the candle engine of their exchange; the candles they close get their features."""
        counters = self.counters
        check = self.router.processor("trades").validate(frame)
        counters.bad(frame.type, "trades", check)
        c = frame.columns
        sym, ts, price, amount, side = c["sym"], c["timestamp"], c["price"], c["amount"], c["side"]
        if check.count:
            kept = check.kept
            self._observe(frame, kept)
            sym, ts, price, amount, side = sym[kept], ts[kept], price[kept], amount[kept], side[kept]
        else:
            self._observe(frame)
        out: list[CandleBatch] = []
        exchanges = self.instruments.of(frame.symbols).exchanges
        for entries in exchanges:
            exchange = entries.table.exchange
            if len(exchanges) == 1:
                part = (sym, ts, price, amount, side)
            else:
                mask = np.isin(sym, entries.positions)
                part = (sym[mask], ts[mask], price[mask], amount[mask], side[mask])
            batch = self.engine(exchange).on_slots(entries.slot_of[part[0]], *part[1:])
            counters.applied(frame.type, len(part[1]))  # handed to the candle engine, which counts them on
            closed = self._annotated(exchange, batch)
            if closed:
                out.append(closed)
                self.counts["candles_out"] += len(closed)
        result = FrameResult(batches=out, trades=frame.n)
        if self.keep_trades:
            kept = check.kept if check.count else None
            result.trade_rows.append(TradeRows(frame, kept, self.instruments.of(frame.symbols).names))
        return result

    # -- clock ---------------------------------------------------------------------------------
    def next_deadline_us(self) -> int | None:
        """When the clock's timer must fire next (a bucket to close, a symbol going stale), or None."""
        deadlines = [d for e in self.engines.values() if (d := e.next_deadline_us()) is not None]
        stale = self.gaps.next_deadline_us()
        if stale is not None:
            deadlines.append(stale)
        return min(deadlines, default=None)

    def advance(self, now: int | None = None) -> list[CandleBatch]:
        return self._closed([self._annotated(x, e.advance(now)) for x, e in self.engines.items()])

    def poll(self, now: int | None = None) -> FrameResult:
        """The timer (wall clock): stale symbols become gaps, then the candles the clock has passed
        close."""
        self.gaps.check(now)
        self._apply_gaps()
        result = FrameResult(batches=self.advance(now), records=self._gap_records)
        self._gap_records = []
        return result

    def finish(self) -> list[CandleBatch]:
        return self._closed([self._annotated(x, e.finish()) for x, e in self.engines.items()])

    def _closed(self, batches: list[CandleBatch]) -> list[CandleBatch]:
        batches = [b for b in batches if b]
        self.counts["candles_out"] += sum(len(b) for b in batches)
        return batches

    # -- the ledger ----------------------------------------------------------------------------
    def frame_ledger(self) -> dict[str, Any]:
        """``Counters.frame_ledger``."""
        return self.counters.frame_ledger()

    def row_ledger(self) -> dict[str, dict[str, Any]]:
        """``Counters.row_ledger`` of this router's candle engines."""
        return self.counters.row_ledger(self.engines.values())
