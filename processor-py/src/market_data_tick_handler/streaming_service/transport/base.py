"""Where published messages go: one small interface, one file per implementation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol


class StreamTarget(NamedTuple):
    """Where a candle is kept besides its channels: appended to ``stream`` as entry ``entry_id``
    (``ms-seq``) and stored as the latest candle in hash ``latest`` under ``field`` (the exchange);
    ``latest`` is None for a revision of a bucket older than the one stored there."""

    stream: str
    entry_id: str
    latest: str | None
    field: str


class Entry(NamedTuple):
    """One message: ``payload`` published on every one of ``channels`` (and kept, when ``target``)."""

    channels: Sequence[str]
    payload: bytes
    target: StreamTarget | None = None


class PublishResult(NamedTuple):
    """``duplicates``: stream entries refused because the stream already held an id at least as new,
    i.e. a candle re-sent after a failure that had in fact arrived."""

    duplicates: int = 0


def parse_entry_id(entry_id: str | bytes) -> tuple[int, int]:
    """``"1723161600000-0"`` -> ``(1723161600000, 0)``: stream ids compare as these pairs."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Transport(Protocol):
    name: str

    def describe(self) -> str:
        """Where it publishes, without credentials."""

    async def connect(self) -> None: ...

    async def publish_many(self, chunks: Iterable[Sequence[Entry]]) -> PublishResult:
        """Publish each entry on each of its channels and keep it in its stream and latest hash, all in one
        round trip: each chunk is sent as soon as the iterable yields it, and the replies are awaited at
        the end. Raise ``ConnectionError`` when the other end cannot be reached (the caller sends the
        whole frame again later: PUBLISHes may repeat, stream entries do not) and ``PublishError`` when
        it refused a command."""

    async def stream_tops(self, streams: Sequence[str]) -> dict[str, tuple[int, int] | None]:
        """The id of the newest entry of each stream (None: empty or absent), as ``parse_entry_id``
        gives it: what a processor recovering from a crash had published already."""
        ...

    async def close(self) -> None: ...


class PublishError(RuntimeError):
    """The server refused a command (not a duplicate stream entry): re-sending would not help."""
