"""``HFTFeatureCalculator``: the seeds' API over the feature engine, for one symbol.

``compute_batch`` and ``compute_incremental`` run the same :meth:`FeatureEngine.step`, on the same lane
(one per timeframe): a batch is the next candles of the series, and live candles carry on from it, so
a calculator warmed up with history gives the first live candle full-window features::

    calc = HFTFeatureCalculator("BTC-USDT")
    history = await calc.compute_batch(candles_df, timeframe="1m")   # one HFTFeatures per candle
    features = await calc.compute_incremental(live_candle)            # the next candle's
    features.rsi_5                                                   # None until warmed up
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from ...timeutil import iso_us, to_us_array
from ..candle_processor import Timeframe
from .catalogue import OPTIONAL_GROUPS, WINDOWS
from .feature_engine import FeatureColumns, FeatureEngine, catalogue
from .inputs import candle_fields, inputs_from_frame

FEATURE_NAMES = tuple(spec.name for spec in catalogue(WINDOWS, OPTIONAL_GROUPS))

HFTFeatures = dataclasses.make_dataclass(
    "HFTFeatures",
    [("symbol", str), ("timeframe", str), ("timestamp_in", "int | None")]
    + [(name, "float | None") for name in FEATURE_NAMES],
    frozen=True,
    slots=True,
    namespace={
        "__doc__": "The features of one candle: the fields named in docs/FEATURES.md; None = null.",
        "to_dict": lambda self: dataclasses.asdict(self),
    },
)
HFTFeatures.__module__ = __name__


class HFTFeatureCalculator:
    def __init__(self, symbol: str, windows: tuple[int, ...] = WINDOWS) -> None:
        self.symbol = symbol
        self.engine = FeatureEngine(windows, OPTIONAL_GROUPS)
        self._lanes: dict[str, int] = {}
        self._next_consecutive: dict[str, int] = {}  # for candles given without timestamps

    def _lane(self, timeframe: str) -> tuple[int, int]:
        micros = Timeframe.parse(timeframe).micros
        lane = self._lanes.setdefault(timeframe, len(self._lanes))
        return lane, micros

    async def compute_batch(self, candles_df: Any, timeframe: str = "1m") -> list[Any]:
        """One ``HFTFeatures`` per candle of ``candles_df`` (a DataFrame or a dict of columns: ``close``,
        and as available ``high``, ``low``, ``volume``, ``buy_volume``, ``sell_volume``, ``vwap``,
        ``trade_count``, ``timestamp_in``, and the context columns of ``inputs.CONTEXT``), in time order,
        continuing the series this calculator has seen. A ``timeframe`` column, if any, selects the rows
        of ``timeframe``; without ``timestamp_in`` the rows are taken as consecutive candles. A
        ``timestamp_in`` is the start of the candle's bucket: on the timeframe's grid (a multiple of it from
        the epoch) and after the row before, else a ValueError names the first row that is not."""
        frame = self._select(candles_df, timeframe)
        lane, micros = self._lane(timeframe)
        timestamps = self._timestamps(frame, timeframe, micros)
        columns = self.engine.run(lane, inputs_from_frame(frame, timestamps), micros)
        return self._records(columns, timeframe, timestamps, "timestamp_in" in frame)

    async def compute_incremental(self, candle: Any, timeframe: str | None = None) -> Any:
        """The ``HFTFeatures`` of the next candle of its series (a ``Candle``, a published message, a dict
        or an object with the candle's attributes)."""
        fields = candle_fields(candle)
        timeframe = timeframe or fields.get("timeframe") or "1m"
        frame = {k: [v] for k, v in fields.items() if v is not None and k not in ("symbol", "timeframe")}
        return (await self.compute_batch(frame | {"symbol": [fields.get("symbol", self.symbol)]}, timeframe))[
            0
        ]

    def _select(self, candles: Any, timeframe: str) -> Mapping[str, Any]:
        frame = {
            str(k): np.asarray(v) for k, v in (candles.items() if hasattr(candles, "items") else candles)
        }
        if "timeframe" in frame:
            keep = frame["timeframe"] == timeframe
            frame = {k: v[keep] for k, v in frame.items()}
        if "symbol" in frame:
            other = np.flatnonzero(frame["symbol"] != self.symbol)
            if len(other):
                row = int(other[0])
                raise ValueError(
                    f"candle row {row} is {frame['symbol'][row]}, this calculator is for {self.symbol}"
                )
        return frame

    def _timestamps(self, frame: Mapping[str, Any], timeframe: str, micros: int) -> np.ndarray:
        n = len(frame["close"]) if "close" in frame else 0
        if "timestamp_in" not in frame:
            start = self._next_consecutive.get(timeframe, 0)
            self._next_consecutive[timeframe] = start + n * micros
            return start + micros * np.arange(n, dtype=np.int64)
        timestamps = to_us_array(frame["timestamp_in"])
        off_grid = timestamps % micros != 0
        not_after = np.zeros(len(timestamps), dtype=bool)
        not_after[1:] = np.diff(timestamps) <= 0
        bad = np.flatnonzero(off_grid | not_after)
        if len(bad):  # the first bad row, for either reason
            i = int(bad[0])
            t = int(timestamps[i])
            if off_grid[i]:
                start = t - t % micros
                raise ValueError(
                    f"candle row {i}: timestamp_in {iso_us(t)} ({t} us) is not on the {timeframe} grid (a"
                    f" multiple of {timeframe} from the epoch, e.g. {iso_us(start)} or"
                    f" {iso_us(start + micros)}); timestamp_in is the start of the candle's bucket"
                )
            raise ValueError(
                f"candle row {i}: timestamp_in is not after row {i - 1}'s ({iso_us(t)} = {t} us; row {i - 1}:"
                f" {iso_us(int(timestamps[i - 1]))}); sort the candles by time"
            )
        last = self.engine.last_start(self._lanes[timeframe])
        if n and last is not None and timestamps[0] <= last:
            raise ValueError(
                f"candle row 0 ({int(timestamps[0])} us) is not after the last {timeframe} candle this"
                f" calculator has seen ({last} us); use a new calculator to start over"
            )
        return timestamps

    def _records(
        self, columns: FeatureColumns, timeframe: str, timestamps: np.ndarray, timed: bool
    ) -> list[Any]:
        stamps = timestamps.tolist() if timed else [None] * len(columns)
        return [
            HFTFeatures(symbol=self.symbol, timeframe=timeframe, timestamp_in=t, **record)
            for t, record in zip(stamps, columns.records(), strict=True)
        ]
