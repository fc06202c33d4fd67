"""Issue 18: "the metrics endpoint is scraped during a paced replay and its counters equal the ledger at the
end". The whole pipeline as a user runs it (main, the Node ingester, a private Redis), the sample day of
Binance BTCUSDT trades replayed at 20x (about 10 s), ``/metrics`` and ``/health`` scraped every 0.3 s while
it runs. The figures are worked out from the raw recording with gzip and json alone: 8,020 trades, and
per timeframe the buckets from the first trade's to the last one's (empty ones are published too).

The process exits when the replay ends, so the last scrape comes before the final counts; the exposition
the metrics module renders at close (``--stats-json``'s ``metrics.exposition``) is the one compared with
the ledger line by line, and every scrape made during the run must be at or below it. About 15 s."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

from support.metrics_text import samples, value
from support.pipeline import read_stats, replay_command

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
TIMEFRAMES_S = {"15s": 15, "1m": 60, "5m": 300, "15m": 900, "4h": 14_400, "24h": 86_400}
# the ingester's own metrics on any free port too (never a fixed port in a test)
CONFIG = 'metrics:\n  ingester_address: "127.0.0.1:0"\n'


def raw_trades() -> list[int]:
    """The trade time (ms) of every btcusdt@trade message of the recording."""
    with gzip.open(SAMPLE, "rt") as fh:
        messages = [json.loads(line.split(" ", 1)[1]) for line in fh if line.strip()]
    return [m["data"]["T"] for m in messages if m["stream"] == "btcusdt@trade"]


class Stderr:
    """The process's stderr lines, kept as they come; ``address`` once the metrics line is seen."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.address: str | None = None
        self._proc = proc
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self.lines.append(line)
            found = re.search(r"metrics on http://([0-9.]+:\d+)/metrics", line)
            if found and self.address is None:
                self.address = found.group(1)

    def join(self) -> str:
        self._thread.join(10)
        return "".join(self.lines)


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_metrics_scraped_during_a_paced_replay_grow_and_equal_the_ledger_at_the_end(redis_url, tmp_path):
    trades = raw_trades()
    assert len(trades) == 8020
    buckets = {
        tf: max(trades) // (s * 1000) - min(trades) // (s * 1000) + 1 for tf, s in TIMEFRAMES_S.items()
    }
    assert buckets == {
        "15s": 14,
        "1m": 4,
        "5m": 2,
        "15m": 2,
        "4h": 2,
        "24h": 2,
    }  # the recording spans midnight

    cmd = replay_command(
        [SAMPLE], "binance", "btcusdt", None, tmp_path, config=CONFIG, speed="20",
        extra_args=("--metrics-address", "127.0.0.1:0"),
    )  # fmt: skip
    env = {**os.environ, "REDIS_URL": redis_url}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    err = Stderr(proc)
    scrapes: list[dict] = []
    health: list[tuple[int, dict]] = []
    try:
        deadline = time.monotonic() + 60
        while err.address is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert err.address is not None, "no 'metrics on http://...' line:\n" + "".join(err.lines)
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                status, ctype, body = get(f"http://{err.address}/metrics")
                h_status, h_type, h_body = get(f"http://{err.address}/health")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                break  # the run ended between two checks
            assert (status, ctype) == (200, "text/plain; version=0.0.4; charset=utf-8")
            assert h_type == "application/json"
            scrapes.append(samples(body))
            health.append((h_status, json.loads(h_body)))
            time.sleep(0.3)
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        stdout = proc.stdout.read() if proc.stdout else ""
        stderr = err.join()
    assert proc.returncode == 0, stderr[-3000:] + stdout[-2000:]

    # scraped during the replay, while trades were still coming
    trade_rows = [s.get(("mdth_rows_received_total", (("type", "trade"),)), 0) for s in scrapes]
    assert sum(1 for n in trade_rows if 0 < n < 8020) >= 5, trade_rows
    print(f"{len(scrapes)} scrapes; trades received at each: {[int(n) for n in trade_rows]}")
    # the pipeline was healthy all along: the stream never silent for a minute, the ingester up
    assert all(status == 200 and body["status"] == "ok" for status, body in health), health
    # every counter (and histogram count) only grows from one scrape to the next
    for before, after in itertools.pairwise(scrapes):
        for key, n in before.items():
            if key[0].endswith(("_total", "_count", "_bucket")):
                assert after.get(key, 0) >= n, (key, n, after.get(key))

    stats = read_stats(tmp_path)
    final = samples(stats["metrics"]["exposition"])
    assert stats["metrics"]["scrapes"] >= len(scrapes)
    # at the end: the raw recording's figures ...
    assert value(final, "mdth_rows_received_total", type="trade") == 8020
    assert value(final, "mdth_rows_applied_total", type="trade") == 8020
    assert value(final, "mdth_symbol_rows_total", exchange="binance", symbol="BTCUSDT", type="trade") == 8020
    for timeframe, n in buckets.items():
        assert value(final, "mdth_candles_closed_total", exchange="binance", timeframe=timeframe) == n
        # every candle closed once and published by serve mode: a close lag each
        assert value(final, "mdth_candle_close_lag_seconds_count", timeframe=timeframe) == n
    assert value(final, "mdth_sink_published_total", sink="serve", what="candles") == sum(buckets.values())
    assert value(final, "mdth_handed_to_sinks_total", what="candles") == sum(buckets.values())
    # the frames as the ingester counted what ZeroMQ took of them (its summary), every one received
    sender = stats["ingester"]["sender"]
    assert value(final, "mdth_frames_received_total") == sender["frames"]
    assert value(final, "mdth_frame_size_bytes_count") == sender["frames"]
    assert value(final, "mdth_frame_size_bytes_sum") == sender["bytes"]
    # ... in Redis too: each series' stream holds its candles
    client = redis.Redis.from_url(redis_url)
    try:
        for timeframe, n in buckets.items():
            assert client.xlen(f"candles:stream:binance:BTC-USDT:{timeframe}") == n
    finally:
        client.close()
    # ... and the ledger, line by line, with the raw recording's 8,020 at the source
    ledger = stats["ledger"]
    assert ledger[0]["stage"] == "source" and ledger[0]["in"] == 8020
    assert value(final, "mdth_ledger_final") == 1
    for line in ledger:
        assert line["ok"], line
        assert value(final, "mdth_ledger_in", stage=line["stage"], what=line["what"]) == line["in"]
        for part, n in line["parts"].items():
            assert (
                value(final, "mdth_ledger_accounted", stage=line["stage"], what=line["what"], part=part) == n
            )
        assert value(final, "mdth_ledger_difference", stage=line["stage"], what=line["what"]) == 0
    # what was scraped during the run is at or below the end's figures
    last = scrapes[-1]
    for key, n in last.items():
        if key[0].endswith("_total"):
            assert final.get(key, 0) >= n, (key, n, final.get(key))
