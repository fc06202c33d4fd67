"""Vectorised pre-aggregation of a batch of trades into (symbol, base bucket) groups.

This is the only per-trade work in the candle path; the engine then merges the groups into its bucket
arrays with a few whole-array operations. Live frames and historical batches both come through here.

Sums (volume, buy/sell volume, notional) are accumulated strictly in arrival order, continuing from the
candle's running value (``seeded_sums``), so a candle's floating-point sums do not depend on how the
stream was cut into frames: live and batch give bit-identical candles. Open/close follow exchange time
(ties: arrival order); high, low and counts are order-free anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDE_BUY = 1
SIDE_SELL = 2
SIDE_CODES = {"unknown": 0, "buy": SIDE_BUY, "sell": SIDE_SELL}  # the wire's side column (proto/wire.json)
_SHORT = 32  # groups up to this long are summed together in one padded matrix


@dataclass(frozen=True, slots=True)
class TradeGroups:
    """One row per (sym, bucket) group, ordered by sym then bucket."""

    sym: np.ndarray
    bucket_start: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    count: np.ndarray
    first_ts: np.ndarray
    last_ts: np.ndarray
    _values: np.ndarray  # (n, 4): amount, buy amount, sell amount, notional; grouped, arrival order
    _starts: np.ndarray
    _counts: np.ndarray

    def __len__(self) -> int:
        return len(self.sym)

    def seeded_sums(self, seeds: np.ndarray) -> np.ndarray:
        """``seeds`` (groups x 4): each group's running sums; returns them with the group's trades added
        one by one in arrival order."""
        out = np.empty_like(seeds)
        short = self._counts <= _SHORT
        if short.any():
            rows = np.flatnonzero(short)
            width = int(self._counts[rows].max()) + 1
            matrix = np.zeros((len(rows), width, 4))
            matrix[:, 0] = seeds[rows]
            lengths = self._counts[rows]
            row_of = np.repeat(np.arange(len(rows)), lengths)
            rank = np.arange(len(row_of)) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 1
            matrix[row_of, rank] = self._values[np.repeat(short, self._counts)]  # groups are contiguous
            out[rows] = np.add.accumulate(matrix, axis=1)[:, -1]
        for g in np.flatnonzero(~short):
            s, c = self._starts[g], self._counts[g]
            out[g] = np.add.accumulate(np.vstack([seeds[g], self._values[s : s + c]]), axis=0)[-1]
        return out


_EMPTY = np.empty(0, dtype=np.int64)


def group_trades(
    sym: np.ndarray,
    ts: np.ndarray,
    price: np.ndarray,
    amount: np.ndarray,
    side: np.ndarray,
    base_us: int,
) -> TradeGroups:
    """Group trades by (sym, floor(ts / base_us)), keeping arrival order inside each group."""
    n = len(ts)
    if n == 0:
        f = np.empty(0)
        return TradeGroups(
            _EMPTY, _EMPTY, f, f, f, f, _EMPTY, _EMPTY, _EMPTY, np.empty((0, 4)), _EMPTY, _EMPTY
        )
    bucket = ts - ts % base_us
    sym64 = sym.astype(np.int64)
    order = np.lexsort((bucket, sym64))  # stable: arrival order within a group
    sym_s, bucket_s, ts_s = sym64[order], bucket[order], ts[order]
    price_s, amount_s, side_s = price[order], amount[order], side[order]
    boundary = np.empty(n, dtype=bool)
    boundary[0] = True
    np.not_equal(sym_s[1:], sym_s[:-1], out=boundary[1:])
    boundary[1:] |= bucket_s[1:] != bucket_s[:-1]
    starts = np.flatnonzero(boundary)
    counts = np.diff(np.append(starts, n))
    index = np.arange(n)
    # open: earliest exchange time, first arrival among equals; close: latest, last arrival among equals
    first_ts = np.minimum.reduceat(ts_s, starts)
    last_ts = np.maximum.reduceat(ts_s, starts)
    per_row_first = np.repeat(first_ts, counts)
    per_row_last = np.repeat(last_ts, counts)
    open_at = np.minimum.reduceat(np.where(ts_s == per_row_first, index, n), starts)
    close_at = np.maximum.reduceat(np.where(ts_s == per_row_last, index, -1), starts)
    values = np.empty((n, 4))
    values[:, 0] = amount_s
    values[:, 1] = np.where(side_s == SIDE_BUY, amount_s, 0.0)
    values[:, 2] = np.where(side_s == SIDE_SELL, amount_s, 0.0)
    values[:, 3] = price_s * amount_s
    return TradeGroups(
        sym=sym_s[starts],
        bucket_start=bucket_s[starts],
        open=price_s[open_at],
        high=np.maximum.reduceat(price_s, starts),
        low=np.minimum.reduceat(price_s, starts),
        close=price_s[close_at],
        count=counts,
        first_ts=first_ts,
        last_ts=last_ts,
        _values=values,
        _starts=starts,
        _counts=counts,
    )
