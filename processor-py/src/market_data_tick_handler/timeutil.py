"""Timestamps: integers of microseconds since the Unix epoch (UTC) inside; ISO 8601 with microseconds
and a ``Z`` outside."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1)


def now_us() -> int:
    return time.time_ns() // 1000


def iso_us(us: int) -> str:
    """``1723161255342000`` -> ``'2024-08-09T00:00:55.342000Z'`` (exact, no float rounding)."""
    return (_EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds") + "Z"


def parse_iso_us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
