"""What the compiled writers of messages (``candle_json.py``) and rows (``bigquery_client/proto_rows.py``)
share: constant byte strings handed to numba as one buffer with offsets, and the copy of a piece of it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit


def packed(pieces: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Byte strings as one uint8 buffer and their offsets (``len(pieces) + 1``)."""
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in pieces], out=offsets[1:])
    return np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets


@njit(cache=True, inline="always")
def copy_into(out, at, src, start, stop):
    """``src[start:stop]`` into ``out`` at ``at``; returns the position after it."""
    for k in range(start, stop):
        out[at] = src[k]
        at += 1
    return at
