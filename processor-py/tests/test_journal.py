"""The journal reader (streaming_service/ingest/journal.py) on files written here byte by byte as
proto/README.md "Journal" describes them, and on journals the real Node ingester wrote: every frame it sent
is in its journal, in jseq order, byte for byte; and an ingester with no processor at all keeps going and
journals everything."""

from __future__ import annotations

import json
import logging
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest
import zmq

from market_data_tick_handler.config import IngestConfig, JournalConfig
from market_data_tick_handler.streaming_service.ingest import find_ingester, ingester_args
from market_data_tick_handler.streaming_service.ingest.journal import JournalReader
from market_data_tick_handler.wire import decode_frame

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def record(jseq: int, payload: bytes, append_us: int = 1_700_000_000_000_000) -> bytes:
    """One record as the format says: u32 length, u32 crc32, u64 jseq, i64 append µs, payload."""
    return struct.pack("<IIQq", len(payload), zlib.crc32(payload), jseq, append_us) + payload


def write(directory: Path, first: int, payloads: list[bytes], tail: bytes = b"") -> Path:
    """A journal file of records ``first``, ``first + 1``, ... (``tail`` appended after them)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"journal-{first:020d}.jnl"
    body = b"".join(record(first + k, p, 1_700_000_000_000_000 + first + k) for k, p in enumerate(payloads))
    path.write_bytes(b"MDTHJNL1" + body + tail)
    return path


def payload(jseq: int) -> bytes:
    return f"frame {jseq} ".encode() * (jseq % 5 + 1)


def read(reader: JournalReader, from_jseq: int = 1, until: int | None = None) -> list[tuple[int, int, bytes]]:
    return [(j, us, bytes(p)) for j, us, p in reader.records(from_jseq, until)]


def test_records_across_files_in_order(tmp_path):
    write(tmp_path, 1, [payload(j) for j in range(1, 4)])
    write(tmp_path, 4, [payload(4)])
    write(tmp_path, 5, [payload(j) for j in range(5, 9)])
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "journal.lock").write_text("1\n")
    reader = JournalReader(tmp_path)
    got = read(reader)
    assert [j for j, _, _ in got] == list(range(1, 9))
    assert [p for _, _, p in got] == [payload(j) for j in range(1, 9)]
    assert [us for _, us, _ in got] == [1_700_000_000_000_000 + j for j in range(1, 9)]
    assert [j for j, _, _ in read(reader, 3)] == list(range(3, 9))
    assert [j for j, _, _ in read(reader, 4, until=7)] == [4, 5, 6]
    assert read(reader, 9) == []
    assert reader.last_jseq() == 8
    assert reader.first_jseq() == 1
    assert reader.problems == [] and reader.lost == 0
    assert reader.counts["records"] == 8 + 6 + 3


def test_deleted_by_retention_is_reported(tmp_path, caplog):
    write(tmp_path, 50, [payload(j) for j in range(50, 53)])
    reader = JournalReader(tmp_path)
    with caplog.at_level(logging.WARNING):
        got = read(reader, 10)
    assert [j for j, _, _ in got] == [50, 51, 52]
    assert reader.missing_ranges == [(10, 49)]
    assert reader.lost == 40
    assert reader.counts["deleted"] == 1
    (problem,) = reader.problems
    assert (problem.kind, problem.first_jseq, problem.last_jseq, problem.lost) == ("deleted", 10, 49, 40)
    assert "journal-00000000000000000050.jnl" in caplog.text and "deleted, jseq 10..49" in caplog.text
    read(reader, 1)  # asked again from further back: the range grows, nothing is counted twice
    assert reader.missing_ranges == [(1, 49)] and reader.lost == 49


def test_crc_mismatch_skips_the_record_and_keeps_the_others(tmp_path, caplog):
    path = write(tmp_path, 1, [payload(j) for j in range(1, 6)])
    data = bytearray(path.read_bytes())
    third = 8 + sum(24 + len(payload(j)) for j in (1, 2))  # offset of the record of jseq 3
    data[third + 24 + 2] ^= 0xFF  # a bit of its payload flipped
    path.write_bytes(bytes(data))
    reader = JournalReader(tmp_path)
    with caplog.at_level(logging.WARNING):
        got = read(reader)
    assert [j for j, _, _ in got] == [1, 2, 4, 5]
    assert [p for _, _, p in got] == [payload(j) for j in (1, 2, 4, 5)]
    assert reader.counts["crc_mismatch"] == 1 and reader.missing_ranges == [(3, 3)]
    assert (reader.problems[0].file, reader.problems[0].offset) == (path.name, third)
    assert f"{path} at offset {third}: crc_mismatch, jseq 3..3" in caplog.text


def test_a_bad_header_is_stepped_over_to_the_next_record(tmp_path):
    path = write(tmp_path, 1, [payload(j) for j in range(1, 7)])
    clean = path.read_bytes()
    third = 8 + sum(24 + len(payload(j)) for j in (1, 2))  # offset of the record of jseq 3
    # its jseq damaged: no record where jseq 3 should be; the next one is found after it
    data = bytearray(clean)
    data[third + 8] ^= 0xFF
    path.write_bytes(bytes(data))
    reader = JournalReader(tmp_path)
    got = read(reader)
    assert [j for j, _, _ in got] == [1, 2, 4, 5, 6]
    assert [p for _, _, p in got] == [payload(j) for j in (1, 2, 4, 5, 6)]
    assert reader.counts["bad_header"] == 1 and reader.missing_ranges == [(3, 3)]
    assert (reader.problems[0].kind, reader.problems[0].offset) == ("bad_header", third)
    assert reader.last_jseq() == 2, "last_jseq walks headers only: it stops at the bad one"
    # its length damaged (7 bytes): the record fails its CRC, the bytes after those 7 are no header, and
    # the record of jseq 4 is found after them
    data = bytearray(clean)
    data[third : third + 4] = struct.pack("<I", 7)
    path.write_bytes(bytes(data))
    reader = JournalReader(tmp_path)
    got = read(reader)
    assert [j for j, _, _ in got] == [1, 2, 4, 5, 6]
    assert [p for _, _, p in got] == [payload(j) for j in (1, 2, 4, 5, 6)]
    assert [(p.kind, p.offset) for p in reader.problems] == [
        ("crc_mismatch", third),
        ("bad_header", third + 31),
    ]
    assert reader.missing_ranges == [(3, 3)]


def test_torn_tail_then_the_next_file_loses_nothing(tmp_path, caplog):
    whole = record(3, payload(3))
    old = write(tmp_path, 1, [payload(1), payload(2)], tail=whole[:30])  # the writer stopped inside jseq 3
    write(tmp_path, 3, [payload(3), payload(4)])  # the next ingester run took jseq 3 again
    reader = JournalReader(tmp_path)
    with caplog.at_level(logging.WARNING):
        got = read(reader)
    assert [j for j, _, _ in got] == [1, 2, 3, 4]
    assert [p for _, _, p in got] == [payload(j) for j in range(1, 5)]
    assert reader.lost == 0 and reader.missing_ranges == []
    assert reader.counts["torn_tail"] == 1
    offset = 8 + sum(24 + len(payload(j)) for j in (1, 2))
    assert (reader.problems[0].kind, reader.problems[0].offset) == ("torn_tail", offset)
    assert f"{old} at offset {offset}: torn_tail" in caplog.text
    read(reader)
    assert reader.counts["torn_tail"] == 1, "the same tail is reported once"


def test_following_an_ingester_that_is_writing(tmp_path):
    """The newest file's short tail is a record being written: not a problem; a later call, from the jseq
    after the last one read, yields it once it is whole (without walking the file again)."""
    path = write(tmp_path, 1, [payload(1), payload(2)])
    with path.open("ab") as fh:
        fh.write(record(3, payload(3), 1_700_000_000_000_003)[:10])
    reader = JournalReader(tmp_path)
    assert [j for j, _, _ in read(reader)] == [1, 2]
    assert reader.last_jseq() == 2
    with path.open("ab") as fh:
        fh.write(
            record(3, payload(3), 1_700_000_000_000_003)[10:] + record(4, payload(4), 1_700_000_000_000_004)
        )
    assert read(reader, 3) == [
        (3, 1_700_000_000_000_000 + 3, payload(3)),
        (4, 1_700_000_000_000_000 + 4, payload(4)),
    ]
    assert reader.problems == [] and reader.last_jseq() == 4


def test_empty_and_missing(tmp_path):
    assert JournalReader(tmp_path / "none").last_jseq() is None
    assert read(JournalReader(tmp_path / "none")) == []
    write(tmp_path, 7, [])  # a new file with no record yet: the jseq before its first
    reader = JournalReader(tmp_path)
    assert reader.last_jseq() == 6 and read(reader, 7) == [] and reader.lost == 0
    with pytest.raises(ValueError):
        list(reader.records(0))


def _node_ingester(args: list[str], timeout: float = 60) -> tuple[int, dict]:
    """Runs the ingester to its end; its exit code and its summary line."""
    run = subprocess.run(
        ["node", str(find_ingester()), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    summary = [line for line in run.stderr.splitlines() if line.startswith("ingest: summary ")]
    assert summary, run.stderr[-2000:]
    return run.returncode, json.loads(summary[-1].removeprefix("ingest: summary "))


def _synthetic(total: int, journal_dir: Path, **journal) -> IngestConfig:
    return IngestConfig(
        source="synthetic",
        exchange="synthetic",
        symbols=("syn",),
        speed="max",
        journal=JournalConfig(enabled=True, dir=str(journal_dir), **journal),
        extra_args=("--symbols-count", "7", "--rate", "max", "--total", str(total)),
    )


@needs_node
def test_node_journal_holds_every_frame_sent(tmp_path):
    """A real ingester sending to a processor socket here: the Python reader finds in its journal exactly
    the frames received over ZeroMQ, jseq 1..N without a hole, each decoding with the Python codec."""
    total = 25_000
    endpoint = f"ipc://{tmp_path}/frames.sock"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    sock.bind(endpoint)
    args = ingester_args(_synthetic(total, tmp_path / "journal", file_mb=1), endpoint, session="ab12")
    assert args[args.index("--when-busy") + 1] == "wait"  # started by a processor (a session): back-pressure
    node = subprocess.Popen(["node", str(find_ingester()), *args], stderr=subprocess.PIPE, text=True)
    received = []
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while True:
        assert poller.poll(30_000), "no frame within 30 s"
        received.append(sock.recv())
        if decode_frame(received[-1]).type == "end":
            break
    sock.close()  # the ingester waits for this hang-up
    _, stderr = node.communicate(timeout=30)
    ctx.term()
    assert node.returncode == 0, stderr[-2000:]
    reader = JournalReader(tmp_path / "journal")
    records = read(reader)
    assert [j for j, _, _ in records] == list(range(1, len(received) + 1))
    assert [p for _, _, p in records] == received
    frames = [decode_frame(p) for _, _, p in records]
    assert [f.header["jseq"] for f in frames] == [j for j, _, _ in records]
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert [f.type for f in frames[:2]] == ["start", "trade"] and frames[-1].type == "end"
    ids = [int(i) for f in frames if f.type == "trade" for i in f.columns["id"]]
    assert ids == list(range(total))  # the synthetic source numbers its trades 0, 1, ...
    assert len(reader.files()) > 1, "file_mb 1: the journal rotated"
    assert reader.last_jseq() == len(received) and reader.problems == []
    journal_counts = frames[-1].header["counts"]["journal"]
    assert journal_counts["records"] == len(frames) - 1  # those before the end frame
    assert journal_counts["frames_journal_only"] == 0


@needs_node
def test_standalone_ingester_without_a_processor_journals_everything(tmp_path):
    """An ingester run on its own (no --session: not started by a processor) with a journal and nobody
    at its endpoint never waits: it runs to its end, every frame in the journal, most of them only there;
    run again, it continues the jseqs."""
    journal = tmp_path / "journal"
    endpoint = f"ipc://{tmp_path}/nobody.sock"
    args = ingester_args(_synthetic(200_000, journal), endpoint)
    assert "--when-busy" not in args  # the ingester's own default with a journal: journal
    t0 = time.monotonic()
    code, first = _node_ingester(args)
    assert code == 0
    assert time.monotonic() - t0 < 30
    code, second = _node_ingester(ingester_args(_synthetic(3_000, journal), endpoint))
    assert code == 0
    reader = JournalReader(journal)
    records = read(reader)
    frames = [decode_frame(p) for _, _, p in records]
    assert [j for j, _, _ in records] == list(range(1, len(records) + 1))
    assert [f.header["jseq"] for f in frames] == [j for j, _, _ in records]
    assert [f.type for f in frames].count("start") == 2 and [f.type for f in frames].count("end") == 2
    sessions = [first["session"], second["session"]]
    for session, total in zip(sessions, (200_000, 3_000), strict=True):
        mine = [f for f in frames if f.session == session]
        assert [f.seq for f in mine] == list(range(len(mine)))
        assert [int(i) for f in mine if f.type == "trade" for i in f.columns["id"]] == list(range(total))
    for summary, session in ((first, sessions[0]), (second, sessions[1])):
        sent = summary["sender"]
        n = sum(1 for f in frames if f.session == session)
        assert sent["frames"] + sent["journalOnly"] == n
        assert sent["journalOnly"] >= n - 10  # ZeroMQ queues only its high-water mark for nobody
    assert reader.problems == [] and reader.last_jseq() == len(records)
