"""Print the live candles of one symbol with their features, as a strategy would receive them::

    python -m market_data_tick_handler.consume --symbol BTC-USDT --timeframe 1m [--exchange binance]
        [--redis-url URL] [--last N] [--count N] [--features rsi_5,ema_10,...]

Reads with :class:`LiveFeatureStream` (every candle once, in order, across Redis restarts; holes are logged).
The table goes to stdout, the log to stderr; Ctrl-C exits with code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from redis.exceptions import RedisError

from .logging_setup import configure_logging
from .streaming_service.console import CandleTable
from .streaming_service.consumers import LiveFeatureStream
from .streaming_service.consumers.live_feature_stream import DEFAULT_REDIS_URL

DEFAULT_FEATURES = "rsi_5,ema_10,price_volatility_5,vwap_deviation_bps,volume_imbalance"
log = logging.getLogger("market_data_tick_handler.consume")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m market_data_tick_handler.consume", description=__doc__.split("::")[0].strip()
    )
    p.add_argument("--symbol", default="BTC-USDT")
    p.add_argument("--timeframe", default="1m")
    p.add_argument("--exchange", help="one exchange (default: every exchange that publishes the symbol)")
    p.add_argument("--redis-url", help=f"default: $REDIS_URL, else {DEFAULT_REDIS_URL}")
    p.add_argument("--last", type=int, default=1, help="start with the last N candles of each stream")
    p.add_argument("--count", type=int, help="exit after N candles")
    p.add_argument(
        "--features", default=DEFAULT_FEATURES, help=f"comma-separated (default: {DEFAULT_FEATURES})"
    )
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    if args.count is not None and args.count < 1:
        p.error("--count must be 1 or more")
    return args


async def consume(args: argparse.Namespace) -> int:
    table = CandleTable(features=[f.strip() for f in args.features.split(",") if f.strip()])
    try:
        stream = LiveFeatureStream(args.symbol, args.timeframe, args.exchange, args.redis_url, last=args.last)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    try:
        async with stream:
            async for candle in stream:
                table(candle)
                if args.count is not None and table.rows >= args.count:
                    break
    except RedisError as exc:  # refused, not dropped (those are retried): e.g. a wrong password
        log.error("cannot read from %s: %s", stream.source, exc)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    try:
        return asyncio.run(consume(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
