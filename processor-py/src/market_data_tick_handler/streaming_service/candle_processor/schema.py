"""The closed candle's fields, written once: everything else is made from :data:`CANDLE_FIELDS`.

What they mean:

- ``open``/``close``: price of the earliest/latest trade by exchange time (ties: arrival order);
  ``high``/``low``: the highest/lowest trade price.
- ``volume`` = ``buy_volume`` + ``sell_volume`` + volume of trades with an unknown side; buy/sell is the
  TAKER side.
- ``vwap`` = sum(price * amount) / volume; null for an empty candle.
- ``trade_count``: trades in the bucket.
- ``first_trade_time``/``last_trade_time``: exchange times of the open's and the close's trades (null
  when empty).
- ``is_empty``: no trade in the bucket; OHLC then all equal the previous close and volumes are 0.
- ``has_gap``: a disconnect or stale-stream gap overlaps the bucket, so trades may be missing.
- ``is_partial``: the bucket was not fully observed (it began before the stream started, or the stream
  ended before it did).
- ``revision``: 0 when first published; +1 each time a late trade revises it (late policy ``revise``).

Made from it: ``Candle`` (``candle.py``) and ``CandleColumns`` (``candle_batch.py``, with ``candles()``,
``rows()`` and ``CandleBatch.from_candles``); the message's ``"candle"`` object and its JSON writer
(``messages.py``, ``candle_json.py``); the candle tables' columns and the proto row writer
(``bigquery_client/tables.py``, ``bigquery_client/proto_rows.py``); what the warm-up reads back
(``bigquery_client/recent_candles.py``); the feature inputs (``hft_features/inputs.py``); and
``candles_to_frame`` (``batch.py``). ``tests/test_candle_schema.py`` checks that they follow it.

A new candle field is one :class:`Field` line below, in the place it is to take in messages and tables
(existing tables get the column added as NULLABLE at start, ``storage_write.py``), and its meaning in
the list above, plus the engine computing it (``CandleEngine._columns`` in ``candle_engine.py``, one
keyword). The writers loop over the fields by kind; nothing else names them.

Kinds: ``FLOAT`` (float64), ``INT`` (int64), ``TIME`` (int64 µs since the epoch; ISO 8601 in messages,
TIMESTAMP in tables), ``BOOL``. A field that is ``null_when_empty`` has no value on an empty candle
(``is_empty``): ``None`` in a ``Candle``, null in a message, left out of a row; its column then holds the
kind's ``missing`` value (NaN, 0). A ``per_part`` field has one value for a whole part (a timeframe's
bucket): a scalar in ``CandleColumns``. ``feature_input``: the features read it (``CandleInputs``);
``warm_up``: the warm-up reads it back from the tables.

The fields that name a candle rather than describe it (the instrument, the timeframe, the bucket, the
output stamps) are not candle fields: ``KEY_COLUMNS`` gives them in table order; a ``Candle`` carries
those of ``NAMES``, a message all of them (``messages.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Kind:
    """A field's type everywhere: in a column (``dtype``), in a ``Candle`` (``python``), in a table
    (``bigquery``); ``missing``: what a column holds where the field is null."""

    name: str
    dtype: type
    python: type
    bigquery: str
    missing: float | int | bool


FLOAT = Kind("float", np.float64, float, "FLOAT64", math.nan)
INT = Kind("int", np.int64, int, "INT64", 0)
TIME = Kind("time", np.int64, int, "TIMESTAMP", 0)  # µs since the epoch
BOOL = Kind("bool", np.bool_, bool, "BOOL", False)


@dataclass(frozen=True, slots=True)
class Field:
    """One candle field and its rules (the module's docstring says what each flag means)."""

    name: str
    kind: Kind
    null_when_empty: bool = False
    per_part: bool = False
    feature_input: bool = False
    warm_up: bool = False


#: the flag ``null_when_empty`` follows
EMPTY = "is_empty"

#: the candle's fields, in the order of ``Candle``, ``CandleColumns``, a message's ``"candle"`` object
#: and a table row (tests and existing tables rely on it)
# fmt: off
CANDLE_FIELDS: tuple[Field, ...] = (
    Field("open", FLOAT, warm_up=True),
    Field("high", FLOAT, feature_input=True, warm_up=True),
    Field("low", FLOAT, feature_input=True, warm_up=True),
    Field("close", FLOAT, feature_input=True, warm_up=True),
    Field("volume", FLOAT, feature_input=True, warm_up=True),
    Field("buy_volume", FLOAT, feature_input=True, warm_up=True),
    Field("sell_volume", FLOAT, feature_input=True, warm_up=True),
    Field("vwap", FLOAT, null_when_empty=True, feature_input=True, warm_up=True),
    Field("trade_count", INT, feature_input=True, warm_up=True),
    Field("first_trade_time", TIME, null_when_empty=True),
    Field("last_trade_time", TIME, null_when_empty=True),
    Field(EMPTY, BOOL),
    Field("has_gap", BOOL),
    Field("is_partial", BOOL, per_part=True),
    Field("revision", INT),
)
# fmt: on

#: the columns that name a candle in a table row, before its fields, in table order (existing tables rely
#: on it): the instrument, the part's timeframe and bucket start (``timestamp_in``), the stamps of the
#: frame's output (``local_timestamp``, ``timestamp_out``: ``closed.Stamps``)
KEY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("symbol", "STRING"),
    ("exchange", "STRING"),
    ("exchange_symbol", "STRING"),
    ("timeframe", "STRING"),
    ("timestamp_in", "TIMESTAMP"),
    ("local_timestamp", "TIMESTAMP"),
    ("timestamp_out", "TIMESTAMP"),
)
#: the names a ``Candle`` carries before its fields, in its order (a message's order too), and their types
NAMES: tuple[tuple[str, type], ...] = (
    ("exchange", str),
    ("symbol", str),
    ("exchange_symbol", str),
    ("timeframe", str),
    ("timestamp_in", int),
)

FIELD_NAMES = tuple(f.name for f in CANDLE_FIELDS)
#: the fields with a value per candle (a column each in ``CandleColumns``)
PER_CANDLE = tuple(f for f in CANDLE_FIELDS if not f.per_part)
#: the names of the feature inputs (``CandleInputs``), in this order
FEATURE_INPUTS = tuple(f.name for f in CANDLE_FIELDS if f.feature_input)
#: what the warm-up reads back of each candle
WARM_UP = tuple(f.name for f in CANDLE_FIELDS if f.warm_up)
#: the fields that are times (µs since the epoch)
TIMES = tuple(f.name for f in CANDLE_FIELDS if f.kind is TIME)


def _check() -> None:
    names = [f.name for f in CANDLE_FIELDS]
    if len(set(names)) != len(names) or set(names) & {n for n, _ in KEY_COLUMNS}:
        raise ValueError(f"candle fields must be unique and apart from the key columns: {names}")
    empty = next((f for f in CANDLE_FIELDS if f.name == EMPTY), None)
    if empty is None or empty.kind is not BOOL or empty.per_part or empty.null_when_empty:
        raise ValueError(f"{EMPTY} must be a per-candle BOOL field that is never null")
    for f in CANDLE_FIELDS:
        if f.per_part and f.null_when_empty:
            raise ValueError(f"{f.name}: a per-part field cannot be null on an empty candle")
        if f.feature_input and not (f.warm_up and f.kind in (FLOAT, INT) and not f.per_part):
            raise ValueError(f"{f.name}: a feature input is a per-candle number the warm-up reads")


_check()
