"""Which exchange can have liquidations from which source. The ingester decides the rest itself: it asks
tardis-dev at start which frame types it can stream for the exchange, leaves out the others (logging
``<type> not available for <exchange>: <reason>``) and lists what it streams in its ``start`` frame,
which ``DataTypeRouter.check_start`` compares with what was asked for. Liquidations need this table
because tardis-dev streams them the same way from two kinds of source, and ``data_types.liquidations
.source`` says which one is wanted (tardis-dev 13.35.3 ``mappers/index.js``; ingest-node's
``sources/availability.js`` holds the same two lists).
"""

from __future__ import annotations

#: exchanges with a liquidation feed of their own (data_types.liquidations.source: tardis_realtime)
LIQUIDATION_FEEDS = frozenset({
    "bitmex", "binance-futures", "binance-delivery", "bitfinex-derivatives", "bybit", "okex-futures",
    "okex-swap", "huobi-dm", "huobi-dm-swap", "huobi-dm-linear-swap",
})  # fmt: skip
#: exchanges whose trades flag liquidations, which tardis-dev turns into liquidations
#: (trade_transformation): deribit (a trade's ``liquidation`` field), and cryptofacilities, dydx-v4 and
#: ftx, whose tardis-dev liquidations also come from their trades channel (ingest-node's
#: sources/availability.js has the same two lists)
FLAGGED_TRADES = frozenset({"deribit", "cryptofacilities", "dydx-v4", "ftx"})


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
