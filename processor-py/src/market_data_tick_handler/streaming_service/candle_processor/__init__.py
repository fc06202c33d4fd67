from .batch import candles_from_trades, candles_to_frame
from .candle import Candle
from .candle_batch import CandleBatch, CandleColumns
from .candle_engine import DEFAULT_TIMEFRAMES, CandleEngine
from .closed import ClosedCandles, Stamps
from .feature_columns import FeatureColumns
from .live_candle_processor import LiveCandleProcessor
from .timeframes import Timeframe, parse_timeframes

__all__ = [
    "DEFAULT_TIMEFRAMES",
    "Candle",
    "CandleBatch",
    "CandleColumns",
    "CandleEngine",
    "ClosedCandles",
    "FeatureColumns",
    "LiveCandleProcessor",
    "Stamps",
    "Timeframe",
    "candles_from_trades",
    "candles_to_frame",
    "parse_timeframes",
]
