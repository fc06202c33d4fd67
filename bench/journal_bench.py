"""The journal's cost per trade, through the real processes, with and without it in the same run.

0. The writer alone: the ingester's batcher building frames (as its sender does) without ZeroMQ, without
   and with a journal (ingest-node/bench/journal-cost.js): the journal's own CPU cost.
1. Ingester-bound: Node synthetic trades (100 symbols, as fast as possible) -> ZeroMQ -> Python that only
   decodes the frames, without and with the ingester's journal (``--journal-dir``, ``--when-busy wait``).
   The ingester is the bottleneck here, so every µs the journal costs it shows.
2. The pipeline as a user runs it (``python -m market_data_tick_handler.main``): candles on six timeframes,
   serve mode into a private redis-server, without a journal, with the ingester journaling (the processor
   unaware), and with ``ingest.journal.enabled`` (the ingester's journal, and the processor's jseq order
   and checkpoints; docs/ARCHITECTURE.md).
3. Replay: the Python ``JournalReader`` reading back the journal of the last run of 2 (CRCs checked), and
   decoding every frame.

The variants' runs take turns, in an order rotating from one round to the next, so that the machine's other
load falls on all alike; each figure is the median of ``--rounds`` runs. The cost per trade is
1/rate(with) - 1/rate(without).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pipeline_bench
from pipeline_bench import SYMBOLS, machine, synthetic

from market_data_tick_handler.devtools.local_redis import redis_server
from market_data_tick_handler.streaming_service.ingest import find_ingester
from market_data_tick_handler.streaming_service.ingest.journal import JournalReader
from market_data_tick_handler.wire import decode_frame


def decode_only(total: int, journal: Path | None) -> float:
    """Trades/s when the processor only decodes frames; with ``journal``, the ingester journals there."""
    extra = () if journal is None else ("--journal-dir", str(journal), "--when-busy", "wait")
    return pipeline_bench.decode_only(total, extra)


def pipeline(redis_url: str, total: int, journal: Path | None, processor: bool = True) -> float:
    """Trades/s of the whole pipeline (first frame to last candle published, its own stats). With
    ``journal``: ``ingest.journal.enabled`` with that directory (``processor``), or only the ingester
    journaling there (its flags through ``--ingest-arg``; the processor knows nothing of it)."""
    with tempfile.TemporaryDirectory(prefix="mdth-bench-") as tmp:
        stats_path = Path(tmp) / "stats.json"
        cmd = [
            sys.executable, "-m", "market_data_tick_handler.main",
            "--source", "synthetic", "--exchange", "synthetic", "--symbols", "syn",
            "--redis-url", redis_url, "--stats-json", str(stats_path), "--log-level", "WARNING",
        ]  # fmt: skip
        extra = list(synthetic("max", total).extra_args)
        if journal is not None and processor:
            config = Path(tmp) / "streaming.yaml"
            config.write_text(
                f"ingest:\n  journal:\n    enabled: true\n    dir: {json.dumps(str(journal))}\n"
            )
            cmd += ["--config", str(config)]
        elif journal is not None:
            extra += ["--journal-dir", str(journal), "--when-busy", "wait"]
        cmd += [f"--ingest-arg={arg}" for arg in extra]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise SystemExit(f"pipeline failed ({run.returncode}):\n{run.stderr[-3000:]}")
        stats = json.loads(stats_path.read_text())
    return stats["ticks_by_type"]["trade"] / stats["elapsed_s"]


def writer_alone(total: int, rounds: int, tmp: Path) -> dict[str, list[float]]:
    """ingest-node/bench/journal-cost.js: trades/s of the batcher building frames, without and with a
    journal (its runs alternate too)."""
    script = find_ingester().parent.parent / "bench" / "journal-cost.js"
    tmp.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        ["node", str(script), str(total), str(rounds), str(tmp)], capture_output=True, text=True, check=True
    )
    return json.loads(run.stdout)


def interleaved(rounds: int, variants: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """``rounds`` runs of each variant, their order rotating from one round to the next."""
    names = list(variants)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            out[name].append(variants[name]())
    return out


def fresh(journal: Path) -> Path:
    """``journal``, emptied: each run starts a new journal (the last run's is left for the replay)."""
    shutil.rmtree(journal, ignore_errors=True)
    return journal


def report(label: str, without: list[float], with_journal: list[float]) -> None:
    a, b = statistics.median(without), statistics.median(with_journal)
    cost_ns = (1 / b - 1 / a) * 1e9
    print(
        f"{label}: without {a / 1e6:.2f} M trades/s, with the journal {b / 1e6:.2f} M trades/s"
        f" ({b / a:.1%}); cost {cost_ns:+.0f} ns per trade"
        f"  [runs without: {', '.join(f'{x / 1e6:.2f}' for x in without)};"
        f" with: {', '.join(f'{x / 1e6:.2f}' for x in with_journal)}]",
        flush=True,
    )


def replay(journal: Path) -> None:
    reader = JournalReader(journal)
    t0 = time.perf_counter()
    records = sum(1 for _ in reader.records(1))
    read_s = time.perf_counter() - t0
    size = reader.counts["bytes"]
    t0 = time.perf_counter()
    trades = 0
    for _, _, payload in reader.records(1):
        frame = decode_frame(payload)
        if frame.type == "trade":
            trades += frame.n
    decode_s = time.perf_counter() - t0
    print(
        f"replay     JournalReader over {records} records ({size / 2**20:.0f} MB, {trades} trades):"
        f" read + CRC {records / read_s / 1e3:.0f} k records/s ({size / read_s / 1e9:.2f} GB/s);"
        f" read + CRC + decode {records / decode_s / 1e3:.0f} k records/s,"
        f" {trades / decode_s / 1e6:.1f} M trades/s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trades", type=int, default=3_000_000, help="trades per run")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each variant")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    print(
        f"{args.trades} synthetic trades over {SYMBOLS} symbols per run, medians of {args.rounds} runs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="mdth-bench-journal-") as tmp:
        journal = Path(tmp) / "journal"
        writer = writer_alone(args.trades, args.rounds, Path(tmp))
        report("writer     Node frames built, no ZeroMQ", writer["without"], writer["with"])
        runs = interleaved(
            args.rounds,
            {
                "without": lambda: decode_only(args.trades, None),
                "with": lambda: decode_only(args.trades, fresh(journal)),
            },
        )
        report("ingester   Node -> ZeroMQ -> Python decode only", runs["without"], runs["with"])
        with redis_server() as url:
            runs = interleaved(
                args.rounds,
                {
                    "without": lambda: pipeline(url, args.trades, None),
                    "ingester": lambda: pipeline(url, args.trades, fresh(journal), processor=False),
                    "enabled": lambda: pipeline(url, args.trades, fresh(journal)),
                },
            )
        report(
            "pipeline   candles on 6 timeframes + serve mode to Redis, the ingester journaling",
            runs["without"],
            runs["ingester"],
        )
        report(
            "pipeline   the same with ingest.journal.enabled (+ the processor's jseq order, checkpoints)",
            runs["without"],
            runs["enabled"],
        )
        replay(journal)


if __name__ == "__main__":
    main()
