"""The feature context: the ``CONTEXT`` columns (``inputs.py``) of the live candles of one candle
engine, per instrument slot, from the other data types as they arrive (``FeatureStage.on_book``,
``on_derivative``, ``on_liquidations``):

- ``book``: from the last book snapshot of the instrument with ``timestamp`` before the candle's end
  (best bid/ask and their sizes, summed size of the top 5 levels);
- ``derivative``: from its last derivative ticker before the candle's end;
- ``liquidations``: the summed amounts of its liquidations with ``timestamp`` in the candle, by side.

Only what has arrived when the candle closes counts (a snapshot arriving after that is not used
retroactively). The last ``RING`` snapshots and tickers of each instrument are kept, so one that
arrives during the grace delay, after the candle's end, does not hide the one before it. Unknown =
NaN, and the features built on it are null.

Memory is bounded: ``RING`` rows per instrument; liquidations are kept while an open candle may contain
them (``prune``, as candles close) and, should none close (liquidations without trades), at most the
newest ``MAX_LIQUIDATIONS`` (~25 MB; over it the oldest are dropped, counted in ``liquidations_dropped``
and logged).
"""

from __future__ import annotations

import logging

import numpy as np

from .inputs import CONTEXT

log = logging.getLogger(__name__)

RING = 8
NONE = -1
MAX_LIQUIDATIONS = 1_000_000  # events kept at most between prunes
MERGE_EVERY = 64  # frames of liquidations appended before they are merged (and capped) without a prune


class _Latest:
    """The last ``RING`` rows of ``width`` values per slot, with their timestamps and arrival order."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.ts = np.zeros((0, RING), dtype=np.int64)
        self.order = np.zeros((0, RING), dtype=np.int64)  # arrival number; NONE = empty
        self.values = np.zeros((0, RING, width))
        self.count = np.zeros(0, dtype=np.int64)
        self.arrivals = 0

    def _grow(self, slots: int) -> None:
        if slots <= len(self.count):
            return
        extra = max(slots, 2 * len(self.count), 16) - len(self.count)
        self.ts = np.vstack([self.ts, np.zeros((extra, RING), dtype=np.int64)])
        self.order = np.vstack([self.order, np.full((extra, RING), NONE, dtype=np.int64)])
        self.values = np.concatenate([self.values, np.full((extra, RING, self.width), np.nan)])
        self.count = np.concatenate([self.count, np.zeros(extra, dtype=np.int64)])

    def add(self, slots: np.ndarray, ts: np.ndarray, values: np.ndarray) -> None:
        """Rows in arrival order; per slot only its last ``RING`` rows matter."""
        n = len(slots)
        if not n:
            return
        self._grow(int(slots.max()) + 1)
        order = np.argsort(slots, kind="stable")
        s = slots[order]
        new_group = np.ones(n, dtype=bool)
        new_group[1:] = s[1:] != s[:-1]
        starts = np.flatnonzero(new_group)
        group = np.cumsum(new_group) - 1
        rank = np.arange(n) - starts[group]
        sizes = np.diff(np.append(starts, n))
        keep = sizes[group] - 1 - rank < RING
        pos = (self.count[s] + rank) % RING
        rows, cols = s[keep], pos[keep]
        self.ts[rows, cols] = ts[order][keep]
        self.order[rows, cols] = self.arrivals + order[keep]
        self.values[rows, cols] = values[order][keep]
        self.count[s[starts]] += sizes
        self.arrivals += n

    def before(self, slots: np.ndarray, end: int) -> np.ndarray:
        """(len(slots), width): each slot's last row with timestamp < ``end``; NaN if none."""
        out = np.full((len(slots), self.width), np.nan)
        known = slots < len(self.count)
        if not known.any():
            return out
        s = slots[known]
        candidates = np.where((self.order[s] != NONE) & (self.ts[s] < end), self.order[s], NONE)
        best = candidates.argmax(axis=1)
        found = candidates[np.arange(len(s)), best] != NONE
        picked = self.values[s, best]
        picked[~found] = np.nan
        out[known] = picked
        return out


class FeatureContext:
    def __init__(self) -> None:
        self.book = _Latest(len(CONTEXT["book"]))
        self.derivative = _Latest(len(CONTEXT["derivative"]))
        self._liquidations: list[tuple[np.ndarray, ...]] = []  # (slots, ts, side, amount) per frame
        self.liquidations_dropped = 0  # over MAX_LIQUIDATIONS

    def on_book(
        self, slots: np.ndarray, ts: np.ndarray, bid_price: np.ndarray, bid_amount: np.ndarray,
        ask_price: np.ndarray, ask_amount: np.ndarray,
    ) -> None:  # fmt: skip
        """Book snapshots, levels shaped (rows, depth), best first, NaN-padded."""

        def depth5(amount: np.ndarray) -> np.ndarray:
            top = amount[:, :5]
            return np.where(np.isnan(top).all(axis=1), np.nan, np.nansum(top, axis=1))

        if bid_price.shape[1] == 0:
            return
        values = np.column_stack(
            [bid_price[:, 0], ask_price[:, 0], bid_amount[:, 0], ask_amount[:, 0], depth5(bid_amount),
             depth5(ask_amount)]
        )  # fmt: skip
        self.book.add(slots, ts, values)

    def on_derivative(
        self, slots: np.ndarray, ts: np.ndarray, funding_rate: np.ndarray, open_interest: np.ndarray,
        mark_price: np.ndarray, index_price: np.ndarray,
    ) -> None:  # fmt: skip
        self.derivative.add(
            slots, ts, np.column_stack([funding_rate, open_interest, mark_price, index_price])
        )

    def on_liquidations(
        self, slots: np.ndarray, ts: np.ndarray, side: np.ndarray, amount: np.ndarray
    ) -> None:
        if len(slots):
            self._liquidations.append((slots.astype(np.int64), ts.copy(), side.copy(), amount.copy()))
            if len(self._liquidations) >= MERGE_EVERY:
                self._cap_liquidations()

    def _cap_liquidations(self) -> None:
        """Merge the frames' liquidations; keep the newest ``MAX_LIQUIDATIONS`` of them."""
        events = self._liquidation_events()
        over = len(events[0]) - MAX_LIQUIDATIONS
        if over > 0:
            if not self.liquidations_dropped:
                log.warning(
                    "features: more than %d liquidations kept and no candle closing to prune them: the"
                    " oldest are dropped (liquidations_dropped)",
                    MAX_LIQUIDATIONS,
                )
            self.liquidations_dropped += over
            self._liquidations = [tuple(col[over:] for col in events)]

    def _liquidation_events(self) -> tuple[np.ndarray, ...]:
        if len(self._liquidations) > 1:
            self._liquidations = [
                tuple(np.concatenate(cols) for cols in zip(*self._liquidations, strict=True))
            ]
        return self._liquidations[0] if self._liquidations else ()

    def columns(self, slots: np.ndarray, start: int, end: int) -> dict[str, np.ndarray]:
        """Context columns of the candles ``[start, end)`` of ``slots``."""
        slots = np.asarray(slots, dtype=np.int64)
        out: dict[str, np.ndarray] = {}
        for group, latest in (("book", self.book), ("derivative", self.derivative)):
            values = latest.before(slots, end)
            for i, name in enumerate(CONTEXT[group]):
                out[name] = values[:, i]
        buy = np.zeros(len(slots))
        sell = np.zeros(len(slots))
        events = self._liquidation_events()
        if events:
            ev_slot, ev_ts, ev_side, ev_amount = events
            inside = (ev_ts >= start) & (ev_ts < end)
            if inside.any():
                size = max(int(ev_slot.max()), int(slots.max(initial=0))) + 1
                for side, total in ((1, buy), (2, sell)):
                    pick = inside & (ev_side == side)
                    total += np.bincount(ev_slot[pick], weights=ev_amount[pick], minlength=size)[slots]
        out["liquidation_buy_volume"], out["liquidation_sell_volume"] = buy, sell
        return out

    def prune(self, before: int) -> None:
        """Forget liquidations older than ``before`` (no open candle can contain them)."""
        events = self._liquidation_events()
        if events and (events[1] < before).any():
            keep = events[1] >= before
            self._liquidations = [tuple(col[keep] for col in events)] if keep.any() else []
