"""The wire schema (proto/wire.json), loaded once; the codec is built from it.

A frame made from tardis-dev normalized messages names, per column (and per type-specific header
field), the message field it is read from (wire.json ``frames.<type>.tardis``): ``Column.tardis`` and
``FrameType.tardis``; ``"bids[].price"`` is the field ``price`` of each element of the array ``bids``,
one per level of a per-level column. The Node ingester writes its rows from the same names.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
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
    tardis: str | None = None  # the tardis-dev message field it is read from (None: sym, or no tardis map)

    @property
    def np_dtype(self) -> np.dtype:
        return _NUMPY_DTYPES[self.dtype]


@dataclass(frozen=True, slots=True)
class FrameType:
    name: str
    header: tuple[str, ...]
    columns: tuple[Column, ...]
    #: column or type-specific header field -> the tardis-dev message field it is read from; empty for
    #: frames not made from tardis-dev messages (start, ledger, end)
    tardis: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class WireSchema:
    version: int
    magic: bytes
    enums: dict[str, tuple[str, ...]]
    frames: dict[str, FrameType]


_TARDIS_PATH = re.compile(r"(?:[A-Za-z_$][\w$]*\[\]\.)?[A-Za-z_$][\w$]*")


def proto_path(name: str, env: str) -> Path:
    """Where the shared file ``proto/<name>`` is: ``$<env>``, the copy inside an installed wheel (next
    to this module), or the repository's ``proto/`` (a checkout, an editable install)."""
    override = os.environ.get(env)
    if override:
        return Path(override)
    packaged = resources.files("market_data_tick_handler.wire").joinpath(name)
    if packaged.is_file():
        return Path(str(packaged))
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "proto" / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"proto/{name} not found: set {env} to its path")


def schema_path() -> Path:
    """Where wire.json is: $MDTH_WIRE_SCHEMA, the copy inside an installed wheel, or the repo's proto/."""
    return proto_path("wire.json", "MDTH_WIRE_SCHEMA")


def _tardis_names(name: str, spec: dict, path: Path) -> dict[str, str]:
    names = spec.get("tardis", {})
    fields = {entry[0] for entry in spec["columns"]} - {"sym"} | set(spec["header"])
    for key, value in names.items():
        if key not in fields:
            raise ValueError(f"{path}: frames.{name}.tardis.{key}: not a column or header field")
        if not isinstance(value, str) or _TARDIS_PATH.fullmatch(value) is None:
            raise ValueError(f"{path}: frames.{name}.tardis.{key}: {value!r} is not a field name")
    return dict(names)


@cache
def load_schema() -> WireSchema:
    path = schema_path()
    raw = json.loads(path.read_text())
    frames = {}
    for name, spec in raw["frames"].items():
        tardis = _tardis_names(name, spec, path)
        columns = []
        for entry in spec["columns"]:
            col_name, dtype, *rest = entry
            enum = rest[0] if rest else None
            width = rest[1] if len(rest) > 1 else None
            columns.append(Column(col_name, dtype, enum, width, tardis.get(col_name)))
        frames[name] = FrameType(name, tuple(spec["header"]), tuple(columns), tardis)
    return WireSchema(
        version=int(raw["version"]),
        magic=raw["magic"].encode("ascii"),
        enums={k: tuple(v) for k, v in raw["enums"].items()},
        frames=frames,
    )
