from .definitions import InstrumentChange, InstrumentDefinition
from .instrument_mapper import InstrumentMapper
from .instrument_table import ExchangeEntries, FrameInstruments, Instruments, InstrumentTable
from .live_provider import CHANGE_CHANNEL, LiveInstrumentProvider

__all__ = [
    "CHANGE_CHANNEL",
    "ExchangeEntries",
    "FrameInstruments",
    "InstrumentChange",
    "InstrumentDefinition",
    "InstrumentMapper",
    "InstrumentTable",
    "Instruments",
    "LiveInstrumentProvider",
]
