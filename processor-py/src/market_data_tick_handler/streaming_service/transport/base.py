"""Where published messages go: one small interface, one file per implementation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol


class Transport(Protocol):
    name: str

    async def connect(self) -> None: ...

    async def publish_many(self, chunks: Iterable[Sequence[tuple[Sequence[str], bytes]]]) -> None:
        """Publish each payload on each of its channels, all in one round trip: each chunk of (channels,
        payload) is sent as soon as the iterable yields it, and the replies are awaited at the end.
        Raise on failure."""

    async def close(self) -> None: ...
