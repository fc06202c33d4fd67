"""What a feature step reads: the candles of one timeframe, one row per series (lane).

Context columns (``CONTEXT``) carry the other data types as of the candle's close; a missing column or
a NaN means unknown, and the features built from it are null.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, make_dataclass
from typing import Any

import numpy as np

from ..candle_processor.schema import FEATURE_INPUTS

CONTEXT: dict[str, tuple[str, ...]] = {
    # the last book snapshot of the candle: best bid/ask and their sizes, summed size of the top 5 levels
    "book": ("bid_price", "ask_price", "bid_size", "ask_size", "bid_depth_5", "ask_depth_5"),
    # the last derivative ticker of the candle
    "derivative": ("funding_rate", "open_interest", "mark_price", "index_price"),
    # liquidations in the candle, by the side of the liquidation order (buy = shorts liquidated)
    "liquidations": ("liquidation_buy_volume", "liquidation_sell_volume"),
}


class _Inputs:
    """What ``CandleInputs`` does (its fields come from the schema)."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self.timestamp_in)

    def context_column(self, name: str) -> np.ndarray:
        got = self.context.get(name)
        return np.full(len(self), np.nan) if got is None else got


#: the candle's fields the features read (``feature_input`` in candle_processor/schema.py)
_FIELDS = FEATURE_INPUTS
_ALL_CONTEXT = tuple(name for names in CONTEXT.values() for name in names)

CandleInputs = make_dataclass(
    "CandleInputs",
    [
        ("timestamp_in", np.ndarray),  # int64 µs
        *((name, np.ndarray) for name in _FIELDS),
        ("context", Mapping[str, np.ndarray], field(default_factory=dict)),
    ],
    bases=(_Inputs,),
    frozen=True,
    slots=True,
)
CandleInputs.__module__ = __name__  # (make_dataclass's ``module`` is Python 3.12+)
CandleInputs.__doc__ = f"""CandleInputs({", ".join(CandleInputs.__dataclass_fields__)}): a column per
field (meanings: candle_processor/schema.py; ``vwap`` NaN for an empty candle), ``context`` by name."""


def inputs_from_columns(part, context: Mapping[str, np.ndarray] | None = None) -> CandleInputs:
    """The candles of one engine part (``CandleColumns``): all of one timeframe and bucket; ``context``:
    their context columns (``hft_features/context.py`` ``FeatureContext.columns``), if any."""
    columns = {name: getattr(part, name) for name in _FIELDS}
    return CandleInputs(
        np.full(len(part), part.timestamp_in, dtype=np.int64), **columns, context=context or {}
    )


def inputs_from_frame(frame: Mapping[str, Any], timestamps: np.ndarray) -> CandleInputs:
    """Candles as columns (a DataFrame, or a dict of arrays): ``close`` is required; ``high``/``low``
    default to it; any other missing column is unknown (NaN) and makes the features built on it null."""
    if "close" not in frame:
        raise ValueError("candles need a 'close' column")
    n = len(timestamps)

    def column(name: str, default: np.ndarray | None = None) -> np.ndarray:
        if name in frame:
            return np.asarray(frame[name], dtype=np.float64)
        return default if default is not None else np.full(n, np.nan)

    close = column("close")
    bad = np.flatnonzero(~(close > 0))
    if len(bad):
        raise ValueError(f"candle row {int(bad[0])}: close must be a positive number, got {close[bad[0]]!r}")
    values = {name: column(name, close if name in ("high", "low") else None) for name in _FIELDS}
    context = {name: column(name) for name in _ALL_CONTEXT if name in frame}
    return CandleInputs(timestamps, **values, context=context)


def candle_fields(candle: Any) -> dict[str, Any]:
    """The fields of one candle given as a ``Candle``, a published message (``{"candle": {...}}``), a
    flat dict or any object with attributes (the seeds' mock)."""
    if isinstance(candle, Mapping):
        flat = dict(candle)
        flat.update(candle.get("candle") or {})
        return flat
    names = ("symbol", "timeframe", "timestamp_in", *_FIELDS, *_ALL_CONTEXT)
    return {name: getattr(candle, name) for name in names if hasattr(candle, name)}
