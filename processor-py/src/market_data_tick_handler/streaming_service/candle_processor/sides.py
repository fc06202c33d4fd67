"""A batch's side column (``batch.py``) as the engine's side codes (``trade_groups.SIDE_CODES``): names
(``buy``, ``sell``, ``unknown``) in any form pandas or numpy hold them, or the codes themselves. Names are
matched once per distinct name (categories, hashing) or compiled row by row (Arrow strings, fixed-width
text), never as a Python string per row. An unknown name or a null is an error naming its first row.

Arrow strings, pandas' own text type, can also come in pieces (``side_pieces``): a worker thread encodes
the next piece while the engine aggregates this one, both compiled and without the GIL, so that on two
cores the side column costs next to nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from .trade_groups import SIDE_CODES

PIECE = 1 << 19  # rows per piece of ``side_pieces``

# the side names have lengths of their own (3, 4, 7): a string's length says which name it can be, and
# its bytes, read as one little-endian integer, whether it is; by length 0..8 (8: eight or more bytes)
_NAME_WORD = np.full(9, -1, dtype=np.int64)  # -1: no name of that length (a masked word never equals it)
_NAME_CODE = np.full(9, 255, dtype=np.uint8)
for _name, _code in SIDE_CODES.items():
    _NAME_WORD[len(_name.encode())] = int.from_bytes(_name.encode(), "little")
    _NAME_CODE[len(_name.encode())] = _code
_LENGTH_MASK = np.array([(1 << 8 * z) - 1 for z in range(8)] + [0], dtype=np.int64)
_NO_SIDE = 255
assert len({len(n.encode()) for n in SIDE_CODES}) == len(SIDE_CODES) and max(map(len, SIDE_CODES)) < 8


def side_codes(values: Any) -> np.ndarray:
    """The side codes of a whole column."""
    if (chunks := _arrow_text(values)) is not None:
        pieces = [_arrow_piece(chunk, at, 0, len(chunk)) for at, chunk in chunks]
        return np.concatenate(pieces) if len(pieces) != 1 else pieces[0]
    if isinstance(values, pd.Series | pd.Index):
        if isinstance(values.dtype, pd.CategoricalDtype):
            return _by_name(values.cat.codes.to_numpy(), list(values.cat.categories))
        values = values.to_numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "USO":
        return array.astype(np.uint8)
    if array.dtype.kind in "US":  # fixed-width text: compared character by character, compiled
        unit = np.uint32 if array.dtype.kind == "U" else np.uint8
        width = array.dtype.itemsize // np.dtype(unit).itemsize
        names = list(SIDE_CODES)
        table = np.zeros((len(names), max(width, 1)), dtype=unit)
        for k, name in enumerate(names):
            chars = [ord(ch) for ch in name] if len(name) <= width else [np.iinfo(unit).max] * width
            table[k, : len(chars)] = chars
        matrix = np.ascontiguousarray(array).view(unit).reshape(len(array), width)
        codes = _match_rows(matrix, table)
        if codes.min(initial=0) < 0:
            row = int(np.argmax(codes < 0))
            names.append(array[row].item() if array.dtype.kind == "U" else array[row].decode())
            codes[codes < 0] = len(names) - 1  # names the first row that is none of them
        return _by_name(codes, names)
    codes, names = pd.factorize(array)
    return _by_name(codes, list(names))


def side_pieces(values: Any, n: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """The side codes of rows ``0:n`` as ``(start, stop, codes)`` in order: Arrow strings in pieces of
    ``PIECE`` rows, each made in a worker thread while the caller uses the one before; any other form (or
    a short column) as one piece. A bad row raises where its piece is taken."""
    chunks = _arrow_text(values)
    if chunks is None or n <= PIECE:
        yield 0, n, side_codes(values)
        return
    pool = ThreadPoolExecutor(1, thread_name_prefix="side-codes")
    try:
        futures = [
            (at + a, at + b, pool.submit(_arrow_piece, chunk, at, a, b))
            for at, chunk in chunks
            for a, b in _bounds(len(chunk), first=PIECE // 8 if at == 0 else PIECE)
        ]
        for start, stop, future in futures:
            yield start, stop, future.result()
    finally:
        pool.shutdown(cancel_futures=True)


def _bounds(n: int, first: int) -> Iterator[tuple[int, int]]:
    """Rows ``0:n`` as pieces of ``PIECE`` rows, the first of ``first`` (a short first piece: the caller
    waits for it alone)."""
    a, b = 0, min(first, n)
    while a < n:
        yield a, b
        a, b = b, min(b + PIECE, n)


def _arrow_text(values: Any) -> list[tuple[int, Any]] | None:
    """The chunks of an Arrow-backed text column with the row each starts at (None: not one)."""
    if not isinstance(values, pd.Series | pd.Index) or not hasattr(values.array, "__arrow_array__"):
        return None
    import pyarrow as pa

    array = pa.chunked_array(values.array.__arrow_array__())
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return None
    starts = np.cumsum([0, *(len(c) for c in array.chunks)])
    return list(zip(starts.tolist(), array.chunks, strict=False))


def _arrow_piece(chunk: Any, at: int, a: int, b: int) -> np.ndarray:
    """Side codes of rows ``a:b`` of an Arrow string array that starts at row ``at`` of the column, read
    from its offsets and bytes."""
    import pyarrow as pa

    b = min(b, len(chunk))
    width = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    _, offsets, data = chunk.buffers()
    offsets = np.frombuffer(offsets, dtype=width)[chunk.offset + a : chunk.offset + b + 1]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    # the bytes as overlapping 8-byte integers: ``words[i]`` is the 8 bytes from byte i
    words = np.ndarray(buffer=data, dtype=np.int64, shape=(max(len(data) - 7, 0),), strides=(1,))
    codes = np.empty(b - a, dtype=np.uint8)
    if _match_names(offsets, data, words, _LENGTH_MASK, _NAME_WORD, _NAME_CODE, codes):
        bad = int(np.argmax(codes == _NO_SIDE))
        nulls = np.asarray(chunk.slice(a, b - a).is_null())
        if nulls.any():
            bad = min(bad, int(np.argmax(nulls)))
        value = chunk[a + bad].as_py()
        raise ValueError(f"trade row {at + a + bad}: side {value!r} is not one of {', '.join(SIDE_CODES)}")
    return codes


@njit(cache=True, nogil=True)
def _match_names(offsets, data, words, length_mask, name_word, name_code, out) -> int:
    """``out[i]``: the code of string i (``data[offsets[i]:offsets[i + 1]]``), or ``_NO_SIDE``: the name
    of its length, if its bytes are that name's (one comparison, no branch on the name: the side of a
    trade is as good as random). Returns how many are no name."""
    misses = 0
    for i in range(len(offsets) - 1):
        u = np.uint64(i)  # unsigned indexes: no test for a negative one
        start = offsets[u]
        length = np.uint64(max(min(offsets[u + np.uint64(1)] - start, 8), 0))
        if start < len(words):
            word = words[np.uint64(start)]
        else:  # the last few bytes: one at a time
            word = 0
            for b in range(len(data) - start):
                word |= np.int64(data[start + b]) << (8 * b)
        ok = (word & length_mask[length]) == name_word[length]
        out[u] = name_code[length] if ok else 255
        misses += not ok
    return misses


@njit(cache=True)
def _match_rows(matrix: np.ndarray, table: np.ndarray) -> np.ndarray:
    """For each row of ``matrix``, the index of the equal row of ``table`` (-1: none)."""
    out = np.full(matrix.shape[0], -1, dtype=np.int64)
    for i in range(matrix.shape[0]):
        for k in range(table.shape[0]):
            equal = True
            for j in range(matrix.shape[1]):
                if matrix[i, j] != table[k, j]:
                    equal = False
                    break
            if equal:
                out[i] = k
                break
    return out


def _by_name(codes: np.ndarray, names: list) -> np.ndarray:
    """Rows given as ``codes`` into ``names`` (-1: missing) as side codes."""
    lookup = np.zeros(len(names) + 1, dtype=np.uint8)
    for k, name in [*enumerate(names), (-1, None)]:
        if name in SIDE_CODES:
            lookup[k] = SIDE_CODES[name]
        elif np.any(codes == k):
            row = int(np.argmax(codes == k))
            raise ValueError(f"trade row {row}: side {name!r} is not one of {', '.join(SIDE_CODES)}")
    return lookup[codes]
