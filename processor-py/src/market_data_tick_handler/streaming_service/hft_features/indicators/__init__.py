"""One file per indicator: its catalogue entries (``specs``) and its formula for one series, compiled
with numba. ``kernel.py`` calls them, in catalogue order, for every series of a step.

A series' history is a ring, ``ring[lane, series, i]`` with series CLOSE, VOLUME or LOG_RETURN, written
twice (at ``i`` and ``i + depth``) so that a window is contiguous: the newest value is at ``newest``
(in ``[depth, 2 depth)``), the one j candles older at ``newest - j``.
"""

from .book import BOOK
from .candle_stats import CANDLE_STATS
from .derivative import DERIVATIVE
from .ema import ema_specs
from .liquidations import LIQUIDATIONS
from .rsi import rsi_specs
from .volatility import volatility_specs
from .window_mean import sma_specs, volume_sma_specs

__all__ = [
    "BOOK",
    "CANDLE_STATS",
    "DERIVATIVE",
    "LIQUIDATIONS",
    "ema_specs",
    "rsi_specs",
    "sma_specs",
    "volatility_specs",
    "volume_sma_specs",
]
