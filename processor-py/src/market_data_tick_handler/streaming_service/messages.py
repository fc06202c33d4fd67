"""The messages the processor publishes, and their JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ..timeutil import iso_us
from .candle_processor import Candle


def _iso_or_none(us: int | None) -> str | None:
    return None if us is None else iso_us(us)


@dataclass(slots=True)
class CandleEvent:
    """A candle as published: ``local_timestamp`` is when closing it began, ``timestamp_out`` when it
    was ready to publish (after features); both wall-clock microseconds (walkthrough 4)."""

    candle: Candle
    local_timestamp: int
    timestamp_out: int = 0
    hft_features: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        c = self.candle
        return {
            "type": "candle",
            "exchange": c.exchange,
            "symbol": c.symbol,
            "exchange_symbol": c.exchange_symbol,
            "timeframe": c.timeframe,
            "timestamp_in": iso_us(c.timestamp_in),
            "local_timestamp": iso_us(self.local_timestamp),
            "timestamp_out": iso_us(self.timestamp_out),
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
                "first_trade_time": _iso_or_none(c.first_trade_time),
                "last_trade_time": _iso_or_none(c.last_trade_time),
                "is_empty": c.is_empty,
                "has_gap": c.has_gap,
                "is_partial": c.is_partial,
                "revision": c.revision,
            },
            "hft_features": self.hft_features,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())
