"""A block of closed candles as the writers and sinks take it: the columns of one timeframe's bucket
for several instruments, the names of those instruments, and the two wall-clock stamps the service gave
the frame's output (``messages.py`` says what they mean).

One block replaces the argument clump ``(part, exchange, symbols, exchange_symbols, local_us, out_us)``
that every writer used to take."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .candle_batch import CandleColumns


@dataclass(frozen=True, slots=True)
class Stamps:
    """The wall-clock times of one frame's output, in µs since the epoch: ``local_us`` when closing its
    candles began, ``out_us`` when they were ready for the sinks (after features)."""

    local_us: int
    out_us: int


@dataclass(frozen=True, slots=True)
class ClosedCandles:
    """``columns``: one timeframe, one bucket; ``symbols``/``exchange_symbols``: names by engine slot
    (the engine's own lists, which only grow); ``stamps``: the frame's output stamps."""

    columns: CandleColumns
    exchange: str
    symbols: Sequence[str]
    exchange_symbols: Sequence[str]
    stamps: Stamps

    def __len__(self) -> int:
        return len(self.columns)
