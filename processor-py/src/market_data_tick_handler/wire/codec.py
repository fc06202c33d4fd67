"""Encode and decode wire frames (layout in proto/README.md).

Numeric columns decode zero-copy with ``np.frombuffer``; string columns decode lazily, so a
trade id costs nothing unless someone reads it.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .schema import INT64_MISSING, Column, FrameType, WireSchema, load_schema

_PREAMBLE = struct.Struct("<4sHHI")  # magic, version, reserved, header length
_ALIGN = 8


#: header limits: JSON's safe integers (the ingester's seq is a JS number), names, the u16 ``sym`` column
MAX_SEQ = 2**53 - 1
MAX_NAME = 256
MAX_SYMBOLS = 65536


class WireError(ValueError):
    """A frame that cannot be decoded; the message says what and where, ``reason`` is a short code to
    count it by (``short``, ``magic``, ``version``, ``header_length``, ``header_json``, ``unknown_type``,
    ``header_<field>``, ``truncated``, ``bad_offsets``, ``length``, ``malformed``)."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


def _pad(length: int) -> int:
    return -length % _ALIGN


class StrColumn(Sequence[str]):
    """A ``str`` column: ``u32 offsets[n+1]`` then a UTF-8 blob, decoded on access."""

    __slots__ = ("_blob", "_offsets")

    def __init__(self, offsets: np.ndarray, blob: memoryview) -> None:
        self._offsets = offsets
        self._blob = blob

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return bytes(self._blob[self._offsets[i] : self._offsets[i + 1]]).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        data = bytes(self._blob)
        offsets = self._offsets.tolist()
        for start, stop in itertools.pairwise(offsets):
            yield data[start:stop].decode("utf-8")

    def invalid(self) -> np.ndarray | None:
        """Mask of the rows that are not valid UTF-8, or None when every row is. Checked on the whole blob
        at once: ASCII, or valid as a whole with no row starting or ending inside a character (a
        continuation byte ``10xxxxxx``), means every row is valid; only a frame that fails that is
        checked row by row."""
        data = bytes(self._blob)
        if data.isascii():
            return None
        blob = np.frombuffer(data, dtype=np.uint8)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            bad = np.fromiter(
                (not _utf8(data[a:b]) for a, b in itertools.pairwise(self._offsets.tolist())),
                dtype=bool,
                count=len(self),
            )
            return bad if bad.any() else None
        starts, ends = self._offsets[:-1].astype(np.int64), self._offsets[1:].astype(np.int64)
        inside = (blob & 0xC0) == 0x80
        inside = np.append(inside, False)  # the blob's end is a boundary
        bad = (starts < ends) & (inside[starts] | inside[ends])
        return bad if bad.any() else None


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Frame:
    type: str
    header: dict[str, Any]
    columns: dict[str, Any]  # np.ndarray, or StrColumn for str columns

    @property
    def n(self) -> int:
        return int(self.header["n"])

    @property
    def seq(self) -> int:
        return int(self.header["seq"])

    @property
    def session(self) -> str:
        return str(self.header["session"])

    @property
    def symbols(self) -> list[list[str]]:
        return self.header["symbols"]


def _width(column: Column, header: Mapping[str, Any], where: str) -> int:
    if column.width_field is None:
        return 1
    width = header.get(column.width_field)
    if type(width) is not int or width < 0:
        raise WireError(
            f"{where}: header field {column.width_field!r} must be a non-negative integer",
            f"header_{column.width_field}",
        )
    return width


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _symbol_pair(pair: Any) -> bool:
    return (
        type(pair) is list
        and len(pair) == 2
        and type(pair[0]) is str
        and type(pair[1]) is str
        and 0 < len(pair[0]) <= MAX_NAME
        and 0 < len(pair[1]) <= MAX_NAME
    )


_CHECKED_TABLES: dict[bytes, None] = {}  # symbol tables found valid, by their JSON (an ingester sends few)


def _symbols_ok(symbols: Any) -> bool:
    """A list of at most ``MAX_SYMBOLS`` distinct [exchange, symbol] pairs of non-empty strings. A table
    already found valid is known by its JSON (one C call), not checked pair by pair again: for 100
    symbols that walk cost ~0.14 ms of every frame."""
    if type(symbols) is not list or len(symbols) > MAX_SYMBOLS:
        return False
    key = orjson.dumps(symbols)
    if key in _CHECKED_TABLES:
        return True
    ok = all(_symbol_pair(p) for p in symbols) and (
        len(symbols) < 2 or len({(e, s) for e, s in symbols}) == len(symbols)
    )
    if ok:
        if len(_CHECKED_TABLES) >= 64:
            _CHECKED_TABLES.clear()
        _CHECKED_TABLES[key] = None
    return ok


def _check_header(header: dict[str, Any], ftype: FrameType, where: str) -> int:
    """The common fields a processor relies on (proto/README.md "Header fields"); returns ``n``."""
    n = header.get("n")
    if type(n) is not int or n < 0:
        raise WireError(f"{where}: header field 'n' must be a non-negative integer", "header_n")
    if n and not ftype.columns:
        raise WireError(f"{where}: a {ftype.name} frame has no rows, header says n={n}", "header_n")
    seq = header.get("seq")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise WireError(f"{where}: header field 'seq' must be an integer 0..2^53-1", "header_seq")
    session = header.get("session")
    if type(session) is not str or not 0 < len(session) <= MAX_NAME:
        raise WireError(
            f"{where}: header field 'session' must be a string of 1..{MAX_NAME} characters", "header_session"
        )
    if not _symbols_ok(header.get("symbols")):
        raise WireError(
            f"{where}: header field 'symbols' must be a list of distinct [exchange, symbol] pairs of"
            f" non-empty strings (at most {MAX_SYMBOLS})",
            "header_symbols",
        )
    return n


def decode_frame(buf: bytes | bytearray | memoryview, schema: WireSchema | None = None) -> Frame:
    """The frame in ``buf``; raises :class:`WireError` (and nothing else) for anything that is not a
    well-formed frame: layout, header fields (``n``, ``seq``, ``session``, ``symbols``, width fields),
    column bounds, string offsets and the exact length. Row values are not checked here (a bad row is
    the processor's to drop, not a reason to lose the frame)."""
    schema = schema or load_schema()
    try:
        return _decode(memoryview(buf).cast("B"), schema)
    except WireError:
        raise
    except (ValueError, TypeError, OverflowError, IndexError, KeyError, struct.error) as exc:
        raise WireError(f"malformed frame: {type(exc).__name__}: {exc}", "malformed") from None


def _decode(view: memoryview, schema: WireSchema) -> Frame:
    size = len(view)
    if size < _PREAMBLE.size:
        raise WireError(f"frame of {size} bytes is shorter than the {_PREAMBLE.size}-byte preamble", "short")
    magic, version, _reserved, header_len = _PREAMBLE.unpack_from(view, 0)
    if magic != schema.magic:
        raise WireError(f"bad magic {magic!r} (expected {schema.magic!r}): not a wire frame", "magic")
    if version != schema.version:
        raise WireError(f"wire version {version}, this processor reads version {schema.version}", "version")
    start = _PREAMBLE.size
    if start + header_len > size:
        raise WireError(
            f"header of {header_len} bytes runs past the frame end ({size} bytes)", "header_length"
        )
    try:
        header = orjson.loads(view[start : start + header_len])
    except orjson.JSONDecodeError as exc:
        raise WireError(f"header is not valid JSON: {exc}", "header_json") from None
    if not isinstance(header, dict):
        raise WireError("header is not a JSON object", "header_json")
    kind = header.get("type")
    ftype = schema.frames.get(kind) if type(kind) is str else None
    where = f"frame seq={_brief(header.get('seq'))} type={_brief(kind)}"
    if ftype is None:
        raise WireError(f"{where}: unknown frame type", "unknown_type")
    n = _check_header(header, ftype, where)
    offset = start + header_len
    offset += _pad(offset)
    columns: dict[str, Any] = {}
    for column in ftype.columns:
        if column.dtype == "str":
            need = (n + 1) * 4
            if offset + need > size:
                raise WireError(
                    f"{where}: column {column.name!r} offsets run past the frame end", "truncated"
                )
            offsets = np.frombuffer(view, dtype="<u4", count=n + 1, offset=offset)
            blob_len = int(offsets[-1])
            blob_start = offset + need
            if (
                offsets[0] != 0
                or blob_start + blob_len > size
                or (n and np.any(np.diff(offsets.astype(np.int64)) < 0))
            ):
                raise WireError(f"{where}: column {column.name!r} has bad string offsets", "bad_offsets")
            columns[column.name] = StrColumn(offsets, view[blob_start : blob_start + blob_len])
            offset = blob_start + blob_len
        else:
            count = n * _width(column, header, where)
            need = count * column.np_dtype.itemsize
            if offset + need > size:
                raise WireError(
                    f"{where}: column {column.name!r} needs {need} bytes at offset {offset},"
                    f" frame has {size}",
                    "truncated",
                )
            columns[column.name] = np.frombuffer(view, dtype=column.np_dtype, count=count, offset=offset)
            offset += need
        offset += _pad(offset)
    if offset != size:
        raise WireError(
            f"{where}: frame of {size} bytes, its header and columns make {offset}: wrong n or length",
            "length",
        )
    return Frame(type=ftype.name, header=header, columns=columns)


def _column_bytes(column: Column, values: Any, n: int, width: int, where: str) -> bytes:
    if column.dtype == "str":
        encoded = [("" if v is None else str(v)).encode("utf-8") for v in values]
        if len(encoded) != n:
            raise WireError(f"{where}: column {column.name!r} has {len(encoded)} rows, expected {n}")
        offsets = np.zeros(n + 1, dtype="<u4")
        if n:
            np.cumsum([len(b) for b in encoded], out=offsets[1:])
        return offsets.tobytes() + b"".join(encoded)
    array = np.asarray(values, dtype=column.np_dtype).reshape(-1)
    if array.size != n * width:
        raise WireError(f"{where}: column {column.name!r} has {array.size} values, expected {n * width}")
    return array.tobytes()


def encode_frame(
    header: Mapping[str, Any], columns: Mapping[str, Any], schema: WireSchema | None = None
) -> bytes:
    """Encode one frame; ``header['n']`` is set from the columns (or 0 for a frame with none)."""
    schema = schema or load_schema()
    ftype: FrameType | None = schema.frames.get(header.get("type"))  # type: ignore[arg-type]
    if ftype is None:
        raise WireError(f"unknown frame type {header.get('type')!r}")
    # The first column of every row-carrying type is `sym`, one value per row.
    n = len(columns[ftype.columns[0].name]) if ftype.columns else 0
    full_header = {**header, "n": n}
    where = f"encoding {ftype.name}"
    head = orjson.dumps(full_header)
    parts = [_PREAMBLE.pack(schema.magic, schema.version, 0, len(head)), head]
    length = _PREAMBLE.size + len(head)
    for column in ftype.columns:
        parts.append(b"\0" * _pad(length))
        length += _pad(length)
        body = _column_bytes(column, columns[column.name], n, _width(column, full_header, where), where)
        parts.append(body)
        length += len(body)
    parts.append(b"\0" * _pad(length))
    return b"".join(parts)


def enum_code(schema: WireSchema, enum: str, name: str) -> int:
    return schema.enums[enum].index(name)


def frame_rows(frame: Frame, schema: WireSchema | None = None) -> list[dict[str, Any]]:
    """Rows as plain values (enum names, None for missing): for tests, tools and logs, not hot paths."""
    schema = schema or load_schema()
    ftype = schema.frames[frame.type]
    rows: list[dict[str, Any]] = [{} for _ in range(frame.n)]
    for column in ftype.columns:
        values = frame.columns[column.name]
        width = _width(column, frame.header, frame.type)
        for i, row in enumerate(rows):
            if column.dtype == "str":
                row[column.name] = values[i]
                continue
            cell = [_plain(column, schema, v) for v in values[i * width : (i + 1) * width]]
            row[column.name] = cell if column.width_field else cell[0]
    return rows


def _plain(column: Column, schema: WireSchema, value: Any) -> Any:
    if column.dtype == "f64":
        return None if np.isnan(value) else float(value)
    if column.dtype == "i64":
        return None if value == INT64_MISSING else int(value)
    if column.enum:
        return schema.enums[column.enum][int(value)]
    return int(value)


def rows_to_columns(
    frame_type: str,
    header: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    schema: WireSchema | None = None,
) -> dict[str, Any]:
    """The inverse of :func:`frame_rows`: plain rows to encodable columns."""
    schema = schema or load_schema()
    ftype = schema.frames[frame_type]
    columns: dict[str, Any] = {}
    for column in ftype.columns:
        values: list[Any] = []
        for row in rows:
            cell = row[column.name]
            cells = cell if column.width_field else [cell]
            for value in cells:
                if column.dtype == "str":
                    values.append(value or "")
                elif value is None:
                    values.append(np.nan if column.dtype == "f64" else INT64_MISSING)
                elif column.enum:
                    values.append(enum_code(schema, column.enum, value))
                else:
                    values.append(value)
        columns[column.name] = values
    return columns
