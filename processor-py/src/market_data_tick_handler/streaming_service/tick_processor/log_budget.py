"""A budget of log lines per window of wall time, for events that can come by the thousand (a gap per
quiet symbol: 1,000 symbols at a few trades a second report about 30 a second).

The first ``lines`` events of a window are logged one by one; the rest are counted by kind, and the
first event after the window says how many were left out, by kind. Nothing is lost: every event is
counted where it always was (the gaps' counters, ``--stats-json``, the metrics); only its line is
spared."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable


class LogBudget:
    def __init__(
        self,
        log: logging.Logger,
        what: str,
        lines: int = 20,
        window_s: float = 60.0,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.log, self.what, self.lines, self.window_s = log, what, lines, window_s
        self._now = now if now is not None else time.monotonic
        self._start: float | None = None
        self._used = 0
        self._left_out: Counter[str] = Counter()

    def allow(self, kind: str) -> bool:
        """Whether an event of ``kind`` may be logged now; if not, it is counted as left out."""
        now = self._now()
        if self._start is None or now - self._start >= self.window_s:
            self._report()
            self._start, self._used = now, 0
        if self._used < self.lines:
            self._used += 1
            return True
        self._left_out[kind] += 1
        return False

    def _report(self) -> None:
        if not self._left_out:
            return
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self._left_out.items()))
        self.log.warning(
            "%d more %s lines not logged in the last %.0f s (%s): %d a window at most; all are counted",
            self._left_out.total(),
            self.what,
            self.window_s,
            kinds,
            self.lines,
        )
        self._left_out.clear()

    def __getstate__(self) -> dict:  # (the frame router is pickled whole in checkpoints)
        return {"log": self.log.name, "what": self.what, "lines": self.lines, "window_s": self.window_s}

    def __setstate__(self, state: dict) -> None:
        self.__init__(logging.getLogger(state["log"]), state["what"], state["lines"], state["window_s"])
