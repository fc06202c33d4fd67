"""The backfill as a user runs it (issue 19 item 3): ``python -m market_data_tick_handler.backfill`` in a
process of its own, reading Tardis trade CSV files and writing candles with features into the local store.

The CSV files are built in the test from the two contiguous spot BTCUSDT recordings of
``../shared/data/binance-ws`` in Tardis' exact format (``devtools/tardis_csv.py``: one gzip file per UTC
day of the local receive time). Expected candles are worked out from the raw frames with none of the
project's code (``support/binance_reference.py``). Stops are real: the process exits at once after the
first day (``MDTH_BACKFILL_EXIT_AFTER_DAYS``, as a kill would leave it) or gets a real SIGTERM between two
days; run again, it ends with the tables of a run never interrupted."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from market_data_tick_handler.devtools.tardis_csv import write_tardis_trades_csv
from market_data_tick_handler.query import connect
from support.binance_reference import BINANCE_WS, assert_candles_match, expected_candles, read_trades

RECORDINGS = [BINANCE_WS / "spot_btcusdt_20240808.gz", BINANCE_WS / "spot_btcusdt_20240809.gz"]
DATASET = "market_data_streaming"  # a backfill writes to the historical dataset
TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")
STAMPS = ("local_timestamp", "timestamp_out")  # when the rows were made: differ from run to run
RANGE = ["--exchange", "binance", "--symbols", "BTC-USDT", "--from", "2024-08-08", "--to", "2024-08-09"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GCP_PROJECT_ID", "BIGQUERY_EMULATOR")}
    env.update(extra)
    return env


def backfill(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "market_data_tick_handler.backfill", *map(str, args)]
    return subprocess.run(cmd, env=env or _env(), capture_output=True, text=True, timeout=180)


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def candles(store: Path, view: str = "_dedup") -> dict[str, list[dict]]:
    """Every candle table's rows (the ``_dedup`` view by default), times as µs, without the stamps."""
    con = connect(store)
    out = {}
    for tf in TIMEFRAMES:
        cursor = con.execute(f"SELECT * FROM {DATASET}.candles_{tf}{view} ORDER BY timestamp_in, revision")
        names = [d[0] for d in cursor.description]
        rows = []
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            for key in STAMPS:
                del row[key]
            for key in ("timestamp_in", "first_trade_time", "last_trade_time"):
                row[key] = _us(row[key])
            rows.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
        out[tf] = rows
    return out


def count(store: Path, table: str) -> int:
    return connect(store).execute(f"SELECT count(*) FROM {DATASET}.{table}").fetchall()[0][0]


@pytest.fixture(scope="module")
def csv_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tardis")
    files = write_tardis_trades_csv(RECORDINGS, out, exchange="binance", symbol="BTCUSDT")
    assert [f.name for f in files] == [
        "binance_trades_2024-08-08_BTCUSDT.csv.gz",
        "binance_trades_2024-08-09_BTCUSDT.csv.gz",
    ]
    return out


@pytest.fixture(scope="module")
def uninterrupted(csv_dir, tmp_path_factory) -> Path:
    """One run over both days, never interrupted."""
    store = tmp_path_factory.mktemp("one") / "warehouse"
    done = backfill(*RANGE, "--data-dir", csv_dir, "--store", store)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"rows go to the local store at {store}" in done.stderr
    assert "days 2/2, trades 19,904" in done.stderr  # the progress line
    return store


def test_the_candles_are_those_of_the_raw_frames_once_per_key_with_features(uninterrupted):
    raw = read_trades(*RECORDINGS)
    assert len(raw) == 19_904
    got = candles(uninterrupted)
    for tf in TIMEFRAMES:
        assert_candles_match(got[tf], expected_candles(raw, tf), f"backfill {tf}")
        assert count(uninterrupted, f"candles_{tf}") == len(got[tf]), f"{tf}: one row per key in the table"
        assert {(r["exchange"], r["symbol"], r["exchange_symbol"], r["revision"]) for r in got[tf]} == {
            ("binance", "BTC-USDT", "BTCUSDT", 0)
        }
        # the stream's first and last buckets were not fully observed; the rest were
        assert got[tf][0]["is_partial"] and got[tf][-1]["is_partial"]
        assert not any(r["is_partial"] for r in got[tf][1:-1])
        assert not any(r["has_gap"] for r in got[tf])
    # features on the hft timeframes: SMA_5 of the 15 s closes, worked out here, once the window is full
    rows = got["15s"]
    closes = [r["close"] for r in rows]
    for i, r in enumerate(rows):
        if i < 4:
            assert r["sma_5"] is None
        else:
            assert r["sma_5"] == pytest.approx(sum(closes[i - 4 : i + 1]) / 5, rel=1e-12)
    assert all(r["sma_5"] is None for r in got["5m"])  # no features off the hft timeframes
    state = json.loads((uninterrupted / "_backfill" / "binance-BTCUSDT.json").read_text())
    assert {d: v["trades"] for d, v in state["days"].items()} == {"2024-08-08": 9757, "2024-08-09": 10147}
    assert state["finished"] == "2024-08-09"


def test_run_twice_still_one_row_per_key(csv_dir, uninterrupted, tmp_path):
    store = tmp_path / "warehouse"
    first = backfill(*RANGE, "--data-dir", csv_dir, "--store", store)
    assert first.returncode == 0, first.stderr[-3000:]
    again = backfill(*RANGE, "--data-dir", csv_dir, "--store", store)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing to do" in again.stderr
    expected = candles(uninterrupted)
    assert candles(store, view="") == expected  # the tables themselves: no row written twice
    # done again on purpose (--force): every row twice in the tables, once in the views, the same rows
    forced = backfill(*RANGE, "--data-dir", csv_dir, "--store", store, "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    for tf in TIMEFRAMES:
        assert count(store, f"candles_{tf}") == 2 * len(expected[tf])
    assert candles(store) == expected


def test_killed_after_the_first_day_then_run_again_equals_one_run(csv_dir, uninterrupted, tmp_path):
    store = tmp_path / "warehouse"
    killed = backfill(*RANGE, "--data-dir", csv_dir, "--store", store,
                      env=_env(MDTH_BACKFILL_EXIT_AFTER_DAYS="1"))  # fmt: skip
    assert killed.returncode == 75, killed.stderr[-3000:]
    state = json.loads((store / "_backfill" / "binance-BTCUSDT.json").read_text())
    assert list(state["days"]) == ["2024-08-08"] and state["finished"] is None
    # run again, now with the tick table too: the second day's trades go there
    again = backfill(*RANGE, "--data-dir", csv_dir, "--store", store, "--ticks")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming at 2024-08-09" in again.stderr
    assert "1 done now, 1 done before" in again.stdout
    assert candles(store, view="") == candles(uninterrupted)  # features and open candles carried over
    assert count(store, "ticks_trades") == 10_147


def test_sigterm_between_days_then_run_again_equals_one_run(csv_dir, uninterrupted, tmp_path):
    store = tmp_path / "warehouse"
    cmd = [sys.executable, "-m", "market_data_tick_handler.backfill", *RANGE, "--data-dir", str(csv_dir),
           "--store", str(store)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(MDTH_BACKFILL_DAY_PAUSE_S="30"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    state_file = store / "_backfill" / "binance-BTCUSDT.json"
    deadline = time.monotonic() + 60
    while not state_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert state_file.exists(), proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "SIGTERM: stopping" in err
    assert list(json.loads(state_file.read_text())["days"]) == ["2024-08-08"]
    again = backfill(*RANGE, "--data-dir", csv_dir, "--store", store)
    assert again.returncode == 0, again.stderr[-3000:]
    assert candles(store, view="") == candles(uninterrupted)


def test_the_recordings_give_the_candles_of_the_csv_files(uninterrupted, tmp_path):
    store = tmp_path / "warehouse"
    done = backfill(*RANGE, "--recordings", *RECORDINGS, "--store", store)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trades              19904" in done.stdout
    assert candles(store) == candles(uninterrupted)


def test_with_ticks_every_trade_is_once_in_the_tick_table(csv_dir, tmp_path):
    store = tmp_path / "warehouse"
    done = backfill(*RANGE, "--data-dir", csv_dir, "--store", store, "--ticks")
    assert done.returncode == 0, done.stderr[-3000:]
    raw = read_trades(*RECORDINGS)
    expected = sorted(
        (t.ts_us, t.price, t.qty, "sell" if t.taker_sells else "buy", str(t.trade_id)) for t in raw
    )
    con = connect(store)
    rows = con.execute(
        f"SELECT timestamp, price, amount, side, id, exchange, symbol FROM {DATASET}.ticks_trades"
    ).fetchall()
    assert sorted((_us(r[0]), r[1], r[2], r[3], r[4]) for r in rows) == expected
    assert {(r[5], r[6]) for r in rows} == {("binance", "BTC-USDT")}


def test_a_fresh_start_warms_the_features_up_from_the_candles_in_the_store(csv_dir, tmp_path):
    """Day 2 backfilled with no state to carry on from (another state folder) into a store that holds day
    1's candles: its first candles have full feature windows, from the stored ones."""
    store = tmp_path / "warehouse"
    day1 = ["--exchange", "binance", "--symbols", "BTC-USDT", "--from", "2024-08-08"]
    first = backfill(*day1, "--data-dir", csv_dir, "--store", store, "--state-dir", tmp_path / "a")
    assert first.returncode == 0, first.stderr[-3000:]
    stored = len(candles(store)["15s"])
    day2 = ["--exchange", "binance", "--symbols", "BTC-USDT", "--from", "2024-08-09"]
    second = backfill(*day2, "--data-dir", csv_dir, "--store", store, "--state-dir", tmp_path / "b")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "features warmed up from persist mode's tables" in second.stderr
    assert "with 15s: 0," not in second.stderr
    later = [r for r in candles(store)["15s"][stored:]]
    assert later and all(r["sma_5"] is not None for r in later)  # no cold start: the windows were full


def test_two_symbols_each_get_their_candles_and_their_own_progress(csv_dir, uninterrupted, tmp_path):
    """--symbols BTC-USDT,ETH-USDT: the ETHUSDT files are the BTCUSDT ones under the other symbol, so both
    symbols' candles are the one-symbol run's, each (exchange, symbol) with its own state file."""
    import gzip

    data = tmp_path / "data"
    data.mkdir()
    for path in csv_dir.iterdir():
        (data / path.name).write_bytes(path.read_bytes())
        text = gzip.decompress(path.read_bytes()).decode().replace(",BTCUSDT,", ",ETHUSDT,")
        (data / path.name.replace("BTCUSDT", "ETHUSDT")).write_bytes(gzip.compress(text.encode()))
    store = tmp_path / "warehouse"
    args = ["--symbols", "BTC-USDT,ETH-USDT", "--from", "2024-08-08", "--to", "2024-08-09"]
    done = backfill(*args, "--data-dir", data, "--store", store)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (store / "_backfill").glob("*.json")) == [
        "binance-BTCUSDT.json",
        "binance-ETHUSDT.json",
    ]
    one = candles(uninterrupted)
    both = candles(store)
    for tf in TIMEFRAMES:
        btc = [r for r in both[tf] if r["symbol"] == "BTC-USDT"]
        eth = [
            {**r, "symbol": "BTC-USDT", "exchange_symbol": "BTCUSDT"}
            for r in both[tf]
            if r["symbol"] == "ETH-USDT"
        ]
        assert btc == one[tf] and eth == one[tf], tf


def test_a_missing_day_file_is_named_and_nothing_is_written(csv_dir, tmp_path):
    store = tmp_path / "warehouse"
    args = ["--exchange", "binance", "--symbols", "BTC-USDT", "--from", "2024-08-08", "--to", "2024-08-10"]
    done = backfill(*args, "--data-dir", csv_dir, "--store", store)
    assert done.returncode == 1
    assert "binance_trades_2024-08-10_BTCUSDT.csv.gz" in done.stderr
    assert not store.exists()


def test_bad_rows_are_named_by_file_and_line_and_the_rest_kept(csv_dir, tmp_path):
    import gzip

    data = tmp_path / "data"
    data.mkdir()
    for path in csv_dir.iterdir():
        lines = gzip.decompress(path.read_bytes()).decode().splitlines()
        if "2024-08-08" in path.name:
            lines[10] = lines[10].replace(",sell,", ",sideways,").replace(",buy,", ",sideways,")
            lines[20] = "binance,BTCUSDT,1723161255342000"
        (data / path.name).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    store = tmp_path / "warehouse"
    done = backfill(*RANGE, "--data-dir", data, "--store", store)
    assert done.returncode == 0, done.stderr[-3000:]
    name = data / "binance_trades_2024-08-08_BTCUSDT.csv.gz"
    assert f"{name}:11: bad row (side)" in done.stderr
    assert f"{name}:21: bad row (cells)" in done.stderr
    assert "trades              19902 (bad rows skipped: cells 1, side 1)" in done.stdout


def test_a_file_of_another_symbol_is_refused(csv_dir, tmp_path):
    import gzip

    data = tmp_path / "data"
    data.mkdir()
    for path in csv_dir.iterdir():
        text = gzip.decompress(path.read_bytes()).decode().replace(",BTCUSDT,", ",ETHUSDT,")
        (data / path.name).write_bytes(gzip.compress(text.encode()))
    done = backfill(*RANGE, "--data-dir", data, "--store", tmp_path / "warehouse")
    assert done.returncode == 1
    assert "a file of ETHUSDT, not BTCUSDT" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "2024-08-08"],  # no --symbols, no input
        ["--symbols", "BTC-USDT", "--from", "2024-13-01", "--data-dir", "x"],
        ["--symbols", "BTC-USDT", "--from", "2024-08-09", "--to", "2024-08-08", "--data-dir", "x"],
    ],
)
def test_usage_errors_exit_2(args, tmp_path):
    done = backfill(*args, "--store", tmp_path / "w")
    assert done.returncode == 2, done.stderr
    assert "error" in done.stderr


def test_the_candles_equal_those_a_replay_of_the_recordings_persists(uninterrupted, tmp_path):
    """``main --source replay --speed max`` with persist mode, trades only (so the features have the same
    inputs), writes the same rows: every column but the two stamps."""
    from support.pipeline import replay_command

    store = tmp_path / "warehouse"
    run = tmp_path / "run"
    run.mkdir()
    config = f"persist:\n  local:\n    path: {store}\n"
    only_trades = ("--data-types", "trades")
    cmd = replay_command(RECORDINGS, "binance", "btcusdt", None, run, config,
                         mode="streaming-candles-bigquery", extra_args=only_trades)  # fmt: skip
    done = subprocess.run(cmd, cwd=run, env=_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert candles(store) == candles(uninterrupted)


def test_into_bigquery_the_candles_are_those_of_the_raw_frames(bigquery_emulator, csv_dir, tmp_path):
    """The same backfill into BigQuery (bqemulator, a real REST and gRPC endpoint), read back with the
    official client; its progress kept in --state-dir."""
    import uuid

    from support.bigquery import client, micros, query

    dataset = f"backfill_{uuid.uuid4().hex[:10]}"
    config = tmp_path / "streaming.yaml"
    config.write_text(f"persist:\n  bigquery:\n    dataset_historical: {dataset}\n")
    args = [
        "--bigquery-emulator",
        bigquery_emulator.cli_value,
        "--bigquery-project",
        bigquery_emulator.project,
    ]
    state = tmp_path / "state"
    done = backfill(*RANGE, "--data-dir", csv_dir, "--config", config, *args, "--state-dir", state)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (state / "binance-BTCUSDT.json").is_file()
    raw = read_trades(*RECORDINGS)
    bq = client(bigquery_emulator)
    for tf in ("15s", "1m", "24h"):
        rows = query(
            bq, f"SELECT * FROM `{bigquery_emulator.project}.{dataset}.candles_{tf}` ORDER BY timestamp_in"
        )
        times = ("timestamp_in", "first_trade_time", "last_trade_time")
        got = [{**r, **{k: micros(r[k]) for k in times}} for r in rows]
        assert_candles_match(got, expected_candles(raw, tf), f"bigquery {tf}")
