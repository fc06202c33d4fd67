"""Closed candles as columns: what the engine emits, and what serialisation and features read.

A :class:`CandleColumns` holds the candles of ONE timeframe and ONE bucket, for several instruments (a
boundary closes every instrument at once). A :class:`CandleBatch` is the ordered list of those that
one call of the engine produced; it is also a sequence of :class:`~.candle.Candle` objects, built on
demand, for callers that want one record per candle.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import field, make_dataclass, replace
from itertools import repeat
from typing import overload

import numpy as np

from .candle import Candle
from .closed import ClosedCandles, Stamps
from .feature_columns import FeatureColumns
from .schema import CANDLE_FIELDS, EMPTY, PER_CANDLE


class _Columns:
    """What ``CandleColumns`` does (its fields come from the schema)."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self.slots)

    def rows(self, start: int, stop: int) -> CandleColumns:
        """Candles ``start:stop`` of this part (views, not copies)."""
        if start == 0 and stop >= len(self):
            return self
        sliced = {name: getattr(self, name)[start:stop] for name in _ARRAYS}
        features = self.features
        if features is not None:
            features = features.rows(start, stop)
        return replace(self, **sliced, features=features)

    def candles(self, exchange: str, symbols: Sequence[str], exchange_symbols: Sequence[str]) -> list[Candle]:
        n = len(self)
        empty = getattr(self, EMPTY).tolist()
        values = []
        for f in CANDLE_FIELDS:
            if f.per_part:
                values.append(repeat(getattr(self, f.name), n))
                continue
            column = getattr(self, f.name).tolist()
            if f.null_when_empty:
                column = [None if e else v for e, v in zip(empty, column, strict=True)]
            values.append(column)
        features = self.features.records() if self.features is not None else repeat(None, n)
        slots = self.slots.tolist()
        names = ([symbols[s] for s in slots], [exchange_symbols[s] for s in slots])
        tf, start = repeat(self.timeframe, n), repeat(self.timestamp_in, n)
        return list(map(Candle, repeat(exchange, n), *names, tf, start, *values, features))


#: the columns of one value per candle
_ARRAYS = ("slots", *(f.name for f in PER_CANDLE))

CandleColumns = make_dataclass(
    "CandleColumns",
    [
        ("timeframe", str),
        ("timestamp_in", int),
        ("slots", np.ndarray),  # instrument slots of the engine
        *((f.name, f.kind.python if f.per_part else np.ndarray) for f in CANDLE_FIELDS),
        # on hft timeframes: see hft_features/live_features.py
        ("features", FeatureColumns | None, field(default=None)),
    ],
    bases=(_Columns,),
    frozen=True,
    slots=True,
)
CandleColumns.__module__ = __name__  # (make_dataclass's ``module`` is Python 3.12+)
CandleColumns.__doc__ = """The candles of one timeframe's bucket as columns: ``slots`` (the instruments'
engine slots), then a column per field of the schema (a scalar for a per-part one; meanings:
``schema.py``; a null is the kind's missing value, NaN or 0), then ``features``."""


def blank_columns(n: int, features: FeatureColumns | None = None) -> CandleColumns:
    """``n`` candles (slots ``0 .. n - 1``) with every field at its kind's missing value: what the service
    writes once at start to have the compiled writers ready."""
    fields = {
        f.name: f.kind.python(f.kind.missing)
        if f.per_part
        else np.full(n, f.kind.missing, dtype=f.kind.dtype)
        for f in CANDLE_FIELDS
    }
    return CandleColumns("1m", 0, np.arange(n), **fields, features=features)


def _features(values: Mapping[str, float | None] | None) -> FeatureColumns | None:
    if values is None:
        return None
    row = [np.nan if v is None else v for v in values.values()]
    return FeatureColumns(tuple(values), np.array([row], dtype=np.float64))


#: per field: its name, whether it is per part, and (per candle) its missing value and dtype
_ONE = tuple((f.name, f.per_part, f.kind.missing, f.kind.dtype) for f in CANDLE_FIELDS)


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
            fields = {}
            for name, per_part, missing, dtype in _ONE:
                value = getattr(c, name)
                fields[name] = value if per_part else np.array([missing if value is None else value], dtype)
            features = _features(c.hft_features)
            part = CandleColumns(c.timeframe, c.timestamp_in, np.array([slot]), **fields, features=features)
            batch.add(part)
        return batch

    def blocks(self, stamps: Stamps, chunk: int | None = None) -> Iterator[ClosedCandles]:
        """The batch as blocks for the writers, in order: each part, or each run of at most ``chunk``
        candles of it."""
        names = self.exchange, self.symbols, self.exchange_symbols
        for part in self.parts:
            n = len(part)
            if not chunk or n <= chunk:  # the part whole (a boundary's usual case: no slicing)
                if n:
                    yield ClosedCandles(part, *names, stamps)
                continue
            for start in range(0, n, chunk):
                yield ClosedCandles(part.rows(start, start + chunk), *names, stamps)

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
