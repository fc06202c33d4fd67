"""Sinks: where each frame's output goes (``base.py``: the interface; ``backlog.py``: the ordered,
bounded backlog with retry that every sink talking to a server uses; ``registry.py``: which sinks a run
has). The sinks themselves: ``modes/serve_mode.py`` (Redis), ``modes/persist_mode.py`` (BigQuery),
``bigquery_ticks.py`` (BigQuery tick tables), ``console.py`` (the candle table)."""

from .backlog import Backlog, Delivery
from .base import FrameOutput, Sink

__all__ = ["Backlog", "Delivery", "FrameOutput", "Sink"]
