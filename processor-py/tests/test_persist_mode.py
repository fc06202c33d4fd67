"""PersistMode and its BigQuery writer against a real BigQuery endpoint (bqemulator, REST and gRPC),
read back with the official client: tables, partitioning and clustering, batches, exactly-once appends,
and BigQuery going away and coming back."""

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime

from google.cloud import bigquery

from market_data_tick_handler.config import BigQueryConfig, EmulatorConfig, PersistConfig
from market_data_tick_handler.streaming_service import CandleBatch, PersistMode
from market_data_tick_handler.streaming_service.bigquery_client import (
    CANDLE_COLUMNS,
    RowBatch,
    WriteFailed,
    candle_tables,
)
from market_data_tick_handler.streaming_service.bigquery_client.proto_rows import compile_row_writer
from market_data_tick_handler.streaming_service.bigquery_client.storage_write import StorageWriteSink
from market_data_tick_handler.streaming_service.candle_processor import Candle, Stamps
from support.bigquery import client, micros, query, table

T_IN = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z
MINUTE = 60_000_000
LOCAL, OUT = T_IN + 60_250_123, T_IN + 60_250_456  # 00:01:00.250123, 00:01:00.250456


def _config(endpoint, **kw) -> BigQueryConfig:
    dataset = f"t_{uuid.uuid4().hex[:10]}"  # the session's emulator is shared: a dataset per test
    kw = {"request_timeout_s": 5.0, "close_timeout_s": 15.0, **kw}
    return BigQueryConfig(
        project_id=endpoint.project,
        dataset_live=dataset,
        dataset_historical=dataset + "_hist",
        emulator=EmulatorConfig(endpoint.rest_url, endpoint.grpc_target),
        **kw,
    )


def _candle(symbol="BTC-USDT", tf="1m", t_in=T_IN, close=61_700.5, features=None):
    native = symbol.replace("-", "")
    return Candle("binance", symbol, native, tf, t_in, 61_600.0, 61_800.25, 61_500.0, close, 2.5, 1.5,
                  1.0, 61_650.0, 42, t_in + 1_000, t_in + 59_999_000, False, False, False, 0,
                  features)  # fmt: skip


def _minutes(n, start=0):
    """One 1m candle per minute, closes 100 + k."""
    return CandleBatch.from_candles(
        [_candle(t_in=T_IN + k * MINUTE, close=100.0 + k) for k in range(start, n)]
    )


def _count(bq, config, name="candles_1m", dataset=None):
    dataset = dataset or config.dataset_live
    return query(bq, f"SELECT COUNT(*) AS n FROM {dataset}.{name}")[0]["n"]


async def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return predicate()


async def test_tables_are_partitioned_with_expiry_and_clustered_as_configured(bigquery_emulator):
    config = _config(bigquery_emulator)
    for source in ("tardis-realtime", "replay"):  # live dataset, then historical
        mode = PersistMode(config, ("15s", "1m", "24h"), source)
        await mode.start()
        await mode.close()
    bq = client(bigquery_emulator)
    project = bigquery_emulator.project
    for name in ("candles_15s", "candles_1m", "candles_24h"):
        live = table(bq, f"{project}.{config.dataset_live}.{name}")
        assert live.time_partitioning.type_ == "HOUR" and live.time_partitioning.field == "timestamp_out"
        assert live.time_partitioning.expiration_ms == 30 * 86_400_000
        assert live.clustering_fields == ["exchange", "symbol"]
        historical = table(bq, f"{project}.{config.dataset_historical}.{name}")
        assert (
            historical.time_partitioning.type_ == "DAY"
            and historical.time_partitioning.field == "timestamp_out"
        )
        assert historical.time_partitioning.expiration_ms is None
        assert historical.clustering_fields == ["exchange", "symbol"]
    schema = {f.name: f for f in live.schema}
    assert schema["timestamp_out"].field_type == "TIMESTAMP" and schema["timestamp_out"].mode == "REQUIRED"
    for feature in ("sma_5", "ema_5", "rsi_5", "price_volatility_5", "volume_sma_20", "spread_bps"):
        assert schema[feature].field_type in ("FLOAT", "FLOAT64") and schema[feature].mode == "NULLABLE"


async def test_a_batch_is_written_and_read_back_with_nulls_and_microseconds(bigquery_emulator):
    config = _config(bigquery_emulator)
    mode = PersistMode(config, ("1m", "5m"), "tardis-realtime")
    await mode.start()
    features = {"sma_5": 61_690.25, "ema_5": 61_695.125, "rsi_5": None, "price_volatility_5": 0.0004}
    batch = CandleBatch.from_candles(
        [_candle(features=features), _candle("ETH-USDT", close=2_600.75, features=features), _candle(tf="5m")]
    )
    compile_row_writer()  # as the service does at start (PersistMode.start): not the first add's job
    added = time.perf_counter()
    mode.add(batch, LOCAL, OUT)
    assert time.perf_counter() - added < 0.05  # the processor does not wait for BigQuery
    assert mode.stats["rows_written"] == 0  # batch_size and batch_timeout_ms not reached yet
    assert await mode.flush(30)
    assert mode.stats["rows_written"] == 3 and mode.stats["batches_written"] == 2  # one per table
    await mode.close()
    bq = client(bigquery_emulator)
    rows = query(bq, f"SELECT * FROM {config.dataset_live}.candles_1m ORDER BY symbol")
    assert [r["symbol"] for r in rows] == ["BTC-USDT", "ETH-USDT"]
    btc = rows[0]
    assert btc["timestamp_in"] == datetime(2024, 8, 9, tzinfo=UTC)
    assert btc["local_timestamp"] == datetime(2024, 8, 9, 0, 1, 0, 250123, tzinfo=UTC)
    assert btc["timestamp_out"] == datetime(2024, 8, 9, 0, 1, 0, 250456, tzinfo=UTC)
    assert micros(btc["last_trade_time"]) == T_IN + 59_999_000
    assert (btc["open"], btc["high"], btc["low"], btc["close"]) == (61_600.0, 61_800.25, 61_500.0, 61_700.5)
    assert (btc["volume"], btc["buy_volume"], btc["sell_volume"], btc["vwap"]) == (2.5, 1.5, 1.0, 61_650.0)
    assert (btc["trade_count"], btc["is_empty"], btc["has_gap"], btc["revision"]) == (42, False, False, 0)
    assert (btc["sma_5"], btc["ema_5"], btc["price_volatility_5"]) == (61_690.25, 61_695.125, 0.0004)
    assert btc["rsi_5"] is None and btc["sma_20"] is None  # null, not 0 and not NaN
    assert rows[1]["close"] == 2_600.75
    five = query(bq, f"SELECT close, sma_5 FROM {config.dataset_live}.candles_5m")
    assert five == [{"close": 61_700.5, "sma_5": None}]


async def test_batches_are_cut_at_batch_size_and_sent_after_batch_timeout(bigquery_emulator):
    config = _config(bigquery_emulator, batch_size=2, batch_timeout_ms=300)
    mode = PersistMode(config, ("1m",), "tardis-realtime")
    await mode.start()
    mode.add(_minutes(5), LOCAL, OUT)
    # two full batches go at once; the fifth row goes when it has waited 300 ms, without a flush
    assert await _wait(lambda: mode.stats["rows_written"] == 5)
    assert mode.stats["batches_written"] == 3 and mode.stats["write_retries"] == 0
    await mode.close()
    assert _count(client(bigquery_emulator), config) == 5


def test_a_retried_append_at_the_same_offset_is_not_written_twice(bigquery_emulator):
    config = _config(bigquery_emulator)
    spec = candle_tables(config, "tardis-realtime", ("1m",))["1m"]
    sink = StorageWriteSink(config, bigquery_emulator.project)
    sink.ensure(spec)

    def batch(candles):
        encoded = [row for block in candles.blocks(Stamps(LOCAL, OUT)) for row in sink.encode(spec, block)]
        return RowBatch(spec, encoded, sum(map(len, encoded)))

    first = batch(_minutes(2))
    assert sink.append(first) is True and first.offset == 0
    assert sink.append(first) is False  # the same rows at the same offset: BigQuery says ALREADY_EXISTS
    second = batch(_minutes(3, start=2))
    assert sink.append(second) is True and second.offset == 2
    sink.close()
    rows = query(
        client(bigquery_emulator), f"SELECT close FROM {config.dataset_live}.candles_1m ORDER BY close"
    )
    assert [r["close"] for r in rows] == [100.0, 101.0, 102.0]


async def test_a_lost_reply_is_retried_and_counted_once(bigquery_emulator):
    config = _config(bigquery_emulator)

    class LostReply(StorageWriteSink):
        """The first append lands, but its reply never comes back."""

        lost = False

        def append(self, batch):
            written = super().append(batch)
            if not self.lost:
                self.lost = True
                raise WriteFailed("the connection dropped before the reply")
            return written

    mode = PersistMode(config, ("1m",), "tardis-realtime", LostReply(config, bigquery_emulator.project))
    await mode.start()
    mode.add(_minutes(3), LOCAL, OUT)
    assert await mode.flush(30)
    await mode.close()
    stats = mode.stats
    assert (stats["write_retries"], stats["duplicate_appends"], stats["rows_written"]) == (1, 1, 3)
    assert _count(client(bigquery_emulator), config) == 3


async def test_rows_wait_while_bigquery_is_unreachable_and_are_written_once_it_is_back(
    restartable_bigquery_emulator,
):
    emulator = restartable_bigquery_emulator
    config = _config(emulator.endpoint, batch_timeout_ms=0)
    mode = PersistMode(config, ("1m",), "tardis-realtime")
    await mode.start()
    mode.add(_minutes(1), LOCAL, OUT)
    assert await mode.flush(30) and mode.stats["rows_written"] == 1
    emulator.kill()  # SIGKILL, as a crash
    started = time.perf_counter()
    for k in range(1, 4):
        mode.add(_minutes(k + 1, start=k), LOCAL, OUT)
    assert time.perf_counter() - started < 0.05  # never blocked
    assert await _wait(lambda: mode.stats["write_retries"] >= 3)
    assert mode.stats["backlog_rows"] == 3 and mode.stats["rows_written"] == 1
    emulator.start()  # same ports and data; its write streams are gone: a new one is opened
    assert await mode.flush(60)
    await mode.close()
    assert (
        mode.stats["rows_written"] == 4 and mode.stats["rows_lost"] == 0 and mode.stats["backlog_rows"] == 0
    )
    rows = query(
        client(emulator.endpoint), f"SELECT timestamp_in, close FROM {config.dataset_live}.candles_1m"
    )
    assert sorted((micros(r["timestamp_in"]), r["close"]) for r in rows) == [
        (T_IN + k * MINUTE, 100.0 + k) for k in range(4)
    ]  # each once, nothing lost


async def test_backlog_overflow_and_shutdown_while_unreachable_are_counted_as_lost(
    restartable_bigquery_emulator, caplog
):
    emulator = restartable_bigquery_emulator
    config = _config(emulator.endpoint, batch_size=1, backlog_mb=0, close_timeout_s=1.0)
    mode = PersistMode(config, ("1m",), "tardis-realtime")
    await mode.start()
    emulator.kill()
    with caplog.at_level(logging.WARNING):
        for k in range(3):
            mode.add(_minutes(k + 1, start=k), LOCAL, OUT)
        # over the limit: the batches behind the head (which may be in flight) are dropped
        assert mode.stats["rows_lost"] == 2 and mode.stats["backlog_rows"] == 1
        await mode.close()  # the head could not be written within close_timeout_s
    assert mode.stats["rows_lost"] == 3 and mode.stats["rows_written"] == 0
    assert "dropped 1 rows of candles_1m" in caplog.text and "1 rows not written" in caplog.text


async def test_an_existing_table_gets_the_new_feature_columns_and_keeps_its_own(bigquery_emulator):
    """Only the table definition is checked here: the emulator keeps added columns in its catalog but not
    in its storage, so rows carrying them cannot be appended to such a table there (BigQuery can)."""
    config = _config(bigquery_emulator)
    bq = client(bigquery_emulator)
    bq.create_dataset(config.dataset_live, retry=None, timeout=30)
    name = f"{bigquery_emulator.project}.{config.dataset_live}.candles_1m"
    old = bigquery.Table(
        name,
        schema=[bigquery.SchemaField(c.name, c.type, mode=c.mode) for c in CANDLE_COLUMNS]
        + [bigquery.SchemaField("sma_5", "FLOAT64"), bigquery.SchemaField("retired_feature", "FLOAT64")],
    )
    old.time_partitioning = bigquery.TimePartitioning(type_="HOUR", field="timestamp_out")
    bq.create_table(old, retry=None, timeout=30)
    mode = PersistMode(config, ("1m",), "tardis-realtime")
    await mode.start()
    await mode.close()
    schema = {f.name: f for f in table(bq, name).schema}
    assert "retired_feature" in schema and "sma_5" in schema  # nothing dropped
    assert schema["rsi_20"].mode == "NULLABLE" and schema["ema_5"].mode == "NULLABLE"  # the new ones added
    assert list(schema)[: len(CANDLE_COLUMNS)] == [c.name for c in CANDLE_COLUMNS]


async def test_with_a_spill_rows_of_an_outage_go_to_disk_and_a_stop_keeps_them_for_the_next_start(
    restartable_bigquery_emulator, tmp_path
):
    """BigQuery killed: the batches behind the one being retried go to files (spill_mb 0 here: nothing
    else waits in memory); a stop while it is still down spills that one too, and a new PersistMode (the
    next run) writes them first, each once, once BigQuery is back (with new write streams: the killed
    emulator forgot its streams, so the batch an earlier try had sent is counted as maybe twice)."""
    emulator = restartable_bigquery_emulator
    config = _config(emulator.endpoint, batch_size=1, close_timeout_s=0.5, request_timeout_s=1.0)
    spill = PersistConfig(spill_mb=0, spill_dir=str(tmp_path / "spill"))
    mode = PersistMode(config, ("1m",), "tardis-realtime", spill=spill)
    await mode.start()
    mode.add(_minutes(1), LOCAL, OUT)
    assert await mode.flush(30) and mode.stats["rows_written"] == 1
    emulator.kill()
    for k in range(1, 4):
        mode.add(_minutes(k + 1, start=k), LOCAL, OUT)
    assert await _wait(lambda: mode.get_stats()["spill_files"] == 2 and mode.stats["write_retries"] >= 1)
    assert (mode.stats["buffered_rows"], mode.get_stats()["spilled_rows"]) == (1, 2)
    await mode.close()
    stats = mode.get_stats()
    assert (stats["rows_lost"], stats["spilled_rows"], stats["backlog_rows"]) == (0, 3, 3)
    assert mode.ledger_entries({"candles": 4})[0].ok

    emulator.start()
    again = PersistMode(config, ("1m",), "tardis-realtime", spill=spill)
    await again.start()
    again.add(_minutes(5, start=4), LOCAL, OUT)
    assert await again.flush(60)
    await again.close()
    stats = again.get_stats()
    assert (stats["spill_reloaded_rows"], stats["rows_maybe_twice"], stats["rows_written"]) == (3, 1, 4)
    assert again.ledger_entries({"candles": 1})[0].ok
    rows = query(
        client(emulator.endpoint), f"SELECT timestamp_in, close FROM {config.dataset_live}.candles_1m"
    )
    assert sorted((micros(r["timestamp_in"]), r["close"]) for r in rows) == [
        (T_IN + k * MINUTE, 100.0 + k) for k in range(5)
    ]  # each once: the one sent before the kill had not landed
