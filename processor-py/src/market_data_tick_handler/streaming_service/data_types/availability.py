"""Which exchange can have liquidations from which source. The ingester decides the rest itself: it asks
tardis-dev at start which frame types it can stream for the exchange, leaves out the others (logging
``<type> not available for <exchange>: <reason>``) and lists what it streams in its ``start`` frame,
which ``DataTypeRouter.check_start`` compares with what was asked for. Liquidations need this table
because tardis-dev streams them the same way from two kinds of source, and ``data_types.liquidations
.source`` says which one is wanted. Both lists are in ``proto/exchanges.json``, which the Node ingester
(``ingest-node/src/sources/availability.js``) reads too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...wire.schema import proto_path


@dataclass(frozen=True, slots=True)
class LiquidationExchanges:
    """The liquidation lists of ``proto/exchanges.json`` (tardis exchange ids)."""

    #: exchanges with a liquidation feed of their own (data_types.liquidations.source: tardis_realtime)
    native_feed: frozenset[str]
    #: exchanges whose trades flag liquidations, which tardis-dev turns into liquidations
    #: (data_types.liquidations.source: trade_transformation): deribit (a trade's ``liquidation``
    #: field), cryptofacilities, dydx-v4, ftx
    from_trades: frozenset[str]


def exchanges_path() -> Path:
    """Where exchanges.json is: $MDTH_EXCHANGES_JSON, the copy inside an installed wheel, or the
    repository's proto/ (a checkout or an editable install)."""
    return proto_path("exchanges.json", "MDTH_EXCHANGES_JSON")


def read_liquidation_exchanges(path: Path | None = None) -> LiquidationExchanges:
    """The two liquidation lists of an exchanges.json file (default: ``exchanges_path()``)."""
    where = path or exchanges_path()
    liquidations = json.loads(where.read_text()).get("liquidations", {})

    def names(key: str) -> frozenset[str]:
        value = liquidations.get(key)
        if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
            raise ValueError(f"{where}: liquidations.{key} must be a list of exchange ids")
        return frozenset(value)

    return LiquidationExchanges(native_feed=names("native_feed"), from_trades=names("from_trades"))


_LISTS = read_liquidation_exchanges()
#: exchanges with a liquidation feed of their own (data_types.liquidations.source: tardis_realtime)
LIQUIDATION_FEEDS = _LISTS.native_feed
#: exchanges whose trades flag liquidations, which tardis-dev turns into liquidations
#: (data_types.liquidations.source: trade_transformation)
FLAGGED_TRADES = _LISTS.from_trades


def unavailable_reason(data_type: str, source: str, exchange: str) -> str | None:
    """Why ``data_type`` from ``source`` cannot be had for ``exchange``, as far as the processor knows
    before the ingester starts, or None."""
    if data_type != "liquidations":
        return None
    if source == "trade_transformation":
        if exchange in FLAGGED_TRADES:
            return None
        reason = (
            "its trades carry no liquidation flag; deribit's do (and cryptofacilities', dydx-v4's, ftx's)"
        )
        if exchange in LIQUIDATION_FEEDS:
            reason += " (it has a liquidation feed: set data_types.liquidations.source: tardis_realtime)"
        return reason
    if exchange in LIQUIDATION_FEEDS:
        return None
    reason = "it has no liquidation feed"
    if exchange in FLAGGED_TRADES:
        reason += " (its trades flag liquidations: set data_types.liquidations.source: trade_transformation)"
    return reason
