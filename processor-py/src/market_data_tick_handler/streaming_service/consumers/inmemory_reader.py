"""Candle streams read from an :class:`InMemoryBus`, with the same semantics as from Redis."""

from __future__ import annotations

from collections.abc import Mapping

from ..transport.base import parse_entry_id
from ..transport.inmemory import InMemoryBus, StreamItem
from .reader import RawEntry


class InMemoryStreamReader:
    def __init__(self, bus: InMemoryBus) -> None:
        self._bus = bus

    def describe(self) -> str:
        return "in-memory bus"

    async def exchanges(self, latest_key: str) -> list[str]:
        return sorted(self._bus.hkeys(latest_key))

    async def tail(self, stream: str, count: int) -> list[RawEntry]:
        return [_raw(stream, item) for item in reversed(self._bus.xrevrange(stream, count))]

    async def read(self, cursors: Mapping[str, str], block_ms: int, count: int) -> list[RawEntry]:
        entries = self._after(cursors, count)
        if not entries and await self._bus.wait_for_entries(block_ms / 1000):
            entries = self._after(cursors, count)
        return entries

    def _after(self, cursors: Mapping[str, str], count: int) -> list[RawEntry]:
        return [
            _raw(stream, item)
            for stream, cursor in cursors.items()
            for item in self._bus.xrange_after(stream, parse_entry_id(cursor), count)
        ]

    async def close(self) -> None:
        return None


def _raw(stream: str, item: StreamItem) -> RawEntry:
    (ms, seq), payload = item
    return stream, f"{ms}-{seq}", payload
