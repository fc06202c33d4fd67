"""liquidations: ``liquidation`` frames, from one of two sources (docs/DATA_TYPES.md):

- ``trade_transformation`` (fallback, the default): liquidations derived from trades that the exchange
  flags as liquidations. tardis-dev does this for ``deribit`` (its trades carry a ``liquidation`` flag),
  and also for cryptofacilities, dydx-v4 and ftx (``availability.FLAGGED_TRADES``); elsewhere
  ``DataTypeRouter`` reports the type as not available.
- ``tardis_realtime`` (native): the exchange's own liquidation feed (bitmex, binance-futures,
  binance-delivery, bybit, okex-swap, ...; ``availability.LIQUIDATION_FEEDS``).

Either way the ingester streams ``liquidation`` frames; ``side`` buy = a short was liquidated.
"""

from __future__ import annotations

from .records import Liquidation
from .trades import TradeLikeProcessor


class LiquidationProcessor(TradeLikeProcessor):
    data_type = "liquidations"
    record = Liquidation
