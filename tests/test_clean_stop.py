"""Clean stops (issue 18 item 5) on the real processes: SIGTERM or SIGINT mid-replay stops taking frames
(the ingester ends its session), closes the open candles as partial, publishes and writes everything,
flushes and exits 0 within ``shutdown.timeout_s`` (``--stop-timeout``); what cannot be written by then
(a frozen Redis) is counted, logged and exits 1; a second signal abandons the stop at once (130/143).

Expected candles come from the raw trades (support/binance_reference.py), up to the last trade the
processor's ledger says entered; which of them are partial is worked out from the candle definition:
a bucket is partial when it starts before the first trade seen or ends after the last one (the clock).
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from market_data_tick_handler.devtools.local_redis import RedisServer
from market_data_tick_handler.query import connect
from support.binance_reference import TIMEFRAMES_US, assert_candles_match, expected_candles, read_trades
from support.pipeline import read_stats, replay_command, stream_candles

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
SAMPLE_TRADES = 8_020
DATASET = "market_data_streaming"  # a replay writes to the historical dataset
TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")
STOP_TIMEOUT_S = 20


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _wait_for_line(proc: subprocess.Popen, needle: str, timeout: float, seen: list[str]) -> None:
    """Reads stderr lines until one contains ``needle``."""
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"no {needle!r} within {timeout} s:\n{''.join(seen[-30:])}")


def _stop(proc: subprocess.Popen, sig: int, seen: list[str]) -> tuple[float, str]:
    """Sends ``sig``; returns how long the process took to exit after it, and all its stderr."""
    sent = time.monotonic()
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=STOP_TIMEOUT_S + 30)
    return time.monotonic() - sent, "".join(seen) + rest


def _partial(start: int, size: int, first_us: int, last_us: int) -> bool:
    return start < first_us or start + size > last_us


def test_sigterm_mid_replay_writes_every_closed_candle_once_and_the_open_ones_as_partial(redis_url, tmp_path):
    """Serve (a private redis-server) and persist (the local store) at once, paced at 5x; SIGTERM after
    the first candles closed. ~15 s."""
    store = tmp_path / "warehouse"
    config = f"persist:\n  local:\n    path: {store}\n"
    cmd = replay_command(
        [SAMPLE], "binance", "btcusdt", redis_url, tmp_path, config, speed="5",
        mode="streaming-candles-serve,streaming-candles-bigquery",
        extra_args=("--stop-timeout", str(STOP_TIMEOUT_S), "--no-metrics"),
    )  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    seen: list[str] = []
    try:
        _wait_for_line(proc, "starting ingester", 30, seen)
        time.sleep(6)  # ~30 s of market time at 5x: some 15 s candles closed, the minute still open
        took, err = _stop(proc, signal.SIGTERM, seen)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert took <= STOP_TIMEOUT_S, took
    assert "SIGTERM: stopping within 20 s" in err
    assert "session ended (source_closed)" in err, err[-3000:]
    stats = read_stats(tmp_path)
    assert all(e["ok"] for e in stats["ledger"]), stats["ledger"]
    n = stats["ticks_by_type"]["trade"]
    assert 0 < n < SAMPLE_TRADES  # it was the signal that ended it
    raw = read_trades(SAMPLE)[:n]
    first, last = raw[0].ts_us, max(t.ts_us for t in raw)
    con = connect(store)
    for tf in TIMEFRAMES:
        size = TIMEFRAMES_US[tf]
        reference = expected_candles(raw, tf)
        partial = [_partial(e["timestamp_in"], size, first, last) for e in reference]
        assert partial[-1], f"{tf}: the candle open at the stop is partial"
        published = stream_candles(redis_url, tf)
        assert_candles_match(published, reference, f"redis {tf}")  # each bucket once, in order
        assert [c["is_partial"] for c in published] == partial, tf
        cursor = con.execute(f"SELECT * FROM {DATASET}.candles_{tf} ORDER BY timestamp_in")  # not the view
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        times = ("timestamp_in", "first_trade_time", "last_trade_time")
        stored = [{**r, **{k: _us(r[k]) for k in times}} for r in rows]
        assert_candles_match(stored, reference, f"local store {tf}")  # each once: no duplicate rows
        assert [r["is_partial"] for r in stored] == partial, tf
    assert stats["serve"]["candles_lost"] == 0 and stats["persist"]["rows_lost"] == 0


def test_a_stop_that_cannot_publish_by_the_deadline_counts_the_loss_and_exits_1(tmp_path):
    """Redis frozen (SIGSTOP) before the stop: the serve sink's close may only wait for the time left of
    ``--stop-timeout 4`` (not its own serve.close_timeout_s, 10 s): the process exits within the 4 s,
    exit code 1, an ERROR naming what was not written, and the ledger's lost equals it. ~15 s."""
    server = RedisServer().start()
    cmd = replay_command(
        [SAMPLE], "binance", "btcusdt", server.url, tmp_path, speed="20",
        extra_args=("--stop-timeout", "4", "--no-metrics"),
    )  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    seen: list[str] = []
    try:
        _wait_for_line(proc, "starting ingester", 30, seen)
        time.sleep(3)
        server.proc.send_signal(signal.SIGSTOP)
        time.sleep(1)
        took, err = _stop(proc, signal.SIGTERM, seen)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.proc.send_signal(signal.SIGCONT)
        server.stop()
    assert proc.returncode == 1, err[-3000:]
    assert took <= 4 + 1.5, took  # the deadline, and the grace a write in flight gets
    stats = read_stats(tmp_path)
    lost = stats["serve"]["candles_lost"]
    assert lost > 0
    assert f"stop: redis could not write everything by the deadline: candles_lost {lost}" in err, err[-3000:]
    entry = next(e for e in stats["ledger"] if e["what"] == "candles to redis")
    assert entry["parts"]["lost"] == lost and entry["ok"]


def test_a_second_sigint_abandons_the_stop_at_once_with_130(tmp_path):
    """SIGINT with Redis frozen starts a stop that would wait for it; a second SIGINT exits at once with
    130 (128 + SIGINT), naming what is abandoned. ~10 s."""
    server = RedisServer().start()
    cmd = replay_command([SAMPLE], "binance", "btcusdt", server.url, tmp_path, speed="20",
                         extra_args=("--stop-timeout", "60", "--no-metrics"))  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    seen: list[str] = []
    try:
        _wait_for_line(proc, "starting ingester", 30, seen)
        time.sleep(3)
        server.proc.send_signal(signal.SIGSTOP)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        _wait_for_line(proc, "SIGINT: stopping within 60 s", 10, seen)
        time.sleep(1)
        took, err = _stop(proc, signal.SIGINT, seen)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.proc.send_signal(signal.SIGCONT)
        server.stop()
    assert proc.returncode == 130, err[-3000:]
    assert took < 10, took  # not the 60 s of the stop, nor serve.close_timeout_s
    assert "SIGINT again during the stop: exiting now; abandoned: serve: candles to redis" in err, err[-3000:]
