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

from ..config import JournalConfig, StreamingConfig
from .checkpoints import Checkpoint, Checkpoints, fingerprint

log = logging.getLogger(__name__)


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
        self._saved_at = time.monotonic()
        self.stats: dict[str, Any] = {
            "restored_from": None,  # the jseq of the checkpoint the processor started from
            "frames_replayed": 0,  # read from the journal at start, after the checkpoint
            "frames_from_journal": 0,  # read from the journal later: ZeroMQ did not bring them
            "frames_already_handled": 0,  # from ZeroMQ, handled already (read from the journal)
            "frames_without_jseq": 0,  # from an ingester that does not journal: handled as they come
            "journal_frames_missing": 0,  # asked of the journal, deleted by its retention
        }

    def due(self) -> bool:
        return time.monotonic() - self._saved_at >= self.interval_s

    def save(self, checkpoint: Checkpoint) -> None:
        self.checkpoints.save(checkpoint)
        self._saved_at = time.monotonic()

    def frames(self, first: int, until: int | None = None) -> Iterator[tuple[int, int, Any]]:
        """The journal's records from ``first`` (and before ``until``): (jseq, append µs, payload). What
        the journal no longer has is counted and logged."""
        expected = first
        for jseq, append_us, payload in self.reader.records(first):
            if until is not None and jseq >= until:
                break
            if jseq > expected:
                self._missing(expected, jseq)
            expected = jseq + 1
            yield jseq, append_us, payload
        if until is not None and expected < until:
            self._missing(expected, until)

    def _missing(self, first: int, until: int) -> None:
        self.stats["journal_frames_missing"] += until - first
        log.error(
            "journal frames %d..%d are not in %s (deleted by its retention, ingest.journal.max_mb /"
            " max_age_h, before this processor read them): their data is missing; counted"
            " (journal_frames_missing) and a gap",
            first,
            until - 1,
            self.dir,
        )

    def get_stats(self) -> dict[str, Any]:
        return {**self.stats, **self.checkpoints.stats, "position": self.position}
