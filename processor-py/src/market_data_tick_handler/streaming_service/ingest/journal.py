"""Reading the ingester's journal (format: proto/README.md "Journal"; written by ingest-node/src/journal.js).

The journal holds every wire frame the ingester sent, each a record with its ``jseq`` (1, 2, 3, ... across
files and ingester runs of one directory), in files ``journal-<first jseq, 20 digits>.jnl``. The reader
maps each file (``mmap``) and yields each record's payload as a ``memoryview`` of the map: no copy, and
``decode_frame`` decodes it in place.

What the reader cannot give is reported (a log line naming the file and the offset, a counter in
``counts``, an entry in ``problems``), never silently skipped:

- ``deleted``: the jseqs asked for below the first the journal still has (its retention deleted them);
- ``crc_mismatch``: a whole record whose payload does not match its CRC: skipped, the others kept;
- ``bad_header``: bytes where a record's header should be that are none (the next record is looked for
  after them; what lies between is lost);
- ``torn_tail``: a record cut short at the end of a file that another file follows (the ingester stopped
  in the middle of writing it). Its frame was never sent (a record is written before its frame is sent),
  and the next file starts at its jseq, so no jseq is lost. A short tail in the newest file is a record
  being written: the reader stops before it and reads it on a later call.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

MAGIC = b"MDTHJNL1"
RECORD = struct.Struct("<IIQq")  # payload length, crc32 of the payload, jseq, append time (µs, epoch)
_JSEQ = struct.Struct("<Q")
_NAME = re.compile(r"^journal-(\d{20})\.jnl$")
_LOGGED_PER_KIND = 20  # then every 1000th
_PROBLEMS_KEPT = 1000

ProblemKind = Literal["deleted", "crc_mismatch", "bad_header", "torn_tail", "not_a_journal"]


def journal_file_name(first_jseq: int) -> str:
    return f"journal-{first_jseq:020d}.jnl"


@dataclass(frozen=True, slots=True)
class JournalFile:
    path: Path
    first_jseq: int  # from its name: the jseq of its first record


@dataclass(frozen=True, slots=True)
class JournalProblem:
    """Something the reader could not read. ``first_jseq``..``last_jseq`` (inclusive) are the jseqs lost
    by it (none for a torn tail: ``last_jseq = first_jseq - 1``)."""

    kind: ProblemKind
    file: str | None  # the file's name
    offset: int | None  # the byte offset in it
    first_jseq: int
    last_jseq: int
    detail: str

    @property
    def lost(self) -> int:
        return self.last_jseq - self.first_jseq + 1


class JournalReader:
    """Reads the journal in ``directory``.

    ``records(from_jseq)`` yields ``(jseq, append_us, payload)`` in jseq order from ``from_jseq`` (inclusive)
    to the last whole record, across files; jseqs strictly increase, and any it skips is reported
    (``problems``, ``counts``, ``missing_ranges``). ``last_jseq()`` is the jseq of the last whole record.
    The reader may be called again and again while an ingester appends: a call from the jseq after the
    last one yielded picks up where the previous one stopped without reading the file again.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.counts: Counter[str] = Counter()  # records, bytes, and each ProblemKind: occurrences
        self.lost = 0  # jseqs records() was asked for and could not give: deleted, or unreadable
        self.missing_ranges: list[tuple[int, int]] = []  # those, as (first, last), sorted and merged
        self.problems: list[JournalProblem] = []  # the first 1000
        self._reported: set[tuple[ProblemKind, str | None, int | None, int]] = set()
        self._resume: tuple[str, int, int] | None = None  # (file name, offset, jseq of the record there)

    def files(self) -> list[JournalFile]:
        """The journal's files, oldest first (others in the directory, e.g. checkpoints/, are not)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            m = _NAME.match(name)
            if m is not None:
                found.append(JournalFile(self.dir / name, int(m.group(1))))
        return sorted(found, key=lambda f: f.first_jseq)

    def first_jseq(self) -> int | None:
        """The lowest jseq the journal may still hold (that of its oldest file), None without files."""
        files = self.files()
        return files[0].first_jseq if files else None

    def last_jseq(self) -> int | None:
        """The jseq of the last whole record (None: the journal has none). Walks the newest file's record
        headers (no CRC check); a newest file with no whole record says its name's jseq minus one."""
        files = self.files()
        if not files:
            return None
        newest = files[-1]
        last = newest.first_jseq - 1
        with _Mapped(newest.path) as data:
            if data is not None and data[: len(MAGIC)] == MAGIC:
                pos, expected, size = len(MAGIC), newest.first_jseq, len(data)
                while pos + RECORD.size <= size:
                    length, _, jseq, _ = RECORD.unpack_from(data, pos)
                    if jseq != expected or pos + RECORD.size + length > size:
                        break
                    last, expected, pos = jseq, expected + 1, pos + RECORD.size + length
        return last if last >= 1 else None

    def records(self, from_jseq: int = 1, until: int | None = None) -> Iterator[tuple[int, int, memoryview]]:
        """``(jseq, append_us, payload)`` for every readable record with ``from_jseq <= jseq`` (and
        ``jseq < until``), in order. ``payload`` is the wire frame, a view of the file's map (valid as
        long as it is referenced)."""
        if from_jseq < 1:
            raise ValueError(f"jseq starts at 1, got {from_jseq}")
        files = self.files()
        if not files:
            return
        want = from_jseq  # the next jseq to yield; everything below it is done
        start = 0
        for i, f in enumerate(files):
            if f.first_jseq <= from_jseq:
                start = i
        if files[0].first_jseq > from_jseq:
            first = files[0]
            self._problem(
                "deleted",
                first.path.name,
                None,
                from_jseq,
                first.first_jseq - 1,
                f"the journal starts at jseq {first.first_jseq} ({first.path.name}): the ones before it"
                " were deleted by its retention (ingest.journal.max_mb / max_age_h)",
            )
            want = first.first_jseq
        for i in range(start, len(files)):
            f = files[i]
            following = files[i + 1] if i + 1 < len(files) else None
            if until is not None and want >= until:
                return
            if f.first_jseq > want:  # what the file before could not give (gone meanwhile, or unreadable)
                gone = not files[i - 1].path.exists()
                self._problem(
                    "deleted" if gone else "bad_header",
                    files[i - 1].path.name,
                    None,
                    want,
                    f.first_jseq - 1,
                    "deleted while being read (retention)" if gone else "no readable record of them",
                )
                want = f.first_jseq
            for jseq, append_us, payload in self._file(f, following, want):
                if until is not None and jseq >= until:
                    return
                want = jseq + 1
                self.counts["records"] += 1
                self.counts["bytes"] += RECORD.size + len(payload)
                yield jseq, append_us, payload

    def _file(
        self, f: JournalFile, following: JournalFile | None, want: int
    ) -> Iterator[tuple[int, int, memoryview]]:
        """The records of one file from ``want`` on; problems inside it are reported here."""
        name = f.path.name
        with _Mapped(f.path) as data:
            if data is None or len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
                size = 0 if data is None else len(data)
                if following is not None or size >= len(MAGIC):
                    self._problem(
                        "not_a_journal",
                        name,
                        0,
                        want,
                        want - 1,
                        f"{size} bytes without the journal's header {MAGIC.decode()}: skipped",
                    )
                return
            size = len(data)
            pos, expected = len(MAGIC), f.first_jseq
            if self._resume is not None and self._resume[0] == name and self._resume[2] <= want:
                _, pos, expected = self._resume
            view = memoryview(data)
            try:
                while pos + RECORD.size <= size:
                    length, crc, jseq, append_us = RECORD.unpack_from(data, pos)
                    end = pos + RECORD.size + length
                    if jseq != expected or end > size:
                        found = self._next_record(data, pos, expected)
                        if found is None:
                            break  # a torn tail (below), or a record still being written
                        next_pos, next_jseq = found
                        if next_jseq > want:
                            self._problem(
                                "bad_header",
                                name,
                                pos,
                                max(expected, want),
                                next_jseq - 1,
                                f"no record header where jseq {expected} should start; the next record"
                                f" (jseq {next_jseq}) is at offset {next_pos}",
                            )
                        pos, expected = next_pos, next_jseq
                        continue
                    if jseq >= want:
                        payload = view[pos + RECORD.size : end]
                        if zlib.crc32(payload) != crc:
                            self._problem(
                                "crc_mismatch",
                                name,
                                pos,
                                jseq,
                                jseq,
                                f"the payload ({length} bytes) does not match its CRC: record skipped",
                            )
                        else:
                            self._resume = (name, end, jseq + 1)
                            yield jseq, append_us, payload
                    pos, expected = end, expected + 1
                if pos < size and following is not None:
                    self._problem(
                        "torn_tail",
                        name,
                        pos,
                        expected,
                        expected - 1,
                        f"{size - pos} bytes after the last whole record (jseq {expected - 1}): a record"
                        f" cut short when its ingester stopped; the next file starts at jseq"
                        f" {following.first_jseq}",
                    )
            finally:
                view.release()  # payloads already yielded keep the map alive on their own

    def _next_record(self, data: mmap.mmap, pos: int, expected: int) -> tuple[int, int] | None:
        """After bytes at ``pos`` that are no record of jseq ``expected``: the offset and jseq of the next
        whole record with a good CRC from there on (searched by the bytes of jseq ``expected``, then
        ``expected + 1``, ... up to + 16: a record whose length was damaged hides where the next begins),
        or None."""
        size = len(data)
        for jseq in range(expected, expected + 17):
            at = data.find(_JSEQ.pack(jseq), pos + 8)
            while at != -1:
                start = at - 8
                length, crc, _, _ = RECORD.unpack_from(data, start)
                end = start + RECORD.size + length
                if end <= size and zlib.crc32(memoryview(data)[start + RECORD.size : end]) == crc:
                    return start, jseq
                at = data.find(_JSEQ.pack(jseq), at + 1)
        return None

    def _lose(self, first: int, last: int) -> None:
        """Adds ``first..last`` to ``missing_ranges`` (kept sorted and merged, so that what several calls
        skip is counted once in ``lost``)."""
        merged: list[tuple[int, int]] = []
        for a, b in sorted([*self.missing_ranges, (first, last)]):
            if merged and a <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self.missing_ranges = merged
        self.lost = sum(b - a + 1 for a, b in merged)

    def _problem(
        self,
        kind: ProblemKind,
        file: str | None,
        offset: int | None,
        first: int,
        last: int,
        detail: str,
    ) -> None:
        key = (kind, file, offset, first)
        if key in self._reported:
            return  # found again by a later call: the same problem
        self._reported.add(key)
        self.counts[kind] += 1
        if last >= first:
            self._lose(first, last)
        problem = JournalProblem(kind, file, offset, first, last, detail)
        if len(self.problems) < _PROBLEMS_KEPT:
            self.problems.append(problem)
        n = self.counts[kind]
        if n <= _LOGGED_PER_KIND or n % 1000 == 0:
            where = f"{self.dir / file}" if file is not None else str(self.dir)
            at = f" at offset {offset}" if offset is not None else ""
            jseqs = f"jseq {first}..{last}" if last >= first else f"before jseq {first}"
            log.warning("journal %s%s: %s, %s: %s (%d so far)", where, at, kind, jseqs, detail, n)


class _Mapped:
    """A file mapped read-only (None when it is empty or gone). The map is closed by the garbage
    collector once no payload view refers to it any more."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> mmap.mmap | None:
        try:
            with open(self.path, "rb") as fh:
                if os.fstat(fh.fileno()).st_size == 0:
                    return None
                return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:  # deleted by retention meanwhile
            return None

    def __exit__(self, *exc: object) -> None:
        return None
