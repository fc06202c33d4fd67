"""The messages the processor publishes, and their JSON form (built here and nowhere else).

A candle message::

    {"type": "candle", "exchange", "symbol", "exchange_symbol", "timeframe",
     "timestamp_in", "local_timestamp", "timestamp_out", "candle": {...}, "hft_features": {...}}

``hft_features`` is there only on the ``hft_timeframes`` (not on revisions); a null feature is ``null``.

``timestamp_in`` is the bucket start (exchange clock); ``local_timestamp`` is when closing the candle
began and ``timestamp_out`` when the batch it belongs to was ready to publish, after features; both
wall-clock (walkthrough 4). Timestamps are ISO 8601 UTC with microseconds; a missing value is null.

A record of another data type (``data_types/records.py``, where its fields are defined)::

    {"type": "book_snapshot", "exchange", "symbol", "exchange_symbol", "timestamp", "local_timestamp", ...}

``type`` is the record's kind (``book_snapshot``, ``derivative_ticker``, ``liquidation``,
``option_summary``, ``funding_rate``, ``gap``, ``trade``); ``timestamp`` is exchange time and
``local_timestamp`` the ingester's receipt; book levels are ``[{"price", "amount"}, ...]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import fields
from functools import cache
from typing import Any

from ..timeutil import iso_us, iso_us_array
from .candle_processor import CandleBatch
from .data_types.records import TIMESTAMP_FIELDS, BookSnapshot, Record


@cache
def _field_names(cls: type) -> tuple[tuple[str, bool], ...]:
    return tuple((f.name, f.name in TIMESTAMP_FIELDS) for f in fields(cls))


def record_message(record: Record) -> dict[str, Any]:
    """The JSON-ready message of one record (``type`` first, timestamps as ISO strings)."""
    message: dict[str, Any] = {"type": record.TYPE}
    for name, is_time in _field_names(type(record)):
        value = getattr(record, name)
        if is_time:
            value = None if value is None else iso_us(value)
        elif isinstance(value, float) and value != value:
            value = None
        message[name] = value
    if isinstance(record, BookSnapshot):
        message["bids"] = [{"price": p, "amount": a} for p, a in record.bids]
        message["asks"] = [{"price": p, "amount": a} for p, a in record.asks]
    return message


def record_messages(records: Iterable[Record]) -> list[dict[str, Any]]:
    return [record_message(r) for r in records]


def candle_messages(batch: CandleBatch, local_us: int, out_us: int) -> Iterator[list[dict[str, Any]]]:
    """Every candle of ``batch`` as a JSON-ready message, in order, one list per part (the candles of one
    timeframe's bucket), so that a publisher can send a part while the next one is being built."""
    local, out = iso_us(local_us), iso_us(out_us)
    exchange, symbols, exchange_symbols = batch.exchange, batch.symbols, batch.exchange_symbols
    for part in batch.parts:
        messages: list[dict[str, Any]] = []
        append = messages.append
        timeframe, start = part.timeframe, iso_us(part.timestamp_in)
        partial = part.is_partial
        empty = part.is_empty.tolist()
        first = iso_us_array(part.first_trade_time)
        last = iso_us_array(part.last_trade_time)
        vwap = part.vwap.tolist()
        features = part.features.records() if part.features is not None else None
        rows = zip(
            part.slots.tolist(),
            part.open.tolist(),
            part.high.tolist(),
            part.low.tolist(),
            part.close.tolist(),
            part.volume.tolist(),
            part.buy_volume.tolist(),
            part.sell_volume.tolist(),
            part.trade_count.tolist(),
            part.has_gap.tolist(),
            part.revision.tolist(),
            strict=True,
        )
        for k, (s, o, h, lo, c, v, b, sv, n, gap, revision) in enumerate(rows):
            e = empty[k]
            message = {
                "type": "candle",
                "exchange": exchange,
                "symbol": symbols[s],
                "exchange_symbol": exchange_symbols[s],
                "timeframe": timeframe,
                "timestamp_in": start,
                "local_timestamp": local,
                "timestamp_out": out,
                "candle": {
                    "open": o,
                    "high": h,
                    "low": lo,
                    "close": c,
                    "volume": v,
                    "buy_volume": b,
                    "sell_volume": sv,
                    "vwap": None if e else vwap[k],
                    "trade_count": n,
                    "first_trade_time": None if e else first[k],
                    "last_trade_time": None if e else last[k],
                    "is_empty": e,
                    "has_gap": gap,
                    "is_partial": partial,
                    "revision": revision,
                },
            }
            if features is not None:
                message["hft_features"] = features[k]
            append(message)
        yield messages
