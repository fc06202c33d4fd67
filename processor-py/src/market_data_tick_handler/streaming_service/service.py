"""The processor process: PULL wire frames from the ingester, build candles, fan them out.

One frame is handled start to finish before the next is read: decode, candles (and features), then one
publish round trip. ZeroMQ's small high-water marks turn a slow processor into back-pressure on the
ingester instead of hidden queueing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable
from typing import Any

import orjson
import zmq
import zmq.asyncio

from ..config import ConfigError, StreamingConfig
from ..timeutil import iso_us, now_us
from . import hot_path
from .candle_processor import CandleBatch
from .data_types import DataTypeRouter, Record
from .hft_features import read_candles
from .ingest import IngesterProcess
from .latency import Latencies
from .messages import candle_payloads
from .modes import PersistMode, ServeMode
from .tick_processor.tick_handler import CandleSettings, FrameResult, TickHandler

log = logging.getLogger(__name__)

STATS_EVERY_S = 10.0
INGESTER_DRAIN_S = 3.0  # after the ingester exits, how long frames may still trickle in


def mono_us() -> int:
    return time.monotonic_ns() // 1000


def resolve_clock(config: StreamingConfig) -> str:
    if config.candles.clock != "auto":
        return config.candles.clock
    return "wall" if config.ingest.source == "tardis-realtime" else "event"


class StreamingService:
    def __init__(
        self,
        config: StreamingConfig,
        serve: ServeMode | None = None,
        on_candle: Callable[[dict[str, Any]], None] | None = None,
        persist: PersistMode | None = None,
    ) -> None:
        self.config = config
        self.serve = serve
        self.persist = persist
        self.on_candle = on_candle
        c = config.candles
        clock = resolve_clock(config)
        exchange = config.ingest.exchange
        self.router = DataTypeRouter(config.data_types, clock=clock)
        if config.ingest.source != "synthetic":  # synthetic trades only, for benchmarks
            self.router.warn_unavailable([exchange])
            if not self.router.ingester_data_types(exchange):
                raise ConfigError(f"data_types: nothing enabled that {exchange} can stream")
        self.handler = TickHandler(
            CandleSettings(
                timeframes=c.timeframes,
                clock=clock,
                grace_ms=c.grace_ms,
                late_policy=c.late_policy,
                revise_window=c.revise_window,
                hft_timeframes=c.hft_timeframes if c.enable_hft_features else (),
                feature_groups=self.router.feature_groups(exchange) if c.enable_hft_features else (),
            ),
            router=self.router,
        )
        if c.enable_hft_features and c.hft_warmup_file:
            used = self.handler.warm_up(read_candles(c.hft_warmup_file))
            log.info("features warmed up with %d candles from %s", used, c.hft_warmup_file)
        self._warmup_project: str | None = None  # set: warm up from BigQuery (wall clock: at start)
        self._warm_at_first_tick = False  # event clock: before the first frame with ticks is handled
        self.warmup_stats: dict[str, Any] | None = None
        if c.enable_hft_features and c.hft_warmup_bigquery and c.hft_timeframes:
            try:
                self._warmup_project = config.persist.bigquery.project()
            except ConfigError as exc:
                raise ConfigError(f"candles.hft_warmup_bigquery (--warmup-bigquery): {exc}") from None
            self._warm_at_first_tick = clock == "event"
            from .bigquery_client import recent_candles  # the Google clients load only when used

            self._read_recent_candles = recent_candles.read_recent_candles
        self.latencies = Latencies()
        self._first_frame_mono: int | None = None
        self._end_mono: int | None = None
        self.end_header: dict[str, Any] | None = None
        self.ingester: IngesterProcess | None = None
        self._stop = asyncio.Event()
        self._tmpdir: tempfile.TemporaryDirectory | None = None

    def _endpoint(self) -> str:
        endpoint = self.config.ingest.endpoint
        if endpoint != "auto":
            return endpoint
        self._tmpdir = tempfile.TemporaryDirectory(prefix="mdth-")
        return f"ipc://{self._tmpdir.name}/frames.sock"

    async def run(self) -> int:
        """Run until the ingester's session ends (replay over) or a stop signal; returns an exit code."""
        ctx = zmq.asyncio.Context()
        sock = ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, self.config.ingest.rcvhwm)
        sock.setsockopt(zmq.LINGER, 0)
        endpoint = self._endpoint()
        sock.bind(endpoint)
        log.info("processor listening on %s (clock: %s)", endpoint, self.handler.settings.clock)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            if self.serve is not None:
                await self.serve.start()
            if self.persist is not None:
                await self.persist.start()
            if self._warmup_project is not None and not self._warm_at_first_tick:
                await self._warm_up_from_bigquery(now_us())  # wall clock: anchored now
            hot_path.prepare(bool(self.handler.settings.hft_timeframes), persist=self.persist is not None)
            if self.config.ingest.spawn:
                book = self.config.data_types.book_snapshots
                self.ingester = IngesterProcess(
                    self.config.ingest,
                    endpoint,
                    self.router.ingester_data_types(self.config.ingest.exchange),
                    book.depth,
                    book.interval_ms,
                )
                await self.ingester.start()
            return await self._loop(sock)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if self.ingester is not None:
                await self.ingester.stop()
            if self.serve is not None:
                await self.serve.close()
            if self.persist is not None:
                await self.persist.close()
            sock.close()
            ctx.term()
            if self._tmpdir is not None:
                self._tmpdir.cleanup()

    async def _loop(self, sock: zmq.asyncio.Socket) -> int:
        next_stats = time.monotonic() + STATS_EVERY_S
        exited_at: float | None = None
        while not self._stop.is_set():
            deadline = self.handler.next_deadline_us()
            wait_ms = 1000 if deadline is None else max(0, min(1000, (deadline - now_us()) // 1000 + 1))
            if await sock.poll(wait_ms, zmq.POLLIN):
                data = await sock.recv(copy=False)
                if self._first_frame_mono is None:
                    self._first_frame_mono = mono_us()
                if self._warm_at_first_tick:
                    result = await self._handle_until_warm(data.buffer)
                else:
                    result = self.handler.handle_bytes(data.buffer)
                handled = mono_us()
                if result.batches or result.records:
                    await self._publish(result.batches, result.records)
                if result.recv_mono_us:
                    received = result.recv_mono_us
                    self.latencies.record(
                        handled - received, mono_us() - received, result.trades, result.candle_count
                    )
                if result.ended:
                    self.end_header = result.end_header
                    sock.close()  # hanging up tells the ingester its end frame arrived
                    return await self._finish()
            if deadline is not None and now_us() >= deadline:
                polled = self.handler.poll()
                await self._publish(polled.batches, polled.records)
            if self.ingester is not None and self.ingester.returncode is not None:
                # it may have exited right after handing its last frames to ZeroMQ: read on until its
                # `end` frame, and call it a failure only when nothing more comes
                if exited_at is None:
                    exited_at = time.monotonic()
                elif time.monotonic() - exited_at > INGESTER_DRAIN_S and not await sock.poll(0, zmq.POLLIN):
                    log.error(
                        "ingester exited with code %s without ending its session; last output:\n  %s",
                        self.ingester.returncode,
                        "\n  ".join(self.ingester.last_lines[-5:]),
                    )
                    return 1
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + STATS_EVERY_S
                self._log_progress()
        log.info("stop requested")
        return 0

    async def _handle_until_warm(self, data: memoryview) -> FrameResult:
        """Event clock: the frame, decoded once; the first one with ticks anchors the warm-up at its
        earliest exchange timestamp (nothing is known of the replay's time before it) and is handled
        after it. From then on frames go straight to ``handle_bytes``."""
        frame = self.handler.decode(data)
        if frame is None:
            return FrameResult()
        anchor = self.handler.first_tick_us(frame)
        if anchor is not None:
            self._warm_at_first_tick = False
            await self._warm_up_from_bigquery(anchor)
        return self.handler.handle_frame(frame)

    async def _warm_up_from_bigquery(self, until_us: int) -> None:
        """Recent candles of persist mode's tables through the feature lanes (docs/FEATURES.md "Warm-up
        at start"). The query runs in a thread; a failure is logged, counted (``warmup_errors``) and
        leaves the features cold: it never stops the processor."""
        assert self._warmup_project is not None
        from .bigquery_client.clients import describe

        where = describe(self._warmup_project, self.config.persist.bigquery.emulator)
        got = await asyncio.to_thread(self._read_recent_candles, self.config, self._warmup_project, until_us)
        used: dict[str, int] = {}
        for timeframe, rows in got.candles.items():
            try:
                used[timeframe] = self.handler.warm_up(rows)
            except Exception as exc:  # a stored row the features cannot take (say a close of 0)
                self._warmup_failed(where, got.dataset, f"candles_{timeframe}", exc, bool(used))
        for table in got.missing:
            log.info(
                "features: no table %s.%s in %s yet (no history to warm up from)", got.dataset, table, where
            )
        if got.error is not None:
            self._warmup_failed(where, got.dataset, got.failed_table, got.error, bool(used))
        counts = {tf: used.get(tf, 0) for tf in self.handler.settings.hft_timeframes}
        log.info(
            "features warmed up from BigQuery (dataset %s of %s) with %s candles, anchored at %s",
            got.dataset,
            where,
            ", ".join(f"{tf}: {k}" for tf, k in counts.items()),
            iso_us(until_us),
        )
        self.warmup_stats = {
            "source": "bigquery",
            "dataset": got.dataset,
            "anchor": iso_us(until_us),
            "candles_by_timeframe": counts,
            "missing_tables": list(got.missing),
            "errors": self.handler.counts["warmup_errors"],
        }

    def _warmup_failed(
        self, where: str, dataset: str, table: str | None, error: BaseException, some_used: bool
    ) -> None:
        from google.api_core.exceptions import GoogleAPICallError
        from google.auth.exceptions import GoogleAuthError

        self.handler.counts["warmup_errors"] += 1
        log.warning(
            "features: warm-up from BigQuery failed (%s, dataset %s, table %s): %s: %s; the features of %s"
            " start cold",
            where,
            dataset,
            table or "-",
            type(error).__name__,
            " ".join(str(error).split()),  # one line (the client appends the job's location and id)
            "the other timeframes" if some_used else "every timeframe",
            # a fault of ours, not BigQuery's: with its traceback
            exc_info=(type(error), error, error.__traceback__)
            if not isinstance(error, GoogleAPICallError | GoogleAuthError | OSError)
            else None,
        )

    async def _publish(self, batches: list[CandleBatch], records: list[Record] | None = None) -> None:
        """Publish what closed, and the frame's records with the first batch (one round trip), then hand
        the candles to persist mode with the same ``local_timestamp`` (now, when closing them began) and
        ``timestamp_out`` (the one serve mode stamped, or now)."""
        if records and not batches and self.serve is not None:
            await self.serve.publish(None, now_us(), records)
        for k, batch in enumerate(batches):
            local = now_us()
            payloads: list[bytes] = []
            out = now_us()
            if self.serve is not None:
                payloads = await self.serve.publish(batch, local, records if k == 0 and records else ())
                out = self.serve.last_timestamp_out
            elif self.on_candle is not None:
                payloads = [p for _, part in candle_payloads(batch, local, out) for p in part]
            if self.persist is not None:
                self.persist.add(batch, local, out)
            if self.on_candle is not None:
                for payload in payloads:
                    self.on_candle(orjson.loads(payload))

    async def _finish(self) -> int:
        self._end_mono = mono_us()
        header = self.end_header or {}
        reason = header.get("reason")
        if self.ingester is not None:
            code = await self.ingester.wait(timeout=10)
            if code not in (0, None):
                log.error("ingester exited with code %s", code)
        self._log_progress()
        if reason == "error":
            log.error("ingester ended with an error: %s", header.get("error"))
            return 1
        log.info("session ended (%s): %s", reason, header.get("counts"))
        return 0

    def _log_progress(self) -> None:
        c = self.handler.counts
        published = self.serve.stats["candles_published"] if self.serve else c.get("candles_out", 0)
        log.info(
            "frames=%d trades=%d candles=%d published=%d records=%d late=%d bad=%d lost_frames=%d gaps=%d",
            c.get("frames", 0),
            self.handler.ticks_by_type.get("trade", 0),
            c.get("candles_out", 0),
            published,
            sum(self.handler.records_by_type.values()),
            self.handler.get_stats()["late_ticks"],
            sum(self.handler.bad_rows.values()),
            c.get("frames_lost", 0),
            sum(self.handler.gaps.opened.values()),
        )
        if self.persist is not None:
            p = self.persist.stats
            log.info(
                "persisted rows=%d batches=%d backlog=%d retries=%d lost=%d refused=%d",
                p["rows_written"],
                p["batches_written"],
                p["backlog_rows"],
                p["write_retries"],
                p["rows_lost"],
                p["rows_refused"],
            )

    def get_stats(self) -> dict[str, Any]:
        stats = self.handler.get_stats()
        stats["candles_by_timeframe"] = {
            name: engine.get_stats()["candles_by_timeframe"] for name, engine in self.handler.engines.items()
        }
        if self.serve is not None:
            stats["serve"] = self.serve.get_stats()
        if self.persist is not None:
            stats["persist"] = self.persist.get_stats()
        if self.warmup_stats is not None:
            stats["warmup"] = self.warmup_stats
        if self.ingester is not None and self.ingester.summary is not None:
            stats["ingester"] = self.ingester.summary
        if self._first_frame_mono is not None and self._end_mono is not None:
            stats["elapsed_s"] = (self._end_mono - self._first_frame_mono) / 1e6
        stats["pid"] = os.getpid()
        return stats
