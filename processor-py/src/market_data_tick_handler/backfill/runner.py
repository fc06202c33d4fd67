"""The backfill's driver: day arrays through the processor's own objects into its own sinks.

Per (exchange, symbol), one :class:`~..streaming_service.service.StreamingService` is made from the run's
configuration (source ``replay``: the event clock and the historical dataset; the one exchange streaming
the one symbol's ``trades``), but never run: its frame router (``TickHandler``: row checks, gap
detection, the candle engine, the feature stage) is handed each day's trades as ``trade`` frames built
straight from the arrays (no encoding, no ZeroMQ), and what a frame closes goes through the service's
hand-off (one ``FrameOutput`` stamped once) to the same sinks a ``--mode streaming-candles-bigquery``
(and ``streaming-ticks-bigquery`` with ``--ticks``) run writes through: ``PersistMode`` and
``TicksMode``, into BigQuery or the local store as ``modes/persist_mode.make_sink`` decides.

A day's trades go through in frames of up to ``FRAME_ROWS`` trades, however much event time they span:
the candle engine and the gap tracker take a jump of the clock (a hole in the data longer than
``candles.max_clock_jump_ms``) anywhere in a frame once the trades after it confirm it
(``candle_engine.py``, ``gaps.moves_clock``), and cut nothing by frame, so the candles are those of
any other cut (a replay's frames of 1,000 trades). Frames of a minute of event time, as before, cost
0.3 s more on the bench's 2 M trades.

After each day the sinks are flushed (every row of the day acknowledged by the store) and then the day is
recorded with the frame router's checkpoint (``state.py``); a run started again starts at the first day
not recorded, from that checkpoint, so its rows are those of a run never interrupted. At the end of the
range the open candles are closed as partial, as at the end of a replay.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..config import IngestExchangeConfig, StreamingConfig
from ..streaming_service.bigquery_client.tables import candle_table_name, target_dataset
from ..streaming_service.checkpoints import fingerprint
from ..streaming_service.service import StreamingService
from ..timeutil import now_us
from ..wire import Frame
from .progress import Progress
from .sources import DayTrades, SourceError
from .state import SymbolState

log = logging.getLogger(__name__)

#: a frame holds at most this many trades (a piece of a Tardis file, ``sources.PIECE_ROWS``; a day of a
#: recording is cut into frames of this size): it bounds the temporary arrays and the wait for a stop
FRAME_ROWS = 200_000
#: pieces of the input (``sources.PIECE_ROWS`` trades each) read ahead of the one going through the engine
READ_AHEAD = 8
#: tests: after this many days are recorded the process exits at once, as if killed
EXIT_AFTER_DAYS_ENV = "MDTH_BACKFILL_EXIT_AFTER_DAYS"
#: tests: a pause after each recorded day (seconds), so that a signal can be sent between two days
DAY_PAUSE_ENV = "MDTH_BACKFILL_DAY_PAUSE_S"
#: the data types a backfill of trades enables: trades, and gaps (silences of a symbol, as in a replay)
DATA_TYPES = ("trades", "gaps")


def backfill_config(
    config: StreamingConfig, exchange: str, exchange_symbol: str, warmup: bool = True
) -> StreamingConfig:
    """The configuration a backfill of one symbol runs with: a replay (event clock, the historical
    dataset unless ``persist.bigquery.target`` says otherwise) of the one symbol's trades, no spill
    (each day is flushed before the next), features warmed up from the store's earlier candles
    (``warmup``; not from a local store that has no candle table of a feature timeframe yet)."""
    warmup = warmup and config.candles.enable_hft_features and bool(config.candles.hft_timeframes)
    if warmup and not config.persist.bigquery.configured():
        dataset, _ = target_dataset(config.persist.bigquery, "replay")
        root = Path(config.persist.local.path) / dataset
        warmup = any((root / candle_table_name(tf)).is_dir() for tf in config.candles.hft_timeframes)
    data_types = config.data_types
    changes = {n: dataclasses.replace(data_types[n], enabled=n in DATA_TYPES) for n in data_types.names()}
    return dataclasses.replace(
        config,
        data_types=dataclasses.replace(data_types, **changes),
        ingest=dataclasses.replace(
            config.ingest,
            source="replay",
            exchange=exchange,
            symbols=(exchange_symbol,),
            exchanges=(IngestExchangeConfig(exchange, (exchange_symbol,), (), ("trades",)),),
            journal=dataclasses.replace(config.ingest.journal, enabled=False),
        ),
        candles=dataclasses.replace(
            config.candles,
            clock="event",
            hft_warmup_file=None,
            hft_warmup_bigquery=warmup,
        ),
        persist=dataclasses.replace(config.persist, spill_dir=""),
    )


@dataclass(slots=True)
class SymbolJob:
    """One (exchange, symbol) over a range of days; ``read(day)`` gives its trades of a day, in pieces."""

    exchange: str
    symbol: str  # ours: BTC-USDT
    exchange_symbol: str  # the exchange's: BTCUSDT
    days: Sequence[date]
    read: Callable[[date], Iterator[DayTrades]]
    sizes: dict[date, int] = field(default_factory=dict)  # input bytes per day, for the progress


@dataclass(slots=True)
class Outcome:
    trades: int = 0
    candles: int = 0
    bad_rows: Counter[str] = field(default_factory=Counter)
    days_done: int = 0
    days_skipped: int = 0
    stopped: bool = False


class Backfill:
    def __init__(
        self,
        config: StreamingConfig,
        sinks: list[Any],
        state_dir: Path,
        progress: Progress,
        force: bool = False,
        warmup: bool = True,
        ready: Awaitable[None] | None = None,
    ) -> None:
        self.config = config
        self.sinks = sinks
        self.ready = ready  # the sinks' start, awaited before the first row is handed to them
        self.state_dir = state_dir
        self.progress = progress
        self.force = force
        self.warmup = warmup
        self.stop_requested = False
        self.outcome = Outcome()
        exit_after = os.environ.get(EXIT_AFTER_DAYS_ENV)
        self._exit_after = int(exit_after) if exit_after else None
        self._pause_s = float(os.environ.get(DAY_PAUSE_ENV) or 0)

    def stop(self) -> None:
        self.stop_requested = True

    async def _flush(self) -> None:
        """Every row handed to the sinks written (acknowledged by the store); a store that stays
        unreachable keeps this waiting (the backlog retries), and a stop then ends the run unrecorded."""
        for sink in self.sinks:
            flush = getattr(sink, "flush", None)
            if flush is None:
                continue
            while not await flush(5.0):
                if self.stop_requested:
                    raise asyncio.CancelledError
                log.warning("%s: rows of the day still waiting for the store; waiting", sink.name)

    async def run(self, job: SymbolJob) -> bool:
        """Backfill ``job``; True when every day of it is done (now or before), False when stopped."""
        config = backfill_config(self.config, job.exchange, job.exchange_symbol, self.warmup)
        state = SymbolState.load(self.state_dir, job.exchange, job.exchange_symbol)
        days = list(job.days)
        name = f"{job.exchange} {job.symbol}"
        if self.force:
            state.forget_from(days[0])
        todo = next((i for i, d in enumerate(days) if not state.done(d)), None)
        done_before = len(days) if todo is None else todo
        self.outcome.days_skipped += done_before
        self.progress.days += done_before
        self.progress.bytes_done += sum(job.sizes.get(d, 0) for d in days[:done_before])
        if todo is None and state.finished == days[-1].isoformat():
            log.info("%s: every day from %s to %s is done already: nothing to do", name, days[0], days[-1])
            return True
        if done_before:
            log.info("%s: %d day(s) done already, resuming at %s", name, done_before,
                     days[todo] if todo is not None else "the end of the range")  # fmt: skip
        # what the state depends on (the warm-up aside: whether there is history to warm from changes)
        fp = fingerprint(
            dataclasses.replace(
                config, candles=dataclasses.replace(config.candles, hft_warmup_bigquery=False)
            )
        )
        first = days[todo] if todo is not None else days[-1] + timedelta(days=1)
        restored = state.load_checkpoint(first - timedelta(days=1)) if state.fingerprint == fp else None
        if restored is None and done_before:  # recorded, but no state to carry on from (another config)
            log.warning("%s: no usable state after %s: the range is done again from %s", name, first, days[0])
            state.forget_from(days[0])
            todo = 0
        service = StreamingService(config, self.sinks)  # the first one loads the compiled kernels
        if self.ready is not None:
            await self.ready
        self.progress.start()  # the start-up ends here (as a replay's clock starts at its first frame)
        # the files are read ahead in a thread from now on
        reader = ReadAhead(_pieces(job, days[todo:] if todo is not None else []))
        try:
            return await self._run(job, config, service, state, fp, restored, reader, days, name)
        finally:
            reader.close()

    async def _run(
        self,
        job: SymbolJob,
        config: StreamingConfig,
        service: StreamingService,
        state: SymbolState,
        fp: str,
        restored: Any,
        reader: ReadAhead,
        days: list[date],
        name: str,
    ) -> bool:
        if restored is not None:
            restored.keep_trades = service.handler.keep_trades  # this run's sinks: --ticks or not
            service.handler = restored
            if state.finished == state.checkpoint_day:
                log.warning(
                    "%s: the run that ended with %s closed the candles still open then as partial and wrote"
                    " them; this run writes their whole versions with the same keys (the _dedup views keep"
                    " the first written: query the tables for the latest timestamp_out, or backfill the"
                    " whole range again with --force)",
                    name,
                    state.finished,
                )
            log.info(
                "%s: carrying on from the state after %s (open candles, features)", name, state.checkpoint_day
            )
        else:
            state.seq = 0
        state.fingerprint = fp
        session = f"backfill-{job.exchange}-{job.exchange_symbol}-{uuid.uuid4().hex[:8]}"
        if restored is not None and restored._sessions:
            session = next(reversed(restored._sessions))  # the same session: seq goes on from the last
        warm = restored is None and self.warmup and service._read_recent is not None
        day_counts: Counter[str] = Counter()
        sources = ""
        while True:
            item = await reader.next()
            if item is None:
                break
            day, trades = item
            if trades is not None:
                if warm and len(trades):
                    await service.warm_up_from_tables(int(trades.timestamp.min()))
                    warm = False
                candles = await self._piece(service, trades, state, session, name)
                if candles is None:  # stopped: nothing of this day is recorded
                    self.outcome.stopped = True
                    return False
                day_counts.update(trades=len(trades), bad_rows=sum(trades.bad_rows.values()), candles=candles)
                sources = trades.source
                continue
            # the day is read and handed over: recorded once every row of it is written
            try:
                await self._flush()
            except asyncio.CancelledError:
                self.outcome.stopped = True
                return False
            counts = {k: day_counts[k] for k in ("trades", "bad_rows", "candles")}
            state.mark_day(day, {**counts, "source": sources}, service.handler)
            day_counts = Counter()
            self.progress.bytes_done += job.sizes.get(day, 0)
            self.outcome.days_done += 1
            self.progress.days += 1
            self.progress.update(name, force=True)
            if self._exit_after is not None and self.outcome.days_done >= self._exit_after:
                log.warning("%s=%d: exiting now, as if killed", EXIT_AFTER_DAYS_ENV, self._exit_after)
                os._exit(75)
            until = time.monotonic() + self._pause_s
            while time.monotonic() < until and not self.stop_requested:
                await asyncio.sleep(0.05)
        # the end of the range: the open candles close as partial, as at the end of a replay
        local = now_us()
        batches = service.handler.finish()
        await service.publish(batches, [], local)
        self.outcome.candles += sum(len(b) for b in batches)
        try:
            await self._flush()
        except asyncio.CancelledError:
            self.outcome.stopped = True
            return False
        state.finished = days[-1].isoformat()
        state.save()
        return True

    async def _piece(
        self, service: StreamingService, trades: DayTrades, state: SymbolState, session: str, name: str
    ) -> int | None:
        """A piece of a day's trades through the frame router and into the sinks; returns the candles it
        closed, or None when a stop came first."""
        handler = service.handler
        exchange = service.streams[0].exchange
        symbols = [[exchange, service.streams[0].symbols[0]]]
        self.outcome.bad_rows.update(trades.bad_rows)
        self.progress.bad_rows += sum(trades.bad_rows.values())
        candles = 0
        total = len(trades.timestamp)
        for start, end in ((a, min(a + FRAME_ROWS, total)) for a in range(0, total, FRAME_ROWS)):
            if self.stop_requested:
                return None
            n = end - start
            ids = trades.ids
            frame = Frame(
                "trade",
                {"type": "trade", "n": n, "seq": state.seq, "session": session, "symbols": symbols},
                {
                    "sym": np.zeros(n, dtype=np.uint16),
                    "timestamp": trades.timestamp[start:end],
                    "local_timestamp": trades.local_timestamp[start:end],
                    "price": trades.price[start:end],
                    "amount": trades.amount[start:end],
                    "side": trades.side[start:end],
                    "id": ids[start:end] if isinstance(ids, list) else _slice_ids(ids, start, end),
                },
            )
            state.seq += 1
            local = now_us()
            result = handler.handle_frame(frame)
            await service.publish(result.batches, result.records, local, result.trade_rows)
            candles += result.candle_count
            self.outcome.trades += n
            self.progress.trades += n
            self.progress.update(name)
        self.outcome.candles += candles
        return candles


class ReadAhead:
    """The pieces of the input read by a thread of its own, up to ``READ_AHEAD`` pieces ahead of the one
    being used (pyarrow and the decompressor release the GIL: the reading goes on beside the engine).
    An error of the input is raised by :meth:`next` where it was met, after the pieces before it."""

    def __init__(self, pieces: Iterator[tuple[date, DayTrades | None]]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(READ_AHEAD)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(pieces,), name="backfill-read", daemon=True)
        self._thread.start()

    def _fill(self, pieces: Iterator[tuple[date, DayTrades | None]]) -> None:
        try:
            for item in pieces:
                if not self._put(item):
                    return
            self._put(None)
        except BaseException as exc:  # handed to the reader of the pieces, raised there
            self._put(_Failed(exc))

    def _put(self, item: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    async def next(self) -> tuple[date, DayTrades | None] | None:
        """The next piece (``(day, None)`` ends a day), or None at the end."""
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            item = await asyncio.get_running_loop().run_in_executor(None, self._queue.get)
        if isinstance(item, _Failed):
            raise item.error
        return item

    def close(self) -> None:
        self._closed.set()


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


def _pieces(job: SymbolJob, days: Sequence[date]) -> Iterator[tuple[date, DayTrades | None]]:
    """Every day's pieces in order, each day followed by ``(day, None)``: its end."""
    for day in days:
        for piece in job.read(day):
            yield day, piece
        yield day, None


def _slice_ids(ids: Any, start: int, end: int) -> Any:
    """Rows ``start:end`` of a wire ``str`` column, without copying its blob."""
    from ..wire import StrColumn

    if start == 0 and end == len(ids):
        return ids
    offsets = ids._offsets[start : end + 1]
    first = int(offsets[0])
    return StrColumn(offsets - np.uint32(first), ids._blob[first : int(offsets[-1])])


__all__ = ["Backfill", "Outcome", "SourceError", "SymbolJob", "backfill_config"]
