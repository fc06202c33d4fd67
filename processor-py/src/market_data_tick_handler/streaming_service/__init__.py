"""The streaming service: the public imports (the names the seeds use; docs/ARCHITECTURE.md maps them)."""

from .candle_processor import (
    Candle,
    CandleBatch,
    CandleEngine,
    LiveCandleProcessor,
    candles_from_trades,
    candles_to_frame,
)
from .consumers import LiveFeatureStream
from .data_types import DataTypeRouter
from .hft_features import HFTFeatureCalculator, HFTFeatures, LiveFeatures
from .instrument_service import InstrumentMapper
from .messages import candle_messages
from .modes import PersistMode, ServeConfig, ServeMode
from .tick_processor import TickHandler

__all__ = [
    "Candle",
    "CandleBatch",
    "CandleEngine",
    "DataTypeRouter",
    "HFTFeatureCalculator",
    "HFTFeatures",
    "InstrumentMapper",
    "LiveCandleProcessor",
    "LiveFeatureStream",
    "LiveFeatures",
    "PersistMode",
    "ServeConfig",
    "ServeMode",
    "TickHandler",
    "candle_messages",
    "candles_from_trades",
    "candles_to_frame",
]
