"""``DataTypeRouter``: the data types of the registry (``registry.py``), their configuration
(``data_types`` in streaming.yaml), their processors, and what the ingester must stream for them::

    router = DataTypeRouter()                      # the registry's defaults
    router.get_supported_data_types()              # trades, book_snapshots, liquidations, ...
    router.get_config("liquidations").fallback     # True: derived from trades
    await router.get_processor("book_snapshots")   # BookSnapshotProcessor
    router.ingester_data_types("binance")          # ('trade', 'book_snapshot', 'derivative_ticker', ...)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from ...config import DataTypeConfig, DataTypesConfig
from ...timeutil import now_us
from ..clock import Clock, make_clock
from ..instrument_service import InstrumentMapper, Instruments
from .availability import unavailable_reason
from .base import DataTypeProcessor
from .registry import BY_NAME, FEATURE_GROUP_OF, FRAMES_OF, SUPPORTED_DATA_TYPES, WIRE_ORDER

log = logging.getLogger(__name__)


class DataTypeRouter:
    def __init__(
        self,
        config: DataTypesConfig | None = None,
        mapper: InstrumentMapper | None = None,
        clock: Clock | str = "event",
        now: Callable[[], int] = now_us,
        instruments: Instruments | None = None,
    ) -> None:
        """``clock``: the clock of the processors that keep time (gaps), or its name (``now``: then its
        system time); a frame router running candles binds its own (``bind``). ``instruments``: the
        instrument tables the processors share (default: new ones on ``mapper``)."""
        self.config = config or DataTypesConfig()
        self.instruments = instruments or Instruments(mapper)
        self.mapper = self.instruments.mapper
        self.clock = make_clock(clock, now) if isinstance(clock, str) else clock
        self._processors: dict[str, DataTypeProcessor] = {}

    def bind(self, clock: Clock) -> None:
        """Run the processors that keep time on ``clock`` (the candle engines'), before any is made."""
        if clock is not self.clock and "gaps" in self._processors:
            raise ValueError("the gap processor exists already: bind the clock before it is made")
        self.clock = clock

    # -- the seeds' API ------------------------------------------------------------------------
    def get_supported_data_types(self) -> list[str]:
        return list(SUPPORTED_DATA_TYPES)

    def get_config(self, data_type: str) -> DataTypeConfig | None:
        """The type's configuration (``enabled``, ``source``, ``batch_timeout``, ``fallback``), or None
        for a type that does not exist."""
        return self.config.get(data_type)

    async def get_processor(self, data_type: str) -> DataTypeProcessor:
        return self.processor(data_type)

    # -- the rest ------------------------------------------------------------------------------
    def processor(self, data_type: str) -> DataTypeProcessor:
        """The type's processor (one per router: processors such as gaps and funding rates keep state)."""
        got = self._processors.get(data_type)
        if got is None:
            spec = BY_NAME.get(data_type)
            if spec is None:
                raise ValueError(f"unknown data type {data_type!r}; known: {', '.join(SUPPORTED_DATA_TYPES)}")
            got = self._processors[data_type] = spec.processor.create(
                self.instruments, self.config[data_type], self.clock
            )
        return got

    def enabled(self, data_type: str) -> bool:
        config = self.config.get(data_type)
        return config is not None and config.enabled

    def enabled_data_types(self) -> list[str]:
        return [t for t in SUPPORTED_DATA_TYPES if self.enabled(t)]

    def unavailable(self, exchange: str) -> dict[str, str]:
        """Enabled data types that ``exchange`` cannot have -> the warning that says why."""
        out = {}
        for t in self.enabled_data_types():
            config = self.config[t]
            reason = unavailable_reason(t, config.source, exchange)
            if reason is not None:
                label = f"{t} ({config.source})" if config.fallback else t
                out[t] = f"{label} not available for {exchange}: {reason}"
        return out

    def ingester_data_types(self, exchange: str | None = None) -> tuple[str, ...]:
        """The ingester's ``--data-types``: the frames the enabled data types are made from (without
        those ``exchange`` cannot have, when given), in wire order."""
        skip = set(self.unavailable(exchange)) if exchange else set()
        wanted = {f for t in self.enabled_data_types() if t not in skip for f in FRAMES_OF[t]}
        return tuple(f for f in WIRE_ORDER if f in wanted)

    def feature_groups(self, exchange: str | None = None) -> tuple[str, ...]:
        """The HFT feature groups the enabled data types feed (``CandleSettings.feature_groups``)."""
        skip = set(self.unavailable(exchange)) if exchange else set()
        return tuple(group for t, group in FEATURE_GROUP_OF.items() if self.enabled(t) and t not in skip)

    def warn_unavailable(self, exchanges: Iterable[str]) -> list[str]:
        """Log (WARNING) and return what the enabled data types cannot have on ``exchanges``."""
        messages = [m for exchange in exchanges for m in self.unavailable(exchange).values()]
        for message in messages:
            log.warning("%s", message)
        return messages

    def check_start(
        self, exchanges: Sequence[str], streamed: Sequence[str], reasons: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The ingester's ``start`` frame lists the frame types it ``streamed`` (it leaves out what
        tardis-dev cannot stream for the exchange, or what a recording does not hold) and, in
        ``unavailable`` (``reasons``), why: log (WARNING) and return, per enabled data type whose frames
        are missing, the message that says so."""
        missing: dict[str, str] = {}
        for exchange in exchanges:
            for frame_type in self.ingester_data_types(exchange):
                if frame_type in streamed:
                    continue
                for t in self.enabled_data_types():
                    if frame_type in FRAMES_OF[t] and t not in missing:
                        config = self.config[t]
                        label = f"{t} ({config.source})" if config.fallback else t
                        why = (reasons or {}).get(frame_type)
                        missing[t] = (
                            f"{label} not available for {exchange}:"
                            f" the ingester does not stream {frame_type} for it"
                            + (f" ({why})" if isinstance(why, str) else "")
                        )
        for message in missing.values():
            log.warning("%s", message)
        return missing
