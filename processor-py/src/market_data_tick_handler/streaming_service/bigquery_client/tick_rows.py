"""Ticks as rows in the Storage Write API's wire form: per row a serialised proto2 message of a type built
at run time from a tick table's columns (``tables.tick_columns``), one optional field per column (number
= position + 1; a null is a field left out), a repeated message field for a book side's levels. TIMESTAMP
columns are int64 µs since the epoch, as BigQuery reads them from a proto.

A row is one protobuf message object, filled and serialised (upb: about 2.3 µs a trade row, 1.3 µs a gap
row, measured here), in the tick sink's ``accept`` (through its sink's ``encode_trades`` and
``encode_records``: ``TickEncoders``, one encoder per table): unlike the candle rows (``proto_rows.py``,
one compiled pass per part) this is not compiled yet, and it costs the processor's loop only when the
tick sink runs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from ..data_types.trades import ROW_FIELDS
from .tables import Column, TableSpec

if TYPE_CHECKING:
    from ..data_types.records import Record
    from ..data_types.trades import TradeRows

_Field = descriptor_pb2.FieldDescriptorProto
_PROTO_TYPES = {
    "STRING": _Field.TYPE_STRING,
    "TIMESTAMP": _Field.TYPE_INT64,
    "FLOAT64": _Field.TYPE_DOUBLE,
    "INT64": _Field.TYPE_INT64,
    "BOOL": _Field.TYPE_BOOL,
}


def _add_fields(message: descriptor_pb2.DescriptorProto, columns: Iterable[Column]) -> None:
    """A field per column; a RECORD's type nested in ``message`` and named relative to it (the
    descriptor is read on its own, outside any package)."""
    for number, column in enumerate(columns, 1):
        if column.type == "RECORD":
            nested = message.nested_type.add(name=column.name.capitalize())
            _add_fields(nested, column.fields)
            message.field.add(
                name=column.name,
                number=number,
                type=_Field.TYPE_MESSAGE,
                type_name=nested.name,
                label=_Field.LABEL_REPEATED if column.repeated else _Field.LABEL_OPTIONAL,
            )
        else:
            message.field.add(
                name=column.name,
                number=number,
                type=_PROTO_TYPES[column.type],
                label=_Field.LABEL_REPEATED if column.repeated else _Field.LABEL_OPTIONAL,
            )


class TickEncoder:
    """``records(records, out_us)`` / ``trades(rows, out_us)`` -> the serialised rows; ``descriptor`` is
    the ``writer_schema`` of an append (self-contained: the levels' type is nested in it)."""

    def __init__(self, table: str, columns: tuple[Column, ...]) -> None:
        file = descriptor_pb2.FileDescriptorProto(name=f"{table}.proto", package="mdth", syntax="proto2")
        self.descriptor = file.message_type.add(name="Row")
        _add_fields(self.descriptor, columns)
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        self._message = message_factory.GetMessageClass(pool.FindMessageTypeByName("mdth.Row"))
        self._fields = tuple(c.name for c in columns if c.name != "timestamp_out")
        self._levels = tuple(c.name for c in columns if c.type == "RECORD")
        self._level_of = {
            name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"mdth.Row.{name.capitalize()}"))
            for name in self._levels
        }

    def records(self, records: Iterable[Record], out_us: int) -> list[bytes]:
        """A row per record: its fields (a None left out) and ``timestamp_out`` ``out_us``."""
        make, names, levels = self._message, self._fields, self._levels
        rows = []
        for record in records:
            values: dict[str, Any] = {"timestamp_out": out_us}
            for name in names:
                value = getattr(record, name)
                if value is None:
                    continue
                if name in levels:
                    level = self._level_of[name]
                    value = [level(price=p, amount=a) for p, a in value]
                values[name] = value
            rows.append(make(**values).SerializeToString())
        return rows

    def trades(self, trades: TradeRows, out_us: int) -> list[bytes]:
        """A row per kept row of a trade frame, in frame order."""
        make = self._message
        return [
            make(**dict(zip(ROW_FIELDS, row, strict=True)), timestamp_out=out_us).SerializeToString()
            for row in trades.rows()
        ]


class TickEncoders:
    """The ``TickEncoder`` of each tick table a sink writes, made when first asked for."""

    def __init__(self) -> None:
        self._by_table: dict[tuple[str, str], TickEncoder] = {}

    def of(self, table: TableSpec) -> TickEncoder:
        key = (table.dataset, table.name)
        encoder = self._by_table.get(key)
        if encoder is None:
            encoder = self._by_table[key] = TickEncoder(table.name, table.columns)
        return encoder
