"""The ledger: what went into each stage of the pipeline and where all of it went, checked by the program.

Every message that enters comes out as a candle input, a counted drop or a gap record. The ledger holds
each stage's input against the sum of its outputs (docs/ARCHITECTURE.md "What can be lost, and how you
would know"):

============  =====================================  ==================================================
stage         in                                     accounted for as
============  =====================================  ==================================================
source        frames the replay server sent          raw messages tardis-dev received (replays)
normalize     tardis-dev messages of a type          rows of that type put in frames + ingester drops
wire          frames / rows the ingester sent        frames / rows the processor received
apply         rows of a type received                rows applied + rows dropped, by reason
candles       trades applied                         trades in base candles + late + ahead of the clock
sinks         candles (records) closed               acknowledged + waiting + lost + refused, per sink
============  =====================================  ==================================================

A difference is an :class:`Entry` that is not ``ok``: the service logs it as an ERROR naming the stage
and the numbers, counts it (``ledger_mismatches``) and, for a replay, exits non-zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the ledger: ``expected`` went in, ``parts`` say where it went."""

    stage: str
    what: str
    expected: int
    parts: Mapping[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def accounted(self) -> int:
        return sum(self.parts.values())

    @property
    def ok(self) -> bool:
        return self.expected == self.accounted

    def describe(self) -> str:
        parts = " + ".join(f"{k} {v}" for k, v in self.parts.items()) or "nothing"
        note = f" ({self.note})" if self.note else ""
        return f"{self.stage} {self.what}: {self.expected} in, {self.accounted} accounted for = {parts}{note}"


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def ingester_entries(counts: Mapping[str, Any]) -> list[Entry]:
    """What the ingester says of itself (its end or ledger frame's ``counts``, proto/README.md "Ledger
    counts"): the replay server's frames against what tardis-dev received, and each normalized type against
    its rows (a disconnect: its frames) and drops."""
    out: list[Entry] = []
    raw = counts.get("raw") or {}
    if isinstance(raw, Mapping) and "sent" in raw and "received" in raw:
        out.append(
            Entry(
                "source",
                "raw frames",
                _int(raw["sent"]),
                {"received by tardis-dev": _int(raw["received"])},
                note=(
                    f"recording messages read {_int(raw.get('read'))},"
                    f" not subscribed {_int(raw.get('skipped'))}"
                )
                if "read" in raw
                else "",
            )
        )
    normalized = counts.get("normalized") or {}
    rows = counts.get("rows") or {}
    frames = counts.get("frames_by_type") or {}
    dropped = counts.get("dropped") or {}
    if isinstance(normalized, Mapping) and isinstance(rows, Mapping) and isinstance(frames, Mapping):
        for kind, n in normalized.items():
            drops = {
                reason: _int(k)
                for reason, k in (dropped.items() if isinstance(dropped, Mapping) else ())
                if str(reason).partition(":")[2] == kind  # "<reason>:<type>" (proto/README.md)
            }
            # a disconnect message is one frame (with a row per symbol); a data message is one row
            unit, per_type = ("frames", frames) if kind == "disconnect" else ("rows", rows)
            made = {unit: _int(per_type.get(kind))}
            out.append(Entry("normalize", kind, _int(n), {**made, **drops}))
    return out


def wire_entries(
    counts: Mapping[str, Any], frames_received: int, rows_received: Mapping[str, int]
) -> list[Entry]:
    """The ingester's frames and rows of one session against what the processor received of it. The
    frame that carries ``counts`` is not counted in them (``frames`` = that frame's seq)."""
    out = [Entry("wire", "frames", _int(counts.get("frames")), {"received": frames_received})]
    rows = counts.get("rows") or {}
    if isinstance(rows, Mapping):
        for kind in sorted(set(rows) | set(rows_received)):
            out.append(
                Entry("wire", f"{kind} rows", _int(rows.get(kind)), {"received": rows_received.get(kind, 0)})
            )
    return out


def apply_entries(row_ledger: Mapping[str, Mapping[str, Any]]) -> list[Entry]:
    """Per frame type: rows received against rows applied and dropped by reason."""
    out = []
    for kind, line in row_ledger.items():
        dropped = {f"dropped {reason}": _int(n) for reason, n in (line.get("dropped") or {}).items() if n}
        out.append(
            Entry(
                "apply",
                f"{kind} rows",
                _int(line.get("received")),
                {"applied": _int(line.get("applied")), **dropped},
            )
        )
    return out


def candle_entry(
    candles: Mapping[str, Any], late: int, trades_in_candles: int, base: str, still_open: int = 0
) -> Entry:
    """Trades handed to the candle engines (``candles``: the ``candles`` part of the trade line of
    ``TickHandler.row_ledger``) against the trades in the first version of every published base candle
    (counted by the service from what it published), the late ones (dropped, or revising a candle: a late
    trade is never in a first version, its bucket had closed), those dropped ahead of the clock or at a
    clock jump, those still held for a jump's confirmation, and those in candles still open (a run stopped
    without the ingester's ``end`` frame, which would have closed them)."""
    dropped = candles.get("dropped") or {}
    parts = {
        f"in {base} candles": trades_in_candles,
        "late": late,
        "ahead of the clock": _int(dropped.get("ahead")),
        "clock jump": _int(dropped.get("jump")),
        "held": _int(candles.get("held")),
    }
    if still_open:
        parts["in open candles"] = still_open
    return Entry("candles", "trades", _int(candles.get("received")), parts)


def sink_entry(sink: str, what: str, handed: int, parts: Mapping[str, int]) -> Entry:
    return Entry("sinks", f"{what} to {sink}", handed, dict(parts))


def as_dict(entry: Entry) -> dict[str, Any]:
    """For ``get_stats`` and ``--stats-json``; :func:`from_dict` reads it back."""
    return {
        "stage": entry.stage,
        "what": entry.what,
        "in": entry.expected,
        "accounted": entry.accounted,
        "parts": dict(entry.parts),
        "note": entry.note,
        "ok": entry.ok,
    }


def from_dict(d: Mapping[str, Any]) -> Entry:
    return Entry(d["stage"], d["what"], d["in"], d["parts"], d.get("note", ""))


def table(entries: Iterable[Entry]) -> list[str]:
    """The ledger as a short table: stage, what, in, accounted for (and how), ok or MISMATCH."""
    lines = [f"{'stage':<10} {'what':<28} {'in':>9} {'accounted':>9}  where it went"]
    for e in entries:
        parts = ", ".join(f"{k} {v}" for k, v in e.parts.items() if v or len(e.parts) == 1) or "-"
        lines.append(
            f"{e.stage:<10} {e.what:<28} {e.expected:>9} {e.accounted:>9}  {parts}"
            + ("" if e.ok else "   <- MISMATCH")
            + (f"  ({e.note})" if e.note else "")
        )
    return lines
