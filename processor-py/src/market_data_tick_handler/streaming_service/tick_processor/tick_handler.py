"""Wire frames in, closed candles and records out: validation, counting, and routing of each frame type
to its data type's processor (``data_types/``) and of trades to the candle engines.

The hot path is :meth:`TickHandler.handle_frame`; it works on whole columns. :meth:`process_tick`
takes one tick of any data type as a dict (the seeds' walkthrough 9) and runs it through the same path.
Book snapshots, derivative tickers and liquidations also feed the candles' feature context
(``data_types/feature_context.py``); every frame feeds gap detection (``data_types/gaps.py``).

Bad input never stops it. A frame that cannot be decoded (``wire/codec.py`` checks the layout and the
header) is counted by reason and skipped; a repeated or older ``seq`` of a session is dropped
(``frames_duplicate``), never applied twice; a bad row (symbol index, timestamp outside
2000..2100, price, amount, enum code, invalid UTF-8, ...: ``data_types/base.py``) is dropped by
reason and the good rows of its frame are kept; and an exception while applying a frame is caught in
:meth:`handle_frame`, counted (``frames_failed``) and logged with the frame's seq and type. Every row
ends up counted once: :meth:`row_ledger` and :meth:`frame_ledger`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ...timeutil import iso_us, now_us, parse_iso_us
from ...wire import Frame, WireError, decode_frame, encode_frame, load_schema, rows_to_columns
from ..candle_processor import DEFAULT_TIMEFRAMES, Candle, CandleBatch, CandleEngine
from ..candle_processor.candle_engine import DEFAULT_MAX_JUMP_US, LEDGER
from ..data_types import DataTypeRouter, FeatureContext, GapProcessor, Processed, Record
from ..data_types.base import TS_MAX_US, TS_MIN_US, RowCheck, check_rows
from ..data_types.book_snapshots import BookSnapshotProcessor
from ..data_types.router import FEATURE_GROUP_OF
from ..data_types.trades import compile_trade_check, trade_validity, trades_all_valid
from ..hft_features import LiveFeatures
from ..hft_features.inputs import candle_fields
from ..instrument_service import InstrumentMapper

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CandleSettings:
    timeframes: tuple[str, ...] = DEFAULT_TIMEFRAMES
    clock: str = "event"  # "event" (replay, batch) or "wall" (live)
    grace_ms: int = 250
    late_policy: str = "drop"
    revise_window: int = 4
    hft_timeframes: tuple[str, ...] = ()  # features on these timeframes (none by default here)
    feature_groups: tuple[str, ...] = ()  # book, derivative, liquidations, as those types are enabled
    max_jump_us: int = DEFAULT_MAX_JUMP_US  # event clock: a trade further ahead needs confirming


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

    @property
    def candle_count(self) -> int:
        return sum(len(batch) for batch in self.batches)

    @property
    def candles(self) -> list[Candle]:
        return [c for batch in self.batches for c in batch]


FEATURE_TYPE_OF = {group: data_type for data_type, group in FEATURE_GROUP_OF.items()}
#: tick dict ``type`` -> wire frame type (data type names and tardis' normalized type names)
TICK_TYPES = {
    "trade": "trade", "trades": "trade",
    "book_snapshot": "book_snapshot", "book_snapshots": "book_snapshot",
    "derivative_ticker": "derivative_ticker",
    "liquidation": "liquidation", "liquidations": "liquidation",
    "option_summary": "option_summary", "options_chain": "option_summary",
}  # fmt: skip
#: tardis-dev's normalized field names, where they are not the camel case of the wire's
_TARDIS_NAMES = {
    "expiration": "expirationDate", "best_bid_iv": "bestBidIV", "best_ask_iv": "bestAskIV",
    "mark_iv": "markIV",
}  # fmt: skip
_TIME_COLUMNS = ("funding_timestamp", "expiration")
MAX_SESSIONS = 64  # sessions whose next seq is remembered (the least recently seen is forgotten)
MAX_SEQ_JUMP = 1_000_000  # a seq further ahead is dropped unless the next frame follows it
LOG_FIRST, LOG_EVERY = 20, 1000  # a kind of bad input is logged 20 times, then every 1000th time
#: frame-level counts of ``frame_ledger``: received = decoded + undecodable; decoded frames are
#: applied, duplicate, seq_jump, failed or unhandled
FRAME_COUNTS = (
    "frames_received", "frames_decoded", "frames_undecodable", "frames_applied", "frames_duplicate",
    "frames_seq_jump", "frames_failed", "frames_unhandled", "frames_lost",
)  # fmt: skip


def _camel(name: str) -> str:
    if name in _TARDIS_NAMES:
        return _TARDIS_NAMES[name]
    first, *rest = name.split("_")
    return first + "".join(w.title() for w in rest)


def _us(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return parse_iso_us(value)
    if hasattr(value, "timestamp"):  # datetime
        return parse_iso_us(value.isoformat())
    return int(value)


class TickHandler:
    def __init__(
        self,
        settings: CandleSettings | None = None,
        mapper: InstrumentMapper | None = None,
        now: Callable[[], int] = now_us,
        router: DataTypeRouter | None = None,
    ) -> None:
        """``router``: the data types (default: every type, walkthrough-10 defaults); its clock and
        ``now`` should be the candle clock's."""
        self.settings = settings or CandleSettings()
        self.router = router or DataTypeRouter(mapper=mapper, clock=self.settings.clock, now=now)
        self.mapper = mapper or self.router.mapper
        self._now = now
        self._schema = load_schema()
        self.engines: dict[str, CandleEngine] = {}
        self.features: dict[str, LiveFeatures] = {}  # by exchange, when hft_timeframes are set
        self.contexts: dict[str, FeatureContext] = {}  # by exchange, when feature_groups are set too
        self.gaps: GapProcessor = self.router.processor("gaps")  # type: ignore[assignment]
        self._sessions: dict[str, int] = {}  # session -> next expected seq, least recently seen first
        self._seq_jumps: dict[str, int] = {}  # session -> seq of a frame dropped as an implausible jump
        self.counts: Counter[str] = Counter()
        self.ticks_by_type: Counter[str] = Counter()
        self.ticks_by_symbol: dict[str, Counter[str]] = {}  # "exchange:SYMBOL" -> ticks per frame type
        self._ticks: dict[str, dict[str, Counter[str]]] = defaultdict(dict)  # exchange -> symbol -> same
        self.records_by_type: Counter[str] = Counter()
        self.bad_rows: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.errors: list[str] = []  # the last few error messages, for get_stats()
        self._logged: Counter[str] = Counter()  # occurrences per kind of logged bad input
        self._gap_records: list[Record] = []
        self._accounted = 0  # rows of the frame being handled counted so far (applied or dropped)
        self.last_result: FrameResult | None = None  # of the last process_tick
        compile_trade_check()  # at start, not at the first trade frame

    # -- engines -------------------------------------------------------------------------------
    def engine(self, exchange: str) -> CandleEngine:
        engine = self.engines.get(exchange)
        if engine is None:
            s = self.settings
            engine = self.engines[exchange] = CandleEngine(
                exchange,
                timeframes=s.timeframes,
                clock=s.clock,  # type: ignore[arg-type]
                grace_us=s.grace_ms * 1000,
                late_policy=s.late_policy,  # type: ignore[arg-type]
                revise_window=s.revise_window,
                symbol_of=self.mapper.to_symbol,
                now_us=self._now,
                max_jump_us=s.max_jump_us,
            )
            engine.tick_counts = self._ticks[exchange]
            if s.hft_timeframes:
                self.features[exchange] = LiveFeatures(engine, s.hft_timeframes, groups=s.feature_groups)  # type: ignore[arg-type]
                if s.feature_groups:
                    self.contexts[exchange] = FeatureContext()
        return engine

    def warm_up(self, candles: Iterable[Any]) -> int:
        """Load recent candles (see ``LiveFeatures.warm_up``) so that live features start full; returns
        how many were used."""
        by_exchange: dict[str, list[Any]] = defaultdict(list)
        for candle in candles:
            fields = candle_fields(candle)
            by_exchange[fields.get("exchange") or "binance"].append(fields)
        used = 0
        for exchange, rows in by_exchange.items():
            self.engine(exchange)
            if exchange in self.features:
                used += self.features[exchange].warm_up(rows)
        self.counts["warmup_candles"] += used
        return used

    def _annotated(self, exchange: str, batch: CandleBatch) -> CandleBatch:
        features = self.features.get(exchange)
        if features is not None and batch:
            context = self.contexts.get(exchange)
            features.annotate(batch, context)
            closed = self.engines[exchange].closed_through
            if context is not None and closed is not None:
                context.prune(closed - features.longest_us)
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
            self._error("bad_frames", f"undecodable frame of {len(data)} bytes: {exc}", kind=exc.reason)
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
        self.counts["frames"] += 1
        n = frame.n
        if n:
            self.counts[f"rows_received.{frame.type}"] += n
        self._accounted = 0
        try:
            if not self._check_seq(frame):
                self._drop_rows(frame.type, "duplicate_frame", n)
                return FrameResult()
            handler = getattr(self, f"_on_{frame.type}", None)
            if handler is None:
                self.counts["frames_unhandled"] += 1
                self.counts[f"frames_unhandled_{frame.type}"] += 1
                self._drop_rows(frame.type, "unhandled", n)
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
            self._drop_rows(frame.type, "frame_failed", n - self._accounted)
            message = (
                f"frame seq={frame.seq} type={frame.type} session={frame.session} failed:"
                f" {type(exc).__name__}: {exc}; counted (frames_failed) and skipped"
            )
            log.error("%s", message, exc_info=True)
            self.errors = [*self.errors[-9:], message]
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
            self._log_limited(
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
                self._log_limited(
                    "frames_seq_jump",
                    f"session {session}: frame seq {seq} is {seq - expected} ahead of the next expected"
                    f" ({expected}): dropped (frames_seq_jump) unless the next frame follows it",
                )
                return False
            lost = seq - expected - (1 if self._seq_jumps.pop(session, None) == seq - 1 else 0)
            self.counts["frames_lost"] += lost
            self._log_limited(
                "frames_lost", f"session {session}: {lost} frame(s) lost (seq {expected}..{seq - 1})"
            )
            self.gaps.frames_lost()
        self._sessions[session] = seq + 1
        return True

    def _on_start(self, frame: Frame) -> FrameResult:
        h = frame.header
        log.info(
            "ingester session %s: source=%s exchanges=%s data_types=%s speed=%s",
            frame.session,
            h.get("source"),
            h.get("exchanges"),
            h.get("data_types"),
            h.get("speed"),
        )
        data_types, exchanges = h.get("data_types"), h.get("exchanges")
        if (
            h.get("source") != "synthetic"
            and type(data_types) is list
            and all(type(t) is str for t in data_types)
        ):
            exchanges = [e for e in exchanges if type(e) is str] if type(exchanges) is list else []
            reasons = h.get("unavailable") if type(h.get("unavailable")) is dict else None
            missing = set(self.router.check_start(exchanges, data_types, reasons))
            missing.update(t for exchange in exchanges for t in self.router.unavailable(exchange))
            groups = tuple(g for g in self.settings.feature_groups if FEATURE_TYPE_OF.get(g) not in missing)
            if groups != self.settings.feature_groups and not self.engines:
                # no context will come for these: their features are left out, not published as nulls
                self.settings = replace(self.settings, feature_groups=groups)
        return FrameResult()

    def _on_end(self, frame: Frame) -> FrameResult:
        h = frame.header
        if h.get("reason") == "error":
            self._error("ingester_errors", f"ingester session {frame.session} failed: {h.get('error')}")
        return FrameResult(batches=self.finish(), ended=True, end_header=h)

    def _on_ledger(self, frame: Frame) -> FrameResult:
        """The ingester's periodic counts: the service holds them against what it received
        (``StreamingService._check_ledger_frame``); nothing to apply here."""
        return FrameResult()

    def _on_disconnect(self, frame: Frame) -> FrameResult:
        self._count_rows(frame, "disconnect")
        check = self._check_rows(frame, {}, "disconnects")
        sym = frame.columns["sym"][check.kept]
        for exchange in dict.fromkeys(frame.symbols[i][0] for i in sym.tolist()):
            self.counts["disconnects"] += 1
            log.warning("%s disconnected: candles until its next message are flagged has_gap", exchange)
        self.gaps.disconnect(frame, check.kept)
        self._applied(frame.type, frame.n - check.count)
        return FrameResult()

    # -- gaps ----------------------------------------------------------------------------------
    def _apply_gaps(self) -> None:
        """Gaps opened or ended since the last call: to the candle engines (has_gap), the log and the
        next result."""
        records = self.gaps.drain()
        if not records:
            return
        groups: dict[tuple[str, str, int, int | None], list[str]] = defaultdict(list)
        for r in records:
            self.engine(r.exchange).set_gap([r.exchange_symbol], r.start, r.end)  # type: ignore[attr-defined]
            groups[(r.exchange, r.reason, r.start, r.end)].append(r.exchange_symbol)  # type: ignore[attr-defined]
            if r.end is None:  # type: ignore[attr-defined]
                self.counts[f"gaps_{r.reason}"] += 1  # type: ignore[attr-defined]
        for (exchange, reason, start, end), symbols in groups.items():
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
    def _count_rows(self, frame: Frame, kind: str) -> None:
        n, symbols = frame.n, frame.symbols
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
                counter = self._ticks[exchange].get(symbol)
                if counter is None:
                    counter = self._ticks[exchange][symbol] = self.ticks_by_symbol[f"{exchange}:{symbol}"] = (
                        Counter()
                    )
                counter[kind] += k

    def _observe(self, frame: Frame, kept: np.ndarray | None = None) -> None:
        """Every data frame: counted, and its valid rows (``kept``) seen by gap detection (which may end
        or open gaps); in event mode rows far ahead of the candle clock do not move the gaps' clock."""
        self._count_rows(frame, frame.type)
        horizon = None
        if self.settings.clock == "event" and self.engines:
            horizon = {
                x: e.clock_us + e.max_jump_us for x, e in self.engines.items() if e.clock_us is not None
            }
        self.gaps.observe(frame, kept, horizon)
        self.gaps.check()
        self._apply_gaps()

    def _run(self, data_type: str, frame: Frame, count_bad: bool = True) -> Processed | None:
        """The processor of ``data_type`` on ``frame`` (None when the type is disabled); bad rows are
        counted by reason and the first is named in the log. ``count_bad``: the frame's rows are
        counted (bad ones, and the applied ones in the ledger) on this call."""
        if not self.router.enabled(data_type):
            self.drops[f"{data_type}_disabled"] += frame.n
            return None
        processed = self.router.processor(data_type).process(frame)
        if count_bad:
            if processed.bad_rows:
                self.bad_rows[frame.type] += processed.bad_rows
                self._error(f"bad_{data_type}", processed.error or "", count=processed.bad_rows)
                for reason, k in processed.dropped.items():
                    self._drop_rows(frame.type, reason, k)
            self._applied(frame.type, frame.n - processed.bad_rows)
        self.records_by_type[data_type] += len(processed.records)
        return processed

    def _check_rows(self, frame: Frame, bad: dict[str, np.ndarray], data_type: str) -> RowCheck:
        """``data_types.base.check_rows`` for the frames that have no processor of their own (trades on
        the candle path, disconnects): bad rows counted by reason, the first named in the log."""
        check = check_rows(frame, bad)
        if check.count:
            self.bad_rows[frame.type] += check.count
            self._error(f"bad_{data_type}", check.error or "", count=check.count)
            for reason, k in check.reasons.items():
                self._drop_rows(frame.type, reason, k)
        return check

    def _drop_rows(self, frame_type: str, reason: str, count: int) -> None:
        if count > 0:
            self.drops[f"{frame_type}.{reason}"] += count
            self._accounted += count

    def _applied(self, frame_type: str, count: int) -> None:
        if count > 0:
            self.counts[f"rows_applied.{frame_type}"] += count
            self._accounted += count

    def _context_rows(self, frame: Frame, kept: np.ndarray | None):
        """(feature context, engine slots, frame rows) per exchange of the frame that has a context."""
        if not self.contexts and not (self.settings.hft_timeframes and self.settings.feature_groups):
            return
        rows = np.flatnonzero(kept) if kept is not None else np.arange(frame.n)
        if not len(rows):
            return
        sym = frame.columns["sym"][rows]
        for exchange in dict.fromkeys(e for e, _ in frame.symbols):
            engine = self.engine(exchange)
            context = self.contexts.get(exchange)
            if context is None:
                continue
            table = np.array(
                [engine.slot(s) if e == exchange else -1 for e, s in frame.symbols], dtype=np.int64
            )
            slots = table[sym]
            mine = slots >= 0
            yield context, slots[mine], rows[mine]

    def _on_book_snapshot(self, frame: Frame) -> FrameResult:
        processed = self._run("book_snapshots", frame)
        self._observe(frame, processed.kept if processed is not None else self._rows_ok(frame))
        if processed is None:
            self._drop_rows(frame.type, "disabled", frame.n)
            return FrameResult()
        if "book" in self.settings.feature_groups:
            processor: BookSnapshotProcessor = self.router.processor("book_snapshots")  # type: ignore[assignment]
            levels = processor.levels(frame)
            ts = frame.columns["timestamp"]
            for context, slots, rows in self._context_rows(frame, processed.kept):
                context.on_book(
                    slots, ts[rows], levels["bid_price"][rows], levels["bid_amount"][rows],
                    levels["ask_price"][rows], levels["ask_amount"][rows],
                )  # fmt: skip
        return FrameResult(records=list(processed.records))

    def _on_derivative_ticker(self, frame: Frame) -> FrameResult:
        """Derivative tickers, and funding rates from them (the frame feeds both, either one alone)."""
        wanted = [t for t in ("derivative_ticker", "funding_rates") if self.router.enabled(t)]
        if not wanted:
            self._observe(frame, self._rows_ok(frame))
            self.drops["derivative_ticker_disabled"] += frame.n
            self._drop_rows(frame.type, "disabled", frame.n)
            return FrameResult()
        records: list[Record] = []
        kept = None
        for k, data_type in enumerate(wanted):
            processed = self._run(data_type, frame, count_bad=k == 0)  # same rows, same checks: once
            assert processed is not None
            records += processed.records
            kept = processed.kept
        self._observe(frame, kept)
        if "derivative" in self.settings.feature_groups:
            c = frame.columns
            for context, slots, rows in self._context_rows(frame, kept):
                context.on_derivative(
                    slots, c["timestamp"][rows], c["funding_rate"][rows], c["open_interest"][rows],
                    c["mark_price"][rows], c["index_price"][rows],
                )  # fmt: skip
        return FrameResult(records=records)

    def _on_liquidation(self, frame: Frame) -> FrameResult:
        processed = self._run("liquidations", frame)
        self._observe(frame, processed.kept if processed is not None else self._rows_ok(frame))
        if processed is None:
            self._drop_rows(frame.type, "disabled", frame.n)
            return FrameResult()
        if "liquidations" in self.settings.feature_groups:
            c = frame.columns
            for context, slots, rows in self._context_rows(frame, processed.kept):
                context.on_liquidations(slots, c["timestamp"][rows], c["side"][rows], c["amount"][rows])
        return FrameResult(records=list(processed.records))

    def _on_option_summary(self, frame: Frame) -> FrameResult:
        processed = self._run("options_chain", frame)
        self._observe(frame, processed.kept if processed is not None else self._rows_ok(frame))
        if processed is None:
            self._drop_rows(frame.type, "disabled", frame.n)
            return FrameResult()
        return FrameResult(records=list(processed.records))

    @staticmethod
    def _rows_ok(frame: Frame) -> np.ndarray:
        """The rows of a frame whose type is disabled that gap detection may still trust."""
        return check_rows(frame, {}).kept

    def _on_trade(self, frame: Frame) -> FrameResult:
        c = frame.columns
        n = frame.n
        sym, ts, price, amount, side = c["sym"], c["timestamp"], c["price"], c["amount"], c["side"]
        if trades_all_valid(frame):
            self._observe(frame)
        else:
            kept = self._check_rows(frame, trade_validity(frame), "trades").kept
            self._observe(frame, kept)
            sym, ts, price, amount, side = sym[kept], ts[kept], price[kept], amount[kept], side[kept]
        symbols = frame.symbols
        out: list[CandleBatch] = []
        exchanges = {e for e, _ in symbols}
        for exchange in exchanges:
            names = [s if e == exchange else "" for e, s in symbols]
            if len(exchanges) == 1:
                part = (sym, ts, price, amount, side)
            else:
                mask = np.isin(sym, [i for i, (e, _) in enumerate(symbols) if e == exchange])
                part = (sym[mask], ts[mask], price[mask], amount[mask], side[mask])
            batch = self.engine(exchange).on_trades(names, *part)
            self._applied(frame.type, len(part[1]))  # handed to the candle engine, which counts them on
            closed = self._annotated(exchange, batch)
            if closed:
                out.append(closed)
                self.counts["candles_out"] += len(closed)
        return FrameResult(batches=out, trades=n)

    def _error(self, counter: str, message: str, count: int = 1, kind: str = "") -> None:
        """Count ``count`` under ``counter`` and log ``message`` (see ``_log_limited``; ``kind`` refines
        the key, e.g. the reason a frame is undecodable)."""
        self.counts[counter] += count
        self._log_limited(f"{counter}:{kind}", message)

    def _log_limited(self, key: str, message: str) -> None:
        """An ERROR line for each of the first ``LOG_FIRST`` occurrences of a kind of bad input, then
        for every ``LOG_EVERY``-th: a flood of bad input must not become a flood of log lines (every
        occurrence is counted all the same)."""
        self.errors = [*self.errors[-9:], message]
        n = self._logged[key] = self._logged[key] + 1
        if n <= LOG_FIRST:
            log.error(
                "%s%s", message, f" (logging only every {LOG_EVERY}th from now on)" if n == LOG_FIRST else ""
            )
        elif n % LOG_EVERY == 0:
            log.error("%s (occurrence %d of this kind)", message, n)

    # -- clock ---------------------------------------------------------------------------------
    def next_deadline_us(self) -> int | None:
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

    # -- the seeds' single-tick API ------------------------------------------------------------
    async def process_tick(self, tick: dict[str, Any]) -> bool:
        """Process one normalized tick given as a dict (walkthrough 9): ``type`` is a data type
        (``trades``, ``book_snapshots``, ``derivative_ticker``, ``liquidations``, ``options_chain``) or
        tardis' type name (``trade``, ``book_snapshot``, ``liquidation``, ``option_summary``); fields in
        tardis' normalized names (``price``, ``bids: [{price, amount}]``, ``fundingRate``,
        ``strikePrice``, ...) or the wire's. Returns False, with the reason logged and counted, when the
        tick is not valid; the records and candles it produced are in ``last_result``."""
        try:
            data = self._tick_to_frame(tick)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            self._error("bad_ticks", f"bad tick {tick!r}: {exc}")
            return False
        before = sum(self.bad_rows.values())
        self.last_result = self.handle_bytes(data)
        return sum(self.bad_rows.values()) == before

    def _tick_to_frame(self, tick: dict[str, Any]) -> bytes:
        kind = tick.get("type", "trade")
        frame_type = TICK_TYPES.get(kind)
        if frame_type is None:
            raise ValueError(f"type {kind!r} is not a data type; known: {', '.join(TICK_TYPES)}")
        exchange = tick["exchange"]
        symbol = tick.get("exchange_symbol") or tick["symbol"]
        exchange_symbol = symbol if "-" not in symbol else self.mapper.to_exchange_symbol(exchange, symbol)
        ts_us = _us(tick["timestamp"])
        local = tick.get("local_timestamp", tick.get("localTimestamp"))
        local_us = _us(local) if local is not None else self._now()
        header: dict[str, Any] = {
            "type": frame_type,
            "seq": self.counts["single_ticks"],
            "session": "process_tick",
            "symbols": [[exchange, exchange_symbol]],
            "recv_mono_us": 0,
            "sent_mono_us": 0,
        }
        row: dict[str, Any] = {"sym": 0, "timestamp": ts_us, "local_timestamp": local_us}

        def get(name: str) -> Any:
            value = tick.get(name, tick.get(_camel(name)))
            return None if value is None or value == "" else value

        if frame_type == "book_snapshot":
            sides = {}
            for side in ("bids", "asks"):
                levels = [
                    (lv["price"], lv["amount"]) if isinstance(lv, dict) else (lv[0], lv[1])
                    for lv in tick.get(side) or []
                ]
                sides[side] = levels
            depth = int(tick.get("depth") or max(len(sides["bids"]), len(sides["asks"]), 1))
            header["depth"] = depth
            header["interval_ms"] = int(tick.get("interval_ms", tick.get("interval")) or 0)
            for side, prefix in (("bids", "bid"), ("asks", "ask")):
                levels = sides[side][:depth] + [(None, None)] * (depth - len(sides[side][:depth]))
                row[f"{prefix}_price"] = [None if p is None else float(p) for p, _ in levels]
                row[f"{prefix}_amount"] = [None if a is None else float(a) for _, a in levels]
        else:
            for column in self._schema.frames[frame_type].columns[3:]:
                name = column.name
                value = get(name)
                if column.dtype == "str":
                    row[name] = "" if value is None else str(value)
                elif column.enum:
                    row[name] = value or "unknown"
                elif name in _TIME_COLUMNS:
                    row[name] = _us(value)
                else:
                    row[name] = None if value is None else float(value)
        self.counts["single_ticks"] += 1
        return encode_frame(header, rows_to_columns(frame_type, header, [row], self._schema), self._schema)

    # -- the ledger ----------------------------------------------------------------------------
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

    def row_ledger(self) -> dict[str, dict[str, Any]]:
        """Per frame type that carried rows: ``received`` = ``applied`` + sum(``dropped``), dropped by
        reason: a frame-level one (``duplicate_frame``, ``frame_failed``, ``disabled``, ``unhandled``)
        or the first bad field of the row (``sym``, ``timestamp``, ``price``, ...). A trade is applied
        when it is handed to the candle engines; what they did with it is ``candles``: ``received``
        (= the trades applied) = ``applied`` (in a candle, or revising one) + sum(``dropped``: ``late``,
        ``late_too_old``, ``ahead``, ``jump``) + ``held`` (waiting for a clock jump's confirmation).
        Counters only, read on demand."""
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
            engines = Counter[str]()
            for engine in self.engines.values():
                engines.update(engine.ledger)
            out["trade"]["candles"] = {
                "received": out["trade"]["applied"],
                "applied": engines["applied"],
                "dropped": {r: engines[r] for r in LEDGER if r != "applied" and engines[r]},
                "held": sum(engine.held for engine in self.engines.values()),
            }
        return out

    def get_stats(self) -> dict[str, Any]:
        engines = {name: e.get_stats() for name, e in self.engines.items()}
        late = sum(e["late_ticks"] for e in engines.values())
        return {
            "counts": dict(self.counts),
            "ticks_by_type": dict(self.ticks_by_type),
            "ticks_by_symbol": {k: dict(v) for k, v in self.ticks_by_symbol.items()},
            "records_by_type": dict(self.records_by_type),
            "bad_rows": dict(self.bad_rows),
            "drops": {
                "bad_rows": sum(self.bad_rows.values()),
                "bad_frames": self.counts.get("bad_frames", 0),
                "late": sum(e["late_dropped"] for e in engines.values()),
                "ahead": sum(e["ahead_dropped"] for e in engines.values()),
                "jump": sum(e["jump_dropped"] for e in engines.values()),
                **dict(self.drops),
            },
            "frame_ledger": self.frame_ledger(),
            "row_ledger": self.row_ledger(),
            "late_ticks": late,
            "gaps": {**self.gaps.opened, "open": self.gaps.open_gaps},
            "engines": engines,
            "features": {name: dict(f.features.stats) for name, f in self.features.items()},
            "recent_errors": list(self.errors),
        }
