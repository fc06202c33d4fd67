"""Persist mode as an analyst uses it (issue 3: features "carried to persisted rows"): the whole pipeline
(Node ingester, tardis-dev, ZeroMQ, processor) replays real Binance trades into BigQuery tables on a
real BigQuery endpoint (bqemulator), read back with the official client. Expected candles are computed by
this test from the raw frames (support/binance_reference.py); expected features by TA-Lib from their
closes."""

import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import orjson
import redis

from support.bigquery import client, micros, query, table
from support.binance_reference import BINANCE_WS, assert_candles_match, expected_candles, read_trades
from support.pipeline import read_stats, replay_command, us
from support.talib_reference import talib_reference

REPO = Path(__file__).resolve().parents[1]
FILES = [BINANCE_WS / "spot_btcusdt_20240808.gz", BINANCE_WS / "spot_btcusdt_20240809.gz"]


def _run(endpoint, tmp_path, mode="streaming-candles-bigquery", redis_url=None) -> str:
    """Replays FILES in ``mode`` into a dataset of its own on the emulator; returns the dataset."""
    dataset = f"replay_{uuid.uuid4().hex[:10]}"
    config = f"persist:\n  bigquery:\n    dataset_historical: {dataset}\n    batch_size: 500\n"
    args = ("--bigquery-emulator", endpoint.cli_value, "--bigquery-project", endpoint.project)
    cmd = replay_command(FILES, "binance", "btcusdt", redis_url, tmp_path, config, mode=mode, extra_args=args)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return dataset


def _as_reference(row: dict) -> dict:
    times = ("timestamp_in", "first_trade_time", "last_trade_time")
    return {**row, **{name: micros(row[name]) for name in times}}


def test_a_replay_persists_every_candle_with_the_features_talib_gives(bigquery_emulator, tmp_path):
    dataset = _run(bigquery_emulator, tmp_path)
    stats = read_stats(tmp_path)
    closed = sum(stats["candles_by_timeframe"]["binance"].values())
    persist = stats["persist"]
    assert persist["rows_written"] == closed and persist["rows_lost"] == persist["write_errors"] == 0
    bq = client(bigquery_emulator)
    trades = read_trades(*FILES)
    for tf in ("15s", "1m"):
        expected = expected_candles(trades, tf)
        rows = query(bq, f"SELECT * FROM {dataset}.candles_{tf} ORDER BY timestamp_in")
        assert_candles_match(
            [_as_reference(r) for r in rows], expected, f"BigQuery candles_{tf}"
        )  # once each
        assert {(r["exchange"], r["symbol"], r["exchange_symbol"], r["timeframe"]) for r in rows} == {
            ("binance", "BTC-USDT", "BTCUSDT", tf)
        }
        close = np.array([e["close"] for e in expected])
        for name, want in talib_reference(close).items():
            got = np.array([np.nan if r[name] is None else r[name] for r in rows])
            assert np.array_equal(np.isnan(got), np.isnan(want)), f"{tf} {name}: nulls differ from TA-Lib"
            if name.startswith("rsi"):  # TA-Lib says 0 for a window that never moved; the catalogue 50
                want = np.where((want == 0) & (got == 50), 50.0, want)
            if np.isnan(want).all():
                continue  # a window longer than the replay (the 20s on 1m): null throughout, checked above
            scale = np.nanmax(np.abs(want)) if name.startswith("price_volatility") else 1.0
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * scale, err_msg=f"{tf} {name}")
        # the seeds' monitoring query, as written there (less the project)
        walk = query(bq, f"SELECT symbol, timestamp_in, timestamp_out, close, sma_5, ema_5, rsi_5,"
                         f" price_volatility_5 FROM {dataset}.candles_{tf} WHERE symbol = 'BTC-USDT'"
                         " ORDER BY timestamp_out DESC LIMIT 10")  # fmt: skip
        columns = ("symbol", "timestamp_in", "timestamp_out", "close", "sma_5", "ema_5", "rsi_5",
                   "price_volatility_5")  # fmt: skip
        newest = sorted(rows, key=lambda r: r["timestamp_out"], reverse=True)[:10]
        assert walk == [{c: r[c] for c in columns} for r in newest]
    # the other timeframes: one row per reference candle, no features
    for tf in ("5m", "15m", "4h", "24h"):
        rows = query(bq, f"SELECT close, sma_5 FROM {dataset}.candles_{tf} ORDER BY timestamp_in")
        assert [r["close"] for r in rows] == [e["close"] for e in expected_candles(trades, tf)]
        assert all(r["sma_5"] is None for r in rows)
    # a replay goes to the historical dataset: DAY partitions on timestamp_out, no expiry, clustered
    meta = table(bq, f"{bigquery_emulator.project}.{dataset}.candles_1m")
    assert (meta.time_partitioning.type_, meta.time_partitioning.field) == ("DAY", "timestamp_out")
    assert meta.time_partitioning.expiration_ms is None and meta.clustering_fields == ["exchange", "symbol"]


def test_serve_and_persist_together_give_redis_and_bigquery_the_same_candles(
    bigquery_emulator, redis_url, tmp_path
):
    dataset = _run(
        bigquery_emulator, tmp_path, "streaming-candles-serve,streaming-candles-bigquery", redis_url
    )
    stats = read_stats(tmp_path)
    assert stats["serve"]["candles_published"] == stats["persist"]["rows_written"]
    bq = client(bigquery_emulator)
    r = redis.Redis.from_url(redis_url)
    for tf in ("15s", "1m"):
        served = [orjson.loads(f[b"data"]) for _, f in r.xrange(f"candles:stream:binance:BTC-USDT:{tf}")]
        rows = query(bq, f"SELECT * FROM {dataset}.candles_{tf} ORDER BY timestamp_in")
        assert len(served) == len(rows) == len(expected_candles(read_trades(*FILES), tf))
        for message, row in zip(served, rows, strict=True):
            for stamp in (
                "timestamp_in",
                "local_timestamp",
                "timestamp_out",
            ):  # the same candle, stamped once
                assert micros(row[stamp]) == us(message[stamp]), (tf, stamp)
            assert row["close"] == message["candle"]["close"] and row["vwap"] == message["candle"]["vwap"]
            features = message["hft_features"]
            for name, value in features.items():  # the very same doubles, and the same nulls
                assert row[name] == value or (value is None and row[name] is None), (
                    tf,
                    name,
                    row[name],
                    value,
                )
    r.close()


def test_make_replay_with_modes_serve_and_persist_publishes_and_persists_every_candle(
    bigquery_emulator, redis_url, tmp_path
):
    """The user's command: ``make replay MODES=serve,persist`` (ARGS: where BigQuery is). Every closed
    candle is both published to Redis and written to its table, and the 1m table holds the candles worked
    out from the raw frames."""
    sample = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
    dataset = f"make_{uuid.uuid4().hex[:10]}"
    (tmp_path / "streaming.yaml").write_text(f"persist:\n  bigquery:\n    dataset_historical: {dataset}\n")
    args = (
        f"--config {tmp_path / 'streaming.yaml'} --stats-json {tmp_path / 'stats.json'}"
        f" --bigquery-emulator {bigquery_emulator.cli_value} --bigquery-project {bigquery_emulator.project}"
    )
    run = subprocess.run(
        ["make", "-s", "-o", "setup", "replay", "MODES=serve,persist", f"FILES={sample}", f"ARGS={args}"],
        cwd=REPO, env={**os.environ, "REDIS_URL": redis_url}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    stats = read_stats(tmp_path)
    closed = sum(stats["candles_by_timeframe"]["binance"].values())
    assert closed > 0
    assert stats["serve"]["candles_published"] == stats["persist"]["rows_written"] == closed
    expected = expected_candles(read_trades(sample), "1m")
    rows = query(client(bigquery_emulator), f"SELECT * FROM {dataset}.candles_1m ORDER BY timestamp_in")
    assert_candles_match([_as_reference(r) for r in rows], expected, "make replay: BigQuery candles_1m")
    published = redis.Redis.from_url(redis_url).xlen("candles:stream:binance:BTC-USDT:1m")
    assert published == len(expected)
