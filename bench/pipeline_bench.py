"""``make bench``: the pipeline's speed through the real processes, on this machine.

1. Baseline, same run: Node synthetic trades -> ZeroMQ -> Python that only decodes the frames.
2. Throughput: Node synthetic trades (100 symbols, as fast as possible) -> ZeroMQ -> Python candles on
   six timeframes -> serve mode (PUBLISH, XADD, HSET) on a private redis-server; trades/s from the first
   frame to the last candle published, and the ratio to the baseline.
3. Latency at a paced 20k trades/s. Event time runs 60x faster than the wall clock, so a 15 s boundary
   (100 candles closing together) comes four times a second instead of every 15 s: a harsh load.
   Per trade: ingester receipt -> processed, and every candle its frame closed published (p50/p99 over
   all trades); per frame: receipt -> handled; per boundary burst, by the number of candles closing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from market_data_tick_handler.config import IngestConfig
from market_data_tick_handler.devtools.local_redis import redis_server
from market_data_tick_handler.streaming_service.ingest import find_ingester, ingester_args
from market_data_tick_handler.wire import decode_frame

SYMBOLS = 100


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_kb / 2**20:.0f} GiB; Linux {platform.release()};"
        f" Python {platform.python_version()}, Node {node}"
    )


def synthetic(rate: str, total: int) -> IngestConfig:
    return IngestConfig(
        source="synthetic",
        exchange="synthetic",
        symbols=("syn",),
        speed="max",
        extra_args=(
            "--symbols-count",
            str(SYMBOLS),
            "--rate",
            rate,
            "--total",
            str(total),
            "--event-speed",
            "60",
        ),
    )


def decode_only(total: int, extra_args: tuple[str, ...] = ()) -> float:
    """Baseline: trades/s when the processor only decodes frames (a plain blocking loop); ``extra_args``:
    more of the ingester's options."""
    with tempfile.TemporaryDirectory(prefix="mdth-bench-") as tmp:
        endpoint = f"ipc://{tmp}/frames.sock"
        ctx = zmq.Context()
        sock = ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, 4)
        sock.bind(endpoint)
        cmd = ["node", str(find_ingester()), *ingester_args(synthetic("max", total), endpoint), *extra_args]
        node = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        trades, start = 0, None
        while True:
            frame = decode_frame(sock.recv(copy=False).buffer)
            start = start or time.perf_counter()
            if frame.type == "trade":
                trades += frame.n
                frame.columns["price"].sum()  # touch the data, as a consumer would
            elif frame.type == "end":
                break
        elapsed = time.perf_counter() - start
        sock.close()  # the ingester waits for this hang-up
        node.wait(30)
        ctx.term()
    return trades / elapsed


def pipeline(redis_url: str, rate: str, total: int) -> dict:
    """The whole pipeline as a user runs it (python -m market_data_tick_handler.main), stats as JSON."""
    with tempfile.TemporaryDirectory(prefix="mdth-bench-") as tmp:
        stats_path = Path(tmp) / "stats.json"
        cmd = [
            sys.executable,
            "-m",
            "market_data_tick_handler.main",
            "--source",
            "synthetic",
            "--exchange",
            "synthetic",
            "--symbols",
            "syn",
            "--redis-url",
            redis_url,
            "--stats-json",
            str(stats_path),
            "--log-level",
            "WARNING",
        ]
        for arg in synthetic(rate, total).extra_args:
            cmd.append(f"--ingest-arg={arg}")
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise SystemExit(f"pipeline failed ({run.returncode}):\n{run.stderr[-3000:]}")
        return json.loads(stats_path.read_text())


def ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trades", type=int, default=3_000_000, help="trades in the throughput runs")
    parser.add_argument("--paced-seconds", type=int, default=20, help="length of the 20k trades/s run")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    baseline = decode_only(args.trades)
    print(
        f"baseline   decode only (Node -> ZeroMQ -> Python decode): {baseline / 1e6:.2f} M trades/s",
        flush=True,
    )
    with redis_server() as url:
        full = pipeline(url, "max", args.trades)
        rate = full["ticks_by_type"]["trade"] / full["elapsed_s"]
        print(
            f"throughput {SYMBOLS} symbols, candles on 6 timeframes + serve mode to Redis:"
            f" {rate / 1e6:.2f} M trades/s"
            f" ({full['counts']['candles_out']} candles; {rate / baseline:.0%} of the baseline)",
            flush=True,
        )
        paced = pipeline(url, "20000", 20_000 * args.paced_seconds)
        lat = paced["latency_us"]
        print(
            f"latency    at 20k trades/s, {SYMBOLS} symbols, a 15 s boundary every 0.25 s:"
            f" trade -> processed and what it closed published: p50 {ms(lat['trade_p50'])},"
            f" p99 {ms(lat['trade_p99'])} ({lat['trade_samples']} trades);"
            f" frame handled p50 {ms(lat['frame_p50'])}, p99 {ms(lat['frame_p99'])}"
            f" ({lat['frame_samples']} frames)",
            flush=True,
        )
        for size, burst in lat["bursts"].items():
            print(
                f"burst      {size:>4} candles closing together: receipt -> all published"
                f" p50 {ms(burst['p50'])}, p99 {ms(burst['p99'])}, max {ms(burst['max'])}"
                f" ({burst['samples']} bursts)",
                flush=True,
            )


if __name__ == "__main__":
    main()
