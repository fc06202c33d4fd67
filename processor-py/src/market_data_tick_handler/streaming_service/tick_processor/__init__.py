from .tick_handler import CandleSettings, FrameResult, TickHandler

__all__ = ["CandleSettings", "FrameResult", "TickHandler"]
