"""The processor's side of the journal: where it is in it, what it reads from it, when it checkpoints.

The ingester appends every wire frame to the journal before it sends it (``ingest-node/src/journal.js``,
proto/README.md "Journal"), with a position, ``jseq``, in the frame's header. The processor handles
frames in ``jseq`` order whichever way they come: a frame from ZeroMQ that it has handled already (read
from the journal meanwhile) is skipped, and the frames between its position and a frame from ZeroMQ
further ahead (an ingester that did not wait for it) are read from the journal first. At start it loads
its last checkpoint (``checkpoints.py``) and replays the journal after it (docs/ARCHITECTURE.md "Journal and
checkpoints").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from ..config import JournalConfig, StreamingConfig
from .checkpoints import Checkpoint, Checkpoints, fingerprint

log = logging.getLogger(__name__)


def is_start_frame(payload: Any) -> bool:
    """Whether a journaled payload is a ``start`` frame, from its header alone (proto/README.md: the
    header's length at offset 8, the JSON header at 12; most headers are not even parsed)."""
    view = memoryview(payload)
    if len(view) < 12 or bytes(view[:4]) != b"MDTW":
        return False
    header = bytes(view[12 : 12 + int.from_bytes(view[8:12], "little")])
    if b'"start"' not in header:
        return False
    try:
        parsed = orjson.loads(header)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and parsed.get("type") == "start"


class Recovery:
    def __init__(self, config: StreamingConfig) -> None:
        from .ingest.journal import JournalReader  # only with a journal

        journal: JournalConfig = config.ingest.journal
        self.dir = Path(journal.dir)
        self.interval_s = journal.checkpoint_interval_s
        self.reader = JournalReader(self.dir)
        self.checkpoints = Checkpoints(self.dir / "checkpoints", fingerprint(config))
        #: the jseq of the last frame handled (None: none yet)
        self.position: int | None = None
        self._saved_at = float("-inf")  # the first candle boundary checkpoints
        self.stats: dict[str, Any] = {
            "restored_from": None,  # the jseq of the checkpoint the processor started from
            "frames_replayed": 0,  # read from the journal at start, after the checkpoint
            "frames_from_journal": 0,  # read from the journal later: ZeroMQ did not bring them
            "frames_already_handled": 0,  # from ZeroMQ, handled already (read from the journal)
            "frames_without_jseq": 0,  # from an ingester that does not journal: handled as they come
        }

    def due(self) -> bool:
        return time.monotonic() - self._saved_at >= self.interval_s

    def save(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.save(checkpoint)
        self._saved_at = time.monotonic()

    def frames(self, first: int, until: int | None = None) -> Iterator[tuple[int, int, Any]]:
        """The journal's records from ``first`` (and before ``until``): (jseq, append µs, payload). What
        the journal no longer has the reader logs and counts (``journal_frames_missing``)."""
        return self.reader.records(first, until)

    def latest_start(self, after: int) -> int | None:
        """The position of the last ``start`` frame in the journal after ``after``: where the session of
        an ingester that runs on its own began (None: the journal has none)."""
        found = None
        for jseq, _, payload in self.reader.records(after + 1):
            if is_start_frame(payload):
                found = jseq
        return found

    @property
    def missing(self) -> int:
        """Frames asked of the journal that it did not have (deleted by its retention, unreadable)."""
        return self.reader.lost

    def get_stats(self) -> dict[str, Any]:
        return {
            **self.stats,
            **self.checkpoints.stats,
            "journal_frames_missing": self.missing,
            "position": self.position,
        }
