"""trades (native, tardis_realtime): ``trade`` frames. The hot path of trades is the candle engine's
(``TickHandler._on_trade`` uses :func:`trade_validity`); records are made on request (``process``)."""

from __future__ import annotations

import numpy as np

from ...wire import Frame
from .base import SIDES, DataTypeProcessor, Processed, missing_ts
from .records import Liquidation, Trade


def trade_validity(frame: Frame) -> dict[str, np.ndarray]:
    """Bad-value masks of a trade-like frame (trade, liquidation)."""
    c = frame.columns
    price, amount = c["price"], c["amount"]
    return {
        "timestamp": missing_ts(c["timestamp"]),
        "price": ~(np.isfinite(price) & (price > 0)),
        "amount": ~(np.isfinite(amount) & (amount > 0)),
        "side": c["side"] > 2,
    }


def trade_like_records(
    processor: DataTypeProcessor, frame: Frame, cls: type[Trade] | type[Liquidation]
) -> Processed:
    kept, bad, error = processor.validate(frame, trade_validity(frame))
    rows = np.flatnonzero(kept)
    c = frame.columns
    names = processor.symbols(frame)
    table = frame.symbols
    ids = c["id"]
    records = [
        cls(
            exchange=table[s][0],
            symbol=names[s],
            exchange_symbol=table[s][1],
            timestamp=t,
            local_timestamp=lt,
            price=p,
            amount=a,
            side=SIDES[sd],
            id=ids[i],
        )
        for i, s, t, lt, p, a, sd in zip(
            rows.tolist(),
            c["sym"][rows].tolist(),
            c["timestamp"][rows].tolist(),
            c["local_timestamp"][rows].tolist(),
            c["price"][rows].tolist(),
            c["amount"][rows].tolist(),
            c["side"][rows].tolist(),
            strict=True,
        )
    ]
    return Processed(records, kept, bad, error)


class TradeProcessor(DataTypeProcessor):
    data_type = "trades"
    frame_types = ("trade",)

    def process(self, frame: Frame) -> Processed:
        return trade_like_records(self, frame, Trade)
