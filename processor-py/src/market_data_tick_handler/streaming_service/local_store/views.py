"""The local store's tables as DuckDB views: ``<dataset>.<table>`` (every row written, the table's columns
in order) and ``<dataset>.<table>_dedup`` (one row per ``TableSpec.key``: of rows written more than once,
the one with the earliest ``timestamp_out``), over ``read_parquet`` of the table's files.

The views are made from what is on disk: each table's ``_schema.parquet`` (``layout.py``) gives its
columns and, in its metadata, its key. ``write_views_sql`` writes them to ``<root>/views.sql`` (absolute
paths) for ``duckdb -init <root>/views.sql``; :func:`connect` makes them in a new DuckDB connection for
any path. A table with no rows yet still has a working view: its ``_schema.parquet`` is always among its
files (DuckDB refuses a pattern that matches no file). Reading never blocks writing: the files are
complete when they appear (written under a temporary name, then renamed), and a query reads those there
when it starts."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from ..bigquery_client.tables import TableSpec
from .layout import SCHEMA_FILE, TEMP_SUFFIX

if TYPE_CHECKING:
    import duckdb

#: the metadata key of a table's description in its ``_schema.parquet``
META_KEY = b"mdth.table"
VIEWS_FILE = "views.sql"


@dataclass(frozen=True, slots=True)
class StoredTable:
    """A table as the store keeps it: its folder, columns and key."""

    dataset: str
    name: str
    folder: Path
    columns: tuple[str, ...]
    key: tuple[str, ...]


def table_meta(table: TableSpec) -> dict[bytes, bytes]:
    """The metadata of a table's ``_schema.parquet``."""
    p = table.partitioning
    meta = {
        "dataset": table.dataset,
        "name": table.name,
        "key": list(table.key),
        "clustering_fields": list(table.clustering_fields),
        "partitioning": {"type": p.type, "field": p.field, "ttl_days": p.ttl_days},
        "columns": [[c.name, c.type, c.mode] for c in table.columns],
    }
    return {META_KEY: json.dumps(meta).encode()}


def stored_tables(root: Path) -> list[StoredTable]:
    """Every table under ``root``, by dataset and name."""
    out = []
    for schema_file in sorted(root.glob(f"*/*/{SCHEMA_FILE}")):
        schema = pq.read_schema(schema_file)
        meta = json.loads((schema.metadata or {}).get(META_KEY, b"{}"))
        folder = schema_file.parent
        out.append(
            StoredTable(
                meta.get("dataset", folder.parent.name),
                meta.get("name", folder.name),
                folder.absolute(),
                tuple(schema.names),
                tuple(meta.get("key", ())),
            )
        )
    return out


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def views_sql(root: Path) -> str:
    """The SQL that makes every table's two views (absolute paths)."""
    lines = [
        "-- The local store's tables as DuckDB views, made by market_data_tick_handler from the tables'",
        '-- _schema.parquet files (docs/ARCHITECTURE.md "The local store"). Use: duckdb -init <this file>,',
        "-- or in Python: market_data_tick_handler.query.connect(<store path>).",
        "SET TimeZone = 'UTC';  -- TIMESTAMP columns shown in UTC, as the processor writes them",
    ]
    tables = stored_tables(root)
    for dataset in sorted({t.dataset for t in tables}):
        lines.append(f"CREATE SCHEMA IF NOT EXISTS {_ident(dataset)};")
    for t in tables:
        full = f"{_ident(t.dataset)}.{_ident(t.name)}"
        columns = ", ".join(map(_ident, t.columns))
        files = _literal(f"{t.folder.as_posix()}/**/*.parquet")
        lines.append(
            f"CREATE OR REPLACE VIEW {full} AS SELECT {columns} FROM read_parquet({files},"
            " hive_partitioning = false, union_by_name = true);"
        )
        if t.key:
            keys = ", ".join(map(_ident, t.key))
            lines.append(
                f"CREATE OR REPLACE VIEW {_ident(t.dataset)}.{_ident(t.name + '_dedup')} AS SELECT * FROM"
                f" {full} QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY timestamp_out,"
                " local_timestamp) = 1;"
            )
    return "\n".join(lines) + "\n"


def write_views_sql(root: Path) -> Path:
    """``<root>/views.sql`` rewritten from the tables on disk, under a lock (several sinks and processes
    may write one store), renamed into place."""
    path = root / VIEWS_FILE
    with open(root / ".views.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        temp = root / f".{VIEWS_FILE}.{os.getpid()}{TEMP_SUFFIX}"
        temp.write_text(views_sql(root))
        os.replace(temp, path)
    return path


def connect(path: str | Path = "data/warehouse") -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views of the store at ``path`` (``<dataset>.<table>``,
    ``<dataset>.<table>_dedup``), its time zone UTC. Tables created after it was made need a new
    connection."""
    import duckdb

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"no local store at {root}")
    connection = duckdb.connect()
    connection.execute(views_sql(root))
    return connection
