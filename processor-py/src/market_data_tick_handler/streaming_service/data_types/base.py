"""The data type processor interface (one implementation per file, as nautilus_trader's adapters).

A processor turns one decoded wire frame into records, in two steps the frame router calls for every
type alike: ``validate`` checks whole columns at once (the common checks of :func:`check_rows`, then the
type's own ``validity`` masks): a row with a bad value is dropped, and the :class:`RowCheck` says how
many, by reason (the first bad field of each row), and names the first (frame seq, row, symbol, field);
the good rows around it are kept. ``records`` then makes the records of the kept rows (``process`` does
both). The common checks: ``sym`` within the symbol table, ``timestamp`` and ``local_timestamp`` within
2000-01-01..2100-01-01, ``str`` columns valid UTF-8. Processors neither log nor count: the frame router
(``tick_processor/frame_router.py``) does, for every type alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Self

import numpy as np

from ...wire import INT64_MISSING, Frame, StrColumn
from ..instrument_service import Instruments
from .records import Record

if TYPE_CHECKING:
    from ...config import DataTypeConfig
    from ..clock import Clock

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
    """Frames in (the data type's ``frames`` in ``registry.py``), records of ``data_type`` out."""

    data_type: ClassVar[str]

    def __init__(self, instruments: Instruments | None = None) -> None:
        """``instruments``: the instrument tables the records take their symbols from (the router's)."""
        self.instruments = instruments or Instruments()

    @classmethod
    def create(cls, instruments: Instruments, config: DataTypeConfig, clock: Clock) -> Self:
        """The processor ``DataTypeRouter`` makes for the type (``config``: its ``data_types`` entry;
        ``clock``: the candle clock, for a type that keeps time)."""
        return cls(instruments)

    def validity(self, frame: Frame) -> Mapping[str, np.ndarray]:
        """The type's own checks: field name -> mask of the rows whose value is invalid (none here)."""
        return {}

    def validate(self, frame: Frame) -> RowCheck:
        """The rows of ``frame`` to keep: the common checks (:func:`check_rows`), then ``validity``."""
        return check_rows(frame, self.validity(frame))

    @abstractmethod
    def records(self, frame: Frame, check: RowCheck) -> list[Record]:
        """The records of the rows of ``frame`` that ``check`` kept."""

    def process(self, frame: Frame) -> Processed:
        """``validate`` then ``records``."""
        check = self.validate(frame)
        return Processed(self.records(frame, check), check.kept, check.count, check.error, check.reasons)

    # -- helpers -------------------------------------------------------------------------------
    def symbols(self, frame: Frame) -> list[str]:
        """The symbols of the frame's symbol table (``Instruments.of``)."""
        return self.instruments.of(frame.symbols).names


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
