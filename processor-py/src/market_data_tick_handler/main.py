"""Command line: ``python -m market_data_tick_handler.main --mode streaming-candles-serve ...``.

Modes, alone or together (comma-separated): ``streaming-candles-serve`` publishes the closed candles to
Redis (or the in-memory bus); ``streaming-candles-bigquery`` writes them, with their features, to the
candle tables; ``streaming-ticks-bigquery`` writes every tick to the tick tables (``ticks_trades``, ...);
``--print-candles`` prints the candles too. Without ``--mode``, streaming.yaml's ``modes`` (serve,
persist, ticks) decide. Each is a sink (``streaming_service/sinks/registry.py``).

``live-instruments-sync`` keeps the instrument definitions of ``live_instruments.exchanges`` (ccxt;
``--markets-dir`` reads ccxt market files instead of the network) current in Redis, a hash per exchange
``instruments:{exchange}`` (changes on ``instruments:changes``), and, when persist mode is configured
(``streaming-candles-bigquery`` among the modes, or ``persist`` in streaming.yaml's ``modes``), in the
``instruments`` table, a row per version. Alone it starts no ingester and makes no candles, and
``--exchanges`` names the instrument exchanges; beside candle modes ``--exchanges`` names both the
streamed exchanges (with their ``--symbols``) and the instrument exchanges.

Where the tables are: BigQuery when a project is set (``--bigquery-project``,
``persist.bigquery.project_id``, ``$GCP_PROJECT_ID``); a local emulator when one is given
(``--bigquery-emulator`` > streaming.yaml's ``persist.bigquery.emulator`` > ``$BIGQUERY_EMULATOR``, each
``http://HOST:REST_PORT,HOST:GRPC_PORT``); otherwise the local store, Parquet files under
``persist.local.path`` (``data/warehouse``) read through DuckDB (``python -m
market_data_tick_handler.query``).

Several exchanges in one session (streaming.yaml's ``ingest.exchanges``): ``--exchanges binance,deribit``
with ``--symbols``, ``--files`` and ``--data-types`` once per exchange, each value prefixed with its
exchange (``--symbols binance:btcusdt,ethusdt --symbols deribit:BTC-PERPETUAL --files binance:a.gz
--files deribit:b.txt``). Without the prefixes, ``--exchange``, ``--symbols``, ``--files`` and
``--data-types`` (the seeds' ``--data-types trades,liquidations,book_snapshots``: what is streamed, by data
type name) are one exchange's.

The configuration is checked before anything starts: an error is one line on stderr and exit code 2.
Redis URL: ``--redis-url`` > streaming.yaml's ``serve.redis_url`` > ``$REDIS_URL`` > redis://localhost:6379;
a password belongs in ``$REDIS_URL`` (an argument shows in the process list).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisError

from .config import (
    REDIS_URL_ENV,
    ConfigError,
    EmulatorConfig,
    IngestConfig,
    IngestExchangeConfig,
    StreamingConfig,
    is_exchange_id,
    load_config,
    validate,
)
from .logging_setup import configure_logging
from .redact import redact_url
from .streaming_service import ledger
from .streaming_service.bigquery_client import WriteRefused
from .streaming_service.console import summary_lines
from .streaming_service.instrument_service import InstrumentMapper
from .streaming_service.service import StreamingService
from .streaming_service.sinks.registry import make_sinks

MODES = (
    "streaming-candles-serve",
    "streaming-candles-bigquery",
    "streaming-ticks-bigquery",
    "live-instruments-sync",
)
#: what each mode of the command line runs: streaming.yaml's `modes` names (sinks/registry.py)
RUNS = {
    "streaming-candles-serve": "serve",
    "streaming-candles-bigquery": "persist",
    "streaming-ticks-bigquery": "ticks",
    "live-instruments-sync": "instruments",
}
log = logging.getLogger("market_data_tick_handler")
#: a local BigQuery emulator's endpoints, ``http://HOST:REST_PORT,HOST:GRPC_PORT``
BIGQUERY_EMULATOR_ENV = "BIGQUERY_EMULATOR"


#: the streaming.yaml key each flag overrides: ``--help`` says "default: <key> = <value>", the value read
#: from config.py's dataclass defaults (so the text cannot drift from them)
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "mode": ("modes",),
    "symbols": ("ingest.symbols",),
    "exchange": ("ingest.exchange",),
    "exchanges": ("ingest.exchanges", "live_instruments.exchanges"),
    "refresh_interval": ("live_instruments.refresh_interval",),
    "markets_dir": ("live_instruments.markets_dir",),
    "source": ("ingest.source",),
    "files": ("ingest.files",),
    "speed": ("ingest.speed",),
    "redis_url": ("serve.redis_url",),
    "transport": ("serve.transport",),
    "bigquery_project": ("persist.bigquery.project_id",),
    "bigquery_target": ("persist.bigquery.target",),
    "bigquery_emulator": ("persist.bigquery.emulator",),
    "endpoint": ("ingest.endpoint",),
    "no_spawn": ("ingest.spawn",),
    "warmup_candles": ("candles.hft_warmup_file",),
    "warmup_bigquery": ("candles.hft_warmup_bigquery",),
    "record": ("ingest.record.enabled", "ingest.record.dir"),
    "metrics_address": ("metrics.address",),
    "no_metrics": ("metrics.enabled",),
    "stop_timeout": ("shutdown.timeout_s",),
}


def config_default(key: str) -> Any:
    """The built-in default of a streaming.yaml key (``serve.redis_url``), from config.py's dataclasses."""
    value: Any = StreamingConfig()
    for part in key.split("."):
        value = getattr(value, part)
    return value


def show_default(value: Any) -> str:
    """A default as streaming.yaml would spell it: a,b for a list, null, true/false."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(getattr(v, "exchange", str(v)) for v in value) or "[]"
    if dataclasses.is_dataclass(value):
        return ",".join(str(getattr(value, f.name)) for f in dataclasses.fields(value))
    return redact_url(value) if isinstance(value, str) and "://" in value else str(value)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The module doc as written; each flag's help ends with its default: the streaming.yaml key it
    overrides and that key's built-in value (``CONFIG_KEYS``), else argparse's default; a flag whose
    help already says ``default:`` is left as it is."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default:" in text or not action.option_strings or action.default is argparse.SUPPRESS:
            return text
        keys = CONFIG_KEYS.get(action.dest)
        if keys:
            shown = "; ".join(f"{k} = {show_default(config_default(k))}" for k in keys)
            return f"{text} (default: {shown})".replace("%", "%%")
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m market_data_tick_handler.main",
        usage="%(prog)s [--mode MODE[,MODE...]] [--config FILE] [options]",
        description=__doc__,
        epilog=_modes_epilog(),
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--mode",
        metavar="MODE[,MODE...]",
        help="comma-separated, any of: " + ", ".join(MODES) + " (without it: streaming.yaml's modes,"
        " serve -> streaming-candles-serve, persist -> streaming-candles-bigquery, ticks ->"
        " streaming-ticks-bigquery)",
    )
    p.add_argument("--config", metavar="FILE", help="streaming.yaml (default: none: the built-in defaults)")
    p.add_argument(
        "--symbol",
        "--symbols",
        dest="symbols",
        action="append",
        metavar="[EXCHANGE:]SYMBOLS",
        help="comma-separated; seeds' form (BTC-USDT) or native (btcusdt); with --exchanges, once per"
        " exchange: binance:btcusdt,ethusdt",
    )
    p.add_argument("--exchange", metavar="ID", help="Tardis exchange id (binance, binance-futures, ...)")
    p.add_argument(
        "--exchanges",
        metavar="A,B",
        help="several exchanges in one session (overrides ingest.exchanges; instead of --exchange), each"
        " with its <exchange>:-prefixed --symbols (and --files, --data-types). With live-instruments-sync"
        " alone: the exchanges whose instrument definitions are kept (overrides live_instruments.exchanges);"
        " beside candle modes: both",
    )
    p.add_argument(
        "--refresh-interval",
        type=_whole_seconds,
        metavar="SECONDS",
        help="live-instruments-sync: seconds between two loads of the markets (overrides"
        " live_instruments.refresh_interval)",
    )
    p.add_argument(
        "--markets-dir",
        metavar="PATH",
        help="live-instruments-sync: read <ccxt id>.json market files from PATH instead of the exchanges"
        " (no network; overrides live_instruments.markets_dir and $MDTH_MARKETS_DIR)",
    )
    p.add_argument(
        "--source", choices=("tardis-realtime", "replay", "synthetic"), help="where ticks come from"
    )
    p.add_argument(
        "--files",
        nargs="+",
        action="extend",
        metavar="[EXCHANGE:]FILES",
        help="recordings to replay (implies --source replay); with --exchanges, each prefixed with its"
        " exchange: binance:a.gz deribit:b.txt",
    )
    p.add_argument(
        "--data-types",
        action="append",
        metavar="EXCHANGE:TYPES",
        help="what to stream, by data type name, some of those enabled under data_types in streaming.yaml:"
        " trades,liquidations,book_snapshots; with --exchanges one exchange's"
        " (deribit:trades,derivative_ticker) (default: every type enabled under data_types)",
    )
    p.add_argument("--speed", metavar="N|max", help="replay speed: 1 (real time), N (N times faster) or max")
    p.add_argument(
        "--redis-url",
        metavar="URL",
        help="overrides serve.redis_url and $REDIS_URL (never logged, but an argument shows in the process"
        " list: pass a password in $REDIS_URL instead)",
    )
    p.add_argument("--transport", choices=("redis", "inmemory"), help="overrides serve.transport")
    p.add_argument("--bigquery-project", metavar="PROJECT", help="overrides persist.bigquery.project_id")
    p.add_argument(
        "--bigquery-target",
        choices=("auto", "live", "historical"),
        help="which dataset persist mode writes to (overrides persist.bigquery.target)",
    )
    p.add_argument(
        "--bigquery-emulator",
        metavar="REST_URL,GRPC_HOST:PORT",
        help="write to a local bqemulator (anonymous credentials) instead of BigQuery (overrides"
        f" persist.bigquery.emulator and ${BIGQUERY_EMULATOR_ENV})",
    )
    p.add_argument("--endpoint", metavar="URL", help="ZeroMQ endpoint to bind (overrides ingest.endpoint)")
    p.add_argument(
        "--no-spawn", action="store_true", help="do not start the Node ingester (it runs elsewhere)"
    )
    p.add_argument(
        "--print-candles",
        nargs="?",
        const="all",
        metavar="TIMEFRAMES",
        help="print closed candles as a table (optionally only these timeframes, e.g. 15s,1m) (default:"
        " off; given alone: every timeframe)",
    )
    p.add_argument(
        "--warmup-candles",
        metavar="FILE",
        help="recent candles (JSON lines as published, or CSV) so the first live candle has full features",
    )
    p.add_argument(
        "--warmup-bigquery",
        action="store_true",
        help="at start, warm the features up from the recent candles of persist mode's BigQuery tables"
        " (persist.bigquery: project, emulator, dataset as persist mode would write them)",
    )
    p.add_argument(
        "--duration",
        type=_seconds,
        metavar="SECONDS",
        help="stop after this long, as SIGTERM does: the ingester ends its session, open candles close as"
        " partial, every sink is flushed and closed (default: none: until the replay ends or a signal)",
    )
    p.add_argument(
        "--record",
        metavar="DIR",
        help="the ingester also writes every raw exchange message it receives to gzip files under DIR, one"
        " per exchange and UTC hour, in the replay format (turns ingest.record on, sets its dir)",
    )
    p.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        help="serve /metrics and /health here (overrides metrics.address; port 0: any free port)",
    )
    p.add_argument("--no-metrics", action="store_true", help="serve no metrics (metrics.enabled: false)")
    p.add_argument(
        "--stop-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, exit within this long; what is not written by then is counted and logged"
        " (overrides shutdown.timeout_s)",
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text lines, or one JSON object per line {ts, level, logger, msg, exc} (the ingester's too,"
        " through $MDTH_LOG_FORMAT); secrets are masked in both",
    )
    p.add_argument(
        "--stats-json",
        type=Path,
        metavar="FILE",
        help="write the final counts and latencies here as JSON (default: none)",
    )
    p.add_argument(
        "--ingest-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument passed to the ingester, repeatable (default: none)",
    )
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        type=str.upper,
        help="the least severe level logged",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _modes_epilog() -> str:
    what = {
        "streaming-candles-serve": "publish closed candles (with features) to Redis (serve.*)",
        "streaming-candles-bigquery": "write candles to BigQuery, an emulator or the local store (persist.*)",
        "streaming-ticks-bigquery": "write every tick to the tick tables (persist.*, data_types.*)",
        "live-instruments-sync": "keep instrument definitions current in Redis (and the instruments table)",
    }
    lines = [f"  {mode:<28} {what[mode]}" for mode in MODES]
    return (
        "modes:\n"
        + "\n".join(lines)
        + (
            "\n\nexit codes: 0 done (everything written, or spilled for the next start); 1 a failure, or"
            " data lost (a\nledger mismatch, or what a stop lost at shutdown.timeout_s); 2 a bad flag or"
            " configuration;\n130/143 a second SIGINT/SIGTERM abandoned the stop"
        )
    )


def _prefixed(value: str) -> tuple[str | None, str]:
    """``<exchange>:<rest>`` -> (exchange, rest) when the text before the first colon is an exchange id
    (lower case: ``BTCF0:USTF0`` is a symbol); anything else -> (None, value)."""
    head, sep, rest = value.partition(":")
    return (head, rest) if sep and is_exchange_id(head) else (None, value)


def _per_exchange(
    values: list[str] | None, option: str, add: bool = False
) -> dict[str | None, tuple[str, ...]]:
    """An option given per exchange (``--symbols binance:a,b``): exchange (None: no prefix) -> its
    comma-separated values; the last value given for an exchange wins, or, ``add``, they add up."""
    out: dict[str | None, tuple[str, ...]] = {}
    for value in values or ():
        exchange, rest = _prefixed(value)
        items = tuple(v.strip() for v in rest.split(",") if v.strip())
        if not items:
            raise ConfigError(f"{option} {value!r}: nothing after the exchange (use {option} {exchange}:a,b)")
        out[exchange] = out.get(exchange, ()) + items if add else items
    return out


def _native(mapper: InstrumentMapper, exchange: str, symbols: tuple[str, ...]) -> tuple[str, ...]:
    """The seeds' form (BTC-USDT) as the exchange's id (btcusdt); a native id as given, lower-cased."""
    return tuple((mapper.to_exchange_symbol(exchange, s) if "-" in s else s).lower() for s in symbols)


def _stream_overrides(ingest: IngestConfig, args: argparse.Namespace) -> dict[str, Any]:
    """The ``ingest`` fields that ``--exchange``/``--exchanges``, ``--symbols``, ``--files`` and
    ``--data-types`` change: the one-exchange form (no prefixes), or ``exchanges`` (``<exchange>:``
    prefixes; with ``--exchanges``, or changing streaming.yaml's ``ingest.exchanges``)."""
    given = {
        "--symbols": _per_exchange(args.symbols, "--symbols"),
        "--files": _per_exchange(args.files, "--files", add=True),
        "--data-types": _per_exchange(args.data_types, "--data-types"),
    }
    symbols, files, data_types = given.values()
    mapper = InstrumentMapper()
    changes: dict[str, Any] = {"source": "replay"} if files else {}
    if args.exchange and args.exchanges:
        raise ConfigError("--exchange and --exchanges: use one (--exchanges a,b for several exchanges)")
    if args.exchanges is None and (args.exchange or not ingest.exchanges):  # one exchange
        for flag, values in given.items():
            prefix = next((x for x in values if x is not None), None)
            if prefix is not None:
                raise ConfigError(
                    f"{flag} {prefix}:...: an exchange's values are for several exchanges"
                    " (use them with --exchanges, or streaming.yaml's ingest.exchanges)"
                )
        if args.exchange:  # instead of streaming.yaml's ingest.exchanges, if it has them
            changes.update(exchange=args.exchange, exchanges=())
            was = next((x for x in ingest.exchanges if x.exchange == args.exchange), None)
            if was is not None:
                changes.update(symbols=was.symbols, files=was.files)
        if None in symbols:
            changes["symbols"] = _native(mapper, changes.get("exchange", ingest.exchange), symbols[None])
        if None in files:
            changes["files"] = files[None]
        if None in data_types:  # the seeds' --data-types trades,liquidations: the one exchange's entry
            exchange = changes.get("exchange", ingest.exchange)
            entry = IngestExchangeConfig(
                exchange,
                changes.get("symbols", ingest.symbols),
                changes.get("files", ingest.files),
                data_types[None],
            )
            one = IngestConfig()
            changes.update(exchanges=(entry,), exchange=one.exchange, symbols=one.symbols, files=())
        return changes
    if args.exchanges is None:
        names, option = [x.exchange for x in ingest.exchanges], "ingest.exchanges"
    else:
        names, option = [x.strip() for x in args.exchanges.split(",") if x.strip()], "--exchanges"
    if not names:
        raise ConfigError("--exchanges: empty (use e.g. --exchanges binance,deribit)")
    for flag, values in given.items():
        if None in values:
            raise ConfigError(
                f"{flag} {','.join(values[None])}: with several exchanges ({option} {','.join(names)}) each"
                f" value needs its exchange: {flag} <exchange>:<values>"
            )
        unknown = [x for x in values if x not in names]
        if unknown:
            raise ConfigError(f"{flag} {unknown[0]}:...: {unknown[0]} is not in {option} {','.join(names)}")
    file_entries = {x.exchange: x for x in ingest.exchanges}
    streams = []
    for name in names:
        was = file_entries.get(name) or IngestExchangeConfig(name, ())
        if name not in symbols and not was.symbols:
            raise ConfigError(f"--exchanges: no symbols for {name} (use --symbols {name}:<ids>)")
        streams.append(
            IngestExchangeConfig(
                name,
                _native(mapper, name, symbols[name]) if name in symbols else was.symbols,
                files.get(name, was.files),
                data_types.get(name, was.data_types),
            )
        )
    one = IngestConfig()  # several exchanges replace the one-exchange form
    return changes | {
        "exchanges": tuple(streams),
        "exchange": one.exchange,
        "symbols": one.symbols,
        "files": (),
    }


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _whole_seconds(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds >= 1")
    return int(text)


def _emulator(value: str, where: str) -> EmulatorConfig:
    """``http://HOST:REST_PORT,HOST:GRPC_PORT`` as the emulator's endpoints."""
    rest_url, _, grpc_target = value.partition(",")
    if not rest_url.startswith("http") or not grpc_target:
        raise ConfigError(
            f"{where}: {value!r}: expected REST_URL,GRPC_HOST:PORT (http://127.0.0.1:9050,127.0.0.1:9060)"
        )
    return EmulatorConfig(rest_url.strip(), grpc_target.strip())


def apply_overrides(
    config: StreamingConfig, args: argparse.Namespace, runs: Collection[str] = ()
) -> StreamingConfig:
    """The command line over the configuration; ``runs``: the sinks of the run (with ``instruments``
    alone, ``--exchanges`` names the instrument exchanges only)."""
    ingest = config.ingest
    alone = set(runs) == {"instruments"}
    if alone:
        given = {"--exchange": args.exchange, "--symbols": args.symbols, "--files": args.files,
                 "--data-types": args.data_types, "--source": args.source}  # fmt: skip
        stream = [flag for flag, value in given.items() if value]
        if stream:
            raise ConfigError(
                f"{', '.join(stream)}: live-instruments-sync alone streams nothing (add a candle mode, e.g."
                " --mode streaming-candles-serve,live-instruments-sync, or leave them out)"
            )
    changes = {} if alone else _stream_overrides(ingest, args)
    instruments = config.live_instruments
    li_changes: dict[str, Any] = {}
    if "instruments" in runs and args.exchanges is not None:
        li_changes["exchanges"] = tuple(x.strip() for x in args.exchanges.split(",") if x.strip())
    if args.refresh_interval is not None:
        li_changes["refresh_interval"] = args.refresh_interval
    if args.markets_dir is not None:
        li_changes["markets_dir"] = args.markets_dir
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
    if args.record:
        changes["record"] = dataclasses.replace(ingest.record, enabled=True, dir=args.record)
    serve = config.serve
    serve_changes: dict = {}
    if args.redis_url:
        serve_changes["redis_url"] = args.redis_url
    if args.transport:
        serve_changes["transport"] = args.transport
    candles = config.candles
    if args.warmup_candles:
        candles = dataclasses.replace(candles, hft_warmup_file=args.warmup_candles)
    if args.warmup_bigquery:
        candles = dataclasses.replace(candles, hft_warmup_bigquery=True)
    bigquery = config.persist.bigquery
    bq_changes: dict = {}
    if args.bigquery_project:
        bq_changes["project_id"] = args.bigquery_project
    if args.bigquery_target:
        bq_changes["target"] = args.bigquery_target
    if args.bigquery_emulator:
        bq_changes["emulator"] = _emulator(args.bigquery_emulator, "--bigquery-emulator")
    elif bigquery.emulator is None and os.environ.get(BIGQUERY_EMULATOR_ENV):
        bq_changes["emulator"] = _emulator(os.environ[BIGQUERY_EMULATOR_ENV], f"${BIGQUERY_EMULATOR_ENV}")
    metrics = config.metrics
    if args.metrics_address:
        metrics = dataclasses.replace(metrics, address=args.metrics_address)
    if args.no_metrics:
        metrics = dataclasses.replace(metrics, enabled=False)
    shutdown = config.shutdown
    if args.stop_timeout is not None:
        shutdown = dataclasses.replace(shutdown, timeout_s=args.stop_timeout)
    return dataclasses.replace(
        config,
        metrics=metrics,
        shutdown=shutdown,
        ingest=dataclasses.replace(ingest, **changes),
        serve=dataclasses.replace(serve, **serve_changes),
        persist=dataclasses.replace(config.persist, bigquery=dataclasses.replace(bigquery, **bq_changes)),
        candles=candles,
        live_instruments=dataclasses.replace(instruments, **li_changes),
    )


def persist_configured(config: StreamingConfig, runs: Collection[str]) -> bool:
    """Persist mode among the run's modes or streaming.yaml's: live-instruments-sync writes the
    instruments table too."""
    return "persist" in runs or "persist" in config.modes


async def run(config: StreamingConfig, args: argparse.Namespace, runs: set[str]) -> int:
    if runs == {"instruments"}:
        return await run_instruments(config, args)
    names = (runs | {"console"}) if args.print_candles else runs
    sinks = make_sinks(names - {"instruments"}, config, {"console": args.print_candles})
    if "instruments" in runs:  # after the stores, before the console (it takes no frames)
        from .streaming_service.sinks.instruments_sync import InstrumentsSync

        sync = InstrumentsSync(config, persist=persist_configured(config, runs))
        sinks.insert(len(sinks) - (1 if args.print_candles else 0), sync)
    service = StreamingService(config, sinks)
    metrics = _start_metrics(config, service)  # /metrics and /health (metrics helper's lines)
    if args.duration is not None:
        asyncio.get_running_loop().call_later(args.duration, _duration_reached, service, args.duration)
    try:
        code = await service.run()
    except WriteRefused as exc:
        log.error("cannot write the tables: %s", exc)
        return 2
    except (ConnectionError, OSError, RedisError) as exc:
        log.error("cannot publish to %s: %s", redact_url(config.serve.redis_url), exc)
        return 2
    stats = service.get_stats()
    if metrics is not None:
        stats["metrics"] = metrics.close()  # the exposition at close: its counters equal the ledger
    stats["latency_us"] = service.latencies.summary()
    lines = summary_lines(stats, service.sinks)
    if "warmup" in stats:
        w = stats["warmup"]
        lines.append(
            f"features warmed up  {', '.join(f'{tf}: {k}' for tf, k in w['candles_by_timeframe'].items())}"
            f" candles from BigQuery (anchor {w['anchor']}; errors {w['errors']})"
        )
    print("\n".join(["", "summary", *lines]), flush=True)
    if args.stats_json:
        args.stats_json.write_text(json.dumps(stats, indent=2, default=str))
    return code


async def run_instruments(config: StreamingConfig, args: argparse.Namespace) -> int:
    """live-instruments-sync alone: no ingester, no candles; until SIGINT/SIGTERM or ``--duration``."""
    from .streaming_service.sinks.instruments_sync import InstrumentsSync

    sync = InstrumentsSync(config, persist=persist_configured(config, {"instruments"}))
    metrics = _start_metrics(config, None, (sync,))  # instrument refreshes, the table's writes, /health
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _instruments_signal, stop, sig)
    if args.duration is not None:
        loop.call_later(args.duration, _instruments_duration, stop, args.duration)
    try:
        try:
            await sync.start()
        except (ConnectionError, OSError, RedisError) as exc:
            log.error("cannot write the instruments to %s: %s", redact_url(config.serve.redis_url), exc)
            await sync.close()
            return 2
        except WriteRefused as exc:
            log.error("cannot write the instruments table: %s", exc)
            await sync.close()
            return 2
        await stop.wait()
        timeout = config.shutdown.timeout_s
        log.info("stopping: the instruments sync ends (within %g s, shutdown.timeout_s)", timeout)
        try:
            await asyncio.wait_for(sync.close(), timeout)
        except TimeoutError:
            log.error(
                "stop: the instruments sync did not close within %g s: what it held is not written", timeout
            )
            return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    entries = sync.ledger_entries({})
    bad = [e for e in entries if not e.ok]
    for e in bad:
        log.error("ledger: %s", e.describe())
    stats: dict[str, Any] = {"instruments": sync.get_stats(), "ledger": [ledger.as_dict(e) for e in entries]}
    if metrics is not None:
        stats["metrics"] = metrics.close()
    lines = [*sync.summary_lines(), *ledger.table(entries)]
    print("\n".join(["", "summary", *lines]), flush=True)
    if args.stats_json:
        args.stats_json.write_text(json.dumps(stats, indent=2, default=str))
    return 1 if bad else 0


def _start_metrics(config: StreamingConfig, service: StreamingService | None, extra: tuple = ()) -> Any:
    """``metrics.enabled``: serve /metrics and /health (``streaming_service/metrics``, docs/OPERATIONS.md);
    None when off. prometheus_client loads only here."""
    if not config.metrics.enabled:
        return None
    from .streaming_service.metrics import start_metrics

    return start_metrics(config, service, extra)


def _instruments_signal(stop: asyncio.Event, sig: int) -> None:
    """SIGINT/SIGTERM: the first stops the sync; a second during the stop exits at once (130/143)."""
    if not stop.is_set():
        stop.set()
        return
    log.error("%s again during the stop: exiting now", signal.Signals(sig).name)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(128 + int(sig))


def _instruments_duration(stop: asyncio.Event, seconds: float) -> None:
    log.info("--duration %g s reached: stopping", seconds)
    stop.set()


def _duration_reached(service: StreamingService, seconds: float) -> None:
    log.info("--duration %g s reached: stopping", seconds)
    service.stop()


def warn_password_in_argv(redis_url: str | None) -> None:
    """``--redis-url`` with a password still works, but every user of the machine can read it in the
    process list (``ps``, /proc/PID/cmdline): say so, without the URL."""
    if redis_url and urlsplit(redis_url).password:
        log.warning(
            "--redis-url carries a password, which any user of this machine can read in the process list;"
            " set it in $%s instead (streaming.yaml's serve.redis_url reads it, and so does the default)",
            REDIS_URL_ENV,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    warn_password_in_argv(args.redis_url)
    runs: set[str] | None = None
    if args.mode is not None:
        modes = [m.strip() for m in args.mode.split(",") if m.strip()]
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            print(f"error: unknown mode(s) {', '.join(unknown)}; modes: {', '.join(MODES)}", file=sys.stderr)
            return 2
        runs = {RUNS[m] for m in modes}
    try:
        if args.config is not None and not Path(args.config).is_file():
            raise ConfigError(f"{args.config}: no such file (--config names a streaming.yaml)")
        loaded = load_config(args.config)
        runs = set(loaded.modes) if runs is None else runs
        config = validate(apply_overrides(loaded, args, runs))
        if "instruments" in runs and not config.live_instruments.enabled:
            raise ConfigError(
                "live-instruments-sync: live_instruments.enabled is false (set it to true to keep the"
                " definitions)"
            )
    except ConfigError as exc:
        return config_error(exc)
    try:
        return asyncio.run(run(config, args, runs))
    except ConfigError as exc:
        return config_error(exc)


def config_error(exc: ConfigError) -> int:
    """A configuration that cannot run: one line on stderr (``error: <file>: <key>: ...``; a YAML
    parser's message folded onto it), exit code 2."""
    print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
