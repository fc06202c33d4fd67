"""The processor's checkpoints: its state at a candle boundary and where it was in the journal.

A checkpoint holds everything a processor needs to carry on as if it had not stopped: the frame router
(candle engines with their open buckets, feature state, gaps, counters), the ingester sessions it
received, what it handed the sinks, each sink's own state (``Sink.checkpoint_state``), the journal
position of the last frame it handled (``jseq``), and how far each sink's output was durable then
(``durable``: every output up to that position published, written, or spilled to disk).

A sink's durable position can be behind the checkpoint (persist mode batches rows for up to a minute), so
a restart needs the state of an earlier checkpoint: :meth:`Checkpoints.restore_point` picks the newest
checkpoint at or below every sink's durable position of the latest one; the journal is replayed from
there and each sink skips what it had made durable (docs/ARCHITECTURE.md "Journal and checkpoints").
Checkpoints older than that are deleted as new ones are saved.

Files are ``checkpoint-<jseq, 20 digits>.ckpt`` in ``<journal dir>/checkpoints``: a pickle of
:class:`Checkpoint`, written to a temporary name and renamed, so a processor killed while saving leaves
the previous checkpoints whole. A checkpoint of another configuration (its ``fingerprint``) or another
version of the processor is not used: the processor says so and starts afresh.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import StreamingConfig

log = logging.getLogger(__name__)

#: raised when the pickled classes change in a way an older checkpoint cannot be read into (2: the candle
#: engine's gaps, ``candle_processor/candle_gaps.py``)
FORMAT = 2
_NAME = re.compile(r"^checkpoint-(\d{20})\.ckpt$")


def fingerprint(config: StreamingConfig) -> str:
    """What a checkpoint's state depends on: the candles, the data types and what is streamed. A change
    to any of them (another timeframe, another symbol) makes older checkpoints unusable."""
    parts = (FORMAT, config.candles, config.data_types, config.ingest.streams(), config.ingest.source)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


@dataclass(slots=True)
class Checkpoint:
    """The processor after the frame at ``jseq``: see the module's docstring."""

    jseq: int
    made_us: int
    fingerprint: str
    state: dict[str, Any]
    sinks: dict[str, Any] = field(default_factory=dict)
    durable: dict[str, int] = field(default_factory=dict)

    @property
    def durable_through(self) -> int:
        """The position every sink had made durable (the checkpoint's own when no sink lags)."""
        return min(self.durable.values(), default=self.jseq)


class Checkpoints:
    """The checkpoints of one journal directory."""

    def __init__(self, directory: str | Path, config_fingerprint: str) -> None:
        self.dir = Path(directory)
        self.fingerprint = config_fingerprint
        self.stats = {"checkpoints_saved": 0, "checkpoints_deleted": 0, "checkpoint_bytes": 0}

    def _files(self) -> list[tuple[int, Path]]:
        """(jseq, path) of every checkpoint file, oldest first."""
        if not self.dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := _NAME.match(p.name))]
        return sorted(found)

    def save(self, checkpoint: Checkpoint) -> None:
        """Write ``checkpoint`` (temporary name, then a rename), then delete the checkpoints no restart can
        need any more: those older than the newest at or below its ``durable_through``."""
        self.dir.mkdir(parents=True, exist_ok=True)
        data = pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL)
        path = self.dir / f"checkpoint-{checkpoint.jseq:020d}.ckpt"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        self.stats["checkpoints_saved"] += 1
        self.stats["checkpoint_bytes"] = len(data)
        files = self._files()
        keep_from = max((jseq for jseq, _ in files if jseq <= checkpoint.durable_through), default=None)
        if keep_from is None:
            return
        for jseq, old in files:
            if jseq < keep_from:
                old.unlink(missing_ok=True)
                self.stats["checkpoints_deleted"] += 1

    def clear(self, ended_at: int | None) -> None:
        """Delete every checkpoint: the session they belong to is over, its end at journal position
        ``ended_at`` (kept, for the next processor to start after it)."""
        if ended_at is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.dir / "ended.tmp"
            tmp.write_text(f"{ended_at}\n")
            os.replace(tmp, self.dir / "ended")
        for _, path in self._files():
            path.unlink(missing_ok=True)

    def ended_at(self) -> int:
        """The journal position of the end of the last session a processor finished here (0: none)."""
        try:
            return int((self.dir / "ended").read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def _load(self, path: Path) -> Checkpoint | None:
        try:
            with open(path, "rb") as f:
                checkpoint = pickle.load(f)
        except Exception as exc:  # a file of another version, or damaged: not used, said so
            log.warning("checkpoint %s cannot be read (%s: %s): not used", path, type(exc).__name__, exc)
            return None
        if not isinstance(checkpoint, Checkpoint):
            log.warning("checkpoint %s holds no checkpoint: not used", path)
            return None
        if checkpoint.fingerprint != self.fingerprint:
            log.warning(
                "checkpoint %s was made with another configuration (candles, data types or what is"
                " streamed changed): not used; the processor starts afresh",
                path,
            )
            return None
        return checkpoint

    def restore_point(self) -> tuple[Checkpoint, Mapping[str, int]] | None:
        """The checkpoint to start from and, by sink name, the position up to which that sink's output is
        already durable (from the latest checkpoint); None when there is none to use (none at all, or
        none old enough: a processor killed before its sinks had made durable what came before its first
        checkpoint)."""
        files = self._files()
        if not files:
            return None
        latest = self._load(files[-1][1])
        if latest is None:
            return None
        through = latest.durable_through
        for jseq, path in reversed(files):
            if jseq > through:
                continue
            checkpoint = latest if path == files[-1][1] else self._load(path)
            if checkpoint is None:
                break
            return checkpoint, dict(latest.durable)
        log.warning(
            "no checkpoint at or before position %d, up to which every sink had made its output durable"
            " (the oldest is at %d): the session is replayed from its start instead",
            through,
            files[0][0],
        )
        return None

    def any(self) -> bool:
        """Whether a processor left checkpoints here (it stopped before its session ended)."""
        return bool(self._files())
