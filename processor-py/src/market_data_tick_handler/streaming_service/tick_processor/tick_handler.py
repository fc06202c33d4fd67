"""``TickHandler``: the public face of the frame router (``frame_router.py``, which does the work: wire
frames in, closed candles and records out), with the seeds' two calls on top: :meth:`TickHandler.process_tick`
takes one tick of any data type as a dict and runs it through the same path (as the columns of a one-row
frame, ``ticks.py``), and :meth:`TickHandler.get_stats` says what happened so far (docs/DATA_TYPES.md
"Monitoring")."""

from __future__ import annotations

from typing import Any

from .frame_router import CandleSettings, FrameResult, FrameRouter
from .ticks import tick_frame

__all__ = ["CandleSettings", "FrameResult", "TickHandler"]


class TickHandler(FrameRouter):
    last_result: FrameResult | None = None  # of the last process_tick

    async def process_tick(self, tick: dict[str, Any]) -> bool:
        """Process one normalized tick given as a dict (``ticks.py``): ``type`` is a data type (``trades``,
        ``book_snapshots``, ``derivative_ticker``, ``liquidations``, ``options_chain``) or tardis' type
        name (``trade``, ``book_snapshot``, ``liquidation``, ``option_summary``); fields in tardis'
        normalized names (``price``, ``bids: [{price, amount}]``, ``fundingRate``, ``strikePrice``, ...)
        or the wire's. Returns False, with the reason logged and counted, when the tick is not valid; the
        records and candles it produced are in ``last_result``."""
        try:
            seq = self.counts["single_ticks"]
            frame = tick_frame(tick, seq, self._schema, self.mapper, self.clock.now_us)
        except (KeyError, ValueError, TypeError, IndexError, OverflowError) as exc:
            self.counters.error("bad_ticks", f"bad tick {tick!r}: {exc}")
            return False
        self.counts["single_ticks"] += 1
        before = sum(self.bad_rows.values())
        self.last_result = self.handle_frame(frame)
        return sum(self.bad_rows.values()) == before

    def get_stats(self) -> dict[str, Any]:
        engines = {name: e.get_stats() for name, e in self.engines.items()}
        late = sum(e["late_ticks"] for e in engines.values())
        return {
            "counts": dict(self.counts),
            "ticks_by_type": dict(self.ticks_by_type),
            "ticks_by_symbol": {k: dict(v) for k, v in self.ticks_by_symbol.items()},
            "records_by_type": dict(self.records_by_type),
            "bad_rows": dict(self.bad_rows),
            "drops": {
                "bad_rows": sum(self.bad_rows.values()),
                "bad_frames": self.counts.get("bad_frames", 0),
                "late": sum(e["late_dropped"] for e in engines.values()),
                "ahead": sum(e["ahead_dropped"] for e in engines.values()),
                "jump": sum(e["jump_dropped"] for e in engines.values()),
                **dict(self.drops),
            },
            "frame_ledger": self.frame_ledger(),
            "row_ledger": self.row_ledger(),
            "late_ticks": late,
            "gaps": {**self.gaps.opened, "open": self.gaps.open_gaps},
            "engines": engines,
            "features": self.features.stats,
            "recent_errors": list(self.errors),
        }
