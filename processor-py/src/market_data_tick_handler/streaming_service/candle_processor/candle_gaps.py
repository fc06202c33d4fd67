"""Which candles of an engine overlap a gap (``has_gap``), in memory that does not grow with time.

A gap ``[start, end)`` of one instrument (``end`` None while open: until further notice) flags every candle
``[s, e)`` of that instrument with ``start < e`` and ``end > s``. The engine asks at two moments:

- when it publishes a candle, which is then open: ``mask``;
- when a late trade revises a published candle (late policy ``revise``): the flags it was published with,
  plus what ``fold`` marked on it since, plus ``live_mask``.

A gap is *live* while it is open or ends after ``closed_through`` (the end of the last base bucket
closed). Once it ends at or before ``closed_through`` it is *folded*: it can no longer touch a base bucket
that is open or to come, and of the longer candles it touches only those open now, which all start
before its end and end after ``closed_through``. So what such gaps still say about candles open now or
later is one number per instrument, ``through``, the latest end of its folded gaps: an open candle
starting before ``through`` overlaps one of them, a later candle none. Folding also marks the published
candles kept for revisions that the gap overlaps.

Before, every ended gap was kept until the open 24h candle had passed it, and each publish scanned them
all: 1,000 instruments going quiet and coming back every minute held hundreds of thousands of them.
Now the gaps kept are those open or ending in the open base buckets: a few per instrument at most.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

_I64_MIN = np.iinfo(np.int64).min
_I64_MAX = np.iinfo(np.int64).max


class Revisable(Protocol):
    """A published candle kept for revisions: its instruments (sorted) and their ``has_gap``."""

    slots: np.ndarray
    has_gap: np.ndarray


class CandleGaps:
    def __init__(self) -> None:
        self.live: list[list] = []  # [slot, start, end or None while open], exchange time
        self.through = np.full(0, _I64_MIN, dtype=np.int64)  # by slot: the latest end of a folded gap

    def grow(self, capacity: int) -> None:
        extra = capacity - len(self.through)
        self.through = np.concatenate([self.through, np.full(extra, _I64_MIN, dtype=np.int64)])

    def set(self, slot: int, start: int, end: int | None) -> bool:
        """A gap opens, or ends (the open one of ``slot`` with this ``start``); True if it is a new one."""
        for gap in self.live:
            if gap[0] == slot and gap[1] == start and gap[2] is None:
                gap[2] = None if end is None else max(end, start)
                return False
        self.live.append([slot, start, end])
        return True

    def mask(self, slots: np.ndarray, start: int, end: int) -> np.ndarray:
        """``has_gap`` of the candles ``[start, end)`` of ``slots``, open now (module doc)."""
        return (self.through[slots] > start) | self.live_mask(slots, start, end)

    def live_mask(self, slots: np.ndarray, start: int, end: int) -> np.ndarray:
        mask = np.zeros(len(slots), dtype=bool)
        for slot, g0, g1 in self.live:
            if g0 < end and (g1 is None or g1 > start):
                mask |= slots == slot
        return mask

    def fold(self, closed_through: int, recent: Sequence[tuple[int, Mapping[int, Revisable]]] = ()) -> None:
        """Fold the gaps that end at or before ``closed_through`` (module doc); ``recent``: per timeframe,
        its length (us) and the published candles kept for revisions, by start."""
        kept = []
        for gap in self.live:
            slot, g0, g1 = gap
            if g1 is None or g1 > closed_through:
                kept.append(gap)
                continue
            self.through[slot] = max(self.through[slot], g1)
            for micros, published in recent:
                for start, candle in published.items():
                    if g0 < start + micros and g1 > start:
                        j = int(np.searchsorted(candle.slots, slot))
                        if j < len(candle.slots) and candle.slots[j] == slot:
                            candle.has_gap[j] = True
        self.live = kept

    def intervals(self, slot: int) -> tuple[np.ndarray, np.ndarray]:
        """Starts and ends of gaps that flag exactly the candles of ``slot`` that ``mask`` flags, open
        now or to come (the compiled path's, ``batch_kernel.py``): the live ones, and for the folded ones
        a last microsecond before ``through``."""
        pairs = [(g0, _I64_MAX if g1 is None else g1) for s, g0, g1 in self.live if s == slot]
        through = int(self.through[slot])
        if through != _I64_MIN:
            pairs.append((through - 1, through))
        gaps = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        return gaps[:, 0].copy(), gaps[:, 1].copy()
