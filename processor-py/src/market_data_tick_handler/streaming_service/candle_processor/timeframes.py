"""Candle timeframes: names like ``15s``, ``1m``, ``4h``, ``24h`` and their length in microseconds.

Buckets are aligned to the UTC epoch: a candle of length ``d`` starts at ``floor(t / d) * d``.
The smallest configured timeframe is the *base*: trades are aggregated into base candles, and the
longer timeframes are rolled up from closed base candles. That is exact because every timeframe must
be a whole multiple of the base, so every longer boundary is also a base boundary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_UNITS_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_PATTERN = re.compile(r"^(\d+)([smhd])$")


@dataclass(frozen=True, slots=True, order=True)
class Timeframe:
    micros: int
    name: str

    @classmethod
    def parse(cls, name: str) -> Timeframe:
        match = _PATTERN.match(name.strip())
        if not match or int(match.group(1)) == 0:
            raise ValueError(
                f"bad timeframe {name!r}: expected a positive number and s, m, h or d (e.g. 15s, 1m, 4h)"
            )
        return cls(int(match.group(1)) * _UNITS_US[match.group(2)], name.strip())

    def bucket_start(self, t_us: int) -> int:
        return t_us - t_us % self.micros

    def __str__(self) -> str:
        return self.name


def parse_timeframes(names: Iterable[str]) -> tuple[Timeframe, ...]:
    """Parse, sort and check that every timeframe is a multiple of the smallest one."""
    frames = sorted({Timeframe.parse(n) for n in names})
    if not frames:
        raise ValueError("no candle timeframes configured")
    base = frames[0]
    for tf in frames[1:]:
        if tf.micros % base.micros:
            raise ValueError(f"timeframe {tf.name} is not a multiple of the smallest timeframe {base.name}")
    return tuple(frames)
