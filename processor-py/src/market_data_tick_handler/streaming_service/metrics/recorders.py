"""Small recorders the sinks call (per publish, per batch written: never per trade), read by the metrics
collectors at scrape time (``collectors.py``). They need no ``prometheus_client``: a sink holds one only
when metrics are on (``None`` otherwise), and everything runs on the service's event loop, so they take
no locks.

- :class:`Histo`: a histogram of fixed buckets, ``observe(value, n)`` (``n`` observations of one value:
  the candles of one bucket share their close lag).
- :class:`WriteTimer`: a sink's write (publish, append) durations by outcome (``ok``, ``failed``: sent
  again later, ``refused``).
- :class:`CloseLag`: how long after its bucket ended each candle was published, by timeframe.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from ..candle_processor.timeframes import Timeframe

if TYPE_CHECKING:
    from ..candle_processor import CandleBatch

#: seconds: a write to Redis or BigQuery, a turn of the event loop
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: seconds from a bucket's end to its candle published
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
#: bytes of a wire frame
SIZE_BUCKETS = (256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304)

OUTCOMES = ("ok", "failed", "refused")


class Histo:
    """Fixed buckets (upper bounds, ``le``); ``counts[i]``: observations in bucket ``i`` (the last one:
    above every bound)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n
        self.count += n

    def observe_many(self, values: np.ndarray) -> None:
        """Every value of ``values`` once (vectorized: a ring of latencies folded in at a scrape)."""
        if not len(values):
            return
        at = np.searchsorted(np.asarray(self.bounds), values, side="left")
        for i, k in enumerate(np.bincount(at, minlength=len(self.counts)).tolist()):
            self.counts[i] += k
        self.sum += float(values.sum())
        self.count += len(values)

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus' buckets: ``(le, observations at or below it)``, ending with ``+Inf``."""
        out, total = [], 0
        for bound, k in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += k
            out.append(("+Inf" if bound == float("inf") else _le(bound), total))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))


class WriteTimer:
    """One sink's writes: seconds per try, by outcome. ``store``: where it writes (``redis``,
    ``bigquery``, ``local store``, ...)."""

    def __init__(self, sink: str, store: str, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.sink = sink
        self.store = store
        self.by_outcome = {outcome: Histo(bounds) for outcome in OUTCOMES}

    def observe(self, seconds: float, outcome: str) -> None:
        self.by_outcome[outcome].observe(seconds)


class CloseLag:
    """Candle close lag by timeframe: from the end of a candle's bucket to the moment its publish
    returned, on the candles' clock (``now_us(exchange)``: the wall time live; on the event clock of a
    replay, the exchange time the replay has reached). ``observe`` takes a frame's closes: ``(exchange,
    timeframe, bucket end µs, candles)``; revisions are not closes and are left out by the caller."""

    def __init__(self, now_us: Callable[[str], int | None], bounds: Sequence[float] = LAG_BUCKETS) -> None:
        self._now_us = now_us
        self._bounds = bounds
        self.by_timeframe: dict[str, Histo] = {}

    def observe(self, closes: Iterable[tuple[str, str, int, int]]) -> None:
        for exchange, timeframe, end_us, n in closes:
            now = self._now_us(exchange)
            if now is None or not n:
                continue
            histo = self.by_timeframe.get(timeframe)
            if histo is None:
                histo = self.by_timeframe[timeframe] = Histo(self._bounds)
            histo.observe(max(0, now - end_us) / 1e6, n)


def closes_of(batches: Iterable[CandleBatch]) -> list[tuple[str, str, int, int]]:
    """What :meth:`CloseLag.observe` takes, from a frame's candle batches: per part (one timeframe's
    bucket), its exchange, timeframe, bucket end and first versions (revisions left out)."""
    out = []
    for batch in batches:
        for part in batch.parts:
            n = int(np.count_nonzero(part.revision == 0))
            if n:
                out.append((batch.exchange, part.timeframe, part.timestamp_in + _micros(part.timeframe), n))
    return out


@lru_cache(maxsize=64)
def _micros(timeframe: str) -> int:
    return Timeframe.parse(timeframe).micros


#: seconds a load of an exchange's markets takes (the network: up to tens of seconds)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class LoadTimer:
    """The instrument provider's loads of the markets (``LiveInstrumentProvider.load_timer``): seconds
    per load, by ccxt exchange and outcome (``ok``, ``failed``)."""

    def __init__(self, bounds: Sequence[float] = LOAD_BUCKETS) -> None:
        self._bounds = bounds
        self.series: dict[tuple[str, str], Histo] = {}

    def __call__(self, ccxt_exchange: str, seconds: float, outcome: str) -> None:
        histo = self.series.get((ccxt_exchange, outcome))
        if histo is None:
            histo = self.series[(ccxt_exchange, outcome)] = Histo(self._bounds)
        histo.observe(seconds)
