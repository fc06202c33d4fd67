"""Ours, batch: the ready DataFrame (timestamp µs, price, amount, side) to candles on six timeframes, as
the live engine closes them (empty buckets, the last bar partial). Run with the project's Python.

usage: python ours_batch.py objects|table ARRAYS.npz BARS_OUT.json
  objects: ``candles_from_trades`` (a list of ``Candle`` records)
  table:   ``candle_table_from_trades(...).frame()`` (one DataFrame of candles, as ``resample`` gives bars)

The DataFrame is built before the clock starts. A first call on the first 1,000 trades loads (or compiles)
the engine's kernels before the clock starts, as the peers' imports happen before theirs; its time is
reported in the note. The clock times the call on all the trades, REPEATS times (as pandas' ``resample``
is timed): the figure is the median. Prints one JSON line {"trades", "seconds", "bars", "empty", "note"};
the candles go to BARS_OUT.json as [timeframe, bucket start ms, open, high, low, close, volume, trade
count] rows.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from market_data_tick_handler.streaming_service.candle_processor import batch

#: timed calls on all the trades; the figure is their median
REPEATS = 5
TIMEFRAMES = ("15s", "1m", "5m", "15m", "4h", "24h")


def main() -> None:
    kind, src, bars_out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if kind == "table" and not hasattr(batch, "candle_table_from_trades"):
        raise SystemExit("not available: candle_table_from_trades is not in this build")
    arrays = np.load(src)
    df = pd.DataFrame(
        {
            "timestamp": arrays["timestamp"],
            "price": arrays["price"],
            "amount": arrays["amount"],
            "side": np.where(arrays["seller_maker"], "sell", "buy"),
        }
    )
    names = {"exchange": "binance", "exchange_symbol": "BTCUSDT", "timeframes": TIMEFRAMES}
    warm = time.perf_counter()
    if kind == "objects":
        batch.candles_from_trades(df.iloc[:1000], **names)
    elif kind == "table":
        batch.candle_table_from_trades(df.iloc[:1000], **names).frame()
    else:
        raise SystemExit(f"unknown kind {kind!r}: objects or table")
    first_call = time.perf_counter() - warm
    times = []
    for _ in range(REPEATS):  # a call of ~20 ms: the median of a few, as for pandas on the same input
        start = time.perf_counter()
        if kind == "objects":
            candles = batch.candles_from_trades(df, **names)
        else:
            frame = batch.candle_table_from_trades(df, **names).frame()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    if kind == "objects":
        rows = [
            [c.timeframe, c.timestamp_in // 1000, c.open, c.high, c.low, c.close, c.volume, c.trade_count]
            for c in candles
        ]
    else:
        cols = [frame[c].tolist() for c in ("timeframe", "timestamp_in", "open", "high", "low", "close")]
        more = [frame[c].tolist() for c in ("volume", "trade_count")]
        rows = [
            [tf, ts // 1000, o, h, lo, c, v, n]
            for tf, ts, o, h, lo, c, v, n in zip(*cols, *more, strict=True)
        ]
    bars_out.write_text(json.dumps(rows))
    empty = sum(1 for r in rows if r[7] == 0)
    print(
        json.dumps(
            {
                "trades": len(df),
                "seconds": seconds,
                "bars": len(rows),
                "empty": empty,
                "note": f"first call (1,000 trades, kernels loaded), before the clock: {first_call:.3f} s;"
                f" median of {REPEATS} calls: {', '.join(f'{t * 1e3:.1f}' for t in times)} ms",
            }
        )
    )


if __name__ == "__main__":
    main()
