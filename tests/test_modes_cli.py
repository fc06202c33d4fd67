"""Every mode of the command line as the seeds write it (``--mode``, ``--symbol``/``--symbols``,
``--exchanges``, ``--data-types``, ``--duration``, ``--refresh-interval``, ``--config``), each on the
real parts: the Node ingester replaying the sample recording (the seeds' live commands, with
``--source replay --files``), a private redis-server, the BigQuery emulator, the local store, ccxt's
market files. Each test checks the exit code and one fact worked out from the raw data; the modes'
details are proved elsewhere (test_pipeline_binance, test_persist_pipeline, test_local_store_pipeline,
test_ticks_pipeline, test_instruments_sync, test_clean_stop). ~40 s for the file."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from market_data_tick_handler.query import connect
from support.bigquery import client, query
from support.binance_reference import expected_candles, read_trades
from support.pipeline import read_stats, stream_candles

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
MARKETS = REPO.parent / "shared" / "data" / "ccxt-markets"
REPLAY = ("--source", "replay", "--files", str(SAMPLE), "--exchange", "binance", "--speed", "max")


def _main(tmp_path: Path, *args: str, config: str = "", timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m market_data_tick_handler.main --config <tmp>/streaming.yaml ARGS --stats-json ...``."""
    path = tmp_path / "streaming.yaml"
    path.write_text(config or "{}\n")
    cmd = [sys.executable, "-m", "market_data_tick_handler.main", *args, "--config", str(path),
           "--no-metrics", "--stats-json", str(tmp_path / "stats.json")]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=tmp_path)


@pytest.fixture(scope="module")
def raw():
    return read_trades(SAMPLE)


def test_serve_with_the_seeds_symbol_publishes_every_candle(redis_url, tmp_path, raw):
    """``--mode streaming-candles-serve --symbol BTC-USDT --config streaming.yaml`` (the repository's)."""
    run = _main(tmp_path, "--mode", "streaming-candles-serve", "--symbol", "BTC-USDT", *REPLAY,
                "--redis-url", redis_url, config=(REPO / "streaming.yaml").read_text())  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    for tf in ("15s", "1m"):
        published = stream_candles(redis_url, tf)
        assert [c["close"] for c in published] == [c["close"] for c in expected_candles(raw, tf)], tf


def test_serve_and_bigquery_together_with_several_symbols(redis_url, bigquery_emulator, tmp_path, raw):
    """``--mode streaming-candles-serve,streaming-candles-bigquery --symbols BTC-USDT,ETH-USDT,ADA-USDT``
    into the emulator: the same 1 m candles in Redis and in the table (the recording has BTC only)."""
    dataset = f"modes_{uuid.uuid4().hex[:10]}"
    run = _main(
        tmp_path, "--mode", "streaming-candles-serve,streaming-candles-bigquery",
        "--symbols", "BTC-USDT,ETH-USDT,ADA-USDT", *REPLAY, "--redis-url", redis_url,
        "--bigquery-emulator", bigquery_emulator.cli_value, "--bigquery-project", bigquery_emulator.project,
        config=f"persist:\n  bigquery:\n    dataset_historical: {dataset}\n",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    expected = [c["close"] for c in expected_candles(raw, "1m")]
    assert [c["close"] for c in stream_candles(redis_url, "1m")] == expected
    rows = query(client(bigquery_emulator), f"SELECT close FROM {dataset}.candles_1m ORDER BY timestamp_in")
    assert [r["close"] for r in rows] == expected


def test_ticks_with_the_seeds_data_types_and_duration_into_the_local_store(tmp_path, raw):
    """``--mode streaming-ticks-bigquery --symbols BTC-USDT,ETH-USDT --data-types
    trades,liquidations,book_snapshots --duration 3600``: no project, no emulator: the local store; the
    replay ends before the duration; every trade of the file is a row."""
    store = tmp_path / "warehouse"
    run = _main(
        tmp_path, "--mode", "streaming-ticks-bigquery", "--symbols", "BTC-USDT,ETH-USDT",
        "--data-types", "trades,liquidations,book_snapshots", "--duration", "3600", *REPLAY,
        config=f"persist:\n  local:\n    path: {store}\n",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    con = connect(store)
    assert con.execute("SELECT count(*) FROM market_data_streaming.ticks_trades").fetchall() == [(len(raw),)]
    assert read_stats(tmp_path)["ticks"]["rows_lost"] == 0


@pytest.mark.skipif(not (MARKETS / "derived").is_dir(), reason="shared/data/ccxt-markets is not here")
def test_live_instruments_sync_as_the_seeds_write_it_stops_at_its_duration(redis_url, tmp_path):
    """``--mode live-instruments-sync --exchanges binance,deribit,coinbase --refresh-interval 300`` on
    ccxt's market files: binance (Binance spot in Tardis) holds the file's spot markets, deribit its
    derivatives, coinbase some (test_instruments_sync has the definitions' values)."""
    run = _main(
        tmp_path, "--mode", "live-instruments-sync", "--exchanges", "binance,deribit,coinbase",
        "--refresh-interval", "300", "--markets-dir", str(MARKETS), "--redis-url", redis_url,
        "--duration", "2",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "--duration 2 s reached: stopping" in run.stderr
    expected = {}
    for name in ("binance", "deribit"):
        markets = json.loads((MARKETS / f"{name}.json").read_text()).values()
        expected[name] = sum(bool(m["spot"]) == (name == "binance") for m in markets)
    r = redis.Redis.from_url(redis_url)
    try:
        assert {name: r.hlen(f"instruments:{name}") for name in expected} == expected
        assert r.hlen("instruments:coinbase") > 0
    finally:
        r.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--mode", "streaming-candles-serve,nope"], "error: unknown mode(s) nope"),
        (["--mode", "live-instruments-sync", "--refresh-interval", "0"], "argument --refresh-interval"),
        (
            ["--mode", "streaming-ticks-bigquery", "--data-types", "trades,ticks"],
            "'ticks' is not a data type",
        ),
        (
            ["--mode", "streaming-candles-serve", "--symbol"],
            "argument --symbol/--symbols: expected one argument",
        ),
    ],
)
def test_a_bad_flag_exits_2_with_one_clear_line(tmp_path, args, says):
    run = _main(tmp_path, *args, timeout=60)
    assert run.returncode == 2, run.stderr[-3000:]
    assert says in run.stderr
    assert "Traceback" not in run.stderr


def test_a_bad_config_file_exits_2_naming_file_and_key(tmp_path):
    run = _main(tmp_path, "--mode", "streaming-candles-serve", config="serve:\n  transport: carrier-pigeon\n")
    assert run.returncode == 2
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'streaming.yaml'}: serve.transport: 'carrier-pigeon'"), line
