"""Ours, batch: ``candles_from_trades`` on the ready DataFrame (timestamp µs, price, amount, side), six
timeframes, as the live engine closes them (empty buckets, the last bar partial). Run with the project's
Python.

usage: python ours_batch.py ARRAYS.npz BARS_OUT.json

The DataFrame is built before the clock starts; the clock times ``candles_from_trades`` alone (its first
call in the process, so any compilation it needs is in it). Prints one JSON line {"trades", "seconds",
"bars", "empty"}; the candles go to BARS_OUT.json as [timeframe, bucket start ms, open, high, low,
close, volume, trade count] rows.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from market_data_tick_handler.streaming_service.candle_processor.batch import candles_from_trades

TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")


def main() -> None:
    src, bars_out = Path(sys.argv[1]), Path(sys.argv[2])
    arrays = np.load(src)
    df = pd.DataFrame(
        {
            "timestamp": arrays["timestamp"],
            "price": arrays["price"],
            "amount": arrays["amount"],
            "side": np.where(arrays["seller_maker"], "sell", "buy"),
        }
    )
    start = time.perf_counter()
    candles = candles_from_trades(df, exchange="binance", exchange_symbol="BTCUSDT", timeframes=TIMEFRAMES)
    seconds = time.perf_counter() - start
    rows = [
        [c.timeframe, c.timestamp_in // 1000, c.open, c.high, c.low, c.close, c.volume, c.trade_count]
        for c in candles
    ]
    bars_out.write_text(json.dumps(rows))
    empty = sum(1 for c in candles if c.trade_count == 0)
    print(json.dumps({"trades": len(df), "seconds": seconds, "bars": len(rows), "empty": empty}))


if __name__ == "__main__":
    main()
