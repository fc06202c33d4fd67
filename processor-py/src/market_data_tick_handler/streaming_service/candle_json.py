"""The JSON of candle messages, written by one compiled pass per part (the format: ``messages.py``).

A boundary burst closes hundreds of candles at once, and building a dict per candle for a JSON encoder
costs more than all the rest of publishing them. Here the floats of a whole part go through ONE
``orjson.dumps`` of a numpy matrix (shortest round-trip form, NaN as null: the same text orjson gives a
Python float), and a numba kernel lays out every message around them: the constant pieces (keys, the
instrument's names, the part's timestamps) are copied, integers, booleans and trade times written
directly. The result is byte for byte what ``orjson.dumps`` of the message dict would give (tested
against it, ``tests/test_candle_json.py``).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import orjson
from numba import njit

from ..timeutil import iso_us
from .byte_pieces import copy_into, packed

if TYPE_CHECKING:
    from .candle_processor.closed import ClosedCandles

#: the candle's fields in message order; the first eight are floats (in the number matrix), then:
FLOAT_FIELDS = ("open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "vwap")
OTHER_FIELDS = (
    "trade_count", "first_trade_time", "last_trade_time", "is_empty", "has_gap", "is_partial", "revision",
)  # fmt: skip
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


@lru_cache(maxsize=65_536)
def _head(exchange: str, symbol: str, exchange_symbol: str, timeframe: str) -> bytes:
    """A message up to its first value that changes per bucket: ``{"type":"candle",...,"timestamp_in":``."""
    names = {"type": "candle", "exchange": exchange, "symbol": symbol, "exchange_symbol": exchange_symbol}
    return orjson.dumps({**names, "timeframe": timeframe})[:-1] + b',"timestamp_in":'


@lru_cache(maxsize=256)
def _keys(features: tuple[str, ...]) -> tuple[bytes, ...]:
    """The constant text before each value after ``open`` (and the closing text last)."""
    keys = [b",%b:" % orjson.dumps(name) for name in (*FLOAT_FIELDS[1:], *OTHER_FIELDS, *features)]
    if features:  # the first feature's key opens hft_features
        keys[len(FLOAT_FIELDS) - 1 + len(OTHER_FIELDS)] = b'},"hft_features":{%b:' % orjson.dumps(features[0])
    keys.append(b"}}")
    return tuple(keys)


def encode_part(block: ClosedCandles) -> list[bytes]:
    """The JSON of every candle of ``block``, in order (see ``messages.py`` for the message)."""
    part, symbols, exchange_symbols = block.columns, block.symbols, block.exchange_symbols
    n = len(part)
    if n == 0:
        return []
    features = part.features
    names = features.names if features is not None else ()
    columns = [part.open, part.high, part.low, part.close, part.volume, part.buy_volume, part.sell_volume]
    columns.append(np.where(part.is_empty, np.nan, part.vwap))
    matrix = np.empty((n, len(FLOAT_FIELDS) + len(names)), dtype=np.float64)
    matrix[:, : len(FLOAT_FIELDS)] = np.column_stack(columns)
    if features is not None:
        matrix[:, len(FLOAT_FIELDS) :] = features.values
    numbers = np.frombuffer(orjson.dumps(matrix, option=_NUMPY), dtype=np.uint8)
    slots, timeframe = part.slots.tolist(), part.timeframe
    exchange = block.exchange
    heads, head_offsets = packed([_head(exchange, symbols[s], exchange_symbols[s], timeframe) for s in slots])
    times = (iso_us(part.timestamp_in), iso_us(block.stamps.local_us), iso_us(block.stamps.out_us))
    first = b'"%b","local_timestamp":"%b","timestamp_out":"%b","candle":{"open":' % tuple(
        t.encode() for t in times
    )
    keys, key_offsets = packed((first, *_keys(names)))
    buffer, offsets = _write(
        numbers,
        len(FLOAT_FIELDS) + len(names),
        heads,
        head_offsets,
        keys,
        key_offsets,
        part.trade_count.astype(np.int64),
        part.first_trade_time.astype(np.int64),
        part.last_trade_time.astype(np.int64),
        part.is_empty.astype(np.bool_),
        part.has_gap.astype(np.bool_),
        bool(part.is_partial),
        part.revision.astype(np.int64),
    )
    data = buffer.tobytes()
    bounds = offsets.tolist()
    return [data[a:b] for a, b in pairwise(bounds)]


@njit(cache=True, inline="always")
def _int(out, at, value):
    if value < 0:
        out[at] = 45  # -
        at += 1
        value = -value
    digits = 1
    v = value
    while v >= 10:
        v //= 10
        digits += 1
    for k in range(digits - 1, -1, -1):
        out[at + k] = 48 + value % 10
        value //= 10
    return at + digits


@njit(cache=True, inline="always")
def _fixed(out, at, value, width):
    for k in range(width - 1, -1, -1):
        out[at + k] = 48 + value % 10
        value //= 10
    return at + width


_TRUE, _FALSE, _NULL = (np.frombuffer(word, dtype=np.uint8) for word in (b"true", b"false", b"null"))


@njit(cache=True, inline="always")
def _bool(out, at, value):
    return copy_into(out, at, _TRUE, 0, 4) if value else copy_into(out, at, _FALSE, 0, 5)


@njit(cache=True, inline="always")
def _null(out, at):
    return copy_into(out, at, _NULL, 0, 4)


@njit(cache=True, inline="always")
def _iso(out, at, us):
    """``"YYYY-MM-DDTHH:MM:SS.ffffffZ"`` with its quotes, from µs since the epoch (``timeutil.iso_us``)."""
    days = us // 86_400_000_000
    rem = us - days * 86_400_000_000
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
    seconds = rem // 1_000_000
    out[at] = 34  # "
    at = _fixed(out, at + 1, year, 4)
    out[at] = 45
    at = _fixed(out, at + 1, month, 2)
    out[at] = 45
    at = _fixed(out, at + 1, day, 2)
    out[at] = 84  # T
    at = _fixed(out, at + 1, seconds // 3600, 2)
    out[at] = 58  # :
    at = _fixed(out, at + 1, seconds // 60 % 60, 2)
    out[at] = 58
    at = _fixed(out, at + 1, seconds % 60, 2)
    out[at] = 46  # .
    at = _fixed(out, at + 1, rem % 1_000_000, 6)
    out[at] = 90  # Z
    out[at + 1] = 34
    return at + 2


@njit(cache=True, inline="always")
def _token(out, at, numbers, i):
    """Copy the number at ``numbers[i]`` (up to its , or ]); returns the new ``at`` and ``i`` past it."""
    start = i
    while numbers[i] != 44 and numbers[i] != 93:  # , ]
        i += 1
    return copy_into(out, at, numbers, start, i), i + 1


@njit(cache=True, inline="always")
def _key(out, at, keys, key_offsets, key):
    return copy_into(out, at, keys, key_offsets[key], key_offsets[key + 1])


@njit(cache=True)
def _write(numbers, width, heads, head_offsets, keys, key_offsets, trade_count, first_us, last_us,
           is_empty, has_gap, is_partial, revision):  # fmt: skip
    """Every message of a part into one buffer; returns it and the messages' offsets. ``numbers`` is the
    JSON of the (candles x width) float matrix, ``[[a,b,...],[...]]``: 8 candle fields, then features.
    Key ``k`` is the text before value ``k`` of a message (key 0 follows the head and precedes open)."""
    n = len(head_offsets) - 1
    size = len(heads) + len(numbers) + n * (key_offsets[-1] + 2 * 28 + 2 * 20 + 3 * 5)
    out = np.empty(size, dtype=np.uint8)
    offsets = np.empty(n + 1, dtype=np.int64)
    at = 0
    i = 1  # in numbers, past the outer [
    for c in range(n):
        offsets[c] = at
        at = copy_into(out, at, heads, head_offsets[c], head_offsets[c + 1])
        i += 1  # the row's [
        for k in range(8):  # open .. vwap
            at = _key(out, at, keys, key_offsets, k)
            at, i = _token(out, at, numbers, i)
        at = _key(out, at, keys, key_offsets, 8)
        at = _int(out, at, trade_count[c])
        at = _key(out, at, keys, key_offsets, 9)
        at = _null(out, at) if is_empty[c] else _iso(out, at, first_us[c])
        at = _key(out, at, keys, key_offsets, 10)
        at = _null(out, at) if is_empty[c] else _iso(out, at, last_us[c])
        at = _key(out, at, keys, key_offsets, 11)
        at = _bool(out, at, is_empty[c])
        at = _key(out, at, keys, key_offsets, 12)
        at = _bool(out, at, has_gap[c])
        at = _key(out, at, keys, key_offsets, 13)
        at = _bool(out, at, is_partial)
        at = _key(out, at, keys, key_offsets, 14)
        at = _int(out, at, revision[c])
        for k in range(15, 15 + width - 8):  # the features
            at = _key(out, at, keys, key_offsets, k)
            at, i = _token(out, at, numbers, i)
        at = _key(out, at, keys, key_offsets, 15 + width - 8)  # the closing text
        i += 1  # the , between rows (or the final ])
    offsets[n] = at
    return out[:at], offsets


def compile_writer() -> None:
    """Load the writer from numba's cache (or compile it) now, not when the first boundary's candles wait:
    done there, it delayed them by ~0.14 s and left ~50,000 objects for the garbage collector. The
    service calls this at start; it writes one candle through the same calls as ``encode_part``."""
    numbers = np.frombuffer(orjson.dumps(np.ones((1, len(FLOAT_FIELDS))), option=_NUMPY), dtype=np.uint8)
    heads, head_offsets = packed([_head("x", "X", "X", "1m")])
    keys, key_offsets = packed((b'"","candle":{"open":', *_keys(())))
    ints, flags = np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.bool_)
    _write(numbers, len(FLOAT_FIELDS), heads, head_offsets, keys, key_offsets, ints, ints, ints, flags, flags,
           False, ints)  # fmt: skip
