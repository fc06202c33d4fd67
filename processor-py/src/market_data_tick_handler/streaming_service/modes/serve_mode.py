"""Serve mode: closed candles (with features) and the records of the other data types to Redis, or to
the in-memory bus, for strategy services. Names come from ``keys.py``, messages from ``messages.py``.

Each wire frame's output goes in one round trip: per candle a PUBLISH on each of its channels, an XADD to
its capped stream (a consumer catches up from the last id it saw) and an HSET of the latest candle; per
record a PUBLISH on each of its channels.

When Redis cannot be reached the frame waits in a backlog (``serve.backlog_mb``; ``sinks/backlog.py``),
later frames queue behind it in order, and a background task sends them again as soon as Redis is back:
the processor is never held up by Redis. Stream entry ids are fixed when a candle is serialised, so a
frame that had in fact arrived before the connection broke is refused by Redis on the second try instead
of being added twice (counted as ``stream_duplicates``); its PUBLISHes do repeat, which is why consumers
that must see every candle exactly once read the stream (``LiveFeatureStream``). Dropped frames are
counted and logged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from ...config import ServeConfig, StreamingConfig
from ...timeutil import now_us
from ..candle_processor import CandleBatch, Stamps
from ..data_types.records import Record
from ..keys import candle_channels, candle_latest_key, candle_stream_key, record_channels
from ..ledger import Entry as LedgerEntry
from ..ledger import sink_entry
from ..messages import candle_payloads, record_message
from ..metrics.recorders import closes_of
from ..sinks import Backlog, FrameOutput
from ..transport import (
    Entry,
    InMemoryTransport,
    PublishError,
    PublishResult,
    RedisTransport,
    StreamTarget,
    Transport,
    parse_entry_id,
)

if TYPE_CHECKING:
    from ..metrics.recorders import CloseLag, WriteTimer

log = logging.getLogger(__name__)
CHUNK = 50  # candles per write: Redis takes one chunk while the next is serialised
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 2.0
ENTRY_OVERHEAD = 256  # bytes a backlogged candle costs besides its payload (Entry, StreamTarget, id)


class StreamIds:
    """Entry ids of the candle streams: ``{bucket start ms}-{revision}``, or, when that is not above the
    last id given to the stream (a revision of an older bucket), the next id after it. Ids are strictly
    increasing per stream, as XADD requires, and fixed once given, so re-sending is idempotent."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}
        self._newest_bucket: dict[str, int] = {}

    def next(self, stream: str, bucket_ms: int, revision: int) -> tuple[str, bool]:
        """The id for this candle, and whether its bucket is the stream's newest (so the latest one)."""
        last = self._last.get(stream)
        entry = (bucket_ms, revision)
        if last is not None and entry <= last:
            entry = (last[0], last[1] + 1)
        self._last[stream] = entry
        newest = bucket_ms >= self._newest_bucket.get(stream, bucket_ms)
        if newest:
            self._newest_bucket[stream] = bucket_ms
        return _id_text(entry), newest


@lru_cache(maxsize=256)  # the candles of a boundary share their id text: the last few boundaries suffice
def _id_text(entry: tuple[int, int]) -> str:
    return f"{entry[0]}-{entry[1]}"


class _Frame:
    """One frame's output for Redis: its entries in chunks, serialised as they are first sent (Redis
    takes one chunk while the next is written) and kept, so that a retry sends the very same entries."""

    __slots__ = ("_made", "_nbytes", "_rest", "candles", "closes", "position", "records")

    def __init__(
        self, chunks: Iterable[Sequence[Entry]], candles: int, records: int, position: int | None = None
    ) -> None:
        self._made: list[Sequence[Entry]] = []
        self._rest = iter(chunks)
        self._nbytes: int | None = None
        self.candles = candles
        self.records = records
        self.position = position  # the journal position of the frame it came from
        self.closes: list[tuple[str, str, int, int]] = []  # for the close lag metric (metrics on)

    def __iter__(self) -> Iterator[Sequence[Entry]]:
        yield from list(self._made)
        for chunk in self._rest:
            self._made.append(chunk)
            yield chunk

    @property
    def chunks(self) -> list[Sequence[Entry]]:
        """Every chunk (what was not serialised yet is, now)."""
        self._made.extend(self._rest)
        return self._made

    @property
    def nbytes(self) -> int:
        """What the frame costs while it waits: its payloads, and ``ENTRY_OVERHEAD`` per entry."""
        if self._nbytes is None:
            self._nbytes = sum(len(e.payload) + ENTRY_OVERHEAD for chunk in self.chunks for e in chunk)
        return self._nbytes


def _describe(exc: BaseException, reply_timeout_ms: int) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"no reply within serve.reply_timeout_ms={reply_timeout_ms}"
    return str(exc) or type(exc).__name__


@lru_cache(maxsize=65_536)
def _names(exchange: str, symbol: str, timeframe: str) -> tuple[tuple[str, ...], str, str]:
    """A candle's channels, stream key and latest-hash key."""
    return (
        candle_channels(exchange, symbol, timeframe),
        candle_stream_key(exchange, symbol, timeframe),
        candle_latest_key(symbol, timeframe),
    )


def make_transport(config: ServeConfig) -> Transport:
    if config.transport == "redis":
        return RedisTransport(config.redis_url, config.redis_db, config.stream_maxlen)
    if config.transport == "inmemory":
        return InMemoryTransport(stream_maxlen=config.stream_maxlen)
    raise ValueError(f"serve.transport must be 'redis' or 'inmemory', not {config.transport!r}")


def _before_restart(count: int) -> dict[str, int]:
    """The ledger's part for what a processor recovering from a crash found published (only then)."""
    return {"published before a restart": count} if count else {}


class ServeMode:
    """The Redis (or in-memory bus) sink; ``publish`` is ``accept`` for one batch, for callers other
    than the service (tests, benchmarks, embedding)."""

    name = "serve"

    def __init__(self, config: ServeConfig | None = None, transport: Transport | None = None) -> None:
        self.config = config or ServeConfig()
        self.transport = transport if transport is not None else make_transport(self.config)
        self.ids = StreamIds()
        self.backlog: Backlog[_Frame] = Backlog(
            self,
            limit_bytes=self.config.backlog_mb * 1_000_000,
            first_retry_s=RETRY_FIRST_S,
            max_retry_s=RETRY_MAX_S,
            transient=(ConnectionError, TimeoutError, OSError),
        )
        self.stats: dict[str, Any] = {
            "candles_published": 0,
            "records_published": 0,
            "messages_published": 0,
            "round_trips": 0,
            "publish_retries": 0,
            "publish_errors": 0,
            "stream_duplicates": 0,
            "backlog_frames": 0,
            "backlog_max_frames": 0,
            "candles_lost": 0,
            "records_lost": 0,
            "candles_refused": 0,
            "records_refused": 0,
            "backlog_candles": 0,  # waiting in the backlog now
            # a processor recovering from a crash: in the streams before it (candles), or published before
            # its last checkpoint (records)
            "candles_already_published": 0,
            "records_already_published": 0,
        }
        self._skip_through: int | None = None  # recovering: outputs up to here were published
        self._tops: dict[str, tuple[int, int] | None] | None = None  # recovering: each stream's newest id
        #: metrics (``metrics/``; None when off): each round trip's duration, and candle close lag
        self.write_timer: WriteTimer | None = None
        self.close_lag: CloseLag | None = None

    @classmethod
    def from_config(cls, config: StreamingConfig, option: str | None = None) -> ServeMode:
        return cls(config.serve)

    async def start(self) -> None:
        await self.transport.connect()
        log.info("serve mode publishing to %s", self.transport.describe())
        self.backlog.start()

    def _candle_entries(self, output: FrameOutput) -> Iterator[list[Entry]]:
        next_id = self.ids.next
        for batch in output.batches:
            exchange, symbols = batch.exchange, batch.symbols
            for block, payloads in candle_payloads(batch, output.stamps, CHUNK):
                rows = block.columns
                bucket_ms, timeframe = rows.timestamp_in // 1000, rows.timeframe
                chunk = []
                for slot, revision, payload in zip(
                    rows.slots.tolist(), rows.revision.tolist(), payloads, strict=True
                ):
                    channels, stream, latest = _names(exchange, symbols[slot], timeframe)
                    entry_id, newest = next_id(stream, bucket_ms, revision)
                    target = StreamTarget(stream, entry_id, latest if newest else None, exchange)
                    chunk.append(Entry(channels, payload, target))
                yield chunk

    @staticmethod
    def _record_entries(records: Sequence[Record]) -> Iterator[list[Entry]]:
        for i in range(0, len(records), CHUNK):
            yield [
                Entry(record_channels(r.DATA_TYPE, r.exchange, r.symbol), orjson.dumps(record_message(r)))
                for r in records[i : i + CHUNK]
            ]

    async def accept(self, output: FrameOutput) -> None:
        """Publish every candle and every record of ``output`` in one round trip, each chunk sent as soon
        as it is serialised. Returns once Redis has acknowledged them, or, when Redis cannot be reached or
        earlier frames still wait, once they wait in the backlog."""
        candles, records = output.candles, output.records
        if not candles and not records:
            return
        if self._tops is not None:
            await self._accept_recovering(output)
            return
        chunks = itertools.chain(self._candle_entries(output), self._record_entries(records))
        frame = _Frame(chunks, candles, len(records), output.position)
        if self.close_lag is not None:
            frame.closes = closes_of(output.batches)
        await self.backlog.deliver(frame)

    async def _accept_recovering(self, output: FrameOutput) -> None:
        """``accept`` while the journal is replayed after a crash: an output the last checkpoint says was
        published is not sent again, nor a candle its stream already holds (published after that
        checkpoint, before the crash); the rest goes out as usual. The candles' ids are given out all the
        same, so that the ids of what follows are those of a run without the crash."""
        assert self._tops is not None
        s = self.stats
        candle_chunks = list(self._candle_entries(output))  # gives the ids out
        skip = self._skip_through
        if output.position is not None and skip is not None and output.position <= skip:
            s["candles_already_published"] += output.candles
            s["records_already_published"] += len(output.records)
            return
        streams = {e.target.stream for chunk in candle_chunks for e in chunk if e.target is not None}
        unknown = [stream for stream in streams if stream not in self._tops]
        if unknown:
            self._tops.update(await self.transport.stream_tops(unknown))
        tops, fresh = self._tops, []
        for chunk in candle_chunks:
            for e in chunk:
                top = tops.get(e.target.stream) if e.target is not None else None
                if top is not None and e.target is not None and parse_entry_id(e.target.entry_id) <= top:
                    s["candles_already_published"] += 1
                else:
                    fresh.append(e)
        chunks = itertools.chain([fresh] if fresh else [], self._record_entries(output.records))
        if fresh or output.records:
            await self.backlog.deliver(_Frame(chunks, len(fresh), len(output.records), output.position))

    # -- checkpoints (checkpoints.py) ------------------------------------------------------------------
    def durable_through(self) -> int | None:
        """Everything handed is published but what waits in the backlog."""
        for frame in self.backlog:
            if frame.position is not None:
                return frame.position - 1
        return None

    def checkpoint_state(self) -> Any:
        return {
            "stats": dict(self.stats),
            "ids": self.ids,
            "waiting": (sum(f.candles for f in self.backlog), sum(f.records for f in self.backlog)),
        }

    async def restore(self, state: Any, durable_through: int | None) -> None:
        """The counters as they were at the checkpoint; what waited in the backlog then was published
        before the restart (the checkpoint is at or below what was durable)."""
        if state is not None:  # None: a replay of the journal without a checkpoint, from a session's start
            self.stats.update(state["stats"])
            for key in ("backlog_frames", "backlog_candles"):
                self.stats[key] = 0
            candles, records = state["waiting"]
            self.stats["candles_already_published"] += candles
            self.stats["records_already_published"] += records
            self.ids = state["ids"]
        self._skip_through = durable_through
        self._tops = {}

    async def recovered(self) -> None:
        self._skip_through = self._tops = None

    async def publish(self, batch: CandleBatch | None, local_us: int, records: Sequence[Record] = ()) -> None:
        """``accept`` of ``batch`` (None: records only) and ``records``; ``local_us`` is when closing the
        candles began, ``timestamp_out`` is stamped now."""
        batches = [batch] if batch else []
        await self.accept(FrameOutput(batches, records, Stamps(local_us, now_us())))

    # -- the backlog's delivery (sinks/backlog.py) ----------------------------------------------------
    async def send(self, frame: _Frame) -> PublishResult:
        """One round trip, with a deadline: a Redis that accepts the connection but does not answer (frozen,
        or swapping) must not stall the processor. Past ``reply_timeout_ms`` the transport drops the
        connection (a fresh one is made for the next try) and the frame goes to the backlog."""
        started, outcome = time.perf_counter(), "refused"
        try:
            async with asyncio.timeout(self.config.reply_timeout_ms / 1000):
                result = await self.transport.publish_many(frame)
            outcome = "ok"
            return result
        except (ConnectionError, TimeoutError, OSError, asyncio.CancelledError):
            outcome = "failed"
            raise
        finally:
            if self.write_timer is not None:
                self.write_timer.observe(time.perf_counter() - started, outcome)

    def sent(self, frame: _Frame, result: PublishResult) -> None:
        s = self.stats
        s["candles_published"] += frame.candles
        s["records_published"] += frame.records
        s["messages_published"] += sum(len(e.channels) for chunk in frame.chunks for e in chunk)
        s["round_trips"] += 1
        if self.close_lag is not None and frame.closes:
            self.close_lag.observe(frame.closes)
        if result.duplicates:
            if not s["stream_duplicates"]:
                log.warning(
                    "%d candle(s) were already in their streams (re-sent after a failure, or a replay"
                    " published again): not added twice; counted in stream_duplicates",
                    result.duplicates,
                )
            s["stream_duplicates"] += result.duplicates
        self._drained(frame)

    def failed(self, frame: _Frame, error: BaseException, retry_in_s: float, inline: bool) -> None:
        if inline:
            log.warning(
                "publish failed (%s): %d candles and %d records wait for Redis in the backlog; candles go"
                " on being built",
                _describe(error, self.config.reply_timeout_ms),
                frame.candles,
                frame.records,
            )
            return
        self.stats["publish_retries"] += 1
        log.warning(
            "Redis still unreachable (%s): %d frames (%d candles) waiting; next try in %.2f s",
            _describe(error, self.config.reply_timeout_ms),
            len(self.backlog),
            sum(f.candles for f in self.backlog),
            retry_in_s,
        )

    def refused(self, frame: _Frame, error: BaseException) -> None:
        """Redis refused a command of the frame (the rest of it went through): re-sending would not help.
        Its candles and records are counted as refused (some of them may have been published)."""
        self.stats["publish_errors"] += 1
        self.stats["candles_refused"] += frame.candles
        self.stats["records_refused"] += frame.records
        log.error("%s (in a frame of %d candles and %d records)", error, frame.candles, frame.records,
                  exc_info=not isinstance(error, PublishError))  # fmt: skip
        self._drained(frame)

    def dropped(self, frame: _Frame) -> None:
        self.stats["candles_lost"] += frame.candles
        self.stats["records_lost"] += frame.records
        log.error(
            "backlog over serve.backlog_mb=%d while Redis is unreachable: dropped the oldest frame"
            " (%d candles, %d records)",
            self.config.backlog_mb,
            frame.candles,
            frame.records,
        )

    def backlog_changed(self) -> None:
        self.stats["backlog_frames"] = len(self.backlog)
        self.stats["backlog_candles"] = sum(f.candles for f in self.backlog)
        self.stats["backlog_max_frames"] = max(self.stats["backlog_max_frames"], len(self.backlog))

    def _drained(self, frame: _Frame) -> None:
        """Say so when ``frame`` was the last one waiting."""
        if len(self.backlog) == 1 and next(iter(self.backlog)) is frame:
            log.info("backlog published; Redis is reachable again")

    # ------------------------------------------------------------------------------------------------
    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until the backlog is published (at most ``timeout`` s); True when nothing is waiting."""
        return await self.backlog.flush(timeout)

    async def close(self) -> None:
        left = await self.backlog.close(self.config.close_timeout_s)
        if left:
            lost = sum(f.candles for f in left), sum(f.records for f in left)
            self.stats["candles_lost"] += lost[0]
            self.stats["records_lost"] += lost[1]
            log.error(
                "closing with Redis unreachable for %.0f s: %d candles and %d records not published",
                self.config.close_timeout_s,
                *lost,
            )
        await self.transport.close()

    def get_stats(self) -> dict[str, Any]:
        return dict(self.stats)

    def progress_line(self) -> str:
        s = self.stats
        return (
            f"published candles={s['candles_published']} records={s['records_published']}"
            f" backlog={s['backlog_candles']} retries={s['publish_retries']} lost={s['candles_lost']}"
            f" refused={s['candles_refused']}"
        )

    def summary_lines(self) -> list[str]:
        s = self.stats
        lines = [
            f"published           {s['candles_published']} candles in {s['round_trips']} round trips"
            f" ({s['messages_published']} messages; retries {s['publish_retries']}, lost {s['candles_lost']})"
        ]
        trouble = {k: s[k] for k in ("backlog_max_frames", "stream_duplicates", "publish_errors")}
        if any(trouble.values()):
            lines.append("  while publishing  " + ", ".join(f"{k} {v}" for k, v in trouble.items()))
        if s["records_published"] or s["records_lost"]:
            lines.append(f"  and records       {s['records_published']} (lost {s['records_lost']})")
        return lines

    def ledger_entries(self, handed: Mapping[str, int]) -> list[LedgerEntry]:
        s, name = self.stats, self.config.transport
        return [
            sink_entry(
                name,
                "candles",
                handed["candles"],
                {
                    "published": s["candles_published"],
                    **_before_restart(s["candles_already_published"]),
                    "waiting": s["backlog_candles"],
                    "lost": s["candles_lost"],
                    "refused": s["candles_refused"],
                },
            ),
            sink_entry(
                name,
                "records",
                handed["records"],
                {
                    "published": s["records_published"],
                    **_before_restart(s["records_already_published"]),
                    "lost": s["records_lost"],
                    "refused": s["records_refused"],
                },
            ),
        ]
