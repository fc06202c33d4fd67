"""``--mode live-instruments-sync`` as a process (issue 17 item 4): the definitions of ccxt's market files
(``--markets-dir``, no network) in a real redis-server, a hash per exchange, and, with persist mode, in the
local store's ``instruments`` table; it starts no ingester, and stops cleanly at ``--duration`` and on
SIGTERM.

The expected values are ccxt's market files read here with nothing of the project's code
(shared/notes/ccxt.md): binance BTC/USDT tick 0.01, min amount 1e-05; deribit
BTC/USD:BTC-240126-39000-C strike 39000, call, expiry 2024-01-26 08:00 UTC."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from market_data_tick_handler.streaming_service.local_store.views import connect

SHARED = Path(__file__).resolve().parents[2] / "shared"
MARKETS = SHARED / "data" / "ccxt-markets"
DERIVED = MARKETS / "derived"
pytestmark = pytest.mark.skipif(not DERIVED.is_dir(), reason="shared/data/ccxt-markets is not here")


def _market(file: str, ccxt_symbol: str) -> dict:
    """A market of a ccxt market file, as ccxt wrote it."""
    markets = json.loads((DERIVED / file).read_text())
    return markets[ccxt_symbol]


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "streaming.yaml"
    config.write_text(
        "modes: [persist]\n"
        f"persist: {{local: {{path: {tmp_path / 'warehouse'}}}, spill_dir: {tmp_path / 'spill'}}}\n"
    )
    return config


def _command(tmp_path: Path, redis_url: str, *more: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "market_data_tick_handler.main",
        "--mode",
        "live-instruments-sync",
        "--exchanges",
        "binance,deribit",
        "--refresh-interval",
        "300",
        "--markets-dir",
        str(MARKETS),
        "--config",
        str(_config(tmp_path)),
        "--redis-url",
        redis_url,
        "--stats-json",
        str(tmp_path / "stats.json"),
        *more,
    ]


def _markets_copy(tmp_path: Path) -> Path:
    markets = tmp_path / "markets"
    (markets / "derived").mkdir(parents=True)
    for name in ("binance.markets.ccxt-4.5.90.json", "deribit.markets.ccxt-4.5.90.json"):
        (markets / "derived" / name).write_text((DERIVED / name).read_text())
    return markets


def _rows(tmp_path: Path, view: str) -> list[tuple]:
    con = connect(tmp_path / "warehouse")
    return con.sql(
        "SELECT exchange, symbol, change, tick_size, min_size, strike, option_type, expiry"
        f" FROM market_data_streaming_live.{view} ORDER BY exchange, symbol"
    ).fetchall()


def _check_redis(client: redis.Redis) -> tuple[dict, dict]:
    binance = {k.decode(): json.loads(v) for k, v in client.hgetall("instruments:binance").items()}
    deribit = {k.decode(): json.loads(v) for k, v in client.hgetall("instruments:deribit").items()}
    spot = _market("binance.markets.ccxt-4.5.90.json", "BTC/USDT")
    option = _market("deribit.markets.ccxt-4.5.90.json", "BTC/USD:BTC-240126-39000-C")
    assert spot["precision"]["price"] == 0.01 and spot["limits"]["amount"]["min"] == 1e-05  # the file
    btc = binance["BTC-USDT"]
    assert (btc["ccxt_symbol"], btc["exchange_symbol"], btc["type"]) == ("BTC/USDT", "BTCUSDT", "spot")
    assert (btc["tick_size"], btc["min_size"]) == (0.01, 1e-05)
    call = deribit["BTC-USD-240126-39000-C"]
    assert (call["strike"], call["option_type"], call["type"]) == (39000, "call", "option")
    assert call["expiry"].startswith("2024-01-26T08:00:00")
    assert call["exchange_symbol"] == option["id"] == "BTC-26JAN24-39000-C"
    return binance, deribit


def _refreshing_sync(tmp_path, url: str, client, timeout: float) -> tuple[Path, subprocess.Popen]:
    """The sync as a process on a copy of the market files it reloads every second; returns once its
    hashes are written (the copy, to change, and the process)."""
    markets = _markets_copy(tmp_path)
    cmd = _command(tmp_path, url)
    cmd[cmd.index("--markets-dir") + 1] = str(markets)
    cmd[cmd.index("--refresh-interval") + 1] = "1"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not client.exists("instruments:deribit") and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    return markets, proc


def test_alone_writes_the_hashes_and_the_table_then_stops_at_its_duration(tmp_path, redis_url):
    client = redis.Redis.from_url(redis_url)
    client.hset("instruments:binance", "GONE-USDT", "{}")  # an instrument an earlier run wrote
    started = time.monotonic()
    run = subprocess.run(
        _command(tmp_path, redis_url, "--duration", "2"), capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert "processor listening" not in run.stderr  # no ZeroMQ socket, no ingester
    assert "--duration 2 s reached" in run.stderr
    binance, deribit = _check_redis(client)
    assert "GONE-USDT" not in binance  # the hash was replaced whole
    stats = json.loads((tmp_path / "stats.json").read_text())["instruments"]
    assert stats["instruments"] == {"binance": len(binance), "deribit": len(deribit)}
    assert "ingester" not in stats
    rows = _rows(tmp_path, "instruments")
    assert [(r[0], r[1]) for r in rows] == sorted(
        [("binance", s) for s in binance] + [("deribit", s) for s in deribit]
    )
    by_symbol = {(r[0], r[1]): r for r in rows}
    assert by_symbol["binance", "BTC-USDT"][2:5] == ("loaded", 0.01, 1e-05)
    call = by_symbol["deribit", "BTC-USD-240126-39000-C"]
    assert call[5:] == (39000.0, "call", datetime(2024, 1, 26, 8, tzinfo=UTC))
    assert "instrument rows to local store" in run.stdout


def test_sigterm_stops_it_cleanly_and_a_second_run_adds_no_version(tmp_path, redis_url):
    client = redis.Redis.from_url(redis_url)
    first = subprocess.run(
        _command(tmp_path, redis_url, "--duration", "1"), capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr[-3000:]
    client.delete("instruments:binance", "instruments:deribit")
    proc = subprocess.Popen(
        _command(tmp_path, redis_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not client.exists("instruments:deribit") and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "stopping: the instruments sync ends" in err
    binance, deribit = _check_redis(client)
    every = _rows(tmp_path, "instruments")
    once = _rows(tmp_path, "instruments_dedup")
    assert len(every) == 2 * len(once) == 2 * (len(binance) + len(deribit))  # the same versions twice
    assert "summary" in out


def test_it_refuses_to_run_when_live_instruments_is_off_or_given_what_to_stream(tmp_path, redis_url):
    config = tmp_path / "off.yaml"
    config.write_text("live_instruments: {enabled: false, exchanges: []}\n")
    run = subprocess.run(
        [sys.executable, "-m", "market_data_tick_handler.main", "--mode", "live-instruments-sync",
         "--config", str(config), "--redis-url", redis_url],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    assert run.returncode == 2
    assert "live_instruments.enabled is false" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "market_data_tick_handler.main", "--mode", "live-instruments-sync",
         "--symbols", "BTC-USDT", "--redis-url", redis_url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "--symbols: live-instruments-sync alone streams nothing" in run.stderr


def test_beside_the_candle_modes_exchanges_names_both_the_stream_and_the_instruments(tmp_path, redis_url):
    sample = Path(__file__).resolve().parents[1] / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
    cmd = [
        sys.executable, "-m", "market_data_tick_handler.main",
        "--mode", "streaming-candles-serve,live-instruments-sync",
        "--exchanges", "binance", "--symbols", "binance:btcusdt", "--files", f"binance:{sample}",
        "--speed", "max", "--markets-dir", str(MARKETS), "--redis-url", redis_url,
        "--stats-json", str(tmp_path / "stats.json"),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert "processor listening" in run.stderr  # the ingester streamed the recording
    assert sum(stats["candles_by_timeframe"]["binance"].values()) > 0
    assert all(e["ok"] for e in stats["ledger"]), stats["ledger"]
    assert set(stats["instruments"]["instruments"]) == {"binance"}  # not live_instruments' three
    client = redis.Redis.from_url(redis_url)
    assert client.exists("instruments:binance") and not client.exists("instruments:deribit")
    btc = json.loads(client.hget("instruments:binance", "BTC-USDT"))
    assert (btc["tick_size"], btc["min_size"]) == (0.01, 1e-05)
    assert "table" not in stats["instruments"]  # persist mode is not configured: Redis only


def test_a_redis_that_cannot_be_reached_at_start_is_an_error_naming_it(tmp_path):
    from market_data_tick_handler.devtools.local_redis import free_port

    closed = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    run = subprocess.run(
        _command(tmp_path, closed, "--duration", "1"), capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert f"cannot write the instruments to {closed}" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_tick_size_changed_between_two_loads_reaches_the_hash_the_channel_and_the_table(
    tmp_path, redis_url
):
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe("instruments:changes")
    markets, proc = _refreshing_sync(tmp_path, redis_url, client, 30)
    deadline = time.monotonic() + 30
    try:
        file = markets / "derived" / "binance.markets.ccxt-4.5.90.json"
        changed = json.loads(file.read_text())
        changed["BTC/USDT"]["precision"]["price"] = 0.1  # the exchange's new tick size
        (markets / "new.json").write_text(json.dumps(changed))
        os.replace(markets / "new.json", file)  # whole: a refresh never reads half of it
        edited_us = time.time_ns() // 1000
        tick = None
        while tick != 0.1 and time.monotonic() < deadline:
            tick = json.loads(client.hget("instruments:binance", "BTC-USDT"))["tick_size"]
            time.sleep(0.05)
        assert tick == 0.1
        message = None
        while message is None and time.monotonic() < deadline:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    change = json.loads(message["data"])
    assert (change["exchange"], change["symbol"], change["kind"]) == ("binance", "BTC-USDT", "changed")
    assert change["changes"]["tick_size"] == [0.01, 0.1]
    con = connect(tmp_path / "warehouse")
    rows = con.sql(
        "SELECT change, tick_size, epoch_us(effective_from) FROM market_data_streaming_live.instruments"
        " WHERE exchange = 'binance' AND symbol = 'BTC-USDT' ORDER BY effective_from"
    ).fetchall()
    assert [r[:2] for r in rows] == [("loaded", 0.01), ("changed", 0.1)]
    assert rows[0][2] < edited_us <= rows[1][2]  # in force from the load that found it
    others = con.sql(
        "SELECT count(*) FROM market_data_streaming_live.instruments WHERE change <> 'loaded'"
    ).fetchall()
    assert others == [(1,)]  # nothing else changed
    stats = json.loads((tmp_path / "stats.json").read_text())["instruments"]
    assert stats["changes"]["changed"] == 1 and stats["changes_written"] == 1


def test_the_instruments_table_in_bigquery_the_emulator_read_back_with_the_official_client(
    tmp_path, redis_url, bigquery_emulator
):
    import uuid

    from support.bigquery import client, micros, query, table

    dataset = f"instruments_{uuid.uuid4().hex[:10]}"
    config = tmp_path / "bq.yaml"
    config.write_text(
        f"modes: [persist]\npersist:\n  bigquery: {{dataset_live: {dataset}}}\n  spill_dir: {tmp_path}\n"
    )
    cmd = _command(tmp_path, redis_url, "--duration", "1")
    cmd[cmd.index("--config") + 1] = str(config)
    cmd += [
        "--bigquery-emulator",
        bigquery_emulator.cli_value,
        "--bigquery-project",
        bigquery_emulator.project,
    ]
    for _ in range(2):  # the same versions twice
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
    binance, deribit = _check_redis(redis.Redis.from_url(redis_url))
    bq = client(bigquery_emulator)
    name = f"{bigquery_emulator.project}.{dataset}.instruments"
    meta = table(bq, name)
    assert meta.time_partitioning.type_ == "MONTH" and meta.time_partitioning.field == "effective_from"
    assert meta.time_partitioning.expiration_ms is None
    assert meta.clustering_fields == ["exchange", "symbol"]
    every = query(bq, f"SELECT exchange, symbol FROM `{name}`")
    rows = query(bq, f"SELECT * FROM `{name}_dedup` ORDER BY exchange, symbol")
    assert len(every) == 2 * len(rows) == 2 * (len(binance) + len(deribit))
    by_symbol = {(r["exchange"], r["symbol"]): r for r in rows}
    btc = by_symbol["binance", "BTC-USDT"]
    assert (btc["tick_size"], btc["min_size"], btc["change"], btc["expiry"]) == (0.01, 1e-05, "loaded", None)
    call = by_symbol["deribit", "BTC-USD-240126-39000-C"]
    assert (call["strike"], call["option_type"], call["type"]) == (39000.0, "call", "option")
    assert micros(call["expiry"]) == 1706256000 * 1_000_000  # 2024-01-26 08:00 UTC


def test_a_change_redis_missed_while_down_lands_with_a_rewrite_of_the_hash(tmp_path, restartable_redis):
    client = redis.Redis.from_url(restartable_redis.url)
    markets, proc = _refreshing_sync(tmp_path, restartable_redis.url, client, 40)
    deadline = time.monotonic() + 40
    try:
        restartable_redis.kill()
        file = markets / "derived" / "binance.markets.ccxt-4.5.90.json"
        changed = json.loads(file.read_text())
        changed["BTC/USDT"]["precision"]["price"] = 0.1
        (markets / "new.json").write_text(json.dumps(changed))
        os.replace(markets / "new.json", file)
        time.sleep(2.5)  # a refresh or two find the change while Redis is down
        restartable_redis.start()
        client = redis.Redis.from_url(restartable_redis.url)
        tick = None
        while tick != 0.1 and time.monotonic() < deadline:
            tick = json.loads(client.hget("instruments:binance", "BTC-USDT"))["tick_size"]
            time.sleep(0.1)
        assert tick == 0.1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "instruments: binance BTC-USDT changed not written to Redis" in err
    stats = json.loads((tmp_path / "stats.json").read_text())
    s = stats["instruments"]
    assert s["changes"]["changed"] == 1 and s["changes_rewritten"] == 1 and s["changes_written"] == 0
    assert s["redis_errors"] >= 1 and s["changes_waiting"] == 0
    assert all(e["ok"] for e in stats["ledger"]), stats["ledger"]
