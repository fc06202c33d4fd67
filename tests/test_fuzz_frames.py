"""Fuzzing a real processor over a real ZeroMQ socket (issue 14, item 3): 100,000 frames mutated from the
golden vectors (proto/vectors/python/) with a seeded RNG (truncated, wrong version or magic, missing and
mistyped header fields, absurd lengths and counts, bad symbol tables and indexes, invalid UTF-8, NaN,
negative, zero and infinite values, timestamps in 1970, 3000 and past 9999, repeated, skipped and absurd
sequence numbers, foreign sessions, unknown types), pushed with pyzmq to `python -m
market_data_tick_handler.main` (no ingester: `ingest.spawn: false`, a tcp://127.0.0.1 endpoint). It must
not crash nor hang (it goes idle after each burst and ends on the final `end` frame), its memory must
stay flat, and every frame must be accounted for: its final stats (`--stats-json`) count as many frames
as were sent, under the reasons an independent model gives (the codec's verdict, the service's session
rule, the sequence rule), and every row of every type is applied or dropped by reason."""

from __future__ import annotations

import json
import random
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
import zmq

from market_data_tick_handler.wire import StrColumn, WireError, decode_frame, load_schema

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO / "proto" / "vectors" / "python"
FRAMES = 100_000  # sent in all, the start and end frames included
WARMUP = 5_000  # frames sent before the first memory reading (the caches fill up)
SEED = 20_240_809
MAIN = "f0f0f0f0"  # the main session; a few others come and go
OTHERS = [f"{k:08x}" for k in range(1, 9)]
MAX_SEQ_JUMP = 1_000_000  # tick_handler.MAX_SEQ_JUMP
RSS_GROWTH_MB = 25  # allowed from the warm-up's end to the end (caches filling, allocator slack)
RSS_SECOND_HALF_MB = 8  # allowed over the second half: by then nothing may grow with the frames
SCHEMA = load_schema()
DAY = 86_400_000_000
BAD_TIMES = [
    1_000_000,  # 1970
    0,
    -1,
    32_503_680_000_000_000,  # 3000
    253_402_300_800_000_000 + DAY,  # past 9999
    np.iinfo(np.int64).min,
    np.iinfo(np.int64).max,
]
BAD_VALUES = [float("nan"), -1.0, 0.0, float("inf"), -float("inf"), 1e300, -0.0]


# -- frames as parts: header dict + column bytes, so that any part can be broken ---------------------
class Base:
    """A golden vector: its header and its columns as numpy arrays (str columns as lists of bytes)."""

    def __init__(self, path: Path) -> None:
        frame = decode_frame(path.read_bytes())
        self.name = path.stem
        self.type = frame.type
        self.header = dict(frame.header)
        self.columns: dict[str, object] = {}
        for column in SCHEMA.frames[frame.type].columns:
            values = frame.columns[column.name]
            if isinstance(values, StrColumn):
                self.columns[column.name] = [s.encode() for s in values]
            else:
                self.columns[column.name] = np.array(values)


def dumps(header: dict) -> bytes:
    try:
        return orjson.dumps(header)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(header, separators=(",", ":")).encode()


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 8)


def assemble(head: bytes, bodies: list[bytes]) -> bytes:
    """A frame as proto/README.md lays it out (every part starts at a multiple of 8)."""
    parts = [struct.pack("<4sHHI", b"MDTW", 1, 0, len(head)), head, _pad(12 + len(head))]
    for body in bodies:
        parts += [body, _pad(len(body))]
    return b"".join(parts)


def str_body(values: list[bytes]) -> bytes:
    offsets = np.zeros(len(values) + 1, dtype="<u4")
    if values:
        np.cumsum([len(v) for v in values], out=offsets[1:])
    return offsets.tobytes() + b"".join(values)


def bodies_of(kind: str, columns: dict[str, object]) -> list[bytes]:
    out = []
    for column in SCHEMA.frames[kind].columns:
        values = columns[column.name]
        if column.dtype == "str":
            out.append(str_body(values))  # type: ignore[arg-type]
        else:
            out.append(np.asarray(values).astype(column.np_dtype).tobytes())
    return out


# -- the mutations -------------------------------------------------------------------------------------
class Fuzzer:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.bases = [Base(p) for p in sorted(VECTORS.glob("*.bin")) if not p.stem.startswith("end")]
        assert len(self.bases) >= 11, [b.name for b in self.bases]
        self.next_seq = {MAIN: 0, **dict.fromkeys(OTHERS, 0)}
        self.sent_seqs: list[int] = []
        self.frame_index = 0
        self.kinds: Counter[str] = Counter()
        weights = {
            "valid": 30, "truncated": 4, "bitflip": 4, "version": 2, "magic": 2, "trailing": 2,
            "header_len": 2, "header_json": 2, "missing_field": 4, "wrong_type_field": 5, "unknown_type": 2,
            "n_mismatch": 3, "bad_symbols": 3, "bad_sym_index": 4, "bad_value": 6, "bad_time": 6,
            "bad_enum": 3, "bad_utf8": 3, "bad_offsets": 2, "duplicate_seq": 3, "skip_seq": 2,
            "absurd_seq": 1, "other_session": 3, "far_future_row": 2, "start_fields": 1,
        }  # fmt: skip
        self.mutations = list(weights)
        self.weights = list(weights.values())

    # the stream advances: every frame's times move ~200 ms on, as a replay's would
    def _shift(self, columns: dict[str, object]) -> dict[str, object]:
        shift = self.frame_index * 200_000
        out = dict(columns)
        for name in ("timestamp", "local_timestamp"):
            if name in out:
                out[name] = np.asarray(out[name]) + shift
        return out

    def _header(self, base: Base, session: str, seq: int) -> dict:
        header = {**base.header, "session": session, "seq": seq, "recv_mono_us": 0, "sent_mono_us": 0}
        return header

    def _take_seq(self, session: str) -> int:
        seq = self.next_seq[session]
        self.next_seq[session] = seq + 1
        if session == MAIN:
            self.sent_seqs.append(seq)
        return seq

    def start(self) -> bytes:
        """The main session's first frame: a valid ``start`` (the processor takes the session it opens)."""
        base = next(b for b in self.bases if b.type == "start")
        return assemble(dumps(self._header(base, MAIN, self._take_seq(MAIN))), [])

    def give_back(self, session: str) -> None:
        """The frame just made was undecodable: its seq goes to the next one (a corrupt frame need not
        cost a lost frame each time, else the run is one long storm of lost-frame gaps)."""
        self.next_seq[session] -= 1
        if session == MAIN and self.sent_seqs and self.sent_seqs[-1] == self.next_seq[MAIN]:
            self.sent_seqs.pop()

    def next(self) -> tuple[str, str | None, bytes]:
        """(mutation, the session whose next seq it took or None, the frame)."""
        self.frame_index += 1
        kind = self.rng.choices(self.mutations, self.weights)[0]
        base = self.rng.choices(self.bases, [1 if b.type == "ledger" else 4 for b in self.bases])[0]
        rows = int(base.header["n"])
        if (
            kind in ("bad_sym_index", "bad_value", "bad_time", "bad_enum", "bad_utf8", "far_future_row")
            and not rows
        ):
            kind = "valid"
        if kind == "start_fields" and base.type != "start":
            kind = "wrong_type_field"
        self.kinds[kind] += 1
        session = self.rng.choice(OTHERS) if kind == "other_session" else MAIN
        took: str | None = None
        if kind == "duplicate_seq" and self.sent_seqs:
            seq = self.rng.choice(self.sent_seqs[-50:])
        elif kind == "skip_seq":
            self.next_seq[MAIN] += self.rng.randint(1, 20)
            seq, took = self._take_seq(MAIN), MAIN
        elif kind == "absurd_seq":
            seq = self.rng.choice([2**52, 2**53 - 1, 2**50 + 7])
        else:
            seq, took = self._take_seq(session), session
        header = self._header(base, session, seq)
        columns = self._shift(base.columns)
        return kind, took, self._mutate(kind, base, header, columns)

    def _mutate(self, kind: str, base: Base, header: dict, columns: dict[str, object]) -> bytes:
        rng = self.rng
        n = int(header["n"])
        if kind in ("bad_sym_index", "bad_value", "bad_time", "bad_enum", "bad_utf8", "far_future_row"):
            columns = {k: (list(v) if isinstance(v, list) else np.array(v)) for k, v in columns.items()}
            rows = rng.sample(range(n), rng.randint(1, n))
            spec = {c.name: c for c in SCHEMA.frames[base.type].columns}
            if kind == "bad_sym_index":
                for r in rows:
                    columns["sym"][r] = rng.choice([len(header["symbols"]), 65535, 7])  # type: ignore[index]
            elif kind == "bad_value":
                names = [c for c, s in spec.items() if s.dtype == "f64"] or ["local_timestamp"]
                for r in rows:
                    name = rng.choice(names)
                    width = len(columns[name]) // n  # type: ignore[arg-type]
                    bad = rng.choice(BAD_VALUES if spec[name].dtype == "f64" else BAD_TIMES)
                    columns[name][r * width + rng.randrange(width)] = bad  # type: ignore[index]
            elif kind == "bad_time":
                names = [c for c, s in spec.items() if s.dtype == "i64"]
                for r in rows:
                    columns[rng.choice(names)][r] = rng.choice(BAD_TIMES)  # type: ignore[index]
            elif kind == "bad_enum":
                names = [c for c, s in spec.items() if s.enum]
                if not names:
                    columns["sym"][rows[0]] = 40000  # type: ignore[index]
                for r in rows:
                    if names:
                        columns[rng.choice(names)][r] = rng.randint(3, 255)  # type: ignore[index]
            elif kind == "bad_utf8":
                names = [c for c, s in spec.items() if s.dtype == "str"]
                if not names:
                    columns["sym"][rows[0]] = 9  # type: ignore[index]
                for r in rows:
                    if names:
                        columns[rng.choice(names)][r] = rng.choice(  # type: ignore[index]
                            [b"\xff", b"\xc3", b"a\x80b", b"\xed\xa0\x80", b"\xe2\x82", b"\xc3\xa9"[1:]]
                        )
            elif kind == "far_future_row" and "timestamp" in columns:
                ahead = rng.choice([DAY, 365 * DAY, 60 * 365 * DAY, 3_600_000_000])
                columns["timestamp"][rows[0]] += ahead  # type: ignore[index]
            return assemble(dumps(header), bodies_of(base.type, columns))
        if kind == "bad_offsets" and any(c.dtype == "str" for c in SCHEMA.frames[base.type].columns) and n:
            bodies = bodies_of(base.type, columns)
            k = [c.dtype for c in SCHEMA.frames[base.type].columns].index("str")
            offsets = np.frombuffer(bodies[k][: 4 * (n + 1)], dtype="<u4").copy()
            choice = rng.randrange(3)
            if choice == 0:
                offsets[0] = 1
            elif choice == 1:
                offsets[-1] = 2**31
            else:
                offsets[1:] = offsets[1:][::-1] + 1
            bodies[k] = offsets.tobytes() + bodies[k][4 * (n + 1) :]
            return assemble(dumps(header), bodies)
        if kind == "missing_field":
            header.pop(rng.choice(["type", "n", "seq", "session", "symbols"]))
        elif kind == "wrong_type_field":
            field = rng.choice(
                ["n", "seq", "session", "symbols", "type", "recv_mono_us", "depth", "interval_ms"]
            )
            header[field] = rng.choice(
                ["7", 1.5, None, True, [], {}, -3, 2**64, "x" * 300, [["a", "b"]], {"n": 1}]
            )
        elif kind == "unknown_type":
            header["type"] = rng.choice(["nope", "", "TRADE", "trades", 7, None, ["trade"], {"t": 1}])
        elif kind == "n_mismatch":
            header["n"] = rng.choice([n + 1, max(n - 1, 0) if n else 3, 2**31, 2**62, n * 1000 + 1])
        elif kind == "bad_symbols":
            header["symbols"] = rng.choice(
                [
                    [], [["binance"]], [["", "BTCUSDT"]], [[1, 2]], "binance",
                    [["binance", "BTCUSDT"]] * 2, [["binance", "X" * 300]], [["binance", "BTCUSDT", "extra"]],
                    [None], {"binance": "BTCUSDT"},
                ]
            )  # fmt: skip
            if rng.random() < 0.002:
                header["symbols"] = [["binance", f"S{k}"] for k in range(70_000)]
        elif kind == "start_fields":
            header[rng.choice(["exchanges", "data_types", "source", "speed"])] = rng.choice(
                [5, ["binance", 1], {"a": 1}, None, "binance", [["x"]]]
            )
        head = dumps(header)
        data = assemble(head, bodies_of(base.type, columns))
        if kind == "truncated":
            return data[: rng.randrange(len(data))]
        if kind == "bitflip":  # in the columns, past the header (a header flip is covered above)
            start = 12 + len(head) + len(_pad(12 + len(head)))
            if start < len(data):
                buf = bytearray(data)
                for _ in range(rng.randint(1, 4)):
                    buf[rng.randrange(start, len(buf))] ^= 1 << rng.randrange(8)
                return bytes(buf)
            return data
        if kind == "version":
            return data[:4] + struct.pack("<H", rng.choice([0, 2, 255, 65535])) + data[6:]
        if kind == "magic":
            return rng.choice([b"XXXX", b"MDTX", b"\0\0\0\0"]) + data[4:]
        if kind == "trailing":
            return data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        if kind == "header_len":
            return data[:8] + struct.pack("<I", rng.choice([2**32 - 1, len(data), len(head) + 1])) + data[12:]
        if kind == "header_json":
            k = rng.randrange(len(head))
            garbage = rng.choice([b"\xff", b"}", b"[", b"\0", b'"'])
            return assemble(head[:k] + garbage + head[k + 1 :], bodies_of(base.type, columns))
        return data


# -- an independent model of what the processor must count -------------------------------------------
class Expected:
    """What the processor must count, from the codec's verdict on each frame, the service's session
    rule (it takes the session of the first ``start`` frame and refuses the frames of any other,
    ``sessions_refused``) and the sequence rule (proto/README.md: seq 0, 1, 2, ... per session; a
    repeat is dropped, a skip is lost frames, a jump of more than MAX_SEQ_JUMP counts only when the
    next frame follows it)."""

    def __init__(self) -> None:
        self.session: str | None = None
        self.refused: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.undecodable: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.next: dict[str, int] = {}
        self.jumped: dict[str, int] = {}

    def see(self, data: bytes) -> bool:
        """Counts ``data``; returns whether it decodes."""
        self.counts["frames_received"] += 1
        try:
            frame = decode_frame(data, SCHEMA)
        except WireError as exc:
            self.counts["frames_undecodable"] += 1
            self.undecodable[exc.reason] += 1
            return False
        self.counts["frames_decoded"] += 1
        if self.session is None and frame.type == "start":
            self.session = frame.session
        if frame.session != self.session:
            self.refused["foreign_session" if self.session else "before_start"] += 1
            return True
        self.rows[frame.type] += frame.n
        session, seq = frame.session, frame.seq
        expected = self.next.get(session)
        if expected is not None and seq < expected:
            self.counts["frames_duplicate"] += 1
            return True
        if expected is not None and seq > expected:
            if seq - expected > MAX_SEQ_JUMP and self.jumped.get(session) != seq - 1:
                self.jumped[session] = seq
                self.counts["frames_seq_jump"] += 1
                return True
            self.counts["frames_lost"] += (
                seq - expected - (1 if self.jumped.pop(session, None) == seq - 1 else 0)
            )
        self.next[session] = seq + 1
        self.counts["frames_handled_ok"] += 1  # applied or unhandled (a type without a processor)
        return True


# -- the processor -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _wait_idle(proc: subprocess.Popen, quiet_s: float = 0.6, timeout: float = 60) -> None:
    """Until the processor has used no CPU for ``quiet_s``: every frame sent so far is handled."""
    deadline = time.monotonic() + timeout
    last, since = _cpu_ticks(proc.pid), time.monotonic()
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the processor exited"
        time.sleep(0.1)
        now = _cpu_ticks(proc.pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
    raise AssertionError(f"the processor did not go idle within {timeout} s: a hang?")


def test_fuzzed_frames_never_stop_the_processor_and_every_frame_is_accounted_for(tmp_path):
    started = time.monotonic()
    port = _free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    (tmp_path / "streaming.yaml").write_text(
        "modes: [serve]\n"
        "serve: {transport: inmemory, stream_maxlen: 10}\n"  # the in-memory streams fill up in the warm-up
        "ingest: {source: replay, exchange: binance, symbols: [btcusdt], spawn: false,"
        f" endpoint: '{endpoint}'}}\n"
        "candles: {clock: event}\n"
    )
    stderr = (tmp_path / "processor.log").open("w")
    cmd = [
        sys.executable, "-m", "market_data_tick_handler.main", "--mode", "streaming-candles-serve",
        "--config", str(tmp_path / "streaming.yaml"), "--stats-json", str(tmp_path / "stats.json"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr, cwd=REPO)
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 5000)
    push.connect(endpoint)
    fuzzer, expected = Fuzzer(SEED), Expected()
    try:
        deadline = time.monotonic() + 60
        while "processor listening on" not in (tmp_path / "processor.log").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "processor.log"
            ).read_text()
            time.sleep(0.1)
        rss_start = _rss_kb(proc.pid)
        data = fuzzer.start()
        expected.see(data)
        push.send(data)
        sent = 1
        rss_before = rss_mid = 0
        while sent < FRAMES - 1:
            _, took, data = fuzzer.next()
            if not expected.see(data) and took is not None:
                fuzzer.give_back(took)
            push.send(data)
            sent += 1
            if sent in (WARMUP, (WARMUP + FRAMES) // 2):
                _wait_idle(proc)
                if sent == WARMUP:
                    rss_before = _rss_kb(proc.pid)
                else:
                    rss_mid = _rss_kb(proc.pid)
        _wait_idle(proc)
        rss_after = _rss_kb(proc.pid)
        end = {
            "type": "end", "n": 0, "seq": fuzzer.next_seq[MAIN], "session": MAIN, "symbols": [],
            "recv_mono_us": 0, "sent_mono_us": 0, "reason": "replay_finished", "error": None, "counts": None,
        }  # fmt: skip
        data = assemble(dumps(end), [])
        expected.see(data)
        push.send(data)
        sent += 1
        code = proc.wait(timeout=60)  # the end frame ends it: no hang
    finally:
        push.close()
        ctx.term()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    log = (tmp_path / "processor.log").read_text()
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[log.index("Traceback") - 500 : log.index("Traceback") + 3000]
    stats = json.loads((tmp_path / "stats.json").read_text())
    frames, rows = stats["frame_ledger"], stats["row_ledger"]
    elapsed = time.monotonic() - started

    print(f"\nfuzz: {sent} frames sent (seed {SEED}) in {elapsed:.1f} s; mutations:")
    for kind, k in sorted(fuzzer.kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:18s} {k:7d}")
    print(f"refused by the service's session rule: {stats['sessions_refused']}")
    print("processor's frame ledger:")
    for key in (
        "frames_received", "frames_decoded", "frames_undecodable", "frames_applied", "frames_unhandled",
        "frames_duplicate", "frames_seq_jump", "frames_failed", "frames_lost",
    ):  # fmt: skip
        print(f"  {key:18s} {frames[key]:9d}   expected {expected.counts.get(key, '-')}")
    print("  undecodable by reason:")
    for reason, k in sorted(frames["undecodable"].items(), key=lambda kv: -kv[1]):
        print(f"    {reason:16s} {k:7d}   expected {expected.undecodable[reason]}")
    print("rows by type (received = applied + dropped):")
    for kind, row in sorted(rows.items()):
        dropped = ", ".join(f"{r} {k}" for r, k in sorted(row["dropped"].items(), key=lambda kv: -kv[1]))
        print(f"  {kind:17s} received {row['received']:7d}  applied {row['applied']:7d}  dropped: {dropped}")
    candles = rows["trade"]["candles"]
    print(
        f"  trades applied -> candle engines: in candles {candles['applied']}, held {candles['held']},"
        f" dropped: {', '.join(f'{r} {k}' for r, k in candles['dropped'].items())}"
    )
    print(
        f"RSS (VmRSS): {rss_start / 1024:.1f} MB at start, {rss_before / 1024:.1f} MB after {WARMUP} frames,"
        f" {rss_mid / 1024:.1f} MB after {(WARMUP + FRAMES) // 2}, {rss_after / 1024:.1f} MB after {sent - 1}"
    )

    # every frame accounted for, under the same reasons
    assert frames["frames_received"] == sent == expected.counts["frames_received"]
    assert frames["frames_received"] == frames["frames_decoded"] + frames["frames_undecodable"]
    assert frames["undecodable"] == dict(expected.undecodable)
    assert frames["frames_decoded"] == expected.counts["frames_decoded"]
    assert stats["sessions_refused"] == dict(expected.refused)  # the service's session rule
    assert frames["frames_handled"] == frames["frames_decoded"] - sum(expected.refused.values())
    assert frames["frames_failed"] == 0, frames["failed"]
    for key in ("frames_duplicate", "frames_seq_jump", "frames_lost"):
        assert frames[key] == expected.counts[key], key
    assert frames["frames_applied"] + frames["frames_unhandled"] == expected.counts["frames_handled_ok"]
    assert frames["frames_handled"] == sum(
        frames[k]
        for k in (
            "frames_applied",
            "frames_unhandled",
            "frames_duplicate",
            "frames_seq_jump",
            "frames_failed",
        )
    )
    # every row accounted for
    assert {k: v["received"] for k, v in rows.items()} == {k: v for k, v in expected.rows.items() if v}
    for kind, row in rows.items():
        assert row["received"] == row["applied"] + sum(row["dropped"].values()), kind
    assert candles["received"] == rows["trade"]["applied"]
    assert candles["received"] == candles["applied"] + sum(candles["dropped"].values()) + candles["held"]
    assert candles["held"] == 0  # the end frame settled every held trade
    assert stats["counts"].get("candles_out", 0) > 0  # the good frames still made candles
    # what each mutation must have become, independently of the codec's own verdict
    assert frames["undecodable"]["version"] == fuzzer.kinds["version"]
    assert frames["undecodable"]["magic"] == fuzzer.kinds["magic"]
    assert frames["frames_duplicate"] == fuzzer.kinds["duplicate_seq"]
    assert frames["frames_seq_jump"] == fuzzer.kinds["absurd_seq"]
    # no leak, no crawl
    assert rss_after - rss_before < RSS_GROWTH_MB * 1024, (rss_before, rss_mid, rss_after)
    assert rss_after - rss_mid < RSS_SECOND_HALF_MB * 1024, (rss_before, rss_mid, rss_after)
    assert elapsed < 120
