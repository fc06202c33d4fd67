"""The BigQuery sink's de-duplicating views (``storage_write.py``): beside each table it ensures, the view
``{table}_dedup`` shows one row per ``TableSpec.key``, of rows written more than once the one with the
earliest ``timestamp_out``; read back through the official client from a real endpoint (bqemulator).
Tick keys hold FLOAT64 columns (prices), which BigQuery refuses in a window's PARTITION BY: the view
groups instead, and a trade table's view is checked for that."""

from __future__ import annotations

import uuid

from helpers import T0, S, trade_frame

from market_data_tick_handler.config import BigQueryConfig, EmulatorConfig
from market_data_tick_handler.streaming_service.bigquery_client import RowBatch
from market_data_tick_handler.streaming_service.bigquery_client.storage_write import StorageWriteSink
from market_data_tick_handler.streaming_service.bigquery_client.tables import tick_tables
from market_data_tick_handler.streaming_service.tick_processor.frame_router import FrameRouter
from market_data_tick_handler.wire import decode_frame
from support.bigquery import client, micros, query, table


def test_the_dedup_view_shows_each_trade_once_with_its_earliest_timestamp_out(bigquery_emulator):
    dataset = f"d_{uuid.uuid4().hex[:10]}"
    config = BigQueryConfig(
        project_id=bigquery_emulator.project,
        dataset_live=dataset,
        request_timeout_s=5.0,
        emulator=EmulatorConfig(bigquery_emulator.rest_url, bigquery_emulator.grpc_target),
    )
    spec = tick_tables(config, "tardis-realtime")["trades"]
    frame = decode_frame(trade_frame([(0, T0 + k * S, 100.0 + k / 4, 0.5, "buy") for k in range(4)]))
    router = FrameRouter()
    router.keep_trades = True
    (trades,) = router.handle_frame(frame).trade_rows
    sink = StorageWriteSink(config, config.project())
    try:
        sink.ensure(spec)
        later = sink.encode_trades(spec, trades, T0 + 200 * S)[1:]  # 3 of them, handed on later
        earlier = sink.encode_trades(spec, trades, T0 + 100 * S)  # all 4, handed on earlier
        for rows in (later, earlier):  # the later rows are written first
            assert sink.append(RowBatch(spec, rows, sum(map(len, rows))))
    finally:
        sink.close()
    bq = client(bigquery_emulator)
    view = table(bq, f"{bigquery_emulator.project}.{dataset}.ticks_trades_dedup")
    assert view.table_type == "VIEW"
    assert query(bq, f"SELECT COUNT(*) AS n FROM {dataset}.ticks_trades")[0]["n"] == 7
    rows = query(bq, f"SELECT id, price, timestamp_out FROM {dataset}.ticks_trades_dedup ORDER BY id")
    assert [(r["id"], r["price"], micros(r["timestamp_out"])) for r in rows] == [
        ("0", 100.0, T0 + 100 * S), ("1", 100.25, T0 + 100 * S), ("2", 100.5, T0 + 100 * S),
        ("3", 100.75, T0 + 100 * S)]  # fmt: skip
