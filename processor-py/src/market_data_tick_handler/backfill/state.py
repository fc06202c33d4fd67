"""Where a backfill is, per (exchange, symbol): ``<state dir>/<exchange>-<SYMBOL>.json`` (the local store:
``<store>/_backfill/``; BigQuery: ``data/backfill/<project>/`` or ``--state-dir``), and beside it the
pickled frame router after the last day done, ``<exchange>-<SYMBOL>.ckpt``.

A day is recorded only after every row it made was written (the sinks flushed: in the local store an
fsynced file, on BigQuery an acknowledged append). The checkpoint is the processor's state at that moment
(candle engine with its open candles, feature lanes, gap tracker, counters), pickled as the processor's
own checkpoints pickle it (``streaming_service/checkpoints.py``), so a run resumed from it makes exactly
the rows an uninterrupted run makes. Both files are written to a temporary name, fsynced and renamed:
a run killed while saving leaves the previous state whole. A checkpoint made with other candle settings
(its ``fingerprint``) is not used.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass(slots=True)
class SymbolState:
    """What is done for one (exchange, symbol): ``days`` (ISO dates whose rows are written, with their
    trade and bad-row counts), ``checkpoint_day`` (the day after which the checkpoint was taken),
    ``finished`` (the last day after which the open candles were closed as partial: the end of a run's
    range), ``seq`` (the next frame number, so the frame router sees one session across runs)."""

    path: Path
    exchange: str
    exchange_symbol: str
    days: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint_day: str | None = None
    finished: str | None = None
    fingerprint: str = ""
    seq: int = 0

    @property
    def checkpoint_path(self) -> Path:
        return self.path.with_suffix(".ckpt")

    @classmethod
    def load(cls, directory: Path, exchange: str, exchange_symbol: str) -> SymbolState:
        path = directory / f"{exchange}-{exchange_symbol}.json"
        state = cls(path, exchange, exchange_symbol)
        if not path.is_file():
            return state
        try:
            raw = json.loads(path.read_text())
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
            state.days = dict(raw["days"])
            state.checkpoint_day = raw.get("checkpoint_day")
            state.finished = raw.get("finished")
            state.fingerprint = raw.get("fingerprint", "")
            state.seq = int(raw.get("seq", 0))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("backfill state %s cannot be read (%s): starting afresh", path, exc)
            return cls(path, exchange, exchange_symbol)
        return state

    def done(self, day: date) -> bool:
        return day.isoformat() in self.days

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "format": FORMAT,
            "exchange": self.exchange,
            "symbol": self.exchange_symbol,
            "days": dict(sorted(self.days.items())),
            "checkpoint_day": self.checkpoint_day,
            "finished": self.finished,
            "fingerprint": self.fingerprint,
            "seq": self.seq,
        }
        _write_atomic(self.path, json.dumps(data, indent=1).encode())

    def mark_day(self, day: date, counts: dict[str, Any], router: Any) -> None:
        """Day ``day`` is written: the checkpoint of ``router`` (the state after it), then the record."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(self.checkpoint_path, pickle.dumps(router, protocol=pickle.HIGHEST_PROTOCOL))
        self.days[day.isoformat()] = counts
        self.checkpoint_day = day.isoformat()
        self.finished = None
        self.save()

    def load_checkpoint(self, after: date) -> Any | None:
        """The frame router as it was after day ``after``, or None (no such checkpoint, or unusable)."""
        if self.checkpoint_day != after.isoformat():
            return None
        try:
            with open(self.checkpoint_path, "rb") as f:
                return pickle.load(f)
        except Exception as exc:  # a damaged file, another version
            log.warning("backfill checkpoint %s cannot be read (%s): not used", self.checkpoint_path, exc)
            return None

    def forget_from(self, day: date) -> None:
        """Days from ``day`` on are to be done again (``--force``)."""
        self.days = {d: v for d, v in self.days.items() if d < day.isoformat()}
        if self.checkpoint_day is not None and self.checkpoint_day >= day.isoformat():
            self.checkpoint_day = None
        self.finished = None
