"""The data types, each written down once (docs/DATA_TYPES.md): :data:`DATA_TYPES`, one line per type.

Everything else that lists data types is derived from it: the configuration's ``data_types`` section
(``config.py``: its entries, their defaults and allowed sources), ``DataTypeRouter``'s tables (the types,
their processors, the wire frames the ingester must stream for them, in wire order, and the feature
groups they feed), and the frame router's (``tick_processor/frame_router.py``: which processors a frame
goes through, which tick types ``process_tick`` takes).

A type is its name, its processor (``base.DataTypeProcessor``) and record class (``records.py``), the
sources it may come from (the first is its default; a source that is not ``tardis_realtime`` makes it a
fallback, derived from another type), its default ``batch_timeout`` (ms) and configuration class, the
wire frames it is made from (``proto/wire.json``) and the HFT feature group it feeds, if any.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...config import BookSnapshotsConfig, DataTypeConfig, GapsConfig
from ...wire import load_schema
from ..candle_processor import Candle
from .base import DataTypeProcessor
from .book_snapshots import BookSnapshotProcessor
from .candles import CandlesProcessor
from .derivative_ticker import DerivativeTickerProcessor
from .funding_rates import FundingRateProcessor
from .gaps import GapProcessor
from .liquidations import LiquidationProcessor
from .options_chain import OptionsChainProcessor
from .records import (
    BookSnapshot,
    DerivativeTicker,
    FundingRate,
    Gap,
    Liquidation,
    OptionSummary,
    Record,
    Trade,
)
from .trades import TradeProcessor

#: the sources read from the exchange's own feed through tardis-dev; any other is a fallback
NATIVE_SOURCES = frozenset({"tardis_realtime"})


@dataclass(frozen=True, slots=True)
class DataType:
    name: str
    processor: type[DataTypeProcessor]
    record: type[Record] | type[Candle]
    sources: tuple[str, ...]  # the first is the default
    batch_timeout: int  # ms: the default of data_types.<name>.batch_timeout
    frames: tuple[str, ...]  # the wire frames it is made from (the ingester's --data-types)
    feature_group: str | None = None  # the HFT feature context it feeds (hft_features/catalogue.py)
    config_class: type[DataTypeConfig] = DataTypeConfig

    @property
    def config(self) -> DataTypeConfig:
        """Its default ``data_types`` entry."""
        source = self.sources[0]
        return self.config_class(
            source=source, batch_timeout=self.batch_timeout, fallback=source not in NATIVE_SOURCES
        )

    @property
    def native(self) -> bool:
        """Whether it may be read from the exchange's own feed: a tick of it can be given as such
        (``TickHandler.process_tick``)."""
        return any(s in NATIVE_SOURCES for s in self.sources)


# fmt: off
DATA_TYPES: tuple[DataType, ...] = (
    DataType("trades", TradeProcessor, Trade, ("tardis_realtime",), 60_000, ("trade",)),
    DataType("book_snapshots", BookSnapshotProcessor, BookSnapshot, ("tardis_realtime",), 60_000,
             ("book_snapshot",), "book", BookSnapshotsConfig),
    DataType("liquidations", LiquidationProcessor, Liquidation, ("trade_transformation", "tardis_realtime"),
             900_000, ("liquidation",), "liquidations"),
    DataType("derivative_ticker", DerivativeTickerProcessor, DerivativeTicker, ("tardis_realtime",), 900_000,
             ("derivative_ticker",), "derivative"),
    DataType("options_chain", OptionsChainProcessor, OptionSummary, ("tardis_realtime",), 900_000,
             ("option_summary",)),
    DataType("funding_rates", FundingRateProcessor, FundingRate, ("derivative_ticker_extraction",), 900_000,
             ("derivative_ticker",)),
    # gaps need no frame of their own: disconnects always come, stale symbols and lost frames are seen
    # on every frame
    DataType("gaps", GapProcessor, Gap, ("disconnect_and_stale_detection",), 900_000, (),
             config_class=GapsConfig),
    DataType("candles", CandlesProcessor, Candle, ("trade_aggregation",), 60_000, ("trade",)),
)
# fmt: on

# -- derived -----------------------------------------------------------------------------------------
BY_NAME: dict[str, DataType] = {t.name: t for t in DATA_TYPES}
SUPPORTED_DATA_TYPES: tuple[str, ...] = tuple(BY_NAME)
FRAMES_OF: dict[str, tuple[str, ...]] = {t.name: t.frames for t in DATA_TYPES}
#: the frames any type is made from, in the order of proto/wire.json
WIRE_ORDER: tuple[str, ...] = tuple(f for f in load_schema().frames if any(f in t.frames for t in DATA_TYPES))
#: data type -> the feature group it feeds, in the wire order of the frames they are made from
FEATURE_GROUP_OF: dict[str, str] = {
    t.name: t.feature_group
    for t in sorted(DATA_TYPES, key=lambda t: min(WIRE_ORDER.index(f) for f in t.frames) if t.frames else 0)
    if t.feature_group is not None
}
PROCESSORS: dict[str, type[DataTypeProcessor]] = {t.name: t.processor for t in DATA_TYPES}
SOURCES: dict[str, tuple[str, ...]] = {t.name: t.sources for t in DATA_TYPES}
#: a tick's ``type`` (``TickHandler.process_tick``: a native data type's name, or tardis' name of its wire
#: frame) -> the wire frame it is
TICK_TYPES: dict[str, str] = {
    name: t.frames[0] for t in DATA_TYPES if t.native for name in (t.name, t.frames[0])
}
#: wire frame -> the data types made from it, in registry order
TYPES_OF_FRAME: dict[str, tuple[str, ...]] = {
    f: tuple(t.name for t in DATA_TYPES if f in t.frames) for f in WIRE_ORDER
}
