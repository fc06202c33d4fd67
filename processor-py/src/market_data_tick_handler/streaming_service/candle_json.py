"""The JSON of candle messages, written by one compiled pass per part (the format: ``messages.py``).

A boundary burst closes hundreds of candles at once, and building a dict per candle for a JSON encoder
costs more than all the rest of publishing them. Here the floats of a whole part go through ONE
``orjson.dumps`` of a numpy matrix (shortest round-trip form, NaN as null: the same text orjson gives a
Python float), and a numba kernel lays out every message around them: the constant pieces (keys, the
instrument's names, the part's timestamps and constant fields) are copied, integers, booleans and times
written directly. It loops over the candle's fields by kind (``byte_pieces.LAYOUT``, made from
``candle_processor/schema.py``), so a new field needs nothing here. The result is byte for byte what
``orjson.dumps`` of the message dict would give (tested against it, ``tests/test_candle_json.py``).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import orjson
from numba import njit

from ..timeutil import iso_us
from .byte_pieces import (
    FLAG_VALUE,
    FLOAT_VALUE,
    INT_VALUE,
    LAYOUT,
    NULL,
    PART_CONSTANT,
    TIME_VALUE,
    SlotPieces,
    copy_into,
    field_of,
    packed,
    unsigned,
)
from .candle_processor.schema import TIME, Field

if TYPE_CHECKING:
    from .candle_processor.closed import ClosedCandles

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
#: the most bytes a value of each kind takes besides what ``numbers`` holds (a float: its token, or a
#: null in its place)
_ROW_VALUES = LAYOUT.most_bytes(
    {FLOAT_VALUE: 4, INT_VALUE: 20, TIME_VALUE: 28, FLAG_VALUE: 5, PART_CONSTANT: 0}
)


def _head(exchange: str, symbol: str, exchange_symbol: str) -> bytes:
    """A message up to the instrument's names: ``{"type":"candle",...,"exchange_symbol":"..."``."""
    names = {"type": "candle", "exchange": exchange, "symbol": symbol, "exchange_symbol": exchange_symbol}
    return orjson.dumps(names)[:-1]


#: the heads of the instruments' messages by slot
_HEADS = SlotPieces(_head)


def _value(f: Field, value: object) -> bytes:
    """The JSON of one value of ``f`` (a part constant)."""
    if f.kind is TIME:
        return b'"%b"' % iso_us(int(value)).encode()
    return orjson.dumps(f.kind.python(value))


@lru_cache(maxsize=256)
def _keys(features: tuple[str, ...], constants: tuple) -> tuple[bytes, ...]:
    """The constant text before the value of each candle field (``LAYOUT``, in order) and each feature,
    and the closing text last. A part constant's text holds its value (``constants``, in order); the
    first field's lacks what opens the candle object (``encode_part`` adds it, with the timestamps)."""
    keys, values = [], iter(constants)
    for k, f in enumerate(LAYOUT.fields):
        key = b"%b%b:" % (b"," if k else b"", orjson.dumps(f.name))
        keys.append(key + _value(f, next(values)) if f.per_part else key)
    keys += [b"%b%b:" % (b"," if k else b'},"hft_features":{', orjson.dumps(name))
             for k, name in enumerate(features)]  # fmt: skip
    keys.append(b"}}")
    return tuple(keys)


def encode_part(block: ClosedCandles) -> list[bytes]:
    """The JSON of every candle of ``block``, in order (see ``messages.py`` for the message)."""
    part = block.columns
    n = len(part)
    if n == 0:
        return []
    features = part.features
    names = features.names if features is not None else ()
    floats, ints, flags = LAYOUT.columns(part)
    matrix = np.empty((n, len(floats) + len(names)))  # a row per candle: its floats, then its features
    matrix[:, : len(floats)] = floats.T
    if features is not None:
        matrix[:, len(floats) :] = features.values
    numbers = np.frombuffer(orjson.dumps(matrix, option=_NUMPY), dtype=np.uint8)
    heads, head_offsets = _HEADS.packed(block.exchange, block.symbols, block.exchange_symbols)
    times = (iso_us(part.timestamp_in), iso_us(block.stamps.local_us), iso_us(block.stamps.out_us))
    opening = (
        b',"timeframe":%b,"timestamp_in":"%b","local_timestamp":"%b","timestamp_out":"%b","candle":{'
        % (
            orjson.dumps(part.timeframe),
            *(t.encode() for t in times),
        )
    )
    first, *rest = _keys(names, LAYOUT.constant_values(part))
    keys, key_offsets = packed((opening + first, *rest))
    buffer, offsets = _write(
        numbers,
        len(names),
        heads,
        head_offsets,
        part.slots.astype(np.int64, copy=False),
        keys,
        key_offsets,
        LAYOUT.specs,
        LAYOUT.empty,
        ints,
        flags,
        _ROW_VALUES,
    )
    data = buffer.tobytes()  # (faster than bytes of memoryview slices, though it copies twice)
    return [data[a:b] for a, b in pairwise(offsets.tolist())]


@njit(cache=True, inline="always")
def _digits(out, at, value, width):
    """The ``width`` last decimal digits of ``value`` (an unsigned integer) at ``at``; returns the position
    after them."""
    to, one, ten = unsigned(at + width), unsigned(1), unsigned(10)
    for _ in range(width):
        to -= one
        out[to] = 48 + value % ten
        value //= ten
    return at + width


@njit(cache=True, inline="always")
def _int(out, at, value):
    if value < 0:
        out[unsigned(at)] = 45  # -
        at += 1
    magnitude = unsigned(value) if value >= 0 else unsigned(0) - unsigned(value)  # (-value overflows)
    digits, v, ten = 1, magnitude, unsigned(10)
    while v >= ten:
        v //= ten
        digits += 1
    return _digits(out, at, magnitude, digits)


@njit(cache=True, inline="always")
def _fixed(out, at, value, width):
    return _digits(out, at, unsigned(value), width)


_TRUE, _FALSE, _NULL = (np.frombuffer(word, dtype=np.uint8) for word in (b"true", b"false", b"null"))


@njit(cache=True, inline="always")
def _bool(out, at, value):
    return copy_into(out, at, _TRUE, 0, 4) if value else copy_into(out, at, _FALSE, 0, 5)


@njit(cache=True, inline="always")
def _null(out, at):
    return copy_into(out, at, _NULL, 0, 4)


@njit(cache=True, inline="always")
def _byte(out, at, value):
    """``value`` at ``at``; returns the position after it."""
    out[unsigned(at)] = value
    return at + 1


@njit(cache=True, inline="always")
def _iso(out, at, us):
    """``"YYYY-MM-DDTHH:MM:SS.ffffffZ"`` with its quotes, from µs since the epoch (``timeutil.iso_us``)."""
    days = us // 86_400_000_000
    rem = unsigned(us - days * 86_400_000_000)
    # days -> civil date (H. Hinnant's algorithm)
    z = days + 719_468
    era = (z if z >= 0 else z - 146_096) // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    seconds = rem // unsigned(1_000_000)
    at = _fixed(out, _byte(out, at, 34), year, 4)  # "
    at = _fixed(out, _byte(out, at, 45), month, 2)  # -
    at = _fixed(out, _byte(out, at, 45), day, 2)
    at = _digits(out, _byte(out, at, 84), seconds // unsigned(3600), 2)  # T
    at = _digits(out, _byte(out, at, 58), seconds // unsigned(60) % unsigned(60), 2)  # :
    at = _digits(out, _byte(out, at, 58), seconds % unsigned(60), 2)
    at = _digits(out, _byte(out, at, 46), rem % unsigned(1_000_000), 6)  # .
    return _byte(out, _byte(out, at, 90), 34)  # Z"


@njit(cache=True, inline="always")
def _token(out, at, numbers, i):
    """Copy the number at ``numbers[i]`` (up to its , or ]); returns the new ``at`` and ``i`` past it."""
    start, j, one = unsigned(i), unsigned(i), unsigned(1)
    to = unsigned(at) - start  # out[to + j] for numbers[j]
    b = numbers[j]
    while b != 44 and b != 93:  # , ]
        out[to + j] = b
        j += one
        b = numbers[j]
    count = np.int64(j - start)
    return at + count, i + count + 1


@njit(cache=True, inline="always")
def _key(out, at, keys, key_offsets, key):
    k = unsigned(key)
    return copy_into(out, at, keys, key_offsets[k], key_offsets[k + unsigned(1)])


@njit(cache=True, inline="always")
def _skip(numbers, i):
    """The position past the number at ``numbers[i]`` (and its , or ])."""
    j, one = unsigned(i), unsigned(1)
    while numbers[j] != 44 and numbers[j] != 93:  # , ]
        j += one
    return np.int64(j) + 1


@njit(cache=True)
def _write(numbers, features, heads, head_offsets, slots, keys, key_offsets, specs, empty_row, ints, flags,
           row_values):  # fmt: skip
    """Every message of a part into one buffer; returns it and the messages' offsets. Message ``c`` opens
    with the head of its instrument, piece ``slots[c]`` of ``heads``. ``numbers`` is the JSON of the
    (candles x floats) matrix, ``[[a,b,...],[...]]``: the float fields, then ``features`` features. Key
    ``k`` is the text before value ``k`` of a message: the candle's fields (``specs``,
    ``empty_row``: ``byte_pieces.Layout``; integers and times in ``ints``, flags in ``flags``, a row per
    field and a column per candle: ``Layout.columns``), then the features; the last key closes the
    message."""
    n = len(slots)
    fields = len(specs)
    size = len(numbers) + n * (key_offsets[-1] + row_values)
    for c in range(n):
        size += head_offsets[slots[c] + 1] - head_offsets[slots[c]]
    out = np.empty(size, dtype=np.uint8)
    offsets = np.empty(n + 1, dtype=np.int64)
    at = 0
    i = 1  # in numbers, past the outer [
    for c in range(n):
        offsets[c] = at
        slot = unsigned(slots[c])
        at = copy_into(out, at, heads, head_offsets[slot], head_offsets[slot + unsigned(1)])
        i += 1  # the row's [
        empty = flags[empty_row, c]
        for k in range(fields):
            at = _key(out, at, keys, key_offsets, k)
            kind, row = field_of(specs[unsigned(k)], empty)
            if kind == FLOAT_VALUE:
                at, i = _token(out, at, numbers, i)
            elif kind == INT_VALUE:
                at = _int(out, at, ints[unsigned(row), unsigned(c)])
            elif kind == TIME_VALUE:
                at = _iso(out, at, ints[unsigned(row), unsigned(c)])
            elif kind == FLAG_VALUE:
                at = _bool(out, at, flags[unsigned(row), unsigned(c)])
            elif kind == NULL:
                at = _null(out, at)
                if (specs[k] >> 1) & 7 == FLOAT_VALUE:  # its number is in numbers all the same
                    i = _skip(numbers, i)
            # a part constant: its value is in its key
        for k in range(fields, fields + features):
            at = _key(out, at, keys, key_offsets, k)
            at, i = _token(out, at, numbers, i)
        at = _key(out, at, keys, key_offsets, fields + features)  # the closing text
        i += 1  # the , between rows (or the final ])
    offsets[n] = at
    return out[:at], offsets


def compile_writer() -> None:
    """Load the writer from numba's cache (or compile it) now, not when the first boundary's candles wait:
    done there, it delayed them by ~0.14 s and left ~50,000 objects for the garbage collector. The
    service calls this at start; it writes one candle through ``encode_part``."""
    from .candle_processor import ClosedCandles, Stamps
    from .candle_processor.candle_batch import blank_columns

    encode_part(ClosedCandles(blank_columns(1), "x", ["X"], ["X"], Stamps(0, 0)))
