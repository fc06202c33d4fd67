"""BigQuery for persist mode: the tables (``tables.py``), candles as rows (``rows.py``), rows as the
Storage Write API's protos (``proto_rows.py``), and the writer (``storage_write.py``) behind the small
``RowSink`` interface (``sink.py``)."""

from .rows import Row, candle_rows
from .sink import RowBatch, RowSink, WriteFailed, WriteRefused
from .tables import CANDLE_COLUMNS, Column, TableSpec, candle_table_name, candle_tables, feature_columns

__all__ = [
    "CANDLE_COLUMNS",
    "Column",
    "Row",
    "RowBatch",
    "RowSink",
    "TableSpec",
    "WriteFailed",
    "WriteRefused",
    "candle_rows",
    "candle_table_name",
    "candle_tables",
    "feature_columns",
]
