"""What the compiled writers of messages (``candle_json.py``) and rows (``bigquery_client/proto_rows.py``)
share: constant byte strings handed to numba as one buffer with offsets, the copy of a piece of it, and
the candle's fields as the writers loop over them (:data:`LAYOUT`, made from ``candle_processor/schema.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from .candle_processor.schema import BOOL, CANDLE_FIELDS, EMPTY, FLOAT, INT, TIME, Field, Kind

if TYPE_CHECKING:
    from .candle_processor.candle_batch import CandleColumns

#: the writers' kinds of a field: a float (a row of the float matrix, ``Layout.columns``), an integer or
#: a time (of the integer matrix), a flag (of the flag matrix), or a value constant for the part (written
#: with its key); and a null (``field_of``)
FLOAT_VALUE, INT_VALUE, TIME_VALUE, FLAG_VALUE, PART_CONSTANT, NULL = range(6)
_KINDS: dict[Kind, int] = {FLOAT: FLOAT_VALUE, INT: INT_VALUE, TIME: TIME_VALUE, BOOL: FLAG_VALUE}


def packed(pieces: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Byte strings as one uint8 buffer and their offsets (``len(pieces) + 1``)."""
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    return np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets


@dataclass(slots=True)
class _Slots:
    """The pieces of the instrument slots of one exchange's lists of names."""

    symbols: Sequence[str]
    exchange_symbols: Sequence[str]
    pieces: list[bytes] = field(default_factory=list)
    packed: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: packed(()))


class SlotPieces:
    """A byte string per instrument slot, ``piece(exchange, symbol, exchange_symbol)``, ``packed`` for the
    compiled writers to index by slot. Made for the engine's own lists of names by slot, which only grow
    (``ClosedCandles``): per exchange, each new name is encoded once; other lists start anew."""

    def __init__(self, piece: Callable[[str, str, str], bytes]) -> None:
        self._piece = piece
        self._exchanges: dict[str, _Slots] = {}

    def packed(
        self, exchange: str, symbols: Sequence[str], exchange_symbols: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The pieces of every slot of ``symbols`` as one buffer and their offsets (``packed``)."""
        slots = self._exchanges.get(exchange)
        if slots is None or slots.symbols is not symbols or slots.exchange_symbols is not exchange_symbols:
            slots = self._exchanges[exchange] = _Slots(symbols, exchange_symbols)
        known = len(slots.pieces)
        if known < len(symbols):  # new instruments
            slots.pieces.extend(
                self._piece(exchange, s, x)
                for s, x in zip(symbols[known:], exchange_symbols[known:], strict=True)
            )
            slots.packed = packed(slots.pieces)
        return slots.packed


@njit(cache=True, inline="always")
def unsigned(index):
    """``index`` (>= 0) as an unsigned integer: numba leaves out the check for a negative index (counted
    from the end) in an array lookup with it, which in the writers' byte loops cost about as much as the
    copy itself."""
    return np.uint64(index)


@njit(cache=True, inline="always")
def copy_into(out, at, src, start, stop):
    """``src[start:stop]`` into ``out`` at ``at``; returns the position after it."""
    to, one = unsigned(at), unsigned(1)  # (uint64 + int64 is a float in numba)
    for k in range(unsigned(start), unsigned(stop)):
        out[to] = src[k]
        to += one
    return at + max(stop - start, 0)


@njit(cache=True, inline="always")
def field_of(spec, empty):
    """A field's kind and row (in the matrix of its kind, ``Layout.columns``) from its ``spec``
    (``Layout.specs``); the kind is ``NULL`` when the field is null on an empty candle and ``empty`` is
    true."""
    if spec & 1 and empty:
        return NULL, 0
    return (spec >> 1) & 7, spec >> 4


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple]:
    """``part -> (part.<name>, ...)`` in one call (``attrgetter``), a tuple however many names."""
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda part: (one(part),)
    return attrgetter(*names) if names else lambda part: ()


def _stacked(columns: tuple, dtype: type, n: int) -> np.ndarray:
    """``columns`` (arrays of ``n`` values) as the rows of one matrix."""
    return np.array(columns, dtype) if columns else np.empty((0, n), dtype)


@dataclass(frozen=True, slots=True)
class Layout:
    """The candle's fields in order, as the compiled writers read them: field ``k`` is of kind
    ``kinds[k]``; ``specs[k]`` holds its kind, whether it is null on an empty candle, and its row in the
    matrix of its kind (``floats``, ``ints`` [integers and times] or ``flags``: ``columns``) in one
    integer for the kernels (``field_of``); ``constants`` are the part constants, ``empty`` the row of
    ``is_empty`` among the flags."""

    fields: tuple[Field, ...]
    kinds: tuple[int, ...]
    specs: np.ndarray
    floats: tuple[str, ...]
    ints: tuple[str, ...]
    flags: tuple[str, ...]
    constants: tuple[Field, ...]
    empty: int
    #: the columns of ``floats``, ``ints``, ``flags`` and the values of ``constants`` of a part, each in
    #: one call (made once: a boundary's writers ask for them part by part)
    _getters: tuple[Callable[[object], tuple], ...] = field(repr=False, compare=False)

    @classmethod
    def of(cls, fields: tuple[Field, ...]) -> Layout:
        kinds = tuple(PART_CONSTANT if f.per_part else _KINDS[f.kind] for f in fields)
        by_kind: dict[int, list[str]] = {FLOAT_VALUE: [], INT_VALUE: [], FLAG_VALUE: [], PART_CONSTANT: []}
        specs = []
        for f, kind in zip(fields, kinds, strict=True):
            names = by_kind[INT_VALUE if kind == TIME_VALUE else kind]
            specs.append(f.null_when_empty | kind << 1 | len(names) << 4)
            names.append(f.name)
        floats, ints, flags = (tuple(by_kind[k]) for k in (FLOAT_VALUE, INT_VALUE, FLAG_VALUE))
        constants = tuple(f for f in fields if f.per_part)
        return cls(
            fields,
            kinds,
            np.array(specs, dtype=np.int64),
            floats,
            ints,
            flags,
            constants,
            flags.index(EMPTY),
            tuple(map(_getter, (floats, ints, flags, tuple(by_kind[PART_CONSTANT])))),
        )

    def columns(self, part: CandleColumns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The per-candle fields of ``part`` as a matrix per kind, a row per field (in the order of
        ``floats``, ``ints``, ``flags``) and a column per candle: float64, int64, bool."""
        n = len(part)
        floats, ints, flags, _ = self._getters
        return (
            _stacked(floats(part), np.float64, n),
            _stacked(ints(part), np.int64, n),
            _stacked(flags(part), np.bool_, n),
        )

    def constant_values(self, part: CandleColumns) -> tuple:
        """The values of the part's constant fields."""
        return self._getters[3](part)

    def most_bytes(self, widths: dict[int, int]) -> int:
        """The most bytes a row's values take, given the most a value of each kind takes."""
        return sum(widths[k] for k in self.kinds)


LAYOUT = Layout.of(CANDLE_FIELDS)
