"""Wire frames in, closed candles and records out: validation, counting, and routing of each frame type
to its data type's processor (``data_types/``) and of trades to the candle engines.

The hot path is :meth:`TickHandler.handle_frame`; it works on whole columns. :meth:`process_tick`
takes one tick of any data type as a dict (the seeds' walkthrough 9) and runs it through the same path.
Book snapshots, derivative tickers and liquidations also feed the candles' feature context
(``data_types/feature_context.py``); every frame feeds gap detection (``data_types/gaps.py``).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ...timeutil import iso_us, now_us, parse_iso_us
from ...wire import Frame, WireError, decode_frame, encode_frame, load_schema, rows_to_columns
from ..candle_processor import DEFAULT_TIMEFRAMES, Candle, CandleBatch, CandleEngine
from ..data_types import DataTypeRouter, FeatureContext, GapProcessor, Processed, Record
from ..data_types.book_snapshots import BookSnapshotProcessor
from ..data_types.router import FEATURE_GROUP_OF
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
        self._sessions: dict[str, int] = {}  # session -> next expected seq
        self.counts: Counter[str] = Counter()
        self.ticks_by_type: Counter[str] = Counter()
        self.ticks_by_symbol: dict[str, Counter[str]] = {}  # "exchange:SYMBOL" -> ticks per frame type
        self._ticks: dict[str, dict[str, Counter[str]]] = defaultdict(dict)  # exchange -> symbol -> same
        self.records_by_type: Counter[str] = Counter()
        self.bad_rows: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.errors: list[str] = []  # the last few error messages, for get_stats()
        self._gap_records: list[Record] = []
        self.last_result: FrameResult | None = None  # of the last process_tick

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
        """The first step of ``handle_bytes``: the frame, or None when undecodable (counted and logged);
        for a caller that looks at the frame before ``handle_frame`` (``first_tick_us``)."""
        try:
            return decode_frame(data, self._schema)
        except WireError as exc:
            self._error("bad_frames", f"undecodable frame of {len(data)} bytes: {exc}")
            return None

    @staticmethod
    def first_tick_us(frame: Frame) -> int | None:
        """The earliest exchange timestamp of a frame that carries ticks (trades, book snapshots, tickers,
        liquidations, option summaries); None for control frames (start, end, disconnect) and empty ones."""
        ts = frame.columns.get("timestamp") if frame.n else None
        if ts is None:
            return None
        ts = ts[ts > 0]
        return int(ts.min()) if len(ts) else None

    def handle_frame(self, frame: Frame) -> FrameResult:
        self.counts["frames"] += 1
        self._check_seq(frame)
        handler = getattr(self, f"_on_{frame.type}", None)
        if handler is None:
            self.counts[f"frames_unhandled_{frame.type}"] += 1
            if self.counts[f"frames_unhandled_{frame.type}"] == 1:
                log.warning("no processor for %s frames: counted and skipped", frame.type)
            return FrameResult()
        result = handler(frame)
        self._apply_gaps()
        if self._gap_records:
            result.records[:0] = self._gap_records
            self._gap_records = []
        result.recv_mono_us = frame.header.get("recv_mono_us") or None
        return result

    def _check_seq(self, frame: Frame) -> None:
        session, seq = frame.session, frame.seq
        expected = self._sessions.get(session)
        if expected is None:
            if self._sessions:
                log.warning("new ingester session %s (seq %d)", session, seq)
            self.counts["sessions"] += 1
        elif seq > expected:
            self.counts["frames_lost"] += seq - expected
            log.error("session %s: %d frame(s) lost (seq %d..%d)", session, seq - expected, expected, seq - 1)
            self.gaps.frames_lost()
        elif seq < expected:
            self.counts["frames_out_of_order"] += 1
            log.error("session %s: frame seq %d arrived after %d", session, seq, expected - 1)
        self._sessions[session] = max(seq + 1, expected or 0)

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
        if h.get("source") != "synthetic" and isinstance(h.get("data_types"), list):
            exchanges = h.get("exchanges") or []
            missing = set(self.router.check_start(exchanges, h["data_types"]))
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

    def _on_disconnect(self, frame: Frame) -> FrameResult:
        self._count_rows(frame, "disconnect")
        for exchange in dict.fromkeys(frame.symbols[i][0] for i in frame.columns["sym"].tolist()):
            self.counts["disconnects"] += 1
            log.warning("%s disconnected: candles until its next message are flagged has_gap", exchange)
        self.gaps.disconnect(frame)
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

    def _observe(self, frame: Frame) -> None:
        """Every data frame: counted, and seen by gap detection (which may end or open gaps)."""
        self._count_rows(frame, frame.type)
        self.gaps.observe(frame)
        self.gaps.check()
        self._apply_gaps()

    def _run(self, data_type: str, frame: Frame, count_bad: bool = True) -> Processed | None:
        """The processor of ``data_type`` on ``frame`` (None when the type is disabled); bad rows are
        counted and the first is named in the log."""
        if not self.router.enabled(data_type):
            self.drops[f"{data_type}_disabled"] += frame.n
            return None
        processed = self.router.processor(data_type).process(frame)
        if processed.bad_rows and count_bad:
            self.bad_rows[frame.type] += processed.bad_rows
            self._error(f"bad_{data_type}", processed.error or "", count=processed.bad_rows)
        self.records_by_type[data_type] += len(processed.records)
        return processed

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
        self._observe(frame)
        processed = self._run("book_snapshots", frame)
        if processed is None:
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
        self._observe(frame)
        wanted = [t for t in ("derivative_ticker", "funding_rates") if self.router.enabled(t)]
        if not wanted:
            self.drops["derivative_ticker_disabled"] += frame.n
            return FrameResult()
        records: list[Record] = []
        kept = None
        for k, data_type in enumerate(wanted):
            processed = self._run(data_type, frame, count_bad=k == 0)  # same rows, same checks: once
            assert processed is not None
            records += processed.records
            kept = processed.kept
        if "derivative" in self.settings.feature_groups:
            c = frame.columns
            for context, slots, rows in self._context_rows(frame, kept):
                context.on_derivative(
                    slots, c["timestamp"][rows], c["funding_rate"][rows], c["open_interest"][rows],
                    c["mark_price"][rows], c["index_price"][rows],
                )  # fmt: skip
        return FrameResult(records=records)

    def _on_liquidation(self, frame: Frame) -> FrameResult:
        self._observe(frame)
        processed = self._run("liquidations", frame)
        if processed is None:
            return FrameResult()
        if "liquidations" in self.settings.feature_groups:
            c = frame.columns
            for context, slots, rows in self._context_rows(frame, processed.kept):
                context.on_liquidations(slots, c["timestamp"][rows], c["side"][rows], c["amount"][rows])
        return FrameResult(records=list(processed.records))

    def _on_option_summary(self, frame: Frame) -> FrameResult:
        self._observe(frame)
        processed = self._run("options_chain", frame)
        return FrameResult(records=list(processed.records) if processed is not None else [])

    def _on_trade(self, frame: Frame) -> FrameResult:
        self._observe(frame)
        c = frame.columns
        sym, ts, price, amount, side = c["sym"], c["timestamp"], c["price"], c["amount"], c["side"]
        n = frame.n
        symbols = frame.symbols
        if len(symbols) and n and (sym.max() >= len(symbols)):
            self._error("bad_frames", f"trade frame seq={frame.seq}: sym index beyond the symbol table")
            return FrameResult()
        valid = (price > 0) & (amount > 0) & np.isfinite(price) & np.isfinite(amount) & (ts > 0) & (side <= 2)
        if not valid.all():
            sym, ts, price, amount, side = self._drop_bad(frame, valid, sym, ts, price, amount, side)
        out: list[CandleBatch] = []
        exchanges = {e for e, _ in symbols}
        for exchange in exchanges:
            names = [s if e == exchange else "" for e, s in symbols]
            if len(exchanges) == 1:
                part = (sym, ts, price, amount, side)
            else:
                mask = np.isin(sym, [i for i, (e, _) in enumerate(symbols) if e == exchange])
                part = (sym[mask], ts[mask], price[mask], amount[mask], side[mask])
            closed = self._annotated(exchange, self.engine(exchange).on_trades(names, *part))
            if closed:
                out.append(closed)
                self.counts["candles_out"] += len(closed)
        return FrameResult(batches=out, trades=n)

    def _drop_bad(self, frame: Frame, valid: np.ndarray, *cols: np.ndarray) -> tuple[np.ndarray, ...]:
        bad = np.flatnonzero(~valid)
        sym, ts, price, amount, side = cols
        self.bad_rows["trade"] += len(bad)
        i = int(bad[0])
        exchange, symbol = frame.symbols[int(sym[i])] if int(sym[i]) < len(frame.symbols) else ("?", "?")
        reasons = []
        if not (price[i] > 0 and np.isfinite(price[i])):
            reasons.append(f"price={float(price[i])}")
        if not (amount[i] > 0 and np.isfinite(amount[i])):
            reasons.append(f"amount={float(amount[i])}")
        if ts[i] <= 0:
            reasons.append(f"timestamp={int(ts[i])}")
        if side[i] > 2:
            reasons.append(f"side code={int(side[i])}")
        self._error(
            "bad_trades",
            f"trade frame seq={frame.seq} row {i} ({exchange}:{symbol}): {', '.join(reasons)};"
            f" {len(bad)} bad row(s) in this frame dropped, the other {len(valid) - len(bad)} kept",
            count=len(bad),
        )
        return tuple(col[valid] for col in cols)

    def _error(self, counter: str, message: str, count: int = 1) -> None:
        self.counts[counter] += count
        log.error(message)
        self.errors = [*self.errors[-9:], message]

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
                **dict(self.drops),
            },
            "late_ticks": late,
            "gaps": {**self.gaps.opened, "open": self.gaps.open_gaps},
            "engines": engines,
            "features": {name: dict(f.features.stats) for name, f in self.features.items()},
            "recent_errors": list(self.errors),
        }
