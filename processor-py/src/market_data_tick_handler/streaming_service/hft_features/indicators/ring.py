"""The history ring every window indicator reads (see ``__init__``)."""

from numba import njit

CLOSE, VOLUME, LOG_RETURN = 0, 1, 2


@njit(cache=True)
def push(ring, lane, series, at, depth, value):
    """Write the value of candle number ``at`` (from 0); returns its index for reading (``newest``)."""
    i = at % depth
    ring[lane, series, i] = value
    ring[lane, series, i + depth] = value
    return i + depth


@njit(cache=True)
def newest_sum(ring, lane, series, newest, n):
    """Sum of the newest ``n`` values of ``series``, newest first."""
    total = 0.0
    for j in range(n):
        total += ring[lane, series, newest - j]
    return total
