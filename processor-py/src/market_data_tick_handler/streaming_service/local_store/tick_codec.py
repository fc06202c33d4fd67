"""Tick rows for the local store: a row is the msgpack array ``[layout id, timestamp_out, [the record's
values in the record's order]]`` (msgspec), a book side a list of ``[price, amount]``.

The tick sink has each row as a Python tuple already (``TradeRows.rows``, a record's fields), so one
msgspec call per row is the whole cost (about 0.1 µs a trade row beyond making the tuple, against 2.3
µs for the Storage Write API's protobuf message, ``bigquery_client/tick_rows.py``). A batch is decoded
by one call: its rows joined behind a msgpack array header are one array, decoded into the row type made
from the table's columns (typed decoding makes tuples, three times faster than msgspec's untyped lists,
and checks every value's type: a row that does not fit is refused)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pyarrow as pa

from ..bigquery_client.tables import Column, TableSpec
from ..data_types.trades import ROW_FIELDS
from .arrow_schema import arrow_schema
from .codec import LayoutMismatch, layout_id

if TYPE_CHECKING:
    from ..data_types.records import Record
    from ..data_types.trades import TradeRows

OUT = "timestamp_out"


class TickCodec:
    """Rows of one tick table (``tables.tick_tables``): ``records``/``trades`` encode, ``decode``."""

    def __init__(self, table: TableSpec) -> None:
        self.table = table
        self.schema = arrow_schema(table)
        self.layout = layout_id(table, "tick-msgpack-1")
        #: the record's fields, in the record's (and the table's) order: every column but timestamp_out
        self.fields = tuple(c.name for c in table.columns if c.name != OUT)
        self._get = attrgetter(*self.fields)
        self._encode = msgspec.msgpack.Encoder().encode
        values = tuple[tuple(_python_type(c) for c in table.columns if c.name != OUT)]  # type: ignore[misc]
        self._decode = msgspec.msgpack.Decoder(list[tuple[int, int, values]]).decode  # type: ignore[valid-type]

    def records(self, records: Iterable[Record], out_us: int) -> list[bytes]:
        encode, get, layout = self._encode, self._get, self.layout
        return [encode((layout, out_us, get(record))) for record in records]

    def trades(self, trades: TradeRows, out_us: int) -> list[bytes]:
        if self.fields != ROW_FIELDS:
            raise ValueError(f"{self.table.name}: trade rows are {ROW_FIELDS}, not its columns")
        encode, layout = self._encode, self.layout
        return [encode((layout, out_us, row)) for row in trades.rows()]

    def decode(self, rows: Sequence[bytes]) -> pa.Table:
        n = len(rows)
        if not n:
            return self.schema.empty_table()
        joined = b"\xdd" + n.to_bytes(4, "big") + b"".join(rows)
        try:
            decoded = self._decode(joined)
        except msgspec.DecodeError as exc:
            self._check_layouts(joined)
            raise ValueError(f"{self.table.name}: rows that are not tick rows ({exc})") from None
        layouts, outs, values = zip(*decoded, strict=True)
        if set(layouts) != {self.layout}:
            raise LayoutMismatch(f"{self.table.name}: rows made for other columns (another version's)")
        columns = dict(zip(self.fields, zip(*values, strict=True), strict=True))
        columns[OUT] = outs
        arrays = []
        for field in self.schema:
            values_ = columns[field.name]
            if pa.types.is_list(field.type):
                arrays.append(_levels(values_, field.type))
            else:
                arrays.append(pa.array(values_, field.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _check_layouts(self, joined: bytes) -> None:
        """Rows the typed decoder refused: raise :class:`LayoutMismatch` when they are tick rows of
        another layout (a table's rows of another version, or of another table)."""
        try:
            layouts = {row[0] for row in msgspec.msgpack.decode(joined)}
        except (msgspec.DecodeError, TypeError, IndexError, KeyError):
            return
        if layouts != {self.layout}:
            raise LayoutMismatch(f"{self.table.name}: rows made for other columns (another version's)")


_PYTHON = {"STRING": str, "TIMESTAMP": int, "INT64": int, "FLOAT64": float, "BOOL": bool}


def _python_type(column: Column) -> Any:
    """The type msgspec decodes a column's value into."""
    if column.type == "RECORD":
        kind: Any = tuple[tuple(_python_type(f) for f in column.fields)]  # type: ignore[misc]
    else:
        kind = _PYTHON[column.type]
    if column.repeated:
        return tuple[kind, ...]
    return kind if column.required else kind | None


def _levels(sides: Sequence[Sequence[Sequence[float]]], type_: pa.ListType) -> pa.Array:
    """Book sides (``(price, amount)`` levels) as a list<struct<price, amount>> array."""
    struct = type_.value_type
    offsets = np.zeros(len(sides) + 1, np.int32)
    np.cumsum([len(side) for side in sides], out=offsets[1:])
    flat = [level for side in sides for level in side]
    children = [
        pa.array([level[k] for level in flat], struct.field(k).type) for k in range(struct.num_fields)
    ]
    values = pa.StructArray.from_arrays(children, fields=list(struct))
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=type_)
