"""The streaming service (the seeds' walkthrough 7 lists these imports)."""

from .candle_processor import Candle, CandleEngine, LiveCandleProcessor, candles_from_trades, candles_to_frame
from .instrument_service import InstrumentMapper
from .messages import CandleEvent
from .modes import ServeConfig, ServeMode
from .tick_processor import TickHandler

__all__ = [
    "Candle",
    "CandleEngine",
    "CandleEvent",
    "InstrumentMapper",
    "LiveCandleProcessor",
    "ServeConfig",
    "ServeMode",
    "TickHandler",
    "candles_from_trades",
    "candles_to_frame",
]
