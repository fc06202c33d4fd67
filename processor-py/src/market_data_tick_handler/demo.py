"""``make demo``: real Binance trades through the whole pipeline, candles read back as a strategy would.

Starts a private redis-server when one is installed (otherwise says so and uses the in-memory bus),
replays the recording through the Node ingester (tardis-dev's real-time code path), ZeroMQ and the
processor, and reads every timeframe back with ``LiveFeatureStream`` (the same API on both transports),
printing each candle with a few of its features.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from .config import IngestConfig, ServeConfig, StreamingConfig
from .devtools.local_redis import redis_available, redis_server
from .streaming_service.console import CandleTable, summary_lines
from .streaming_service.consumers import LiveFeatureStream
from .streaming_service.modes import ServeMode
from .streaming_service.service import StreamingService

FEATURES = ("rsi_5", "vwap_deviation_bps", "volume_imbalance")


async def _read(timeframe: str, url: str | None, table: CandleTable, ready: asyncio.Event) -> None:
    """One timeframe's candles, from the start of its stream (it is empty when the demo begins)."""
    transport = "redis" if url else "inmemory"
    async with LiveFeatureStream(
        "BTC-USDT", timeframe, "binance", url, last=0, transport=transport
    ) as stream:
        ready.set()
        async for candle in stream:
            table(candle)


async def run_demo(files: list[str], speed: str, url: str | None) -> int:
    serve = ServeConfig(transport="redis", redis_url=url) if url else ServeConfig(transport="inmemory")
    config = StreamingConfig(
        serve=serve,
        ingest=IngestConfig(
            source="replay", exchange="binance", symbols=("btcusdt",), files=tuple(files), speed=speed
        ),
    )
    table = CandleTable(features=FEATURES)
    readers = []
    for timeframe in config.candles.timeframes:
        ready = asyncio.Event()
        readers.append(asyncio.create_task(_read(timeframe, url, table, ready)))
        await asyncio.wait_for(ready.wait(), 10)
    serve_mode = ServeMode(serve)
    service = StreamingService(config, [serve_mode])
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
    return code if table.rows == published else 1


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
