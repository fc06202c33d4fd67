"""What persist mode needs from a table store: append a batch of encoded rows to a table, exactly once
for a batch however often it is retried. One implementation: storage_write.py (BigQuery)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .rows import Row
from .tables import TableSpec


class WriteFailed(Exception):
    """The store could not be reached, timed out or was busy: the same batch is to be sent again."""


class WriteRefused(Exception):
    """The store refused the batch (bad rows, no permission, ...): sending it again would not help."""


@dataclass(slots=True)
class RowBatch:
    """Encoded rows for one table. ``stream``/``offset`` are fixed by the sink at the first attempt, so
    that a retry sends the same rows at the same offset and the store takes them once."""

    table: TableSpec
    rows: list[bytes]
    nbytes: int
    stream: str | None = None
    offset: int | None = None


class RowSink(Protocol):
    def describe(self) -> str:
        """Where rows go, without credentials."""
        ...

    def encode(self, table: TableSpec, rows: list[Row]) -> list[bytes]:
        """The rows in the form ``append`` sends (done once, when they are added)."""
        ...

    def ensure(self, table: TableSpec) -> None:
        """The table exists, partitioned and clustered as specified, with every column (blocking);
        raises like :meth:`append`."""
        ...

    def append(self, batch: RowBatch) -> bool:
        """Write ``batch`` (blocking): True when written now, False when an earlier attempt had already
        written it. Raises :class:`WriteFailed` (send the same batch again) or :class:`WriteRefused`."""
        ...

    def close(self) -> None: ...
