"""The backfill's progress bar on stderr: days (files) done, trades, trades/s and the time left.

Elapsed time and trades/s count from :meth:`Progress.start`, when the first symbol's processor is ready
(its compiled kernels loaded, the tables made); the last line says how long that start-up took. On a
terminal one line is redrawn in place (``\\r``) at most 5 times a second; otherwise (a log file, a
pipe) a plain line is written every ``every_s`` seconds, and one at the end. The time left is estimated
from the bytes of input still to read at the rate so far.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


@dataclass(slots=True)
class Progress:
    total_days: int
    total_bytes: int
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    every_s: float = 5.0
    days: int = 0
    trades: int = 0
    bad_rows: int = 0
    bytes_done: int = 0
    started: float = field(default_factory=time.monotonic)
    #: seconds from this object's making to :meth:`start` (imports done: tables, compiled kernels)
    startup_s: float | None = None
    _shown: float = 0.0
    _tty: bool | None = None
    _width: int = 0

    def start(self) -> None:
        """The work begins: elapsed time and trades/s count from now (the first call; later ones, of the
        next symbols, change nothing). The start-up before is shown apart, in the last line."""
        if self.startup_s is None:
            now = time.monotonic()
            self.startup_s, self.started = now - self.started, now

    @property
    def tty(self) -> bool:
        if self._tty is None:
            isatty = getattr(self.stream, "isatty", None)
            self._tty = bool(isatty and isatty())
        return self._tty

    def line(self, symbol: str = "") -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.trades / elapsed
        left = "--:--"
        if self.bytes_done and self.total_bytes > self.bytes_done:
            left = _duration(elapsed * (self.total_bytes - self.bytes_done) / self.bytes_done)
        elif self.total_bytes and self.bytes_done >= self.total_bytes:
            left = "00:00"
        bad = f" bad rows {self.bad_rows:,}" if self.bad_rows else ""
        what = f" {symbol}" if symbol else ""
        return (
            f"backfill{what}: days {self.days}/{self.total_days}, trades {self.trades:,},"
            f" {rate:,.0f} trades/s, elapsed {_duration(elapsed)}, ETA {left}{bad}"
        )

    def update(self, symbol: str = "", force: bool = False, last: bool = False) -> None:
        now = time.monotonic()
        interval = 0.2 if self.tty else self.every_s
        if not force and now - self._shown < interval:
            return
        self._shown = now
        text = self.line(symbol)
        if last and self.startup_s is not None:
            text += f" (after a start-up of {self.startup_s:.2f} s: tables, compiled kernels)"
        if self.tty:
            pad = " " * max(0, self._width - len(text))
            self._width = len(text)
            self.stream.write(f"\r{text}{pad}")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self, symbol: str = "") -> None:
        self.update(symbol, force=True, last=True)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
