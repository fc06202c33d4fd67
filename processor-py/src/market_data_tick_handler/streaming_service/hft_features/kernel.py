"""The compiled step: every feature of the next candle of each given series (lane), in catalogue order.

``update_lane`` is the whole of the feature arithmetic for one candle of one series; ``step_lanes``
runs it for each row, in order: the instruments of a live boundary (each lane once) or the candles of
a historical batch (one lane repeated). History and live are the same machine code.
"""

from math import log

import numpy as np
from numba import njit

from .indicators.book import book_features
from .indicators.candle_stats import candle_stats
from .indicators.derivative import derivative_features
from .indicators.ema import ema_next
from .indicators.ring import CLOSE, LOG_RETURN, VOLUME, push
from .indicators.rsi import rsi, wilder_averages
from .indicators.volatility import volatility
from .indicators.window_mean import window_mean

NO_CANDLE = np.iinfo(np.int64).min
NAN = float("nan")
# context columns (inputs.CONTEXT, flattened)
BID, ASK, BID_SIZE, ASK_SIZE, BID_DEPTH, ASK_DEPTH = 0, 1, 2, 3, 4, 5
FUNDING, OPEN_INTEREST, MARK, INDEX = 6, 7, 8, 9
LIQ_BUY, LIQ_SELL = 10, 11


@njit(cache=True)
def update_lane(
    lane, close, high, low, volume, buy, sell, vwap, trades, context, seconds, windows, groups,
    count, ring, ema, gain, loss, open_interest, out,
):  # fmt: skip
    depth = ring.shape[2] // 2
    n_windows = len(windows)
    c = count[lane] + 1
    count[lane] = c
    log_return = log(close / ring[lane, CLOSE, (c - 2) % depth]) if c > 1 else 0.0
    newest = push(ring, lane, CLOSE, c - 1, depth, close)
    push(ring, lane, VOLUME, c - 1, depth, volume)
    push(ring, lane, LOG_RETURN, c - 1, depth, log_return)
    for i in range(n_windows):
        n = windows[i]
        out[i] = window_mean(ring, lane, CLOSE, newest, n) if c >= n else NAN
        ema[lane, i] = ema_next(ring, lane, newest, c, n, ema[lane, i], close)
        out[n_windows + i] = ema[lane, i]
        gain[lane, i], loss[lane, i] = wilder_averages(ring, lane, newest, c, n, gain[lane, i], loss[lane, i])
        out[2 * n_windows + i] = rsi(gain[lane, i], loss[lane, i])
        out[3 * n_windows + i] = volatility(ring, lane, newest, n) if c >= n + 1 else NAN
        out[4 * n_windows + i] = window_mean(ring, lane, VOLUME, newest, n) if c >= n else NAN
    at = 5 * n_windows
    candle_stats(
        log_return if c > 1 else NAN, close, high, low, volume, buy, sell, vwap, trades, seconds, out, at
    )
    at += 6
    if groups[0]:
        book_features(
            context[BID], context[ASK], context[BID_SIZE], context[ASK_SIZE], context[BID_DEPTH],
            context[ASK_DEPTH], out, at,
        )  # fmt: skip
        at += 4
    if groups[1]:
        previous = open_interest[lane] if c > 1 else NAN
        open_interest[lane] = context[OPEN_INTEREST]
        derivative_features(
            context[FUNDING], context[OPEN_INTEREST], previous, context[MARK], context[INDEX], out, at
        )
        at += 4
    if groups[2]:
        out[at] = context[LIQ_BUY]
        out[at + 1] = context[LIQ_SELL]


@njit(cache=True)
def step_lanes(
    lanes, start, close, high, low, volume, buy, sell, vwap, trades, context, timeframe_us, windows, groups,
    count, last, ring, ema, gain, loss, open_interest, out, stats,
):  # fmt: skip
    """One candle per row, applied in order; ``stats`` gets [resets, out_of_order] added. A row that is
    not after its lane's last candle gets NaN features and leaves the lane alone; a row after a hole
    resets the lane first."""
    seconds = timeframe_us / 1e6
    for r in range(len(lanes)):
        lane = lanes[r]
        if start[r] <= last[lane]:
            out[r, :] = NAN
            stats[1] += 1
            continue
        if last[lane] != NO_CANDLE and start[r] != last[lane] + timeframe_us:
            count[lane] = 0
            stats[0] += 1
        last[lane] = start[r]
        update_lane(
            lane, close[r], high[r], low[r], volume[r], buy[r], sell[r], vwap[r], trades[r], context[r],
            seconds, windows, groups, count, ring, ema, gain, loss, open_interest, out[r],
        )  # fmt: skip
