"""``make demo``: real Binance trades through the whole pipeline, candles read back as a strategy would
and as an analyst would.

Starts a private redis-server when one is installed (otherwise says so and uses the in-memory bus),
replays the recording through the Node ingester (tardis-dev's real-time code path), ZeroMQ and the
processor, and reads every timeframe back with ``LiveFeatureStream`` (the same API on both transports),
printing each candle with a few of its features. Persist mode writes the same candles to the local store
(``data/warehouse``, dataset ``market_data_demo``, emptied first: docs/ARCHITECTURE.md "The local
store"); at the end the seeds' monitoring query (walkthrough 9, "Sample live candles with HFT features")
runs on it through DuckDB and its rows are checked against the candles read back from Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import (
    BigQueryConfig,
    IngestConfig,
    LocalStoreConfig,
    PersistConfig,
    ServeConfig,
    StreamingConfig,
)
from .devtools.local_redis import redis_available, redis_server
from .streaming_service.console import CandleTable, summary_lines
from .streaming_service.consumers import LiveFeatureStream
from .streaming_service.local_store import connect
from .streaming_service.modes import PersistMode, ServeMode
from .streaming_service.service import StreamingService
from .timeutil import parse_iso_us

FEATURES = ("rsi_5", "vwap_deviation_bps", "volume_imbalance")
STORE, DATASET = "data/warehouse", "market_data_demo"
#: the seeds' walkthrough 9 candle query, adapted: DuckDB names a table <dataset>.<table> (no project, no
#: backquotes), the demo's replay writes the dataset market_data_demo, and its 3.5 minutes make 4 one-minute
#: candles, too few for any 5-candle feature, so the query reads the 15-second table
QUERY = f"""SELECT
  symbol,
  timestamp_in,
  timestamp_out,
  close,
  sma_5,
  ema_5,
  rsi_5,
  price_volatility_5
FROM {DATASET}.candles_15s
WHERE symbol = 'BTC-USDT'
ORDER BY timestamp_out DESC
LIMIT 10"""
CHECKED = ("close", "sma_5", "ema_5", "rsi_5", "price_volatility_5")


async def _read(
    timeframe: str, url: str | None, table: CandleTable, received: list[dict[str, Any]], ready: asyncio.Event
) -> None:
    """One timeframe's candles, from the start of its stream (it is empty when the demo begins)."""
    transport = "redis" if url else "inmemory"
    async with LiveFeatureStream(
        "BTC-USDT", timeframe, "binance", url, last=0, transport=transport
    ) as stream:
        ready.set()
        async for candle in stream:
            table(candle)
            received.append(candle)


def _walkthrough_query(received: list[dict[str, Any]]) -> bool:
    """Runs ``QUERY`` on the local store, prints its rows, and says whether each equals the candle read
    back from the stream (same bucket: its time stamps, close and features)."""
    print(f"\nthe seeds' candle query (walkthrough 9) on the local store {STORE}:\n{QUERY};", flush=True)
    connection = connect(STORE)
    connection.sql(QUERY).show(max_width=200)
    cursor = connection.execute(QUERY)
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    by_start = {parse_iso_us(c["timestamp_in"]): c for c in received if c["timeframe"] == "15s"}
    wrong = []
    for row in rows:
        start = _us(row["timestamp_in"])
        candle = by_start.get(start)
        values = {"close": candle["candle"]["close"], **(candle["hft_features"] or {})} if candle else {}
        stamps_agree = candle is not None and parse_iso_us(candle["timestamp_out"]) == _us(
            row["timestamp_out"]
        )
        if not stamps_agree or any(values.get(name) != row[name] for name in CHECKED):
            wrong.append(start)
    if not rows or wrong or len(rows) != min(10, len(by_start)):
        print(f"the query's rows do NOT agree with the candles read back: {wrong or len(rows)}", flush=True)
        return False
    print(
        f"its {len(rows)} rows agree with the 15s candles read back from the stream (timestamp_out, close,"
        f" {', '.join(CHECKED[1:])})\nquery the store yourself: .venv/bin/python -m"
        f' market_data_tick_handler.query "SELECT ... FROM {DATASET}.candles_1m", or'
        f" .venv/bin/duckdb -init {STORE}/views.sql",
        flush=True,
    )
    return True


def _us(moment: datetime) -> int:
    """A TIMESTAMP WITH TIME ZONE as DuckDB returns it -> µs since the epoch."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


async def run_demo(files: list[str], speed: str, url: str | None) -> int:
    serve = ServeConfig(transport="redis", redis_url=url) if url else ServeConfig(transport="inmemory")
    config = StreamingConfig(
        serve=serve,
        ingest=IngestConfig(
            source="replay", exchange="binance", symbols=("btcusdt",), files=tuple(files), speed=speed
        ),
        persist=PersistConfig(
            bigquery=BigQueryConfig(dataset_historical=DATASET), local=LocalStoreConfig(path=STORE)
        ),
    )
    shutil.rmtree(Path(STORE) / DATASET, ignore_errors=True)  # the demo's own dataset, from its last run
    table = CandleTable(features=FEATURES)
    received: list[dict[str, Any]] = []
    readers = []
    for timeframe in config.candles.timeframes:
        ready = asyncio.Event()
        readers.append(asyncio.create_task(_read(timeframe, url, table, received, ready)))
        await asyncio.wait_for(ready.wait(), 10)
    serve_mode = ServeMode(serve)
    service = StreamingService(config, [serve_mode, PersistMode.from_config(config)])
    code = await service.run()
    published = serve_mode.stats["candles_published"]
    for _ in range(100):  # let the readers print what is still in flight
        if table.rows >= published:
            break
        await asyncio.sleep(0.05)
    for reader in readers:
        reader.cancel()
    for reader in readers:
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    where = f"Redis ({url})" if url else "the in-memory bus"
    print(
        "\n".join(
            [
                "",
                "summary",
                *summary_lines(service.get_stats(), service.sinks),
                f"received            {table.rows} candles back from {where} with LiveFeatureStream",
            ]
        )
    )
    agree = _walkthrough_query(received)
    return code if table.rows == published and agree else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="+")
    parser.add_argument("--speed", default="20", help="replay speed: 1, N or max (default 20)")
    parser.add_argument(
        "--transport",
        choices=("auto", "redis", "inmemory"),
        default="auto",
        help="auto (default): a private redis-server when one is installed, else the in-memory bus",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    if args.transport == "inmemory" or (args.transport == "auto" and not redis_available()):
        if args.transport == "auto":
            print("redis-server is not installed: using the in-memory transport instead", flush=True)
        return asyncio.run(run_demo(args.files, args.speed, None))
    with redis_server() as url:
        print(f"started a private redis-server at {url}", flush=True)
        return asyncio.run(run_demo(args.files, args.speed, url))


if __name__ == "__main__":
    sys.exit(main())
