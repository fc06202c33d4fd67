"""Which sinks a run has, and in which order they get each frame's output.

A line per sink: its name (an entry of streaming.yaml's ``modes``, of ``--mode`` through ``main.RUNS``,
or ``console`` for ``--print-candles``) and the factory that makes it from the configuration and its
option from the command line. Adding a sink: a new file with a class that implements ``base.Sink`` and
has a ``from_config(config, option)``, and a line here."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from ...config import StreamingConfig
from ..console import CandleTable
from ..modes import PersistMode, ServeMode
from .base import Sink
from .bigquery_ticks import TicksMode

Factory = Callable[[StreamingConfig, str | None], Sink]

#: in the order the service hands them a frame's output: Redis first (one round trip), then BigQuery
#: (candles, then ticks: queued, return at once), then the console
SINKS: dict[str, Factory] = {
    "serve": ServeMode.from_config,
    "persist": PersistMode.from_config,
    "ticks": TicksMode.from_config,
    "console": CandleTable.from_config,
}


def make_sinks(
    names: Collection[str], config: StreamingConfig, options: Mapping[str, str | None] | None = None
) -> list[Sink]:
    """The sinks named, in the order of :data:`SINKS`; ``options``: a sink's option by name."""
    unknown = sorted(set(names) - set(SINKS))
    if unknown:
        raise ValueError(f"no sink named {', '.join(unknown)} (sinks: {', '.join(SINKS)})")
    options = options or {}
    return [factory(config, options.get(name)) for name, factory in SINKS.items() if name in names]
