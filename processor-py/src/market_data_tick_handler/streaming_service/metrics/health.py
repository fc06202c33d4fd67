"""``/health``: 200 while the pipeline works, 503 with the reasons when it does not (docs/OPERATIONS.md
"Health").

Unhealthy when

- ``stale_stream``: a subscribed stream (exchange, symbol) has had no message for ``health.stale_after_s``
  of wall time. Judged on the wall clock even in a replay (whose candles run on the event clock): what
  matters to an operator is that messages stop coming, not the exchange time they carry. A stream never
  heard from counts from the start.
- ``backlog``: a sink holds more than ``health.backlog_limit_mb`` waiting for its store (memory and spill).
- ``ingester_down``: the ingester this processor started has exited without ending its session (for
  ``EXIT_GRACE_S``: as the service, which reads on that long for the frames it sent before exiting, its
  ``end`` frame among them; until a new one starts), or, one run on its own (``ingest.spawn: false``),
  no frame came for ``health.ingester_silent_s`` (it sends a ledger frame every 10 s even when the market
  is quiet).

A message is seen through the service's counters (``ticks_by_symbol``, ``frames_received``), sampled once a
second by :meth:`Health.sample` (no work per message): a stream's silence is known to a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .collectors import backlog_bytes, sink_targets

if TYPE_CHECKING:
    from ...config import StreamingConfig
    from ..service import StreamingService

EXIT_GRACE_S = 3.0  # the service's INGESTER_DRAIN_S


@dataclass(frozen=True, slots=True)
class Report:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    #: (exchange, symbol) -> seconds since its last message
    silence: dict[tuple[str, str], float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ok" if self.ok else "unhealthy"}
        if not self.ok:
            out["reasons"] = self.reasons
        out["streams"] = {f"{x}:{s}": round(v, 3) for (x, s), v in sorted(self.silence.items())}
        return out


class Health:
    """The three checks; ``clock``: monotonic seconds (tests pass their own)."""

    def __init__(
        self,
        config: StreamingConfig,
        service: StreamingService | None,
        sinks: Callable[[], Iterable[Any]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.service = service
        self.sinks = sinks
        self.clock = clock
        start = clock()
        self.streams: list[tuple[str, str]] = []
        if service is not None:
            self.streams = [(s.exchange, sym.lower()) for s in service.streams for sym in s.symbols]
        self._seen: dict[tuple[str, str], tuple[int, float]] = {k: (0, start) for k in self.streams}
        self._frames = (0, start)
        self._exited: tuple[Any, float] | None = None  # (the ingester, when it was first seen exited)

    def sample(self) -> None:
        """Note which streams and frames moved since the last sample (once a second, on the loop)."""
        service = self.service
        if service is None:
            return
        now = self.clock()
        by_symbol = service.handler.ticks_by_symbol
        for key, (was, _at) in list(self._seen.items()):
            counter = by_symbol.get(f"{key[0]}:{key[1]}") or by_symbol.get(f"{key[0]}:{key[1].upper()}")
            n = sum(counter.values()) if counter is not None else 0
            if n != was:
                self._seen[key] = (n, now)
        frames = service.handler.counts.get("frames_received", 0)
        if frames != self._frames[0]:
            self._frames = (frames, now)
        self._ingester_down(now)  # notes when an ingester is first seen exited

    def report(self) -> Report:
        self.sample()
        now = self.clock()
        h = self.config.health
        reasons: list[str] = []
        silence = {key: now - at for key, (_n, at) in self._seen.items()}
        for (exchange, symbol), seconds in sorted(silence.items()):
            if seconds > h.stale_after_s:
                reasons.append(
                    f"stale_stream: {exchange} {symbol}: no message for {seconds:.0f} s"
                    f" (health.stale_after_s {h.stale_after_s:g})"
                )
        limit = h.backlog_limit_mb * 1_000_000
        for sink in sink_targets(self.sinks()):
            held = backlog_bytes(sink)
            total = held["memory"] + held["disk"]
            if total > limit:
                reasons.append(
                    f"backlog: {sink.name} holds {total} bytes waiting (memory {held['memory']}, disk"
                    f" {held['disk']}), over health.backlog_limit_mb {h.backlog_limit_mb:g}"
                )
        down = self._ingester_down(now)
        if down:
            reasons.append(f"ingester_down: {down}")
        return Report(not reasons, reasons, silence)

    def _ingester_down(self, now: float) -> str | None:
        service = self.service
        if service is None:
            return None
        if self.config.ingest.spawn:
            ingester = service.ingester
            if ingester is None or ingester.returncode is None:
                return None
            if service.end_header is not None or getattr(service, "stop_deadline", None) is not None:
                return None  # its session ended, or the run is stopping: not a failure
            if self._exited is None or self._exited[0] is not ingester:
                self._exited = (ingester, now)
            if now - self._exited[1] <= EXIT_GRACE_S:
                return None  # its last frames (the end frame) may still be on their way
            return f"the ingester exited with code {ingester.returncode} without ending its session"
        silent = now - self._frames[1]
        if silent > self.config.health.ingester_silent_s:
            return (
                f"no frame from the ingester (ingest.spawn: false) for {silent:.0f} s"
                f" (health.ingester_silent_s {self.config.health.ingester_silent_s:g})"
            )
        return None
