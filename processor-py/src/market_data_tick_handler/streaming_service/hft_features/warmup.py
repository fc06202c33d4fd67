"""Warm-up: recent candles run through the live features' series before the first live candle, so that it
already has full windows (docs/FEATURES.md "Warm-up at start").

A warm-up reads columns: a mapping of equal-length arrays (``WarmupColumns``), ``exchange_symbol``,
``timeframe``, ``timestamp_in`` and ``close`` required, ``exchange`` (missing or blank: the default
exchange), the other candle inputs (``CandleInputs``) and the context columns (``inputs.CONTEXT``) as
available. The other forms a warm-up is given in (``Candle`` objects, published messages or flat dicts, a
DataFrame, a file of candles) are turned into columns once, here: ``warmup_columns``, ``read_candles``.
``warmup_series`` splits the columns into series (exchange, instrument, timeframe), each in time order.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ...timeutil import to_us_array
from ..candle_processor.schema import FEATURE_INPUTS
from .inputs import CONTEXT, CandleInputs, candle_fields, inputs_from_frame

if TYPE_CHECKING:
    import pandas as pd  # loaded only by a warm-up (about 100 MiB a processor without one never holds)

WarmupColumns = Mapping[str, Any]  # name -> array-like, one value per candle
#: what identifies a candle's series and its place in it
SERIES_KEYS = ("exchange", "exchange_symbol", "timeframe", "timestamp_in")
#: every column a warm-up reads: those, the feature inputs (candle_processor/schema.py) and the context
WARMUP_FIELDS = (*SERIES_KEYS, *FEATURE_INPUTS, *(name for names in CONTEXT.values() for name in names))
DEFAULT_EXCHANGE = "binance"  # the exchange of candles that do not name one


@dataclass(frozen=True, slots=True)
class WarmupSeries:
    """The candles of one series, in time order (a stable sort: equal times keep their order)."""

    exchange: str
    exchange_symbol: str
    timeframe: str
    timestamps: np.ndarray  # timestamp_in, int64 µs, ascending
    columns: Mapping[str, np.ndarray]  # the series' rows, in that order

    def __len__(self) -> int:
        return len(self.timestamps)

    def after(self, last: int | None) -> CandleInputs:
        """The feature inputs of the candles that start after ``last`` (all when None). Raises a
        ValueError for a candle the features cannot take (no close, a close that is not positive)."""
        keep = np.ones(len(self), dtype=bool) if last is None else self.timestamps > last
        return inputs_from_frame({k: v[keep] for k, v in self.columns.items()}, self.timestamps[keep])


def warmup_columns(candles: WarmupColumns | pd.DataFrame | Iterable[Any]) -> dict[str, np.ndarray]:
    """Candles as columns: columns (a mapping, a DataFrame) as they are; a sequence of candles (``Candle``
    objects, published messages, flat dicts; a field left out is unknown) turned into columns."""
    pd = sys.modules.get("pandas")  # not loaded: candles cannot be a DataFrame
    if pd is not None and isinstance(candles, pd.DataFrame):
        return {str(name): candles[name].to_numpy() for name in candles.columns}
    if isinstance(candles, Mapping):
        return {str(name): np.asarray(values) for name, values in candles.items()}
    rows = [_fields(candle) for candle in candles]
    present = set().union(*rows) if rows else set()
    out: dict[str, np.ndarray] = {}
    for name in WARMUP_FIELDS:
        if name in present:
            column = out[name] = np.empty(len(rows), dtype=object)
            column[:] = [row.get(name) for row in rows]
    return out


def _fields(candle: Any) -> Mapping[str, Any]:
    if isinstance(candle, Mapping):
        return candle_fields(candle)
    return {name: getattr(candle, name) for name in WARMUP_FIELDS if hasattr(candle, name)}


def warmup_series(
    columns: WarmupColumns, timeframes: Iterable[str], default_exchange: str = DEFAULT_EXCHANGE
) -> list[WarmupSeries]:
    """The series of the candles on ``timeframes`` (the others are left out), in the order their first
    candle comes in ``columns``."""
    if not columns or not len(next(iter(columns.values()))):
        return []
    import pandas as pd

    missing = [name for name in SERIES_KEYS[1:] if name not in columns]
    if missing:
        raise ValueError(f"warm-up candles need {', '.join(missing)} (and close); got {', '.join(columns)}")
    timeframe = np.asarray(columns["timeframe"], dtype=object)
    rows = np.flatnonzero(np.isin(timeframe, list(timeframes)))
    if not len(rows):
        return []
    symbol = np.asarray(columns["exchange_symbol"], dtype=object)[rows]
    blank = pd.isna(symbol) | (symbol == "")
    if blank.any():
        raise ValueError(f"candle row {int(rows[np.argmax(blank)])}: no exchange_symbol")
    if "exchange" in columns:
        exchange = np.asarray(columns["exchange"], dtype=object)[rows]
        exchange[pd.isna(exchange) | (exchange == "")] = default_exchange
    else:
        exchange = np.full(len(rows), default_exchange, dtype=object)
    stamps = to_us_array(np.asarray(columns["timestamp_in"])[rows])
    names = [name for name in WARMUP_FIELDS[len(SERIES_KEYS) :] if name in columns]
    inputs = {name: np.asarray(columns[name]) for name in names}
    keys = pd.DataFrame({"exchange": exchange, "symbol": symbol, "timeframe": timeframe[rows]})
    groups = keys.groupby(["exchange", "symbol", "timeframe"], sort=False).indices  # key -> positions
    out = []
    for (x, s, tf), positions in sorted(groups.items(), key=lambda group: group[1][0]):
        positions = positions[np.argsort(stamps[positions], kind="stable")]
        picked = rows[positions]
        out.append(
            WarmupSeries(
                str(x), str(s), str(tf), stamps[positions], {k: v[picked] for k, v in inputs.items()}
            )
        )
    return out


def read_candles(path: str | Path) -> dict[str, np.ndarray]:
    """Candles from a file, as columns: JSON lines (published messages, or flat candles) or CSV
    (``candles_to_frame`` columns)."""
    path = Path(path)
    if path.suffix == ".csv":
        import pandas as pd

        return warmup_columns(pd.read_csv(path))
    candles = []
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    candles.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not a JSON candle: {exc}") from None
    return warmup_columns(candles)
