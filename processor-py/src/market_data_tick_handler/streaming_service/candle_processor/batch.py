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
from .candle_table import CandleTable
from .live_candle_processor import LiveCandleProcessor
from .schema import TIMES
from .sides import side_pieces


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
    processor = LiveCandleProcessor(
        symbol or InstrumentMapper().to_symbol(exchange, exchange_symbol),
        exchange=exchange,
        exchange_symbol=exchange_symbol,
        timeframes=timeframes,
        late_policy=late_policy,
        grace_us=grace_us,
    )
    table = None
    for start, stop, side in side_pieces(trades["side"], len(ts)):  # the next piece's sides made meanwhile
        table = processor.engine.run_table(ts[start:stop], price[start:stop], amount[start:stop], side, table)
    table.add_parts(processor.engine.finish().parts)
    return table


def candles_to_frame(candles: Iterable[Candle]) -> pd.DataFrame:
    """Candles as a DataFrame with UTC datetime columns, for analysis."""
    frame = pd.DataFrame([asdict(c) for c in candles])
    for column in ("timestamp_in", *TIMES):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], unit="us", utc=True)
    return frame
