"""The candles of one instrument as one table: what a historical batch gives (``batch.py``), without
an object per candle until one is asked for."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from .candle import Candle
from .candle_batch import CandleColumns
from .schema import CANDLE_FIELDS, PER_CANDLE


def kernel_columns(rows_i: np.ndarray, rows_f: np.ndarray) -> tuple[np.ndarray, np.ndarray, list, dict]:
    """The compiled path's output rows (``batch_kernel.py``) as timeframe indexes, bucket starts,
    ``is_partial`` flags and the candle fields, made by the engine's ``candle_values``."""
    from . import batch_kernel as k
    from .candle_engine import candle_values

    values = candle_values(
        rows_f[:, k.O_OPEN], rows_f[:, k.O_HIGH], rows_f[:, k.O_LOW], rows_f[:, k.O_CLOSE],
        rows_i[:, k.O_COUNT].copy(), rows_i[:, k.O_FIRST], rows_i[:, k.O_LAST],
        rows_f[:, k.O_SUMS : k.O_SUMS + 4].copy(), rows_f[:, k.O_PREVIOUS],
    )  # fmt: skip
    values["has_gap"] = rows_i[:, k.O_GAP].astype(bool)
    return rows_i[:, k.O_TF].copy(), rows_i[:, k.O_START].copy(), rows_i[:, k.O_PARTIAL].astype(bool), values


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Candles closed together: timeframe ``names[codes[i]]``, bucket start ``start[i]``, the fields."""

    names: tuple[str, ...]
    codes: np.ndarray
    start: np.ndarray
    values: dict[str, np.ndarray]

    def timeframes(self) -> np.ndarray:
        return np.array(self.names, dtype=object)[self.codes]


class CandleTable:
    """Closed candles of one instrument, in the order the engine closed them; ``candles()`` makes the
    records."""

    def __init__(self, exchange: str, symbol: str, exchange_symbol: str) -> None:
        self.exchange, self.symbol, self.exchange_symbol = exchange, symbol, exchange_symbol
        self._chunks: list[_Chunk] = []

    def add_run(self, names: tuple[str, ...], rows_i: np.ndarray, rows_f: np.ndarray) -> None:
        """Rows of the compiled path (copied: its buffer is used again)."""
        tf, start, partial, values = kernel_columns(rows_i, rows_f)
        values["is_partial"] = partial
        values["revision"] = np.zeros(len(tf), dtype=np.int64)
        self._chunks.append(_Chunk(tuple(names), tf, start, values))

    def add_parts(self, parts: list[CandleColumns]) -> None:
        """Candles of the array path (one instrument: a part holds at most one)."""
        for part in parts:
            n = len(part)
            values = {f.name: getattr(part, f.name) for f in PER_CANDLE}
            values["is_partial"] = np.full(n, part.is_partial)
            codes = np.zeros(n, dtype=np.int64)
            self._chunks.append(_Chunk((part.timeframe,), codes, np.full(n, part.timestamp_in), values))

    def __len__(self) -> int:
        return sum(len(c.codes) for c in self._chunks)

    def columns(self) -> dict[str, np.ndarray]:
        """Every candle as columns: ``timeframe``, ``timestamp_in`` and the fields (nulls as the kind's
        missing value)."""
        chunks = self._chunks or [_Chunk((), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), {
            f.name: np.empty(0, dtype=f.kind.dtype) for f in CANDLE_FIELDS
        })]  # fmt: skip
        out = {
            "timeframe": np.concatenate([c.timeframes() for c in chunks]),
            "timestamp_in": np.concatenate([c.start for c in chunks]).astype(np.int64),
        }
        for f in CANDLE_FIELDS:
            out[f.name] = np.concatenate([c.values[f.name] for c in chunks]).astype(f.kind.dtype)
        return out

    def frame(self):
        """The candles as a pandas DataFrame: ``exchange``, ``symbol``, ``exchange_symbol``, then
        ``columns()`` (times as µs integers, nulls as NaN / 0 with ``is_empty`` saying which)."""
        import pandas as pd
        import pyarrow as pa

        columns = self.columns()
        columns.pop("timeframe")
        n = len(columns["timestamp_in"])
        # text through Arrow (``to_pandas``: the installed pandas' own string type), not a string per row
        names = {"exchange": self.exchange, "symbol": self.symbol, "exchange_symbol": self.exchange_symbol}
        text = {k: pa.array([v], pa.string()).take(np.zeros(n, dtype=np.int64)) for k, v in names.items()}
        text["timeframe"] = pa.chunked_array(
            [pa.array(c.names, pa.string()).take(c.codes) for c in self._chunks], pa.string()
        )
        return pd.DataFrame({k: v.to_pandas() for k, v in text.items()} | columns, copy=False)  # ours alone

    def candles(self) -> list[Candle]:
        return list(self)

    def __iter__(self) -> Iterator[Candle]:
        for chunk in self._chunks:
            n = len(chunk.codes)
            values = chunk.values
            empty = values["is_empty"].tolist()
            fields = []
            for f in CANDLE_FIELDS:
                column = values[f.name].tolist()
                if f.null_when_empty:
                    column = [None if e else v for e, v in zip(empty, column, strict=True)]
                fields.append(column)
            yield from map(
                Candle, repeat(self.exchange, n), repeat(self.symbol, n), repeat(self.exchange_symbol, n),
                chunk.timeframes().tolist(), chunk.start.tolist(), *fields, repeat(None, n),
            )  # fmt: skip
