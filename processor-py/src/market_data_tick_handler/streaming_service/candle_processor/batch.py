"""Historical batches: trades in, candles out, through the same engine as the live stream."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from ...timeutil import to_us_array
from ..instrument_service import InstrumentMapper
from .candle import Candle
from .candle_engine import DEFAULT_TIMEFRAMES, LatePolicy
from .candle_table import CandleTable
from .live_candle_processor import LiveCandleProcessor
from .schema import TIMES
from .trade_groups import SIDE_CODES


def _sides(values: Any) -> np.ndarray:
    """Side codes (``trade_groups.SIDE_CODES``) of a column of names or codes, encoded once per distinct
    name (categories, Arrow's dictionary, or by hashing), not per row; an unknown name is an error
    naming its first row."""
    if isinstance(values, pd.Series | pd.Index):
        if isinstance(values.dtype, pd.CategoricalDtype):
            return _by_name(values.cat.codes.to_numpy(), list(values.cat.categories))
        if hasattr(values.array, "__arrow_array__"):  # Arrow-backed strings: their bytes, compiled
            import pyarrow as pa

            array = pa.chunked_array(values.array.__arrow_array__()).combine_chunks()
            if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
                return _arrow_sides(array)
            values = values.to_numpy()
        values = values.to_numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "USO":
        return array.astype(np.uint8)
    if array.dtype.kind in "US":  # fixed-width text: compared character by character, compiled
        unit = np.uint32 if array.dtype.kind == "U" else np.uint8
        width = array.dtype.itemsize // np.dtype(unit).itemsize
        names = list(SIDE_CODES)
        table = np.zeros((len(names), max(width, 1)), dtype=unit)
        for k, name in enumerate(names):
            chars = [ord(ch) for ch in name] if len(name) <= width else [np.iinfo(unit).max] * width
            table[k, : len(chars)] = chars
        matrix = np.ascontiguousarray(array).view(unit).reshape(len(array), width)
        codes = _match_rows(matrix, table)
        if codes.min(initial=0) < 0:
            row = int(np.argmax(codes < 0))
            names.append(array[row].item() if array.dtype.kind == "U" else array[row].decode())
            codes[codes < 0] = len(names) - 1  # names the first row that is none of them
        return _by_name(codes, names)
    codes, names = pd.factorize(array)
    return _by_name(codes, list(names))


@njit(cache=True)
def _match_rows(matrix: np.ndarray, table: np.ndarray) -> np.ndarray:
    """For each row of ``matrix``, the index of the equal row of ``table`` (-1: none)."""
    out = np.full(matrix.shape[0], -1, dtype=np.int64)
    for i in range(matrix.shape[0]):
        for k in range(table.shape[0]):
            equal = True
            for j in range(matrix.shape[1]):
                if matrix[i, j] != table[k, j]:
                    equal = False
                    break
            if equal:
                out[i] = k
                break
    return out


def _arrow_sides(array) -> np.ndarray:
    """Side codes of an Arrow string array, read from its offsets and bytes (no Python string per row)."""
    import pyarrow as pa

    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    _, offsets, data = array.buffers()
    offsets = np.frombuffer(offsets, dtype=width)[array.offset : array.offset + len(array) + 1]
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    names = list(SIDE_CODES)
    longest = max(len(n) for n in names)
    table = np.zeros((len(names), longest), dtype=np.uint8)
    lengths = np.array([len(n) for n in names], dtype=np.int64)
    for k, name in enumerate(names):
        table[k, : len(name)] = list(name.encode())
    codes = _match_bytes(offsets, data, table, lengths)
    if array.null_count:
        codes[np.asarray(array.is_null())] = -1
    if codes.min(initial=0) < 0:
        row = int(np.argmax(codes < 0))
        names.append(array[row].as_py())
        codes[codes < 0] = len(names) - 1  # names the first row that is none of them
    return _by_name(codes, names)


@njit(cache=True)
def _match_bytes(offsets: np.ndarray, data: np.ndarray, table: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """For each string (``data[offsets[i]:offsets[i + 1]]``), the index of the equal row of ``table``
    (its first ``lengths[k]`` bytes), -1 if none."""
    n = len(offsets) - 1
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        start, size = offsets[i], offsets[i + 1] - offsets[i]
        for k in range(table.shape[0]):
            if size != lengths[k]:
                continue
            equal = True
            for j in range(size):
                if data[start + j] != table[k, j]:
                    equal = False
                    break
            if equal:
                out[i] = k
                break
    return out


def _by_name(codes: np.ndarray, names: list) -> np.ndarray:
    """Rows given as ``codes`` into ``names`` (-1: missing) as side codes."""
    lookup = np.zeros(len(names) + 1, dtype=np.uint8)
    for k, name in [*enumerate(names), (-1, None)]:
        if name in SIDE_CODES:
            lookup[k] = SIDE_CODES[name]
        elif np.any(codes == k):
            row = int(np.argmax(codes == k))
            raise ValueError(f"trade row {row}: side {name!r} is not one of {', '.join(SIDE_CODES)}")
    return lookup[codes]


def candles_from_trades(
    trades: pd.DataFrame | Mapping[str, Any],
    *,
    exchange: str = "binance",
    exchange_symbol: str = "BTCUSDT",
    symbol: str | None = None,
    timeframes: Iterable[str] = DEFAULT_TIMEFRAMES,
    grace_us: int = 0,
    late_policy: LatePolicy = "drop",
) -> list[Candle]:
    """Candles of one instrument from its trades (columns ``timestamp`` [µs ints, datetimes or ISO
    strings], ``price``, ``amount``, ``side`` [buy/sell/unknown, or their codes]), in arrival order, on
    the event-time clock, ending with the end of the data. The live engine makes them, over the whole
    arrays at once (its compiled path, ``batch_kernel.py``): identical to what the live pipeline
    publishes for the same trades."""
    return candle_table_from_trades(
        trades, exchange=exchange, exchange_symbol=exchange_symbol, symbol=symbol, timeframes=timeframes,
        grace_us=grace_us, late_policy=late_policy,
    ).candles()  # fmt: skip


def candle_table_from_trades(
    trades: pd.DataFrame | Mapping[str, Any],
    *,
    exchange: str = "binance",
    exchange_symbol: str = "BTCUSDT",
    symbol: str | None = None,
    timeframes: Iterable[str] = DEFAULT_TIMEFRAMES,
    grace_us: int = 0,
    late_policy: LatePolicy = "drop",
) -> CandleTable:
    """``candles_from_trades`` as one table (``CandleTable``: ``columns()``, ``candles()``), without an
    object per candle."""
    ts = to_us_array(trades["timestamp"])
    price = np.asarray(trades["price"], dtype=np.float64)
    amount = np.asarray(trades["amount"], dtype=np.float64)
    side = _sides(trades["side"])
    processor = LiveCandleProcessor(
        symbol or InstrumentMapper().to_symbol(exchange, exchange_symbol),
        exchange=exchange,
        exchange_symbol=exchange_symbol,
        timeframes=timeframes,
        late_policy=late_policy,
        grace_us=grace_us,
    )
    table = processor.engine.run_table(ts, price, amount, side)
    table.add_parts(processor.engine.finish().parts)
    return table


def candles_to_frame(candles: Iterable[Candle]) -> pd.DataFrame:
    """Candles as a DataFrame with UTC datetime columns, for analysis."""
    frame = pd.DataFrame([asdict(c) for c in candles])
    for column in ("timestamp_in", *TIMES):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], unit="us", utc=True)
    return frame
