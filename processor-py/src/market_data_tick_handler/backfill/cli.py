"""``python -m market_data_tick_handler.backfill``: history from Tardis' trade CSV datasets (or the
project's ``<ns> <json>`` recordings) into the candle tables, with features, and with ``--ticks`` the
``ticks_trades`` table, through the processor's own candle engine, feature stage and sinks (``runner.py``).

Exit codes, as ``main``'s: 0 every day of the range done (now or by an earlier run); 1 a failure (a
missing or unusable input file, a store that refuses the rows); 2 a bad flag or configuration; 130/143
stopped by SIGINT/SIGTERM before the end (what was done is recorded: run the same command again to
resume).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from ..config import ConfigError, StreamingConfig, load_config, validate
from ..logging_setup import configure_logging
from ..streaming_service.instrument_service import InstrumentMapper
from .progress import Progress
from .runner import Backfill, SymbolJob
from .sources import DayTrades, SourceError, day_of_us, iter_tardis_trades, read_recordings, tardis_path

log = logging.getLogger("market_data_tick_handler.backfill")
EPILOG = """\
inputs:
  --data-dir DIR         Tardis' downloadable datasets: DIR/<exchange>_trades_<YYYY-MM-DD>_<SYMBOL>.csv.gz
                         (gzip CSV, exchange,symbol,timestamp,local_timestamp,id,side,price,amount; µs)
  --recordings FILE...   the project's <ns> <json> recordings of raw Binance /stream frames (trade frames
                         are used, other lines counted and skipped); days are UTC days of the local time

where rows go: BigQuery when a project is set (--bigquery-project, persist.bigquery.project_id,
$GCP_PROJECT_ID), an emulator when one is given, otherwise the local store (--store, persist.local.path);
the historical dataset (persist.bigquery.dataset_historical) unless persist.bigquery.target says otherwise.
Progress per (exchange, symbol, day) is kept in <store>/_backfill/ (BigQuery: --state-dir): a day is
recorded once its rows are written; run the same command again to resume after a stop.

exit codes: 0 done; 1 a failure (an input missing or unusable, rows refused); 2 a bad flag or
configuration; 130/143 stopped by SIGINT/SIGTERM (progress kept: run again to resume)
"""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m market_data_tick_handler.backfill",
        description="Candles with features (and optionally the trade tick table) from Tardis trade CSV"
        " datasets or <ns> <json> recordings, through the processor's candle engine and sinks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--exchange", default="binance", help="tardis exchange id (default: binance)")
    p.add_argument(
        "--symbols", required=True, help="comma-separated, ours (BTC-USDT) or the exchange's (BTCUSDT)"
    )
    p.add_argument("--from", dest="start", type=_day, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--to", dest="end", type=_day, help="last day, inclusive (default: --from)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-dir", type=Path, help="folder of Tardis trade CSV files")
    source.add_argument("--recordings", type=Path, nargs="+", metavar="FILE", help="<ns> <json> recordings")
    p.add_argument(
        "--format",
        choices=("tardis-csv", "recording"),
        help="what --data-dir holds (default: tardis-csv); recording: every *.gz in it, in name order",
    )
    p.add_argument("--ticks", action="store_true", help="write the trades to ticks_trades too")
    p.add_argument("--config", metavar="FILE", help="streaming.yaml (default: none: the built-in defaults)")
    p.add_argument("--store", metavar="DIR", help="the local store (default: persist.local.path)")
    p.add_argument("--bigquery-project", metavar="PROJECT", help="write to BigQuery in PROJECT")
    p.add_argument("--bigquery-emulator", metavar="REST_URL,GRPC", help="a BigQuery emulator's endpoints")
    p.add_argument("--state-dir", type=Path, help="where progress is kept (default: <store>/_backfill)")
    p.add_argument("--force", action="store_true", help="do the range again even where recorded as done")
    p.add_argument("--no-warmup", action="store_true", help="do not warm features up from stored candles")
    p.add_argument("--log-level", default="INFO", type=str.upper,
                   choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))  # fmt: skip
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    return p


def _config(args: argparse.Namespace) -> StreamingConfig:
    import os

    config = load_config(args.config)
    bq = config.persist.bigquery
    changes: dict = {}
    if args.bigquery_project:
        changes["project_id"] = args.bigquery_project
    emulator = args.bigquery_emulator or (
        os.environ.get("BIGQUERY_EMULATOR") if bq.emulator is None else None
    )
    if emulator:
        from ..main import _emulator

        changes["emulator"] = _emulator(emulator, "--bigquery-emulator")
    persist = dataclasses.replace(config.persist, bigquery=dataclasses.replace(bq, **changes))
    if args.store:
        persist = dataclasses.replace(persist, local=dataclasses.replace(persist.local, path=args.store))
    return validate(dataclasses.replace(config, persist=persist))


def _state_dir(args: argparse.Namespace, config: StreamingConfig) -> Path:
    if args.state_dir is not None:
        return args.state_dir
    bq = config.persist.bigquery
    if not bq.configured():
        return Path(config.persist.local.path) / "_backfill"
    where = bq.project_id or "emulator"
    return Path("data") / "backfill" / where


def _symbols(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(ours, the exchange's) of each ``--symbols`` entry."""
    mapper = InstrumentMapper()
    out = []
    for text in (s.strip() for s in args.symbols.split(",")):
        if not text:
            continue
        try:
            ours = mapper.normalize(args.exchange, text)
            native = mapper.to_exchange_symbol(args.exchange, ours)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"--symbols: {text!r} on {args.exchange}: {exc}") from None
        out.append((ours, native.upper()))
    if not out:
        raise ConfigError("--symbols: no symbol given")
    return out


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]


def _jobs(args: argparse.Namespace) -> list[SymbolJob]:
    """One job per symbol; raises SourceError for inputs missing before anything is written."""
    symbols = _symbols(args)
    recordings = args.recordings
    if args.format == "recording":
        if args.data_dir is None:
            raise ConfigError("--format recording reads --data-dir (or give --recordings FILE...)")
        recordings = sorted(args.data_dir.glob("*.gz"))
        if not recordings:
            raise SourceError(f"{args.data_dir}: no *.gz recording in it")
    jobs = []
    if recordings is not None:
        for ours, native in symbols:
            by_day = read_recordings(list(recordings), native)
            if not by_day:
                raise SourceError(f"no trade of {native} in {', '.join(map(str, recordings))}")
            start = args.start or min(by_day)
            end = args.end or (max(by_day) if args.start is None else start)
            days = _days(start, end)
            missing = [d for d in days if d not in by_day]
            if missing:
                log.warning("the recordings hold no trade of %s on %s", native, ", ".join(map(str, missing)))

            def read(day: date, by_day: dict[date, DayTrades] = by_day) -> Iterator[DayTrades]:
                import numpy as np

                got = by_day.get(day)
                if got is None:
                    empty = np.zeros(0, dtype=np.int64)
                    got = DayTrades(day, empty, empty, empty.astype(float), empty.astype(float),
                                     empty.astype(np.uint8), [], "(none)")  # fmt: skip
                yield got

            sizes = {d: by_day[d].nbytes for d in days if d in by_day}
            jobs.append(SymbolJob(args.exchange, ours, native, days, read, sizes))
        return jobs
    if args.start is None:
        raise ConfigError("--from is needed with --data-dir")
    end = args.end or args.start
    if end < args.start:
        raise ConfigError(f"--to {end} is before --from {args.start}")
    for ours, native in symbols:
        days = _days(args.start, end)
        paths = {d: tardis_path(args.data_dir, args.exchange, d, native) for d in days}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing:
            raise SourceError(f"missing day file(s) of {args.exchange} {native}: {', '.join(missing)}")

        def read(day: date, paths: dict[date, Path] = paths, native: str = native) -> Iterator[DayTrades]:
            return iter_tardis_trades(paths[day], args.exchange, native, day)

        jobs.append(
            SymbolJob(
                args.exchange, ours, native, days, read, {d: p.stat().st_size for d, p in paths.items()}
            )
        )
    return jobs


async def run(args: argparse.Namespace, config: StreamingConfig, jobs: list[SymbolJob]) -> int:
    from ..streaming_service.bigquery_client import WriteRefused
    from ..streaming_service.modes.persist_mode import PersistMode, make_sink
    from ..streaming_service.sinks.bigquery_ticks import TicksMode
    from .runner import backfill_config

    # the sinks take the dataset and tables of the run's configuration (a replay: historical)
    first = backfill_config(config, jobs[0].exchange, jobs[0].exchange_symbol)
    bq, local = first.persist.bigquery, first.persist.local.path
    sinks = [PersistMode(bq, first.candles.timeframes, "replay", make_sink(bq, local), spill=first.persist)]
    if args.ticks:
        sinks.append(TicksMode(first, "replay", make_sink(bq, local)))
    progress = Progress(
        total_days=sum(len(j.days) for j in jobs), total_bytes=sum(sum(j.sizes.values()) for j in jobs)
    )

    async def start_sinks() -> None:
        for sink in sinks:
            await sink.start()

    # the tables are checked or made (in threads) while the first symbol's reader and processor are made
    started = asyncio.ensure_future(start_sinks())
    await asyncio.sleep(0)  # its first table is in a thread from here on
    backfill = Backfill(
        config, sinks, _state_dir(args, config), progress, args.force, not args.no_warmup, ready=started
    )
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(sig: int) -> None:
        received.append(sig)
        log.warning(
            "%s: stopping after the frame in hand; the days done are recorded", signal.Signals(sig).name
        )
        backfill.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    code = 0
    try:
        for job in jobs:
            if not await backfill.run(job):
                break
        await started  # (when no job needed the sinks: every day was done before)
    except WriteRefused as exc:
        log.error("cannot write the tables: %s", exc)
        code = 1
    except SourceError as exc:
        log.error("%s", exc)
        code = 1
    finally:
        await asyncio.gather(started, return_exceptions=True)  # not still starting as the sinks close
        for sink in sinks:
            await sink.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        progress.close()
    o = backfill.outcome
    lost = sum(s.get_stats().get("rows_lost", 0) + s.get_stats().get("rows_refused", 0) for s in sinks)
    bad = ", ".join(f"{k} {v}" for k, v in sorted(o.bad_rows.items())) or "none"
    print(
        "\nsummary\n"
        f"days                {o.days_done} done now, {o.days_skipped} done before\n"
        f"trades              {o.trades} (bad rows skipped: {bad})\n"
        f"candles             {o.candles}\n" + "\n".join(line for s in sinks for line in s.summary_lines()),
        flush=True,
    )
    if lost:
        log.error("%d rows were not written (lost or refused)", lost)
        code = code or 1
    if received and o.stopped:
        return 128 + received[0]
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    if args.format == "recording" and args.recordings:
        args.format = None
    try:
        config = _config(args)
        jobs = _jobs(args)
    except ConfigError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except SourceError as exc:
        log.error("%s", exc)
        return 1
    try:
        return asyncio.run(run(args, config, jobs))
    except ConfigError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


__all__ = ["build_parser", "day_of_us", "main"]
