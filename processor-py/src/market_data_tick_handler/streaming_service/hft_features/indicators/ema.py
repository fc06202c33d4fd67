"""``ema_N``: exponential moving average of closes, k = 2 / (N + 1), seeded with the SMA of the first
N closes (as TA-Lib's EMA): ema = (close − ema_prev) × k + ema_prev."""

from numba import njit

from ..catalogue import FeatureSpec
from .ring import CLOSE, newest_sum


def ema_specs(windows):
    return tuple(
        FeatureSpec(
            f"ema_{n}", f"(close − ema_prev) × 2/{n + 1} + ema_prev; the first value is sma_{n}", n, "window"
        )
        for n in windows
    )


@njit(cache=True)
def ema_next(ring, lane, newest, count, n, previous, close):
    """The EMA after this candle (the series' ``count``-th); NaN before the N-th."""
    if count > n:
        return (close - previous) * (2.0 / (n + 1)) + previous
    if count == n:
        return newest_sum(ring, lane, CLOSE, newest, n) / n
    return float("nan")
