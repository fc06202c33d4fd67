"""Candles from trades: the engine, the batch API, the live processor, timeframes.

Each name is imported on first use (PEP 562): ``timeframes`` (what a consumer's ``LiveFeatureStream``
needs) does not bring numba and pandas with it.
"""

from ..._lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_TIMEFRAMES": ".candle_engine",
    "Candle": ".candle",
    "CandleBatch": ".candle_batch",
    "CandleColumns": ".candle_batch",
    "CandleEngine": ".candle_engine",
    "ClosedCandles": ".closed",
    "FeatureColumns": ".feature_columns",
    "LiveCandleProcessor": ".live_candle_processor",
    "MultiTimeframeProcessor": ".multi_timeframe_processor",
    "Stamps": ".closed",
    "Timeframe": ".timeframes",
    "candles_from_trades": ".batch",
    "candles_to_frame": ".batch",
    "parse_timeframes": ".timeframes",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
