"""What a sink is: where the output of each frame goes (Redis, BigQuery, the console, ...).

The service stamps a frame's output once (:class:`~..candle_processor.Stamps`: ``local_timestamp``,
when closing its candles began; ``timestamp_out``, when they were ready for the sinks, after features) and
hands the same :class:`FrameOutput` to every sink, in the order of ``sinks/registry.py``. A sink reads
nothing but the output and its own state; what it did with what it was handed comes back as its stats,
its summary lines and its lines of the ledger (``ledger.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..candle_processor import CandleBatch, ClosedCandles, Stamps
from ..data_types.records import Record
from ..data_types.trades import TradeRows
from ..ledger import Entry


@dataclass(frozen=True, slots=True)
class FrameOutput:
    """What one frame (or one timer poll) produced: candles closed or revised, a batch per exchange, the
    records of the other data types, and the stamps every sink writes with them. ``trades``: the
    frame's valid trade rows, by reference, only when a sink wants them (its ``wants_trades``: the tick
    tables); the frame router makes no trade records. ``position``: the journal position (``jseq``) of
    the frame it came from, or of the last frame before a timer poll; None without a journal."""

    batches: Sequence[CandleBatch]
    records: Sequence[Record]
    stamps: Stamps
    trades: Sequence[TradeRows] = ()
    position: int | None = None

    @property
    def candles(self) -> int:
        return sum(len(batch) for batch in self.batches)

    def blocks(self, chunk: int | None = None) -> Iterator[ClosedCandles]:
        """Every candle as blocks for the writers, in order (``CandleBatch.blocks``)."""
        for batch in self.batches:
            yield from batch.blocks(self.stamps, chunk)


class Sink(Protocol):
    """One destination of the frames' output. ``name`` is the key of its stats in the service's stats
    (``serve``, ``persist``, ...). The service calls ``start`` once before the first frame, ``accept``
    once per frame output (awaited: a sink that must not hold the processor up queues), ``close`` once
    at the end, then ``ledger_entries``, ``get_stats`` and ``summary_lines``."""

    name: str

    async def start(self) -> None: ...

    async def accept(self, output: FrameOutput) -> None: ...

    async def close(self) -> None: ...

    def get_stats(self) -> dict[str, Any]: ...

    def progress_line(self) -> str | None:
        """The sink's part of the progress log (every 10 s and at the end), or None."""
        ...

    def summary_lines(self) -> list[str]:
        """The sink's lines of the end-of-run summary (``console.summary_lines``)."""
        ...

    def ledger_entries(self, handed: Mapping[str, int]) -> list[Entry]:
        """The sink's lines of the ledger (``ledger.sink_entry``): what the service handed it
        (``handed``: ``candles``, ``records``) against where each went."""
        ...

    # -- checkpoints (``checkpoints.py``; only with a journal) -----------------------------------------
    def durable_through(self) -> int | None:
        """The journal position up to which everything handed to the sink is durable (published,
        written, or spilled to disk); None: all of it."""
        ...

    def checkpoint_state(self) -> Any:
        """What the sink needs to carry on after a restart from this checkpoint (its counters, the ids
        it gave out), picklable."""
        ...

    async def restore(self, state: Any, durable_through: int | None) -> None:
        """Carry on from a checkpoint's ``state`` (None: no checkpoint, the journal is replayed from the
        start of a session). Until :meth:`recovered`, the journal is replayed: an output at or below
        ``durable_through`` had been made durable before the restart (counted, not sent again), and what
        the sink sends past it must not show twice to its readers."""
        ...

    async def recovered(self) -> None:
        """The journal is replayed: from now on outputs are new."""
        ...
