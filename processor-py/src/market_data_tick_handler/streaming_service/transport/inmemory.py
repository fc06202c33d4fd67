"""Publish/subscribe, capped streams and latest-value hashes inside one process, with Redis's semantics,
for embedded use and ``make demo`` without Redis."""

from __future__ import annotations

import asyncio
import fnmatch
from collections import deque
from collections.abc import Iterable, Sequence

from .base import Entry, PublishResult, parse_entry_id

StreamItem = tuple[tuple[int, int], bytes]  # (entry id as (ms, seq), payload)
SUBSCRIBER_QUEUE = 10_000  # messages waiting per subscriber at most (Redis too cuts off a slow subscriber)


class InMemoryBus:
    """Channel names and glob patterns as in Redis PSUBSCRIBE (each subscriber gets its own queue;
    a subscriber whose bounded queue is full misses the message, counted in ``dropped``); streams capped
    like ``XADD MAXLEN``, refusing an id not above the top like Redis; hashes of latest values."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[str, asyncio.Queue[tuple[str, bytes]]]] = []
        self.streams: dict[str, deque[StreamItem]] = {}
        self.hashes: dict[str, dict[str, bytes]] = {}
        self.dropped = 0
        self._waiters: list[asyncio.Future[None]] = []

    def subscribe(self, pattern: str, maxsize: int = SUBSCRIBER_QUEUE) -> asyncio.Queue[tuple[str, bytes]]:
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize)
        self._subscribers.append((pattern, queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers = [(p, q) for p, q in self._subscribers if q is not queue]

    def publish(self, channel: str, payload: bytes) -> int:
        delivered = 0
        for pattern, queue in self._subscribers:
            if pattern == channel or fnmatch.fnmatchcase(channel, pattern):
                try:
                    queue.put_nowait((channel, payload))
                    delivered += 1
                except asyncio.QueueFull:
                    self.dropped += 1
        return delivered

    def xadd(self, stream: str, entry_id: str, payload: bytes, maxlen: int) -> bool:
        """Append; False (and nothing added) when ``entry_id`` is not above the stream's top."""
        items = self.streams.get(stream)
        if items is None:
            items = self.streams[stream] = deque(maxlen=maxlen)
        key = parse_entry_id(entry_id)
        if items and key <= items[-1][0]:
            return False
        items.append((key, payload))
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        return True

    def xrange_after(self, stream: str, after: tuple[int, int], count: int | None = None) -> list[StreamItem]:
        """Entries with an id above ``after``, oldest first (``XREAD ... STREAMS stream after``)."""
        out = [item for item in self.streams.get(stream, ()) if item[0] > after]
        return out if count is None else out[:count]

    def xrevrange(self, stream: str, count: int) -> list[StreamItem]:
        """The last ``count`` entries, newest first (``XREVRANGE stream + - COUNT count``)."""
        items = self.streams.get(stream, ())
        return [items[i] for i in range(len(items) - 1, max(len(items) - count, 0) - 1, -1)]

    def hset(self, key: str, field: str, payload: bytes) -> None:
        self.hashes.setdefault(key, {})[field] = payload

    def hget(self, key: str, field: str) -> bytes | None:
        return self.hashes.get(key, {}).get(field)

    def hkeys(self, key: str) -> list[str]:
        return list(self.hashes.get(key, {}))

    async def wait_for_entries(self, timeout: float) -> bool:
        """Wait until any stream gets an entry, at most ``timeout`` seconds (``XREAD BLOCK``).
        ``asyncio.timeout``, not ``asyncio.wait_for``: on Python 3.11 the latter swallows a cancel that
        lands as the entry arrives (python/cpython#86296), and the reader would not stop."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
            return True
        except TimeoutError:
            return False
        finally:
            if waiter in self._waiters:  # timed out or cancelled: an idle reader would leave one per wait
                self._waiters.remove(waiter)


DEFAULT_BUS = InMemoryBus()


class InMemoryTransport:
    name = "inmemory"

    def __init__(self, bus: InMemoryBus | None = None, stream_maxlen: int = 1000) -> None:
        self.bus = bus or DEFAULT_BUS
        self.stream_maxlen = stream_maxlen

    def describe(self) -> str:
        return "in-memory bus"

    async def connect(self) -> None:
        return None

    async def publish_many(self, chunks: Iterable[Sequence[Entry]]) -> PublishResult:
        bus, duplicates = self.bus, 0
        for chunk in chunks:
            for channels, payload, target in chunk:
                for channel in channels:
                    bus.publish(channel, payload)
                if target is not None:
                    if not bus.xadd(target.stream, target.entry_id, payload, self.stream_maxlen):
                        duplicates += 1
                    if target.latest is not None:
                        bus.hset(target.latest, target.field, payload)
        return PublishResult(duplicates)

    async def stream_tops(self, streams: Sequence[str]) -> dict[str, tuple[int, int] | None]:
        tops = {s: self.bus.xrevrange(s, 1) for s in streams}
        return {s: top[0][0] if top else None for s, top in tops.items()}

    async def close(self) -> None:
        return None
