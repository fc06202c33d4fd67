"""candles (fallback, trade_aggregation): UTC-aligned candles built from ``trade`` frames by a
``CandleEngine`` per exchange (docs/ARCHITECTURE.md "Candles"). ``TickHandler`` runs its own engines
(with features and the wall clock); this processor is the same engine on its own, on the event clock."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ...wire import Frame
from ..candle_processor import DEFAULT_TIMEFRAMES, CandleEngine
from ..instrument_service import InstrumentMapper
from .base import DataTypeProcessor, Processed
from .trades import trade_validity


class CandlesProcessor(DataTypeProcessor):
    data_type = "candles"
    frame_types = ("trade",)

    def __init__(
        self, mapper: InstrumentMapper | None = None, timeframes: Iterable[str] = DEFAULT_TIMEFRAMES
    ) -> None:
        super().__init__(mapper)
        self.timeframes = tuple(timeframes)
        self.engines: dict[str, CandleEngine] = {}

    def engine(self, exchange: str) -> CandleEngine:
        engine = self.engines.get(exchange)
        if engine is None:
            engine = self.engines[exchange] = CandleEngine(
                exchange, self.timeframes, clock="event", symbol_of=self.mapper.to_symbol
            )
        return engine

    def process(self, frame: Frame) -> Processed:
        """The candles that ``frame``'s trades closed (``Candle`` objects)."""
        check = self.validate(frame, trade_validity(frame))
        c = frame.columns
        columns = [c[k][check.kept] for k in ("sym", "timestamp", "price", "amount", "side")]
        out = []
        for exchange in dict.fromkeys(e for e, _ in frame.symbols):
            names = [s if e == exchange else "" for e, s in frame.symbols]
            mine = np.isin(columns[0], [i for i, (e, _) in enumerate(frame.symbols) if e == exchange])
            out.extend(self.engine(exchange).on_trades(names, *(col[mine] for col in columns)))
        return self.processed(out, check)  # type: ignore[arg-type]

    def finish(self) -> list:
        return [c for engine in self.engines.values() for c in engine.finish()]
