"""The spill: batches of rows waiting for an unreachable store (persist mode, the tick sink) once the
memory part of their backlog is full, kept in files, in order, that survive a restart
(docs/ARCHITECTURE.md "When the store is unreachable: the spill").

:class:`Spill` is the backlog's disk tier (``backlog.Overflow``): ``put`` returns at once and the file is
written by a background task in a thread (the processor's loop never waits for the disk); ``take`` reads
the oldest back; a batch read back keeps its file until the store took it (``done``), so that a batch
is on disk or written at every moment after it was spilled. At close the backlog's batches still in
memory are added (``keep``), older than the ones already on disk; at the next start :meth:`Spill.open`
finds them all, and the backlog writes them before anything new.

**Where.** One folder per sink, dataset and store: ``<spill_dir>/<sink>-<dataset>-<store id>`` (the
store id: 8 hex digits of a hash of where the rows go, ``RowSink.describe()``, which is written to the
folder's ``STORE`` file). A process holds its folder with a lock (``LOCK``, ``flock``); a second process
of the same sink, dataset and store takes ``...-<store id>.1`` (then ``.2``, ...), so two processes never
mix their batches; a process that starts takes the first folder no one holds and moves the batches of
the other free ones (a process of a pair that did not start again) into it.

**Files.** ``<seq, 20 digits>.batch``, one batch each; ``seq`` grows across runs (a start continues above
the highest file), so the names sort in the order the batches were made. A file is written under
``.tmp`` and renamed: it is complete when it appears. No fsync: a killed process loses nothing the kernel
has, a machine crash may. A ``.tmp`` left by a crash is deleted at the next start (counted); a file
that cannot be read is renamed ``.bad`` and kept (counted, logged).

**Format** (little-endian): ``MDTHSPL1`` | u32 header length | header (JSON: ``table``, ``dataset``,
``columns``, ``rows``, ``nbytes``, ``stream``, ``offset``, ``spilled_us``) | u32 length of each row | the
rows, byte for byte, in the form the store's sink encoded them (``RowSink.encode``: protobuf rows for
BigQuery, the local store's own) | u32 CRC-32 of everything after the magic. The folder is the store's,
so the sink that reads a batch back is one of the kind that encoded it. ``columns``: a digest of the
table's columns the rows were encoded for (a batch whose table has other columns now, a feature added
between the two runs, is left on disk and counted as an orphan: its rows would not mean the same);
``stream``/``offset``: where an earlier try of the batch was sent (null: it was never tried).

**Bounds.** ``limit_bytes`` (``persist.bigquery.backlog_mb``) of rows waiting in the spill; over it the
oldest waiting batch is deleted and counted as lost (``lost``), never the one being read back and never
the newest. A batch whose file could not be written stays in memory (counted in ``spill_errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import struct
import sys
import time
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..bigquery_client import Column, RowBatch, TableSpec
from ..tick_processor.counters import LOG_EVERY, LOG_FIRST

log = logging.getLogger(__name__)

MAGIC = b"MDTHSPL1"
SUFFIX, TMP, BAD = ".batch", ".tmp", ".bad"
_U32 = struct.Struct("<I")
_MAX_FOLDERS = 100  # processes of one sink, dataset and store at the same time, at most


class SpillError(Exception):
    """A spill file that cannot be read (torn, corrupt, not a spill file)."""


def folder_name(sink: str, dataset: str, store: str) -> str:
    """The folder of a sink's batches for ``dataset`` in ``store`` (``RowSink.describe()``)."""
    return f"{sink}-{dataset}-{hashlib.sha256(store.encode()).hexdigest()[:8]}"


# -- the file format -------------------------------------------------------------------------------------
def columns_id(table: TableSpec) -> str:
    """A digest of the table's columns (names, types, modes, nested fields), in order."""

    def form(columns: tuple[Column, ...]) -> list[Any]:
        return [[c.name, c.type, c.mode, form(c.fields)] for c in columns]

    return hashlib.sha256(json.dumps(form(table.columns)).encode()).hexdigest()[:16]


def encode(batch: RowBatch) -> list[bytes]:
    """The pieces of ``batch``'s file, in order (the CRC last)."""
    header = json.dumps(
        {
            "table": batch.table.name,
            "dataset": batch.table.dataset,
            "columns": columns_id(batch.table),
            "rows": len(batch.rows),
            "nbytes": batch.nbytes,
            "stream": batch.stream,
            "offset": batch.offset,
            "spilled_us": time.time_ns() // 1000,
        }
    ).encode()
    lengths = array("I", map(len, batch.rows))
    if sys.byteorder == "big":
        lengths.byteswap()
    pieces = [_U32.pack(len(header)), header, lengths.tobytes()]
    pieces += batch.rows
    crc = 0
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
    return [MAGIC, *pieces, _U32.pack(crc)]


def read_header(fh: IO[bytes]) -> dict[str, Any]:
    """The header of the spill file open in ``fh`` (at its start)."""
    head = fh.read(len(MAGIC) + 4)
    if len(head) < len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
        raise SpillError("not a spill file")
    (size,) = _U32.unpack_from(head, len(MAGIC))
    text = fh.read(size)
    if len(text) < size:
        raise SpillError("torn header")
    try:
        header = json.loads(text)
    except ValueError as exc:
        raise SpillError(f"bad header: {exc}") from None
    if not isinstance(header, dict):
        raise SpillError("bad header: not an object")
    counts = (header.get("rows"), header.get("nbytes"))
    if not isinstance(header.get("table"), str) or not all(isinstance(n, int) for n in counts):
        raise SpillError("bad header: no table, rows or nbytes")
    return header


def decode(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """(header, rows) of a spill file's bytes; raises :class:`SpillError`."""
    if len(data) < len(MAGIC) + 12 or data[: len(MAGIC)] != MAGIC:
        raise SpillError("not a spill file")
    (crc,) = _U32.unpack_from(data, len(data) - 4)
    if zlib.crc32(memoryview(data)[len(MAGIC) : -4]) != crc:
        raise SpillError("CRC mismatch (torn or corrupt)")
    at = len(MAGIC)
    (size,) = _U32.unpack_from(data, at)
    header = json.loads(data[at + 4 : at + 4 + size])
    at += 4 + size
    n = int(header["rows"])
    lengths = array("I")
    lengths.frombytes(data[at : at + 4 * n])
    if sys.byteorder == "big":
        lengths.byteswap()
    at += 4 * n
    rows = []
    for length in lengths:
        rows.append(data[at : at + length])
        at += length
    if at != len(data) - 4 or sum(map(len, rows)) != int(header["nbytes"]):
        raise SpillError("rows do not match the header")
    return header, rows


def _lock(path: Path) -> IO[bytes] | None:
    """``path`` (made if missing) locked for this process (its ``LOCK`` file, open), or None when
    another process holds it."""
    path.mkdir(exist_ok=True)
    lock = (path / "LOCK").open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        lock.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    return lock


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` when it holds nothing but its ``LOCK`` and ``STORE`` (runs that never spilled
    leave no folder behind)."""
    if any(p.name not in ("LOCK", "STORE") for p in folder.iterdir()):
        return
    for name in ("STORE", "LOCK"):
        (folder / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # another process made it its own meanwhile
        folder.rmdir()


# -- the disk tier of a backlog --------------------------------------------------------------------------
@dataclass(slots=True, eq=False)
class _Entry:
    """A batch waiting in the spill: in memory until its file is written (``item``), then on disk
    (``path``); ``tried``: an earlier try of it was sent (its outcome unknown)."""

    seq: int
    table: str
    rows: int
    nbytes: int
    item: RowBatch | None = None
    path: Path | None = None
    tried: bool = False
    writing: bool = False
    taking: bool = False
    gone: bool = False  # no longer waiting (dropped over the bound, or taken before its write began)

    @classmethod
    def of(cls, seq: int, batch: RowBatch) -> _Entry:
        return cls(seq, batch.table.name, len(batch.rows), batch.nbytes, tried=batch.stream is not None)


class Spill:
    """See the module docstring. ``tables``: the sink's tables by name (a file of another table, or of
    other columns, is left on disk and counted); ``lost(table, rows)``: a batch deleted over
    ``limit_bytes``."""

    def __init__(
        self,
        root: str | Path,
        folder: str,
        store: str,
        tables: Mapping[str, TableSpec],
        *,
        limit_bytes: int,
        lost: Callable[[str, int], None],
    ) -> None:
        self.root = Path(root)
        self.folder = folder
        self.store = store
        self.tables = dict(tables)
        self._columns = {name: columns_id(spec) for name, spec in self.tables.items()}
        self.limit_bytes = limit_bytes
        self._lost = lost
        self.dir: Path | None = None  # once open
        self._lock: IO[bytes] | None = None
        self._queue: deque[_Entry] = deque()
        self._copies: dict[int, Path] = {}  # seq -> the file of a batch read back, until it is written
        self._todo: deque[tuple[str, Any]] = deque()  # ("write", entry) / ("delete", path), in order
        self._writer: asyncio.Task[None] | None = None
        self._written = asyncio.Event()
        self._next_seq = 0
        self.bytes_waiting = 0  # rows' nbytes of what waits in the spill
        self.stats: dict[str, int] = {
            "spilled_batches": 0,  # waiting in the spill now (on disk, or on the way to it)
            "spilled_rows": 0,
            "spilled_bytes": 0,
            "spill_files": 0,  # on disk now (with batches read back, not yet written, and other tables')
            "spill_disk_bytes": 0,
            "spilled_batches_total": 0,  # files this run wrote
            "spilled_rows_total": 0,
            "spilled_bytes_total": 0,
            "spilled_at_close_rows": 0,  # of which at close
            "spill_reloaded_batches": 0,  # found at start, written first
            "spill_reloaded_rows": 0,
            "spill_orphan_batches": 0,  # found at start for a table this run does not write: kept
            "spill_orphan_rows": 0,
            "rows_maybe_twice": 0,  # reloaded rows an earlier run had tried to write (outcome unknown)
            "spill_errors": 0,  # a file not written, not read, or left torn by a crash
        }

    # -- start -----------------------------------------------------------------------------------------
    def open(self) -> None:
        """Take a folder (blocking: call it in a thread at start) and find what earlier runs left in it
        and in the folders of the same name no process holds now (moved into it, after its own)."""
        self.root.mkdir(parents=True, exist_ok=True)
        free: list[tuple[Path, IO[bytes]]] = []
        for n in range(_MAX_FOLDERS):
            path = self.root / (self.folder if n == 0 else f"{self.folder}.{n}")
            if self.dir is not None and not path.exists():
                break
            lock = _lock(path)
            if lock is None:
                continue  # another process spills there
            if self.dir is None:
                self._lock, self.dir = lock, path
            else:
                free.append((path, lock))
        if self.dir is None:
            raise RuntimeError(f"{_MAX_FOLDERS} processes spill {self.folder} under {self.root} at once")
        (self.dir / "STORE").write_text(self.store + "\n")
        for path, lock in free:
            self._adopt(path)
            lock.close()
        self._recover()
        self._others()

    def _adopt(self, other: Path) -> None:
        """Move the batches of ``other`` (a folder of the same name that no process holds) into ours,
        numbered after ours, in their order."""
        assert self.dir is not None
        mine = [int(p.stem) for p in self.dir.iterdir() if p.stem.isdigit()]
        seq = max(mine, default=-1) + 1
        moved = 0
        for path in sorted(other.iterdir()):
            if path.suffix == SUFFIX and path.stem.isdigit():
                os.replace(path, self.dir / f"{seq:020d}{SUFFIX}")
                seq, moved = seq + 1, moved + 1
        if moved:
            log.warning("spill: took over %d batches from %s (no process holds it)", moved, other)

    def _recover(self) -> None:
        assert self.dir is not None
        s = self.stats
        found: list[tuple[int, Path]] = []
        highest = -1
        for path in self.dir.iterdir():
            stem, suffix = path.stem, path.suffix
            if not stem.isdigit():
                continue
            highest = max(highest, int(stem))
            if suffix == TMP:
                s["spill_errors"] += 1
                log.warning("spill: %s was being written when a process stopped: deleted", path)
                path.unlink(missing_ok=True)
            elif suffix == SUFFIX:
                found.append((int(stem), path))
            elif suffix == BAD:
                s["spill_files"] += 1
                s["spill_disk_bytes"] += path.stat().st_size
        orphans: dict[tuple[str, str], list[int]] = {}
        for seq, path in sorted(found):
            size = path.stat().st_size
            try:
                with path.open("rb") as fh:
                    header = read_header(fh)
            except (OSError, SpillError) as exc:
                self._bad(path, exc)
                continue
            s["spill_files"] += 1
            s["spill_disk_bytes"] += size
            rows, nbytes, table = int(header["rows"]), int(header["nbytes"]), str(header["table"])
            if table not in self.tables or header.get("columns") != self._columns[table]:
                why = "which this run does not write" if table not in self.tables else "of other columns"
                s["spill_orphan_batches"] += 1
                s["spill_orphan_rows"] += rows
                counts = orphans.setdefault((table, why), [0, 0])
                counts[0] += 1
                counts[1] += rows
                continue
            entry = _Entry(seq, table, rows, nbytes, path=path, tried=header.get("stream") is not None)
            self._queue.append(entry)
            self.bytes_waiting += nbytes
            self._count(entry, +1)
            s["spill_reloaded_batches"] += 1
            s["spill_reloaded_rows"] += rows
            if entry.tried:
                s["rows_maybe_twice"] += rows
        self._next_seq = highest + 1
        for (table, why), (batches, rows) in orphans.items():
            log.error(
                "spill %s: %d batches (%d rows) of table %s %s: kept on disk, not written (a run with"
                " that table as it was writes them)",
                self.dir,
                batches,
                rows,
                table,
                why,
            )
        if s["spill_reloaded_batches"]:
            log.warning(
                "spill %s: %d batches (%d rows) an earlier run could not write: they are written first",
                self.dir,
                s["spill_reloaded_batches"],
                s["spill_reloaded_rows"],
            )
        if s["rows_maybe_twice"]:
            log.warning(
                "spill %s: %d of those rows had been sent once before the earlier run stopped, without a"
                " reply: written again on a new write stream, they may show twice in the table (its _dedup"
                " view shows them once)",
                self.dir,
                s["rows_maybe_twice"],
            )

    def _others(self) -> None:
        """Say so when folders of this sink and dataset for another store hold batches (this run does
        not write them)."""
        assert self.dir is not None
        prefix = self.folder.rsplit("-", 1)[0] + "-"
        for path in sorted(self.root.iterdir()):
            if not path.name.startswith(prefix) or path.name.split(".")[0] == self.folder:
                continue
            batches = sum(1 for p in path.iterdir() if p.suffix == SUFFIX) if path.is_dir() else 0
            if batches:
                store = path / "STORE"
                where = store.read_text().strip() if store.exists() else "?"
                log.warning(
                    "spill: %s holds %d batches for %s: a run writing there takes them, not this one",
                    path,
                    batches,
                    where,
                )

    def _bad(self, path: Path, error: BaseException) -> None:
        self.stats["spill_errors"] += 1
        bad = path.with_suffix(BAD)
        with contextlib.suppress(OSError):
            path.rename(bad)
            self.stats["spill_files"] += 1
            self.stats["spill_disk_bytes"] += bad.stat().st_size
        log.error("spill: %s cannot be read (%s): kept as %s, not written", path, error, bad.name)

    # -- the backlog's overflow (backlog.Overflow) --------------------------------------------------------
    def __len__(self) -> int:
        return len(self._queue)

    @property
    def next_nbytes(self) -> int:
        return self._queue[0].nbytes if self._queue else 0

    def next_seq(self) -> int:
        return self._next_seq

    def put(self, seq: int, item: RowBatch) -> None:
        """Queue ``item`` to be written to its file (by the background task); returns at once."""
        entry = _Entry.of(seq, item)
        entry.item = item
        self._queue.append(entry)
        self.bytes_waiting += entry.nbytes
        self._count(entry, +1)
        self._next_seq = max(self._next_seq, seq + 1)
        self._todo.append(("write", entry))
        self._bound()
        self._kick()

    def _bound(self) -> None:
        while self.bytes_waiting > self.limit_bytes and len(self._queue) > 1:
            at = 1 if self._queue[0].taking else 0
            if at == len(self._queue) - 1:
                break  # the newest always stays
            entry = self._queue[at]
            del self._queue[at]
            self._leave(entry)
            if entry.path is not None:
                self._todo.append(("delete", entry.path))
            self._lost(entry.table, entry.rows)

    def _leave(self, entry: _Entry) -> None:
        """``entry`` no longer waits in the spill."""
        entry.gone = True
        self.bytes_waiting -= entry.nbytes
        self._count(entry, -1)

    def _count(self, entry: _Entry, sign: int) -> None:
        s = self.stats
        s["spilled_batches"] += sign
        s["spilled_rows"] += sign * entry.rows
        s["spilled_bytes"] += sign * entry.nbytes

    async def take(self) -> tuple[int, RowBatch] | None:
        """The oldest batch, read back; it keeps its file until :meth:`done`. None: none could be read."""
        while self._queue:
            entry = self._queue[0]
            entry.taking = True
            while entry.writing:
                self._written.clear()
                await self._written.wait()
            batch = entry.item
            if batch is None:
                assert entry.path is not None
                try:
                    batch = await asyncio.to_thread(self._read, entry.path)
                except (OSError, SpillError, ValueError, KeyError) as exc:
                    self._queue.popleft()
                    self._leave(entry)
                    self._forget_file(entry.path)
                    self._bad(entry.path, exc)
                    continue
            self._queue.popleft()
            self._leave(entry)
            if entry.path is not None:
                self._copies[entry.seq] = entry.path
            return entry.seq, batch
        return None

    def _read(self, path: Path) -> RowBatch:
        header, rows = decode(path.read_bytes())
        table, nbytes = self.tables[header["table"]], int(header["nbytes"])
        return RowBatch(table, rows, nbytes, stream=header.get("stream"), offset=header.get("offset"))

    def done(self, seq: int) -> None:
        """The batch ``seq`` was written or refused: its file (if it has one) goes."""
        copy = self._copies.pop(seq, None)
        if copy is not None:
            self._todo.append(("delete", copy))
            self._kick()

    async def keep(self, items: list[tuple[int, RowBatch]]) -> list[RowBatch]:
        """At close: the backlog's batches still in memory (older than any waiting here) go to disk too,
        before those; returns the batches that could not be written."""
        kept: list[_Entry] = []
        for seq, batch in items:
            copy = self._copies.pop(seq, None)
            entry = _Entry.of(seq, batch)
            if copy is not None:
                entry.path = copy  # read back earlier, on disk still
            else:
                entry.item = batch
                self._todo.append(("write", entry))
                self.stats["spilled_at_close_rows"] += entry.rows
            kept.append(entry)
            self.bytes_waiting += entry.nbytes
            self._count(entry, +1)
            self._next_seq = max(self._next_seq, seq + 1)
        self._queue = deque(sorted([*kept, *self._queue], key=lambda e: e.seq))
        await self.drain()
        unsaved = [e for e in kept if e.path is None]
        for entry in unsaved:
            self._queue.remove(entry)
            self._leave(entry)
            self.stats["spilled_at_close_rows"] -= entry.rows
        return [e.item for e in unsaved if e.item is not None]

    async def drain(self) -> None:
        """Wait until every file write and delete asked for is done."""
        self._kick()
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def close(self) -> None:
        """Finish the writes, and give the folder up (removed when no batch is left in it)."""
        await self.drain()
        if self._lock is not None:
            if self.dir is not None and not self._queue and not self._copies:
                await asyncio.to_thread(_remove_if_empty, self.dir)
            self._lock.close()  # releases the flock
            self._lock = None

    # -- the background writer ---------------------------------------------------------------------------
    def _kick(self) -> None:
        if self._todo and (self._writer is None or self._writer.done()):
            self._writer = asyncio.get_running_loop().create_task(self._write_all())

    async def _write_all(self) -> None:
        while self._todo:
            ops = self._begin()
            try:
                results = await asyncio.to_thread(self._do, ops)
            finally:
                for op, target in ops:
                    if op == "write":
                        target[0].writing = False
                self._written.set()
            self._finish(results)

    def _begin(self) -> list[tuple[str, Any]]:
        """The operations asked for so far, with what each writes (taken on the loop's thread)."""
        ops: list[tuple[str, Any]] = []
        while self._todo:
            op, target = self._todo.popleft()
            if op == "write":
                if target.gone or target.item is None:
                    continue  # dropped or taken before its turn: nothing to write
                assert self.dir is not None
                target.writing = True
                ops.append((op, (target, target.item, self.dir)))
            else:
                ops.append((op, target))
        return ops

    @staticmethod
    def _do(ops: list[tuple[str, Any]]) -> list[tuple[str, Any, int | BaseException]]:
        """In the writer's thread: the files written, and deleted; each op's size, or its error."""
        results: list[tuple[str, Any, int | BaseException]] = []
        for op, target in ops:
            try:
                if op == "write":
                    entry, batch, folder = target
                    pieces = encode(batch)
                    path = folder / f"{entry.seq:020d}{SUFFIX}"
                    tmp = path.with_suffix(TMP)
                    with tmp.open("wb") as fh:
                        fh.writelines(pieces)
                    os.replace(tmp, path)
                    results.append((op, entry, sum(map(len, pieces))))
                else:
                    size = target.stat().st_size
                    target.unlink()
                    results.append((op, target, size))
            except OSError as exc:
                results.append((op, target[0] if op == "write" else target, exc))
        return results

    def _finish(self, results: list[tuple[str, Any, int | BaseException]]) -> None:
        """Back on the loop's thread: count what was done."""
        s = self.stats
        for op, target, outcome in results:
            if isinstance(outcome, BaseException):
                s["spill_errors"] += 1
                n = s["spill_errors"]
                if n > LOG_FIRST and n % LOG_EVERY:
                    continue  # a full disk fails every write: logged 20 times, then every 1000th
                if op == "write":
                    log.error(
                        "spill: could not write %d rows of %s to %s (%s): they wait in memory",
                        target.rows,
                        target.table,
                        self.dir,
                        outcome,
                    )
                else:
                    log.error("spill: could not delete %s (%s)", target, outcome)
                continue
            if op == "delete":
                s["spill_files"] -= 1
                s["spill_disk_bytes"] -= outcome
                continue
            entry: _Entry = target
            assert self.dir is not None
            entry.path = self.dir / f"{entry.seq:020d}{SUFFIX}"
            s["spill_files"] += 1
            s["spill_disk_bytes"] += outcome
            s["spilled_batches_total"] += 1
            s["spilled_rows_total"] += entry.rows
            s["spilled_bytes_total"] += entry.nbytes
            if entry.gone and not entry.taking:
                self._todo.append(("delete", entry.path))  # dropped while it was being written
            elif not entry.taking:
                entry.item = None  # on disk now: memory freed
        self._kick()

    def _forget_file(self, path: Path) -> None:
        """``path`` is renamed away (``.bad``): no longer one of the spill's files."""
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            self.stats["spill_files"] -= 1
            self.stats["spill_disk_bytes"] -= size
