from .batch import candles_from_trades, candles_to_frame
from .candle import Candle, CandleBuilder
from .candle_engine import CandleEngine
from .live_candle_processor import DEFAULT_TIMEFRAMES, LiveCandleProcessor
from .timeframes import Timeframe, parse_timeframes

__all__ = [
    "DEFAULT_TIMEFRAMES",
    "Candle",
    "CandleBuilder",
    "CandleEngine",
    "LiveCandleProcessor",
    "Timeframe",
    "candles_from_trades",
    "candles_to_frame",
    "parse_timeframes",
]
