"""The candle record and the accumulator that builds it.

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
"""

from __future__ import annotations

from dataclasses import dataclass


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


class CandleBuilder:
    """Mutable accumulator for one bucket. Merges pre-aggregated groups of trades."""

    __slots__ = (
        "buy_volume",
        "close",
        "first_ts",
        "has_gap",
        "high",
        "last_ts",
        "low",
        "notional",
        "open",
        "revision",
        "sell_volume",
        "start",
        "trade_count",
        "volume",
    )

    def __init__(self, start: int) -> None:
        self.start = start
        self.open = self.high = self.low = self.close = 0.0
        self.volume = self.buy_volume = self.sell_volume = self.notional = 0.0
        self.trade_count = 0
        self.first_ts = self.last_ts = 0
        self.has_gap = False
        self.revision = 0

    def merge_prices(
        self, open_: float, high: float, low: float, close: float, count: int, first_ts: int, last_ts: int
    ) -> None:
        """Add the order-free part of a group of trades: open/close follow exchange time (ties: the
        earlier group keeps the open, the later one takes the close), high, low, count."""
        if count == 0:
            return
        if self.trade_count == 0:
            self.open, self.high, self.low, self.close = open_, high, low, close
            self.first_ts, self.last_ts = first_ts, last_ts
        else:
            if first_ts < self.first_ts:
                self.open, self.first_ts = open_, first_ts
            if last_ts >= self.last_ts:
                self.close, self.last_ts = close, last_ts
            if high > self.high:
                self.high = high
            if low < self.low:
                self.low = low
        self.trade_count += count

    @property
    def sums(self) -> tuple[float, float, float, float]:
        return self.volume, self.buy_volume, self.sell_volume, self.notional

    def update(
        self,
        open_: float,
        high: float,
        low: float,
        close: float,
        count: int,
        first_ts: int,
        last_ts: int,
        sums: tuple[float, float, float, float],
    ) -> None:
        """``merge_prices`` plus the new running sums, in one call (the per-group hot path)."""
        self.merge_prices(open_, high, low, close, count, first_ts, last_ts)
        self.volume, self.buy_volume, self.sell_volume, self.notional = sums

    def add_sums(self, volume: float, buy_volume: float, sell_volume: float, notional: float) -> None:
        self.volume += volume
        self.buy_volume += buy_volume
        self.sell_volume += sell_volume
        self.notional += notional

    def merge_builder(self, other: CandleBuilder) -> None:
        """Roll a closed shorter candle into this longer one (called in bucket order)."""
        self.merge_prices(
            other.open, other.high, other.low, other.close, other.trade_count, other.first_ts, other.last_ts
        )
        self.add_sums(*other.sums)
        self.has_gap = self.has_gap or other.has_gap

    def build(
        self,
        exchange: str,
        symbol: str,
        exchange_symbol: str,
        timeframe: str,
        previous_close: float,
        is_partial: bool,
    ) -> Candle:
        empty = self.trade_count == 0
        if empty:  # OHLC carry the previous close; the sums are still 0
            o = h = lo = c = previous_close
            vwap = first = last = None
        else:
            o, h, lo, c = self.open, self.high, self.low, self.close
            vwap = self.notional / self.volume if self.volume else None
            first, last = self.first_ts, self.last_ts
        return Candle(
            exchange, symbol, exchange_symbol, timeframe, self.start, o, h, lo, c, self.volume,
            self.buy_volume, self.sell_volume, vwap, self.trade_count, first, last, empty, self.has_gap,
            is_partial, self.revision,
        )  # fmt: skip
