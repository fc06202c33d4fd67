"""Closed candles (columns) as table rows: one dict per candle, keyed by column name (tables.py), with
timestamps as integers of µs since the epoch and ``None`` for null. Missing values follow the candle's
own rules (``CandleColumns.candles``: no vwap or trade times on an empty candle) and the features'
(``FeatureColumns.records``: NaN, a window not yet full, is null); a feature the candle does not carry
(other timeframes, groups that are off) is left out, which the table stores as null."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..candle_processor import CandleBatch
from .tables import CANDLE_COLUMNS

Row = dict[str, Any]
_CANDLE_FIELDS = tuple(c.name for c in CANDLE_COLUMNS if c.name not in ("local_timestamp", "timestamp_out"))


def candle_rows(batch: CandleBatch, local_us: int, out_us: int) -> Iterator[tuple[str, list[Row]]]:
    """Per part of ``batch`` (one timeframe, one bucket): its timeframe and the rows of its candles, in
    order. ``local_us``/``out_us`` are the candles' ``local_timestamp`` and ``timestamp_out``."""
    for part in batch.parts:
        rows = []
        for candle in part.candles(batch.exchange, batch.symbols, batch.exchange_symbols):
            row = {name: getattr(candle, name) for name in _CANDLE_FIELDS}
            row["local_timestamp"] = local_us
            row["timestamp_out"] = out_us
            if candle.hft_features is not None:
                row.update(candle.hft_features)
            rows.append(row)
        yield part.timeframe, rows
