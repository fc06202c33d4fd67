"""``make bench``, part 3: serve mode's publish throughput and its fan-out to 10 subscribers.

The candles: 100 symbols x (15s, 1m) with features, closed by the real ``TickHandler`` from synthetic
trades (as in feature_bench.py), collected first, then published by ``ServeMode`` to a private
redis-server as fast as it takes them: per candle 3 PUBLISH + XADD to its capped stream + HSET of the
latest, one round trip per batch.

1. Throughput, candles/s, with two baselines measured in the same run on the same candles:
   - ceiling: the very RESP bytes ServeMode sends, packed beforehand and written on a raw socket, replies
     read (Redis and the socket alone; no serialising);
   - redis-py: the same commands through a redis-py ``pipeline(transaction=False)`` per batch, the way
     one would write it with the client library.
2. Fan-out: the same publishing with 10 subscriber processes, each PSUBSCRIBEd to every candle
   (``candles:binance:*``): candles/s, whether every subscriber got every candle, and the delivery latency
   (the message's ``timestamp_out`` -> received by the subscriber, same machine clock) p50/p99.
3. Persist mode's rows, on the same candles: µs per candle of ``PersistMode.add`` (the rows of a batch
   in the Storage Write API's wire form, queued in their tables' buffers) for the 200-candle minute
   boundaries, p50 over them; baseline, same run: the per-row path it replaced (a ``Candle`` and a dict
   per candle, then a protobuf message per row), which gives the same bytes (checked).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import redis
import redis.asyncio as aioredis
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from market_data_tick_handler.config import BigQueryConfig, ServeConfig
from market_data_tick_handler.devtools.local_redis import redis_server
from market_data_tick_handler.streaming_service import PersistMode, ServeMode
from market_data_tick_handler.streaming_service.bigquery_client import CANDLE_COLUMNS, MemorySink, TableSpec
from market_data_tick_handler.streaming_service.bigquery_client.proto_rows import (
    RowEncoder,
    compile_row_writer,
)
from market_data_tick_handler.streaming_service.candle_processor import CandleBatch, Stamps
from market_data_tick_handler.streaming_service.tick_processor import CandleSettings, TickHandler
from market_data_tick_handler.streaming_service.transport import Entry
from market_data_tick_handler.streaming_service.transport.redis_transport import PING, pack_entries
from market_data_tick_handler.timeutil import now_us, parse_iso_us

sys.path.insert(0, str(Path(__file__).parent))
from feature_bench import BUCKET, T0, trade_frame
from pipeline_bench import machine

MINUTES = 100  # 400 boundaries: 40,000 candles
SUBSCRIBERS = 10
PATTERN = "candles:binance:*"


def closed_batches(minutes: int) -> list[CandleBatch]:
    clock = [T0]
    settings = CandleSettings(("15s", "1m"), "wall", 0, hft_timeframes=("15s", "1m"))
    handler = TickHandler(settings, now=lambda: clock[0])
    rng = np.random.default_rng(1)
    batches = []
    for i in range(minutes * 4):
        handler.handle_bytes(trade_frame(i, T0 + i * BUCKET, rng))
        clock[0] = T0 + (i + 1) * BUCKET
        batches.extend(handler.advance(clock[0]))
    return batches


async def serve_mode(url: str, batches: list[CandleBatch]) -> tuple[float, list[list[Entry]]]:
    """Candles/s through ServeMode; and the entries it sent, for the baselines."""
    serve = ServeMode(ServeConfig(transport="redis", redis_url=url))
    await serve.start()
    sent: list[list[Entry]] = []
    publish_many = serve.transport.publish_many

    async def keep(chunks):
        frame = list(chunks)
        sent.append([e for chunk in frame for e in chunk])
        return await publish_many(frame)

    redis.Redis.from_url(url).flushall()
    for batch in batches[:2]:  # warm the caches of names and heads
        await serve.publish(batch, now_us())
    redis.Redis.from_url(url).flushall()
    serve.ids = type(serve.ids)()
    serve.stats["candles_published"] = 0
    serve.transport.publish_many = keep  # type: ignore[method-assign]
    start = time.perf_counter()
    for batch in batches:
        await serve.publish(batch, now_us())
    elapsed = time.perf_counter() - start
    stats = serve.stats
    assert stats["candles_published"] == sum(len(b) for b in batches), stats
    assert stats["stream_duplicates"] == stats["publish_errors"] == 0, stats
    await serve.close()
    return sum(len(b) for b in batches) / elapsed, sent


def ceiling(url: str, frames: list[list[Entry]]) -> float:
    packed = [b"".join(pack_entries(frame, 1000)) + PING for frame in frames]
    redis.Redis.from_url(url).flushall()
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    with socket.create_connection((host, int(port))) as s:
        start = time.perf_counter()
        for data in packed:
            s.sendall(data)
            buf = b""
            while not buf.endswith(b"+PONG\r\n"):
                buf += s.recv(1 << 20)
        elapsed = time.perf_counter() - start
    return sum(len(f) for f in frames) / elapsed


def redis_py(url: str, frames: list[list[Entry]]) -> float:
    client = redis.Redis.from_url(url)
    client.flushall()
    start = time.perf_counter()
    for frame in frames:
        pipe = client.pipeline(transaction=False)
        for channels, payload, target in frame:
            for channel in channels:
                pipe.publish(channel, payload)
            pipe.xadd(target.stream, {"data": payload}, id=target.entry_id, maxlen=1000, approximate=True)
            pipe.hset(target.latest, target.field, payload)
        pipe.execute()
    elapsed = time.perf_counter() - start
    return sum(len(f) for f in frames) / elapsed


_ROW_FIELDS = tuple(c.name for c in CANDLE_COLUMNS if c.name not in ("local_timestamp", "timestamp_out"))


def per_row_path(batch: CandleBatch, tables: dict[str, TableSpec], local_us: int, out_us: int):
    """The baseline: persist mode's rows as they were built before the columnar encoder, per part a
    ``Candle`` and a dict per candle (``CandleColumns.candles``, ``FeatureColumns.records``), then a
    protobuf message per row from the dict, serialised. Yields each table's name and encoded rows."""
    for part in batch.parts:
        table = tables[part.timeframe]
        message = _message_class(table)
        rows = []
        for candle in part.candles(batch.exchange, batch.symbols, batch.exchange_symbols):
            row = {name: getattr(candle, name) for name in _ROW_FIELDS}
            row["local_timestamp"] = local_us
            row["timestamp_out"] = out_us
            if candle.hft_features is not None:
                row.update(candle.hft_features)
            rows.append(row)
        encoded = [message(**{k: v for k, v in r.items() if v is not None}).SerializeToString() for r in rows]
        yield table.name, encoded


_MESSAGES: dict[str, type] = {}


def _message_class(table: TableSpec) -> type:
    message = _MESSAGES.get(table.name)
    if message is None:
        file = descriptor_pb2.FileDescriptorProto(name="row.proto", package="mdth", syntax="proto2")
        file.message_type.add().CopyFrom(RowEncoder(table.columns).descriptor)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        message = _MESSAGES[table.name] = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("mdth.Row")
        )
    return message


def persist_rows(batches: list[CandleBatch]) -> None:
    """µs per candle of ``PersistMode.add`` on the 200-candle boundaries, and of the per-row path."""
    compile_row_writer()  # as the service does at start
    bursts = [b for b in batches if len(b) == 200]
    local_us = out_us = now_us()
    mode = PersistMode(
        BigQueryConfig(batch_size=1_000_000), ("15s", "1m"), "tardis-realtime", MemorySink(keep=False)
    )
    for batch in bursts[:3]:  # the same bytes both ways
        new_rows = [
            mode.sink.encode(mode.tables[b.columns.timeframe], b)
            for b in batch.blocks(Stamps(local_us, out_us))
        ]
        assert new_rows == [rows for _, rows in per_row_path(batch, mode.tables, local_us, out_us)]
    new, old = [], []
    for batch in bursts:
        start = time.perf_counter()
        mode.add(batch, local_us, out_us)
        new.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in per_row_path(batch, mode.tables, local_us, out_us):
            pass
        old.append(time.perf_counter() - start)
    new_us, old_us = np.median(new) * 1e6, np.median(old) * 1e6
    print(
        f"persist    rows per candle: {new_us / 200:.2f} µs (PersistMode.add, {new_us / 1000:.3f} ms a"
        f" 200-candle boundary with features, p50 over {len(bursts)}); the per-row protobuf path"
        f" {old_us / 200:.2f} µs ({old_us / 1000:.2f} ms): {old_us / new_us:.0f}x",
        flush=True,
    )


async def subscriber(url: str, expected: int) -> None:
    """One subscriber process: every candle once; prints count and latencies (µs) as JSON."""
    client = aioredis.Redis.from_url(url)
    latencies = []
    async with client.pubsub() as pubsub:
        await pubsub.psubscribe(PATTERN)
        print("ready", flush=True)
        while len(latencies) < expected:
            message = await pubsub.get_message(timeout=10)
            if message is None:
                break
            if message["type"] == "pmessage":
                received = now_us()
                out = orjson.loads(message["data"])["timestamp_out"]
                latencies.append(received - parse_iso_us(out))
    await client.aclose()
    print(json.dumps({"received": len(latencies), "latencies": latencies}), flush=True)


def fan_out(url: str, batches: list[CandleBatch]) -> tuple[float, list[dict]]:
    total = sum(len(b) for b in batches)
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--subscriber", url, "--expected", str(total)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(SUBSCRIBERS)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    rate, _ = asyncio.run(serve_mode(url, batches))
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    return rate, results


def fan_out_cli(url: str, batches: list[CandleBatch]) -> float:
    """The same with 10 ``redis-cli`` subscribers (C, output discarded): the cost of fan-out to Redis and
    the publisher alone, without 10 Python processes competing for this machine's cores."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    procs = [
        subprocess.Popen(["redis-cli", "-p", port, "psubscribe", PATTERN], stdout=subprocess.DEVNULL)
        for _ in range(SUBSCRIBERS)
    ]
    client = redis.Redis.from_url(url)
    while sum(int(c["psub"]) for c in client.client_list()) < SUBSCRIBERS:
        time.sleep(0.05)
    try:
        rate, _ = asyncio.run(serve_mode(url, batches))
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    return rate


def main() -> None:
    print(f"machine: {machine()}", flush=True)
    batches = closed_batches(MINUTES)
    total = sum(len(b) for b in batches)
    persist_rows(batches)
    with redis_server() as url:
        rate, frames = asyncio.run(serve_mode(url, batches))
        size = sum(len(e.payload) for f in frames for e in f) / total
        top = ceiling(url, frames)
        naive = redis_py(url, frames)
        print(
            f"serve      publish throughput: {rate:,.0f} candles/s ({total:,} candles with features,"
            f" {size:,.0f} B each, in {len(frames)} round trips; per candle 3 PUBLISH + XADD + HSET);"
            f" ceiling (the same bytes prepacked on a raw socket) {top:,.0f}/s: ratio {rate / top:.2f};"
            f" redis-py pipeline {naive:,.0f}/s: {rate / naive:.1f}x",
            flush=True,
        )
        cli_rate = fan_out_cli(url, batches)
        fan_rate, results = fan_out(url, batches)
    got = [r["received"] for r in results]
    lat = np.concatenate([np.array(r["latencies"]) for r in results])
    print(
        f"serve      fan-out to {SUBSCRIBERS} subscribers (each PSUBSCRIBE {PATTERN}, every candle):"
        f" {fan_rate:,.0f} candles/s ({fan_rate / rate:.2f} of no subscribers),"
        f" {fan_rate * SUBSCRIBERS:,.0f} deliveries/s; received {min(got):,}..{max(got):,} of {total:,} each;"
        f" timestamp_out -> subscriber p50 {np.percentile(lat, 50) / 1000:.1f} ms,"
        f" p99 {np.percentile(lat, 99) / 1000:.1f} ms; with 10 redis-cli subscribers instead (no Python"
        f" subscribers on this machine's {os.cpu_count()} cores): {cli_rate:,.0f} candles/s"
        f" ({cli_rate / rate:.2f} of none)",
        flush=True,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriber")
    parser.add_argument("--expected", type=int)
    args = parser.parse_args()
    if args.subscriber:
        asyncio.run(subscriber(args.subscriber, args.expected))
    else:
        main()
