"""Features of the candles a live ``CandleEngine`` closes, on the configured ``hft_timeframes``.

Each (instrument slot, hft timeframe) of the engine is a lane of one :class:`FeatureEngine`, so a
boundary that closes the candles of every instrument is one feature step per timeframe. The features
are attached to the engine's output (``CandleColumns.features``) before anything is published.
Revisions (late policy ``revise``) carry no features: the series has moved on, and its state is not
rewound. ``FeatureStage`` (``stage.py``) holds one of these per exchange, with its context.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..candle_processor import CandleBatch, CandleEngine, Timeframe
from .catalogue import WINDOWS, Group
from .context import FeatureContext
from .feature_engine import FeatureEngine
from .inputs import CandleInputs, inputs_from_columns
from .warmup import WarmupSeries, warmup_columns, warmup_series


class LiveFeatures:
    def __init__(
        self,
        engine: CandleEngine,
        timeframes: Sequence[str],
        windows: tuple[int, ...] = WINDOWS,
        groups: Iterable[Group] = (),
    ) -> None:
        unknown = [tf for tf in timeframes if tf not in engine.timeframe_names]
        if unknown:
            raise ValueError(
                f"hft_timeframes {unknown} are not candle timeframes ({', '.join(engine.timeframe_names)})"
            )
        self.engine = engine
        self.timeframes = tuple(timeframes)
        self._index = {tf: i for i, tf in enumerate(self.timeframes)}
        self._micros = {tf: Timeframe.parse(tf).micros for tf in self.timeframes}
        self.features = FeatureEngine(windows, groups)

    def _lanes(self, slots: np.ndarray, timeframe: str) -> np.ndarray:
        return slots * len(self.timeframes) + self._index[timeframe]

    def annotate(self, batch: CandleBatch, context: FeatureContext | None = None) -> None:
        """Attach features to the parts of ``batch`` on an hft timeframe (in place); ``context`` gives
        the book, derivative and liquidation columns of each candle (the feature groups need them)."""
        parts = batch.parts
        for i, part in enumerate(parts):
            if part.timeframe in self._index and not part.revision.any():
                micros = self._micros[part.timeframe]
                lanes = self._lanes(part.slots, part.timeframe)
                columns = None
                if context is not None and self.features.groups:
                    columns = context.columns(part.slots, part.timestamp_in, part.timestamp_in + micros)
                x = inputs_from_columns(part, columns)
                parts[i] = replace(part, features=self.features.step(lanes, x, micros))

    @property
    def longest_us(self) -> int:
        return max(self._micros.values())

    def warm_up(self, candles: Any) -> int:
        """Run recent history through the lanes, so that the next live candle of each series already has
        full-window features: columns (``warmup.py``: ``exchange_symbol``, ``timeframe``,
        ``timestamp_in`` and the candle's fields) or ``Candle`` objects, published messages or flat dicts,
        turned into columns once. Candles of other exchanges (one without ``exchange`` is of this engine's)
        or timeframes, and candles not after a lane's last, are skipped. Returns the candles used."""
        series = warmup_series(warmup_columns(candles), self.timeframes, self.engine.exchange)
        return sum(self.load(s) for s in series if s.exchange == self.engine.exchange)

    def load(self, series: WarmupSeries) -> int:
        """The candles of ``series`` after its lane's last; returns how many."""
        lane = self.lane(series.exchange_symbol, series.timeframe)
        return self.run(lane, series.timeframe, series.after(self.features.last_start(lane)))

    def lane(self, exchange_symbol: str, timeframe: str) -> int:
        return int(self._lanes(np.array([self.engine.slot(exchange_symbol)]), timeframe)[0])

    def run(self, lane: int, timeframe: str, x: CandleInputs) -> int:
        """Candles of one lane, in time order, through the feature engine; returns how many."""
        self.features.run(lane, x, self._micros[timeframe])
        return len(x)
