"""Historical batches: trades in, candles out, through the same engine as the live stream."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from ...timeutil import to_us_array
from ..instrument_service import InstrumentMapper
from .candle import Candle
from .candle_engine import DEFAULT_TIMEFRAMES, LatePolicy
from .live_candle_processor import LiveCandleProcessor
from .schema import TIMES
from .trade_groups import SIDE_CODES


def _sides(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "US" or array.dtype == object:
        return np.fromiter((SIDE_CODES[str(v)] for v in array), dtype=np.uint8, count=len(array))
    return array.astype(np.uint8)


def candles_from_trades(
    trades: pd.DataFrame | Mapping[str, Any],
    *,
    exchange: str = "binance",
    exchange_symbol: str = "BTCUSDT",
    symbol: str | None = None,
    timeframes: Iterable[str] = DEFAULT_TIMEFRAMES,
    grace_us: int = 0,
    late_policy: LatePolicy = "drop",
    chunk_size: int = 100_000,
) -> list[Candle]:
    """Candles of one instrument from its trades (columns ``timestamp`` [µs ints, datetimes or ISO
    strings], ``price``, ``amount``, ``side`` [buy/sell/unknown]), in arrival order, on the event-time
    clock, ending with the end of the data. Identical to what the live pipeline publishes for the
    same trades."""
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
    out: list[Candle] = []
    for i in range(0, len(ts), chunk_size):
        part = slice(i, i + chunk_size)
        out.extend(processor.add_trades(ts[part], price[part], amount[part], side[part]))
    out.extend(processor.finish())
    return out


def candles_to_frame(candles: Iterable[Candle]) -> pd.DataFrame:
    """Candles as a DataFrame with UTC datetime columns, for analysis."""
    frame = pd.DataFrame([asdict(c) for c in candles])
    for column in ("timestamp_in", *TIMES):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], unit="us", utc=True)
    return frame
