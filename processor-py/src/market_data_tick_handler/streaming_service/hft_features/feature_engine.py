"""The one feature implementation, used by history and live alike.

A *lane* is one series: an (instrument, timeframe) pair. :meth:`FeatureEngine.step` takes the next
candle of some lanes (one row per lane) and returns every feature for them; a historical batch is the
same step applied candle after candle (:meth:`FeatureEngine.run`), a live boundary is one step over
every instrument whose candle just closed. The arithmetic is ``kernel.update_lane``, compiled; state
lives in arrays indexed by lane.

A series must advance one bucket at a time. A candle that starts later than the next bucket (a hole:
history with missing candles, a restart) resets its lane, so no window ever spans missing data; the
warm-up starts again and is counted as ``resets``. A candle that is not after the lane's previous
one is refused: counted as ``out_of_order``, logged, and its features are null.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

import numpy as np

from ..candle_processor.feature_columns import FeatureColumns
from ..candle_processor.schema import FEATURE_INPUTS
from .catalogue import OPTIONAL_GROUPS, WINDOWS, FeatureSpec, Group
from .indicators import (
    BOOK,
    CANDLE_STATS,
    DERIVATIVE,
    LIQUIDATIONS,
    ema_specs,
    rsi_specs,
    sma_specs,
    volatility_specs,
    volume_sma_specs,
)
from .inputs import CONTEXT, CandleInputs
from .kernel import NO_CANDLE, step_lanes

log = logging.getLogger(__name__)

CONTEXT_COLUMNS = tuple(name for names in CONTEXT.values() for name in names)
_GROUP_SPECS = {"book": BOOK, "derivative": DERIVATIVE, "liquidations": LIQUIDATIONS}


def catalogue(
    windows: tuple[int, ...] = WINDOWS, groups: Iterable[Group] = OPTIONAL_GROUPS
) -> list[FeatureSpec]:
    """Every feature, in output order (the order ``kernel.update_lane`` writes them)."""
    windows = tuple(sorted(windows))
    specs = [
        *sma_specs(windows), *ema_specs(windows), *rsi_specs(windows), *volatility_specs(windows),
        *volume_sma_specs(windows), *CANDLE_STATS,
    ]  # fmt: skip
    for group in OPTIONAL_GROUPS:
        if group in set(groups):
            specs += _GROUP_SPECS[group]
    return specs


class FeatureEngine:
    def __init__(self, windows: tuple[int, ...] = WINDOWS, groups: Iterable[Group] = ()) -> None:
        unknown = set(groups) - set(OPTIONAL_GROUPS)
        if unknown:
            raise ValueError(
                f"unknown feature group(s) {sorted(unknown)}; known: {', '.join(OPTIONAL_GROUPS)}"
            )
        if not windows or min(windows) < 1:
            raise ValueError(f"feature windows must be positive, got {windows}")
        self.windows = np.array(sorted(windows), dtype=np.int64)
        self.groups = tuple(g for g in OPTIONAL_GROUPS if g in set(groups))
        self._group_flags = np.array([g in self.groups for g in OPTIONAL_GROUPS])
        self.names = tuple(spec.name for spec in catalogue(tuple(self.windows), self.groups))
        self.lanes = 0
        w = len(self.windows)
        self._count = np.zeros(0, dtype=np.int64)  # candles since the series began or was reset
        self._last = np.zeros(0, dtype=np.int64)  # timestamp_in of the last candle
        self._ring = np.zeros((0, 3, 2 * (int(self.windows[-1]) + 1)))  # close, volume, log return
        self._ema = np.zeros((0, w))
        self._gain = np.zeros((0, w))
        self._loss = np.zeros((0, w))
        self._open_interest = np.zeros(0)
        self._stats = np.zeros(2, dtype=np.int64)  # resets, out_of_order
        self.candles = 0
        compile_step()

    @property
    def stats(self) -> Counter[str]:
        resets, out_of_order = self._stats.tolist()
        return Counter(candles=self.candles, resets=resets, out_of_order=out_of_order)

    def grow(self, lanes: int) -> None:
        """Make room for lanes ``0 .. lanes - 1``."""
        if lanes <= self.lanes:
            return
        lanes = max(lanes, 2 * self.lanes)
        extra = lanes - self.lanes

        def more(a: np.ndarray, fill: float | int = 0) -> np.ndarray:
            return np.concatenate([a, np.full((extra, *a.shape[1:]), fill, dtype=a.dtype)])

        self._count = more(self._count)
        self._last = more(self._last, NO_CANDLE)
        self._ring, self._ema = more(self._ring), more(self._ema)
        self._gain, self._loss = more(self._gain), more(self._loss)
        self._open_interest = more(self._open_interest)
        self.lanes = lanes

    def last_start(self, lane: int) -> int | None:
        """``timestamp_in`` of the lane's last candle, or None."""
        if lane >= self.lanes or self._last[lane] == NO_CANDLE:
            return None
        return int(self._last[lane])

    def step(self, lanes: np.ndarray, x: CandleInputs, timeframe_us: int) -> FeatureColumns:
        """Row ``r`` is the next candle of lane ``lanes[r]``; rows are applied in order, all of one
        timeframe. A live boundary gives each lane once; a historical batch is one lane repeated."""
        lanes = np.asarray(lanes, dtype=np.int64)
        k = len(lanes)
        if k:
            self.grow(int(lanes.max()) + 1)
        if self.groups:
            context = np.column_stack([x.context_column(name) for name in CONTEXT_COLUMNS])
        else:
            context = np.empty((k, len(CONTEXT_COLUMNS)))
        out = np.empty((k, len(self.names)))
        refused = int(self._stats[1])
        step_lanes(
            lanes, x.timestamp_in.astype(np.int64, copy=False), *_floats(x), context, int(timeframe_us),
            self.windows, self._group_flags, self._count, self._last, self._ring, self._ema, self._gain,
            self._loss, self._open_interest, out, self._stats,
        )  # fmt: skip
        self.candles += k
        if self._stats[1] > refused:
            log.error(
                "features: %d candle(s) not after their series' previous one (e.g. %d us): null features",
                int(self._stats[1]) - refused,
                int(x.timestamp_in[0]),
            )
        return FeatureColumns(self.names, out)

    def run(self, lane: int, x: CandleInputs, timeframe_us: int) -> FeatureColumns:
        """A series' candles, in time order, through one lane (history, warm-up)."""
        return self.step(np.full(len(x), lane, dtype=np.int64), x, timeframe_us)


def _floats(x: CandleInputs) -> tuple[np.ndarray, ...]:
    columns = (x.close, x.high, x.low, x.volume, x.buy_volume, x.sell_volume, x.vwap, x.trade_count)
    return tuple(np.asarray(c, dtype=np.float64) for c in columns)


_compiled = False


def compile_step() -> None:
    """Compile the step (or load it from numba's cache) now, not while the first frames wait: loading
    takes ~0.2-0.8 s, compiling a few seconds. The service calls this at start."""
    global _compiled
    if not _compiled:
        _compiled = True
        one = np.ones(1)
        candle = CandleInputs(np.zeros(1, dtype=np.int64), **dict.fromkeys(FEATURE_INPUTS, one))
        FeatureEngine(WINDOWS, OPTIONAL_GROUPS).step(np.zeros(1, dtype=np.int64), candle, 60_000_000)
