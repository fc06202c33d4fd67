"""BigQuery for persist mode and the tick tables: the tables (``tables.py``), candles as rows in the
Storage Write API's wire form (``proto_rows.py``), ticks as rows (``tick_rows.py``), and the writer
(``storage_write.py``) behind the small ``RowSink`` interface (``sink.py``; ``MemorySink`` keeps the rows
in memory)."""

from .sink import MemorySink, RowBatch, RowSink, WriteFailed, WriteRefused
from .tables import CANDLE_COLUMNS, Column, TableSpec, candle_table_name, candle_tables, feature_columns

__all__ = [
    "CANDLE_COLUMNS",
    "Column",
    "MemorySink",
    "RowBatch",
    "RowSink",
    "TableSpec",
    "WriteFailed",
    "WriteRefused",
    "candle_table_name",
    "candle_tables",
    "feature_columns",
]
