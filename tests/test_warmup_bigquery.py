"""Warm-up from BigQuery as a user runs it (issue 3, item 5): the whole pipeline replays the first half of
a real Binance recording (up to midnight) into BigQuery in persist mode, then the second half in serve mode
with ``--warmup-bigquery``: the first live candles already carry the features of the whole history. The
expected features are TA-Lib's over candles this test builds from the raw frames of both files; nothing
expected is taken from the code under test. And when BigQuery cannot give history, the run starts cold,
says so and counts it, and goes on."""

import os
import subprocess
import uuid
from datetime import datetime

import numpy as np
import orjson
import pytest
import redis

from market_data_tick_handler.devtools.local_redis import free_port
from support.bigquery import client, query
from support.binance_reference import BINANCE_WS, TIMEFRAMES_US, expected_candles, read_trades
from support.pipeline import read_stats, replay_command, us
from support.talib_reference import talib_reference

BEFORE = BINANCE_WS / "spot_btcusdt_20240808.gz"  # 2024-08-08 23:54 .. midnight (local receipt time)
AFTER = BINANCE_WS / "spot_btcusdt_20240809.gz"  # midnight .. 00:05
MIDNIGHT = 1_723_161_600_000_000


def _run(endpoint, tmp_path, files, mode, dataset, redis_url=None, candles="", emulator=None, warm=True):
    config = f"persist:\n  bigquery:\n    dataset_historical: {dataset}\n    request_timeout_s: 10\n"
    if candles:
        config += f"candles:\n{candles}"
    args = ("--bigquery-emulator", emulator or endpoint.cli_value, "--bigquery-project", endpoint.project)
    if warm:
        args += ("--warmup-bigquery",)
    cmd = replay_command(files, "binance", "btcusdt", redis_url, tmp_path, config, mode=mode, extra_args=args)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return run, read_stats(tmp_path)


def _history(endpoint, tmp_path, runs=1) -> str:
    """The first file persisted (``runs`` times: a replay written twice) into a dataset of its own."""
    dataset = f"history_{uuid.uuid4().hex[:10]}"
    for k in range(runs):
        path = tmp_path / f"persist{k}"
        path.mkdir()
        _run(endpoint, path, [BEFORE], "streaming-candles-bigquery", dataset, warm=False)
    return dataset


@pytest.fixture(scope="module")
def history(bigquery_emulator, tmp_path_factory):
    return _history(bigquery_emulator, tmp_path_factory.mktemp("history"))


@pytest.fixture(scope="module")
def reference():
    """Per timeframe: the candles of both files together, built from the raw frames."""
    trades = read_trades(BEFORE, AFTER)
    return {tf: expected_candles(trades, tf) for tf in ("15s", "1m")}


def _served(redis_url, tf):
    r = redis.Redis.from_url(redis_url)
    try:
        return [orjson.loads(f[b"data"]) for _, f in r.xrange(f"candles:stream:binance:BTC-USDT:{tf}")]
    finally:
        r.close()


def _closed_before_midnight(candles, tf):
    return [c for c in candles if c["timestamp_in"] + TIMEFRAMES_US[tf] <= MIDNIGHT]


def _assert_talib(served, reference, tf):
    """Every served candle's window features equal TA-Lib's over the closes of both files, nulls included.
    The served candles start at midnight; their closes are the reference's (the second file holds the last
    trade of every bucket from midnight on)."""
    at = next(i for i, c in enumerate(reference) if c["timestamp_in"] == MIDNIGHT)
    got, want = [us(m["timestamp_in"]) for m in served], [c["timestamp_in"] for c in reference[at:]]
    assert got == want, f"{tf}: {len(got)} served, {len(want)} expected; {sorted(set(got) ^ set(want))}"
    assert [m["candle"]["close"] for m in served] == [c["close"] for c in reference[at:]]
    close = np.array([c["close"] for c in reference])
    for name, want in talib_reference(close).items():
        want = want[at:]
        got = np.array([np.nan if (v := m["hft_features"][name]) is None else v for m in served])
        assert np.array_equal(np.isnan(got), np.isnan(want)), f"{tf} {name}: nulls differ from TA-Lib"
        if name.startswith("rsi"):  # TA-Lib says 0 for a window that never moved; the catalogue 50
            want = np.where((want == 0) & (got == 50), 50.0, want)
        if np.isnan(want).all():
            continue
        scale = np.nanmax(np.abs(want)) if name.startswith("price_volatility") else 1.0
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * scale, err_msg=f"{tf} {name}")


def test_a_replay_warmed_up_from_bigquery_starts_with_the_features_of_the_whole_history(
    bigquery_emulator, history, reference, redis_url, tmp_path
):
    run, stats = _run(bigquery_emulator, tmp_path, [AFTER], "streaming-candles-serve", history, redis_url)
    before = {tf: len(_closed_before_midnight(reference[tf], tf)) for tf in ("15s", "1m")}
    assert before == {"15s": 23, "1m": 6}  # 23:54:15 .. 23:59:45, and 23:54 .. 23:59
    warmup = stats["warmup"]
    assert warmup["candles_by_timeframe"] == before and warmup["errors"] == 0
    assert stats["counts"]["warmup_candles"] == sum(before.values())
    # anchored at the second file's first tick, exchange time (its clock is 1.27 s ahead of the receipt)
    assert warmup["anchor"].startswith("2024-08-09T00:00:01.")
    assert f"with 15s: 23, 1m: 6 candles, anchored at {warmup['anchor']}" in run.stderr
    assert stats["features"]["binance"]["resets"] == stats["features"]["binance"]["out_of_order"] == 0
    for tf in ("15s", "1m"):
        served = _served(redis_url, tf)
        _assert_talib(served, reference[tf], tf)
    # what a cold start would not have: the first 15s candle's 20-candle windows, the first 1m's 5-candle
    first_15s = _served(redis_url, "15s")[0]["hft_features"]
    first_1m = _served(redis_url, "1m")[0]["hft_features"]
    assert None not in [first_15s[name] for name in ("sma_20", "ema_20", "rsi_20", "log_return")]
    assert None not in (first_1m["sma_5"], first_1m["rsi_5"]) and first_1m["sma_10"] is None  # 7 candles


def test_the_warm_up_takes_each_candle_once_at_its_latest_revision_and_at_most_hft_warmup_candles(
    bigquery_emulator, reference, redis_url, tmp_path
):
    """The first file written twice (a replay run again), and the last 15s candle before midnight revised
    by hand with another close: the warm-up loads each candle once, the revised one, and only the last
    ``hft_warmup_candles`` (10) of each series."""
    dataset = _history(bigquery_emulator, tmp_path, runs=2)
    bq = client(bigquery_emulator)
    table = f"{bigquery_emulator.project}.{dataset}.candles_15s"
    last = MIDNIGHT - TIMEFRAMES_US["15s"]
    rows = query(bq, f"SELECT * FROM `{table}` WHERE timestamp_in = TIMESTAMP_MICROS({last})")
    assert len(rows) == 2  # one per run
    revised_close = rows[0]["close"] + 25.0
    revision = {k: v for k, v in rows[0].items() if v is not None}
    revision.update({k: v.isoformat() for k, v in revision.items() if isinstance(v, datetime)})
    revision.update(close=revised_close, high=max(rows[0]["high"], revised_close), revision=1)
    assert bq.insert_rows_json(table, [revision], retry=None, timeout=30) == []

    _, stats = _run(
        bigquery_emulator, tmp_path, [AFTER], "streaming-candles-serve", dataset, redis_url,
        candles="  hft_warmup_candles: 10\n",
    )  # fmt: skip
    assert stats["warmup"]["candles_by_timeframe"] == {"15s": 10, "1m": 6}  # 1m: all 6 there are, once
    features = stats["features"]["binance"]
    assert features["out_of_order"] == 0 and features["resets"] == 0  # no candle twice, no hole
    closes = [c["close"] for c in _closed_before_midnight(reference["15s"], "15s")]
    closes[-1] = revised_close
    first = _served(redis_url, "15s")[0]
    series = [*closes[-10:], first["candle"]["close"]]  # 10 loaded, then the first live one
    f = first["hft_features"]
    assert f["sma_5"] == pytest.approx(np.mean(series[-5:]), rel=1e-12)
    assert f["sma_10"] == pytest.approx(np.mean(series[-10:]), rel=1e-12)
    assert f["sma_20"] is None  # 11 candles: only what was loaded counts
    first_1m = _served(redis_url, "1m")[0]["hft_features"]
    closes_1m = [c["close"] for c in reference["1m"][:7]]  # 6 loaded + the first live one
    assert first_1m["sma_5"] == pytest.approx(np.mean(closes_1m[-5:]), rel=1e-12)


@pytest.mark.parametrize("failure", ["no such dataset", "nobody listening"])
def test_when_bigquery_cannot_warm_up_the_run_starts_cold_says_so_and_counts_it(
    bigquery_emulator, redis_url, tmp_path, failure
):
    dataset = f"missing_{uuid.uuid4().hex[:8]}"
    emulator = None
    if failure == "nobody listening":
        emulator = f"http://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    run, stats = _run(
        bigquery_emulator, tmp_path, [AFTER], "streaming-candles-serve", dataset, redis_url, emulator=emulator
    )
    failed = "warm-up from persist mode's tables failed"
    warning = next(line for line in run.stderr.splitlines() if failed in line)
    assert "WARNING" in warning and f"dataset {dataset}" in warning and "table candles_15s" in warning
    assert f"project {bigquery_emulator.project}" in warning
    assert ("NotFound" if failure == "no such dataset" else "ConnectionError") in warning
    assert stats["counts"]["warmup_errors"] == 1
    assert stats["warmup"]["candles_by_timeframe"] == {"15s": 0, "1m": 0}
    served = _served(redis_url, "15s")
    assert len(served) == stats["candles_by_timeframe"]["binance"]["15s"] > 0
    first = served[0]["hft_features"]
    assert first["sma_5"] is None and first["sma_20"] is None and first["log_return"] is None  # cold


def test_an_empty_dataset_is_no_history_yet_not_an_error(bigquery_emulator, redis_url, tmp_path):
    """A dataset whose candle tables do not exist yet (a first run): INFO lines, nothing counted."""
    dataset = f"empty_{uuid.uuid4().hex[:8]}"
    bq = client(bigquery_emulator)
    bq.create_dataset(f"{bigquery_emulator.project}.{dataset}", retry=None, timeout=30)
    run, stats = _run(bigquery_emulator, tmp_path, [AFTER], "streaming-candles-serve", dataset, redis_url)
    assert stats["counts"].get("warmup_errors", 0) == 0
    assert "warm-up from persist mode's tables failed" not in run.stderr
    for table in ("candles_15s", "candles_1m"):
        line = next(line for line in run.stderr.splitlines() if f"no table {dataset}.{table} " in line)
        assert " INFO " in line
    assert stats["warmup"]["missing_tables"] == ["candles_15s", "candles_1m"]


def test_without_a_project_the_warm_up_reads_the_local_store_persist_mode_wrote(
    reference, redis_url, tmp_path
):
    """No BigQuery project or emulator: persist mode writes the first file to the local store, and the
    second file's run warms up from it, as from BigQuery: the same features as TA-Lib over both files."""
    env = {k: v for k, v in os.environ.items() if k not in ("GCP_PROJECT_ID", "BIGQUERY_EMULATOR")}
    config = f"persist:\n  local:\n    path: {tmp_path / 'warehouse'}\n"
    for name, files, mode, extra in (
        ("persist", [BEFORE], "streaming-candles-bigquery", ()),
        ("serve", [AFTER], "streaming-candles-serve", ("--warmup-bigquery",)),
    ):
        where = tmp_path / name
        where.mkdir()
        url = redis_url if name == "serve" else None
        cmd = replay_command(files, "binance", "btcusdt", url, where, config, mode=mode, extra_args=extra)
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
    stats = read_stats(tmp_path / "serve")
    assert stats["warmup"]["source"] == "local store"
    assert stats["warmup"]["candles_by_timeframe"] == {"15s": 23, "1m": 6} and stats["warmup"]["errors"] == 0
    assert f"of the local store at {tmp_path / 'warehouse'}" in run.stderr
    for tf in ("15s", "1m"):
        _assert_talib(_served(redis_url, tf), reference[tf], tf)
