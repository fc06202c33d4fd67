"""cryptofeed, offline: its Binance feed's ``message_handler`` fed each recorded frame, trades into a plain
OHLCV aggregator. Run with .venv-bench's Python (``make bench-env``).

usage: python cryptofeed_bars.py RECORDING.gz BARS_OUT.json

cryptofeed subscribes Binance's ``aggTrade`` stream for TRADES and its handler only knows ``aggTrade``
events, so before the clock starts each recorded ``trade`` frame is rewritten as the aggTrade of that one
trade (stream ``@aggTrade``, ``"e":"aggTrade"``, ``"a"`` = the trade id, ``"f"`` = ``"l"`` = the trade id;
price, quantity, times and maker flag unchanged) into a twin recording. The symbol table comes from
cryptofeed's own parser (``Binance._parse_symbol_data``) over a one-symbol exchangeInfo, so nothing
touches the network. The clock: from opening the twin to the last bar, imports excluded.

The aggregator (cryptofeed's own ``backends.aggregate.OHLCV`` windows on the WALL clock, so it cannot
bucket a replay): per timeframe, bucket = floor(trade time ms / interval), a bar is emitted when a trade
of a later bucket arrives and the in-progress bars at the end; no bars for empty buckets; Decimal
arithmetic on cryptofeed's Decimal price and amount. Prints one JSON line {"trades", "seconds", "bars"}.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import time
from pathlib import Path

from cryptofeed.defines import TRADES
from cryptofeed.exchanges import Binance
from cryptofeed.symbols import Symbols

TIMEFRAMES = {"15s": 15_000, "1m": 60_000, "5m": 300_000, "15m": 900_000, "4h": 14_400_000, "24h": 86_400_000}
EXCHANGE_INFO = {
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "quoteAsset": "USDT",
            "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.01000000"}],
        }
    ]
}


def aggtrade_twin(src: Path, dst: Path) -> None:
    with gzip.open(src, "rt") as lines, gzip.open(dst, "wt", compresslevel=1) as out:
        for number, line in enumerate(lines, 1):
            ns, _, raw = line.rstrip("\n").partition(" ")
            try:
                msg = json.loads(raw)
            except ValueError as exc:
                raise SystemExit(f"{src}:{number}: {exc}") from None
            data = msg.get("data", {})
            if data.get("e") != "trade":
                continue
            agg = {"e": "aggTrade", "E": data["E"], "s": data["s"], "a": data["t"], "p": data["p"],
                   "q": data["q"], "f": data["t"], "l": data["t"], "T": data["T"], "m": data["m"],
                   "M": data["M"]}  # fmt: skip
            stream = msg["stream"].replace("@trade", "@aggTrade")
            out.write(f"{ns} {json.dumps({'stream': stream, 'data': agg}, separators=(',', ':'))}\n")


class Aggregator:
    def __init__(self) -> None:
        self.open: dict[str, list] = {}  # timeframe -> [bucket, o, h, l, c, v, n]
        self.bars: list[list] = []
        self.trades = 0

    async def __call__(self, trade, receipt_timestamp: float) -> None:
        self.trades += 1
        ms = round(trade.timestamp * 1000)
        price, amount = trade.price, trade.amount
        for tf, interval in TIMEFRAMES.items():
            bucket = ms // interval
            bar = self.open.get(tf)
            if bar is not None and bar[0] != bucket:
                self.bars.append([tf, *bar])
                bar = None
            if bar is None:
                self.open[tf] = [bucket, price, price, price, price, amount, 1]
            else:
                if price > bar[2]:
                    bar[2] = price
                if price < bar[3]:
                    bar[3] = price
                bar[4] = price
                bar[5] += amount
                bar[6] += 1

    def finish(self) -> None:
        for tf, bar in self.open.items():
            self.bars.append([tf, *bar])
        self.open = {}


async def run(twin: Path, aggregator: Aggregator) -> None:
    feed = Binance(symbols=["BTC-USDT"], channels=[TRADES], callbacks={TRADES: aggregator})
    handler = feed.message_handler
    with gzip.open(twin, "rt") as lines:
        for line in lines:
            ns, _, raw = line.partition(" ")
            await handler(raw, None, int(ns) / 1e9)
    aggregator.finish()


def main() -> None:
    src, bars_out = Path(sys.argv[1]), Path(sys.argv[2])
    twin = bars_out.with_name(bars_out.stem + "-aggtrade.gz")
    aggtrade_twin(src, twin)
    syms, info = Binance._parse_symbol_data(EXCHANGE_INFO)
    Symbols.set(Binance.id, syms, info)
    aggregator = Aggregator()
    start = time.perf_counter()
    # FeedHandler runs its feeds on uvloop when it is installed (cryptofeed requires it); so do we
    try:
        import uvloop

        uvloop.run(run(twin, aggregator))
    except ImportError:
        asyncio.run(run(twin, aggregator))
    seconds = time.perf_counter() - start
    twin.unlink()
    rows = [
        [tf, bucket * TIMEFRAMES[tf], float(o), float(h), float(lo), float(c), float(v), n]
        for tf, bucket, o, h, lo, c, v, n in aggregator.bars
    ]
    bars_out.write_text(json.dumps(rows))
    print(json.dumps({"trades": aggregator.trades, "seconds": seconds, "bars": len(rows)}))


if __name__ == "__main__":
    main()
