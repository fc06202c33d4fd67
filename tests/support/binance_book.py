"""Book snapshots worked out straight from raw Binance depth frames, with none of the project's code.

The book follows Binance's documented procedure ("How to manage a local order book correctly", spot
WebSocket streams): take a REST depth snapshot (``lastUpdateId``); drop every ``depthUpdate`` whose final
update id ``u`` is <= lastUpdateId; the first one applied must have ``U <= lastUpdateId + 1 <= u``; then
apply the updates in order, each level's quantity being the new absolute size (0 removes the level).
The recordings hold one unwrapped REST snapshot line near the start of each *_20240808 file; updates
recorded before it whose ``u`` is past the snapshot were buffered while it was fetched, so they are
applied at the snapshot.

The snapshots follow the documented meaning of a tardis ``book_snapshot`` with an interval
(docs/DATA_TYPES.md): one when the book is first known, stamped with the snapshot's time (the recorder's
receive time: a spot REST snapshot has no exchange time); after that, at each interval boundary that a
depth update (exchange time ``E``) crosses, the top ``depth`` levels as of that boundary, stamped with
it, if any update since the previous snapshot changed them.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

Level = tuple[float, float]  # price, amount
Levels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DepthUpdate:
    event_us: int  # E (ms) in µs: the exchange time of the update
    first_id: int  # U
    final_id: int  # u
    bids: Levels
    asks: Levels


@dataclass(frozen=True)
class Recording:
    snapshot_local_us: int  # when the recorder received the REST snapshot
    last_update_id: int
    bids: Levels
    asks: Levels
    before: tuple[DepthUpdate, ...]  # depth updates recorded before the snapshot line, in file order
    after: tuple[DepthUpdate, ...]  # and after it


def _levels(raw) -> Levels:
    return tuple((p, a) for p, a in raw)


def read_depth(path: Path) -> Recording:
    snapshot = None
    before: list[DepthUpdate] = []
    after: list[DepthUpdate] = []
    with gzip.open(path, "rt") as f:
        for line in f:
            ns, _, raw = line.partition(" ")
            msg = json.loads(raw)
            if "lastUpdateId" in msg and snapshot is None:
                snapshot = (int(ns) // 1000, msg)
            elif msg.get("stream", "").split("@")[1:2] == ["depth"]:
                d = msg["data"]
                update = DepthUpdate(d["E"] * 1000, d["U"], d["u"], _levels(d["b"]), _levels(d["a"]))
                (before if snapshot is None else after).append(update)
    assert snapshot is not None, f"{path} holds no REST depth snapshot line"
    local_us, s = snapshot
    return Recording(
        local_us, s["lastUpdateId"], _levels(s["bids"]), _levels(s["asks"]), tuple(before), tuple(after)
    )


class Book:
    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def apply(self, bids: Levels, asks: Levels) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, amount in levels:
                p, a = float(price), float(amount)
                if a == 0:
                    side.pop(p, None)
                else:
                    side[p] = a

    def top(self, depth: int) -> tuple[list[Level], list[Level]]:
        bids = sorted(self.bids.items(), key=lambda kv: -kv[0])[:depth]
        asks = sorted(self.asks.items())[:depth]
        return bids, asks


@dataclass(frozen=True)
class Snapshot:
    timestamp_us: int
    bids: list[Level]
    asks: list[Level]


def expected_snapshots(recording: Recording, depth: int, interval_ms: int) -> list[Snapshot]:
    book = Book()
    book.apply(recording.bids, recording.asks)
    updates = [u for u in (*recording.before, *recording.after) if u.final_id > recording.last_update_id]
    first = updates[0]
    assert first.first_id <= recording.last_update_id + 1 <= first.final_id, "no overlap with the snapshot"
    buffered = [u for u in recording.before if u.final_id > recording.last_update_id]
    for u in buffered:
        book.apply(u.bids, u.asks)
    top = book.top(depth)
    out = [Snapshot(recording.snapshot_local_us, *top)]
    interval_us = interval_ms * 1000
    last_us, changed = recording.snapshot_local_us, False
    for u in updates[len(buffered) :]:
        if changed and u.event_us // interval_us > last_us // interval_us:
            out.append(Snapshot((last_us // interval_us + 1) * interval_us, *top))
            changed = False
        book.apply(u.bids, u.asks)
        new_top = book.top(depth)
        changed = changed or new_top != top
        top, last_us = new_top, u.event_us
    return out
