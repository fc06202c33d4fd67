from .instrument_mapper import InstrumentMapper

__all__ = ["InstrumentMapper"]
