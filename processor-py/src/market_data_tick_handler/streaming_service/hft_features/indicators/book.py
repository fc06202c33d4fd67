"""From the last book snapshot of the candle (data type ``book_snapshots``)."""

from numba import njit

from ..catalogue import FeatureSpec

BOOK = (
    FeatureSpec("spread_bps", "(ask − bid) / mid × 10⁴, best levels", 1, "book"),
    FeatureSpec("mid_price", "(bid + ask) / 2", 1, "book"),
    FeatureSpec("microprice", "(bid × ask_size + ask × bid_size) / (bid_size + ask_size)", 1, "book"),
    FeatureSpec(
        "depth_imbalance_5",
        "(bid depth − ask depth) / (bid depth + ask depth), depth = summed size of the top 5 levels",
        1,
        "book",
    ),
)


@njit(cache=True)
def book_features(bid, ask, bid_size, ask_size, bid_depth, ask_depth, out, at):
    mid = (bid + ask) / 2
    out[at] = (ask - bid) / mid * 1e4
    out[at + 1] = mid
    out[at + 2] = (bid * ask_size + ask * bid_size) / (bid_size + ask_size)
    out[at + 3] = (bid_depth - ask_depth) / (bid_depth + ask_depth)
