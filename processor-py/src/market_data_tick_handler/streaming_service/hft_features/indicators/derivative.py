"""From the last derivative ticker of the candle (data type ``derivative_ticker``)."""

from numba import njit

from ..catalogue import FeatureSpec

DERIVATIVE = (
    FeatureSpec("funding_rate", "current funding rate", 1, "derivative"),
    FeatureSpec("open_interest", "open interest", 1, "derivative"),
    FeatureSpec(
        "open_interest_change", "open_interest − open_interest of the previous candle", 2, "derivative"
    ),
    FeatureSpec("basis_bps", "(mark price − index price) / index price × 10⁴", 1, "derivative"),
)


@njit(cache=True)
def derivative_features(funding_rate, open_interest, previous_open_interest, mark, index, out, at):
    out[at] = funding_rate
    out[at + 1] = open_interest
    out[at + 2] = open_interest - previous_open_interest
    out[at + 3] = (mark - index) / index * 1e4
