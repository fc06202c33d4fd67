"""The feature catalogue: one :class:`FeatureSpec` per feature (name, formula, warm-up), declared by
the indicator that computes it. docs/FEATURES.md renders the same table; a test keeps the two equal.

Warm-up counts candles of one (instrument, timeframe) series, from its first candle or from the candle
after a hole in it: until the window is full the value is null (``None`` in Python, ``null`` in JSON),
never 0 and never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Group = Literal["window", "candle", "book", "derivative", "liquidations"]
WINDOWS = (5, 10, 20)
OPTIONAL_GROUPS: tuple[Group, ...] = ("book", "derivative", "liquidations")


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    formula: str
    warmup: int  # candles of the series before the first value; 1 = from the first candle
    group: Group
