"""What persist mode needs from a table store: append a batch of encoded rows to a table, exactly once
for a batch however often it is retried. Implementations: storage_write.py (BigQuery), and ``MemorySink``
here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .tables import TableSpec

if TYPE_CHECKING:
    from ..candle_processor import ClosedCandles


class WriteFailed(Exception):
    """The store could not be reached, timed out or was busy: the same batch is to be sent again."""


class WriteRefused(Exception):
    """The store refused the batch (bad rows, no permission, ...): sending it again would not help."""


@dataclass(slots=True)
class RowBatch:
    """Encoded rows for one table. ``stream``/``offset`` are fixed by the sink at the first attempt, so
    that a retry sends the same rows at the same offset and the store takes them once. ``schema``: the
    rows' proto ``DescriptorProto`` when they were not encoded by the sink's own ``encode`` (tick rows,
    ``tick_rows.py``)."""

    table: TableSpec
    rows: list[bytes]
    nbytes: int
    stream: str | None = None
    offset: int | None = None
    schema: Any = None


class RowSink(Protocol):
    def describe(self) -> str:
        """Where rows go, without credentials."""
        ...

    def encode(self, table: TableSpec, block: ClosedCandles) -> list[bytes]:
        """The rows of the candles of ``block``, in the form ``append`` sends (done once, when they are
        added); its stamps are their ``local_timestamp`` and ``timestamp_out``."""
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


class MemorySink:
    """A ``RowSink`` that encodes as BigQuery's does and keeps every appended batch in ``batches``
    (``keep=False``: drops them), for tests, benchmarks and embedding."""

    def __init__(self, keep: bool = True) -> None:
        from .proto_rows import RowEncoder  # loads the protobuf runtime

        self._encoder_class = RowEncoder
        self.encoders: dict[str, RowEncoder] = {}
        self.keep = keep
        self.batches: list[RowBatch] = []

    def describe(self) -> str:
        return "memory"

    def encode(self, table: TableSpec, block: ClosedCandles) -> list[bytes]:
        encoder = self.encoders.get(table.name)
        if encoder is None:
            encoder = self.encoders[table.name] = self._encoder_class(table.columns)
        return encoder.encode(block)

    def ensure(self, table: TableSpec) -> None:
        pass

    def append(self, batch: RowBatch) -> bool:
        if self.keep:
            self.batches.append(batch)
        return True

    def close(self) -> None:
        pass
