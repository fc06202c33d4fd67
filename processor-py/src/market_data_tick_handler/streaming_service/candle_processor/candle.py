"""The candle record.

Field meanings, written once:

- ``timestamp_in``: bucket start, microseconds since the Unix epoch (UTC); the bucket is
  ``[timestamp_in, timestamp_in + timeframe)`` on the EXCHANGE clock.
- ``open``/``close``: price of the earliest/latest trade by exchange time (ties: arrival order).
- ``volume`` = ``buy_volume`` + ``sell_volume`` + volume of trades with an unknown side; buy/sell is the
  TAKER side.
- ``vwap`` = sum(price * amount) / volume; ``None`` for an empty candle.
- ``first_trade_time``/``last_trade_time``: exchange times of those trades (``None`` when empty).
- ``is_empty``: no trade in the bucket; OHLC then all equal the previous close and volumes are 0.
- ``has_gap``: a disconnect or stale-stream gap overlaps the bucket, so trades may be missing.
- ``is_partial``: the bucket was not fully observed (it began before the stream started, or the stream
  ended before it did).
- ``revision``: 0 when first published; +1 each time a late trade revises it (late policy ``revise``).
- ``hft_features``: on the ``hft_timeframes``, the features of the candle (docs/FEATURES.md), ``None``
  where a value is null; ``None`` on other timeframes and on revisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Candle:
    exchange: str
    symbol: str
    exchange_symbol: str
    timeframe: str
    timestamp_in: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    buy_volume: float
    sell_volume: float
    vwap: float | None
    trade_count: int
    first_trade_time: int | None
    last_trade_time: int | None
    is_empty: bool
    has_gap: bool
    is_partial: bool
    revision: int
    hft_features: Mapping[str, float | None] | None = field(default=None, hash=False)
