"""A strategy-side consumer in its own process: ``LiveFeatureStream`` on one (symbol, timeframe), one JSON
line per candle on stdout (flushed), and its stats as a last line once ``--count`` candles arrived.

``--hold FILE``: enter the stream (connected, position taken), then read nothing until FILE exists: a
consumer as slow as can be."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from market_data_tick_handler.streaming_service import LiveFeatureStream


async def main(args: argparse.Namespace) -> None:
    async with LiveFeatureStream(
        symbol=args.symbol, timeframe=args.timeframe, exchange=args.exchange, last=args.last, block_ms=200
    ) as stream:
        print(json.dumps({"ready": True}), flush=True)
        while args.hold and not os.path.exists(args.hold):
            await asyncio.sleep(0.05)
        received = 0
        async for candle in stream:
            print(json.dumps(candle), flush=True)
            received += 1
            if received == args.count:
                break
        print(json.dumps({"stats": stream.stats}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--symbol", required=True)
    parser.add_argument("--timeframe", required=True)
    parser.add_argument("--exchange")
    parser.add_argument("--last", type=int, default=1)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--hold")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
