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
from .instrument_service import (
    CHANGE_CHANNEL,
    InstrumentChange,
    InstrumentDefinition,
    InstrumentMapper,
    LiveInstrumentProvider,
)
from .messages import candle_messages
from .modes import PersistMode, ServeConfig, ServeMode
from .tick_processor import TickHandler

__all__ = [
    "CHANGE_CHANNEL",
    "Candle",
    "CandleBatch",
    "CandleEngine",
    "DataTypeRouter",
    "HFTFeatureCalculator",
    "HFTFeatures",
    "InstrumentChange",
    "InstrumentDefinition",
    "InstrumentMapper",
    "LiveCandleProcessor",
    "LiveFeatureStream",
    "LiveFeatures",
    "LiveInstrumentProvider",
    "PersistMode",
    "ServeConfig",
    "ServeMode",
    "TickHandler",
    "candle_messages",
    "candles_from_trades",
    "candles_to_frame",
]
