"""The data type processor interface (one implementation per file, as nautilus_trader's adapters).

A processor turns one decoded wire frame into records. It validates whole columns at once: a row with
a bad value is dropped, and :class:`Processed` says how many and names the first (frame seq, row,
symbol, field); the good rows around it are kept. Processors neither log nor count: ``TickHandler``
does, for every type alike.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ...wire import INT64_MISSING, Frame
from ..instrument_service import InstrumentMapper
from .records import Record

SIDES = ("unknown", "buy", "sell")


@dataclass(frozen=True, slots=True)
class Processed:
    """What a processor made of one frame: its ``records`` and ``kept`` (the mask of valid rows, for
    column consumers such as the feature context), ``bad_rows`` dropped and ``error`` naming the first."""

    records: list[Record] = field(default_factory=list)
    kept: np.ndarray | None = None
    bad_rows: int = 0
    error: str | None = None


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

    def validate(self, frame: Frame, bad: Mapping[str, np.ndarray]) -> tuple[np.ndarray, int, str | None]:
        """``bad``: field name -> mask of rows whose value is invalid. Returns the mask of rows kept, the
        number dropped and the message naming the first bad row (with every bad field of it)."""
        sym = frame.columns["sym"]
        masks = {"sym": sym >= len(frame.symbols), **bad}
        any_bad = np.zeros(frame.n, dtype=bool)
        for mask in masks.values():
            any_bad |= mask
        count = int(np.count_nonzero(any_bad))
        if not count:
            return ~any_bad, 0, None
        i = int(np.flatnonzero(any_bad)[0])
        s = int(sym[i])
        exchange, symbol = frame.symbols[s] if s < len(frame.symbols) else ("?", "?")
        fields = ", ".join(f"{name}={_value(frame, name, i)}" for name, mask in masks.items() if mask[i])
        message = (
            f"{frame.type} frame seq={frame.seq} row {i} ({exchange}:{symbol}): {fields};"
            f" {count} bad row(s) in this frame dropped, the other {frame.n - count} kept"
        )
        return ~any_bad, count, message


def _value(frame: Frame, name: str, row: int) -> str:
    column = frame.columns.get(name)
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
