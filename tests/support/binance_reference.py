"""Expected candles computed straight from raw Binance WebSocket frames, with none of the project's code.

Written from Binance's documented trade payload (``T`` trade time in ms, ``p`` price, ``q`` quantity,
``m`` true when the buyer is the maker, i.e. the taker SOLD) and the candle definition in
docs/ARCHITECTURE.md: UTC-epoch-aligned buckets on exchange time, one candle per bucket from the first
trade's bucket to the last one's, empty buckets carrying the previous close.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared"
BINANCE_WS = SHARED / "data" / "binance-ws"

TIMEFRAMES_US = {
    "1s": 1_000_000,
    "5s": 5_000_000,
    "15s": 15_000_000,
    "1m": 60_000_000,
    "5m": 300_000_000,
    "15m": 900_000_000,
    "4h": 14_400_000_000,
    "24h": 86_400_000_000,
}


@dataclass(frozen=True)
class RawTrade:
    ts_us: int
    price: float
    qty: float
    taker_sells: bool
    trade_id: int


def read_trades(*files: Path) -> list[RawTrade]:
    trades = []
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            for line in fh:
                _, _, payload = line.partition(" ")
                message = json.loads(payload)
                if not str(message.get("stream", "")).endswith("@trade"):
                    continue
                d = message["data"]
                trades.append(
                    RawTrade(
                        d["T"] * 1000,
                        float(d["p"]),
                        float(d["q"]),
                        bool(d["m"]),
                        d["t"],
                    )
                )
    return trades


def recorded_local_us(*files: Path) -> dict[str, int]:
    """Trade id -> the local receive time its line was recorded with (the `<ns>` before the JSON), in µs:
    what a replay at speed max (the direct path) stamps as the trade's local time."""
    out = {}
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            for line in fh:
                ns, _, payload = line.partition(" ")
                if '@trade"' in payload:
                    out[str(json.loads(payload)["data"]["t"])] = int(ns) // 1000
    return out


def expected_candles(trades: list[RawTrade], timeframe: str) -> list[dict]:
    size = TIMEFRAMES_US[timeframe]
    buckets: dict[int, list[RawTrade]] = {}
    for t in trades:
        buckets.setdefault(t.ts_us - t.ts_us % size, []).append(t)
    first, last = min(buckets), max(buckets)
    out, prev_close = [], None
    for start in range(first, last + size, size):
        group = buckets.get(start, [])
        if not group:
            out.append(
                {
                    "timestamp_in": start,
                    "open": prev_close,
                    "high": prev_close,
                    "low": prev_close,
                    "close": prev_close,
                    "volume": 0.0,
                    "buy_volume": 0.0,
                    "sell_volume": 0.0,
                    "vwap": None,
                    "trade_count": 0,
                    "first_trade_time": None,
                    "last_trade_time": None,
                    "is_empty": True,
                }
            )
            continue
        volume = sum(t.qty for t in group)
        out.append(
            {
                "timestamp_in": start,
                "open": group[0].price,
                "high": max(t.price for t in group),
                "low": min(t.price for t in group),
                "close": group[-1].price,
                "volume": volume,
                "buy_volume": sum(t.qty for t in group if not t.taker_sells),
                "sell_volume": sum(t.qty for t in group if t.taker_sells),
                "vwap": sum(t.price * t.qty for t in group) / volume,
                "trade_count": len(group),
                "first_trade_time": group[0].ts_us,
                "last_trade_time": group[-1].ts_us,
                "is_empty": False,
            }
        )
        prev_close = group[-1].price
    return out


def assert_candles_match(actual: list[dict], expected: list[dict], label: str) -> None:
    """``actual`` rows use the same keys (timestamps as µs ints). Prices exact; sums to 1e-9 relative."""
    assert [a["timestamp_in"] for a in actual] == [e["timestamp_in"] for e in expected], (
        f"{label}: bucket starts differ: got {len(actual)} candles, expected {len(expected)}"
    )
    for a, e in zip(actual, expected, strict=True):
        where = f"{label} candle at {e['timestamp_in']}"
        for key in (
            "open",
            "high",
            "low",
            "close",
            "trade_count",
            "first_trade_time",
            "last_trade_time",
            "is_empty",
        ):
            assert a[key] == e[key], f"{where}: {key} = {a[key]!r}, expected {e[key]!r}"
        for key in ("volume", "buy_volume", "sell_volume", "vwap"):
            if e[key] is None:
                assert a[key] is None, f"{where}: {key} = {a[key]!r}, expected None"
            else:
                assert abs(a[key] - e[key]) <= 1e-9 * max(1.0, abs(e[key])), (
                    f"{where}: {key} = {a[key]!r}, expected {e[key]!r}"
                )
