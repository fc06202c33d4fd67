"""Closed candles as columns: what the engine emits, and what serialisation and features read.

A :class:`CandleColumns` holds the candles of ONE timeframe and ONE bucket, for several instruments (a
boundary closes every instrument at once). A :class:`CandleBatch` is the ordered list of those that
one call of the engine produced; it is also a sequence of :class:`~.candle.Candle` objects, built on
demand, for callers that want one record per candle.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import overload

import numpy as np

from .candle import Candle
from .closed import ClosedCandles, Stamps
from .feature_columns import FeatureColumns


@dataclass(frozen=True, slots=True)
class CandleColumns:
    """Field meanings: see ``candle.py``. Missing values: ``vwap`` NaN, trade times 0."""

    timeframe: str
    timestamp_in: int
    slots: np.ndarray  # instrument slots of the engine
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    buy_volume: np.ndarray
    sell_volume: np.ndarray
    vwap: np.ndarray
    trade_count: np.ndarray
    first_trade_time: np.ndarray
    last_trade_time: np.ndarray
    is_empty: np.ndarray
    has_gap: np.ndarray
    is_partial: bool
    revision: np.ndarray
    features: FeatureColumns | None = None  # on hft timeframes: see hft_features/live_features.py

    def __len__(self) -> int:
        return len(self.slots)

    def rows(self, start: int, stop: int) -> CandleColumns:
        """Candles ``start:stop`` of this part (views, not copies)."""
        if start == 0 and stop >= len(self):
            return self
        sliced = {
            name: value[start:stop]
            for name in self.__dataclass_fields__
            if isinstance(value := getattr(self, name), np.ndarray)
        }
        features = self.features
        if features is not None:
            features = features.rows(start, stop)
        return replace(self, **sliced, features=features)

    def candles(self, exchange: str, symbols: Sequence[str], exchange_symbols: Sequence[str]) -> list[Candle]:
        tf, start, partial = self.timeframe, self.timestamp_in, self.is_partial
        vwap = [None if e else v for e, v in zip(self.is_empty.tolist(), self.vwap.tolist(), strict=True)]
        first = [
            None if e else t
            for e, t in zip(self.is_empty.tolist(), self.first_trade_time.tolist(), strict=False)
        ]
        last = [
            None if e else t
            for e, t in zip(self.is_empty.tolist(), self.last_trade_time.tolist(), strict=False)
        ]
        rows = zip(
            self.slots.tolist(),
            self.open.tolist(),
            self.high.tolist(),
            self.low.tolist(),
            self.close.tolist(),
            self.volume.tolist(),
            self.buy_volume.tolist(),
            self.sell_volume.tolist(),
            vwap,
            self.trade_count.tolist(),
            first,
            last,
            self.is_empty.tolist(),
            self.has_gap.tolist(),
            self.revision.tolist(),
            strict=True,
        )
        features = self.features.records() if self.features is not None else [None] * len(self.slots)
        return [
            Candle(
                exchange,
                symbols[s],
                exchange_symbols[s],
                tf,
                start,
                o,
                h,
                lo,
                c,
                v,
                b,
                sv,
                w,
                n,
                f,
                la,
                e,
                g,
                partial,
                r,
                x,
            )
            for (s, o, h, lo, c, v, b, sv, w, n, f, la, e, g, r), x in zip(rows, features, strict=True)
        ]


def _features(values: Mapping[str, float | None] | None) -> FeatureColumns | None:
    if values is None:
        return None
    row = [np.nan if v is None else v for v in values.values()]
    return FeatureColumns(tuple(values), np.array([row], dtype=np.float64))


class CandleBatch(Sequence[Candle]):
    """The candles one engine call closed or revised, in order: per closed bucket, its base-timeframe
    candles first, then each longer timeframe that ends with it."""

    __slots__ = ("_candles", "exchange", "exchange_symbols", "parts", "symbols")

    def __init__(
        self,
        exchange: str,
        symbols: list[str],
        exchange_symbols: list[str],
        parts: list[CandleColumns] | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbols = symbols  # by slot (the engine's own lists: they only grow)
        self.exchange_symbols = exchange_symbols
        self.parts: list[CandleColumns] = parts if parts is not None else []
        self._candles: list[Candle] | None = None

    @classmethod
    def from_candles(cls, candles: Sequence[Candle]) -> CandleBatch:
        """The batch of candles made elsewhere (one exchange), e.g. to publish them."""
        exchange = candles[0].exchange if candles else ""
        batch = cls(exchange, [], [])
        slot_of: dict[str, int] = {}
        for c in candles:
            if c.exchange != exchange:
                raise ValueError(f"a batch holds one exchange: {c.exchange} after {exchange}")
            slot = slot_of.get(c.exchange_symbol)
            if slot is None:
                slot = slot_of[c.exchange_symbol] = len(batch.symbols)
                batch.symbols.append(c.symbol)
                batch.exchange_symbols.append(c.exchange_symbol)
            batch.add(
                CandleColumns(
                    c.timeframe, c.timestamp_in, np.array([slot]), np.array([c.open]), np.array([c.high]),
                    np.array([c.low]), np.array([c.close]), np.array([c.volume]), np.array([c.buy_volume]),
                    np.array([c.sell_volume]), np.array([np.nan if c.vwap is None else c.vwap]),
                    np.array([c.trade_count]), np.array([c.first_trade_time or 0]),
                    np.array([c.last_trade_time or 0]), np.array([c.is_empty]), np.array([c.has_gap]),
                    c.is_partial, np.array([c.revision]), _features(c.hft_features),
                )
            )  # fmt: skip
        return batch

    def blocks(self, stamps: Stamps, chunk: int | None = None) -> Iterator[ClosedCandles]:
        """The batch as blocks for the writers, in order: each part, or each run of at most ``chunk``
        candles of it."""
        for part in self.parts:
            step = chunk or len(part) or 1
            for start in range(0, len(part), step):
                yield ClosedCandles(
                    part.rows(start, start + step), self.exchange, self.symbols, self.exchange_symbols, stamps
                )

    def add(self, part: CandleColumns) -> None:
        if len(part):
            self.parts.append(part)
            self._candles = None

    def _all(self) -> list[Candle]:
        if self._candles is None:
            self._candles = [
                c for p in self.parts for c in p.candles(self.exchange, self.symbols, self.exchange_symbols)
            ]
        return self._candles

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __bool__(self) -> bool:
        return bool(self.parts)

    def __iter__(self) -> Iterator[Candle]:
        return iter(self._all())

    @overload
    def __getitem__(self, index: int) -> Candle: ...
    @overload
    def __getitem__(self, index: slice) -> list[Candle]: ...
    def __getitem__(self, index):
        return self._all()[index]

    def __repr__(self) -> str:
        return f"CandleBatch({self.exchange}, {len(self)} candles in {len(self.parts)} parts)"
