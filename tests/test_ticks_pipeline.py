"""The tick tables as an analyst reads them (issue 16 items 1 and 2): the whole pipeline (Node ingester,
tardis-dev, ZeroMQ, processor) replays real Binance trades in ``--mode streaming-ticks-bigquery`` into a
real BigQuery endpoint (bqemulator), read back with the official client. The expected rows are read from
the raw frames by support/binance_reference.py, with none of the project's code."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from market_data_tick_handler.query import connect
from support.bigquery import client, micros, query, table
from support.binance_reference import (
    BINANCE_WS,
    assert_candles_match,
    expected_candles,
    read_trades,
    recorded_local_us,
)
from support.pipeline import read_stats, replay_command

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"


def test_a_replay_writes_every_trade_once_to_ticks_trades_partitioned_on_market_time(
    bigquery_emulator, tmp_path
):
    dataset = f"ticks_{uuid.uuid4().hex[:10]}"
    config = f"persist:\n  bigquery:\n    dataset_historical: {dataset}\n    batch_size: 1000\n"
    args = (
        "--bigquery-emulator",
        bigquery_emulator.cli_value,
        "--bigquery-project",
        bigquery_emulator.project,
    )
    cmd = replay_command([SAMPLE], "binance", "btcusdt", None, tmp_path, config,
                         mode="streaming-ticks-bigquery", extra_args=args)  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    stats = read_stats(tmp_path)

    raw = read_trades(SAMPLE)
    expected = sorted(
        (t.ts_us, t.price, t.qty, "sell" if t.taker_sells else "buy", str(t.trade_id)) for t in raw
    )
    assert len(expected) == 8020
    bq = client(bigquery_emulator)
    rows = query(bq, f"SELECT * FROM {dataset}.ticks_trades")
    got = sorted((micros(r["timestamp"]), r["price"], r["amount"], r["side"], r["id"]) for r in rows)
    print(f"ticks_trades: {len(rows)} rows, {len(expected)} raw trades")
    assert got == expected  # every trade once, with its exchange time, price, amount and taker side
    assert {(r["exchange"], r["symbol"], r["exchange_symbol"]) for r in rows} == {
        ("binance", "BTC-USDT", "BTCUSDT")
    }
    recorded = recorded_local_us(SAMPLE)
    for r in rows:  # a replay at speed max stamps the recorded receive time; handed on during the run
        assert micros(r["local_timestamp"]) == recorded[r["id"]] < micros(r["timestamp_out"])

    ticks = stats["ticks"]
    assert ticks["rows_written"] == 8020 and ticks["rows_lost"] == ticks["write_errors"] == 0
    ledger = stats["ledger"]
    (line,) = [e for e in ledger if e["what"] == "ticks to bigquery"]
    print("ledger:", line)
    assert line["ok"] and line["in"] == 8020 and line["parts"]["written"] == 8020, line
    assert all(e["ok"] for e in ledger), ledger

    # a replay goes to the historical dataset: DAY partitions on the market time, kept, clustered
    meta = table(bq, f"{bigquery_emulator.project}.{dataset}.ticks_trades")
    tp = meta.time_partitioning
    print("partitioning:", tp.type_, tp.field, tp.expiration_ms, "clustering:", meta.clustering_fields)
    assert (tp.type_, tp.field, tp.expiration_ms) == ("DAY", "timestamp", None)
    assert meta.clustering_fields == ["exchange", "symbol"]
    # the sample crosses midnight: its trades fall into two day partitions of their own time
    days = query(bq, f"SELECT DATE(timestamp) AS day, COUNT(*) AS n FROM {dataset}.ticks_trades"
                     " GROUP BY day ORDER BY day")  # fmt: skip
    print("days:", days)
    assert [str(d["day"]) for d in days] == ["2024-08-08", "2024-08-09"]
    assert sum(d["n"] for d in days) == 8020


def test_the_seeds_ticks_command_runs_for_its_duration_then_stops_with_every_row_written(tmp_path):
    """Walkthrough 8's command, ``--duration`` cut from an hour to 4 s, on a replay of a recording at its
    own pace (2x): BTC-USDT and ETH-USDT, trades, liquidations and book snapshots, into the local store
    (no project configured). Binance has no liquidations, and the recording no depth snapshot of ETHUSDT,
    so no book snapshots either: both said at start. It stops after the duration, as SIGTERM does, with
    every trade it received written, and those rows are the recording's first trades."""
    env = {k: v for k, v in os.environ.items() if k not in ("GCP_PROJECT_ID", "BIGQUERY_EMULATOR")}
    day = BINANCE_WS / "spot_btcusdt_20240808.gz"
    cmd = [
        sys.executable, "-m", "market_data_tick_handler.main", "--mode", "streaming-ticks-bigquery",
        "--symbols", "BTC-USDT,ETH-USDT", "--data-types", "trades,liquidations,book_snapshots",
        "--duration", "4",
        "--source", "replay", "--files", str(day), "--speed", "2",
        "--stats-json", str(tmp_path / "stats.json"),
    ]  # fmt: skip
    started = time.monotonic()
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    assert "--duration 4 s reached: stopping" in run.stderr
    assert "liquidations (trade_transformation) not available for binance" in run.stderr
    assert "book_snapshots not available for binance" in run.stderr
    assert 4 <= elapsed < 30
    stats = read_stats(tmp_path)
    received = stats["ticks_by_type"]["trade"]
    assert received > 0 and stats["ticks"]["rows_written"] == received
    assert all(line["ok"] for line in stats["ledger"]), stats["ledger"]
    con = connect(tmp_path / "data" / "warehouse")
    rows = con.execute("SELECT id FROM market_data_streaming.ticks_trades ORDER BY id").fetchall()
    first = sorted(read_trades(day), key=lambda t: t.trade_id)[:received]
    assert [int(r[0]) for r in rows] == [t.trade_id for t in first]


def test_the_same_replay_twice_into_bigquerys_historical_dataset_is_one_row_per_key_in_the_views(
    bigquery_emulator, tmp_path
):
    """Persist mode and the tick sink, the sample replayed twice into one historical dataset of a real
    BigQuery endpoint (bqemulator): the tables hold every row twice, their ``_dedup`` views once, equal to
    the trades of the raw frames and the candles worked out from them."""
    dataset = f"twice_{uuid.uuid4().hex[:10]}"
    config = f"persist:\n  bigquery:\n    dataset_historical: {dataset}\n    batch_size: 5000\n"
    args = ("--bigquery-emulator", bigquery_emulator.cli_value)
    args += ("--bigquery-project", bigquery_emulator.project)
    for run in ("first", "second"):
        where = tmp_path / run
        where.mkdir()
        modes = "streaming-candles-bigquery,streaming-ticks-bigquery"
        cmd = replay_command([SAMPLE], "binance", "btcusdt", None, where, config, mode=modes, extra_args=args)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    bq = client(bigquery_emulator)
    raw = read_trades(SAMPLE)
    count = f"SELECT COUNT(*) AS n FROM {dataset}"
    assert query(bq, f"{count}.ticks_trades")[0]["n"] == 2 * 8020
    rows = query(bq, f"SELECT * FROM {dataset}.ticks_trades_dedup")
    got = sorted((micros(r["timestamp"]), r["price"], r["amount"], r["side"], r["id"]) for r in rows)
    side = {True: "sell", False: "buy"}
    assert got == sorted((t.ts_us, t.price, t.qty, side[t.taker_sells], str(t.trade_id)) for t in raw)
    for tf in ("15s", "1m", "24h"):
        reference = expected_candles(raw, tf)
        assert query(bq, f"{count}.candles_{tf}")[0]["n"] == 2 * len(reference), tf
        rows = query(bq, f"SELECT * FROM {dataset}.candles_{tf}_dedup ORDER BY timestamp_in")
        times = ("timestamp_in", "first_trade_time", "last_trade_time")
        rows = [{**r, **{k: micros(r[k]) for k in times}} for r in rows]
        assert_candles_match(rows, reference, f"twice into BigQuery, {tf}")
