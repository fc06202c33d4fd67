"""Every BigQuery table persist mode and the tick sink write, defined here and nowhere else
(docs/ARCHITECTURE.md lists them): per candle timeframe a table ``candles_{timeframe}`` with the candle's
columns, its three timestamps, and one nullable FLOAT64 column per HFT feature of the catalogue; per data
type with a record a table ``ticks_{data type}`` (:func:`tick_tables`) with the record's fields
(``data_types/records.py``) and ``timestamp_out``.

Timestamps are TIMESTAMP columns with microsecond precision (the processor's integers of µs since the
epoch). Tables are time-partitioned on a TIMESTAMP column (``timestamp_out`` by default) and clustered
by ``clustering_fields``; which dataset, and so which partitioning, a run writes to is
:func:`target_dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

from ...config import BigQueryConfig, PartitioningConfig
from ..candle_processor.schema import CANDLE_FIELDS, KEY_COLUMNS
from ..data_types.records import TIMESTAMP_FIELDS, Record
from ..data_types.registry import DATA_TYPES
from ..hft_features import catalogue

ColumnType = Literal["STRING", "TIMESTAMP", "FLOAT64", "INT64", "BOOL", "RECORD"]
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    required: bool = True
    #: a RECORD's fields; ``repeated``: an ARRAY (of the type, or of STRUCTs of ``fields``)
    fields: tuple[Column, ...] = ()
    repeated: bool = False

    @property
    def mode(self) -> str:
        if self.repeated:
            return "REPEATED"
        return "REQUIRED" if self.required else "NULLABLE"


#: the columns of a candle row, in table order: the key columns, then the candle's fields (a field that is
#: null on an empty candle is NULLABLE); both from candle_processor/schema.py, meanings there and in
#: messages.py
CANDLE_COLUMNS: tuple[Column, ...] = (
    *(Column(name, type_) for name, type_ in KEY_COLUMNS),
    *(Column(f.name, f.kind.bigquery, required=not f.null_when_empty) for f in CANDLE_FIELDS),
)


#: a candle row's key: one row per candle and revision
CANDLE_KEY = ("exchange", "symbol", "timestamp_in", "revision")


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
    #: the columns that name a row: a row written twice (a replay after a crash, the same recording
    #: replayed into the historical dataset again) has the same key, and the table's de-duplicating view
    #: (``{name}_dedup``) shows one row per key (docs/ARCHITECTURE.md "Exactly once")
    key: tuple[str, ...] = ()

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
        missing = [k for k in self.key if k not in types]
        if missing:
            raise ValueError(f"{self.name}: key columns {missing} are not columns")
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
        tf: TableSpec(
            dataset, candle_table_name(tf), columns, partitioning, config.clustering_fields, CANDLE_KEY
        )
        for tf in timeframes
    }


# -- tick tables ---------------------------------------------------------------------------------------
#: a book side's levels: ARRAY<STRUCT<price FLOAT64, amount FLOAT64>>, best first (docs/ARCHITECTURE.md
#: "Tables" says why repeated records and not a column per level)
LEVEL_FIELDS = (Column("price", "FLOAT64"), Column("amount", "FLOAT64"))
#: the columns every tick table starts with: the record's key, then when the processor handed it on
_TICK_HEAD = ("exchange", "symbol", "exchange_symbol", "timestamp", "local_timestamp")
#: a record field's annotation (``records.py``, postponed: a string) -> its column's type
_TICK_TYPES: dict[str, ColumnType] = {"str": "STRING", "float": "FLOAT64", "int": "INT64", "bool": "BOOL"}
_LEVELS = "tuple[tuple[float, float], ...]"


def _tick_column(name: str, annotation: str) -> Column:
    kind, nullable = annotation, False
    if kind.endswith(" | None"):
        kind, nullable = kind[: -len(" | None")], True
    if kind == _LEVELS:
        return Column(name, "RECORD", fields=LEVEL_FIELDS, repeated=True)
    type_ = _TICK_TYPES.get(kind)
    if type_ is None:
        raise ValueError(f"record field {name}: {annotation} has no BigQuery column type here")
    if type_ == "INT64" and name in TIMESTAMP_FIELDS:
        type_ = "TIMESTAMP"
    return Column(name, type_, required=not nullable)


def tick_columns(record: type[Record]) -> tuple[Column, ...]:
    """The columns of a record's tick table, in table order: ``exchange``, ``symbol``,
    ``exchange_symbol``, ``timestamp`` (exchange time), ``local_timestamp`` (the ingester's receipt),
    ``timestamp_out`` (handed to the sinks, the service's stamp), then the record's own fields in their
    order. Made from the record's dataclass fields: µs integers named in ``TIMESTAMP_FIELDS`` are
    TIMESTAMP, ``| None`` is NULLABLE, book levels are repeated records."""
    columns = {f.name: _tick_column(f.name, str(f.type)) for f in fields(record)}
    if tuple(columns)[: len(_TICK_HEAD)] != _TICK_HEAD:
        raise ValueError(f"{record.__name__}: a record starts with {_TICK_HEAD}")
    head = tuple(columns[name] for name in _TICK_HEAD)
    rest = tuple(c for name, c in columns.items() if name not in _TICK_HEAD)
    return (*head, Column("timestamp_out", "TIMESTAMP"), *rest)


def tick_key(columns: tuple[Column, ...]) -> tuple[str, ...]:
    """A tick row's key: everything the exchange sent, that is every column but the two local stamps
    (``local_timestamp``, when the ingester received it, differs between two replays of a recording;
    ``timestamp_out`` between any two runs) and the book levels (a snapshot is named by its symbol, name
    and exchange time)."""
    return tuple(
        c.name for c in columns if c.name not in ("local_timestamp", "timestamp_out") and c.type != "RECORD"
    )


#: data type -> its record, for every type of the registry that makes records (not candles)
TICK_RECORDS: dict[str, type[Record]] = {
    t.name: t.record for t in DATA_TYPES if isinstance(t.record, type) and issubclass(t.record, Record)
}


def tick_table_name(data_type: str) -> str:
    return f"ticks_{data_type}"


def tick_partitioning(config: BigQueryConfig, source: str) -> tuple[str, PartitioningConfig]:
    """The dataset of a run's tick tables and their partitioning: the candle tables' (``target_dataset``),
    except that in the historical dataset a tick table partitions on its market time, ``timestamp``, when
    the configured field is ``timestamp_out`` (the default) or ``timestamp_in`` (the candles' market
    time): a replay's ``timestamp_out`` is the day it ran, which would put years of history into one
    partition (docs/ARCHITECTURE.md "Tables")."""
    dataset, partitioning = target_dataset(config, source)
    if dataset == config.dataset_historical and partitioning.field in ("timestamp_out", "timestamp_in"):
        partitioning = replace(partitioning, field="timestamp")
    return dataset, partitioning


def tick_tables(
    config: BigQueryConfig, source: str, data_types: tuple[str, ...] | None = None
) -> dict[str, TableSpec]:
    """The tick table of each data type (all that make records when None), by data type."""
    dataset, partitioning = tick_partitioning(config, source)
    names = TICK_RECORDS if data_types is None else data_types
    return {
        name: TableSpec(
            dataset,
            tick_table_name(name),
            tick_columns(TICK_RECORDS[name]),
            partitioning,
            config.clustering_fields,
            tick_key(tick_columns(TICK_RECORDS[name])),
        )
        for name in names
    }


# -- the instruments table -----------------------------------------------------------------------------
#: a version of an instrument definition (``instrument_service.InstrumentDefinition``), one row each,
#: written by ``--mode live-instruments-sync`` with persist mode (``sinks/instruments_sync.py``):
#: ``version`` names the definition's values (a hash of every field but ``read_at``), ``change`` says why
#: the row was written (``loaded``: at the sync's start, ``listed``, ``changed``, ``delisted``),
#: ``effective_from`` is when this version took effect (the load that found it) and ``local_timestamp``
#: when the exchange's markets it came from were read (the definition's ``read_at``; named as in every
#: keyed table, whose ``_dedup`` view orders by ``timestamp_out, local_timestamp``)
INSTRUMENT_COLUMNS: tuple[Column, ...] = (
    Column("exchange", "STRING"),
    Column("symbol", "STRING"),
    Column("version", "STRING"),
    Column("change", "STRING"),
    Column("effective_from", "TIMESTAMP"),
    Column("local_timestamp", "TIMESTAMP"),
    Column("timestamp_out", "TIMESTAMP"),
    Column("ccxt_symbol", "STRING"),
    Column("exchange_symbol", "STRING"),
    Column("ccxt_exchange", "STRING"),
    Column("base", "STRING"),
    Column("quote", "STRING"),
    Column("settle", "STRING", required=False),
    Column("type", "STRING"),
    Column("linear", "BOOL", required=False),
    Column("inverse", "BOOL", required=False),
    Column("contract_size", "FLOAT64", required=False),
    Column("tick_size", "FLOAT64", required=False),
    Column("lot_step", "FLOAT64", required=False),
    Column("min_size", "FLOAT64", required=False),
    Column("min_notional", "FLOAT64", required=False),
    Column("trading_fees_maker", "FLOAT64", required=False),
    Column("trading_fees_taker", "FLOAT64", required=False),
    Column("expiry", "TIMESTAMP", required=False),
    Column("strike", "FLOAT64", required=False),
    Column("option_type", "STRING", required=False),
    Column("active", "BOOL"),
)
#: one row per version: the same version written again (by every start of the sync) shows once in the
#: ``instruments_dedup`` view, at the first time it was seen
INSTRUMENT_KEY = ("exchange", "symbol", "version")
INSTRUMENTS_TABLE = "instruments"


def instruments_table(config: BigQueryConfig) -> TableSpec:
    """The ``instruments`` table, in the live dataset (definitions are read from the exchanges now, even
    beside a replay), partitioned by month on ``effective_from`` and kept for ever (the history of a
    definition must outlive the live dataset's 30 days), clustered by exchange and symbol."""
    return TableSpec(
        config.dataset_live,
        INSTRUMENTS_TABLE,
        INSTRUMENT_COLUMNS,
        PartitioningConfig(type="MONTH", field="effective_from", ttl_days=None),
        ("exchange", "symbol"),
        INSTRUMENT_KEY,
    )
