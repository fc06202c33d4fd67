"""Which ingester session the processor takes frames from, and what it received of each.

A processor accepts frames only from the session it started the ingester with (``expect_new``) or, when
it does not start the ingester itself, from the session whose ``start`` frame came first. Frames of any
other session (an orphaned ingester of an earlier processor feeding a fixed endpoint, say) are refused
and counted by reason; they never reach the candles.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from dataclasses import dataclass, field

from ...wire import Frame

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Tally:
    """What the processor received of one session: frames, and rows by frame type."""

    frames: int = 0
    rows: Counter[str] = field(default_factory=Counter)


class Sessions:
    def __init__(self) -> None:
        self.expected: str | None = None
        self.tallies: dict[str, Tally] = {}
        self.refused: Counter[str] = Counter()  # frames refused, by reason
        self._logged: set[tuple[str, str]] = set()

    def expect_new(self) -> str:
        """A new session id for an ingester this processor starts; only its frames are taken from now on."""
        self.expected = secrets.token_hex(8)
        return self.expected

    def follow(self, session: str) -> None:
        """Take frames of ``session`` from now on: a session whose ``start`` frame is in this processor's
        journal (any ingester journaling there is its own, whoever started it)."""
        self.expected = session

    @property
    def current(self) -> Tally | None:
        return None if self.expected is None else self.tallies.get(self.expected)

    def accept(self, frame: Frame) -> bool:
        """Whether to handle ``frame``; counted either way."""
        session = frame.session
        if self.expected is None:
            if frame.type != "start":
                return self._refuse(frame, "before_start", "no session has started yet")
            self.expected = session
        if session != self.expected:
            return self._refuse(frame, "foreign_session", f"this processor takes session {self.expected}")
        tally = self.tallies.get(session)
        if tally is None:
            if len(self.tallies) >= 64:  # restarts of a live ingester: keep the recent ones
                self.tallies.pop(next(iter(self.tallies)))
            tally = self.tallies[session] = Tally()
        tally.frames += 1
        if frame.n:
            tally.rows[frame.type] += frame.n
        return True

    def _refuse(self, frame: Frame, reason: str, why: str) -> bool:
        self.refused[reason] += 1
        key = (reason, frame.session)
        if key not in self._logged and len(self._logged) < 1000:
            self._logged.add(key)
            log.error(
                "refused a %s frame (seq %s) of ingester session %s: %s; every frame of it is refused and"
                " counted (frames_refused_%s)",
                frame.type,
                frame.header.get("seq"),
                frame.session,
                why,
                reason,
            )
        return False
