"""The local store (``streaming_service/local_store``) on its own, on real files read back with pyarrow and
DuckDB: the columns and types of BigQuery's tables, the values handed over (worked out here from the
candles and records the test builds), partition folders, rows sorted by the clustering columns, partition
expiry, a retried batch written once, the views (an empty table's, ``_dedup``), a reader in this process
querying while another process writes, and which store a run chooses. The whole pipeline into the store
is tests/test_local_store_pipeline.py."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import T0, S, trade_frame

from market_data_tick_handler.config import BigQueryConfig, ConfigError, EmulatorConfig, StreamingConfig
from market_data_tick_handler.main import apply_overrides, parse_args
from market_data_tick_handler.streaming_service.bigquery_client import RowBatch, WriteFailed, WriteRefused
from market_data_tick_handler.streaming_service.bigquery_client.tables import candle_tables, tick_tables
from market_data_tick_handler.streaming_service.candle_processor import Candle, CandleBatch, Stamps
from market_data_tick_handler.streaming_service.data_types.records import BookSnapshot, DerivativeTicker, Gap
from market_data_tick_handler.streaming_service.local_store import LocalStore, connect, store
from market_data_tick_handler.streaming_service.modes.persist_mode import make_sink
from market_data_tick_handler.streaming_service.tick_processor.frame_router import FrameRouter
from market_data_tick_handler.wire import decode_frame

LIVE = candle_tables(BigQueryConfig(), "tardis-realtime", ("1m",))["1m"]  # HOUR on timestamp_out, 30 days
LIVE_TICKS = tick_tables(BigQueryConfig(), "tardis-realtime")
HISTORICAL_TICKS = tick_tables(BigQueryConfig(), "replay")  # DAY on the market time, kept
HOUR = 3600 * S
DAY = 24 * HOUR
UTC_TS = pa.timestamp("us", tz="UTC")
#: the stores' clock: a day after the rows' times, so that no partition has expired (30 days)
NOW = lambda: (T0 + DAY) / 1e6  # noqa: E731


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _candle(symbol="BTC-USDT", t_in=T0, close=100.5, empty=False, features=None) -> Candle:
    native = symbol.replace("-", "")
    if empty:  # OHLC = the previous close, no volume, no vwap or trade times
        return Candle("binance", symbol, native, "1m", t_in, close, close, close, close, 0.0, 0.0, 0.0,
                      None, 0, None, None, True, False, False, 0, features)  # fmt: skip
    return Candle("binance", symbol, native, "1m", t_in, 100.0, 101.25, 99.5, close, 2.5, 1.5, 1.0,
                  100.25, 42, t_in + 1_000, t_in + 59_999_000, False, True, False, 0, features)  # fmt: skip


def _append(st: LocalStore, table, rows: list[bytes]) -> RowBatch:
    batch = RowBatch(table, rows, sum(map(len, rows)))
    assert st.append(batch) is True
    return batch


def _candle_rows(st: LocalStore, candles, local_us, out_us, table=LIVE) -> list[bytes]:
    batch = CandleBatch.from_candles(candles)
    return [row for block in batch.blocks(Stamps(local_us, out_us)) for row in st.encode(table, block)]


def _files(st: LocalStore, table) -> list[Path]:
    return sorted((st.root / table.dataset / table.name).rglob("part-*.parquet"))


def _rows(st: LocalStore, sql: str) -> list[dict]:
    con = connect(st.root)
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_candle_rows_have_the_bigquery_columns_types_nulls_and_the_values_handed_over(tmp_path):
    st = LocalStore(tmp_path / "wh", now=NOW)
    st.ensure(LIVE)
    features = {"sma_5": 100.75, "rsi_5": None, "vwap_deviation_bps": -3.5}
    candles = [_candle(features=features), _candle("ETH-USDT", close=7.25, empty=True)]
    local, out = T0 + 60 * S + 250_123, T0 + 60 * S + 250_456
    _append(st, LIVE, _candle_rows(st, candles, local, out))

    (path,) = _files(st, LIVE)
    schema = pq.read_schema(path)
    assert schema.names == [c.name for c in LIVE.columns]  # the same columns, in BigQuery's order
    for column in LIVE.columns:
        field = schema.field(column.name)
        want = {"STRING": pa.string(), "TIMESTAMP": UTC_TS, "FLOAT64": pa.float64(), "INT64": pa.int64(),
                "BOOL": pa.bool_()}[column.type]  # fmt: skip
        assert field.type == want, column
        assert field.nullable == (column.mode == "NULLABLE"), column
    rows = {r["symbol"]: r for r in _rows(st, f"SELECT * FROM {LIVE.dataset}.{LIVE.name}")}
    btc, eth = rows["BTC-USDT"], rows["ETH-USDT"]
    assert (btc["exchange"], btc["exchange_symbol"], btc["timeframe"]) == ("binance", "BTCUSDT", "1m")
    assert [_us(btc[k]) for k in ("timestamp_in", "local_timestamp", "timestamp_out")] == [T0, local, out]
    assert [btc[k] for k in ("open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "vwap",
                             "trade_count", "is_empty", "has_gap", "is_partial", "revision")] == [
        100.0, 101.25, 99.5, 100.5, 2.5, 1.5, 1.0, 100.25, 42, False, True, False, 0]  # fmt: skip
    assert (_us(btc["first_trade_time"]), _us(btc["last_trade_time"])) == (T0 + 1_000, T0 + 59_999_000)
    assert (btc["sma_5"], btc["rsi_5"], btc["vwap_deviation_bps"], btc["ema_5"]) == (100.75, None, -3.5, None)
    # an empty candle: null vwap and trade times, as BigQuery's rows; no features at all
    assert (eth["close"], eth["volume"], eth["is_empty"]) == (7.25, 0.0, True)
    assert eth["vwap"] is eth["first_trade_time"] is eth["last_trade_time"] is eth["sma_5"] is None


def test_candle_rows_carry_every_feature_or_a_run_of_them_with_the_others_null(tmp_path):
    st = LocalStore(tmp_path / "wh", now=NOW)
    st.ensure(LIVE)
    candle_names = {f.name for f in dataclasses.fields(Candle)}
    names = [c.name for c in LIVE.columns if c.type == "FLOAT64" and c.name not in candle_names]
    assert len(names) > 10
    every = {name: float(i) + 0.5 for i, name in enumerate(names)}  # all of them, in the table's order
    run = {name: -float(i) for i, name in enumerate(names[3:6])}  # three in a row, the others missing
    candles = [_candle(features=every), _candle(t_in=T0 + 60 * S, features=run)]
    _append(st, LIVE, _candle_rows(st, candles, T0 + 120 * S, T0 + 120 * S))
    rows = _rows(st, f"SELECT * FROM {LIVE.dataset}.{LIVE.name} ORDER BY timestamp_in")
    assert [rows[0][name] for name in names] == [float(i) + 0.5 for i in range(len(names))]
    assert [rows[1][name] for name in names] == [None] * 3 + [-0.0, -1.0, -2.0] + [None] * (len(names) - 6)


def test_tick_rows_have_their_tables_columns_book_levels_as_lists_of_structs_and_nulls(tmp_path):
    st = LocalStore(tmp_path / "wh", now=NOW)
    out = T0 + 10 * S
    frame = decode_frame(trade_frame([(0, T0 + S, 100.5, 0.25, "buy"), (1, T0 + 2 * S, 7.25, 2.0, "sell")],
                                     symbols=(("binance", "BTCUSDT"), ("binance", "ETHUSDT"))))  # fmt: skip
    router = FrameRouter()
    router.keep_trades = True
    (trades,) = router.handle_frame(frame).trade_rows
    book = BookSnapshot(exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0,
                        local_timestamp=T0 + 7, depth=2, interval_ms=100, bids=((100.0, 1.0), (99.5, 2.0)),
                        asks=())  # fmt: skip
    gap = Gap(exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0,
              local_timestamp=T0 + 9, reason="stale", start=T0, end=None)  # fmt: skip
    ticker = DerivativeTicker(exchange="binance-futures", symbol="BTC-USDT-PERP", exchange_symbol="BTCUSDT",
                              timestamp=T0 + S, local_timestamp=T0 + S + 3, last_price=61_000.5,
                              open_interest=None, funding_rate=0.0001, funding_timestamp=T0 + 3600 * S,
                              predicted_funding_rate=None, index_price=None,
                              mark_price=61_001.25)  # fmt: skip
    for name, rows in (
        ("trades", st.encode_trades(LIVE_TICKS["trades"], trades, out)),
        ("book_snapshots", st.encode_records(LIVE_TICKS["book_snapshots"], [book], out)),
        ("gaps", st.encode_records(LIVE_TICKS["gaps"], [gap], out)),
        ("derivative_ticker", st.encode_records(LIVE_TICKS["derivative_ticker"], [ticker], out)),
    ):
        _append(st, LIVE_TICKS[name], rows)
        (path,) = _files(st, LIVE_TICKS[name])
        assert pq.read_schema(path).names == [c.name for c in LIVE_TICKS[name].columns]
    ds = LIVE_TICKS["trades"].dataset

    got = _rows(st, f"SELECT * FROM {ds}.ticks_trades ORDER BY timestamp")
    assert [(r["exchange"], r["symbol"], r["exchange_symbol"], _us(r["timestamp"]), _us(r["local_timestamp"]),
             _us(r["timestamp_out"]), r["price"], r["amount"], r["side"], r["id"]) for r in got] == [
        ("binance", "BTC-USDT", "BTCUSDT", T0 + S, T0 + S + 5, out, 100.5, 0.25, "buy", "0"),
        ("binance", "ETH-USDT", "ETHUSDT", T0 + 2 * S, T0 + 2 * S + 5, out, 7.25, 2.0, "sell", "1"),
    ]  # fmt: skip
    (b,) = _rows(st, f"SELECT * FROM {ds}.ticks_book_snapshots")
    assert b["bids"] == [{"price": 100.0, "amount": 1.0}, {"price": 99.5, "amount": 2.0}] and b["asks"] == []
    assert (b["depth"], b["interval_ms"], _us(b["local_timestamp"])) == (2, 100, T0 + 7)
    (top,) = _rows(st, f"SELECT bids[1].price AS best_bid FROM {ds}.ticks_book_snapshots")  # DuckDB: 1-based
    assert top["best_bid"] == 100.0
    (g,) = _rows(st, f'SELECT reason, start, "end", timestamp_out FROM {ds}.ticks_gaps')
    assert (g["reason"], _us(g["start"]), g["end"], _us(g["timestamp_out"])) == ("stale", T0, None, out)
    (t,) = _rows(st, f"SELECT * FROM {ds}.ticks_derivative_ticker")
    assert (t["last_price"], t["open_interest"], t["funding_rate"], _us(t["funding_timestamp"])) == (
        61_000.5, None, 0.0001, T0 + 3600 * S)  # fmt: skip
    assert (t["predicted_funding_rate"], t["index_price"], t["mark_price"]) == (None, None, 61_001.25)
    levels = pq.read_schema(_files(st, LIVE_TICKS["book_snapshots"])[0]).field("bids").type
    assert pa.types.is_list(levels) and levels.value_type.names == ["price", "amount"]


def test_partition_folders_follow_the_tables_partitioning_and_files_are_sorted_by_clustering(tmp_path):
    st = LocalStore(tmp_path / "wh", now=NOW)
    # live candles: HOUR on timestamp_out (22:59:59 and 23:00:00 of 2023-11-14)
    late, next_hour = T0 + 45 * 60 * S + 59 * S, T0 + 46 * 60 * S
    _append(
        st, LIVE, _candle_rows(st, [_candle()], late, late) + _candle_rows(st, [_candle()], late, next_hour)
    )
    base = st.root / LIVE.dataset / LIVE.name
    assert [p.relative_to(base).parent.as_posix() for p in _files(st, LIVE)] == [
        "date=2023-11-14/hour=22", "date=2023-11-14/hour=23"]  # fmt: skip
    # historical trades: DAY on the market time, around midnight; symbols interleaved
    trades_table = HISTORICAL_TICKS["trades"]
    midnight = T0 + 106 * 60 * S  # 2023-11-15T00:00:00Z
    frame = decode_frame(trade_frame(
        [(1, midnight - 3 * S, 1.0, 1.0, "buy"), (0, midnight - 2 * S, 2.0, 1.0, "buy"),
         (1, midnight - S, 3.0, 1.0, "buy"), (0, midnight, 4.0, 1.0, "sell"),
         (1, midnight + S, 5.0, 1.0, "buy")],
        symbols=(("binance", "ETHUSDT"), ("binance", "BTCUSDT"))))  # fmt: skip
    router = FrameRouter()
    router.keep_trades = True
    (trades,) = router.handle_frame(frame).trade_rows
    _append(st, trades_table, st.encode_trades(trades_table, trades, T0))
    days = {p.parent.name: pq.read_table(p).to_pydict() for p in _files(st, trades_table)}
    assert sorted(days) == ["date=2023-11-14", "date=2023-11-15"]
    # within a file by (exchange, symbol), each symbol's rows in their order
    assert list(zip(days["date=2023-11-14"]["symbol"], days["date=2023-11-14"]["price"], strict=True)) == [
        ("BTC-USDT", 1.0), ("BTC-USDT", 3.0), ("ETH-USDT", 2.0)]  # fmt: skip
    assert list(zip(days["date=2023-11-15"]["symbol"], days["date=2023-11-15"]["price"], strict=True)) == [
        ("BTC-USDT", 5.0), ("ETH-USDT", 4.0)]  # fmt: skip


def test_partitions_past_the_ttl_are_deleted_at_start_and_hourly_counted_and_logged(tmp_path, caplog):
    gaps = LIVE_TICKS["gaps"]  # live: HOUR partitions on timestamp_out, 30 days
    now_us = T0 + 100 * DAY

    def gap_rows(st, out_us):
        gap = Gap(exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0,
                  local_timestamp=T0, reason="stale", start=T0, end=None)  # fmt: skip
        return st.encode_records(gaps, [gap], out_us)

    writer = LocalStore(tmp_path / "wh", now=lambda: (T0 + 10 * DAY) / 1e6)
    hour = lambda us: us - us % HOUR  # noqa: E731
    ended_past_ttl = hour(now_us - 30 * DAY) - HOUR  # its hour ended more than 30 days before now
    inside_ttl = hour(now_us - 30 * DAY) + 1  # ends an hour after that: kept
    for out_us in (ended_past_ttl, inside_ttl, now_us - DAY):
        _append(writer, gaps, gap_rows(writer, out_us))
    assert len(_files(writer, gaps)) == 3 and writer.stats()["partitions_expired"] == 0

    caplog.set_level(logging.INFO)
    later = LocalStore(tmp_path / "wh", now=lambda: now_us / 1e6)
    later.ensure(gaps)  # at start
    assert later.stats()["partitions_expired"] == 1
    assert [r for r in caplog.messages if "deleted the partition" in r] == [
        "local store: deleted the partition date=2024-01-23/hour=21 of market_data_streaming_live.ticks_gaps"
        " (ended more than ttl_days=30 ago)"]  # fmt: skip
    left = sorted(
        p.parent.relative_to(later.root / gaps.dataset / gaps.name).as_posix() for p in _files(later, gaps)
    )
    assert left == ["date=2024-01-23/hour=22", "date=2024-02-21/hour=22"]
    # while writing, about hourly: an hour later the next partition has expired too
    later.now = lambda: (now_us + HOUR) / 1e6
    later._swept -= store.SWEEP_EVERY_S
    _append(later, gaps, gap_rows(later, now_us))
    assert later.stats()["partitions_expired"] == 2 and len(_files(later, gaps)) == 2
    assert not (later.root / gaps.dataset / gaps.name / "date=2024-01-23").exists()  # empty day folder gone


def test_a_retried_batch_is_written_once_also_after_failing_half_way(tmp_path, monkeypatch):
    st = LocalStore(tmp_path / "wh", now=NOW)
    rows = _candle_rows(st, [_candle()], T0, T0) + _candle_rows(st, [_candle("ETH-USDT")], T0, T0 + HOUR)
    batch = RowBatch(LIVE, rows, 0)
    written, real = [], store._write_atomic

    def fail_second(path, table):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        real(path, table)

    st.ensure(LIVE)  # its _schema.parquet is written as a part file is
    monkeypatch.setattr(store, "_write_atomic", fail_second)
    with pytest.raises(WriteFailed, match="No space left"):
        st.append(batch)  # the first partition's file is written, the second is not
    assert len(_files(st, LIVE)) == 1 and st.stats()["files_written"] == 1
    monkeypatch.setattr(store, "_write_atomic", real)
    assert st.append(batch) is True  # the retry writes what is missing, under the same names
    assert st.append(batch) is False  # everything was written already: nothing twice
    names = [p.name for p in _files(st, LIVE)]
    assert len(names) == 2 and names[0] == names[1] == f"part-{st.run}-000000000000.parquet"
    assert _rows(st, f"SELECT symbol FROM {LIVE.dataset}.{LIVE.name} ORDER BY 1") == [
        {"symbol": "BTC-USDT"}, {"symbol": "ETH-USDT"}]  # fmt: skip
    later = _append(st, LIVE, _candle_rows(st, [_candle(t_in=T0 + 60 * S)], T0, T0))
    assert later.offset == 2  # the next batch's file follows the table's rows


def test_views_an_empty_table_and_the_dedup_view_one_row_per_key_with_the_earliest_timestamp_out(tmp_path):
    st = LocalStore(tmp_path / "wh", now=NOW)
    st.ensure(LIVE)
    trades = LIVE_TICKS["trades"]
    st.ensure(trades)
    con = connect(st.root)
    assert con.execute(f"SELECT count(*) FROM {LIVE.dataset}.{LIVE.name}").fetchall()[0] == (
        0,
    )  # no files yet
    described = con.execute(f"DESCRIBE {trades.dataset}.ticks_trades").fetchall()
    assert [(name, kind) for name, kind, *_ in described] == [
        ("exchange", "VARCHAR"), ("symbol", "VARCHAR"), ("exchange_symbol", "VARCHAR"),
        ("timestamp", "TIMESTAMP WITH TIME ZONE"), ("local_timestamp", "TIMESTAMP WITH TIME ZONE"),
        ("timestamp_out", "TIMESTAMP WITH TIME ZONE"), ("price", "DOUBLE"), ("amount", "DOUBLE"),
        ("side", "VARCHAR"), ("id", "VARCHAR")]  # fmt: skip

    candles = [_candle(t_in=T0 + k * 60 * S, close=100.0 + k) for k in range(3)]
    _append(st, LIVE, _candle_rows(st, candles, T0 + 5 * HOUR, T0 + 5 * HOUR))  # the same candles again,
    _append(st, LIVE, _candle_rows(st, candles[1:], T0 + HOUR, T0 + HOUR))  # written earlier by another run
    revised = dataclasses.replace(candles[2], revision=1)
    _append(st, LIVE, _candle_rows(st, [revised], T0 + 6 * HOUR, T0 + 6 * HOUR))  # a revision: its own key
    con = connect(st.root)
    assert con.execute(f"SELECT count(*) FROM {LIVE.dataset}.candles_1m").fetchall()[0] == (6,)
    dedup = con.sql(f"SELECT timestamp_in, revision, timestamp_out FROM {LIVE.dataset}.candles_1m_dedup"
                    " ORDER BY 1, 2").fetchall()  # fmt: skip
    assert [(_us(t), r, _us(o)) for t, r, o in dedup] == [
        (T0, 0, T0 + 5 * HOUR), (T0 + 60 * S, 0, T0 + HOUR), (T0 + 120 * S, 0, T0 + HOUR),
        (T0 + 120 * S, 1, T0 + 6 * HOUR)]  # fmt: skip

    # views.sql serves the duckdb command line (from the duckdb-cli package), from any directory
    cli = Path(sys.executable).parent / "duckdb"
    run = subprocess.run([str(cli), "-init", str(st.root / "views.sql"), "-csv", "-noheader", "-c",
                          f"SELECT count(*) FROM {LIVE.dataset}.candles_1m_dedup"],
                         capture_output=True, text=True, timeout=60, cwd="/", check=True)  # fmt: skip
    assert run.stdout.strip().splitlines()[-1] == "4"


def test_a_reader_queries_while_another_process_writes(tmp_path):
    """A writer process appends 30 batches of 400 rows; this process queries the whole time: every count
    is a whole number of batches (a file is there whole or not at all) and never goes back."""
    root = tmp_path / "wh"
    writer = textwrap.dedent(f"""
        import time
        from market_data_tick_handler.config import BigQueryConfig
        from market_data_tick_handler.streaming_service.bigquery_client import RowBatch
        from market_data_tick_handler.streaming_service.bigquery_client.tables import tick_tables
        from market_data_tick_handler.streaming_service.data_types.records import Gap
        from market_data_tick_handler.streaming_service.local_store import LocalStore
        table = tick_tables(BigQueryConfig(), "tardis-realtime")["gaps"]
        st = LocalStore({str(root)!r})
        st.ensure(table)
        print("ready", flush=True)
        for b in range(30):
            gaps = [Gap(exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp={T0} + i,
                        local_timestamp={T0} + i, reason="stale", start={T0}, end=None) for i in range(400)]
            rows = st.encode_records(table, gaps, {T0} + b * {HOUR} // 7)
            assert st.append(RowBatch(table, rows, 0))
            time.sleep(0.02)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        counts = []
        con = connect(root)
        while proc.poll() is None:
            counts.append(
                con.execute("SELECT count(*) FROM market_data_streaming_live.ticks_gaps").fetchall()[0][0]
            )
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    counts.append(con.execute("SELECT count(*) FROM market_data_streaming_live.ticks_gaps").fetchall()[0][0])
    print(f"{len(counts)} queries while writing; counts went {counts[0]} .. {counts[-1]}")
    assert all(n % 400 == 0 for n in counts) and counts == sorted(counts)
    assert counts[-1] == 12_000 and len(set(counts)) > 2  # it did read while the files came


def test_rows_of_another_layout_or_not_rows_at_all_are_refused(tmp_path):
    st = LocalStore(tmp_path / "wh", now=NOW)
    gaps, trades = LIVE_TICKS["gaps"], LIVE_TICKS["trades"]
    gap = Gap(exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0,
              local_timestamp=T0, reason="stale", start=T0, end=None)  # fmt: skip
    with pytest.raises(WriteRefused, match="other columns"):
        st.append(RowBatch(trades, st.encode_records(gaps, [gap], T0), 0))
    with pytest.raises(WriteRefused, match="not tick rows"):
        st.append(RowBatch(gaps, [b"\xc1garbage"], 0))
    with pytest.raises(WriteRefused, match="shorter than a candle row"):
        st.append(RowBatch(LIVE, [b"short"], 0))
    assert _files(st, gaps) == _files(st, trades) == []


def test_the_store_a_run_writes_to_project_emulator_or_the_local_store(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    for unset in (None, "${GCP_PROJECT_ID}"):
        sink = make_sink(BigQueryConfig(project_id=unset), str(tmp_path / "wh"))
        assert isinstance(sink, LocalStore) and sink.root == tmp_path / "wh"
    assert f"no BigQuery project or emulator configured: rows go to the local store at {tmp_path / 'wh'}" in (
        caplog.text)  # fmt: skip
    with pytest.raises(ConfigError, match="GCP_PROJECT_ID"):  # an emulator still needs a project name
        make_sink(BigQueryConfig(emulator=EmulatorConfig()))
    sink = make_sink(
        BigQueryConfig(project_id="p", emulator=EmulatorConfig("http://127.0.0.1:1", "127.0.0.1:2"))
    )
    assert type(sink).__name__ == "StorageWriteSink" and "emulator at http://127.0.0.1:1" in sink.describe()
    sink.close()

    def emulator(argv: list[str]) -> EmulatorConfig | None:
        args: argparse.Namespace = parse_args(argv)
        return apply_overrides(StreamingConfig(), args).persist.bigquery.emulator

    monkeypatch.delenv("BIGQUERY_EMULATOR", raising=False)
    assert emulator([]) is None
    monkeypatch.setenv("BIGQUERY_EMULATOR", "http://127.0.0.1:9050,127.0.0.1:9060")
    assert emulator([]) == EmulatorConfig("http://127.0.0.1:9050", "127.0.0.1:9060")
    assert emulator(["--bigquery-emulator", "http://h:1,h:2"]) == EmulatorConfig("http://h:1", "h:2")
    monkeypatch.setenv("BIGQUERY_EMULATOR", "127.0.0.1:9050")
    with pytest.raises(ConfigError, match=r"\$BIGQUERY_EMULATOR: '127.0.0.1:9050': expected REST_URL"):
        emulator([])


def test_a_stale_temporary_file_is_removed_at_start_and_never_read(tmp_path):
    st = LocalStore(tmp_path / "wh", now=NOW)
    st.ensure(LIVE)
    folder = st.root / LIVE.dataset / LIVE.name / "date=2023-11-14" / "hour=22"
    folder.mkdir(parents=True)
    stale = folder / ".part-x.parquet.123.tmp"
    stale.write_bytes(b"PAR1 half a file")
    fresh = folder / ".part-y.parquet.456.tmp"
    fresh.write_bytes(b"PAR1 being written")
    old = time.time() - 2 * store.STALE_TEMP_S
    os.utime(stale, (old, old))
    con = connect(st.root)
    assert con.execute(f"SELECT count(*) FROM {LIVE.dataset}.{LIVE.name}").fetchall()[0] == (
        0,
    )  # not *.parquet
    LocalStore(st.root, now=NOW).ensure(LIVE)
    assert not stale.exists() and fresh.exists()  # another process may be writing the fresh one
    with pytest.raises(duckdb.Error):
        duckdb.sql(f"SELECT * FROM read_parquet('{folder}/*.parquet')")  # nothing there to read
