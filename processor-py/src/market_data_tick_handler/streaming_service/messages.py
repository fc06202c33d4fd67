"""The messages the processor publishes, and their JSON form (built here and nowhere else).

A candle message::

    {"type": "candle", "exchange", "symbol", "exchange_symbol", "timeframe",
     "timestamp_in", "local_timestamp", "timestamp_out", "candle": {...}, "hft_features": {...}}

    "candle": {"open", "high", "low", "close", ..., "revision"}: the candle's fields in schema order

(the fields, their order, kinds, meanings and null rules: ``candle_processor/schema.py``; the features:
``hft_features/catalogue.py``). Its JSON is written by ``candle_json.py`` in one compiled pass per part,
keys in this order.

``hft_features`` is there only on the ``hft_timeframes`` (not on revisions); a null feature is ``null``.

``timestamp_in`` is the bucket start (exchange clock); ``local_timestamp`` is when closing the candle
began and ``timestamp_out`` when the batch it belongs to was ready to publish, after features; both
wall-clock (``candle_processor/closed.py``: ``Stamps``). Timestamps (and time fields) are ISO 8601 UTC
with microseconds; a missing value is null.

A record of another data type (``data_types/records.py``, where its fields are defined)::

    {"type": "book_snapshot", "exchange", "symbol", "exchange_symbol", "timestamp", "local_timestamp", ...}

``type`` is the record's kind (``book_snapshot``, ``derivative_ticker``, ``liquidation``,
``option_summary``, ``funding_rate``, ``gap``, ``trade``); ``timestamp`` is exchange time and
``local_timestamp`` the ingester's receipt; book levels are ``[{"price", "amount"}, ...]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from functools import cache
from typing import Any

import orjson

from ..timeutil import iso_us
from .candle_json import encode_part
from .candle_processor import CandleBatch, ClosedCandles, Stamps
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


def candle_payloads(
    batch: CandleBatch, stamps: Stamps, chunk: int | None = None
) -> Iterator[tuple[ClosedCandles, list[bytes]]]:
    """The JSON of every candle of ``batch``, in order: each block (``CandleBatch.blocks``: a part, the
    candles of one timeframe's bucket, or each run of at most ``chunk`` candles of it) with its JSON
    messages, so that a publisher can send one while the next is being written (``candle_json``: one
    compiled pass for each)."""
    for block in batch.blocks(stamps, chunk):
        yield block, encode_part(block)


def candle_messages(batch: CandleBatch, stamps: Stamps) -> Iterator[list[dict[str, Any]]]:
    """``candle_payloads`` decoded, one list per part: the messages as dicts (for printing and tests)."""
    for _, payloads in candle_payloads(batch, stamps):
        yield [orjson.loads(p) for p in payloads]
