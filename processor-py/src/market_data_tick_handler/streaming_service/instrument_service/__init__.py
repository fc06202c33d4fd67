from .instrument_mapper import InstrumentMapper
from .instrument_table import ExchangeEntries, FrameInstruments, Instruments, InstrumentTable

__all__ = ["ExchangeEntries", "FrameInstruments", "InstrumentMapper", "InstrumentTable", "Instruments"]
