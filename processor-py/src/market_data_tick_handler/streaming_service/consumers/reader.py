"""What :class:`LiveFeatureStream` needs from a store of candle streams: one small interface, one file per
implementation (``redis_reader.py``, ``inmemory_reader.py``), so that the start, resume, discovery and
hole logic is written once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

RawEntry = tuple[str, str, bytes | None]  # (stream key, entry id "ms-seq", the entry's data field)


class StreamReader(Protocol):
    def describe(self) -> str:
        """Where it reads from, without credentials (it goes into log lines)."""

    async def exchanges(self, latest_key: str) -> list[str]:
        """The fields of hash ``latest_key`` (``HKEYS``): the exchanges that have published, sorted."""

    async def tail(self, stream: str, count: int) -> list[RawEntry]:
        """The last ``count`` entries of ``stream``, oldest first; none for a missing stream."""

    async def read(self, cursors: Mapping[str, str], block_ms: int, count: int) -> list[RawEntry]:
        """Up to ``count`` entries per stream with an id above its cursor, each stream oldest first
        (``XREAD COUNT count BLOCK block_ms STREAMS ...``): waits up to ``block_ms`` when there are none,
        also when ``cursors`` is empty."""

    async def close(self) -> None: ...
