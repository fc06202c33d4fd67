"""``DataTypeRouter``: the eight data types of the seeds (walkthrough 1), their configuration
(``data_types`` in streaming.yaml, walkthrough 10), their processors, and what the ingester must stream
for them::

    router = DataTypeRouter()                      # walkthrough-10 defaults
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
from ..instrument_service import InstrumentMapper
from .availability import unavailable_reason
from .base import DataTypeProcessor
from .book_snapshots import BookSnapshotProcessor
from .candles import CandlesProcessor
from .derivative_ticker import DerivativeTickerProcessor
from .funding_rates import FundingRateProcessor
from .gaps import GapProcessor
from .liquidations import LiquidationProcessor
from .options_chain import OptionsChainProcessor
from .trades import TradeProcessor

log = logging.getLogger(__name__)

SUPPORTED_DATA_TYPES = (
    "trades", "book_snapshots", "liquidations", "derivative_ticker", "options_chain", "funding_rates",
    "gaps", "candles",
)  # fmt: skip
#: the wire frame types (the ingester's --data-types) each data type is made from
FRAMES_OF: dict[str, tuple[str, ...]] = {
    "trades": ("trade",),
    "book_snapshots": ("book_snapshot",),
    "liquidations": ("liquidation",),
    "derivative_ticker": ("derivative_ticker",),
    "options_chain": ("option_summary",),
    "funding_rates": ("derivative_ticker",),
    "gaps": (),  # disconnect frames always come; stale and lost frames are seen on every frame
    "candles": ("trade",),
}
WIRE_ORDER = ("trade", "book_snapshot", "derivative_ticker", "liquidation", "option_summary")
#: the feature context groups (hft_features/inputs.py CONTEXT) each data type feeds
FEATURE_GROUP_OF = {
    "book_snapshots": "book",
    "derivative_ticker": "derivative",
    "liquidations": "liquidations",
}
PROCESSORS: dict[str, type[DataTypeProcessor]] = {
    "trades": TradeProcessor,
    "book_snapshots": BookSnapshotProcessor,
    "liquidations": LiquidationProcessor,
    "derivative_ticker": DerivativeTickerProcessor,
    "options_chain": OptionsChainProcessor,
    "funding_rates": FundingRateProcessor,
    "gaps": GapProcessor,
    "candles": CandlesProcessor,
}


class DataTypeRouter:
    def __init__(
        self,
        config: DataTypesConfig | None = None,
        mapper: InstrumentMapper | None = None,
        clock: str = "event",
        now: Callable[[], int] = now_us,
    ) -> None:
        """``clock`` and ``now`` are the candle clock's (gaps measure staleness on it)."""
        self.config = config or DataTypesConfig()
        self.mapper = mapper or InstrumentMapper()
        self.clock = clock
        self._now = now
        self._processors: dict[str, DataTypeProcessor] = {}

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
            cls = PROCESSORS.get(data_type)
            if cls is None:
                raise ValueError(f"unknown data type {data_type!r}; known: {', '.join(SUPPORTED_DATA_TYPES)}")
            if cls is GapProcessor:
                got = GapProcessor(self.mapper, self.config.gaps.stale_after_ms, self.clock, self._now)
            else:
                got = cls(self.mapper)
            self._processors[data_type] = got
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
