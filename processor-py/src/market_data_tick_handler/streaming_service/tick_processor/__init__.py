"""Wire frames in, closed candles and records out.

- ``frame_router.py``: ``FrameRouter``: decode, sequence, a table from frame type to handler;
- ``counters.py``: every count, and the frame and row ledgers read from them;
- ``ticks.py``: a tick given as a dict as the columns of a one-row frame;
- ``tick_handler.py``: ``TickHandler``, the public face: the router, ``process_tick`` and ``get_stats``.
"""

from .frame_router import FrameRouter
from .tick_handler import CandleSettings, FrameResult, TickHandler

__all__ = ["CandleSettings", "FrameResult", "FrameRouter", "TickHandler"]
