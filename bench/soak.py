"""``make soak``: does the pipeline's memory stay flat over a long run (issue 14)?

The real processes as a user runs them (``python -m market_data_tick_handler.main``, serve mode, candles on
six timeframes with features on two: the built-in defaults) on the Node ingester's synthetic source, paced
at 20,000 trades/s over 100 symbols (event time 60x faster than the wall clock, as in ``make bench``: a 15 s
boundary four times a second, and a 24 h candle every 24 minutes), into a private redis-server, for
``--minutes`` (default 30). Every 30 s (``--interval``) it samples the resident memory (``VmRSS``) of the
processor, the ingester and redis-server, and the trades the processor has counted. At the end: the
series, and the growth per minute after the warm-up (the first 3 minutes): the least-squares slope, and
last minus first, for each process and for the processor and the ingester together.

Issue 19's case (``soak-1000``): ``--symbols 1000 --interval 10 --rate 5000`` (both processes together
under 200 MiB, flat). ``--stream-maxlen`` caps each Redis stream (serve.stream_maxlen, default 1000): with
1,000 symbols x 6 timeframes the default lets redis-server grow to several GB, which says nothing about
our processes.

Not part of ``make test`` or ``make bench``: it takes as long as it is told to.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from market_data_tick_handler.devtools.local_redis import RedisServer
from market_data_tick_handler.devtools.procfs import rss_kb

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_bench import machine

TRADES = re.compile(rb"frames=\d+ trades=(\d+)")


@dataclass
class Sample:
    minutes: float
    processor_kb: int | None
    ingester_kb: int | None
    redis_kb: int | None
    trades: int | None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/*/stat: the parent is the field after the state)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def ingester_pid(processor: int) -> int | None:
    for pid in children(processor):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"cli.js" in cmdline:
            return pid
    return None


class ProgressReader:
    """The trades in the processor's last progress line (logged every 10 s), reading the log on from
    where it stopped (with 1,000 symbols the gap warnings between two progress lines run to megabytes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.tail = b""
        self.trades: int | None = None

    def __call__(self) -> int | None:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        lines = (self.tail + data).split(b"\n")
        self.tail = lines.pop()
        for line in lines:
            found = TRADES.search(line)
            if found:
                self.trades = int(found.group(1))
        return self.trades


def mb(kb: int | None) -> str:
    return "     -" if kb is None else f"{kb / 1024:6.1f}"


def both_kb(sample: Sample) -> int | None:
    """The processor and the ingester together (None until both are seen)."""
    if sample.processor_kb is None or sample.ingester_kb is None:
        return None
    return sample.processor_kb + sample.ingester_kb


def kb_of(sample: Sample, attr: str) -> int | None:
    return both_kb(sample) if attr == "both" else getattr(sample, attr)


def growth(samples: list[Sample], attr: str, warmup: float) -> str:
    points = [(s.minutes, kb_of(s, attr)) for s in samples if s.minutes >= warmup and kb_of(s, attr)]
    if len(points) < 2:
        return "not enough samples after the warm-up"
    t = np.array([p[0] for p in points])
    kb = np.array([p[1] for p in points], dtype=float)
    slope = np.polyfit(t, kb, 1)[0] / 1024
    span = (kb[-1] - kb[0]) / 1024 / (t[-1] - t[0])
    return (
        f"{slope:+.3f} MB/min (least squares), {span:+.3f} MB/min (last - first);"
        f" first {kb[0] / 1024:.1f}, last {kb[-1] / 1024:.1f}, min {kb.min() / 1024:.1f},"
        f" max {kb.max() / 1024:.1f} MB over minutes {t[0]:.1f}..{t[-1]:.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the run")
    parser.add_argument("--rate", type=int, default=20_000, help="trades per second")
    parser.add_argument("--symbols", "--symbols-count", dest="symbols_count", type=int, default=100)
    parser.add_argument("--event-speed", type=float, default=60.0, help="event time / wall time")
    parser.add_argument(
        "--interval", "--every", dest="every", type=float, default=30.0, help="seconds between samples"
    )
    parser.add_argument("--warmup-minutes", type=float, default=3.0, help="left out of the growth")
    parser.add_argument(
        "--stream-maxlen",
        type=int,
        default=None,
        help="serve.stream_maxlen: candles kept per Redis stream (default: the config's, 1000)",
    )
    parser.add_argument(
        "--reply-timeout-ms",
        type=int,
        default=None,
        help="serve.reply_timeout_ms (default: the config's, 2000); on a busy machine a stall of redis-server"
        " longer than this sends the candles to the backlog",
    )
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    print(
        f"soak: {args.rate:,} trades/s over {args.symbols_count} symbols, event time x{args.event_speed:g},"
        f" serve mode to a private redis-server, {args.minutes:g} minutes, a sample every {args.every:g} s"
        + ("" if args.stream_maxlen is None else f", {args.stream_maxlen} candles kept per stream")
        + ("" if args.reply_timeout_ms is None else f", Redis reply timeout {args.reply_timeout_ms} ms"),
        flush=True,
    )
    redis = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="mdth-soak-") as tmp:
            return soak(args, redis, Path(tmp))
    finally:
        redis.stop()


def soak(args: argparse.Namespace, redis: RedisServer, tmp: Path) -> int:
    log_path, stats_path = tmp / "processor.log", tmp / "stats.json"
    cmd = [
        sys.executable, "-m", "market_data_tick_handler.main", "--mode", "streaming-candles-serve",
        "--source", "synthetic", "--exchange", "synthetic", "--symbols", "syn", "--redis-url", redis.url,
        "--stats-json", str(stats_path), "--log-level", "INFO",
    ]  # fmt: skip
    serve = {"stream_maxlen": args.stream_maxlen, "reply_timeout_ms": args.reply_timeout_ms}
    if any(v is not None for v in serve.values()):
        config = tmp / "streaming.yaml"
        config.write_text("serve:\n" + "".join(f"  {k}: {v}\n" for k, v in serve.items() if v is not None))
        cmd += ["--config", str(config)]
    for arg in (
        "--symbols-count",
        args.symbols_count,
        "--rate",
        args.rate,
        "--event-speed",
        args.event_speed,
    ):
        cmd.append(f"--ingest-arg={arg}")
    # metrics on, as a user runs it, on free ports (not the fixed ones a running pipeline may hold)
    env = os.environ | {
        "MDTH_METRICS_ADDRESS": "127.0.0.1:0",
        "MDTH_INGESTER_METRICS_ADDRESS": "127.0.0.1:0",
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    progress = ProgressReader(log_path)
    started = time.monotonic()
    samples: list[Sample] = []
    node: int | None = None
    print(
        "  minutes  processor MB  ingester MB  both MB  redis MB  trades (M)  trades/s since the last sample",
        flush=True,
    )
    try:
        k = 1
        while k * args.every <= args.minutes * 60 + 1e-9:
            time.sleep(max(0.0, started + k * args.every - time.monotonic()))
            if proc.poll() is not None:
                print(f"the processor exited early (code {proc.returncode}):", flush=True)
                print(log_path.read_text(errors="replace")[-3000:], flush=True)
                return 1
            if rss_kb(node) is None:  # not found yet, or restarted
                node = ingester_pid(proc.pid)
            redis_kb = rss_kb(redis.proc.pid if redis.proc else None)
            sample = Sample(k * args.every / 60, rss_kb(proc.pid), rss_kb(node), redis_kb, progress())
            samples.append(sample)
            before = samples[-2] if len(samples) > 1 else Sample(0, None, None, None, 0)
            rate = "-"
            if sample.trades is not None and before.trades is not None:
                rate = f"{(sample.trades - before.trades) / args.every:,.0f}"
            trades = "-" if sample.trades is None else f"{sample.trades / 1e6:.2f}"
            print(
                f"  {sample.minutes:7.1f}  {mb(sample.processor_kb):>12}  {mb(sample.ingester_kb):>11}"
                f"  {mb(both_kb(sample)):>7}  {mb(sample.redis_kb):>8}  {trades:>10}  {rate:>10}",
                flush=True,
            )
            k += 1
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"growth after the first {args.warmup_minutes:g} minutes:", flush=True)
    for name, attr in (
        ("processor", "processor_kb"),
        ("ingester", "ingester_kb"),
        ("both", "both"),
        ("redis", "redis_kb"),
    ):
        print(f"  {name:<10} {growth(samples, attr, args.warmup_minutes)}", flush=True)
    if stats_path.exists():
        stats = json.loads(stats_path.read_text())
        lat = stats.get("latency_us") or {}
        serve = stats.get("serve") or {}
        print(
            f"processor: {stats.get('ticks_by_type', {}).get('trade', 0):,} trades,"
            f" {stats.get('counts', {}).get('candles_out', 0):,} candles,"
            f" {serve.get('candles_published', 0):,} published ({serve.get('candles_lost', 0)} lost);"
            f" last {lat.get('window_frames', 0):,} frames: trade -> published p50"
            f" {(lat.get('trade_p50') or 0) / 1000:.2f} ms, p99 {(lat.get('trade_p99') or 0) / 1000:.2f} ms",
            flush=True,
        )
    if proc.returncode not in (0, -signal.SIGTERM):  # the run is measured; its exit is reported
        print(f"note: the processor, stopped by SIGTERM, exited with code {proc.returncode}; its last lines:")
        print(log_path.read_text(errors="replace")[-2000:], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
