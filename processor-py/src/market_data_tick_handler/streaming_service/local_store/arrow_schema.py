"""A table's columns (``bigquery_client/tables.py``) as Arrow/Parquet types: the local store writes the
same columns BigQuery has, with the same nulls.

STRING -> string, FLOAT64 -> float64, INT64 -> int64, BOOL -> bool, TIMESTAMP -> timestamp[us, tz=UTC]
(DuckDB reads it as TIMESTAMP WITH TIME ZONE, an instant, as BigQuery's TIMESTAMP is), a repeated RECORD
(a book side) -> list<struct<...>> of non-null fields, never null itself (an empty side is an empty
list, as BigQuery stores a REPEATED column). A REQUIRED column is a non-nullable field: Parquet refuses a
null in it."""

from __future__ import annotations

import pyarrow as pa

from ..bigquery_client.tables import Column, TableSpec

TIMESTAMP = pa.timestamp("us", tz="UTC")
_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "FLOAT64": pa.float64(),
    "INT64": pa.int64(),
    "BOOL": pa.bool_(),
    "TIMESTAMP": TIMESTAMP,
}


def arrow_type(column: Column) -> pa.DataType:
    if column.type == "RECORD":
        struct = pa.struct([pa.field(f.name, arrow_type(f), nullable=not f.required) for f in column.fields])
        return pa.list_(struct) if column.repeated else struct
    base = _TYPES[column.type]
    return pa.list_(base) if column.repeated else base


def arrow_field(column: Column) -> pa.Field:
    return pa.field(column.name, arrow_type(column), nullable=not (column.required or column.repeated))


def arrow_schema(table: TableSpec) -> pa.Schema:
    return pa.schema([arrow_field(c) for c in table.columns])
