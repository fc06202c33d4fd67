"""pandas: OHLCV + trade counts on six timeframes with ``DataFrame.resample`` (origin epoch, closed left,
label left), as pandas' time-series guide does it. Run with .venv-bench's Python (``make bench-env``).

usage:
  python pandas_bars.py frames RECORDING.gz BARS_OUT.json
      raw frames: stdlib ``json.loads`` per line, the trade rows into a DataFrame, resample; the clock runs
      from opening the recording to the last bar.
  python pandas_bars.py frame ARRAYS.npz BARS_OUT.json
      the ready DataFrame (timestamp as datetime64[us, UTC], price, amount, side), built before the clock
      starts; the clock times the resample and its aggregations alone, the median of REPEATS calls.

Empty buckets inside the data's span are rows with a zero count and no prices (as resample makes them).
Prints one JSON line {"trades", "seconds", "bars", "note"}; the bars go to BARS_OUT.json.
"""

from __future__ import annotations

import gzip
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: timed calls on the ready DataFrame; the figure is their median
REPEATS = 5
RULES = {"15s": "15s", "1m": "1min", "5m": "5min", "15m": "15min", "4h": "4h", "24h": "24h"}


def resample_all(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    out = {}
    for tf, rule in RULES.items():
        r = df.resample(rule, on="timestamp", origin="epoch", closed="left", label="left")
        bars = r["price"].ohlc()
        bars["volume"] = r["amount"].sum()
        bars["trades"] = r["price"].count()
        out[tf] = bars
    return out


def frame_from_frames(path: Path) -> pd.DataFrame:
    ts, price, amount, side = [], [], [], []
    with gzip.open(path, "rt") as lines:
        for number, line in enumerate(lines, 1):
            try:
                data = json.loads(line[line.index(" ") + 1 :])["data"]
            except (ValueError, KeyError) as exc:
                raise SystemExit(f"{path}:{number}: {exc!r}") from None
            if data.get("e") != "trade":
                continue
            ts.append(data["T"])
            price.append(float(data["p"]))
            amount.append(float(data["q"]))
            side.append("sell" if data["m"] else "buy")
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(np.array(ts, dtype=np.int64), unit="ms", utc=True),
            "price": price,
            "amount": amount,
            "side": side,
        }
    )


def ready_frame(path: Path) -> pd.DataFrame:
    arrays = np.load(path)
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(arrays["timestamp"], unit="us", utc=True),
            "price": arrays["price"],
            "amount": arrays["amount"],
            "side": np.where(arrays["seller_maker"], "sell", "buy"),
        }
    )


def rows(bars: dict[str, pd.DataFrame]) -> list[list]:
    out = []
    for tf, frame in bars.items():
        starts = frame.index.as_unit("ms").asi8.tolist()
        cols = [frame[c].tolist() for c in ("open", "high", "low", "close", "volume", "trades")]
        for i, start in enumerate(starts):
            values = [None if isinstance(c[i], float) and math.isnan(c[i]) else c[i] for c in cols]
            out.append([tf, start, *values])
    return out


def main() -> None:
    kind, src, bars_out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    if kind == "frames":
        start = time.perf_counter()
        df = frame_from_frames(src)
        bars = resample_all(df)
        seconds, note = time.perf_counter() - start, ""
    elif kind == "frame":
        df = ready_frame(src)
        times = []
        for _ in range(REPEATS):  # a call of ~0.2 s: the median of a few, as for ours on the same input
            start = time.perf_counter()
            bars = resample_all(df)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        note = f"median of {REPEATS} calls: {', '.join(f'{t * 1e3:.1f}' for t in times)} ms"
    else:
        raise SystemExit(f"unknown input kind {kind!r}: frames or frame")
    out = rows(bars)
    bars_out.write_text(json.dumps(out))
    print(json.dumps({"trades": len(df), "seconds": seconds, "bars": len(out), "note": note}))


if __name__ == "__main__":
    main()
