"""The data type processor interface (one implementation per file, as nautilus_trader's adapters).

A processor turns one decoded wire frame into records. It validates whole columns at once: a row with
a bad value is dropped, and :class:`Processed` says how many, by reason (the first bad field of each
row), and names the first (frame seq, row, symbol, field); the good rows around it are kept. Every type
gets the same common checks (:func:`check_rows`): ``sym`` within the symbol table, ``timestamp`` and
``local_timestamp`` within 2000-01-01..2100-01-01, ``str`` columns valid UTF-8. Processors neither log
nor count: ``TickHandler`` does, for every type alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ...wire import INT64_MISSING, Frame, StrColumn
from ..instrument_service import InstrumentMapper
from .records import Record

SIDES = ("unknown", "buy", "sell")
#: exchange and local timestamps outside [TS_MIN_US, TS_MAX_US) are bad rows (µs: 2000-01-01, 2100-01-01)
TS_MIN_US = 946_684_800_000_000
TS_MAX_US = 4_102_444_800_000_000


@dataclass(frozen=True, slots=True)
class Processed:
    """What a processor made of one frame: its ``records`` and ``kept`` (the mask of valid rows, for
    column consumers such as the feature context), ``bad_rows`` dropped and ``error`` naming the first."""

    records: list[Record] = field(default_factory=list)
    kept: np.ndarray | None = None
    bad_rows: int = 0
    error: str | None = None
    dropped: Mapping[str, int] = field(default_factory=dict)  # bad rows by reason (first bad field)


@dataclass(frozen=True, slots=True)
class RowCheck:
    """The rows of a frame that passed :func:`check_rows`: ``kept`` (a mask), ``count`` dropped, by
    ``reasons`` (each row under its first bad field), and ``error`` naming the first."""

    kept: np.ndarray
    count: int = 0
    error: str | None = None
    reasons: Mapping[str, int] = field(default_factory=dict)


def check_rows(frame: Frame, bad: Mapping[str, np.ndarray]) -> RowCheck:
    """The common checks of every row-carrying frame, then ``bad`` (field name -> mask of rows whose
    value is invalid), in that order; whole-array operations only, and a per-reason count only when
    some row is bad."""
    c = frame.columns
    n = frame.n
    masks: dict[str, np.ndarray] = {"sym": c["sym"] >= len(frame.symbols)}
    for name in ("timestamp", "local_timestamp"):
        if name in c:
            masks[name] = bad_time(c[name])
    for name, mask in bad.items():
        masks[name] = masks[name] | mask if name in masks else mask
    for name, column in c.items():
        if isinstance(column, StrColumn):
            invalid = column.invalid()
            if invalid is not None:
                masks[name] = invalid
    any_bad = np.zeros(n, dtype=bool)
    for mask in masks.values():
        any_bad |= mask
    count = int(np.count_nonzero(any_bad))
    if not count:
        return RowCheck(~any_bad)
    reasons: dict[str, int] = {}
    seen = np.zeros(n, dtype=bool)
    for name, mask in masks.items():
        new = mask & ~seen
        k = int(np.count_nonzero(new))
        if k:
            reasons[name] = k
            seen |= new
    i = int(np.flatnonzero(any_bad)[0])
    s = int(c["sym"][i])
    exchange, symbol = frame.symbols[s] if s < len(frame.symbols) else ("?", "?")
    fields = ", ".join(f"{name}={_value(frame, name, i)}" for name, mask in masks.items() if mask[i])
    message = (
        f"{frame.type} frame seq={frame.seq} row {i} ({exchange}:{symbol}): {fields};"
        f" {count} bad row(s) in this frame dropped, the other {n - count} kept"
    )
    return RowCheck(~any_bad, count, message, reasons)


class DataTypeProcessor(ABC):
    """Frames of ``frame_types`` in, records of ``data_type`` out."""

    data_type: ClassVar[str]
    frame_types: ClassVar[tuple[str, ...]]

    def __init__(self, mapper: InstrumentMapper | None = None) -> None:
        self.mapper = mapper or InstrumentMapper()
        self._tables: dict[tuple[tuple[str, str], ...], list[str]] = {}

    @abstractmethod
    def process(self, frame: Frame) -> Processed:
        """The records of ``frame``."""

    # -- helpers -------------------------------------------------------------------------------
    def symbols(self, frame: Frame) -> list[str]:
        """Canonical symbols of the frame's symbol table (cached per table)."""
        key = tuple((e, s) for e, s in frame.symbols)
        names = self._tables.get(key)
        if names is None:
            if len(self._tables) >= 64:
                self._tables.clear()
            names = self._tables[key] = [self.mapper.to_symbol(e, s) for e, s in key]
        return names

    def validate(self, frame: Frame, bad: Mapping[str, np.ndarray]) -> RowCheck:
        """``bad``: field name -> mask of rows whose value is invalid, checked after the common checks
        (:func:`check_rows`)."""
        return check_rows(frame, bad)

    @staticmethod
    def processed(records: list[Record], check: RowCheck) -> Processed:
        return Processed(records, check.kept, check.count, check.error, check.reasons)


def _value(frame: Frame, name: str, row: int) -> str:
    column = frame.columns.get(name)
    if isinstance(column, StrColumn):
        return "<invalid UTF-8>"
    if column is None or not isinstance(column, np.ndarray):
        return "?"
    width = len(column) // frame.n if frame.n else 1
    values = column[row * width : (row + 1) * width]
    if width == 1:
        value = values[0]
        return str(int(value)) if column.dtype.kind in "iu" else str(float(value))
    return "[" + ", ".join(str(float(v)) for v in values) + "]"


def missing_ts(values: np.ndarray) -> np.ndarray:
    """Mask of an i64 timestamp column's missing or non-positive values."""
    return (values == INT64_MISSING) | (values <= 0)


def bad_time(values: np.ndarray, missing_ok: bool = False) -> np.ndarray:
    """Mask of an i64 timestamp column's values outside [TS_MIN_US, TS_MAX_US) (missing ones included,
    unless ``missing_ok``)."""
    bad = (values - TS_MIN_US).view(np.uint64) >= TS_MAX_US - TS_MIN_US  # one compare: wraps below
    if missing_ok:
        bad &= values != INT64_MISSING
    return bad


def bad_if_present(values: np.ndarray, minimum: float | None = None, strict: bool = False) -> np.ndarray:
    """Mask of f64 values that are present (not NaN) but infinite or below ``minimum``."""
    bad = np.isinf(values)
    if minimum is not None:
        with np.errstate(invalid="ignore"):
            bad |= (values <= minimum) if strict else (values < minimum)
    return bad


def optional(values: Sequence[float]) -> list[float | None]:
    """Floats with NaN (missing) as None."""
    return [None if v != v else v for v in values]


def optional_ts(values: np.ndarray) -> list[int | None]:
    return [None if v == INT64_MISSING else v for v in values.tolist()]
