"""The wire format shared with ingest-node: see proto/README.md."""

from .codec import Frame, StrColumn, WireError, decode_frame, encode_frame, frame_rows, rows_to_columns
from .schema import INT64_MISSING, WireSchema, load_schema

__all__ = [
    "INT64_MISSING",
    "Frame",
    "StrColumn",
    "WireError",
    "WireSchema",
    "decode_frame",
    "encode_frame",
    "frame_rows",
    "load_schema",
    "rows_to_columns",
]
