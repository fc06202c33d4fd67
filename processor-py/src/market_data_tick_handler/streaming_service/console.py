"""Human-readable output: a live candle table (a sink: ``--print-candles``) and the end-of-run summary."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import orjson

from ..config import StreamingConfig
from . import ledger
from .messages import candle_payloads
from .sinks import FrameOutput, Sink

_COLUMNS = (
    f"{'exchange':<16} {'symbol':<14} {'tf':>4} {'bucket start (UTC)':<26} {'open':>12} {'high':>12}"
    f" {'low':>12} {'close':>12} {'volume':>12} {'trades':>7} {'vwap':>12}"
)


class CandleTable:
    """Prints candle messages (the JSON form, see ``messages.py``) as table rows: those it is called with
    (a reader's), or, as a sink, those of each frame's output; only those of ``timeframes`` when given.
    With ``features``, one column per named ``hft_features`` value before the flags (``-`` when null or
    when the candle has no features)."""

    name = "console"

    def __init__(
        self, out: TextIO = sys.stdout, timeframes: set[str] | None = None, features: Sequence[str] = ()
    ) -> None:
        self.out = out
        self.timeframes = timeframes
        self.features = tuple(features)
        self.rows = 0
        self._header = _COLUMNS + "".join(f" {name:>{_width(name)}}" for name in self.features) + "  flags"

    @classmethod
    def from_config(cls, config: StreamingConfig, option: str | None = None) -> CandleTable:
        """``option``: ``all`` (or None), or the timeframes to print, comma-separated (``15s,1m``)."""
        return cls(timeframes=None if option in (None, "all") else set(option.split(",")))

    async def start(self) -> None:
        return None

    async def accept(self, output: FrameOutput) -> None:
        for batch in output.batches:
            for block, payloads in candle_payloads(batch, output.stamps):
                if self.timeframes is None or block.columns.timeframe in self.timeframes:
                    for payload in payloads:
                        self(orjson.loads(payload))

    async def close(self) -> None:
        return None

    def get_stats(self) -> dict[str, Any]:
        return {"candles_printed": self.rows}

    def progress_line(self) -> str | None:
        return None

    def summary_lines(self) -> list[str]:
        return []

    def ledger_entries(self, handed: Mapping[str, int]) -> list[ledger.Entry]:
        return []  # a view of what the other sinks deliver: nothing is owed to it

    def durable_through(self) -> int | None:
        return None  # printed is as done as it gets

    def checkpoint_state(self) -> Any:
        return self.rows

    async def restore(self, state: Any, durable_through: int | None) -> None:
        if state is not None:
            self.rows = state  # what the journal replays is printed again: the console is not a store

    async def recovered(self) -> None:
        return None

    def __call__(self, message: dict[str, Any]) -> None:
        if self.timeframes is not None and message["timeframe"] not in self.timeframes:
            return
        c = message["candle"]
        if self.rows % 40 == 0:
            print(self._header, file=self.out)
        self.rows += 1
        flags = ",".join(
            name
            for name, on in (
                ("empty", c["is_empty"]),
                ("gap", c["has_gap"]),
                ("partial", c["is_partial"]),
                (f"rev{c['revision']}", c["revision"]),
            )
            if on
        )
        vwap = f"{c['vwap']:12.2f}" if c["vwap"] is not None else f"{'-':>12}"
        values = message.get("hft_features") or {}
        features = "".join(f" {_feature(values.get(name)):>{_width(name)}}" for name in self.features)
        print(
            f"{message['exchange']:<16} {message['symbol']:<14} {message['timeframe']:>4}"
            f" {message['timestamp_in']:<26} {c['open']:12.2f} {c['high']:12.2f} {c['low']:12.2f}"
            f" {c['close']:12.2f} {c['volume']:12.5f} {c['trade_count']:7d} {vwap}{features}  {flags}",
            file=self.out,
            flush=True,
        )


def _width(feature: str) -> int:
    return max(10, len(feature))


def _feature(value: float | None) -> str:
    """Prices to the cent; smaller values (RSI, ratios, volatilities) to 6 significant digits."""
    if value is None:
        return "-"
    return f"{value:.2f}" if abs(value) >= 100 else f"{value:.6g}"


def summary_lines(stats: dict[str, Any], sinks: Sequence[Sink] = ()) -> list[str]:
    """The end-of-run summary of the service's ``get_stats``, each sink's lines, then the ledger."""
    counts = stats["counts"]
    lines = [
        f"frames received     {counts.get('frames', 0)} (lost {counts.get('frames_lost', 0)},"
        f" undecodable {counts.get('bad_frames', 0)})",
        f"trades              {stats['ticks_by_type'].get('trade', 0)}"
        f" (bad rows dropped {counts.get('bad_trades', 0)}, late {stats['late_ticks']})",
        f"disconnects         {counts.get('disconnects', 0)}",
        f"candles closed      {counts.get('candles_out', 0)}",
    ]
    per_tf: dict[str, int] = {}
    for engine in stats.get("candles_by_timeframe", {}).values():
        for tf, k in engine.items():
            per_tf[tf] = per_tf.get(tf, 0) + k
    if per_tf:
        lines.append("  by timeframe      " + ", ".join(f"{tf}: {k}" for tf, k in per_tf.items()))
    others = {k: v for k, v in stats["ticks_by_type"].items() if k not in ("trade", "disconnect")}
    if others:
        lines.append("other ticks         " + ", ".join(f"{k}: {v}" for k, v in others.items()))
    if stats.get("records_by_type"):
        bad = {k: v for k, v in stats.get("bad_rows", {}).items() if k != "trade"}
        lines.append(
            "records             "
            + ", ".join(f"{k}: {v}" for k, v in stats["records_by_type"].items())
            + (f" (bad rows dropped: {', '.join(f'{k} {v}' for k, v in bad.items())})" if bad else "")
        )
    if "gaps" in stats:
        lines.append("gaps                " + ", ".join(f"{k} {v}" for k, v in stats["gaps"].items()))
    for sink in sinks:
        lines += sink.summary_lines()
    if stats.get("ledger"):
        entries = [ledger.from_dict(d) for d in stats["ledger"]]
        bad = sum(not e.ok for e in entries)
        lines += ["", f"ledger: every input accounted for{'' if not bad else f' EXCEPT {bad} LINE(S)'}"]
        lines += ledger.table(entries)
    return lines
