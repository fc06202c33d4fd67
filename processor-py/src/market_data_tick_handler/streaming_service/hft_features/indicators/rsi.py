"""``rsi_N``: Wilder's relative strength index, 0-100, as TA-Lib computes it.

The first N close-to-close changes seed the average gain and loss (plain means); after that
avg = (avg_prev × (N − 1) + this change's gain or loss) / N. RSI = 100 × avg_gain / (avg_gain + avg_loss),
and 50 when the window had no change at all (TA-Lib returns 0 there: flat is not oversold).
"""

from numba import njit

from ..catalogue import FeatureSpec
from .ring import CLOSE


def rsi_specs(windows):
    return tuple(
        FeatureSpec(
            f"rsi_{n}",
            f"100 × avg_gain / (avg_gain + avg_loss), Wilder smoothing over {n} changes; 50 if flat",
            n + 1,
            "window",
        )
        for n in windows
    )


@njit(cache=True)
def wilder_averages(ring, lane, newest, count, n, gain, loss):
    """(avg_gain, avg_loss) after this candle, from the previous ones; NaN before N changes."""
    if count > n + 1:
        change = ring[lane, CLOSE, newest] - ring[lane, CLOSE, newest - 1]
        return (gain * (n - 1) + max(change, 0.0)) / n, (loss * (n - 1) + max(-change, 0.0)) / n
    if count == n + 1:
        gains = losses = 0.0
        for j in range(n, 0, -1):  # oldest change first, as TA-Lib
            change = ring[lane, CLOSE, newest - j + 1] - ring[lane, CLOSE, newest - j]
            if change < 0:
                losses -= change
            else:
                gains += change
        return gains / n, losses / n
    return float("nan"), float("nan")


@njit(cache=True)
def rsi(gain, loss):
    total = gain + loss
    if total > 0:
        return 100.0 * gain / total
    if total == 0:
        return 50.0
    return float("nan")
