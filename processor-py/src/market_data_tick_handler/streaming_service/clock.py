"""Time, injected: the candle engines (``candle_processor/candle_engine.py``) and the gap tracker
(``data_types/gaps.py``) read it from one :class:`Clock` object instead of branching on a mode.

- :class:`WallClock` (live): time is the system's. Nothing but itself moves it, so it has a timer: a
  component says when it next needs to look (``deadline_us``: a bucket to close, a symbol going stale),
  the service sleeps until the earliest, and ``timer_now`` is the time the timer fires at. A message
  counts as heard from when it arrives (``received_us``).
- :class:`EventClock` (replays, historical batches): time is the exchange's, as the frames bring it. Each
  exchange's candle engine moves it (``set_time``: the exchange time the engine has reached, under the
  jump rule of ``candle_engine.py``, whose parameters are this clock's), and the gap tracker reads how far
  ahead of it a message may be and still count (``horizon_us``). It has no timer.

Both give the wall time (``now_us``) for what is stamped at the moment it is made (a gap record's
``local_timestamp``), and the time each exchange has reached (``time_us``). :func:`make_clock` builds one
from the configuration's ``candles.clock`` (``wall`` or ``event``; ``auto`` is resolved by the service).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from ..timeutil import now_us

DEFAULT_MAX_JUMP_US = 60_000_000  # event clock: a trade further ahead must be confirmed (candle_engine.py)
DEFAULT_JUMP_CONFIRM = 2  # ... by this many further trades at least as far ahead
_I64_MAX = np.iinfo(np.int64).max


def past_reach(ts: np.ndarray, clock: int, jump: int) -> tuple[np.ndarray, np.ndarray]:
    """The jump rule's first step over trades in arrival order (``candle_engine.py``, and the gap tracker):
    which of them are more than ``jump`` ahead of both ``clock`` and every trade before them, and the
    running maximum of ``ts`` (the clock after the trades before the first such one)."""
    run = np.maximum.accumulate(ts)
    prev = np.empty_like(ts)
    prev[0] = clock
    np.maximum(run[:-1], clock, out=prev[1:])
    return ts > np.minimum(prev, _I64_MAX - jump) + jump, run


class Clock(ABC):
    #: what the stats call it (``candles.clock``)
    name: ClassVar[str]
    #: whether trades move the time (event time) or only the timer does (wall time)
    trades_move_time: ClassVar[bool]

    def __init__(
        self,
        now: Callable[[], int] = now_us,
        max_jump_us: int = DEFAULT_MAX_JUMP_US,
        jump_confirm: int = DEFAULT_JUMP_CONFIRM,
    ) -> None:
        """``now``: the system's time in µs; ``max_jump_us``, ``jump_confirm``: the jump rule of time that
        trades move (``candle_engine.py``): a trade more than ``max_jump_us`` ahead of the time moves it
        only once ``jump_confirm`` further trades confirm it (on the wall clock trades never move it)."""
        if max_jump_us <= 0 or jump_confirm < 1:
            raise ValueError("max_jump_us must be positive and jump_confirm at least 1")
        self._now = now
        self.max_jump_us = max_jump_us
        self.jump_confirm = jump_confirm
        self._times: dict[str, int] = {}

    def now_us(self) -> int:
        """The wall time, in µs since the epoch: for stamps, never for closing candles in event time."""
        return self._now()

    def time_us(self, exchange: str) -> int | None:
        """The time ``exchange``'s candle engine has reached (None before its first)."""
        return self._times.get(exchange)

    def set_time(self, exchange: str, time_us: int | None) -> None:
        """The candle engine of ``exchange`` reached ``time_us`` (None: it starts over, unanchored)."""
        if time_us is None:
            self._times.pop(exchange, None)
        else:
            self._times[exchange] = time_us

    @abstractmethod
    def start_us(self) -> int | None:
        """Where a new candle engine starts: now (wall), or None: its first trade anchors it (event)."""

    @abstractmethod
    def timer_now(self, now: int | None = None) -> int | None:
        """The time a timer firing now reads: ``now`` if given, else the system's (wall); None when frames,
        not a timer, move the time (event)."""

    @abstractmethod
    def deadline_us(self, at: int) -> int | None:
        """When the timer must fire for something due at ``at`` (wall), or None: no timer (event)."""

    @abstractmethod
    def received_us(self) -> int | None:
        """When a message arriving now counts as heard from: now (wall), or None: at its own exchange
        timestamp (event)."""

    @abstractmethod
    def horizon_us(self, exchange: str) -> int | None:
        """The latest exchange time a message of ``exchange`` may carry and still move the time (event),
        or None: no bound."""

    @abstractmethod
    def gap_start_us(self, exchange_time: int | None, local_us: int) -> int:
        """Where a disconnect's gap starts: the exchange time reached (event; ``exchange_time``, None
        when the exchange was never heard from), else the disconnect's own local time, else now."""


class WallClock(Clock):
    name = "wall"
    trades_move_time = False

    def start_us(self) -> int | None:
        return self.now_us()

    def timer_now(self, now: int | None = None) -> int | None:
        return self.now_us() if now is None else now

    def deadline_us(self, at: int) -> int | None:
        return at

    def received_us(self) -> int | None:
        return self.now_us()

    def horizon_us(self, exchange: str) -> int | None:
        return None

    def gap_start_us(self, exchange_time: int | None, local_us: int) -> int:
        return local_us if local_us > 0 else self.now_us()


class EventClock(Clock):
    name = "event"
    trades_move_time = True

    def start_us(self) -> int | None:
        return None

    def timer_now(self, now: int | None = None) -> int | None:
        return None

    def deadline_us(self, at: int) -> int | None:
        return None

    def received_us(self) -> int | None:
        return None

    def horizon_us(self, exchange: str) -> int | None:
        reached = self._times.get(exchange)
        return None if reached is None else reached + self.max_jump_us

    def gap_start_us(self, exchange_time: int | None, local_us: int) -> int:
        if exchange_time is not None:
            return exchange_time
        return local_us if local_us > 0 else self.now_us()


def make_clock(name: str, now: Callable[[], int] = now_us, max_jump_us: int = DEFAULT_MAX_JUMP_US) -> Clock:
    """The clock ``candles.clock`` names (``wall`` or ``event``); ``max_jump_us``: its jump rule."""
    if name == "event":
        return EventClock(now, max_jump_us)
    if name == "wall":
        return WallClock(now, max_jump_us)
    raise ValueError(f"clock must be 'wall' or 'event', not {name!r}")
