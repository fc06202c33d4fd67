"""The tick tables (issue 16 item 1) and the tick sink (``sinks/bigquery_ticks.py``) on their own: the
columns of each ``ticks_*`` table, its partitioning and clustering in both datasets, the rows the sink
encodes (decoded here with the protobuf library from the descriptor the sink sends), the frame router
handing trade rows on only when asked, and batching per data type. The write into a real BigQuery
endpoint is tests/test_ticks_pipeline.py."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from helpers import T0, S, trade_frame

from market_data_tick_handler.config import BigQueryConfig, PersistConfig, StreamingConfig, config_from_dict
from market_data_tick_handler.streaming_service.bigquery_client import MemorySink
from market_data_tick_handler.streaming_service.bigquery_client.tables import tick_tables
from market_data_tick_handler.streaming_service.candle_processor import Stamps
from market_data_tick_handler.streaming_service.data_types.records import BookSnapshot, DerivativeTicker, Gap
from market_data_tick_handler.streaming_service.sinks import FrameOutput
from market_data_tick_handler.streaming_service.sinks.bigquery_ticks import TicksMode
from market_data_tick_handler.streaming_service.sinks.registry import SINKS
from market_data_tick_handler.streaming_service.tick_processor.frame_router import FrameRouter
from market_data_tick_handler.wire import decode_frame

HEAD = [("exchange", "STRING", "REQUIRED"), ("symbol", "STRING", "REQUIRED"),
        ("exchange_symbol", "STRING", "REQUIRED"), ("timestamp", "TIMESTAMP", "REQUIRED"),
        ("local_timestamp", "TIMESTAMP", "REQUIRED"), ("timestamp_out", "TIMESTAMP", "REQUIRED")]  # fmt: skip
OUT = T0 + 10 * S


def _columns(spec):
    return [(c.name, c.type, c.mode) for c in spec.columns]


def test_the_seven_tick_tables_and_their_columns():
    tables = tick_tables(BigQueryConfig(), "tardis-realtime")
    names = ("ticks_trades", "ticks_book_snapshots", "ticks_derivative_ticker", "ticks_liquidations",
             "ticks_options_chain", "ticks_funding_rates", "ticks_gaps")  # fmt: skip
    assert sorted(spec.name for spec in tables.values()) == sorted(names)
    trade_like = [*HEAD, ("price", "FLOAT64", "REQUIRED"), ("amount", "FLOAT64", "REQUIRED"),
                  ("side", "STRING", "REQUIRED"), ("id", "STRING", "REQUIRED")]  # fmt: skip
    assert _columns(tables["trades"]) == trade_like
    assert _columns(tables["liquidations"]) == trade_like
    book = tables["book_snapshots"]
    want = [*HEAD, ("depth", "INT64", "REQUIRED"), ("interval_ms", "INT64", "REQUIRED"),
            ("bids", "RECORD", "REPEATED"), ("asks", "RECORD", "REPEATED")]  # fmt: skip
    assert _columns(book) == want
    assert [(f.name, f.type, f.mode) for f in book.columns[-1].fields] == [
        ("price", "FLOAT64", "REQUIRED"), ("amount", "FLOAT64", "REQUIRED")]  # fmt: skip
    want = [*HEAD, ("funding_rate", "FLOAT64", "REQUIRED"), ("funding_timestamp", "TIMESTAMP", "NULLABLE"),
            ("predicted_funding_rate", "FLOAT64", "NULLABLE")]  # fmt: skip
    assert _columns(tables["funding_rates"]) == want
    want = [*HEAD, ("reason", "STRING", "REQUIRED"), ("start", "TIMESTAMP", "REQUIRED"),
            ("end", "TIMESTAMP", "NULLABLE")]  # fmt: skip
    assert _columns(tables["gaps"]) == want
    ticker = dict((c.name, (c.type, c.mode)) for c in tables["derivative_ticker"].columns)
    assert ticker["mark_price"] == ("FLOAT64", "NULLABLE") and ticker["funding_timestamp"][0] == "TIMESTAMP"
    options = dict((c.name, (c.type, c.mode)) for c in tables["options_chain"].columns)
    assert options["expiration"] == ("TIMESTAMP", "REQUIRED")
    assert options["mark_iv"] == ("FLOAT64", "NULLABLE")
    assert len(options) == 6 + 20


def test_live_tick_tables_partition_by_hour_on_timestamp_out_and_historical_by_day_on_market_time():
    config = BigQueryConfig()
    for spec in tick_tables(config, "tardis-realtime").values():
        assert spec.dataset == "market_data_streaming_live"
        assert (spec.partitioning.type, spec.partitioning.field) == ("HOUR", "timestamp_out")
        assert spec.partition_expiration_ms == 30 * 86_400_000
        assert spec.clustering_fields == ("exchange", "symbol")
    for spec in tick_tables(config, "replay").values():
        assert spec.dataset == "market_data_streaming"
        assert (spec.partitioning.type, spec.partitioning.field) == ("DAY", "timestamp")
        assert spec.partition_expiration_ms is None
        assert spec.clustering_fields == ("exchange", "symbol")
    # a field chosen other than the candle ones is kept
    by_receipt = dataclasses.replace(config.historical_partitioning, field="local_timestamp")
    chosen = dataclasses.replace(config, historical_partitioning=by_receipt)
    assert tick_tables(chosen, "replay")["trades"].partitioning.field == "local_timestamp"


def _message_class(descriptor: descriptor_pb2.DescriptorProto):
    file = descriptor_pb2.FileDescriptorProto(name="t.proto", package="mdth", syntax="proto2")
    file.message_type.add().CopyFrom(descriptor)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("mdth.Row"))


def _mode(**data_types) -> tuple[TicksMode, MemorySink]:
    sink = MemorySink()
    raw = {"data_types": data_types, "persist": {"bigquery": {"batch_size": 3}}}
    return TicksMode(config_from_dict(raw), "tardis-realtime", sink), sink


async def _write(mode: TicksMode, output: FrameOutput) -> None:
    await mode.start()
    await mode.accept(output)
    await mode.close()


def test_trade_rows_reach_the_sink_only_when_asked_and_are_the_frames_valid_rows():
    frame = decode_frame(trade_frame([(0, T0 + S, 100.5, 0.25, "buy"), (0, T0 + 2 * S, -1.0, 1.0, "sell"),
                                      (1, T0 + 3 * S, 7.25, 2.0, "sell")],
                                     symbols=(("binance", "BTCUSDT"), ("binance", "ETHUSDT"))))  # fmt: skip
    router = FrameRouter()
    assert router.handle_frame(frame).trade_rows == []  # no tick sink: nothing kept, nothing made
    router = FrameRouter()
    router.keep_trades = True
    (rows,) = router.handle_frame(frame).trade_rows
    assert len(rows) == 2  # the negative price is dropped, as for the candles
    mode, sink = _mode()
    asyncio.run(_write(mode, FrameOutput((), (), Stamps(T0, OUT), (rows,))))
    (batch,) = sink.batches
    assert batch.table.name == "ticks_trades"
    row = _message_class(sink.ticks.of(batch.table).descriptor)
    got = [row.FromString(b) for b in batch.rows]
    assert [(r.exchange, r.symbol, r.exchange_symbol, r.timestamp, r.local_timestamp, r.timestamp_out,
             r.price, r.amount, r.side, r.id) for r in got] == [
        ("binance", "BTC-USDT", "BTCUSDT", T0 + S, T0 + S + 5, OUT, 100.5, 0.25, "buy", "0"),
        ("binance", "ETH-USDT", "ETHUSDT", T0 + 3 * S, T0 + 3 * S + 5, OUT, 7.25, 2.0, "sell", "2"),
    ]  # fmt: skip


def test_records_become_rows_with_nulls_left_out_and_book_levels_as_repeated_records():
    book = BookSnapshot(exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0,
                        local_timestamp=T0 + 7, depth=2, interval_ms=100, bids=((100.0, 1.0), (99.5, 2.0)),
                        asks=())  # fmt: skip
    gap = Gap(exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0,
              local_timestamp=T0 + 9, reason="stale", start=T0, end=None)  # fmt: skip
    mode, sink = _mode()
    asyncio.run(_write(mode, FrameOutput((), (gap, book), Stamps(T0, OUT))))
    by_table = {b.table.name: b for b in sink.batches}
    gaps = by_table["ticks_gaps"]
    (g,) = [_message_class(sink.ticks.of(gaps.table).descriptor).FromString(b) for b in gaps.rows]
    assert (g.reason, g.start, g.timestamp_out, g.HasField("end")) == ("stale", T0, OUT, False)
    books = by_table["ticks_book_snapshots"]
    (b,) = [_message_class(sink.ticks.of(books.table).descriptor).FromString(r) for r in books.rows]
    assert [(lv.price, lv.amount) for lv in b.bids] == [(100.0, 1.0), (99.5, 2.0)] and len(b.asks) == 0
    assert (b.depth, b.interval_ms, b.local_timestamp) == (2, 100, T0 + 7)


def test_batches_are_cut_per_data_type_at_batch_size_and_at_the_types_own_timeout():
    async def run():
        mode, sink = _mode(trades={"batch_timeout": 60_000}, gaps={"batch_timeout": 50})
        await mode.start()
        frame = decode_frame(trade_frame([(0, T0 + i * S, 100.0 + i, 1.0, "buy") for i in range(4)]))
        router = FrameRouter()
        router.keep_trades = True
        gap = Gap(exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0,
                  local_timestamp=T0, reason="stale", start=T0, end=None)  # fmt: skip
        await mode.accept(FrameOutput((), (gap,), Stamps(T0, OUT), router.handle_frame(frame).trade_rows))
        await asyncio.sleep(0.5)  # the gap's 50 ms pass, the trades' 60 s do not
        cut = [(b.table.name, len(b.rows)) for b in sink.batches]
        await mode.close()
        return cut, [(b.table.name, len(b.rows)) for b in sink.batches], mode

    cut, written, mode = asyncio.run(run())
    assert cut == [("ticks_trades", 3), ("ticks_gaps", 1)]  # batch_size 3, then the gap's timeout
    assert written == [*cut, ("ticks_trades", 1)]  # the last trade at close
    (entry,) = mode.ledger_entries({"candles": 0, "records": 1, "trades": 4})
    assert entry.ok and entry.expected == 5 and entry.parts["written"] == 5


def test_only_enabled_types_get_a_table_and_the_mode_is_a_sink_of_the_registry():
    config = StreamingConfig(modes=("ticks",), persist=PersistConfig())
    config = dataclasses.replace(config, data_types=config_from_dict({"data_types": {
        "options_chain": {"enabled": False}}}).data_types)  # fmt: skip
    mode = TicksMode(config, "replay", MemorySink())
    assert "options_chain" not in mode.tables and "trades" in mode.tables
    assert np.all([spec.dataset == "market_data_streaming" for spec in mode.tables.values()])
    assert SINKS["ticks"] == TicksMode.from_config


def test_records_with_nulls_are_written_to_bigquery_and_the_tables_read_back_as_specified(bigquery_emulator):
    """The Write API takes the rows with the descriptor the sink sends; the live dataset's tables read
    back HOUR-partitioned on timestamp_out with 30-day expiry, clustered, the book levels as repeated
    records. (A book snapshot row is not written here: bqemulator drops a RECORD column's fields on the
    Write API path, "STRUCT with no fields"; its rows are checked by decoding them above.)"""
    from support.bigquery import client, micros, query, table

    dataset = f"t_{uuid.uuid4().hex[:10]}"
    bigquery = {"project_id": bigquery_emulator.project, "dataset_live": dataset, "request_timeout_s": 5.0,
                "emulator": {"rest_url": bigquery_emulator.rest_url,
                             "grpc_target": bigquery_emulator.grpc_target}}  # fmt: skip
    config = config_from_dict({"persist": {"bigquery": bigquery}})
    gap = Gap(exchange="binance", symbol="BTC-USDT", exchange_symbol="BTCUSDT", timestamp=T0,
              local_timestamp=T0 + 9, reason="stale", start=T0, end=None)  # fmt: skip
    ticker = DerivativeTicker(exchange="binance-futures", symbol="BTC-USDT-PERP", exchange_symbol="BTCUSDT",
                              timestamp=T0 + S, local_timestamp=T0 + S + 3, last_price=61_000.5,
                              open_interest=None, funding_rate=0.0001, funding_timestamp=T0 + 3600 * S,
                              predicted_funding_rate=None, index_price=None,
                              mark_price=61_001.25)  # fmt: skip
    mode = TicksMode(config, "tardis-realtime")
    asyncio.run(_write(mode, FrameOutput((), (gap, ticker), Stamps(T0, OUT))))
    assert mode.stats["rows_written"] == 2 and mode.stats["rows_refused"] == 0, mode.stats
    bq = client(bigquery_emulator)
    (g,) = query(bq, f"SELECT * FROM {dataset}.ticks_gaps")
    assert (g["reason"], g["end"], micros(g["start"]), micros(g["timestamp_out"])) == ("stale", None, T0, OUT)
    (t,) = query(bq, f"SELECT * FROM {dataset}.ticks_derivative_ticker")
    assert (t["exchange"], t["symbol"], t["last_price"], t["open_interest"], t["mark_price"]) == (
        "binance-futures", "BTC-USDT-PERP", 61_000.5, None, 61_001.25)  # fmt: skip
    assert (micros(t["timestamp"]), micros(t["local_timestamp"]), micros(t["funding_timestamp"])) == (
        T0 + S, T0 + S + 3, T0 + 3600 * S)  # fmt: skip
    for name in ("ticks_trades", "ticks_book_snapshots", "ticks_gaps", "ticks_derivative_ticker"):
        meta = table(bq, f"{bigquery_emulator.project}.{dataset}.{name}")
        tp = meta.time_partitioning
        assert (tp.type_, tp.field, tp.expiration_ms) == ("HOUR", "timestamp_out", 30 * 86_400_000)
        assert meta.clustering_fields == ["exchange", "symbol"]
    book = {
        f.name: f for f in table(bq, f"{bigquery_emulator.project}.{dataset}.ticks_book_snapshots").schema
    }
    assert (book["bids"].field_type, book["bids"].mode) == ("RECORD", "REPEATED")
    assert [(f.name, f.field_type) for f in book["asks"].fields] == [
        ("price", "FLOAT64"),
        ("amount", "FLOAT64"),
    ]
