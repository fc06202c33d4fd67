"""What the compiled writers of messages (``candle_json.py``) and rows (``bigquery_client/proto_rows.py``)
share: constant byte strings handed to numba as one buffer with offsets, the copy of a piece of it, and
the candle's fields as the writers loop over them (:data:`LAYOUT`, made from ``candle_processor/schema.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit
from numpy.typing import DTypeLike

from .candle_processor.schema import BOOL, CANDLE_FIELDS, EMPTY, FLOAT, INT, TIME, Field, Kind

if TYPE_CHECKING:
    from .candle_processor.candle_batch import CandleColumns

#: the writers' kinds of a field: a float (a column of the float matrix), an integer or a time (of the
#: integer matrix), a flag (of the flag matrix), or a value constant for the part (written with its key);
#: and a null (``field_of``)
FLOAT_VALUE, INT_VALUE, TIME_VALUE, FLAG_VALUE, PART_CONSTANT, NULL = range(6)
_KINDS: dict[Kind, int] = {FLOAT: FLOAT_VALUE, INT: INT_VALUE, TIME: TIME_VALUE, BOOL: FLAG_VALUE}


def packed(pieces: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Byte strings as one uint8 buffer and their offsets (``len(pieces) + 1``)."""
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    return np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets


@njit(cache=True, inline="always")
def copy_into(out, at, src, start, stop):
    """``src[start:stop]`` into ``out`` at ``at``; returns the position after it."""
    for k in range(start, stop):
        out[at] = src[k]
        at += 1
    return at


@njit(cache=True, inline="always")
def field_of(spec, empty):
    """A field's kind and column from its ``spec`` (``Layout.specs``); the kind is ``NULL`` when the
    field is null on an empty candle and ``empty`` is true."""
    if spec & 1 and empty:
        return NULL, 0
    return (spec >> 1) & 7, spec >> 4


@dataclass(frozen=True, slots=True)
class Layout:
    """The candle's fields in order, as the compiled writers read them: field ``k`` is of kind
    ``kinds[k]``; ``specs[k]`` holds its kind, whether it is null on an empty candle, and its column in
    the matrix of its kind (``floats``, ``ints`` [integers and times] or ``flags``) in one integer for the
    kernels (``field_of``); ``constants`` are the part constants, ``empty`` the column of ``is_empty``
    among the flags."""

    fields: tuple[Field, ...]
    kinds: tuple[int, ...]
    specs: np.ndarray
    floats: tuple[str, ...]
    ints: tuple[str, ...]
    flags: tuple[str, ...]
    constants: tuple[Field, ...]
    empty: int

    @classmethod
    def of(cls, fields: tuple[Field, ...]) -> Layout:
        kinds = tuple(PART_CONSTANT if f.per_part else _KINDS[f.kind] for f in fields)
        by_kind: dict[int, list[str]] = {FLOAT_VALUE: [], INT_VALUE: [], FLAG_VALUE: [], PART_CONSTANT: []}
        specs = []
        for f, kind in zip(fields, kinds, strict=True):
            names = by_kind[INT_VALUE if kind == TIME_VALUE else kind]
            specs.append(f.null_when_empty | kind << 1 | len(names) << 4)
            names.append(f.name)
        flags = tuple(by_kind[FLAG_VALUE])
        return cls(
            fields,
            kinds,
            np.array(specs, dtype=np.int64),
            tuple(by_kind[FLOAT_VALUE]),
            tuple(by_kind[INT_VALUE]),
            flags,
            tuple(f for f in fields if f.per_part),
            flags.index(EMPTY),
        )

    def matrix(
        self, part: CandleColumns, names: tuple[str, ...], dtype: DTypeLike, extra: int = 0
    ) -> np.ndarray:
        """The columns ``names`` of ``part`` side by side (``extra`` more columns left to fill)."""
        out = np.empty((len(part), len(names) + extra), dtype=dtype)
        for k, name in enumerate(names):
            out[:, k] = getattr(part, name)
        return out

    def constant_values(self, part: CandleColumns) -> tuple:
        """The values of the part's constant fields."""
        return tuple(getattr(part, f.name) for f in self.constants)

    def most_bytes(self, widths: dict[int, int]) -> int:
        """The most bytes a row's values take, given the most a value of each kind takes."""
        return sum(widths[k] for k in self.kinds)


LAYOUT = Layout.of(CANDLE_FIELDS)
