"""The local store's rows as bytes: each row of a ``RowBatch`` stays one ``bytes`` (the backlog, the spill
to disk and the checkpoints keep them so), made when the row is handed over and decoded a batch at a
time into an Arrow table when the batch is written.

Two forms, chosen by measurement (docs/ARCHITECTURE.md "The local store"):

- candle rows (``candle_codec.py``): the numbers of a row as fixed 8-byte words straight from the
  block's columns (one numpy matrix per block, cut into rows), then the row's names as text: about as
  cheap in the processor's loop as the Storage Write API's rows, and decoded by one ``frombuffer``;
- tick rows (``tick_codec.py``): a msgpack array (msgspec) of the record's values, which the tick sink
  has as a Python tuple anyway; a batch is decoded by one call, its rows joined under one array header.

Each row carries its layout's id (a CRC of the table's columns and the form): a row made for other
columns (rows kept on disk across an upgrade that changed a table) is refused with a clear error
instead of being written into the wrong columns."""

from __future__ import annotations

import zlib

from ..bigquery_client.tables import TableSpec


class LayoutMismatch(ValueError):
    """Rows made for other columns than the table's."""


def layout_id(table: TableSpec, form: str) -> int:
    """A 31-bit id of the table's columns (names, types, modes, in order) and of the row form."""
    text = ";".join(f"{c.name}:{c.type}:{c.mode}" for c in table.columns)
    return zlib.crc32(f"{form}|{text}".encode()) & 0x7FFFFFFF
