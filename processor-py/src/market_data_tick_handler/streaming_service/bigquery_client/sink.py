"""What persist mode and the tick sink need from a table store: encode rows in its own form when they are
handed over, and append a batch of them to a table, exactly once for a batch however often it is
retried. Implementations: storage_write.py (BigQuery and its emulator), ``local_store/store.py`` (the
embedded default: Parquet files read through DuckDB), and ``MemorySink`` here. Which one a run uses:
``modes/persist_mode.make_sink``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .tables import CANDLE_COLUMNS, TableSpec

if TYPE_CHECKING:
    from ..candle_processor import ClosedCandles
    from ..data_types.records import Record
    from ..data_types.trades import TradeRows


def is_candle_table(table: TableSpec) -> bool:
    """A candle table (``tables.candle_tables``), not a tick table: its rows are encoded from candles."""
    return table.columns[: len(CANDLE_COLUMNS)] == CANDLE_COLUMNS


class WriteFailed(Exception):
    """The store could not be reached, timed out or was busy: the same batch is to be sent again."""


class WriteRefused(Exception):
    """The store refused the batch (bad rows, no permission, ...): sending it again would not help."""


@dataclass(slots=True)
class RowBatch:
    """Encoded rows for one table. ``stream``/``offset`` are fixed by the sink at the first attempt, so
    that a retry sends the same rows at the same offset and the store takes them once. The rows are in
    the form of the sink that encoded them (its ``encode``, ``encode_trades``, ``encode_records``),
    which knows that form by the table."""

    table: TableSpec
    rows: list[bytes]
    nbytes: int
    stream: str | None = None
    offset: int | None = None
    #: the journal position of the output its first row came from (None: no journal, or read back from
    #: the spill, which is durable): what the processor's checkpoints call durable is below it
    first_position: int | None = None


class RowSink(Protocol):
    #: what it is, in a word or two, for the ledger's lines (``bigquery``, ``local store``, ``memory``)
    kind: str

    def describe(self) -> str:
        """Where rows go, without credentials."""
        ...

    def encode(self, table: TableSpec, block: ClosedCandles) -> list[bytes]:
        """The rows of the candles of ``block``, in the form ``append`` sends (done once, when they are
        added); its stamps are their ``local_timestamp`` and ``timestamp_out``."""
        ...

    def encode_trades(self, table: TableSpec, trades: TradeRows, out_us: int) -> list[bytes]:
        """The rows of a trade frame's kept rows (``ticks_trades``), in frame order, with
        ``timestamp_out`` ``out_us``."""
        ...

    def encode_records(self, table: TableSpec, records: Sequence[Record], out_us: int) -> list[bytes]:
        """A row per record of the table's data type, with ``timestamp_out`` ``out_us``."""
        ...

    def ensure(self, table: TableSpec) -> None:
        """The table exists, partitioned and clustered as specified, with every column (blocking);
        raises like :meth:`append`."""
        ...

    def append(self, batch: RowBatch) -> bool:
        """Write ``batch`` (blocking): True when written now, False when an earlier attempt had already
        written it. Raises :class:`WriteFailed` (send the same batch again) or :class:`WriteRefused`."""
        ...

    def stats(self) -> dict[str, int]:
        """The store's own counters (the local store's expired partitions, ...), for the sink's stats."""
        ...

    def close(self) -> None: ...


class MemorySink:
    """A ``RowSink`` that encodes as BigQuery's does and keeps every appended batch in ``batches``
    (``keep=False``: drops them), for tests, benchmarks and embedding."""

    def __init__(self, keep: bool = True) -> None:
        from .proto_rows import RowEncoder  # loads the protobuf runtime
        from .tick_rows import TickEncoders

        self._encoder_class = RowEncoder
        self.encoders: dict[str, RowEncoder] = {}
        self.ticks: TickEncoders = TickEncoders()
        self.keep = keep
        self.batches: list[RowBatch] = []

    kind = "memory"

    def describe(self) -> str:
        return "memory"

    def encode(self, table: TableSpec, block: ClosedCandles) -> list[bytes]:
        encoder = self.encoders.get(table.name)
        if encoder is None:
            encoder = self.encoders[table.name] = self._encoder_class(table.columns)
        return encoder.encode(block)

    def encode_trades(self, table: TableSpec, trades: TradeRows, out_us: int) -> list[bytes]:
        return self.ticks.of(table).trades(trades, out_us)

    def encode_records(self, table: TableSpec, records: Sequence[Record], out_us: int) -> list[bytes]:
        return self.ticks.of(table).records(records, out_us)

    def ensure(self, table: TableSpec) -> None:
        pass

    def append(self, batch: RowBatch) -> bool:
        if self.keep:
            self.batches.append(batch)
        return True

    def stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass
