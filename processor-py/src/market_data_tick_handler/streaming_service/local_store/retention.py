"""Partition expiry of the local store, as BigQuery's ``partition_expiration_ms``: a partition of a
table with ``ttl_days`` is deleted once its end (start + one HOUR, DAY, ...) is more than ``ttl_days``
ago. Run when a table is ensured (at start) and about hourly while rows are written; every deleted
partition is logged and counted."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from ..bigquery_client.tables import TableSpec
from .layout import UNITS, parse_folder, partition_depth, table_dir

log = logging.getLogger(__name__)


def expired(root: Path, table: TableSpec, now_us: int) -> list[Path]:
    """The partition folders of ``table`` whose end is ``ttl`` or more before ``now_us``."""
    ttl_ms = table.partition_expiration_ms
    base = table_dir(root, table)
    if ttl_ms is None or not base.is_dir():
        return []
    kind = table.partitioning.type
    one = np.timedelta64(1, UNITS[kind])
    cutoff = np.datetime64(now_us - ttl_ms * 1000, "us")
    pattern = "/".join(["*"] * partition_depth(kind))
    out = []
    for folder in sorted(base.glob(pattern)):
        start = parse_folder(folder.relative_to(base).as_posix(), kind)
        if start is not None and folder.is_dir() and (start + one).astype("datetime64[us]") <= cutoff:
            out.append(folder)
    return out


def sweep(root: Path, table: TableSpec, now_us: int) -> int:
    """Delete the expired partitions of ``table`` (and folders left empty); returns how many."""
    folders = expired(root, table, now_us)
    base = table_dir(root, table)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        log.info(
            "local store: deleted the partition %s of %s.%s (ended more than ttl_days=%g ago)",
            folder.relative_to(base).as_posix(),
            table.dataset,
            table.name,
            table.partitioning.ttl_days,
        )
        parent = folder.parent
        while parent != base:
            try:
                parent.rmdir()  # only when empty: a writer may have just added a partition beside
            except OSError:
                break
            parent = parent.parent
    return len(folders)
