"""One tick given as a dict (``TickHandler.process_tick``) as the one-row wire frame a decoded frame would
be: the same columns, built directly, never encoded to bytes.

A tick's ``type`` is a native data type's name or tardis' name of its wire frame (``registry.TICK_TYPES``:
``trades`` or ``trade``, ``book_snapshots`` or ``book_snapshot``, ...). Its fields are named as on the
wire or as tardis-dev names them (``proto/wire.json`` ``frames.<type>.tardis``: ``fundingRate``,
``bids: [{price, amount}]``, ...); times are µs integers, ISO strings or datetimes; a field left out or
empty is missing. ``symbol`` may be the exchange's own (``BTCUSDT``) or the seeds' form (``BTC-USDT``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...timeutil import parse_iso_us
from ...wire import INT64_MISSING, Frame, StrColumn, WireSchema
from ...wire.codec import MAX_NAME
from ...wire.schema import Column
from ..data_types.registry import TICK_TYPES
from ..instrument_service import InstrumentMapper

SESSION = "process_tick"  # the session of the frames made from ticks


def _us(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return parse_iso_us(value)
    if hasattr(value, "timestamp"):  # datetime
        return parse_iso_us(value.isoformat())
    return int(value)


def _field(tick: dict[str, Any], name: str, tardis: str | None) -> Any:
    """The tick's value of a wire field, under its wire name or tardis' (None: missing or empty)."""
    value = tick.get(name, tick.get(tardis) if tardis else None)
    return None if value is None or value == "" else value


def _column(column: Column, values: list[Any], schema: WireSchema) -> Any:
    """One column of the frame from plain values (None: missing), as the codec decodes it."""
    if column.dtype == "str":
        encoded = [("" if v is None else str(v)).encode("utf-8") for v in values]
        offsets = np.zeros(len(encoded) + 1, dtype="<u4")
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        return StrColumn(offsets, memoryview(b"".join(encoded)))
    if column.enum:
        names = schema.enums[column.enum]
        return np.array([names.index(v or "unknown") for v in values], dtype=column.np_dtype)
    if column.dtype == "f64":
        return np.array([np.nan if v is None else float(v) for v in values], dtype=column.np_dtype)
    return np.array([INT64_MISSING if v is None else v for v in values], dtype=column.np_dtype)


def _levels(tick: dict[str, Any], side: str, fields: list[str]) -> list[tuple[Any, ...]]:
    """A book side as (price, amount) tuples: elements given as mappings, or as [price, amount]."""
    return [
        tuple(level[f] for f in fields) if isinstance(level, dict) else tuple(level[: len(fields)])
        for level in tick.get(side) or []
    ]


def tick_frame(
    tick: dict[str, Any], seq: int, schema: WireSchema, mapper: InstrumentMapper, now: Callable[[], int]
) -> Frame:
    """The frame of ``tick`` (seq ``seq`` of the ``process_tick`` session); ``now``: its local timestamp
    when the tick has none. Raises KeyError, ValueError, TypeError, IndexError or OverflowError for a
    tick that is not one."""
    kind = tick.get("type", "trade")
    frame_type = TICK_TYPES.get(kind)
    if frame_type is None:
        raise ValueError(f"type {kind!r} is not a data type; known: {', '.join(TICK_TYPES)}")
    spec = schema.frames[frame_type]
    exchange = tick["exchange"]
    symbol = tick.get("exchange_symbol") or tick["symbol"]
    if not (isinstance(exchange, str) and isinstance(symbol, str) and exchange and symbol):
        raise ValueError("exchange and symbol must be non-empty strings")
    exchange_symbol = symbol if "-" not in symbol else mapper.to_exchange_symbol(exchange, symbol)
    if len(exchange) > MAX_NAME or len(exchange_symbol) > MAX_NAME:
        raise ValueError(f"exchange and symbol must be at most {MAX_NAME} characters")
    header: dict[str, Any] = {
        "type": frame_type,
        "n": 1,
        "seq": seq,
        "session": SESSION,
        "symbols": [[exchange, exchange_symbol]],
        "recv_mono_us": 0,
        "sent_mono_us": 0,
    }
    local = tick.get("local_timestamp", tick.get(spec.tardis.get("local_timestamp", "")))
    row: dict[str, Any] = {
        "sym": 0,
        "timestamp": _us(tick["timestamp"]),
        "local_timestamp": _us(local) if local is not None else now(),
    }
    per_level = [c for c in spec.columns if c.width_field is not None]
    if per_level:  # a book: depth levels per side, best first, padded with missing ones
        sides: dict[str, list[str]] = {}  # tardis array -> its element fields, in column order
        for c in per_level:
            array, _, element = (c.tardis or "").partition("[].")
            sides.setdefault(array, []).append(element)
        levels = {array: _levels(tick, array, fields) for array, fields in sides.items()}
        width = per_level[0].width_field
        assert width is not None
        depth = int(_field(tick, width, spec.tardis.get(width)) or max(*map(len, levels.values()), 1))
        if depth < 1:
            raise ValueError(f"{width} must be at least 1")
        for name in spec.header:
            if name != width:
                header[name] = int(_field(tick, name, spec.tardis.get(name)) or 0)
        header[width] = depth
        for c in per_level:
            array, _, element = (c.tardis or "").partition("[].")
            k = sides[array].index(element)
            present = [level[k] for level in levels[array][:depth]]
            row[c.name] = present + [None] * (depth - len(present))
    columns: dict[str, Any] = {}
    for c in spec.columns:
        if c.name in row:
            value = row[c.name]
        elif c.dtype == "i64":  # a time
            value = _us(_field(tick, c.name, c.tardis))
        else:
            value = _field(tick, c.name, c.tardis)
        columns[c.name] = _column(c, value if c.width_field else [value], schema)
    return Frame(type=frame_type, header=header, columns=columns)
