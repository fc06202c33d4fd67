"""Prometheus metrics and ``/health`` of the processor (docs/OPERATIONS.md).

``start_metrics(config, service)`` serves them; the sinks hold the small recorders of ``recorders.py``
(which need no ``prometheus_client``: this package's ``__init__`` imports the server only when asked)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import MetricsServer, start_metrics

__all__ = ["MetricsServer", "start_metrics"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
