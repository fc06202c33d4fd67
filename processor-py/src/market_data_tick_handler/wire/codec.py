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


class WireError(ValueError):
    """A frame that cannot be decoded; the message says what and where."""


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
    if not isinstance(width, int) or width < 0:
        raise WireError(f"{where}: header field {column.width_field!r} must be a non-negative integer")
    return width


def decode_frame(buf: bytes | bytearray | memoryview, schema: WireSchema | None = None) -> Frame:
    schema = schema or load_schema()
    view = memoryview(buf).cast("B")
    size = len(view)
    if size < _PREAMBLE.size:
        raise WireError(f"frame of {size} bytes is shorter than the {_PREAMBLE.size}-byte preamble")
    magic, version, _reserved, header_len = _PREAMBLE.unpack_from(view, 0)
    if magic != schema.magic:
        raise WireError(f"bad magic {magic!r} (expected {schema.magic!r}): not a wire frame")
    if version != schema.version:
        raise WireError(f"wire version {version}, this processor reads version {schema.version}")
    start = _PREAMBLE.size
    if start + header_len > size:
        raise WireError(f"header of {header_len} bytes runs past the frame end ({size} bytes)")
    try:
        header = orjson.loads(view[start : start + header_len])
    except orjson.JSONDecodeError as exc:
        raise WireError(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise WireError("header is not a JSON object")
    ftype = schema.frames.get(header.get("type"))  # type: ignore[arg-type]
    where = f"frame seq={header.get('seq')} type={header.get('type')!r}"
    if ftype is None:
        raise WireError(f"{where}: unknown frame type")
    n = header.get("n")
    if not isinstance(n, int) or n < 0:
        raise WireError(f"{where}: header field 'n' must be a non-negative integer")
    offset = start + header_len
    offset += _pad(offset)
    columns: dict[str, Any] = {}
    for column in ftype.columns:
        if column.dtype == "str":
            need = (n + 1) * 4
            if offset + need > size:
                raise WireError(f"{where}: column {column.name!r} offsets run past the frame end")
            offsets = np.frombuffer(view, dtype="<u4", count=n + 1, offset=offset)
            blob_len = int(offsets[-1]) if n >= 0 else 0
            blob_start = offset + need
            if blob_start + blob_len > size or (n and np.any(np.diff(offsets.astype(np.int64)) < 0)):
                raise WireError(f"{where}: column {column.name!r} has bad string offsets")
            columns[column.name] = StrColumn(offsets, view[blob_start : blob_start + blob_len])
            offset = blob_start + blob_len
        else:
            count = n * _width(column, header, where)
            need = count * column.np_dtype.itemsize
            if offset + need > size:
                raise WireError(
                    f"{where}: column {column.name!r} needs {need} bytes at offset {offset}, frame has {size}"
                )
            columns[column.name] = np.frombuffer(view, dtype=column.np_dtype, count=count, offset=offset)
            offset += need
        offset += _pad(offset)
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
