"""``make demo``: real Binance trades through the whole pipeline, candles read back from Redis.

Starts a private redis-server when one is installed (otherwise says so and uses the in-memory bus),
replays the recording through the Node ingester (tardis-dev's real-time code path), ZeroMQ and the
processor, subscribes to the published channels and prints every candle it receives.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

import orjson
import redis.asyncio as aioredis

from .config import IngestConfig, ServeConfig, StreamingConfig
from .devtools.local_redis import redis_available, redis_server
from .streaming_service.console import CandleTable, summary_lines
from .streaming_service.modes import ServeMode
from .streaming_service.service import StreamingService
from .streaming_service.transport import DEFAULT_BUS

PATTERN = "candles:binance:*"


async def _subscribe_redis(url: str, table: CandleTable, ready: asyncio.Event) -> None:
    client = aioredis.Redis.from_url(url)
    async with client.pubsub() as pubsub:
        await pubsub.psubscribe(PATTERN)
        ready.set()
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                table(orjson.loads(message["data"]))
    await client.aclose()


async def _subscribe_bus(table: CandleTable, ready: asyncio.Event) -> None:
    queue = DEFAULT_BUS.subscribe(PATTERN)
    ready.set()
    while True:
        _channel, payload = await queue.get()
        table(orjson.loads(payload))


async def run_demo(files: list[str], speed: str, url: str | None) -> int:
    serve = ServeConfig(transport="redis", redis_url=url) if url else ServeConfig(transport="inmemory")
    config = StreamingConfig(
        serve=serve,
        ingest=IngestConfig(
            source="replay", exchange="binance", symbols=("btcusdt",), files=tuple(files), speed=speed
        ),
    )
    table = CandleTable()
    ready = asyncio.Event()
    subscriber = asyncio.create_task(
        _subscribe_redis(url, table, ready) if url else _subscribe_bus(table, ready)
    )
    await asyncio.wait_for(ready.wait(), 10)
    service = StreamingService(config, serve=ServeMode(serve))
    code = await service.run()
    published = service.serve.stats["candles_published"] if service.serve else 0
    for _ in range(100):  # let the subscriber print what is still in flight
        if table.rows >= published:
            break
        await asyncio.sleep(0.05)
    subscriber.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await subscriber
    where = f"Redis ({url})" if url else "the in-memory bus"
    print(
        "\n".join(
            [
                "",
                "summary",
                *summary_lines(service.get_stats()),
                f"received            {table.rows} candles back from {where} on {PATTERN}",
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
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    if not redis_available():
        print("redis-server is not installed: using the in-memory transport instead", flush=True)
        return asyncio.run(run_demo(args.files, args.speed, None))
    with redis_server() as url:
        print(f"started a private redis-server at {url}", flush=True)
        return asyncio.run(run_demo(args.files, args.speed, url))


if __name__ == "__main__":
    sys.exit(main())
