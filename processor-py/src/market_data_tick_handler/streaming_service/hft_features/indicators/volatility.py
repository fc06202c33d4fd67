"""``price_volatility_N``: population standard deviation of the last N log returns (TA-Lib STDDEV with
nbdev 1), per candle, not annualised; two passes (mean, then squared deviations)."""

from math import sqrt

from numba import njit

from ..catalogue import FeatureSpec
from .ring import LOG_RETURN, newest_sum


def volatility_specs(windows):
    return tuple(
        FeatureSpec(
            f"price_volatility_{n}",
            f"sqrt(mean((r − mean(r))²)) over the last {n} log returns r = ln(close / close_prev)",
            n + 1,
            "window",
        )
        for n in windows
    )


@njit(cache=True)
def volatility(ring, lane, newest, n):
    mean = newest_sum(ring, lane, LOG_RETURN, newest, n) / n
    total = 0.0
    for j in range(n):
        d = ring[lane, LOG_RETURN, newest - j] - mean
        total += d * d
    return sqrt(total / n)
