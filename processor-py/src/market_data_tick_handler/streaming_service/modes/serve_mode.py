"""Serve mode: closed candles (with features) and the records of the other data types to Redis, or to
the in-memory bus, for strategy services. Names come from ``keys.py``, messages from ``messages.py``.

Each wire frame's output goes in one round trip: per candle a PUBLISH on each of its channels, an XADD to
its capped stream (a consumer catches up from the last id it saw) and an HSET of the latest candle; per
record a PUBLISH on each of its channels.

When Redis cannot be reached the frame waits in a backlog (``serve.backlog_mb``), later frames queue
behind it in order, and a background task sends them again as soon as Redis is back: the processor is
never held up by Redis. Stream entry ids are fixed when a candle is serialised, so a frame that had in
fact arrived before the connection broke is refused by Redis on the second try instead of being added
twice (counted as ``stream_duplicates``); its PUBLISHes do repeat, which is why consumers that must see
every candle exactly once read the stream (``LiveFeatureStream``). Dropped frames are counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from ...config import ServeConfig
from ...timeutil import now_us
from ..candle_processor import CandleBatch, Stamps
from ..data_types.records import Record
from ..keys import candle_channels, candle_latest_key, candle_stream_key, record_channels
from ..messages import candle_payloads, record_message
from ..transport import Entry, InMemoryTransport, PublishError, RedisTransport, StreamTarget, Transport

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


@dataclass(slots=True)
class _Frame:
    """One frame's serialised output, waiting for Redis."""

    chunks: list[Sequence[Entry]]
    candles: int
    records: int
    nbytes: int


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


class ServeMode:
    def __init__(self, config: ServeConfig | None = None, transport: Transport | None = None) -> None:
        self.config = config or ServeConfig()
        self.transport = transport if transport is not None else make_transport(self.config)
        self.ids = StreamIds()
        self.last_timestamp_out = 0  # µs: the timestamp_out of the last candles serialised
        self._backlog: deque[_Frame] = deque()
        self._backlog_bytes = 0
        self._drainer: asyncio.Task[None] | None = None
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
        }

    async def start(self) -> None:
        await self.transport.connect()
        log.info("serve mode publishing to %s", self.transport.describe())

    def _candle_entries(self, batch: CandleBatch, local_us: int, sent: list[bytes]) -> Iterator[list[Entry]]:
        exchange, symbols, next_id = batch.exchange, batch.symbols, self.ids.next
        self.last_timestamp_out = now_us()
        for block, payloads in candle_payloads(batch, Stamps(local_us, self.last_timestamp_out), CHUNK):
            sent += payloads
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

    async def publish(
        self, batch: CandleBatch | None, local_us: int, records: Sequence[Record] = ()
    ) -> list[bytes]:
        """Publish every candle of ``batch`` and every record of ``records`` in one round trip;
        ``local_us`` is when closing the candles began, ``timestamp_out`` is stamped just before
        serialising. Each chunk is sent as soon as it is serialised. Returns the candles' JSON messages.
        Returns once Redis has acknowledged them, or, when Redis cannot be reached, once they wait in the
        backlog."""
        batch = batch if batch else None
        if batch is None and not records:
            return []
        payloads: list[bytes] = []
        sent: list[Sequence[Entry]] = []

        def serialised() -> Iterator[Sequence[Entry]]:
            if batch is not None:
                for chunk in self._candle_entries(batch, local_us, payloads):
                    sent.append(chunk)
                    yield chunk
            for chunk in self._record_entries(records):
                sent.append(chunk)
                yield chunk

        candles = len(batch) if batch is not None else 0
        if self._backlog:  # keep the order: behind what is waiting
            self._enqueue(_Frame(list(serialised()), candles, len(records), 0))
            return payloads
        chunks = serialised()
        try:
            result = await self._publish_many(chunks)
        except (ConnectionError, TimeoutError, OSError) as exc:
            for _ in chunks:  # serialise the rest (into `sent`): all of it goes again
                pass
            log.warning(
                "publish failed (%s): %d candles and %d records wait for Redis in the backlog; candles go"
                " on being built",
                _describe(exc, self.config.reply_timeout_ms),
                candles,
                len(records),
            )
            self._enqueue(_Frame(sent, candles, len(records), 0))
            return payloads
        except PublishError as exc:
            self._refused(exc, candles, len(records))
            return payloads
        self._count(_Frame(sent, candles, len(records), 0), result.duplicates)
        return payloads

    async def _publish_many(self, chunks: Iterable[Sequence[Entry]]) -> Any:
        """One round trip, with a deadline: a Redis that accepts the connection but does not answer (frozen,
        or swapping) must not stall the processor. Past ``reply_timeout_ms`` the transport drops the
        connection (a fresh one is made for the next try) and the frame goes to the backlog."""
        async with asyncio.timeout(self.config.reply_timeout_ms / 1000):
            return await self.transport.publish_many(chunks)

    def _count(self, frame: _Frame, duplicates: int) -> None:
        s = self.stats
        s["candles_published"] += frame.candles
        s["records_published"] += frame.records
        s["messages_published"] += sum(len(e.channels) for chunk in frame.chunks for e in chunk)
        s["round_trips"] += 1
        if duplicates:
            if not s["stream_duplicates"]:
                log.warning(
                    "%d candle(s) were already in their streams (re-sent after a failure, or a replay"
                    " published again): not added twice; counted in stream_duplicates",
                    duplicates,
                )
            s["stream_duplicates"] += duplicates

    def _refused(self, exc: PublishError, candles: int, records: int) -> None:
        """Redis refused a command of the frame (the rest of it went through): re-sending would not help.
        Its candles and records are counted as refused (some of them may have been published)."""
        self.stats["publish_errors"] += 1
        self.stats["candles_refused"] += candles
        self.stats["records_refused"] += records
        log.error("%s (in a frame of %d candles and %d records)", exc, candles, records)

    def _enqueue(self, frame: _Frame) -> None:
        frame.nbytes = sum(len(e.payload) + ENTRY_OVERHEAD for chunk in frame.chunks for e in chunk)
        self._backlog.append(frame)
        self._backlog_bytes += frame.nbytes
        limit = self.config.backlog_mb * 1_000_000
        while self._backlog_bytes > limit and len(self._backlog) > 1:
            dropped = self._backlog.popleft()
            self._backlog_bytes -= dropped.nbytes
            self.stats["candles_lost"] += dropped.candles
            self.stats["records_lost"] += dropped.records
            log.error(
                "backlog over serve.backlog_mb=%d while Redis is unreachable: dropped the oldest frame"
                " (%d candles, %d records)",
                self.config.backlog_mb,
                dropped.candles,
                dropped.records,
            )
        self._backlog_changed()
        self.stats["backlog_max_frames"] = max(self.stats["backlog_max_frames"], len(self._backlog))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())

    def _backlog_changed(self) -> None:
        self.stats["backlog_frames"] = len(self._backlog)
        self.stats["backlog_candles"] = sum(f.candles for f in self._backlog)

    async def _drain(self) -> None:
        """Send the backlog, oldest first, retrying with backoff until Redis takes it."""
        delay = RETRY_FIRST_S
        while self._backlog:
            frame = self._backlog[0]
            await asyncio.sleep(delay)
            try:
                result = await self._publish_many(frame.chunks)
            except (ConnectionError, TimeoutError, OSError) as exc:
                self.stats["publish_retries"] += 1
                delay = min(RETRY_MAX_S, max(RETRY_FIRST_S, delay * 2))
                log.warning(
                    "Redis still unreachable (%s): %d frames (%d candles) waiting; next try in %.2f s",
                    _describe(exc, self.config.reply_timeout_ms),
                    len(self._backlog),
                    sum(f.candles for f in self._backlog),
                    delay,
                )
                continue
            except PublishError as exc:
                self._refused(exc, frame.candles, frame.records)
            else:
                self._count(frame, result.duplicates)
            if self._backlog and self._backlog[0] is frame:  # not dropped by an overflow meanwhile
                self._backlog.popleft()
                self._backlog_bytes -= frame.nbytes
            self._backlog_changed()
            delay = 0.0
        log.info("backlog published; Redis is reachable again")

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until the backlog is published (at most ``timeout`` s); True when nothing is waiting."""
        if self._drainer is not None and not self._drainer.done():
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: wait_for can lose a cancel (3.11)
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._drainer)
        return not self._backlog

    async def close(self) -> None:
        if not await self.flush(self.config.close_timeout_s):
            lost = sum(f.candles for f in self._backlog), sum(f.records for f in self._backlog)
            self.stats["candles_lost"] += lost[0]
            self.stats["records_lost"] += lost[1]
            log.error(
                "closing with Redis unreachable for %.0f s: %d candles and %d records not published",
                self.config.close_timeout_s,
                *lost,
            )
            self._backlog.clear()
            self._backlog_bytes = 0
            self._backlog_changed()
        if self._drainer is not None:
            self._drainer.cancel()
        await self.transport.close()

    def get_stats(self) -> dict[str, Any]:
        return dict(self.stats)
