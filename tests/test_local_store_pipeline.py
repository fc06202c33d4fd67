"""The local store as a user gets it (issue 16 items 3 and 6): no BigQuery project and no emulator, so the
whole pipeline (Node ingester, tardis-dev, ZeroMQ, processor) replays real Binance trades with persist
mode and the tick sink into Parquet files under persist.local.path, read back with DuckDB (the store's
views) and pyarrow. The same replay runs twice into the historical dataset, as two processes at once.

Expected values come from the raw frames (support/binance_reference.py, none of the project's code):
every trade once in ``ticks_trades_dedup``, every candle of every timeframe once in ``candles_*_dedup``,
twice in the tables; the partitions are the tables' (ticks: DAY on the market time, candles: DAY on
``timestamp_out``) and hold exactly their rows."""

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from market_data_tick_handler.query import connect
from support.binance_reference import assert_candles_match, expected_candles, read_trades, recorded_local_us
from support.pipeline import read_stats, replay_command

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "binance-spot-btcusdt-trades.gz"
DATASET = "market_data_streaming"  # a replay writes to the historical dataset
TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _start(store: Path, run: Path) -> subprocess.Popen:
    run.mkdir()
    config = f"persist:\n  local:\n    path: {store}\n  bigquery:\n    batch_size: 1000\n"
    cmd = replay_command([SAMPLE], "binance", "btcusdt", None, run, config,
                         mode="streaming-candles-bigquery,streaming-ticks-bigquery")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("GCP_PROJECT_ID", "BIGQUERY_EMULATOR")}
    return subprocess.Popen(cmd, cwd=run, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(con, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_two_replays_into_the_local_store_hold_every_trade_and_candle_once_per_key(tmp_path):
    store = tmp_path / "warehouse"
    runs = [_start(store, tmp_path / f"run{k}") for k in (1, 2)]  # the same replay twice, at once
    for proc in runs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        assert f"rows go to the local store at {store}" in err
    stats = [read_stats(tmp_path / f"run{k}") for k in (1, 2)]
    for s in stats:
        assert s["ticks"]["rows_written"] == 8020 and s["ticks"]["rows_lost"] == 0
        closed = sum(s["candles_by_timeframe"]["binance"].values())
        assert s["persist"]["rows_written"] == closed and s["persist"]["rows_lost"] == 0
        assert all(e["ok"] for e in s["ledger"]), s["ledger"]

    raw = read_trades(SAMPLE)
    con = connect(store)
    # ticks: every trade of the recording, with its exchange time, price, amount and taker side
    expected = sorted(
        (t.ts_us, t.price, t.qty, "sell" if t.taker_sells else "buy", str(t.trade_id)) for t in raw
    )
    assert len(expected) == 8020
    assert con.execute(f"SELECT count(*) FROM {DATASET}.ticks_trades").fetchall() == [(2 * 8020,)]
    rows = _rows(con, f"SELECT * FROM {DATASET}.ticks_trades_dedup")
    got = sorted((_us(r["timestamp"]), r["price"], r["amount"], r["side"], r["id"]) for r in rows)
    assert got == expected
    assert {(r["exchange"], r["symbol"], r["exchange_symbol"]) for r in rows} == {
        ("binance", "BTC-USDT", "BTCUSDT")
    }
    recorded = recorded_local_us(SAMPLE)
    for r in rows:  # a replay at speed max stamps the recorded receive time; handed on during the run
        assert _us(r["local_timestamp"]) == recorded[r["id"]] < _us(r["timestamp_out"])
    # of each trade's two rows, the view keeps the earlier one
    first_out = _rows(con, f"SELECT id, min(timestamp_out) AS t FROM {DATASET}.ticks_trades GROUP BY id")
    assert {r["id"]: r["t"] for r in first_out} == {r["id"]: r["timestamp_out"] for r in rows}

    # candles: every timeframe's candles once in the view, twice in the table, equal to the reference
    for tf in TIMEFRAMES:
        reference = expected_candles(raw, tf)
        table = f"{DATASET}.candles_{tf}"
        assert con.execute(f"SELECT count(*) FROM {table}").fetchall() == [(2 * len(reference),)], tf
        rows = _rows(con, f"SELECT * FROM {table}_dedup ORDER BY timestamp_in")
        times = ("timestamp_in", "first_trade_time", "last_trade_time")
        assert_candles_match([{**r, **{k: _us(r[k]) for k in times}} for r in rows], reference, f"local {tf}")
        assert {(r["exchange"], r["symbol"], r["timeframe"], r["revision"]) for r in rows} == {
            ("binance", "BTC-USDT", tf, 0)
        }

    # partitions read back: each file's rows belong to its folder's partition; ticks by market day
    days = {}
    for t in raw:
        day = datetime.fromtimestamp(t.ts_us / 1e6, UTC).strftime("date=%Y-%m-%d")
        days[day] = days.get(day, 0) + 2
    trades_dir = store / DATASET / "ticks_trades"
    by_folder = {d.name: pq.read_table(d).num_rows for d in trades_dir.iterdir() if d.is_dir()}
    assert by_folder == days and sorted(days) == ["date=2024-08-08", "date=2024-08-09"]
    for table_dir in (store / DATASET).iterdir():
        field = "timestamp" if table_dir.name.startswith("ticks_") else "timestamp_out"
        for path in table_dir.rglob("part-*.parquet"):
            data = pq.read_table(path)
            assert data.schema.field(field).type == pa.timestamp("us", tz="UTC")
            folder_day = path.parent.name
            values = data.column(field)
            assert pc.all(pc.equal(pc.strftime(values, format="date=%Y-%m-%d"), folder_day)).as_py(), path
            order = data.select(["exchange", "symbol"]).to_pylist()
            assert order == sorted(order, key=lambda r: (r["exchange"], r["symbol"]))
    # an empty table (no liquidations in the recording) still has its view and columns
    assert con.execute(f"SELECT count(*) FROM {DATASET}.ticks_liquidations_dedup").fetchall() == [(0,)]
