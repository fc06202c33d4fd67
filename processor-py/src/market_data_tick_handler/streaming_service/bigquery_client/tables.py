"""Every BigQuery table persist mode writes, defined here and nowhere else (docs/ARCHITECTURE.md lists
them): per candle timeframe a table ``candles_{timeframe}`` with the candle's columns, its three
timestamps, and one nullable FLOAT64 column per HFT feature of the catalogue.

Timestamps are TIMESTAMP columns with microsecond precision (the processor's integers of µs since the
epoch). Tables are time-partitioned on a TIMESTAMP column (``timestamp_out`` by default) and clustered
by ``clustering_fields``; which dataset, and so which partitioning, a run writes to is
:func:`target_dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...config import BigQueryConfig, PartitioningConfig
from ..candle_processor.schema import CANDLE_FIELDS, KEY_COLUMNS
from ..hft_features import catalogue

ColumnType = Literal["STRING", "TIMESTAMP", "FLOAT64", "INT64", "BOOL"]
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    required: bool = True

    @property
    def mode(self) -> str:
        return "REQUIRED" if self.required else "NULLABLE"


#: the columns of a candle row, in table order: the key columns, then the candle's fields (a field that is
#: null on an empty candle is NULLABLE); both from candle_processor/schema.py, meanings there and in
#: messages.py
CANDLE_COLUMNS: tuple[Column, ...] = (
    *(Column(name, type_) for name, type_ in KEY_COLUMNS),
    *(Column(f.name, f.kind.bigquery, required=not f.null_when_empty) for f in CANDLE_FIELDS),
)


def feature_columns() -> tuple[Column, ...]:
    """One nullable FLOAT64 column per feature of the whole catalogue (every window and group), null
    where the window is not full, the group is off, or the timeframe has no features."""
    return tuple(Column(spec.name, "FLOAT64", required=False) for spec in catalogue())


def candle_table_name(timeframe: str) -> str:
    return f"candles_{timeframe}"


@dataclass(frozen=True, slots=True)
class TableSpec:
    dataset: str
    name: str
    columns: tuple[Column, ...]
    partitioning: PartitioningConfig
    clustering_fields: tuple[str, ...]

    @property
    def partition_expiration_ms(self) -> int | None:
        ttl = self.partitioning.ttl_days
        return None if ttl is None else round(float(ttl) * DAY_MS)

    def __post_init__(self) -> None:
        types = {c.name: c.type for c in self.columns}
        if types.get(self.partitioning.field) != "TIMESTAMP":
            raise ValueError(
                f"{self.name}: partitioning field {self.partitioning.field!r} is not a TIMESTAMP column"
            )
        unknown = [f for f in self.clustering_fields if f not in types]
        if unknown or len(self.clustering_fields) > 4:
            raise ValueError(
                f"{self.name}: clustering_fields {list(self.clustering_fields)}: at most 4 columns"
            )


def target_dataset(config: BigQueryConfig, source: str) -> tuple[str, PartitioningConfig]:
    """The dataset a run writes to and its partitioning: ``target: auto`` takes the live dataset for live
    sources (the exchange's feed, the synthetic benchmark source) and the historical one for replays."""
    target = config.target
    if target == "auto":
        target = "historical" if source == "replay" else "live"
    if target == "live":
        return config.dataset_live, config.live_partitioning
    return config.dataset_historical, config.historical_partitioning


def candle_tables(config: BigQueryConfig, source: str, timeframes: tuple[str, ...]) -> dict[str, TableSpec]:
    """The candle table of each timeframe, by timeframe."""
    dataset, partitioning = target_dataset(config, source)
    columns = CANDLE_COLUMNS + feature_columns()
    return {
        tf: TableSpec(dataset, candle_table_name(tf), columns, partitioning, config.clustering_fields)
        for tf in timeframes
    }
