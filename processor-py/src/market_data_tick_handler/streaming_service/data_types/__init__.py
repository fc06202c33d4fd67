"""The data types (docs/DATA_TYPES.md), in the style of nautilus_trader's adapters: a small interface
(``base.DataTypeProcessor``: a wire frame in, records out) and one file per implementation.

- ``registry.py``: every data type in one line (its processor, record, sources, defaults, wire frames,
  feature group), from which the configuration and the routers' tables are derived;
- ``records.py``: the records, every field defined once;
- ``trades.py``, ``book_snapshots.py``, ``derivative_ticker.py``, ``liquidations.py``,
  ``options_chain.py``: native types (tardis-dev's normalized feeds);
- ``funding_rates.py`` (from derivative tickers), ``gaps.py`` (disconnects, lost frames, stale symbols),
  ``candles.py`` (from trades): fallbacks;
- ``availability.py``: which exchange has liquidations from which source; ``router.py``:
  ``DataTypeRouter``.
"""

from .availability import unavailable_reason
from .base import DataTypeProcessor, Processed
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
from .registry import SUPPORTED_DATA_TYPES
from .router import DataTypeRouter
from .trades import TradeProcessor

__all__ = [
    "SUPPORTED_DATA_TYPES",
    "BookSnapshot",
    "BookSnapshotProcessor",
    "CandlesProcessor",
    "DataTypeProcessor",
    "DataTypeRouter",
    "DerivativeTicker",
    "DerivativeTickerProcessor",
    "FundingRate",
    "FundingRateProcessor",
    "Gap",
    "GapProcessor",
    "Liquidation",
    "LiquidationProcessor",
    "OptionSummary",
    "OptionsChainProcessor",
    "Processed",
    "Record",
    "Trade",
    "TradeProcessor",
    "unavailable_reason",
]
