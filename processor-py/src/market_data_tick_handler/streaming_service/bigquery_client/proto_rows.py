"""Closed candles as rows in the Storage Write API's wire form: per row a serialised proto2 message whose
type is built at run time from a candle table's columns (tables.py), one optional field per column
(number = position + 1), so a null is a field left out. TIMESTAMP columns are int64 µs since the epoch,
as BigQuery reads them from a proto.

The nulls: a field the schema makes null on an empty candle (``null_when_empty`` in
``candle_processor/schema.py``: ``vwap``, the trade times) is left out of an empty candle's row; a NaN
feature is null (a window not yet full, ``FeatureColumns.records``); a feature the part does not carry
(another timeframe, a group that is off) is left out, which the table stores as null.

A boundary closes hundreds of candles at once, and a message object per row cost ~11 µs a candle. Here a
numba kernel writes the wire format of a whole part (one timeframe, one bucket) from its columns: the
bytes that are the same for an instrument (``symbol``, ``exchange``, ``exchange_symbol``), for the part
(``timeframe``, the three timestamps, its constant fields such as ``is_partial``) and every field's tag
are made once and copied; doubles are their 8 little-endian bytes, integers varints (a negative one 10
bytes), booleans one byte. The kernel loops over the candle's fields by kind (``byte_pieces.LAYOUT``, made
from the schema), so a new field needs nothing here. Fields go in field-number order, as the protobuf
library serialises them, so the bytes are the library's ``SerializeToString`` of the same row (tested
against it, ``tests/test_persist_rows.py``).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
from google.protobuf import descriptor_pb2
from numba import njit

from ..byte_pieces import (
    FLAG_VALUE,
    FLOAT_VALUE,
    INT_VALUE,
    LAYOUT,
    NULL,
    PART_CONSTANT,
    TIME_VALUE,
    copy_into,
    field_of,
    packed,
)
from ..candle_processor.schema import FLOAT, KEY_COLUMNS, Field
from .tables import CANDLE_COLUMNS, Column, ColumnType, feature_columns

if TYPE_CHECKING:
    from ..candle_processor import ClosedCandles

_Field = descriptor_pb2.FieldDescriptorProto
_PROTO_TYPES: dict[ColumnType, int] = {
    "STRING": _Field.TYPE_STRING,
    "TIMESTAMP": _Field.TYPE_INT64,
    "FLOAT64": _Field.TYPE_DOUBLE,
    "INT64": _Field.TYPE_INT64,
    "BOOL": _Field.TYPE_BOOL,
}
_WIRE_TYPES: dict[ColumnType, int] = {"STRING": 2, "TIMESTAMP": 0, "FLOAT64": 1, "INT64": 0, "BOOL": 0}
_CANDLE = len(CANDLE_COLUMNS)
#: the columns a row's head is written in: the instrument's (``_instrument_heads``), then the part's
#: key, the timeframe and the times (``_row_pieces``, the times' values from ``encode``)
_HEAD = ("symbol", "exchange", "exchange_symbol", "timeframe", "timestamp_in", "local_timestamp",
         "timestamp_out")  # fmt: skip
if tuple(name for name, _ in KEY_COLUMNS) != _HEAD:
    raise ValueError(f"the row writer writes the key columns as {_HEAD}, not {KEY_COLUMNS}")
#: the part's times, varints the kernel writes once per part (their values: ``encode``)
_TIMES = _HEAD[4:]
#: the most bytes of values a row writes besides its head, the part's key and pieces
_ROW_VALUES = LAYOUT.most_bytes(
    {FLOAT_VALUE: 8, INT_VALUE: 10, TIME_VALUE: 10, FLAG_VALUE: 1, PART_CONSTANT: 0}
)
#: the pieces of a part's rows (buffer, offsets), and the features' order that gives field order
_Pieces = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def _varint(value: int) -> bytes:
    """``value`` as a protobuf varint (a negative int64 as its two's complement: 10 bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@dataclass(slots=True)
class _Heads:
    """The fields ``symbol``, ``exchange``, ``exchange_symbol`` of each instrument slot of one exchange,
    for the engine's own lists of names by slot (which only grow)."""

    symbols: Sequence[str]
    exchange_symbols: Sequence[str]
    pieces: list[bytes] = field(default_factory=list)
    packed_pieces: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: packed(()))


class RowEncoder:
    """``encode(part, ...)`` -> the serialised rows of a part; ``descriptor`` is the ``writer_schema`` of
    an append. ``columns``: a candle table's (``CANDLE_COLUMNS``, then nullable FLOAT64 features)."""

    def __init__(self, columns: tuple[Column, ...]) -> None:
        if columns[:_CANDLE] != CANDLE_COLUMNS or any(c.type != "FLOAT64" for c in columns[_CANDLE:]):
            raise ValueError("not a candle table's columns: CANDLE_COLUMNS, then FLOAT64 features")
        file = descriptor_pb2.FileDescriptorProto(name="row.proto", package="mdth", syntax="proto2")
        self.descriptor = file.message_type.add(name="Row")
        for number, column in enumerate(columns, 1):
            self.descriptor.field.add(
                name=column.name, number=number, type=_PROTO_TYPES[column.type], label=_Field.LABEL_OPTIONAL
            )
        self._tags = {c.name: _varint(n << 3 | _WIRE_TYPES[c.type]) for n, c in enumerate(columns, 1)}
        self._features = {c.name: k for k, c in enumerate(columns[_CANDLE:])}  # by field order
        self._heads: dict[str, _Heads] = {}
        self._pieces: dict[tuple[str, tuple[str, ...], tuple], _Pieces] = {}

    def _string(self, name: str, value: str) -> bytes:
        data = value.encode()
        return self._tags[name] + _varint(len(data)) + data

    def _instrument_heads(
        self, exchange: str, symbols: Sequence[str], exchange_symbols: Sequence[str]
    ) -> _Heads:
        heads = self._heads.get(exchange)
        if heads is None or heads.symbols is not symbols or heads.exchange_symbols is not exchange_symbols:
            # first seen, or other lists (a batch made elsewhere): names by slot start anew
            heads = self._heads[exchange] = _Heads(symbols, exchange_symbols)
        known = len(heads.pieces)
        if known < len(symbols):  # new instruments
            name = self._string("exchange", exchange)
            heads.pieces.extend(
                self._string("symbol", s) + name + self._string("exchange_symbol", x)
                for s, x in zip(symbols[known:], exchange_symbols[known:], strict=True)
            )
            heads.packed_pieces = packed(heads.pieces)
        return heads

    def _constant_field(self, f: Field, value: object) -> bytes:
        """A whole field of a part constant: its tag and its value."""
        if f.kind is FLOAT:
            data = struct.pack("<d", value)
        elif f.kind.python is bool:
            data = bytes([bool(value)])
        else:
            data = _varint(int(value))
        return self._tags[f.name] + data

    def _row_pieces(self, timeframe: str, names: tuple[str, ...], constants: tuple) -> _Pieces:
        """The pieces of a part's rows after the instrument's head: the ``timeframe`` field whole and the
        tag of each of ``_TIMES``; then the piece before each value of the candle's fields (``LAYOUT``: a
        tag, or for a part constant [``constants``] the whole field) and of the part's features in field
        order. And the order of the features' columns that gives field order (None: as they are)."""
        key = (timeframe, names, constants)
        cached = self._pieces.get(key)
        if cached is None:
            unknown = [n for n in names if n not in self._features]
            if unknown:
                raise ValueError(f"features without a column in the table: {unknown}")
            order = sorted(range(len(names)), key=lambda k: self._features[names[k]])
            tags, values = self._tags, iter(constants)
            pieces = [self._string("timeframe", timeframe), *(tags[t] for t in _TIMES)]
            pieces += [
                self._constant_field(f, next(values)) if f.per_part else tags[f.name] for f in LAYOUT.fields
            ]
            pieces += [tags[names[k]] for k in order]
            buffer, offsets = packed(pieces)
            permutation = None if order == sorted(order) else np.array(order, dtype=np.int64)
            cached = self._pieces[key] = (buffer, offsets, permutation)
        return cached

    def encode(self, block: ClosedCandles) -> list[bytes]:
        """The serialised row of every candle of ``block``, in order; its stamps are the rows'
        ``local_timestamp`` and ``timestamp_out``."""
        part = block.columns
        n = len(part)
        if n == 0:
            return []
        heads = self._instrument_heads(block.exchange, block.symbols, block.exchange_symbols)
        features = part.features
        names = features.names if features is not None else ()
        pieces, piece_offsets, permutation = self._row_pieces(
            part.timeframe, names, LAYOUT.constant_values(part)
        )
        stamps = block.stamps
        if features is None:
            values = np.empty((n, 0), dtype="<f8")
        else:
            values = features.values if permutation is None else features.values[:, permutation]
            values = np.ascontiguousarray(values, dtype="<f8")
        floats, ints, flags = LAYOUT.columns(part)
        buffer, offsets = _write(
            *heads.packed_pieces,
            np.ascontiguousarray(part.slots, dtype=np.int64),
            pieces,
            piece_offsets,
            (int(part.timestamp_in), int(stamps.local_us), int(stamps.out_us)),  # _TIMES
            LAYOUT.specs,
            LAYOUT.empty,
            floats.astype("<f8", copy=False).view(np.uint8),
            ints,
            flags,
            values,
            values.view(np.uint8),
            _ROW_VALUES,
        )
        data = buffer.tobytes()
        return [data[a:b] for a, b in pairwise(offsets.tolist())]


@njit(cache=True, inline="always")
def _double(out, at, doubles, k):
    """Copy the 8 little-endian bytes of double ``k`` of ``doubles`` (a row of doubles as bytes)."""
    return copy_into(out, at, doubles, 8 * k, 8 * k + 8)


@njit(cache=True, inline="always")
def _varint_at(out, at, value):
    """An int64 as a varint: 7 bits a byte, low first; a negative one as its two's complement, 10 bytes."""
    if value < 0:
        for _ in range(9):  # bits 0..62 (the shift is arithmetic, the mask keeps 7 bits)
            out[at] = (value & 127) | 128
            value >>= 7
            at += 1
        out[at] = 1  # bit 63
        return at + 1
    while value >= 128:
        out[at] = (value & 127) | 128
        value >>= 7
        at += 1
    out[at] = value
    return at + 1


@njit(cache=True)
def _write(heads, head_offsets, slots, pieces, piece_offsets, times, specs, empty_row, float_bytes, ints,
           flags, values, value_bytes, row_values):  # fmt: skip
    """Every row of a part into one buffer; returns it and the rows' offsets. Row ``c``: the head of
    instrument ``slots[c]``; the part's key, the same in every row (made once: the first piece, the
    timeframe's field, then per value of ``times`` its piece, a tag, and the value as a varint); then per
    value its piece (the pieces that follow: the candle's fields', then the features') and the value.
    The candle's fields are described by ``specs`` and ``empty_row`` (``byte_pieces.Layout``), their
    values are column ``c`` of the matrices of their kinds (``Layout.columns``, a row per field): doubles
    from ``float_bytes`` (8 little-endian bytes each), integers and times from ``ints`` (varints), flags
    from ``flags`` (a byte); a part constant is its piece alone, and a null (an empty candle's) is left
    out. Then the features (``values``, a row per candle, and their bytes ``value_bytes``): NaN is left
    out."""
    n = len(slots)
    first = len(times) + 1  # the piece of the first value
    fields = len(specs)
    width = values.shape[1]
    key = np.empty(piece_offsets[first] + 10 * len(times), dtype=np.uint8)
    key_size = copy_into(key, 0, pieces, 0, piece_offsets[1])
    for j in range(len(times)):
        key_size = copy_into(key, key_size, pieces, piece_offsets[1 + j], piece_offsets[2 + j])
        key_size = _varint_at(key, key_size, times[j])
    size = n * (key_size + piece_offsets[-1] - piece_offsets[first] + row_values + 8 * width)
    for c in range(n):
        size += head_offsets[slots[c] + 1] - head_offsets[slots[c]]
    out = np.empty(size, dtype=np.uint8)
    offsets = np.empty(n + 1, dtype=np.int64)
    at = 0
    for c in range(n):
        offsets[c] = at
        at = copy_into(out, at, heads, head_offsets[slots[c]], head_offsets[slots[c] + 1])
        at = copy_into(out, at, key, 0, key_size)
        empty = flags[empty_row, c]
        for k in range(fields):
            kind, row = field_of(specs[k], empty)
            if kind == NULL:
                continue  # the field is left out
            at = copy_into(out, at, pieces, piece_offsets[first + k], piece_offsets[first + k + 1])
            if kind == FLOAT_VALUE:
                at = _double(out, at, float_bytes[row], c)
            elif kind == FLAG_VALUE:
                out[at] = 1 if flags[row, c] else 0
                at += 1
            elif kind != PART_CONSTANT:  # an integer or a time (a part constant: its piece is the field)
                at = _varint_at(out, at, ints[row, c])
        for j in range(width):
            if values[c, j] == values[c, j]:  # not NaN
                piece = first + fields + j
                at = copy_into(out, at, pieces, piece_offsets[piece], piece_offsets[piece + 1])
                at = _double(out, at, value_bytes[c], j)
    offsets[n] = at
    return out[:at], offsets


def compile_row_writer() -> None:
    """Load the row writer from numba's cache (or compile it) now, not when the first boundary's candles
    wait. The service calls this at start when persist mode is on; it encodes one candle with a feature
    through ``RowEncoder.encode``, so the kernel gets the types of the real calls."""
    from ..candle_processor import ClosedCandles, FeatureColumns, Stamps
    from ..candle_processor.candle_batch import blank_columns

    columns = CANDLE_COLUMNS + feature_columns()
    part = blank_columns(1, FeatureColumns((columns[-1].name,), np.ones((1, 1))))
    RowEncoder(columns).encode(ClosedCandles(part, "x", ["X"], ["X"], Stamps(0, 0)))
