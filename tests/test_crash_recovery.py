"""Exactly once across processor crashes, on the real processes: an ingester of its own (ingest.spawn:
false) replays the sample at a pace, journaling every frame; the processor (serve mode, persist mode and
the tick sink into the local store) is killed with SIGKILL at random moments and started again, twenty
times; at the end every candle is in its Redis stream (with AOF on) once and every candle and trade once
in the tables' ``_dedup`` views, equal to the values worked out from the raw frames
(support/binance_reference.py), and the last run's ledger accounts for every trade of the recording.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from market_data_tick_handler.devtools.local_redis import RedisServer, free_port
from market_data_tick_handler.query import connect
from market_data_tick_handler.streaming_service.ingest.journal import JournalReader
from support.bigquery import micros
from support.binance_reference import assert_candles_match, expected_candles, read_trades
from support.pipeline import LIVE_CONFIG, stream_candles

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
SAMPLE_TRADES = 8_020  # data/sample/README.md
TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")
DATASET = "market_data_streaming"  # a replay writes to the historical dataset
CLI = REPO / "ingest-node" / "src" / "cli.js"

CONFIG = """
modes: [serve, persist, ticks]
candles:
  clock: event
data_types:
  trades: {{batch_timeout: 1000}}     # tick rows written within a second: the sinks' durable position
                                    # moves on between kills (it lags the rows still waiting)
  gaps: {{batch_timeout: 1000}}
  book_snapshots: {{enabled: false}}
  derivative_ticker: {{enabled: false}}
  options_chain: {{enabled: false}}
  liquidations: {{enabled: false}}
  funding_rates: {{enabled: false}}
ingest:
  source: replay
  exchange: binance
  symbols: [btcusdt]
  endpoint: tcp://127.0.0.1:{port}
  spawn: false
  journal:
    enabled: true
    dir: {journal}
    checkpoint_interval_s: 0.2
serve:
  redis_url: {redis_url}
persist:
  local:
    path: {store}
  bigquery:
    batch_size: 500
    batch_timeout_ms: 1000
"""


def _ingester(port: int, journal: Path, speed: str) -> subprocess.Popen:
    """The operator's ingester, run on its own: it journals every frame and does not wait for the
    processor (``--journal-dir`` without ``--when-busy wait``)."""
    cmd = [
        "node", str(CLI), "--source", "replay", "--exchange", "binance", "--symbols", "btcusdt",
        "--data-types", "trade", "--files", str(SAMPLE), "--speed", speed,
        "--endpoint", f"tcp://127.0.0.1:{port}", "--journal-dir", str(journal),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _processor(config: Path, stats: Path, log: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "market_data_tick_handler.main", "--config", str(config),
        "--stats-json", str(stats),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "a"))


def _rows(con, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_twenty_sigkills_of_the_processor_lose_and_double_no_candle(tmp_path):
    kills, rng = 20, random.Random(16)
    server = RedisServer(appendonly=True).start()
    journal, port = tmp_path / "journal", free_port()
    config = tmp_path / "streaming.yaml"
    store = tmp_path / "warehouse"
    config.write_text(CONFIG.format(port=port, journal=journal, redis_url=server.url, store=store))
    stats, log = tmp_path / "stats.json", tmp_path / "processor.log"
    ingester = _ingester(port, journal, speed="3")  # the 3.5 minutes of the sample in 70 s
    try:
        for _ in range(kills):
            proc = _processor(config, stats, log)
            time.sleep(rng.uniform(1.0, 4.0))  # starting takes ~1.5 s: some die starting, some mid-run
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        last = _processor(config, stats, log)
        assert last.wait(timeout=180) == 0, log.read_text()[-4000:]
        assert ingester.wait(timeout=30) == 0, ingester.stderr.read()[-3000:]
        text = log.read_text()
        # a processor killed before its sinks had written what came before its first checkpoint leaves
        # none old enough: the next one replays the session from its start (as correct, only slower)
        assert text.count("restarting from the checkpoint") >= kills // 4, text[-4000:]
        final = json.loads(stats.read_text())
        assert final["ticks_by_type"]["trade"] == SAMPLE_TRADES
        bad = [line for line in final["ledger"] if not line["ok"]]
        assert not bad, bad
        raw = read_trades(SAMPLE)
        con = connect(store)
        for tf in TIMEFRAMES:
            reference = expected_candles(raw, tf)
            got = stream_candles(server.url, tf)
            starts = [c["timestamp_in"] for c in got]
            assert len(starts) == len(set(starts)), f"{tf}: a candle twice in its stream"
            assert_candles_match(got, reference, f"after {kills} SIGKILLs, {tf}")
            rows = _rows(con, f"SELECT * FROM {DATASET}.candles_{tf}_dedup ORDER BY timestamp_in")
            times = ("timestamp_in", "first_trade_time", "last_trade_time")
            rows = [{**r, **{k: micros(r[k]) for k in times}} for r in rows]
            assert_candles_match(rows, reference, f"table after {kills} SIGKILLs, {tf}")
        trades = _rows(con, f"SELECT * FROM {DATASET}.ticks_trades_dedup")
        expected = sorted(
            (t.ts_us, t.price, t.qty, "sell" if t.taker_sells else "buy", str(t.trade_id)) for t in raw
        )
        assert (
            sorted((micros(r["timestamp"]), r["price"], r["amount"], r["side"], r["id"]) for r in trades)
            == expected
        )
    finally:
        if ingester.poll() is None:
            ingester.kill()
        server.stop()


JOURNAL = """
ingest:
  journal:
    enabled: true
    dir: {journal}
    checkpoint_interval_s: 0.2
"""


def _live_processor(config: Path, stats: Path, env: dict[str, str]) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "market_data_tick_handler.main", "--mode", "streaming-candles-serve",
        "--config", str(config), "--source", "tardis-realtime", "--exchange", "binance",
        "--symbols", "btcusdt", "--stats-json", str(stats),
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def _child_pids(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_a_killed_processor_takes_its_ingester_along_and_the_next_replays_the_journal_then_gaps(tmp_path):
    """Live mode against a stand-in exchange (support/replay_server.mjs at 5x), the ingester spawned by
    the processor and journaling: the processor is killed with SIGKILL; its ingester stops with it; the
    next processor carries on from its checkpoint, replays the journal up to where that ingester got,
    records the time until its own new ingester's first message as a ``processor_restart`` gap, and
    publishes no candle twice."""
    server = subprocess.Popen(
        ["node", str(Path(__file__).parent / "support" / "replay_server.mjs"), "binance", "5", str(SAMPLE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    redis_server = RedisServer(appendonly=True).start()
    journal, config, stats = tmp_path / "journal", tmp_path / "streaming.yaml", tmp_path / "stats.json"
    config.write_text(LIVE_CONFIG + JOURNAL.format(journal=journal))
    try:
        url = json.loads(server.stdout.readline())["url"]
        env = {**os.environ, "WSS_URL_BINANCE": url, "REDIS_URL": redis_server.url}
        first = _live_processor(config, stats, env)
        deadline = time.monotonic() + 20
        while not _child_pids(first.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        (ingester,) = _child_pids(first.pid)
        time.sleep(8)
        first.send_signal(signal.SIGKILL)
        first.wait()
        deadline = time.monotonic() + 5
        while Path(f"/proc/{ingester}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{ingester}").exists(), "the ingester outlived its processor"
        journaled = JournalReader(journal).last_jseq()
        second = _live_processor(config, stats, env)
        time.sleep(8)
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=60)
    finally:
        server.kill()
        server.wait()
    try:
        assert second.returncode == 0, err[-3000:]
        assert "restarting from the checkpoint" in err, err[-3000:]
        final = json.loads(stats.read_text())
        assert final["journal"]["restored_from"] < journaled <= final["journal"]["position"]
        assert final["journal"]["frames_replayed"] == journaled - final["journal"]["restored_from"]
        assert final["counts"]["processor_restarts"] == 1
        assert final["gaps"]["processor_restart"] == 1  # BTCUSDT: from its last journaled trade to the next
        for tf in TIMEFRAMES:
            starts = [c["timestamp_in"] for c in stream_candles(redis_server.url, tf)]
            assert len(starts) == len(set(starts)), f"{tf}: a candle twice in its stream"
        assert any(c["has_gap"] for c in stream_candles(redis_server.url, "15s"))
    finally:
        redis_server.stop()


def test_a_replay_whose_processor_was_killed_is_replayed_from_the_journal_then_ends_saying_what_to_do(
    tmp_path,
):
    """A replay's ingester, started by the processor, stops with it: a new one would read the files from
    their start. The next processor carries on from its checkpoint up to where the journal ends, then
    exits 1 saying so, with nothing in the streams twice."""
    server = RedisServer(appendonly=True).start()
    journal, config, stats = tmp_path / "journal", tmp_path / "streaming.yaml", tmp_path / "stats.json"
    config.write_text(JOURNAL.format(journal=journal))
    cmd = [
        sys.executable, "-m", "market_data_tick_handler.main", "--mode", "streaming-candles-serve",
        "--config", str(config), "--source", "replay", "--files", str(SAMPLE), "--exchange", "binance",
        "--symbols", "btcusdt", "--speed", "10", "--redis-url", server.url, "--stats-json", str(stats),
    ]  # fmt: skip
    try:
        first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(8)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        journaled = JournalReader(journal).last_jseq()  # its ingester's last frames too (no new one started)
        assert second.returncode == 1, second.stderr[-3000:]
        assert "restarting from the checkpoint" in second.stderr
        assert "a new ingester would replay the files from their start" in second.stderr
        assert json.loads(stats.read_text())["journal"]["position"] == journaled
        for tf in TIMEFRAMES:
            starts = [c["timestamp_in"] for c in stream_candles(server.url, tf)]
            assert len(starts) == len(set(starts)), f"{tf}: a candle twice in its stream"
    finally:
        server.stop()
