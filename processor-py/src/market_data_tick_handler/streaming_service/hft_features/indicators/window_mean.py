"""``sma_N`` and ``volume_sma_N``: the arithmetic mean of the last N closes (volumes)."""

from numba import njit

from ..catalogue import FeatureSpec
from .ring import newest_sum


def sma_specs(windows):
    return tuple(FeatureSpec(f"sma_{n}", f"mean of the last {n} closes", n, "window") for n in windows)


def volume_sma_specs(windows):
    return tuple(
        FeatureSpec(f"volume_sma_{n}", f"mean of the last {n} volumes", n, "window") for n in windows
    )


@njit(cache=True)
def window_mean(ring, lane, series, newest, n):
    return newest_sum(ring, lane, series, newest, n) / n
