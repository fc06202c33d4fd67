"""Tardis-format trade CSV files built from the project's ``<ns> <json>`` recordings of raw Binance
``/stream`` frames, for tests and benchmarks of the backfill (``market_data_tick_handler.backfill``).

The files are in the exact format of Tardis' downloadable datasets (``../shared/notes/tardis.md``): gzip
CSV named ``<exchange>_trades_<YYYY-MM-DD>_<SYMBOL>.csv.gz``, header
``exchange,symbol,timestamp,local_timestamp,id,side,price,amount``, times in microseconds since the
epoch. Each trade frame ``{"stream":"btcusdt@trade","data":{"T":ms,"t":id,"p":"..","q":"..","m":bool}}``
of the symbol becomes one row: ``timestamp`` = T * 1000, ``local_timestamp`` = the line's ns // 1000,
``side`` = ``sell`` when the buyer was the maker (``m``, the taker sold) else ``buy``, ``id`` = t, and
``price`` / ``amount`` the frame's strings as they are. Rows go to the file of the UTC day of their
``local_timestamp``, in the order of the recordings (which is local-time order, as Tardis orders its
files). Other lines (book updates, tickers, the depth snapshot) are skipped.

``python -m market_data_tick_handler.devtools.tardis_csv OUT_DIR RECORDING...`` does the same from the
command line.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import orjson

from ..backfill.sources import TRADE_FIELDS

HEADER = b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
US_PER_DAY = 86_400_000_000


def tardis_file_name(exchange: str, data_type: str, day: str, symbol: str) -> str:
    """Tardis' dataset file name: ``binance_trades_2024-08-08_BTCUSDT.csv.gz``."""
    return f"{exchange}_{data_type}_{day}_{symbol}.csv.gz"


def _day(local_us: int) -> str:
    return datetime.fromtimestamp(local_us // US_PER_DAY * 86_400, UTC).strftime("%Y-%m-%d")


def write_tardis_trades_csv(
    recording_paths: Iterable[str | Path],
    out_dir: str | Path,
    exchange: str = "binance",
    symbol: str = "BTCUSDT",
    compresslevel: int = 1,
) -> list[Path]:
    """Write the trades of ``symbol`` in the recordings (in the order given) as Tardis trade CSVs under
    ``out_dir``, one per UTC day of the local time; returns the files written, in day order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stream = f'"{symbol.lower()}@trade"'.encode()
    prefix = f"{exchange},{symbol},".encode()
    head = b'{"stream":' + stream + b',"data":{'  # a frame as Binance writes it
    files: dict[int, tuple[Path, IO[bytes]]] = {}
    try:
        for recording in recording_paths:
            with gzip.open(recording, "rb") if str(recording).endswith(".gz") else open(recording, "rb") as f:
                for line in f:
                    if stream not in line:
                        continue
                    ns, _, payload = line.partition(b" ")
                    fields = TRADE_FIELDS.search(payload) if payload.startswith(head) else None
                    if fields is not None:
                        trade_id, price, qty, t_ms, maker = fields.groups()
                        t_ms, trade_id, maker = int(t_ms), int(trade_id), maker == b"true"
                    else:
                        message = orjson.loads(payload)
                        if message.get("stream") != stream[1:-1].decode():
                            continue
                        d = message["data"]
                        t_ms, trade_id, maker = d["T"], d["t"], d["m"]
                        price, qty = d["p"].encode(), d["q"].encode()
                    local_us = int(ns) // 1000
                    day = local_us // US_PER_DAY
                    entry = files.get(day)
                    if entry is None:
                        path = out / tardis_file_name(exchange, "trades", _day(local_us), symbol)
                        raw = gzip.open(path, "wb", compresslevel=compresslevel)  # noqa: SIM115 (closed below)
                        handle = io.BufferedWriter(raw, 1 << 20)  # type: ignore[arg-type]
                        handle.write(HEADER)
                        entry = files[day] = (path, handle)
                    entry[1].write(
                        b"%s%d,%d,%d,%s,%s,%s\n"
                        % (
                            prefix,
                            t_ms * 1000,
                            local_us,
                            trade_id,
                            b"sell" if maker else b"buy",
                            price,
                            qty,
                        )
                    )
    finally:
        for _, handle in files.values():
            handle.close()
    return [files[day][0] for day in sorted(files)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m market_data_tick_handler.devtools.tardis_csv",
        description="Tardis-format trade CSVs (one per UTC day of local time) from <ns> <json> recordings"
        " of raw Binance /stream frames.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("recordings", nargs="+", type=Path)
    parser.add_argument("--exchange", default="binance", help="the tardis exchange id (default: binance)")
    parser.add_argument("--symbol", default="BTCUSDT", help="exchange-native symbol (default: BTCUSDT)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.recordings if not p.is_file()]
    if missing:
        print(f"error: no such recording: {', '.join(missing)}", file=sys.stderr)
        return 2
    for path in write_tardis_trades_csv(args.recordings, args.out_dir, args.exchange, args.symbol):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
