"""The processor process: PULL wire frames from the ingester, build candles, fan them out.

One frame is handled start to finish before the next is read: decode, candles (and features), then its
output, stamped once, handed to every sink in turn (``sinks/``: Redis is one round trip, BigQuery queues).
ZeroMQ's small high-water marks turn a slow processor into back-pressure on the ingester instead of hidden
queueing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio

from ..config import ConfigError, IngestExchangeConfig, StreamingConfig
from ..timeutil import iso_us, now_us
from ..wire import Frame
from . import hot_path
from . import ledger as ledger_lines
from .candle_processor import CandleBatch, Stamps
from .candle_processor.timeframes import parse_timeframes
from .checkpoints import Checkpoint
from .data_types import DataTypeRouter, Record
from .data_types.registry import FEATURE_GROUP_OF, FRAMES_OF
from .data_types.trades import TradeRows
from .hft_features import read_candles
from .ingest import IngesterProcess, IngestStream, Sessions
from .ingest.curve import secure_server
from .latency import Latencies
from .ledger import Entry, apply_entries, candle_entry, ingester_entries, wire_entries
from .recovery import Recovery
from .sinks import FrameOutput, Sink
from .tick_processor.frame_router import ExchangeAsk
from .tick_processor.tick_handler import CandleSettings, TickHandler

if TYPE_CHECKING:
    from .bigquery_client.recent_candles import RecentCandles

log = logging.getLogger(__name__)

STATS_EVERY_S = 10.0
INGESTER_DRAIN_S = 3.0  # after the ingester exits, how long frames may still trickle in
RESTART_FIRST_S, RESTART_MAX_S = 1.0, 30.0  # a live ingester that died starts again after this back-off
RESTART_RESET_S = 60.0  # an ingester that ran this long starts the back-off afresh
LIVE_SOURCES = ("tardis-realtime", "tardis-machine")
STOP_DRAIN_S = 10.0  # on a stop, how long to wait for the ingester's end frame (at most half the time left)
INGESTER_EXIT_S = 10.0  # after its end frame, how long the ingester may take to exit
CLOSE_GRACE_S = 1.0  # a sink's close past its bounded timeout (a write in flight) before it is abandoned


def mono_us() -> int:
    return time.monotonic_ns() // 1000


def resolve_clock(config: StreamingConfig) -> str:
    if config.candles.clock != "auto":
        return config.candles.clock
    return "wall" if config.ingest.source == "tardis-realtime" else "event"


class StreamingService:
    def __init__(self, config: StreamingConfig, sinks: Sequence[Sink] = ()) -> None:
        """``sinks``: where each frame's output goes, in this order (``sinks/registry.py`` makes them)."""
        self.config = config
        self.sinks = list(sinks)
        # the frames' trade rows reach the sinks only when one wants them (the tick tables)
        wants_trades = any(getattr(sink, "wants_trades", False) for sink in self.sinks)
        c = config.candles
        clock = resolve_clock(config)
        self.router = DataTypeRouter(config.data_types, clock=clock)
        #: what the ingester streams, per exchange (streaming.yaml's ingest.exchanges, or its one exchange)
        self.streams = config.ingest.streams()
        #: exchange -> what it is asked for (the ingester's data types, the feature groups of its candles)
        self.asked = {s.exchange: self._ask(s) for s in self.streams}
        self.handler = TickHandler(
            CandleSettings(
                timeframes=c.timeframes,
                clock=clock,
                grace_ms=c.grace_ms,
                late_policy=c.late_policy,
                revise_window=c.revise_window,
                max_jump_us=c.max_clock_jump_ms * 1000,
                hft_timeframes=c.hft_timeframes if c.enable_hft_features else (),
                feature_groups=tuple(  # every exchange's, in the registry's order
                    g
                    for g in self.router.feature_groups()
                    if any(g in a.feature_groups for a in self.asked.values())
                ),
                asked=self.asked,
            ),
            router=self.router,
        )
        self.handler.keep_trades = wants_trades
        if c.enable_hft_features and c.hft_warmup_file:
            used = self.handler.warm_up(read_candles(c.hft_warmup_file))
            log.info("features warmed up with %d candles from %s", used, c.hft_warmup_file)
        #: set: warm up from persist mode's tables (wall clock: at start), read by this, in ``_warm_from``
        self._read_recent: Callable[[int], RecentCandles] | None = None
        self._warm_from = ""
        self._warm_at_first_tick = False  # event clock: before the first frame with ticks is handled
        self.warmup_stats: dict[str, Any] | None = None
        if c.enable_hft_features and c.hft_warmup_bigquery and c.hft_timeframes:
            self._read_recent, self._warm_from = self._recent_candles_reader()
            self._warm_at_first_tick = clock == "event"
        self.latencies = Latencies()
        self._first_frame_mono: int | None = None
        self._end_mono: int | None = None
        self.end_header: dict[str, Any] | None = None
        self.ingester: IngesterProcess | None = None
        self.sessions = Sessions()
        self._bound_endpoint = ""
        self._restarts = 0
        self._started_at: float | None = None
        # what every sink was handed, and the trades in the first version of every base candle: the
        # ledger holds these against what each stage says it did with them
        self.handed: dict[str, int] = {"candles": 0, "records": 0}
        self.trades_in_candles = 0
        self.base_timeframe = parse_timeframes(c.timeframes)[0].name
        self.ledger: list[Entry] = []
        self._stop = asyncio.Event()
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        #: the journal and checkpoints (``recovery.py``), when ``ingest.journal.enabled``
        self.recovery = Recovery(config) if config.ingest.journal.enabled else None
        self._journal_looked = 0.0  # when the processor last looked in the journal for what ZeroMQ lacks
        #: metrics (``metrics/``; None when off): called with each ZeroMQ frame's size in bytes
        self.on_frame_bytes: Callable[[int], None] | None = None
        #: on a stop (signal or --duration): the monotonic time by which the run must be over
        #: (``shutdown.timeout_s`` after the stop); every wait of the stop is bounded by it
        self.stop_deadline: float | None = None
        self.signals = 0  # SIGINT/SIGTERM received
        self._drain_s = 0.0  # how long the stop waits for the ingester's end frame
        #: what each sink could not write by the stop deadline (``_unwritten``), set at the end
        self.unwritten: dict[str, dict[str, int]] = {}

    def _recent_candles_reader(self) -> tuple[Callable[[int], RecentCandles], str]:
        """Where a warm-up reads persist mode's tables (the store persist mode would write to: BigQuery,
        its emulator, or the local store), and its name for the log."""
        config = self.config
        bq = config.persist.bigquery
        if not bq.configured():
            from .local_store import recent_candles as local  # DuckDB loads only when used

            where = f"the local store at {config.persist.local.path}"
            return partial(local.read_recent_candles, config), where
        try:
            project = bq.project()
        except ConfigError as exc:
            raise ConfigError(f"candles.hft_warmup_bigquery (--warmup-bigquery): {exc}") from None
        from .bigquery_client import recent_candles  # the Google clients load only when used
        from .bigquery_client.clients import describe

        return partial(recent_candles.read_recent_candles, config, project), describe(project, bq.emulator)

    def _ask(self, stream: IngestExchangeConfig) -> ExchangeAsk:
        """What to ask the ingester for on one exchange: the frames of the enabled data types it can have
        (of its ``data_types``, when given), and the feature groups they feed; what it cannot have is
        warned about first (not for synthetic trades, which are for benchmarks)."""
        exchange, wanted = stream.exchange, stream.data_types
        frames = self.router.ingester_data_types(exchange)
        groups = self.router.feature_groups(exchange) if self.config.candles.enable_hft_features else ()
        if wanted is not None:
            made_from = {f for t in wanted for f in FRAMES_OF[t]}
            frames = tuple(f for f in frames if f in made_from)
            groups = tuple(g for t, g in FEATURE_GROUP_OF.items() if g in groups and t in wanted)
        if self.config.ingest.source == "synthetic":
            return ExchangeAsk(frames, groups)
        if wanted is None:
            self.router.warn_unavailable([exchange])
        else:
            for data_type, message in self.router.unavailable(exchange).items():
                if data_type in wanted:
                    log.warning("%s", message)
        if not frames:
            where = "data_types" if wanted is None else f"ingest.exchanges.{exchange}.data_types"
            raise ConfigError(f"{where}: nothing enabled that {exchange} can stream")
        return ExchangeAsk(frames, groups)

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
        close_curve = secure_server(ctx, sock, endpoint)  # CURVE on a tcp:// endpoint (ingest/curve.py)
        sock.bind(endpoint)
        log.info("processor listening on %s (clock: %s)", endpoint, self.handler.settings.clock)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.on_signal, sig)
        try:
            for sink in self.sinks:
                await sink.start()
            if self.recovery is not None and await self._recover():
                code = await self._finish()  # the journal held the rest of the session
            else:
                code = await self._start_and_loop(sock, endpoint)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            if self.ingester is not None:
                await self.ingester.stop(timeout=self.time_left(5.0))
            for sink in self.sinks:
                await self._close_sink(sink)
            if self.recovery is not None:
                self._close_journal()
            sock.close()
            close_curve()  # the CURVE authenticator's socket, if any, before the context ends
            ctx.term()
            if self._tmpdir is not None:
                self._tmpdir.cleanup()
        code = self._close_ledger(code)
        return self._stop_outcome(code)

    async def _start_and_loop(self, sock: zmq.asyncio.Socket, endpoint: str) -> int:
        if self._read_recent is not None and not self._warm_at_first_tick:
            await self.warm_up_from_tables(now_us())  # wall clock: anchored now
        hot_path.prepare(bool(self.handler.settings.hft_timeframes))
        if self.config.ingest.spawn:
            if not self._resume_spawned():
                return 1
            self._bound_endpoint = endpoint
            self.ingester = self._new_ingester()
            await self.ingester.start()
        return await self._loop(sock)

    def _resume_spawned(self) -> bool:
        """After a restart from a checkpoint, before a new ingester starts: the one this processor's
        predecessor started stopped with it, so the data between its last journaled frame and the new
        one's first is missing: a gap for every symbol (live). A replay cannot resume mid-way (a new
        ingester would replay its files from the start): the run ends, saying so (False)."""
        rec = self.recovery
        if rec is None or rec.stats["restored_from"] is None:
            return True
        if self.config.ingest.source not in LIVE_SOURCES:
            log.error(
                "the replay's ingester stopped with the processor before its end; its journal is replayed"
                " up to position %s, and a new ingester would replay the files from their start: run the"
                " replay again with a fresh journal (or an ingester of its own, ingest.spawn: false, which"
                " goes on while the processor is down)",
                rec.position,
            )
            return False
        self.handler.counts["processor_restarts"] += 1
        self.handler.gaps.frames_lost("processor_restart")
        return True

    async def _loop(self, sock: zmq.asyncio.Socket) -> int:
        next_stats = time.monotonic() + STATS_EVERY_S
        exited_at: float | None = None
        stop_by: float | None = None  # on a stop: read on until the ingester's end frame, until then
        while True:
            if self._stop.is_set() and stop_by is None:
                stop_by = self._request_stop()
            if stop_by is not None and time.monotonic() > stop_by:
                if self.ingester is not None:  # ours, and it sent no end frame: close its session here
                    log.warning(
                        "the ingester did not end its session within %.1f s of the stop: closing the open"
                        " candles here",
                        self._drain_s,
                    )
                    await self._finish_here()
                break
            deadline = self.handler.next_deadline_us()
            wait_ms = 1000 if deadline is None else max(0, min(1000, (deadline - now_us()) // 1000 + 1))
            if await sock.poll(wait_ms, zmq.POLLIN):
                data = await sock.recv(copy=False)
                if self.on_frame_bytes is not None:
                    self.on_frame_bytes(len(data.buffer))
                if self._first_frame_mono is None:
                    self._first_frame_mono = mono_us()
                frame = self.handler.decode(data.buffer)
                if frame is not None and await self._receive(frame):
                    sock.close()  # hanging up tells the ingester its end frame arrived
                    return await self._finish()
            elif self.recovery is not None and await self._read_journal():
                sock.close()
                return await self._finish()
            if deadline is not None and now_us() >= deadline:
                await self._poll()
            if self.ingester is not None and self.ingester.returncode is not None:
                # it may have exited right after handing its last frames to ZeroMQ: read on until its
                # `end` frame, and call it a failure only when nothing more comes
                if exited_at is None:
                    exited_at = time.monotonic()
                elif time.monotonic() - exited_at > INGESTER_DRAIN_S and not await sock.poll(0, zmq.POLLIN):
                    exited_at = None
                    if stop_by is not None:
                        log.warning("the ingester exited on the stop without ending its session")
                        await self._finish_here()
                        break
                    if not await self._ingester_died():
                        return 1
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + STATS_EVERY_S
                self._log_progress()
        return 0

    async def _receive(self, frame: Frame) -> bool:
        """A frame from ZeroMQ; True when its session ended. With a journal, frames are handled in
        ``jseq`` order (``recovery.py``): one handled already is skipped, and those between the last one
        handled and this one are read from the journal first."""
        rec = self.recovery
        jseq = frame.header.get("jseq") if rec is not None else None
        if rec is None or type(jseq) is not int:
            if rec is not None:
                rec.stats["frames_without_jseq"] += 1
            return await self._handle(frame)
        if rec.position is None and frame.type != "start" and not self.config.ingest.spawn:
            # the first frame of an ingester that runs on its own: its session began before it
            start = rec.latest_start(rec.checkpoints.ended_at())
            if start is not None and start < jseq and await self._replay_recovering(start, until=jseq):
                return True
        if rec.position is not None:
            if jseq <= rec.position:
                rec.stats["frames_already_handled"] += 1
                return False
            if jseq > rec.position + 1 and await self._replay(rec.position + 1, until=jseq):
                return True
        return await self._handle(frame, jseq)

    async def _read_journal(self) -> bool:
        """Nothing came over ZeroMQ for a while: frames the journal has past the last one handled (an
        ingester of its own, which does not wait for this processor, left them there only) are read from
        it, at most once a second; True when a session ended. An ingester this processor started waits
        for it: everything comes over ZeroMQ."""
        rec = self.recovery
        assert rec is not None
        if self.config.ingest.spawn or rec.position is None or time.monotonic() < self._journal_looked + 1:
            return False
        self._journal_looked = time.monotonic()
        if rec.reader.last_jseq() in (None, rec.position):
            return False
        return await self._replay(rec.position + 1, live=True)

    async def _replay_recovering(self, first: int, until: int | None = None, restored: bool = False) -> bool:
        """``_replay`` of what a processor before this one may have handed the sinks already: they are
        in recovery (``Sink.restore``; done already when ``restored`` from a checkpoint) until it is over;
        True when a session ended."""
        if not restored:
            for sink in self.sinks:
                await sink.restore(None, None)
        try:
            return await self._replay(first, until)
        finally:
            for sink in self.sinks:
                await sink.recovered()

    async def _replay(self, first: int, until: int | None = None, live: bool = False) -> bool:
        """The journal's frames from ``first`` (before ``until``) through the handler, as if they had come
        over ZeroMQ; True when a session ended. On the wall clock the time is, for each frame, when the
        ingester journaled it, and the timer fires before it when due then, as it did for the processor
        that received it; a frame's stamps are now."""
        rec = self.recovery
        assert rec is not None
        wall = self.handler.settings.clock == "wall"
        missing = rec.missing
        for jseq, append_us, payload in rec.frames(first, until):
            if rec.missing > missing:  # the journal's retention took frames before this one: a gap
                missing = rec.missing
                self.handler.gaps.frames_lost("journal_missing")
            frame = self.handler.decode(payload)
            rec.stats["frames_from_journal" if live or until is not None else "frames_replayed"] += 1
            if frame is None:
                rec.position = jseq
                continue
            if wall and not live:
                deadline = self.handler.next_deadline_us()
                if deadline is not None and deadline <= append_us:
                    await self._poll(append_us)
            if await self._handle(frame, jseq):
                return True
        return False

    async def _handle(self, frame: Frame, jseq: int | None = None) -> bool:
        """Handle one decoded frame and hand its output to the sinks; True when its session ended. At
        the first candle boundary after ``checkpoint_interval_s`` the processor checkpoints."""
        if self.recovery is not None:
            if frame.type == "start":
                self.sessions.follow(frame.session)  # journaled: ours, whichever ingester wrote it
            if jseq is not None:
                self.recovery.position = jseq
        if not self.sessions.accept(frame):
            return False
        if self._warm_at_first_tick:
            await self._warm_up_before(frame)
        local = now_us()  # closing its candles begins
        result = self.handler.handle_frame(frame)
        handled = mono_us()
        await self.publish(result.batches, result.records, local, result.trade_rows)
        if result.recv_mono_us:
            received = result.recv_mono_us
            self.latencies.record(
                handled - received, mono_us() - received, result.trades, result.candle_count
            )
        if frame.type == "ledger":
            self._check_ledger_frame(frame)
        if result.ended:
            self.end_header = result.end_header
            return True
        if result.batches and self.recovery is not None and self.recovery.due():
            self._checkpoint()
        return False

    async def _poll(self, now: int | None = None) -> None:
        """The timer: stale symbols, candles the clock has passed (``now``: the time it reads)."""
        local = now_us()
        polled = self.handler.poll(now)
        await self.publish(polled.batches, polled.records, local)
        if polled.batches and self.recovery is not None and self.recovery.due():
            self._checkpoint()

    # -- the journal and checkpoints (recovery.py, checkpoints.py) --------------------------------------
    def _checkpoint(self) -> None:
        """Save the processor's state after the last frame handled (``checkpoints.py``)."""
        rec = self.recovery
        assert rec is not None
        if rec.position is None:
            return
        durable = {}
        for sink in self.sinks:
            through = sink.durable_through()
            durable[sink.name] = rec.position if through is None else min(through, rec.position)
        rec.save(
            Checkpoint(
                jseq=rec.position,
                made_us=now_us(),
                fingerprint=rec.checkpoints.fingerprint,
                state={
                    "handler": self.handler,
                    "sessions": self.sessions,
                    "handed": self.handed,
                    "trades_in_candles": self.trades_in_candles,
                },
                sinks={sink.name: sink.checkpoint_state() for sink in self.sinks},
                durable=durable,
            )
        )

    def _close_journal(self) -> None:
        """At the end, the sinks closed: a session that ended leaves nothing to carry on from (its
        checkpoints go: the next run starts afresh); a processor stopped mid-session (its ingester runs on
        without it) checkpoints where it stopped, for the next one to carry on."""
        rec = self.recovery
        assert rec is not None
        if self.end_header is not None:
            rec.checkpoints.clear(rec.position)
        else:
            self._checkpoint()

    async def _start_fresh(self, crashed: bool) -> bool:
        """No checkpoint to carry on from. A processor that left no checkpoints and starts its own
        ingester begins a new session: the journal's past is not its own. Otherwise (an ingester that runs
        on its own, whose session may have begun before this processor; a processor before this one
        killed too early for its checkpoints to be of use, ``crashed``) the frames of the journal's last
        session, from its ``start`` frame, are replayed with the sinks in recovery (what is in them
        already is not sent again; a session a processor finished here, ``ended_at``, is not replayed);
        True when that session has ended."""
        rec = self.recovery
        assert rec is not None
        if self.config.ingest.spawn and not crashed:
            rec.position = rec.reader.last_jseq()
            return False
        ended = rec.checkpoints.ended_at()
        start = rec.latest_start(ended)
        if start is None:
            rec.position = max(ended, rec.reader.last_jseq() or 0) or None
            return False
        log.info(
            "no checkpoint to carry on from: replaying the session from its start, journal position %d", start
        )
        if crashed:
            rec.stats["restored_from"] = start - 1
        return await self._replay_recovering(start)

    async def _recover(self) -> bool:
        """Before the ingester starts: carry on from the last checkpoint, replaying the journal after it;
        True when the journal holds the end of the session (nothing is left to do). Without a checkpoint
        the processor starts at the journal's end (what an earlier run left there is not replayed)."""
        rec = self.recovery
        assert rec is not None
        point = rec.checkpoints.restore_point()
        if point is None:
            return await self._start_fresh(crashed=rec.checkpoints.any())
        checkpoint, durable = point
        state = checkpoint.state
        self.handler = state["handler"]
        self.sessions = state["sessions"]
        self.handed = state["handed"]
        self.trades_in_candles = state["trades_in_candles"]
        self._warm_at_first_tick = False  # the features are as they were
        self._read_recent = None
        for sink in self.sinks:
            await sink.restore(checkpoint.sinks.get(sink.name), durable.get(sink.name))
        rec.position = checkpoint.jseq
        rec.stats["restored_from"] = checkpoint.jseq
        log.info(
            "restarting from the checkpoint at journal position %d (made %s): replaying the journal after it",
            checkpoint.jseq,
            iso_us(checkpoint.made_us),
        )
        ended = await self._replay_recovering(checkpoint.jseq + 1, restored=True)
        log.info(
            "journal replayed: %d frames, up to position %s%s",
            rec.stats["frames_replayed"],
            rec.position,
            "; the session had ended" if ended else "",
        )
        return ended

    def stop(self) -> None:
        """End the run as SIGINT/SIGTERM do: the ingester is asked to end its session, open candles close
        as partial, every sink is closed and the ledger is drawn up, all within ``shutdown.timeout_s``
        (``stop_deadline``)."""
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.config.shutdown.timeout_s
        self._stop.set()

    def on_signal(self, sig: int) -> None:
        """SIGINT/SIGTERM: the first one stops the run (``stop``); a second one during the stop abandons
        it: what is still unwritten is logged and the process exits at once with 128 + the signal
        (130 SIGINT, 143 SIGTERM), the ingester killed."""
        self.signals += 1
        name = signal.Signals(sig).name
        if self.signals == 1:
            log.info(
                "%s: stopping within %g s (shutdown.timeout_s); a second signal abandons the stop",
                name,
                self.config.shutdown.timeout_s,
            )
            self.stop()
            return
        log.error("%s again during the stop: exiting now; abandoned: %s", name, self._abandoned())
        if self.ingester is not None:
            self.ingester.request_stop()  # it also exits when its parent is gone (--watch-parent)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(128 + int(sig))

    def _abandoned(self) -> str:
        """What a stop abandoned now leaves unwritten: per sink, what it was handed and where that is
        (its ledger lines that are not all written), and the trades of candles not closed yet."""
        parts = []
        for sink in self.sinks:
            for e in sink.ledger_entries(self.handed):
                done = e.accounted - e.parts.get("waiting", 0)
                if done != e.expected:
                    where = _counts({k: v for k, v in e.parts.items() if v})
                    parts.append(
                        f"{sink.name}: {e.what} {e.expected - done} of {e.expected} not written ({where})"
                    )
        still_open = sum(e.open_trades for e in self.handler.engines.values())
        if still_open:
            parts.append(f"{still_open} trades in candles not closed")
        return "; ".join(parts) or "nothing unwritten"

    def time_left(self, cap: float) -> float:
        """``cap`` seconds, or less when the stop deadline comes sooner (never below 0)."""
        if self.stop_deadline is None:
            return cap
        return max(0.0, min(cap, self.stop_deadline - time.monotonic()))

    async def _finish_here(self) -> None:
        """A stop without the end frame of the ingester this processor started: the open candles close
        as partial here (as its end frame would have closed them) and go to the sinks. (An ingester that
        runs on its own, ``ingest.spawn: false``, goes on with its session: its open candles stay open,
        in the ledger's "in open candles", for a processor started again from the journal.)"""
        local = now_us()
        await self.publish(self.handler.finish(), [], local)

    async def _close_sink(self, sink: Sink) -> None:
        """``sink.close()``; on a stop its own close timeout is cut to the time left before the deadline
        (a sink with ``config.close_timeout_s``), and a close still running past it (plus a grace for a
        write in flight) is abandoned with an ERROR."""
        if self.stop_deadline is None:
            await sink.close()
            return
        left = self.time_left(math.inf)
        cfg = getattr(sink, "config", None)
        if dataclasses.is_dataclass(cfg) and hasattr(cfg, "close_timeout_s"):
            changes: dict[str, float] = {"close_timeout_s": min(cfg.close_timeout_s, left)}
            if hasattr(cfg, "request_timeout_s"):
                changes["request_timeout_s"] = max(0.1, min(cfg.request_timeout_s, left))
            sink.config = dataclasses.replace(cfg, **changes)  # type: ignore[attr-defined]
        try:
            await asyncio.wait_for(sink.close(), left + CLOSE_GRACE_S)
        except TimeoutError:
            log.error(
                "%s: not closed by the stop deadline (%g s after the stop): abandoned with %s",
                sink.name,
                self.config.shutdown.timeout_s,
                _counts(_waiting(sink.get_stats())) or "nothing counted as waiting",
            )
            self.unwritten.setdefault(sink.name, {})["abandoned"] = 1

    def _stop_outcome(self, code: int) -> int:
        """After a stop: each sink that lost something by the deadline (the ledger's ``lost``, or a close
        abandoned) is one ERROR line naming the counts, and the exit code is 1 (0 when all was written).
        What waits on disk (persist's spill: written first by the next start) is a WARNING, not a loss."""
        if self.stop_deadline is None:
            return code
        waiting: dict[str, dict[str, int]] = {}
        for entry in self.ledger:
            if entry.stage != "sinks":
                continue
            sink, what = entry.what.rpartition(" to ")[2], entry.what.partition(" ")[0]
            if entry.parts.get("lost"):
                self.unwritten.setdefault(sink, {})[f"{what}_lost"] = entry.parts["lost"]
            if entry.parts.get("waiting"):
                waiting.setdefault(sink, {})[f"{what}_waiting"] = entry.parts["waiting"]
        for sink, counts in self.unwritten.items():
            log.error("stop: %s could not write everything by the deadline: %s", sink, _counts(counts))
        for sink, counts in waiting.items():
            log.warning("stop: %s kept what it could not write by the deadline: %s", sink, _counts(counts))
        took = self.config.shutdown.timeout_s - (self.stop_deadline - time.monotonic())
        log.info("stopped in %.1f s (shutdown.timeout_s %g)", took, self.config.shutdown.timeout_s)
        return 1 if self.unwritten and code == 0 else code

    def _request_stop(self) -> float:
        """A stop signal: the ingester is asked to end its session (its ``end`` frame closes the open
        candles as partial and carries its counts for the ledger); returns until when to wait for it."""
        if self.ingester is None or self.ingester.returncode is not None:
            log.info("stop requested")
            return time.monotonic()  # nothing to wait for
        log.info("stop requested: asking the ingester to end its session")
        self.ingester.request_stop()
        # half the time left at most: the sinks need the rest to write what the end frame closes
        self._drain_s = self.time_left(STOP_DRAIN_S) / (2 if self.stop_deadline is not None else 1)
        return time.monotonic() + self._drain_s

    async def _ingester_died(self) -> bool:
        """The ingester exited without ending its session. Live: the data of every subscribed symbol is
        missing from now until the next message (a gap), and a new ingester starts after a back-off;
        returns True. A replay cannot resume: the loss is named and the run fails (False)."""
        assert self.ingester is not None
        ingester = self.ingester
        tally = self.sessions.current
        log.error(
            "ingester (session %s) exited with code %s without ending its session, after %d frames (%s);"
            " last output:\n  %s",
            self.sessions.expected,
            ingester.returncode,
            tally.frames if tally else 0,
            ", ".join(f"{k} {v}" for k, v in tally.rows.items()) if tally else "no rows",
            "\n  ".join(ingester.last_lines[-5:]),
        )
        self.handler.counts["ingester_exits"] += 1
        self.handler.gaps.frames_lost("ingester_exit")  # every symbol heard from: until its next message
        local = now_us()
        polled = self.handler.poll()
        await self.publish(polled.batches, polled.records, local)
        if self.config.ingest.source not in LIVE_SOURCES:
            log.error("the replay is incomplete: what the ingester had not sent is lost; run it again")
            return False
        delay = self._restart_delay()
        log.warning("restarting the ingester in %.0f s (restart %d)", delay, self._restarts)
        try:
            await asyncio.wait_for(self._stop.wait(), delay)
            return True  # stop requested meanwhile: the loop ends
        except TimeoutError:
            pass
        self.ingester = self._new_ingester()
        await self.ingester.start()
        return True

    def _restart_delay(self) -> float:
        """1 s, doubling to 30 s; back to 1 s after an ingester that ran for a minute."""
        now = time.monotonic()
        if self._started_at is not None and now - self._started_at > RESTART_RESET_S:
            self._restarts = 0
        self._restarts += 1
        return min(RESTART_MAX_S, RESTART_FIRST_S * 2 ** (self._restarts - 1))

    def _new_ingester(self) -> IngesterProcess:
        book = self.config.data_types.book_snapshots
        self._started_at = time.monotonic()
        return IngesterProcess(
            self.config.ingest,
            self._bound_endpoint,
            book_depth=book.depth,
            book_interval_ms=book.interval_ms,
            session=self.sessions.expect_new(),
            streams=[
                IngestStream(s.exchange, s.symbols, self.asked[s.exchange].frames, s.files)
                for s in self.streams
            ],
            metrics_address=self.config.metrics.ingester_address if self.config.metrics.enabled else None,
        )

    def _check_ledger_frame(self, frame: Frame) -> None:
        """A periodic ``ledger`` frame: every row it counts was in an earlier frame of its session, so
        what this processor received of the session must equal it now."""
        counts = frame.header.get("counts")
        tally = self.sessions.tallies.get(frame.session)
        if not isinstance(counts, dict) or tally is None:
            return
        received = tally.frames - 1  # this frame is in the tally already, and not in its own counts
        self._report(ingester_entries(counts) + wire_entries(counts, received, tally.rows), final=False)

    async def _warm_up_before(self, frame: Frame) -> None:
        """Event clock: the first frame with ticks anchors the warm-up at its earliest exchange timestamp
        (nothing is known of the replay's time before it) and is handled after it. From then on frames
        go straight to ``handle_frame``."""
        anchor = self.handler.first_tick_us(frame)
        if anchor is not None:
            self._warm_at_first_tick = False
            await self.warm_up_from_tables(anchor)

    async def warm_up_from_tables(self, until_us: int) -> None:
        """Recent candles of persist mode's tables through the feature lanes (docs/FEATURES.md "Warm-up
        at start"). The query runs in a thread; a failure is logged, counted (``warmup_errors``) and
        leaves the features cold: it never stops the processor."""
        assert self._read_recent is not None
        where = self._warm_from
        got = await asyncio.to_thread(self._read_recent, until_us)
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
            "features warmed up from persist mode's tables (dataset %s of %s) with %s candles,"
            " anchored at %s",
            got.dataset,
            where,
            ", ".join(f"{tf}: {k}" for tf, k in counts.items()),
            iso_us(until_us),
        )
        self.warmup_stats = {
            "source": "bigquery" if self.config.persist.bigquery.configured() else "local store",
            "dataset": got.dataset,
            "anchor": iso_us(until_us),
            "candles_by_timeframe": counts,
            "missing_tables": list(got.missing),
            "errors": self.handler.counts["warmup_errors"],
        }

    def _warmup_failed(
        self, where: str, dataset: str, table: str | None, error: BaseException, some_used: bool
    ) -> None:
        expected: tuple[type[BaseException], ...] = (OSError,)
        if self.config.persist.bigquery.configured():
            from google.api_core.exceptions import GoogleAPICallError
            from google.auth.exceptions import GoogleAuthError

            expected += (GoogleAPICallError, GoogleAuthError)
        else:
            import duckdb

            expected += (duckdb.Error,)
        self.handler.counts["warmup_errors"] += 1
        log.warning(
            "features: warm-up from persist mode's tables failed (%s, dataset %s, table %s): %s: %s; the"
            " features of %s start cold",
            where,
            dataset,
            table or "-",
            type(error).__name__,
            " ".join(str(error).split()),  # one line (the client appends the job's location and id)
            "the other timeframes" if some_used else "every timeframe",
            # a fault of ours, not the store's: with its traceback
            exc_info=(type(error), error, error.__traceback__) if not isinstance(error, expected) else None,
        )

    async def publish(
        self,
        batches: list[CandleBatch],
        records: list[Record],
        local_us: int,
        trades: Sequence[TradeRows] = (),
    ) -> None:
        """Hand what a frame (or a timer poll) produced to every sink, in order, as one output stamped
        once: ``local_timestamp`` ``local_us`` (when closing its candles began), ``timestamp_out`` now
        (ready for the sinks, after features). ``trades``: the frame's trade rows, when a sink wants
        them."""
        if not batches and not records and not trades:
            return
        for batch in batches:
            self._count_handed(batch)
        self.handed["records"] += len(records)
        if trades:
            self.handed["trades"] = self.handed.get("trades", 0) + sum(map(len, trades))
        position = self.recovery.position if self.recovery is not None else None
        output = FrameOutput(batches, records, Stamps(local_us, now_us()), trades, position)
        for sink in self.sinks:
            await sink.accept(output)

    def _count_handed(self, batch: CandleBatch) -> None:
        self.handed["candles"] += len(batch)
        base = self.base_timeframe
        for part in batch.parts:
            if part.timeframe == base:
                self.trades_in_candles += int(part.trade_count[part.revision == 0].sum())

    async def _finish(self) -> int:
        self._end_mono = mono_us()
        header = self.end_header or {}
        reason = header.get("reason")
        if self.ingester is not None:
            code = await self.ingester.wait(timeout=self.time_left(INGESTER_EXIT_S))
            if code not in (0, None):
                log.error("ingester exited with code %s", code)
        self._log_progress()
        if reason == "error":
            log.error("ingester ended with an error: %s", header.get("error"))
            return 1
        log.info("session ended (%s)", reason)
        return 0

    # -- the ledger ----------------------------------------------------------------------------
    def _close_ledger(self, code: int) -> int:
        """At the end, with every sink closed: the whole ledger (``ledger.py``). A difference is an ERROR
        per line; a replay with one exits 1."""
        entries: list[Entry] = []
        counts = (self.end_header or {}).get("counts")
        tally = self.sessions.tallies.get(self.sessions.expected or "")
        if isinstance(counts, dict) and tally is not None:
            entries += ingester_entries(counts) + wire_entries(counts, tally.frames - 1, tally.rows)
        rows = self.handler.row_ledger()
        entries += apply_entries(rows)
        if "trade" in rows:
            engines = self.handler.engines.values()
            late = sum(e.get_stats()["late_ticks"] for e in engines)
            still_open = sum(e.open_trades for e in engines)  # a stop without the ingester's end frame
            trades, base = rows["trade"]["candles"], self.base_timeframe
            entries.append(candle_entry(trades, late, self.trades_in_candles, base, still_open))
        entries += [e for sink in self.sinks for e in sink.ledger_entries(self.handed)]
        self.ledger = entries
        bad = self._report(entries, final=True)
        if bad and code == 0 and self.config.ingest.source not in LIVE_SOURCES:
            return 1
        return code

    def _report(self, entries: list[Entry], final: bool) -> int:
        """Log every line that does not add up as an ERROR naming the stage and the numbers; count them."""
        bad = [e for e in entries if not e.ok]
        for e in bad:
            self.handler.counts["ledger_mismatches"] += 1
            log.error("ledger%s: %s", "" if final else " (periodic)", e.describe())
        if final:
            log.info("ledger:\n  %s", "\n  ".join(ledger_lines.table(entries)))
        return len(bad)

    def _log_progress(self) -> None:
        c = self.handler.counts
        log.info(
            "frames=%d trades=%d candles=%d records=%d late=%d bad=%d lost_frames=%d gaps=%d",
            c.get("frames", 0),
            self.handler.ticks_by_type.get("trade", 0),
            c.get("candles_out", 0),
            sum(self.handler.records_by_type.values()),
            self.handler.get_stats()["late_ticks"],
            sum(self.handler.bad_rows.values()),
            c.get("frames_lost", 0),
            sum(self.handler.gaps.opened.values()),
        )
        for sink in self.sinks:
            line = sink.progress_line()
            if line:
                log.info("%s", line)

    def get_stats(self) -> dict[str, Any]:
        stats = self.handler.get_stats()
        stats["candles_by_timeframe"] = {
            name: engine.get_stats()["candles_by_timeframe"] for name, engine in self.handler.engines.items()
        }
        for sink in self.sinks:
            stats[sink.name] = sink.get_stats()
        if self.warmup_stats is not None:
            stats["warmup"] = self.warmup_stats
        if self.recovery is not None:
            stats["journal"] = self.recovery.get_stats()
        if self.ledger:
            stats["ledger"] = [ledger_lines.as_dict(e) for e in self.ledger]
        stats["sessions_refused"] = dict(self.sessions.refused)
        if self.ingester is not None and self.ingester.summary is not None:
            stats["ingester"] = self.ingester.summary
        if self._first_frame_mono is not None and self._end_mono is not None:
            stats["elapsed_s"] = (self._end_mono - self._first_frame_mono) / 1e6
        stats["pid"] = os.getpid()
        return stats


def _waiting(stats: dict[str, Any]) -> dict[str, int]:
    """A sink's counts of what it holds unwritten: ``backlog_<what>`` (not the ``_max`` high-water
    marks) and ``buffered_rows``."""
    return {
        k: v
        for k, v in stats.items()
        if isinstance(v, int)
        and v
        and (k == "buffered_rows" or (k.startswith("backlog_") and "max" not in k))
    }


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())
