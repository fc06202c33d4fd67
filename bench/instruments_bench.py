"""Live instrument definitions (issue 17): instruments loaded per exchange and the time to load each, from
``markets_dir`` (shared/data/ccxt-markets, through ccxt's ``set_markets``) and through a local server of the
raw exchange payloads (ccxt's real ``load_markets(True)``: HTTP, JSON, ccxt's parsing); then the cost of
``await get_instrument`` from the cache, for the same instrument in our spelling, ccxt's and the native id
(the execution service's hot path; aim < 2 µs), and of a miss. Loads through the server include ccxt's
rate limiter (``enableRateLimit``: Binance's exchangeInfo weighs 4 x 50 ms, Deribit asks twice), as they
would against the exchange. The Tardis exchanges of one ccxt exchange (okex, okex-swap, okex-options) share
one load: their lines show the same load.

Run: ``.venv/bin/python bench/instruments_bench.py`` (no network).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pipeline_bench import machine

from market_data_tick_handler.streaming_service import LiveInstrumentProvider
from support.ccxt_server import MARKETS, CcxtServer

FILE_EXCHANGES = (
    "binance", "binance-futures", "binance-delivery", "deribit", "coinbase", "okex", "okex-swap",
    "okex-options", "bybit", "bybit-spot", "bybit-options", "kraken", "bitmex", "cryptofacilities",
)  # fmt: skip
SERVER_EXCHANGES = (
    "binance", "binance-futures", "binance-delivery", "deribit", "okex", "okex-swap", "okex-options", "bybit",
    "bybit-spot", "bybit-options",
)  # fmt: skip
CALLS = 200_000


async def loads(title: str, provider: LiveInstrumentProvider) -> None:
    print(f"\n{title}", flush=True)
    async with provider as p:
        for _ in range(5):  # warm: ccxt's first parse of each exchange
            await p.refresh()
        times: dict[str, list[float]] = {e: [] for e in p.exchanges}
        for _ in range(20):
            for exchange in p.exchanges:
                t = time.perf_counter()
                await p.refresh([exchange])
                times[exchange].append(time.perf_counter() - t)
        print(f"  {'exchange':18} {'ccxt id':15} {'instruments':>11} {'load ms (median of 20)':>24}")
        for exchange in p.exchanges:
            median = sorted(times[exchange])[len(times[exchange]) // 2]
            print(
                f"  {exchange:18} {p.stats['exchanges'][exchange]['ccxt_exchange']:15} "
                f"{len(p.instruments(exchange)):>11} {median * 1e3:>24.2f}"
            )


async def lookups() -> None:
    async with LiveInstrumentProvider(FILE_EXCHANGES, markets_dir=str(MARKETS)) as p:
        print(f"\nget_instrument from the cache ({CALLS:,} awaited calls each, best of 5)")
        get = p.get_instrument
        for exchange, name in (
            ("binance", "BTC-USDT"), ("binance", "BTC/USDT"), ("binance", "BTCUSDT"),
            ("deribit", "BTC-USD-240126-39000-C"), ("deribit", "BTC/USD:BTC-240126-39000-C"),
            ("deribit", "BTC-26JAN24-39000-C"), ("binance", "btcusdt"),
        ):  # fmt: skip
            best = float("inf")
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(CALLS):
                    await get(exchange, name)
                best = min(best, time.perf_counter() - t)
            print(f"  {exchange:8} {name:28} {best / CALLS * 1e6:6.3f} µs")
        t = time.perf_counter()
        for _ in range(1000):
            with contextlib.suppress(KeyError):
                await get("binance", "NOPE-USDT")
        print(f"  a miss (KeyError)                     {(time.perf_counter() - t) / 1000 * 1e6:6.3f} µs")


async def main() -> None:
    print(f"machine: {machine()}", flush=True)
    await loads("from markets_dir (set_markets, no network)", LiveInstrumentProvider(
        FILE_EXCHANGES, refresh_interval=3600, markets_dir=str(MARKETS)))  # fmt: skip
    server = CcxtServer().start()
    try:
        await loads("through the local server (load_markets(True))", LiveInstrumentProvider(
            SERVER_EXCHANGES, refresh_interval=3600, api_url=server.url))  # fmt: skip
    finally:
        server.stop()
    await lookups()


if __name__ == "__main__":
    asyncio.run(main())
