"""The features a block of closed candles carries (``CandleColumns.features``), as columns.

They are computed by ``hft_features`` (``FeatureEngine.step``) and read by the writers; defined here,
with the candles that carry them, so that ``candle_processor`` needs nothing from ``hft_features``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class FeatureColumns:
    """Features of the candles of one step: ``values[r, i]`` is feature ``names[i]`` of candle ``r``;
    NaN = null."""

    names: tuple[str, ...]
    values: np.ndarray  # (candles, features)

    def __len__(self) -> int:
        return len(self.values)

    def rows(self, start: int, stop: int) -> FeatureColumns:
        """The features of candles ``start:stop`` (a view)."""
        return FeatureColumns(self.names, self.values[start:stop])

    def records(self) -> list[dict[str, float | None]]:
        """One dict per candle, ``None`` where the value is null."""
        rows = self.values.tolist()
        missing = np.isnan(self.values).any(axis=1)
        if missing.any():
            for i in np.flatnonzero(missing).tolist():
                rows[i] = [None if v != v else v for v in rows[i]]
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in rows]
