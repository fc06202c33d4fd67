"""Command line: ``python -m market_data_tick_handler.main --mode streaming-candles-serve ...``.

Modes (the seeds' walkthrough 8): ``streaming-candles-serve`` runs the pipeline and publishes candles
to Redis (or the in-memory bus). The BigQuery and instrument modes are not built yet and say so.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from pathlib import Path

from .config import ConfigError, StreamingConfig, load_config
from .logging_setup import configure_logging
from .redact import redact_url
from .streaming_service.console import CandleTable, summary_lines
from .streaming_service.instrument_service import InstrumentMapper
from .streaming_service.modes import ServeMode
from .streaming_service.service import StreamingService

MODES = (
    "streaming-candles-serve",
    "streaming-candles-bigquery",
    "streaming-ticks-bigquery",
    "live-instruments-sync",
)
log = logging.getLogger("market_data_tick_handler")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m market_data_tick_handler.main",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--mode", default="streaming-candles-serve", help="comma-separated: " + ", ".join(MODES))
    p.add_argument("--config", help="streaming.yaml (defaults are built in)")
    p.add_argument(
        "--symbol",
        "--symbols",
        dest="symbols",
        help="comma-separated; seeds' form (BTC-USDT) or native (btcusdt)",
    )
    p.add_argument("--exchange", help="Tardis exchange id (binance, binance-futures, ...)")
    p.add_argument("--source", choices=("tardis-realtime", "replay", "synthetic"))
    p.add_argument("--files", nargs="+", help="recordings to replay (implies --source replay)")
    p.add_argument("--speed", help="replay speed: 1 (real time), N (N times faster) or max")
    p.add_argument("--redis-url", help="overrides serve.redis_url (credentials are never logged)")
    p.add_argument("--transport", choices=("redis", "inmemory"), help="overrides serve.transport")
    p.add_argument("--endpoint", help="ZeroMQ endpoint to bind (overrides ingest.endpoint)")
    p.add_argument(
        "--no-spawn", action="store_true", help="do not start the Node ingester (it runs elsewhere)"
    )
    p.add_argument(
        "--print-candles",
        nargs="?",
        const="all",
        metavar="TIMEFRAMES",
        help="print closed candles as a table (optionally only these timeframes, e.g. 15s,1m)",
    )
    p.add_argument(
        "--warmup-candles",
        metavar="FILE",
        help="recent candles (JSON lines as published, or CSV) so the first live candle has full features",
    )
    p.add_argument("--stats-json", type=Path, help="write the final counts and latencies here as JSON")
    p.add_argument("--ingest-arg", action="append", default=[], help="extra argument passed to the ingester")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def apply_overrides(config: StreamingConfig, args: argparse.Namespace) -> StreamingConfig:
    ingest = config.ingest
    changes: dict = {}
    if args.exchange:
        changes["exchange"] = args.exchange
    exchange = changes.get("exchange", ingest.exchange)
    if args.symbols:
        mapper = InstrumentMapper()
        changes["symbols"] = tuple(
            (mapper.to_exchange_symbol(exchange, s) if "-" in s else s).lower()
            for s in args.symbols.split(",")
            if s
        )
    if args.files:
        changes["files"] = tuple(f for arg in args.files for f in arg.split(",") if f)
        changes["source"] = "replay"
    if args.source:
        changes["source"] = args.source
    if args.speed:
        changes["speed"] = args.speed
    if args.endpoint:
        changes["endpoint"] = args.endpoint
    if args.no_spawn:
        changes["spawn"] = False
    if args.ingest_arg:
        changes["extra_args"] = ingest.extra_args + tuple(args.ingest_arg)
    serve = config.serve
    serve_changes: dict = {}
    if args.redis_url:
        serve_changes["redis_url"] = args.redis_url
    if args.transport:
        serve_changes["transport"] = args.transport
    candles = config.candles
    if args.warmup_candles:
        candles = dataclasses.replace(candles, hft_warmup_file=args.warmup_candles)
    return dataclasses.replace(
        config,
        ingest=dataclasses.replace(ingest, **changes),
        serve=dataclasses.replace(serve, **serve_changes),
        candles=candles,
    )


async def run_serve(config: StreamingConfig, args: argparse.Namespace) -> int:
    table = None
    if args.print_candles:
        tfs = None if args.print_candles == "all" else set(args.print_candles.split(","))
        table = CandleTable(timeframes=tfs)
    service = StreamingService(config, serve=ServeMode(config.serve), on_candle=table)
    try:
        code = await service.run()
    except (ConnectionError, OSError) as exc:
        log.error("cannot publish to %s: %s", redact_url(config.serve.redis_url), exc)
        return 2
    stats = service.get_stats()
    stats["latency_us"] = service.latencies.summary()
    print("\n".join(["", "summary", *summary_lines(stats)]), flush=True)
    if args.stats_json:
        args.stats_json.write_text(json.dumps(stats, indent=2, default=str))
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        print(f"error: unknown mode(s) {', '.join(unknown)}; modes: {', '.join(MODES)}", file=sys.stderr)
        return 2
    not_built = [m for m in modes if m != "streaming-candles-serve"]
    if not_built:
        print(f"error: mode(s) {', '.join(not_built)} are not available in this version", file=sys.stderr)
        return 2
    try:
        config = apply_overrides(load_config(args.config), args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_serve(config, args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
