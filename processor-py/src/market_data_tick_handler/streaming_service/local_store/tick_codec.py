"""Tick rows for the local store: a row is the msgpack array ``[layout id, timestamp_out, [the record's
values in the record's order]]`` (msgspec), a book side a list of ``[price, amount]``.

The tick sink has each row as a Python tuple already (``TradeRows.rows``, a record's fields), so one
msgspec call per row is the whole cost (about 0.3 µs a trade row, against 2.3 µs for the Storage Write
API's protobuf message, ``bigquery_client/tick_rows.py``). A batch is decoded by one call: its rows
joined behind a msgpack array header are one array."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

import msgspec
import numpy as np
import pyarrow as pa

from ..bigquery_client.tables import TableSpec
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
        self._decode = msgspec.msgpack.Decoder().decode

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
        try:
            decoded = self._decode(b"\xdd" + n.to_bytes(4, "big") + b"".join(rows))
        except msgspec.DecodeError as exc:
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


def _levels(sides: Sequence[list[list[float]]], type_: pa.ListType) -> pa.Array:
    """Book sides (lists of ``[price, amount]``) as a list<struct<price, amount>> array."""
    struct = type_.value_type
    offsets = np.zeros(len(sides) + 1, np.int32)
    np.cumsum([len(side) for side in sides], out=offsets[1:])
    flat = [level for side in sides for level in side]
    children = [
        pa.array([level[k] for level in flat], struct.field(k).type) for k in range(struct.num_fields)
    ]
    values = pa.StructArray.from_arrays(children, fields=list(struct))
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=type_)
