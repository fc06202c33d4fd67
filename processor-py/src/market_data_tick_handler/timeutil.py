"""Timestamps: integers of microseconds since the Unix epoch (UTC) inside; ISO 8601 with microseconds
and a ``Z`` outside."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np

_EPOCH = datetime(1970, 1, 1)


def now_us() -> int:
    return time.time_ns() // 1000


_DAY_US = 86_400_000_000
_day_prefix: dict[int, str] = {}


def iso_us(us: int) -> str:
    """``1723161255342000`` -> ``'2024-08-09T00:00:55.342000Z'``: exact integer arithmetic, and the date
    part cached per day (this runs several times per published candle)."""
    day, rem = divmod(us, _DAY_US)
    prefix = _day_prefix.get(day)
    if prefix is None:
        if len(_day_prefix) > 64:
            _day_prefix.clear()
        prefix = _day_prefix[day] = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
    seconds, micros = divmod(rem, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}.{micros:06d}Z"


def to_us_array(values) -> np.ndarray:
    """Timestamps given as µs integers, datetimes (numpy, pandas or Python) or ISO strings, as int64 µs."""
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.datetime64):
        return array.astype("datetime64[us]").astype(np.int64)
    if array.dtype == object or array.dtype.kind in "US":
        import pandas as pd

        if len(array) and not isinstance(array.flat[0], (int, np.integer)):
            return pd.to_datetime(array, utc=True).as_unit("us").asi8
    return array.astype(np.int64, copy=False)


def parse_iso_us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
