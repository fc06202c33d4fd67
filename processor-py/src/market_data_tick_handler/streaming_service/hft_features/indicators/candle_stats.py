"""Features of the candle itself (no window)."""

from numba import njit

from ..catalogue import FeatureSpec

CANDLE_STATS = (
    FeatureSpec("log_return", "ln(close / previous close)", 2, "candle"),
    FeatureSpec(
        "vwap_deviation_bps", "(close − vwap) / vwap × 10⁴; null if the candle is empty", 1, "candle"
    ),
    FeatureSpec(
        "volume_imbalance",
        "(buy_volume − sell_volume) / (buy_volume + sell_volume), −1..1; null if both are 0",
        1,
        "candle",
    ),
    FeatureSpec("trades_per_second", "trade_count / timeframe length in seconds", 1, "candle"),
    FeatureSpec("avg_trade_size", "volume / trade_count; null if the candle is empty", 1, "candle"),
    FeatureSpec("hl_range_bps", "(high − low) / close × 10⁴", 1, "candle"),
)


@njit(cache=True)
def candle_stats(log_return, close, high, low, volume, buy, sell, vwap, trades, seconds, out, at):
    nan = float("nan")
    sided = buy + sell
    out[at] = log_return
    out[at + 1] = (close - vwap) / vwap * 1e4 if vwap > 0 else nan  # NaN vwap: empty candle
    out[at + 2] = (buy - sell) / sided if sided > 0 else nan
    out[at + 3] = trades / seconds
    out[at + 4] = volume / trades if trades > 0 else nan
    out[at + 5] = (high - low) / close * 1e4
