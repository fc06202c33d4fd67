"""Candle accumulators for many instruments at once: one row per (instrument, bucket), as arrays.

Every update touches a set of DISTINCT rows, so plain fancy-indexed writes are exact. The merge rules,
written once:

- open/close follow exchange time: a group of trades takes the open when its first trade is strictly
  earlier, and the close when its last trade is at least as late (ties: arrival order);
- high is the maximum, low the minimum, counts add up;
- the sums (volume, buy volume, sell volume, notional) are set by the caller for base buckets (they are
  accumulated trade by trade in arrival order, see ``trade_groups.py``) and added for roll-ups.
"""

from __future__ import annotations

import numpy as np

SUMS = ("volume", "buy_volume", "sell_volume", "notional")


class Buckets:
    __slots__ = ("close", "count", "first_ts", "high", "last_ts", "low", "open", "sums")

    def __init__(self, rows: int = 0) -> None:
        self.open = np.zeros(rows)
        self.high = np.zeros(rows)
        self.low = np.zeros(rows)
        self.close = np.zeros(rows)
        self.count = np.zeros(rows, dtype=np.int64)
        self.first_ts = np.zeros(rows, dtype=np.int64)
        self.last_ts = np.zeros(rows, dtype=np.int64)
        self.sums = np.zeros((rows, len(SUMS)))

    def __len__(self) -> int:
        return len(self.count)

    def grow(self, rows: int) -> None:
        """Append empty rows up to ``rows`` in all."""
        extra = rows - len(self)
        if extra <= 0:
            return
        more = Buckets(extra)
        for name in self.__slots__:
            setattr(self, name, np.concatenate([getattr(self, name), getattr(more, name)]))

    def merge_prices(
        self,
        rows: np.ndarray,
        open_: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        count: np.ndarray,
        first_ts: np.ndarray,
        last_ts: np.ndarray,
    ) -> None:
        """Merge groups of trades (every ``count`` > 0) into distinct ``rows``."""
        current = self.count[rows]
        fresh = current == 0
        take_open = fresh | (first_ts < self.first_ts[rows])
        self.open[rows] = np.where(take_open, open_, self.open[rows])
        self.first_ts[rows] = np.where(take_open, first_ts, self.first_ts[rows])
        take_close = fresh | (last_ts >= self.last_ts[rows])
        self.close[rows] = np.where(take_close, close, self.close[rows])
        self.last_ts[rows] = np.where(take_close, last_ts, self.last_ts[rows])
        self.high[rows] = np.where(fresh, high, np.maximum(self.high[rows], high))
        self.low[rows] = np.where(fresh, low, np.minimum(self.low[rows], low))
        self.count[rows] = current + count

    def merge_rows(self, rows: np.ndarray, other: Buckets, other_rows: np.ndarray) -> None:
        """Roll closed shorter buckets (``other_rows`` of ``other``, each with trades) into ``rows``."""
        self.merge_prices(
            rows,
            other.open[other_rows],
            other.high[other_rows],
            other.low[other_rows],
            other.close[other_rows],
            other.count[other_rows],
            other.first_ts[other_rows],
            other.last_ts[other_rows],
        )
        self.sums[rows] += other.sums[other_rows]

    def take(self, rows: np.ndarray) -> Buckets:
        """A copy of ``rows``."""
        out = Buckets()
        for name in self.__slots__:
            setattr(out, name, getattr(self, name)[rows])
        return out

    def reset(self, rows: np.ndarray | slice) -> None:
        self.count[rows] = 0
        self.sums[rows] = 0.0
