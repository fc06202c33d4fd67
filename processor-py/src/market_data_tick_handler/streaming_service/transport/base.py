"""Where published messages go: one small interface, one file per implementation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Transport(Protocol):
    name: str

    async def connect(self) -> None: ...

    async def publish_many(self, messages: Sequence[tuple[Sequence[str], bytes]]) -> None:
        """Publish each payload on each of its channels, all in one round trip; raise on failure."""

    async def close(self) -> None: ...
