"""The wire schema (proto/wire.json), loaded once; the codec is built from it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

_NUMPY_DTYPES = {
    "u8": np.dtype("<u1"),
    "u16": np.dtype("<u2"),
    "u32": np.dtype("<u4"),
    "i64": np.dtype("<i8"),
    "f64": np.dtype("<f8"),
}

INT64_MISSING = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    dtype: str  # u8 | u16 | u32 | i64 | f64 | str
    enum: str | None = None  # name of an enum in the schema
    width_field: str | None = None  # header field giving values per row (book depth)

    @property
    def np_dtype(self) -> np.dtype:
        return _NUMPY_DTYPES[self.dtype]


@dataclass(frozen=True, slots=True)
class FrameType:
    name: str
    header: tuple[str, ...]
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class WireSchema:
    version: int
    magic: bytes
    enums: dict[str, tuple[str, ...]]
    frames: dict[str, FrameType]


def schema_path() -> Path:
    """Where wire.json is: $MDTH_WIRE_SCHEMA, the copy inside an installed wheel, or the repo's proto/."""
    override = os.environ.get("MDTH_WIRE_SCHEMA")
    if override:
        return Path(override)
    packaged = resources.files("market_data_tick_handler.wire").joinpath("wire.json")
    if packaged.is_file():
        return Path(str(packaged))
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "proto" / "wire.json"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("proto/wire.json not found: set MDTH_WIRE_SCHEMA to its path")


@cache
def load_schema() -> WireSchema:
    raw = json.loads(schema_path().read_text())
    frames = {}
    for name, spec in raw["frames"].items():
        columns = []
        for entry in spec["columns"]:
            col_name, dtype, *rest = entry
            enum = rest[0] if rest else None
            width = rest[1] if len(rest) > 1 else None
            columns.append(Column(col_name, dtype, enum, width))
        frames[name] = FrameType(name, tuple(spec["header"]), tuple(columns))
    return WireSchema(
        version=int(raw["version"]),
        magic=raw["magic"].encode("ascii"),
        enums={k: tuple(v) for k, v in raw["enums"].items()},
        frames=frames,
    )
