"""The candle record: one closed candle as an object, for callers that want one record per candle.

``Candle`` is made from the schema (``schema.py``, which says what each field means): the names
(``exchange``, ``symbol``, ``exchange_symbol``, ``timeframe``, ``timestamp_in``: the bucket start, µs
since the Unix epoch, UTC; the bucket is ``[timestamp_in, timestamp_in + timeframe)`` on the EXCHANGE
clock), then the candle's fields in schema order (``None`` where a field is null), then
``hft_features``: on the ``hft_timeframes``, the features of the candle (docs/FEATURES.md), ``None``
where a value is null; ``None`` on other timeframes and on revisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, make_dataclass

from .schema import CANDLE_FIELDS, NAMES

Candle = make_dataclass(
    "Candle",
    [
        *NAMES,
        *((f.name, f.kind.python | None if f.null_when_empty else f.kind.python) for f in CANDLE_FIELDS),
        ("hft_features", Mapping[str, float | None] | None, field(default=None, hash=False)),
    ],
    frozen=True,
    slots=True,
)
Candle.__module__ = __name__  # (make_dataclass's ``module`` is Python 3.12+)
Candle.__doc__ = f"Candle({', '.join(Candle.__dataclass_fields__)}): one closed candle (candle.py)"
