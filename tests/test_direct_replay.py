"""Issue 19 item 1 across processes: the whole pipeline (Node ingester, tardis-dev, ZeroMQ, processor,
local store) replays the binance-ws recordings at full speed once with ``ingest.replay_path: direct``
(recorded frames straight into tardis-dev's mappers) and once with ``websocket`` (through the local
replay server and tardis-dev's real-time client), set in the configuration file the test writes.

Both runs must store the same candles, every column but the processor's wall-clock stamps
(``local_timestamp``: when closing the candle began, ``timestamp_out``: when it was handed on), and
those candles must be the ones computed from the raw frames (support/binance_reference.py, none of the
project's code): bucket starts, OHLC, volumes, vwap and the trade count of every candle. The ticks
differ only in ``local_timestamp``: the recorded receive time on the direct path, the arrival time on
the WebSocket path."""

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from market_data_tick_handler.query import connect
from support.binance_reference import (
    BINANCE_WS,
    assert_candles_match,
    expected_candles,
    read_trades,
    recorded_local_us,
)
from support.pipeline import read_stats, replay_command

DATASET = "market_data_streaming"  # a replay writes to the historical dataset
TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")
STAMPS = ("local_timestamp", "timestamp_out")  # the processor's wall clock: differ run to run anyway
RECORDINGS = {
    "spot 08+09": (
        [BINANCE_WS / "spot_btcusdt_20240808.gz", BINANCE_WS / "spot_btcusdt_20240809.gz"],
        "binance",
        9_757 + 10_147,
    ),
    "usdm": ([BINANCE_WS / "usdm_btcusdt_20240808.gz"], "binance-futures", 21_313),
}


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _rows(con, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _run(files: list[Path], exchange: str, path: str, run: Path) -> tuple[Path, str]:
    """One replay at speed max with ``ingest.replay_path: <path>`` into a local store of its own."""
    run.mkdir()
    store = run / "warehouse"
    # trades only: the candles' book features take the last book snapshot that reached the processor
    # before the candle closed, which depends on where the ingester's batcher cut its frames (timing),
    # on either path; the direct and WebSocket book snapshots are compared in replay-direct.test.js
    config = (
        f"ingest:\n  replay_path: {path}\n"
        "data_types:\n  book_snapshots:\n    enabled: false\n"
        f"persist:\n  local:\n    path: {store}\n  bigquery:\n    batch_size: 1000\n"
    )
    cmd = replay_command(files, exchange, "btcusdt", None, run, config,
                         mode="streaming-candles-bigquery,streaming-ticks-bigquery")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("GCP_PROJECT_ID", "BIGQUERY_EMULATOR")}
    proc = subprocess.run(cmd, cwd=run, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return store, proc.stderr


@pytest.mark.parametrize("recording", sorted(RECORDINGS))
def test_direct_and_websocket_replays_store_the_same_candles_of_the_raw_frames(tmp_path, recording):
    files, exchange, trades = RECORDINGS[recording]
    raw = read_trades(*files)
    assert len(raw) == trades  # shared/data/README.md
    stores = {}
    for path in ("websocket", "direct"):
        store, err = _run(files, exchange, path, tmp_path / path)
        # the ingester's own line says which path it took (not auto: the configuration chose it)
        assert f"replay path: {path} (" in err, err[-3000:]
        stats = read_stats(tmp_path / path)
        assert stats["ticks"]["rows_lost"] == 0 and stats["persist"]["rows_lost"] == 0
        assert all(e["ok"] for e in stats["ledger"]), stats["ledger"]
        stores[path] = connect(store)

    for tf in TIMEFRAMES:
        table = f"{DATASET}.candles_{tf}"
        got = {
            path: _rows(con, f"SELECT * FROM {table} ORDER BY symbol, timestamp_in, revision")
            for path, con in stores.items()
        }
        reference = expected_candles(raw, tf)
        assert len(got["direct"]) == len(got["websocket"]) == len(reference), tf
        for d, w in zip(got["direct"], got["websocket"], strict=True):
            assert {k: v for k, v in d.items() if k not in STAMPS} == {
                k: v for k, v in w.items() if k not in STAMPS
            }, f"{tf} candle at {d['timestamp_in']}"
        times = ("timestamp_in", "first_trade_time", "last_trade_time")
        direct = [{**r, **{k: _us(r[k]) for k in times}} for r in got["direct"]]
        assert_candles_match(direct, reference, f"{recording} direct {tf}")
        assert sum(r["trade_count"] for r in direct) == trades, tf

    # ticks: the same trades; the local time is the recorded receive time on the direct path only
    recorded = recorded_local_us(*files)
    ticks = {
        path: _rows(con, f"SELECT * FROM {DATASET}.ticks_trades ORDER BY timestamp, id")
        for path, con in stores.items()
    }
    assert len(ticks["direct"]) == len(ticks["websocket"]) == trades
    for d, w in zip(ticks["direct"], ticks["websocket"], strict=True):
        assert {k: v for k, v in d.items() if k not in STAMPS} == {
            k: v for k, v in w.items() if k not in STAMPS
        }
        assert _us(d["local_timestamp"]) == recorded[d["id"]]
        assert _us(w["local_timestamp"]) > recorded[w["id"]]  # played now, years after the recording
