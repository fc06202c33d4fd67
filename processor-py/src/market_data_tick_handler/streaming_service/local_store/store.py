"""``LocalStore``: the ``RowSink`` (``bigquery_client/sink.py``) of the embedded default, the same
datasets, tables and columns as BigQuery as Parquet files under one folder, read through DuckDB
(``views.py``; docs/ARCHITECTURE.md "The local store").

``append`` decodes a batch's rows into one Arrow table, splits it by partition (``layout.py``), sorts
each part by the clustering columns (stable: rows of one instrument keep their order) and writes each as
a file named after the batch: ``part-<run>-<offset>.parquet``, where the run names this store object and
the offset is the table's row count before the batch, both fixed at the first attempt and kept in the
batch (``RowBatch.stream``/``offset``). A retry of the same batch therefore writes the same files: what
an earlier attempt finished is not written again (when all of it was, ``append`` returns False, as
BigQuery's ALREADY_EXISTS does). A file is written under a temporary name, flushed to disk and renamed,
so a reader sees whole files only and a crash leaves no half file behind (a stale temporary file is
removed at the next start).

Errors: a full disk or any other I/O failure is ``WriteFailed`` (the backlog sends the batch again); no
permission, a read-only file system, and rows it cannot read are ``WriteRefused``."""

from __future__ import annotations

import errno
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..bigquery_client.sink import RowBatch, WriteFailed, WriteRefused, is_candle_table
from ..bigquery_client.tables import TableSpec
from . import retention
from .arrow_schema import arrow_schema
from .candle_codec import CandleCodec
from .layout import (
    RUN,
    SCHEMA_FILE,
    TEMP_SUFFIX,
    file_name,
    partition_folder,
    partition_starts,
    table_dir,
)
from .tick_codec import TickCodec
from .views import META_KEY, table_meta, write_views_sql

if TYPE_CHECKING:
    from ..candle_processor import ClosedCandles
    from ..data_types.records import Record
    from ..data_types.trades import TradeRows

log = logging.getLogger(__name__)
#: how often expired partitions are looked for while rows are written
SWEEP_EVERY_S = 3600.0
#: a temporary file older than this at start was left by a process that died while writing it
STALE_TEMP_S = 3600.0
_REFUSED_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR}
COMPRESSION = "zstd"


def run_id() -> str:
    """This store object's name in file names: its start (UTC) and 8 random hex digits."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"


def _os_error(where: str, exc: OSError) -> Exception:
    kind = WriteRefused if exc.errno in _REFUSED_ERRNOS else WriteFailed
    return kind(f"{where}: {exc}")


class LocalStore:
    """Rows into Parquet files under ``path`` (created when missing). ``now``: wall-clock seconds (the
    partition expiry's clock)."""

    def __init__(self, path: str | Path, now: Callable[[], float] = time.time) -> None:
        self.root = Path(path).absolute()
        self.now = now
        self.run = run_id()
        self._codecs: dict[tuple[str, str], CandleCodec | TickCodec] = {}
        self._ready: dict[tuple[str, str], TableSpec] = {}
        self._offsets: dict[tuple[str, str], int] = {}
        self._swept = time.monotonic()
        self.counters = {"files_written": 0, "partitions_expired": 0}

    kind = "local store"

    def describe(self) -> str:
        return f"the local store at {self.root} (Parquet files read through DuckDB)"

    # -- rows ------------------------------------------------------------------------------------------
    def _codec(self, table: TableSpec) -> CandleCodec | TickCodec:
        key = (table.dataset, table.name)
        codec = self._codecs.get(key)
        if codec is None:
            codec = self._codecs[key] = CandleCodec(table) if is_candle_table(table) else TickCodec(table)
        return codec

    def encode(self, table: TableSpec, block: ClosedCandles) -> list[bytes]:
        codec = self._codec(table)
        assert isinstance(codec, CandleCodec)
        return codec.encode(block)

    def encode_trades(self, table: TableSpec, trades: TradeRows, out_us: int) -> list[bytes]:
        codec = self._codec(table)
        assert isinstance(codec, TickCodec)
        return codec.trades(trades, out_us)

    def encode_records(self, table: TableSpec, records: Sequence[Record], out_us: int) -> list[bytes]:
        codec = self._codec(table)
        assert isinstance(codec, TickCodec)
        return codec.records(records, out_us)

    # -- tables ----------------------------------------------------------------------------------------
    def ensure(self, table: TableSpec) -> None:
        """The table's folder and ``_schema.parquet`` (rewritten when its columns or description
        changed: older files keep theirs, and the views read them by name), ``views.sql``; expired
        partitions and stale temporary files removed."""
        key = (table.dataset, table.name)
        if key in self._ready:
            return
        where = f"{table.dataset}.{table.name}"
        try:
            folder = table_dir(self.root, table)
            folder.mkdir(parents=True, exist_ok=True)
            schema = arrow_schema(table).with_metadata(table_meta(table))
            schema_file = folder / SCHEMA_FILE
            created = not schema_file.exists()
            described = None if created else (pq.read_schema(schema_file).metadata or {}).get(META_KEY)
            if described != schema.metadata[META_KEY]:
                _write_atomic(schema_file, schema.empty_table())
                log.info(
                    "local store: %s %s: partitioned by %s on %s (%s), clustered by %s, in %s",
                    "created" if created else "updated the columns of",
                    where,
                    table.partitioning.type,
                    table.partitioning.field,
                    "no expiry"
                    if table.partitioning.ttl_days is None
                    else f"partitions expire after {table.partitioning.ttl_days} days",
                    ", ".join(table.clustering_fields),
                    folder,
                )
            _remove_stale_temporaries(folder)
            write_views_sql(self.root)
            self._expire(table)
        except OSError as exc:
            raise _os_error(where, exc) from exc
        self._ready[key] = table

    def _expire(self, table: TableSpec) -> None:
        self.counters["partitions_expired"] += retention.sweep(self.root, table, int(self.now() * 1e6))

    # -- writing ---------------------------------------------------------------------------------------
    def append(self, batch: RowBatch) -> bool:
        spec = batch.table
        where = f"{spec.dataset}.{spec.name}"
        self.ensure(spec)  # done at start already, unless the store could not be written then
        key = (spec.dataset, spec.name)
        if batch.stream is None or batch.offset is None or not RUN.fullmatch(batch.stream):
            batch.stream, batch.offset = self.run, self._offsets.get(key, 0)
            self._offsets[key] = batch.offset + len(batch.rows)
        try:
            table = self._codec(spec).decode(batch.rows)
        except (ValueError, pa.ArrowException) as exc:
            raise WriteRefused(f"{where}: {exc}") from exc
        name = file_name(batch.stream, batch.offset)
        folder = table_dir(self.root, spec)
        parts = [(folder / sub / name, rows) for sub, rows in _partitions(table, spec)]
        todo = [(path, rows) for path, rows in parts if not path.exists()]
        try:
            for path, rows in todo:
                _write_atomic(path, rows)
                self.counters["files_written"] += 1
        except OSError as exc:
            raise _os_error(where, exc) from exc
        except pa.ArrowException as exc:  # a null in a REQUIRED column, ...
            raise WriteRefused(f"{where}: {exc}") from exc
        if time.monotonic() - self._swept >= SWEEP_EVERY_S:
            self._swept = time.monotonic()
            for ready in self._ready.values():
                try:
                    self._expire(ready)
                except OSError as exc:  # the rows are written: the next sweep tries again
                    log.warning("local store: expired partitions of %s.%s not deleted: %s",
                                ready.dataset, ready.name, exc)  # fmt: skip
        return bool(todo) or not parts

    def stats(self) -> dict[str, int]:
        return dict(self.counters)

    def close(self) -> None:
        pass


def _partitions(table: pa.Table, spec: TableSpec) -> list[tuple[str, pa.Table]]:
    """``table``'s rows by partition folder, each sorted by the clustering columns (stably)."""
    if not table.num_rows:
        return []
    kind = spec.partitioning.type
    values = table.column(spec.partitioning.field).cast(pa.int64()).to_numpy()
    starts, which = np.unique(partition_starts(values, kind), return_inverse=True)
    keyed = table.append_column("__partition", pa.array(which.astype(np.int64)))
    order = pc.sort_indices(
        keyed, sort_keys=[("__partition", "ascending"), *((c, "ascending") for c in spec.clustering_fields)]
    )
    ordered = table.take(order)
    ends = np.cumsum(np.bincount(which, minlength=len(starts)))
    out, begin = [], 0
    for start, end in zip(starts, ends.tolist(), strict=True):
        out.append((partition_folder(start, kind), ordered.slice(begin, end - begin)))
        begin = end
    return out


def _write_atomic(path: Path, table: pa.Table) -> None:
    """``table`` as the Parquet file ``path``: written under a temporary name, flushed to disk, renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        with open(temp, "wb") as out:
            pq.write_table(table, out, compression=COMPRESSION)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _remove_stale_temporaries(folder: Path) -> None:
    cutoff = time.time() - STALE_TEMP_S
    for temp in folder.rglob(f".*{TEMP_SUFFIX}"):
        try:
            if temp.stat().st_mtime < cutoff:
                temp.unlink()
                log.info("local store: removed %s, left by a process that stopped while writing it", temp)
        except OSError:
            pass  # another process removed or finished it
