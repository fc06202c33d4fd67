"""BigQuery unreachable (issue 16 items 5 and 6), on the real processes: a paced replay of real Binance
trades in persist and tick modes into a private bqemulator that is stopped (SIGSTOP: its requests hang
and time out, as a frozen server's do) for 30 s in the middle, then resumed; and a processor stopped
(SIGTERM) while the emulator is stopped, whose rows go to the spill and are written first by the next
run. Every candle and tick row of the tables is compared with what this test works out from the raw
frames (support/binance_reference.py), and every row is there exactly once."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

from support.bigquery import client, micros, query
from support.binance_reference import (
    BINANCE_WS,
    RawTrade,
    assert_candles_match,
    expected_candles,
    read_trades,
)
from support.pipeline import read_stats, replay_command

DAY1, DAY2 = BINANCE_WS / "spot_btcusdt_20240808.gz", BINANCE_WS / "spot_btcusdt_20240809.gz"
TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")
MODES = "streaming-candles-bigquery,streaming-ticks-bigquery"
SHOWN = ("rows_written", "write_retries", "duplicate_appends", "backlog_max_rows", "spilled_rows_total",
         "spilled_bytes_total", "rows_lost", "write_errors")  # fmt: skip


def _config(dataset: str, spill_dir: Path) -> str:
    """Small timeouts, so that a stopped emulator is noticed in a second and retried soon; spill_mb 1 (its
    least): the tick rows of the outage do not all fit, the rest go to disk."""
    return f"""
persist:
  spill_mb: 1
  spill_dir: {spill_dir}
  bigquery:
    dataset_historical: {dataset}
    batch_size: 500
    batch_timeout_ms: 1000   # candle rows go every second (not once a minute): into the outage too
    request_timeout_s: 1
    close_timeout_s: 60
data_types:
  book_snapshots:
    enabled: false      # tick rows of trades only (the emulator cannot take repeated records)
"""


def _command(emulator, files: list[Path], tmp_path: Path, config: str, speed: str) -> list[str]:
    args = (
        "--bigquery-emulator",
        emulator.endpoint.cli_value,
        "--bigquery-project",
        emulator.endpoint.project,
    )
    return replay_command(files, "binance", "btcusdt", None, tmp_path, config, speed=speed, mode=MODES,
                          extra_args=args)  # fmt: skip


def _started(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until the processor has started its ingester (frames flow from then on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False)
        if out.stdout.split():
            return
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    raise AssertionError("the processor started no ingester")


def _assert_tables(emulator, dataset: str, trades: list[RawTrade], runs: list[list[RawTrade]]) -> None:
    """Every tick row and every candle row once, equal to the raw trades' (``runs``: the trades of each
    run, whose candles are worked out apart: a run starts its candles at its first trade)."""
    bq = client(emulator.endpoint)
    rows = query(bq, f"SELECT timestamp, price, amount, side, id FROM {dataset}.ticks_trades")
    got = Counter((micros(r["timestamp"]), r["price"], r["amount"], r["side"], r["id"]) for r in rows)
    twice = {k: n for k, n in got.items() if n > 1}
    assert not twice, f"{len(twice)} tick rows more than once, e.g. {list(twice.items())[:3]}"
    expected = sorted(
        (t.ts_us, t.price, t.qty, "sell" if t.taker_sells else "buy", str(t.trade_id)) for t in trades
    )
    assert sorted(got) == expected, f"ticks_trades: {len(got)} rows, {len(expected)} raw trades"
    for tf in TIMEFRAMES:
        rows = query(bq, f"SELECT * FROM {dataset}.candles_{tf} ORDER BY timestamp_in, revision")
        keys = Counter((r["exchange"], r["symbol"], micros(r["timestamp_in"]), r["revision"]) for r in rows)
        assert max(keys.values()) == 1, f"candles_{tf}: a candle more than once: {keys.most_common(3)}"
        want = [c for run in runs for c in expected_candles(run, tf)]
        times = ("timestamp_in", "first_trade_time", "last_trade_time")
        got_rows = [{**r, **{name: micros(r[name]) for name in times}} for r in rows]
        assert_candles_match(got_rows, want, f"candles_{tf}")
    print(f"{dataset}: {len(trades)} tick rows and the candles of {len(runs)} run(s), each once")


def test_the_emulator_stopped_for_30_s_mid_replay_loses_nothing_and_doubles_nothing(
    restartable_bigquery_emulator, tmp_path
):
    emulator = restartable_bigquery_emulator
    dataset = f"outage_{uuid.uuid4().hex[:10]}"
    cmd = _command(emulator, [DAY1, DAY2], tmp_path, _config(dataset, tmp_path / "spill"), speed="15")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _started(proc)
        time.sleep(3)
        emulator.proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        time.sleep(30)
        emulator.proc.send_signal(signal.SIGCONT)
        assert proc.poll() is None, "the replay ended during the outage: slow it down"
        _, err = proc.communicate(timeout=180)
    finally:
        emulator.proc.send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
    print(f"replay ended {time.monotonic() - stopped:.0f} s after the emulator was stopped")
    assert proc.returncode == 0, err[-3000:]
    stats = read_stats(tmp_path)
    assert all(e["ok"] for e in stats["ledger"]), [e for e in stats["ledger"] if not e["ok"]]
    ticks, persist = stats["ticks"], stats["persist"]
    for name, s in (("ticks", ticks), ("persist", persist)):
        print(name, {k: s[k] for k in SHOWN})
    assert ticks["write_retries"] > 0 and persist["write_retries"] > 0
    assert ticks["spilled_rows_total"] > 0  # over spill_mb: to disk, and back
    assert ticks["spilled_rows"] == persist["spilled_rows"] == 0 and ticks["spill_files"] == 0
    for s in (ticks, persist):
        assert s["rows_lost"] == s["write_errors"] == s["rows_refused"] == s["backlog_rows"] == 0
    assert "BigQuery write failed" in err and "spilled to disk" in err
    trades = read_trades(DAY1, DAY2)
    assert ticks["rows_written"] == len(trades)
    _assert_tables(emulator, dataset, trades, [trades])


def test_a_processor_stopped_while_the_emulator_is_stopped_spills_and_the_next_run_writes_it_first(
    restartable_bigquery_emulator, tmp_path
):
    emulator = restartable_bigquery_emulator
    dataset = f"restart_{uuid.uuid4().hex[:10]}"
    spill = tmp_path / "spill"
    config = _config(dataset, spill).replace("close_timeout_s: 60", "close_timeout_s: 1")
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    proc = subprocess.Popen(_command(emulator, [DAY1], first_dir, config, speed="15"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _started(proc)
        time.sleep(5)  # rows written, write streams open
        emulator.proc.send_signal(signal.SIGSTOP)
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        emulator.proc.send_signal(signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    first = read_stats(first_dir)
    assert all(e["ok"] for e in first["ledger"]), [e for e in first["ledger"] if not e["ok"]]
    n = first["ticks_by_type"]["trade"]
    for name in ("ticks", "persist"):
        s = first[name]
        print("first run", name, {k: s[k] for k in (*SHOWN, "spilled_rows", "spilled_at_close_rows")})
        assert s["rows_lost"] == 0 and s["spilled_rows"] > 0 and s["spilled_at_close_rows"] > 0
        assert s["backlog_rows"] == s["spilled_rows"]  # what waits, waits on disk
    assert "the next start writes them first" in err
    assert sum(1 for _ in spill.rglob("*.batch")) > 0

    # the emulator is back; the next run replays the next day (candles of other buckets) and first writes
    # what the first run spilled
    proc = subprocess.run(_command(emulator, [DAY2], second_dir, config, speed="max"),
                          capture_output=True, text=True, timeout=240, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    second = read_stats(second_dir)
    assert all(e["ok"] for e in second["ledger"]), [e for e in second["ledger"] if not e["ok"]]
    for name in ("ticks", "persist"):
        s, spilled = second[name], first[name]["spilled_rows"]
        print("second run", name, {k: s[k] for k in (*SHOWN, "spill_reloaded_rows", "rows_maybe_twice")})
        assert s["spill_reloaded_rows"] == spilled and s["spilled_rows"] == 0 and s["rows_lost"] == 0
    assert "could not write: they are written first" in proc.stderr
    assert sum(1 for _ in spill.rglob("*.batch")) == 0
    day1, day2 = read_trades(DAY1)[:n], read_trades(DAY2)
    assert day1[-1].ts_us // 86_400_000_000 < day2[0].ts_us // 86_400_000_000  # no bucket in common
    _assert_tables(emulator, dataset, day1 + day2, [day1, day2])
