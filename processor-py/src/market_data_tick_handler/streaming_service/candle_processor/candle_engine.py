"""The clock that closes candles, for all instruments of one exchange.

A candle is closed by the clock, never by the next trade of its own instrument:

- ``wall``: live. A base bucket ``[s, e)`` closes when the wall clock reaches ``e + grace``.
- ``event``: replays and historical batches. The clock is the highest exchange timestamp seen on the
  exchange; ``[s, e)`` closes when it reaches ``e + grace``. Inside a wire frame the trades are cut at
  that point, so a trade that moves the clock past a boundary closes the bucket before it is applied.

A trade whose bucket is already closed is *late*: counted, and dropped or used to revise the candle
(``late_policy``). Quiet instruments still get one (empty) candle per bucket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np

from ..instrument_service import InstrumentMapper
from .candle import Candle, CandleBuilder
from .live_candle_processor import DEFAULT_TIMEFRAMES, LatePolicy, LiveCandleProcessor
from .timeframes import parse_timeframes
from .trade_groups import group_trades

ClockMode = Literal["wall", "event"]
_NO_SUMS = (0.0, 0.0, 0.0, 0.0)


def wall_clock_us() -> int:
    return time.time_ns() // 1000


class CandleEngine:
    def __init__(
        self,
        exchange: str,
        timeframes: Iterable[str] = DEFAULT_TIMEFRAMES,
        clock: ClockMode = "event",
        grace_us: int = 0,
        late_policy: LatePolicy = "drop",
        revise_window: int = 4,
        symbol_of: Callable[[str, str], str] | None = None,
        now_us: Callable[[], int] = wall_clock_us,
    ) -> None:
        if clock not in ("wall", "event"):
            raise ValueError(f"clock must be 'wall' or 'event', not {clock!r}")
        self.exchange = exchange
        self.timeframe_names = tuple(timeframes)
        self.base_us = parse_timeframes(self.timeframe_names)[0].micros
        if grace_us < 0 or grace_us >= self.base_us:
            raise ValueError(f"grace must be at least 0 and below the smallest timeframe ({self.base_us} us)")
        self.clock_mode = clock
        self.grace_us = grace_us
        self.late_policy = late_policy
        self.revise_window = revise_window
        self._symbol_of = symbol_of or InstrumentMapper().to_symbol
        self._now_us = now_us
        self.processors: dict[str, LiveCandleProcessor] = {}
        self.clock_us: int | None = None  # event time reached (event mode) or last wall time seen
        self.closed_through: int | None = None
        self.observed_from: int | None = None
        self.pending_gaps: list[str] = []  # symbols whose gap waits for the next tick to end it
        if clock == "wall":
            now = now_us()
            self.observed_from = now
            self.closed_through = self._boundary(now - grace_us)

    def _boundary(self, t: int) -> int:
        return t - t % self.base_us

    def processor(self, exchange_symbol: str) -> LiveCandleProcessor:
        p = self.processors.get(exchange_symbol)
        if p is None:
            p = LiveCandleProcessor(
                self._symbol_of(self.exchange, exchange_symbol),
                exchange=self.exchange,
                exchange_symbol=exchange_symbol,
                timeframes=self.timeframe_names,
                late_policy=self.late_policy,
                revise_window=self.revise_window,
            )
            p.observed_from = self.observed_from
            if self.closed_through is not None:
                p.close_until(self.closed_through)
            self.processors[exchange_symbol] = p
        return p

    # -- input ---------------------------------------------------------------------------------
    def on_trades(
        self,
        symbols: Sequence[str],
        sym: np.ndarray,
        ts: np.ndarray,
        price: np.ndarray,
        amount: np.ndarray,
        side: np.ndarray,
    ) -> list[Candle]:
        """Apply a batch of trades (``sym`` indexes ``symbols``) and return every candle it closed or
        revised, in order. Rows must already be valid (see ``TickHandler``)."""
        n = len(ts)
        if n == 0:
            return []
        out: list[Candle] = []
        if self.pending_gaps:
            self._end_gaps(int(ts.min()))
        if self.clock_mode == "wall":
            self._apply(symbols, sym, ts, price, amount, side, out)
            return out
        if self.clock_us is None:
            first = int(ts[0])
            self.clock_us = self.observed_from = first
            self.closed_through = self._boundary(first)
            for p in self.processors.values():
                p.observed_from = first
        running = np.maximum.accumulate(ts)
        np.maximum(running, self.clock_us, out=running)
        i = 0
        while i < n:
            deadline = self.closed_through + self.base_us + self.grace_us  # type: ignore[operator]
            j = int(np.searchsorted(running, deadline, side="left"))
            if j > i:
                self._apply(symbols, sym[i:j], ts[i:j], price[i:j], amount[i:j], side[i:j], out)
            if j >= n:
                break
            self.clock_us = int(running[j])
            self._close_until(self._boundary(self.clock_us - self.grace_us), out)
            i = j
        self.clock_us = int(running[-1])
        return out

    def _apply(self, symbols, sym, ts, price, amount, side, out: list[Candle]) -> None:
        groups = group_trades(sym, ts, price, amount, side, self.base_us)
        builder_of: dict[int, Callable[[int], CandleBuilder | None]] = {}
        builders: list[CandleBuilder | None] = []
        seeds: list[tuple[float, float, float, float]] = []
        for index, start in zip(groups.sym, groups.bucket_start, strict=True):
            open_builder = builder_of.get(index)
            if open_builder is None:
                open_builder = builder_of[index] = self.processor(symbols[index]).open_builder
            builder = open_builder(start)
            builders.append(builder)
            seeds.append(_NO_SUMS if builder is None else builder.sums)
        sums = groups.seeded_sums(np.array(seeds)).tolist()
        rows = zip(
            builders,
            groups.open,
            groups.high,
            groups.low,
            groups.close,
            groups.count,
            groups.first_ts,
            groups.last_ts,
            sums,
            strict=True,
        )
        for k, (builder, o, h, lo, c, n, first, last, total) in enumerate(rows):
            if builder is not None:
                builder.update(o, h, lo, c, n, first, last, total)
            else:
                p = self.processor(symbols[groups.sym[k]])
                out.extend(p.add_late(groups.bucket_start[k], o, h, lo, c, n, first, last, tuple(total)))

    def on_disconnect(self, exchange_symbols: Iterable[str], local_us: int) -> None:
        """The connection carrying these symbols dropped: data is missing from now until the next tick."""
        start = self.clock_us if self.clock_mode == "event" and self.clock_us is not None else local_us
        for s in exchange_symbols:
            self.processor(s).open_gap(start)
            self.pending_gaps.append(s)

    def _end_gaps(self, t: int) -> None:
        for s in self.pending_gaps:
            self.processors[s].close_gaps(t)
        self.pending_gaps.clear()

    # -- clock ---------------------------------------------------------------------------------
    def next_deadline_us(self) -> int | None:
        """Wall time at which the next bucket closes (wall mode), else None."""
        if self.clock_mode != "wall" or self.closed_through is None:
            return None
        return self.closed_through + self.base_us + self.grace_us

    def advance(self, now_us: int | None = None) -> list[Candle]:
        """Wall mode: close what the wall clock has passed. Event mode: nothing (trades drive it)."""
        out: list[Candle] = []
        if self.clock_mode == "wall":
            now = self._now_us() if now_us is None else now_us
            self.clock_us = now
            self._close_until(self._boundary(now - self.grace_us), out)
        return out

    def _close_until(self, t: int, out: list[Candle]) -> None:
        if self.closed_through is not None and t <= self.closed_through:
            return
        self.closed_through = t
        for p in self.processors.values():
            out.extend(p.close_until(t))

    def finish(self) -> list[Candle]:
        """End of stream: close everything still open (see ``LiveCandleProcessor.finish``)."""
        out: list[Candle] = []
        clock = self.clock_us if self.clock_us is not None else self._now_us()
        for p in self.processors.values():
            out.extend(p.finish(clock))
        return out

    def get_stats(self) -> dict:
        return {
            "exchange": self.exchange,
            "clock": self.clock_mode,
            "clock_us": self.clock_us,
            "closed_through": self.closed_through,
            "symbols": len(self.processors),
        }
