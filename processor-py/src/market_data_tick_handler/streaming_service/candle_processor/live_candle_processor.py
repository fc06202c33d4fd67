"""Candles of one instrument on every configured timeframe (the seeds' ``LiveCandleProcessor``).

The state lives in a :class:`~.multi_timeframe_processor.MultiTimeframeProcessor` (its
:class:`~.candle_engine.CandleEngine` holds every instrument of an exchange as arrays and closes them
together); this class is the view of one instrument. Made on its own, it owns a private
``MultiTimeframeProcessor`` on the event-time clock (``multi``), so ``add_trade`` both builds and closes
candles; made by one (``multi.processor(symbol)``, ``engine.processor(exchange_symbol)``), it reads that
one's state.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .candle import Candle
from .candle_batch import CandleBatch
from .candle_engine import DEFAULT_TIMEFRAMES, CandleEngine, LatePolicy
from .trade_groups import SIDE_CODES

__all__ = ["DEFAULT_TIMEFRAMES", "LatePolicy", "LiveCandleProcessor"]


class LiveCandleProcessor:
    def __init__(
        self,
        symbol: str,
        exchange: str = "binance",
        exchange_symbol: str | None = None,
        timeframes: Iterable[str] = DEFAULT_TIMEFRAMES,
        late_policy: LatePolicy = "drop",
        revise_window: int = 4,
        grace_us: int = 0,
    ) -> None:
        from .multi_timeframe_processor import MultiTimeframeProcessor

        self.multi = MultiTimeframeProcessor(
            exchange,
            timeframes=timeframes,
            late_policy=late_policy,
            revise_window=revise_window,
            grace_us=grace_us,
            clock="event",
            symbol_of=lambda _exchange, _symbol: symbol,
        )
        self._bind(self.multi.engine, exchange_symbol or symbol.replace("-", "").upper())

    @classmethod
    def of(cls, engine: CandleEngine, exchange_symbol: str) -> LiveCandleProcessor:
        view = cls.__new__(cls)
        view._bind(engine, exchange_symbol)
        return view

    def _bind(self, engine: CandleEngine, exchange_symbol: str) -> None:
        self.engine = engine
        self.exchange = engine.exchange
        self.exchange_symbol = exchange_symbol
        self.slot = engine.slot(exchange_symbol)
        self.symbol = engine.symbols[self.slot]

    def add_trade(self, timestamp: int, price: float, amount: float, side: str = "unknown") -> list[Candle]:
        """One trade (exchange time in microseconds); returns the candles it closed or revised."""
        return list(
            self.add_trades(
                np.array([timestamp], dtype=np.int64),
                np.array([price], dtype=np.float64),
                np.array([amount], dtype=np.float64),
                np.array([SIDE_CODES[side]], dtype=np.uint8),
            )
        )

    def add_trades(
        self, timestamp: np.ndarray, price: np.ndarray, amount: np.ndarray, side: np.ndarray
    ) -> CandleBatch:
        """Trades in arrival order (µs ints, floats, side codes 0 unknown / 1 buy / 2 sell); returns the
        candles they closed or revised."""
        sym = np.zeros(len(timestamp), dtype=np.uint16)
        return self.engine.on_trades([self.exchange_symbol], sym, timestamp, price, amount, side)

    def finish(self) -> list[Candle]:
        """End of stream: every candle still open, marked partial."""
        return list(self.engine.finish())

    def get_stats(self) -> dict:
        return self.engine.slot_stats(self.slot)
