"""candles (fallback, trade_aggregation): UTC-aligned candles built from ``trade`` frames by a
``CandleEngine`` per exchange (docs/ARCHITECTURE.md "Candles"). The frame router runs its own engines
(with features, on the configured clock); this processor is the same engine on its own, on an event clock
of its own, checking trades as ``trades.py`` does."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ...wire import Frame
from ..candle_processor import DEFAULT_TIMEFRAMES, CandleEngine
from ..clock import EventClock
from ..instrument_service import Instruments
from .base import RowCheck
from .records import Record
from .trades import TradeLikeProcessor


class CandlesProcessor(TradeLikeProcessor):
    data_type = "candles"

    def __init__(
        self, instruments: Instruments | None = None, timeframes: Iterable[str] = DEFAULT_TIMEFRAMES
    ) -> None:
        super().__init__(instruments)
        self.timeframes = tuple(timeframes)
        self.clock = EventClock()
        self.engines: dict[str, CandleEngine] = {}

    def engine(self, exchange: str) -> CandleEngine:
        engine = self.engines.get(exchange)
        if engine is None:
            engine = self.engines[exchange] = CandleEngine(
                exchange, self.timeframes, self.clock, instruments=self.instruments.table(exchange)
            )
        return engine

    def records(self, frame: Frame, check: RowCheck) -> list[Record]:
        """The candles that ``frame``'s valid trades closed (``Candle`` objects)."""
        kept, c = check.kept, frame.columns
        sym, ts, price, amount, side = (c[k][kept] for k in ("sym", "timestamp", "price", "amount", "side"))
        out: list = []
        for entries in self.instruments.of(frame.symbols).exchanges:
            mine = np.isin(sym, entries.positions)
            engine = self.engine(entries.table.exchange)
            out.extend(
                engine.on_slots(entries.slot_of[sym[mine]], ts[mine], price[mine], amount[mine], side[mine])
            )
        return out

    def finish(self) -> list:
        return [c for engine in self.engines.values() for c in engine.finish()]
