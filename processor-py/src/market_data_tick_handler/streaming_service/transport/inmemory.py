"""Publish/subscribe inside one process, for embedded use and ``make demo`` without Redis."""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Iterable, Sequence


class InMemoryBus:
    """Channel names and glob patterns as in Redis PSUBSCRIBE; each subscriber gets its own queue."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[str, asyncio.Queue[tuple[str, bytes]]]] = []

    def subscribe(self, pattern: str, maxsize: int = 0) -> asyncio.Queue[tuple[str, bytes]]:
        queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize)
        self._subscribers.append((pattern, queue))
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._subscribers = [(p, q) for p, q in self._subscribers if q is not queue]

    def publish(self, channel: str, payload: bytes) -> int:
        delivered = 0
        for pattern, queue in self._subscribers:
            if pattern == channel or fnmatch.fnmatchcase(channel, pattern):
                queue.put_nowait((channel, payload))
                delivered += 1
        return delivered


DEFAULT_BUS = InMemoryBus()


class InMemoryTransport:
    name = "inmemory"

    def __init__(self, bus: InMemoryBus | None = None) -> None:
        self.bus = bus or DEFAULT_BUS

    def describe(self) -> str:
        return "in-memory bus"

    async def connect(self) -> None:
        return None

    async def publish_many(self, chunks: Iterable[Sequence[tuple[Sequence[str], bytes]]]) -> None:
        for chunk in chunks:
            for channels, payload in chunk:
                for channel in channels:
                    self.bus.publish(channel, payload)

    async def close(self) -> None:
        return None
