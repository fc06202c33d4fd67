"""Where the local store keeps a table's rows:
``<root>/<dataset>/<table>/<partition>/part-<run>-<offset>.parquet``.

The partition folders are hive-style and follow the table's BigQuery partitioning (``tables.py``), on the
same column and in UTC: HOUR ``date=YYYY-MM-DD/hour=HH``, DAY ``date=YYYY-MM-DD``, MONTH
``month=YYYY-MM``, YEAR ``year=YYYY``. ``<table>/_schema.parquet`` holds no rows: the table's columns, and
in its metadata its key, partitioning and clustering (``views.py`` reads them back). A file is written
under a hidden temporary name (``.part-....tmp``) and renamed, so a reader never sees half of one."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..bigquery_client.tables import TableSpec

SCHEMA_FILE = "_schema.parquet"
TEMP_SUFFIX = ".tmp"
#: a partition type -> its numpy datetime unit
UNITS = {"HOUR": "h", "DAY": "D", "MONTH": "M", "YEAR": "Y"}
#: the folder levels of each partition type, and the pattern of its path below the table's folder
_FOLDERS = {
    "HOUR": ("date=%Y-%m-%d", "hour=%H"),
    "DAY": ("date=%Y-%m-%d",),
    "MONTH": ("month=%Y-%m",),
    "YEAR": ("year=%Y",),
}
_PATTERNS = {
    "HOUR": re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})"),
    "DAY": re.compile(r"date=(\d{4}-\d{2}-\d{2})"),
    "MONTH": re.compile(r"month=(\d{4}-\d{2})"),
    "YEAR": re.compile(r"year=(\d{4})"),
}
#: a store's run id (``run_id``): a batch's file names are ``part-<run>-<offset>.parquet``
RUN = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


def table_dir(root: Path, table: TableSpec) -> Path:
    return root / table.dataset / table.name


def partition_starts(values_us: np.ndarray, partitioning_type: str) -> np.ndarray:
    """The start of the partition of each value (µs since the epoch) as numpy datetimes of its unit."""
    return values_us.astype("datetime64[us]").astype(f"datetime64[{UNITS[partitioning_type]}]")


def partition_folder(start: np.datetime64, partitioning_type: str) -> str:
    moment = start.astype("datetime64[s]").item()  # a naive datetime, UTC
    return "/".join(moment.strftime(level) for level in _FOLDERS[partitioning_type])


def partition_depth(partitioning_type: str) -> int:
    return len(_FOLDERS[partitioning_type])


def parse_folder(relative: str, partitioning_type: str) -> np.datetime64 | None:
    """The start of the partition a folder below the table's folder holds (None: not one of its
    partitions)."""
    m = _PATTERNS[partitioning_type].fullmatch(relative)
    if m is None:
        return None
    text = m.group(1) + (f"T{m.group(2)}" if partitioning_type == "HOUR" else "")
    return np.datetime64(text, UNITS[partitioning_type])


def file_name(run: str, offset: int) -> str:
    return f"part-{run}-{offset:012d}.parquet"
