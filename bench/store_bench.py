"""Tick rows/s and candle rows/s into the local store and into the BigQuery emulator, each through the
store's ``RowSink`` (encode + append, as persist mode and the tick sink use it) and against the plain
client write of the same rows in the same run (issue 16 item 7).

The rows: trades of 100 synthetic symbols in frames of 500 (the wire frames the processor gets, their
rows handed on as ``TradeRows``), and the 15s and 1m candles with every feature that the real
``TickHandler`` closes from them (100 symbols, a 200-candle block per minute boundary). Batches of 1000
rows (``persist.bigquery.batch_size``), each table its own.

- Local store (``local_store/store.py``): ``encode_trades`` / ``encode`` per frame or block, then
  ``append`` per batch: decode, partition, sort by clustering, a Parquet file per batch written under a
  temporary name, fsynced and renamed. Plain clients, from the same rows as Python dicts made beforehand
  (not timed: the sink's figure includes reading the rows out of the frames and blocks):
  ``pyarrow.Table.from_pylist`` + ``pyarrow.parquet.write_table`` per batch (a file each, the store's
  compression, zstd); and the alternative design, ``INSERT`` of the same Arrow batches into one DuckDB
  database file.
- Emulator (``bigquery_client/storage_write.py`` against a private ``bqemulator``): ``StorageWriteSink``
  encode + ``append`` (committed stream, offsets) per batch. Plain clients: the Write API's
  ``append_rows`` on the table's default stream, each row a protobuf message object serialised (what one
  writes with the client alone), and the REST client's ``insert_rows_json``. Each path writes a table of
  its own of the same size (the emulator copies a table on every write). Its figures are the emulator's
  (DuckDB behind a REST/gRPC shim), not BigQuery's.

``python bench/store_bench.py`` (``--skip-emulator`` for the local store alone).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from market_data_tick_handler.config import BigQueryConfig, EmulatorConfig
from market_data_tick_handler.streaming_service.bigquery_client import RowBatch, TableSpec
from market_data_tick_handler.streaming_service.bigquery_client.proto_rows import RowEncoder
from market_data_tick_handler.streaming_service.bigquery_client.tables import candle_tables, tick_tables
from market_data_tick_handler.streaming_service.bigquery_client.tick_rows import TickEncoder
from market_data_tick_handler.streaming_service.candle_processor import ClosedCandles, Stamps
from market_data_tick_handler.streaming_service.data_types.trades import ROW_FIELDS, TradeRows
from market_data_tick_handler.streaming_service.local_store import LocalStore
from market_data_tick_handler.streaming_service.local_store import store as store_module
from market_data_tick_handler.streaming_service.local_store.arrow_schema import arrow_schema
from market_data_tick_handler.streaming_service.tick_processor.frame_router import FrameRouter
from market_data_tick_handler.timeutil import now_us
from market_data_tick_handler.wire import decode_frame, encode_frame

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_bench import machine
from serve_bench import closed_batches

SYMBOLS, PER_FRAME = 100, 500
BATCH = 1000
BUCKET = 15_000_000
T0 = 1_723_161_600_000_000  # 2024-08-09T00:00:00Z


def trade_frames(n_frames: int) -> list[TradeRows]:
    """``n_frames`` frames of 500 trades (5 per symbol), as the frame router hands them to a sink."""
    rng = np.random.default_rng(7)
    router = FrameRouter()
    router.keep_trades = True
    out = []
    for seq in range(n_frames):
        start = T0 + seq * BUCKET // 4
        frame = encode_frame(
            {"type": "trade", "seq": seq, "session": "bench", "recv_mono_us": 0, "sent_mono_us": 0,
             "symbols": [["binance", f"sym{i:03d}usdt"] for i in range(SYMBOLS)]},
            {"sym": np.repeat(np.arange(SYMBOLS), PER_FRAME // SYMBOLS),
             "timestamp": start + np.sort(rng.integers(0, BUCKET // 4, PER_FRAME)),
             "local_timestamp": np.full(PER_FRAME, start + BUCKET // 4),
             "price": 100 * np.exp(rng.normal(0, 0.001, PER_FRAME)),
             "amount": rng.exponential(1.0, PER_FRAME), "side": rng.integers(1, 3, PER_FRAME),
             "id": [str(seq * PER_FRAME + k) for k in range(PER_FRAME)]},
        )  # fmt: skip
        (rows,) = router.handle_frame(decode_frame(frame)).trade_rows
        out.append(rows)
    return out


def candle_blocks(minutes: int) -> list[ClosedCandles]:
    stamps = Stamps(now_us(), now_us())
    return [block for batch in closed_batches(minutes) for block in batch.blocks(stamps)]


# -- the same rows as Python dicts (for the plain clients) ------------------------------------------------
def trade_dicts(frames: list[TradeRows], out_us: int) -> list[dict[str, Any]]:
    return [
        {**dict(zip(ROW_FIELDS, row, strict=True)), "timestamp_out": out_us}
        for f in frames
        for row in f.rows()
    ]


def candle_dicts(blocks: list[ClosedCandles]) -> dict[str, list[dict[str, Any]]]:
    """By timeframe, every candle as the row BigQuery holds (None where null)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for block in blocks:
        c = block.columns
        for candle in c.candles(block.exchange, block.symbols, block.exchange_symbols):
            row = {
                name: getattr(candle, name) for name in candle.__dataclass_fields__ if name != "hft_features"
            }
            row.update(local_timestamp=block.stamps.local_us, timestamp_out=block.stamps.out_us)
            row.update(candle.hft_features or {})
            out.setdefault(c.timeframe, []).append(row)
    return out


def _message(descriptor: Any) -> Any:
    """The protobuf message class of a row's ``DescriptorProto``."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file = descriptor_pb2.FileDescriptorProto(name="row.proto", package="plain", syntax="proto2")
    file.message_type.add().CopyFrom(descriptor)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"plain.{descriptor.name}"))


def batches(rows: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


class Buffers:
    """Persist mode's batching: encoded rows per table, a batch at BATCH rows, the rest at the end."""

    def __init__(self, append: Callable[[RowBatch], bool]) -> None:
        self.append = append
        self.rows: dict[str, tuple[TableSpec, list[bytes]]] = {}

    def add(self, table: TableSpec, rows: list[bytes]) -> None:
        _, buffer = self.rows.setdefault(table.name, (table, []))
        buffer.extend(rows)
        while len(buffer) >= BATCH:
            self.append(RowBatch(table, buffer[:BATCH], 0))
            del buffer[:BATCH]

    def flush(self) -> None:
        for table, buffer in self.rows.values():
            if buffer:
                self.append(RowBatch(table, buffer, 0))
                buffer.clear()


def timed(run: Callable[[], int]) -> float:
    """rows/s of ``run`` (which returns the rows it wrote)."""
    start = time.perf_counter()
    rows = run()
    return rows / (time.perf_counter() - start)


def line(what: str, sink: float, plains: dict[str, float]) -> None:
    parts = ", ".join(
        f"{name} {rate:,.0f} rows/s (sink/plain {sink / rate:.2f}x)" for name, rate in plains.items()
    )
    print(f"{what:<28} sink {sink:,.0f} rows/s; {parts}", flush=True)


# -- the local store --------------------------------------------------------------------------------------
def local(frames: list[TradeRows], blocks: list[ClosedCandles]) -> None:
    cfg = BigQueryConfig()
    trades = tick_tables(cfg, "tardis-realtime", ("trades",))["trades"]
    candles = candle_tables(cfg, "tardis-realtime", ("15s", "1m"))
    out_us = now_us()
    with tempfile.TemporaryDirectory(prefix="store_bench_") as tmp:
        root = Path(tmp)

        encoding: dict[str, float] = {}  # seconds spent encoding (in a run: on the processor's loop)

        def sink_ticks() -> int:
            store = LocalStore(root / "sink")
            store.ensure(trades)
            buffers, spent = Buffers(store.append), 0.0
            for rows in frames:
                start = time.perf_counter()
                encoded = store.encode_trades(trades, rows, out_us)
                spent += time.perf_counter() - start
                buffers.add(trades, encoded)
            buffers.flush()
            encoding["ticks"] = spent
            return sum(len(f) for f in frames)

        def sink_candles() -> int:
            store = LocalStore(root / "sink")
            for table in candles.values():
                store.ensure(table)
            buffers, spent = Buffers(store.append), 0.0
            for block in blocks:
                table = candles[block.columns.timeframe]
                start = time.perf_counter()
                encoded = store.encode(table, block)
                spent += time.perf_counter() - start
                buffers.add(table, encoded)
            buffers.flush()
            encoding["candles"] = spent
            return sum(len(b) for b in blocks)

        def parquet(name: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> Callable[[], int]:
            def run() -> int:
                folder = root / "plain" / name
                folder.mkdir(parents=True)
                for k, batch in enumerate(batches(rows)):
                    table = pa.Table.from_pylist(batch, schema)
                    pq.write_table(table, folder / f"{k}.parquet", compression=store_module.COMPRESSION)
                return len(rows)

            return run

        def duckdb_file(name: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> Callable[[], int]:
            def run() -> int:
                con = duckdb.connect(str(root / f"{name}.duckdb"))
                con.register("batch", schema.empty_table())
                con.execute("CREATE TABLE t AS SELECT * FROM batch")
                for batch in batches(rows):
                    con.register("batch", pa.Table.from_pylist(batch, schema))
                    con.execute("INSERT INTO t SELECT * FROM batch")
                con.close()
                return len(rows)

            return run

        tick_rows = trade_dicts(frames, out_us)
        by_tf = candle_dicts(blocks)
        candle_rows = [r for tf in ("15s", "1m") for r in by_tf[tf]]
        tick_schema, candle_schema = arrow_schema(trades), arrow_schema(candles["1m"])
        for what, run, schema, rows in (
            ("ticks", sink_ticks, tick_schema, tick_rows),
            ("candles", sink_candles, candle_schema, candle_rows),
        ):
            line(
                f"local {what} ({len(rows):,})",
                timed(run),
                {
                    "pyarrow write_table": timed(parquet(what, schema, rows)),
                    "duckdb file INSERT": timed(duckdb_file(what, schema, rows)),
                },
            )
            encoded_us = encoding[what] / len(rows) * 1e6
            print(f"{'':<28} of which encoding (the processor's loop): {encoded_us:.2f} µs a row")


# -- the emulator -----------------------------------------------------------------------------------------
def emulator(frames: list[TradeRows], blocks: list[ClosedCandles]) -> None:
    from google.cloud import bigquery
    from google.cloud.bigquery_storage_v1 import types

    from market_data_tick_handler.devtools.bq_emulator import bigquery_emulator
    from market_data_tick_handler.streaming_service.bigquery_client.clients import rest_client, write_client
    from market_data_tick_handler.streaming_service.bigquery_client.storage_write import StorageWriteSink

    out_us = now_us()
    with bigquery_emulator() as ep:
        emulated = EmulatorConfig(ep.rest_url, ep.grpc_target)

        def config(dataset: str) -> BigQueryConfig:
            return BigQueryConfig(project_id=ep.project, dataset_live=dataset, emulator=emulated)

        def tables(dataset: str) -> tuple[TableSpec, dict[str, TableSpec]]:
            cfg = config(dataset)
            return (tick_tables(cfg, "tardis-realtime", ("trades",))["trades"],
                    candle_tables(cfg, "tardis-realtime", ("15s", "1m")))  # fmt: skip

        def ensured(dataset: str) -> tuple[StorageWriteSink, TableSpec, dict[str, TableSpec]]:
            sink = StorageWriteSink(config(dataset), ep.project)
            trades, candles = tables(dataset)
            for table in (trades, *candles.values()):
                sink.ensure(table)
            return sink, trades, candles

        def sink_ticks() -> int:
            sink, trades, _ = ensured(f"sink_t_{uuid.uuid4().hex[:6]}")
            buffers = Buffers(sink.append)
            for rows in frames:
                buffers.add(trades, sink.encode_trades(trades, rows, out_us))
            buffers.flush()
            sink.close()
            return sum(len(f) for f in frames)

        def sink_candles() -> int:
            sink, _, candles = ensured(f"sink_c_{uuid.uuid4().hex[:6]}")
            buffers = Buffers(sink.append)
            for block in blocks:
                table = candles[block.columns.timeframe]
                buffers.add(table, sink.encode(table, block))
            buffers.flush()
            sink.close()
            return sum(len(b) for b in blocks)

        write = write_client(emulated)
        rest = rest_client(ep.project, emulated)

        def write_api(rows_by_table: dict[str, list[dict[str, Any]]], kind: str) -> Callable[[], int]:
            dataset = f"plain_w_{uuid.uuid4().hex[:6]}"
            ensured(dataset)[0].close()
            trades, candles = tables(dataset)
            specs = {"trades": trades, **candles}

            def run() -> int:
                n = 0
                for key, rows in rows_by_table.items():
                    spec = specs[key]
                    if kind == "ticks":
                        descriptor = TickEncoder(spec.name, spec.columns).descriptor
                    else:
                        descriptor = RowEncoder(spec.columns).descriptor
                    message = _message(descriptor)
                    stream = f"{write.table_path(ep.project, spec.dataset, spec.name)}/streams/_default"
                    for batch in batches(rows):
                        serialised = [
                            message(**{k: v for k, v in r.items() if v is not None}).SerializeToString()
                            for r in batch
                        ]
                        request = types.AppendRowsRequest(
                            write_stream=stream,
                            proto_rows=types.AppendRowsRequest.ProtoData(
                                writer_schema=types.ProtoSchema(proto_descriptor=descriptor),
                                rows=types.ProtoRows(serialized_rows=serialised),
                            ),
                        )
                        for response in write.append_rows(iter([request]), retry=None, timeout=60):
                            assert not response.error.code, response.error.message
                        n += len(batch)
                return n

            return run

        def insert_json(rows_by_table: dict[str, list[dict[str, Any]]]) -> Callable[[], int]:
            dataset = f"plain_j_{uuid.uuid4().hex[:6]}"
            ensured(dataset)[0].close()
            trades, candles = tables(dataset)
            specs = {"trades": trades, **candles}
            times = {c.name for spec in specs.values() for c in spec.columns if c.type == "TIMESTAMP"}
            ready = {  # JSON-ready (TIMESTAMP as seconds since the epoch), made before the clock starts
                key: [
                    {k: (v / 1e6 if k in times and v is not None else v) for k, v in r.items()} for r in rows
                ]
                for key, rows in rows_by_table.items()
            }

            def run() -> int:
                n = 0
                for key, rows in ready.items():
                    spec = specs[key]
                    table = bigquery.TableReference(
                        bigquery.DatasetReference(ep.project, spec.dataset), spec.name
                    )
                    for batch in batches(rows):
                        errors = rest.insert_rows_json(table, batch, retry=None, timeout=60)
                        assert not errors, errors[:3]
                        n += len(batch)
                return n

            return run

        tick_rows = {"trades": trade_dicts(frames, out_us)}
        by_tf = candle_dicts(blocks)
        n_ticks, n_candles = len(tick_rows["trades"]), sum(len(v) for v in by_tf.values())
        line(
            f"emulator ticks ({n_ticks:,})",
            timed(sink_ticks),
            {"Write API default stream": timed(write_api(tick_rows, "ticks")),
             "insert_rows_json": timed(insert_json(tick_rows))},
        )  # fmt: skip
        line(
            f"emulator candles ({n_candles:,})",
            timed(sink_candles),
            {"Write API default stream": timed(write_api(by_tf, "candles")),
             "insert_rows_json": timed(insert_json(by_tf))},
        )  # fmt: skip
        write.transport.close()
        rest.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-emulator", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    frames = trade_frames(400)  # 200,000 trades
    blocks = candle_blocks(100)  # 40,000 candles (15s and 1m, every feature)
    local(frames, blocks)
    if not args.skip_emulator:
        # fewer rows (20,000 trades, the first 40 blocks' candles): the emulator copies a table on each write
        emulator(frames[:40], blocks[:40])


if __name__ == "__main__":
    main()
