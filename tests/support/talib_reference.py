"""What TA-Lib says the window features of a close series are: the reference the feature tests compare
with (the ``ta-lib`` wheel bundles the C library)."""

from __future__ import annotations

import numpy as np
import talib

WINDOWS = (5, 10, 20)


def talib_reference(close: np.ndarray, volume: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """By feature name; ``volume_sma_N`` when ``volume`` is given. Volatility is the population standard
    deviation of the log returns (docs/FEATURES.md), TA-Lib's STDDEV; STDDEV treats a variance under 1e-8
    as 0 (TA_IS_ZERO_OR_NEG), so it gets the returns in basis points and the result is scaled back."""
    returns_bps = np.concatenate([[np.nan], np.log(close[1:] / close[:-1]) * 1e4])
    out = {}
    for n in WINDOWS:
        out[f"sma_{n}"] = talib.SMA(close, n)
        out[f"ema_{n}"] = talib.EMA(close, n)
        out[f"rsi_{n}"] = talib.RSI(close, n)
        out[f"price_volatility_{n}"] = talib.STDDEV(returns_bps, n, 1) / 1e4
        if volume is not None:
            out[f"volume_sma_{n}"] = talib.SMA(volume, n)
    return out
