"""Liquidations in the candle (data type ``liquidations``, native or derived from trades)."""

from ..catalogue import FeatureSpec

LIQUIDATIONS = (
    FeatureSpec(
        "liquidation_buy_volume", "summed amount of buy-side liquidations in the candle", 1, "liquidations"
    ),
    FeatureSpec(
        "liquidation_sell_volume", "summed amount of sell-side liquidations in the candle", 1, "liquidations"
    ),
)
