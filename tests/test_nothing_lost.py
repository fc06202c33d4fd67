"""Nothing is lost silently, on the real processes: the README's demo at its own speed, paced and full-speed
replays, a recording with no depth snapshot, a trade dated centuries ahead, a killed ingester, a killed
processor, and a frozen redis-server. Every expected value is worked out here from the raw frames
(support/binance_reference.py), never taken from the pipeline's own output.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from market_data_tick_handler.devtools.local_redis import RedisServer
from support.binance_reference import BINANCE_WS, assert_candles_match, expected_candles, read_trades
from support.pipeline import LIVE_CONFIG, read_stats, replay, replay_command, stream_candles

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
SAMPLE_TRADES = 8_020  # data/sample/README.md; checked against the file below
DAY2 = BINANCE_WS / "spot_btcusdt_20240809.gz"  # depth updates, but no depth snapshot of its own
TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")


def _assert_all_candles(url: str, raw, label: str) -> None:
    for tf in TIMEFRAMES:
        assert_candles_match(stream_candles(url, tf), expected_candles(raw, tf), f"{label} {tf}")


def _ledger_ok(stats: dict) -> None:
    ledger = stats.get("ledger") or []
    assert ledger, "no ledger in the stats"
    bad = [line for line in ledger if not line["ok"]]
    assert not bad, bad


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as fh:
        return fh.readlines()


def _slice(src: Path, dst: Path, seconds: float) -> int:
    """The first ``seconds`` of a recording (by receive time), as a new recording; returns its trades."""
    lines = _lines(src)
    t0 = int(lines[0].split(" ", 1)[0])
    kept = [line for line in lines if int(line.split(" ", 1)[0]) - t0 <= seconds * 1e9]
    with gzip.open(dst, "wt") as fh:
        fh.writelines(kept)
    return sum('@trade"' in line for line in kept)


def test_the_demo_command_at_its_own_speed_counts_every_trade_and_reads_back_every_candle():
    raw = read_trades(SAMPLE)
    assert len(raw) == SAMPLE_TRADES
    expected = {tf: expected_candles(raw, tf) for tf in TIMEFRAMES}
    run = subprocess.run(  # the Makefile's `demo` recipe, transport redis (a private redis-server)
        [
            sys.executable,
            "-m",
            "market_data_tick_handler.demo",
            str(SAMPLE),
            "--speed",
            "20",
            "--transport",
            "redis",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert f"trades              {SAMPLE_TRADES} (bad rows dropped 0, late 0)" in out, out
    total = sum(len(c) for c in expected.values())
    assert f"received            {total} candles back" in out, out
    assert "ledger: every input accounted for\n" in out, out
    assert "MISMATCH" not in out
    # the printed table: one row per candle, as the reference has them (prices printed to the cent)
    rows = re.findall(
        r"^binance\s+BTC-USDT\s+(\S+) (\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)",
        out,
        re.MULTILINE,
    )
    got = sorted((tf, start, int(n), float(close)) for tf, start, _o, _h, _l, close, _v, n in rows)
    want = sorted(
        (tf, _iso(c["timestamp_in"]), c["trade_count"], round(c["close"], 2))
        for tf, candles in expected.items()
        for c in candles
    )
    assert got == want


def _iso(t_us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_us // 1_000_000)) + f".{t_us % 1_000_000:06d}Z"


@pytest.mark.parametrize("speed", ["1", "20", "max"])
def test_a_one_minute_slice_gives_the_same_candles_at_1x_20x_and_max(redis_url, tmp_path, speed):
    """The built-in config asks for book snapshots too, as the demo does: a paced replay of a trades-only
    recording used to lose every frame after tardis-dev's REST snapshot request (issue 14)."""
    sliced = tmp_path / "slice.gz"
    trades = _slice(SAMPLE, sliced, 60)
    raw = read_trades(sliced)
    assert len(raw) == trades > 2000
    run, stats = replay([sliced], "binance", "btcusdt", redis_url, tmp_path, speed=speed)
    assert run.returncode == 0, run.stderr[-3000:]
    assert stats["ticks_by_type"]["trade"] == trades
    assert "book_snapshot not available for binance in this recording" in run.stderr, run.stderr[-3000:]
    # the ingester's start frame says why, and the processor's warning repeats it
    assert (
        "book_snapshots not available for binance: the ingester does not stream book_snapshot for it"
        f" (not in this recording: no depth snapshot of btcusdt in {sliced})"
    ) in run.stderr
    _ledger_ok(stats)
    _assert_all_candles(redis_url, raw, f"speed {speed}")


def test_a_recording_without_its_own_depth_snapshot_yields_every_trade_at_max_speed(redis_url, tmp_path):
    raw = read_trades(DAY2)
    assert len(raw) == 10_147  # shared/data/README.md
    run, stats = replay([DAY2], "binance", "btcusdt", redis_url, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert stats["ticks_by_type"]["trade"] == len(raw)
    _ledger_ok(stats)
    _assert_all_candles(redis_url, raw, "0809 alone")


def test_one_trade_dated_in_the_year_3000_is_dropped_alone(redis_url, tmp_path):
    """Its bucket is ~975 years ahead: the clock must not walk there, and the trades after it are not late."""
    lines = _lines(SAMPLE)
    k = len(lines) // 3
    head, _, payload = lines[k].partition(" ")
    message = json.loads(payload)
    message["data"]["T"] = 32_503_680_000_000  # 3000-01-01 in ms
    lines[k] = f"{head} {json.dumps(message, separators=(',', ':'))}\n"
    bad = tmp_path / "year3000.gz"
    with gzip.open(bad, "wt") as fh:
        fh.writelines(lines)
    raw = [t for t in read_trades(SAMPLE) if t.trade_id != message["data"]["t"]]
    assert len(raw) == SAMPLE_TRADES - 1
    run, stats = replay([bad], "binance", "btcusdt", redis_url, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert stats["counts"]["candles_out"] == sum(len(expected_candles(raw, tf)) for tf in TIMEFRAMES)
    _ledger_ok(stats)
    _assert_all_candles(redis_url, raw, "without the year-3000 trade")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(p) for p in out.split()]


def _wait_for_child(proc: subprocess.Popen, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = _children(proc.pid)
        if kids:
            return kids[0]
        time.sleep(0.1)
    raise AssertionError("the processor started no ingester")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_a_killed_ingester_ends_the_replay_with_an_error_naming_the_loss(redis_url, tmp_path):
    cmd = replay_command([SAMPLE], "binance", "btcusdt", redis_url, tmp_path, speed="2")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ingester = _wait_for_child(proc)
    time.sleep(4)  # some trades through
    os.kill(ingester, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-3000:]
    assert re.search(
        r"ingester \(session \w+\) exited with code -?\d+ without ending its session, after \d+ frames", err
    ), err[-3000:]
    assert "the replay is incomplete" in err
    stats = read_stats(tmp_path)
    assert 0 < stats["ticks_by_type"]["trade"] < SAMPLE_TRADES
    assert stats["gaps"]["ingester_exit"] == 1  # BTCUSDT: the rest of the session is a gap


def test_a_stopped_replay_ends_its_session_and_accounts_for_every_trade(redis_url, tmp_path):
    """SIGTERM mid-replay: the processor asks its ingester to end the session, reads up to its end frame
    (which closes the open candles as partial) and exits 0 with a ledger that adds up; the candles are
    those of the trades that got through, the first N of the recording."""
    cmd = replay_command([SAMPLE], "binance", "btcusdt", redis_url, tmp_path, speed="2")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_child(proc)
    time.sleep(5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "session ended (source_closed)" in err, err[-3000:]
    stats = read_stats(tmp_path)
    _ledger_ok(stats)
    n = stats["ticks_by_type"]["trade"]
    assert 0 < n < SAMPLE_TRADES
    _assert_all_candles(redis_url, read_trades(SAMPLE)[:n], f"the first {n} trades")


def test_a_run_with_a_duration_stops_like_sigterm_and_accounts_for_every_trade(redis_url, tmp_path):
    """``--duration 4`` on a paced replay (the seeds' ``--duration``): the run stops by itself after 4 s as a
    SIGTERM stops it, exits 0 with a ledger that adds up, and its candles are those of the first N trades."""
    cmd = replay_command([SAMPLE], "binance", "btcusdt", redis_url, tmp_path, speed="2")
    started = time.monotonic()
    run = subprocess.run([*cmd, "--duration", "4"], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    assert "--duration 4 s reached: stopping" in run.stderr, run.stderr[-3000:]
    assert "session ended (source_closed)" in run.stderr, run.stderr[-3000:]
    assert 4 < elapsed < 40, elapsed  # the sample takes ~100 s at speed 2: it was the duration that ended it
    stats = read_stats(tmp_path)
    _ledger_ok(stats)
    n = stats["ticks_by_type"]["trade"]
    assert 0 < n < SAMPLE_TRADES
    _assert_all_candles(redis_url, read_trades(SAMPLE)[:n], f"the first {n} trades")


def test_a_killed_processor_takes_its_ingester_with_it(redis_url, tmp_path):
    cmd = replay_command([SAMPLE], "binance", "btcusdt", redis_url, tmp_path, speed="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ingester = _wait_for_child(proc)
    time.sleep(2)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while _alive(ingester) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = _alive(ingester)
    if alive:
        os.kill(ingester, signal.SIGKILL)
    assert not alive, "the ingester outlived its processor by more than 5 s"


def test_a_frozen_redis_delays_the_candles_but_loses_none(tmp_path):
    raw = read_trades(SAMPLE)
    server = RedisServer().start()
    try:
        cmd = replay_command([SAMPLE], "binance", "btcusdt", server.url, tmp_path, speed="20")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(4)
        server.proc.send_signal(signal.SIGSTOP)
        time.sleep(5)
        server.proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        assert "no reply within serve.reply_timeout_ms" in err, err[-3000:]
        stats = read_stats(tmp_path)
        assert stats["serve"]["publish_retries"] >= 1
        assert stats["ticks_by_type"]["trade"] == SAMPLE_TRADES
        _ledger_ok(stats)
        _assert_all_candles(server.url, raw, "frozen redis")
    finally:
        if server.proc is not None:
            server.proc.send_signal(signal.SIGCONT)
        server.stop()


def test_a_live_ingester_that_dies_is_a_gap_and_is_started_again(redis_url, tmp_path):
    """Live mode against a stand-in exchange (support/replay_server.mjs plays the sample over a local
    WebSocket at 5x): the ingester is killed mid-stream; the processor records a gap, starts a new
    ingester after its back-off, takes only the new session's frames, and the trades keep coming."""
    server = subprocess.Popen(
        ["node", str(Path(__file__).parent / "support" / "replay_server.mjs"), "binance", "5", str(SAMPLE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = json.loads(server.stdout.readline())["url"]
        (tmp_path / "streaming.yaml").write_text(LIVE_CONFIG)
        cmd = [
            sys.executable, "-m", "market_data_tick_handler.main", "--mode", "streaming-candles-serve",
            "--config", str(tmp_path / "streaming.yaml"), "--source", "tardis-realtime",
            "--exchange", "binance", "--symbols", "btcusdt", "--stats-json", str(tmp_path / "stats.json"),
        ]  # fmt: skip
        env = {**os.environ, "WSS_URL_BINANCE": url, "REDIS_URL": redis_url}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        first = _wait_for_child(proc)
        time.sleep(6)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 20
        second = None
        while time.monotonic() < deadline and second is None:
            second = next((pid for pid in _children(proc.pid) if pid != first), None)
            time.sleep(0.2)
        assert second is not None, "no new ingester within 20 s"
        time.sleep(8)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        server.kill()
        server.wait()
    assert proc.returncode == 0, err[-3000:]
    assert "restarting the ingester in 1 s" in err, err[-3000:]
    stats = read_stats(tmp_path)
    assert stats["counts"]["ingester_exits"] == 1
    assert stats["gaps"]["ingester_exit"] == 1  # BTCUSDT, from the last trade before the kill to the next
    died = re.search(r"without ending its session, after \d+ frames \(.*?trade (\d+)", err)
    assert died, err[-3000:]
    assert stats["ticks_by_type"]["trade"] > int(died.group(1)) > 0  # the new session's trades came in
    gapped = [c for c in stream_candles(redis_url, "15s") if c["has_gap"]]
    assert gapped, "no candle flagged has_gap around the dead ingester"
