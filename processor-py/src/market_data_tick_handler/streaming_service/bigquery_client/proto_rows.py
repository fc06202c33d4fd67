"""Rows in the Storage Write API's wire form: a proto2 message built at run time from a table's columns
(tables.py), one optional field per column, so a null is a field left unset. TIMESTAMP columns are int64
µs since the epoch, as BigQuery reads them from a proto."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .rows import Row
from .tables import Column, ColumnType

_Field = descriptor_pb2.FieldDescriptorProto
_PROTO_TYPES: dict[ColumnType, int] = {
    "STRING": _Field.TYPE_STRING,
    "TIMESTAMP": _Field.TYPE_INT64,
    "FLOAT64": _Field.TYPE_DOUBLE,
    "INT64": _Field.TYPE_INT64,
    "BOOL": _Field.TYPE_BOOL,
}


class RowEncoder:
    """``encode(rows)`` -> serialised messages; ``descriptor`` is the ``writer_schema`` of an append."""

    def __init__(self, columns: tuple[Column, ...]) -> None:
        file = descriptor_pb2.FileDescriptorProto(name="row.proto", package="mdth", syntax="proto2")
        self.descriptor = file.message_type.add(name="Row")
        for number, column in enumerate(columns, 1):
            self.descriptor.field.add(
                name=column.name, number=number, type=_PROTO_TYPES[column.type], label=_Field.LABEL_OPTIONAL
            )
        pool = descriptor_pool.DescriptorPool()
        pool.Add(file)
        self.message = message_factory.GetMessageClass(pool.FindMessageTypeByName("mdth.Row"))

    def encode(self, rows: Iterable[Row]) -> list[bytes]:
        message = self.message
        return [
            message(**{k: v for k, v in row.items() if v is not None}).SerializeToString() for row in rows
        ]
