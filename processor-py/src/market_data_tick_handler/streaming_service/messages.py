"""The messages the processor publishes, and their JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ..timeutil import iso_us
from .candle_processor import Candle


class IsoCache:
    """ISO strings of the timestamps a burst of candles shares (bucket start, closing time)."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[int, str] = {}

    def __call__(self, us: int | None) -> str | None:
        if us is None:
            return None
        text = self._seen.get(us)
        if text is None:
            text = self._seen[us] = iso_us(us)
        return text


@dataclass(slots=True)
class CandleEvent:
    """A candle as published: ``local_timestamp`` is when closing it began, ``timestamp_out`` when the
    batch it belongs to (every candle one frame closed) was ready to publish, after features; both
    wall-clock microseconds (walkthrough 4)."""

    candle: Candle
    local_timestamp: int
    timestamp_out: int = 0
    hft_features: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, iso: IsoCache | None = None) -> dict[str, Any]:
        iso = iso or IsoCache()
        c = self.candle
        return {
            "type": "candle",
            "exchange": c.exchange,
            "symbol": c.symbol,
            "exchange_symbol": c.exchange_symbol,
            "timeframe": c.timeframe,
            "timestamp_in": iso(c.timestamp_in),
            "local_timestamp": iso(self.local_timestamp),
            "timestamp_out": iso(self.timestamp_out),
            "candle": {
                "open": c.open,
                "high": c.high,
                "low": c.low,
                "close": c.close,
                "volume": c.volume,
                "buy_volume": c.buy_volume,
                "sell_volume": c.sell_volume,
                "vwap": c.vwap,
                "trade_count": c.trade_count,
                "first_trade_time": iso(c.first_trade_time),
                "last_trade_time": iso(c.last_trade_time),
                "is_empty": c.is_empty,
                "has_gap": c.has_gap,
                "is_partial": c.is_partial,
                "revision": c.revision,
            },
            "hft_features": self.hft_features,
        }

    def to_json(self, iso: IsoCache | None = None) -> bytes:
        return orjson.dumps(self.to_dict(iso))
