"""Wire frames in, closed candles out: validation, counting and routing to the candle engines.

The hot path is :meth:`TickHandler.handle_frame`; it works on whole columns. :meth:`process_tick`
takes one tick as a dict (the seeds' walkthrough 9) and runs it through the same path.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...timeutil import now_us, parse_iso_us
from ...wire import Frame, WireError, decode_frame, encode_frame, load_schema
from ..candle_processor import DEFAULT_TIMEFRAMES, Candle, CandleBatch, CandleEngine
from ..candle_processor.trade_groups import SIDE_CODES
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
    """What one frame produced: candles closed or revised (a batch per exchange), and whether the
    session ended."""

    batches: list[CandleBatch] = field(default_factory=list)
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


class TickHandler:
    def __init__(
        self,
        settings: CandleSettings | None = None,
        mapper: InstrumentMapper | None = None,
        now: Callable[[], int] = now_us,
    ) -> None:
        self.settings = settings or CandleSettings()
        self.mapper = mapper or InstrumentMapper()
        self._now = now
        self._schema = load_schema()
        self.engines: dict[str, CandleEngine] = {}
        self.features: dict[str, LiveFeatures] = {}  # by exchange, when hft_timeframes are set
        self._sessions: dict[str, int] = {}  # session -> next expected seq
        self.counts: Counter[str] = Counter()
        self.ticks_by_type: Counter[str] = Counter()
        self.ticks_by_symbol: dict[str, Counter[str]] = defaultdict(Counter)
        self.bad_rows: Counter[str] = Counter()
        self.errors: list[str] = []  # the last few error messages, for get_stats()

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
            if s.hft_timeframes:
                self.features[exchange] = LiveFeatures(engine, s.hft_timeframes, groups=s.feature_groups)  # type: ignore[arg-type]
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
            features.annotate(batch)
        return batch

    # -- frames --------------------------------------------------------------------------------
    def handle_bytes(self, data: bytes | memoryview) -> FrameResult:
        try:
            frame = decode_frame(data, self._schema)
        except WireError as exc:
            self._error("bad_frames", f"undecodable frame of {len(data)} bytes: {exc}")
            return FrameResult()
        return self.handle_frame(frame)

    def handle_frame(self, frame: Frame) -> FrameResult:
        self.counts["frames"] += 1
        self._check_seq(frame)
        handler = getattr(self, f"_on_{frame.type}", None)
        if handler is None:
            self.counts[f"frames_unhandled_{frame.type}"] += 1
            if self.counts[f"frames_unhandled_{frame.type}"] == 1:
                log.warning("no processor for %s frames yet: counted and skipped", frame.type)
            return FrameResult()
        result = handler(frame)
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
        return FrameResult()

    def _on_end(self, frame: Frame) -> FrameResult:
        h = frame.header
        if h.get("reason") == "error":
            self._error("ingester_errors", f"ingester session {frame.session} failed: {h.get('error')}")
        return FrameResult(batches=self.finish(), ended=True, end_header=h)

    def _on_disconnect(self, frame: Frame) -> FrameResult:
        local = frame.columns["local_timestamp"]
        by_exchange: dict[str, list[str]] = defaultdict(list)
        for index in frame.columns["sym"].tolist():
            exchange, symbol = frame.symbols[index]
            by_exchange[exchange].append(symbol)
            self.ticks_by_symbol[f"{exchange}:{symbol}"]["disconnect"] += 1
        for exchange, symbols in by_exchange.items():
            self.counts["disconnects"] += 1
            log.warning(
                "%s disconnected (%d symbols): candles until the next tick are flagged has_gap",
                exchange,
                len(symbols),
            )
            self.engine(exchange).on_disconnect(symbols, int(local[0]))
        return FrameResult()

    def _on_trade(self, frame: Frame) -> FrameResult:
        c = frame.columns
        sym, ts, price, amount, side = c["sym"], c["timestamp"], c["price"], c["amount"], c["side"]
        n = frame.n
        self.ticks_by_type["trade"] += n
        symbols = frame.symbols
        if len(symbols) and n and (sym.max() >= len(symbols)):
            self._error("bad_frames", f"trade frame seq={frame.seq}: sym index beyond the symbol table")
            return FrameResult()
        counts = np.bincount(sym, minlength=len(symbols)).tolist()
        for (exchange, symbol), k in zip(symbols, counts, strict=True):
            if k:
                self.ticks_by_symbol[f"{exchange}:{symbol}"]["trade"] += k
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
        return min(deadlines, default=None)

    def advance(self, now: int | None = None) -> list[CandleBatch]:
        return self._closed([self._annotated(x, e.advance(now)) for x, e in self.engines.items()])

    def finish(self) -> list[CandleBatch]:
        return self._closed([self._annotated(x, e.finish()) for x, e in self.engines.items()])

    def _closed(self, batches: list[CandleBatch]) -> list[CandleBatch]:
        batches = [b for b in batches if b]
        self.counts["candles_out"] += sum(len(b) for b in batches)
        return batches

    # -- the seeds' single-tick API ------------------------------------------------------------
    async def process_tick(self, tick: dict[str, Any]) -> bool:
        """Process one normalized tick given as a dict (walkthrough 9). Returns False, with the reason
        logged and counted, when the tick is not valid."""
        try:
            data = self._tick_to_frame(tick)
        except (KeyError, ValueError, TypeError) as exc:
            self._error("bad_ticks", f"bad tick {tick!r}: {exc}")
            return False
        before = self.counts["bad_trades"]
        self.handle_bytes(data)
        return self.counts["bad_trades"] == before

    def _tick_to_frame(self, tick: dict[str, Any]) -> bytes:
        kind = tick.get("type", "trade")
        if kind not in ("trade", "trades"):
            raise ValueError(f"type {kind!r} is not handled by process_tick yet")
        exchange = tick["exchange"]
        symbol = tick["symbol"]
        exchange_symbol = symbol if "-" not in symbol else self.mapper.to_exchange_symbol(exchange, symbol)
        ts = tick["timestamp"]
        ts_us = parse_iso_us(ts) if isinstance(ts, str) else int(ts)
        local = tick.get("local_timestamp")
        local_us = parse_iso_us(local) if isinstance(local, str) else int(local or self._now())
        header = {
            "type": "trade",
            "seq": self.counts["single_ticks"],
            "session": "process_tick",
            "symbols": [[exchange, exchange_symbol]],
            "recv_mono_us": 0,
            "sent_mono_us": 0,
        }
        self.counts["single_ticks"] += 1
        columns = {
            "sym": [0],
            "timestamp": [ts_us],
            "local_timestamp": [local_us],
            "price": [float(tick["price"])],
            "amount": [float(tick["amount"])],
            "side": [SIDE_CODES[tick.get("side", "unknown")]],
            "id": [str(tick.get("id", ""))],
        }
        return encode_frame(header, columns, self._schema)

    def get_stats(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "ticks_by_type": dict(self.ticks_by_type),
            "ticks_by_symbol": {k: dict(v) for k, v in self.ticks_by_symbol.items()},
            "bad_rows": dict(self.bad_rows),
            "late_ticks": sum(e.get_stats()["late_ticks"] for e in self.engines.values()),
            "engines": {name: e.get_stats() for name, e in self.engines.items()},
            "features": {name: dict(f.features.stats) for name, f in self.features.items()},
            "recent_errors": list(self.errors),
        }
