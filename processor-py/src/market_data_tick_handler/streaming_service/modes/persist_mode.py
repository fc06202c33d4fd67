"""Persist mode: closed candles, with their HFT features, as rows of partitioned, clustered BigQuery
tables (``candles_{timeframe}``, see ``bigquery_client/tables.py``), for analytics.

The service hands over each frame's output (``accept``; ``add`` for one batch): its rows are built and
encoded at once and wait in a buffer per table, which becomes a batch at ``batch_size`` rows or when its
oldest row has waited ``batch_timeout_ms``, whichever comes first, and at shutdown. A background task
writes the batches in order (the backlog: ``sinks/backlog.py``); ``accept`` never waits for BigQuery. A
batch that cannot be written (BigQuery unreachable, busy, timing out) stays at the head and is sent
again, the same rows at the same stream offset, with backoff (0.1 s doubling to 10 s) while later batches
queue behind it. A batch BigQuery refuses is counted (``write_errors``, ``rows_refused``) and logged.

Where the batches wait (docs/ARCHITECTURE.md "When the store is unreachable: the spill"): in memory up to
``persist.spill_mb``, then in files under ``persist.spill_dir`` (``sinks/spill.py``; written by a thread,
never by the loop that handles frames) up to ``persist.bigquery.backlog_mb``; over that the oldest batch
on disk is deleted and counted (``rows_lost``). They are written in order when the store is back. At
shutdown what is left gets ``close_timeout_s``, then what is still in memory is spilled too, and the next
start writes the spilled batches before anything new. Built without ``spill`` (tests, embedding) the
batches wait in memory only, up to ``backlog_mb``, the oldest behind the head dropped and counted over it.

The tick sink (``sinks/bigquery_ticks.py``) is this machinery with other tables: it passes its
``tables``, buffers rows per data type (``_buffer``) and gives each its own timeout (``_timeout_s``)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...config import BigQueryConfig, ConfigError, PersistConfig, StreamingConfig
from ..bigquery_client import (
    RowBatch,
    RowSink,
    TableSpec,
    WriteFailed,
    WriteRefused,
    candle_tables,
)
from ..candle_processor import CandleBatch, ClosedCandles, Stamps
from ..ledger import Entry, sink_entry
from ..metrics.recorders import closes_of
from ..sinks import Backlog, FrameOutput
from ..sinks.spill import Spill, folder_name

if TYPE_CHECKING:
    from ..metrics.recorders import CloseLag, WriteTimer

log = logging.getLogger(__name__)
RETRY_FIRST_S, RETRY_MAX_S = 0.1, 10.0
#: a checkpoint carries the rows waiting in memory up to this (``PersistMode._carried``)
CHECKPOINT_ROWS_MB = 16


@dataclass(slots=True)
class _Buffer:
    """Encoded rows of one table not yet in a batch; ``since``: monotonic time of the oldest."""

    rows: list[bytes] = field(default_factory=list)
    since: float = 0.0
    first_position: int | None = None  # the journal position of the output of the oldest row


def make_sink(config: BigQueryConfig, local_path: str | None = None) -> RowSink:
    """Where the rows go: BigQuery when a project is set (``persist.bigquery.project_id``,
    ``$GCP_PROJECT_ID``), the emulator when one is configured (``persist.bigquery.emulator``,
    ``--bigquery-emulator``, ``$BIGQUERY_EMULATOR``), otherwise the local store under ``local_path``
    (``persist.local.path``; docs/ARCHITECTURE.md "The local store"). Says which in one INFO line."""
    if not config.configured():
        from ...config import LocalStoreConfig
        from ..local_store import LocalStore  # pyarrow loads only here

        store = LocalStore(local_path or LocalStoreConfig().path)
        log.info("no BigQuery project or emulator configured: rows go to %s", store.describe())
        return store
    from google.auth.exceptions import DefaultCredentialsError  # the Google clients load only here

    from ..bigquery_client.storage_write import StorageWriteSink

    try:
        sink = StorageWriteSink(config, config.project())
    except DefaultCredentialsError:
        raise ConfigError(
            "persist mode: no Google credentials in the environment; set GOOGLE_APPLICATION_CREDENTIALS"
            " or run `gcloud auth application-default login` (or use an emulator: persist.bigquery.emulator)"
        ) from None
    log.info("rows go to %s", sink.describe())
    return sink


class PersistMode:
    """The BigQuery sink; ``add`` is ``accept`` for one batch, for callers other than the service
    (tests, benchmarks, embedding)."""

    name = "persist"

    def __init__(
        self,
        config: BigQueryConfig | None = None,
        timeframes: Sequence[str] = ("15s", "1m", "5m", "15m", "4h", "24h"),
        source: str = "tardis-realtime",
        sink: RowSink | None = None,
        tables: Mapping[str, TableSpec] | None = None,
        *,
        spill: PersistConfig | None = None,
    ) -> None:
        """``tables``: by buffer key, instead of the candle table of each timeframe. ``spill``: where
        batches wait for an unreachable store (``spill_mb`` in memory, then files under ``spill_dir``);
        None, or no ``spill_dir``: in memory only, up to ``backlog_mb``."""
        self.config = config or BigQueryConfig()
        self.tables: dict[str, TableSpec] = (
            dict(tables) if tables is not None else candle_tables(self.config, source, tuple(timeframes))
        )
        self.sink = sink if sink is not None else make_sink(self.config)
        self._buffers: dict[str, _Buffer] = {key: _Buffer() for key in self.tables}
        self.spill: Spill | None = None
        memory_mb = self.config.backlog_mb
        if spill is not None and spill.spill_dir:
            store = self.sink.describe()
            self.spill = Spill(
                spill.spill_dir,
                folder_name(self.name, self.dataset, store),
                store,
                {spec.name: spec for spec in self.tables.values()},
                limit_bytes=self.config.backlog_mb * 1_000_000,
                lost=self._spill_lost,
            )
            memory_mb = spill.spill_mb
        self.backlog: Backlog[RowBatch] = Backlog(
            self,
            limit_bytes=memory_mb * 1_000_000,
            first_retry_s=RETRY_FIRST_S,
            max_retry_s=RETRY_MAX_S,
            transient=(WriteFailed,),
            keep_head=True,  # it may have been written at its offset already: later batches follow it
            refill=self._cut_due,
            overflow=self.spill,
        )
        self.stats: dict[str, Any] = {
            "rows_written": 0,
            "batches_written": 0,
            "write_retries": 0,
            "write_errors": 0,
            "rows_refused": 0,
            "duplicate_appends": 0,
            "backlog_rows": 0,  # waiting: in memory (buffered) and in the spill (spilled)
            "backlog_max_rows": 0,
            "buffered_rows": 0,
            "buffered_bytes": 0,
            "rows_lost": 0,
            # a processor recovering from a crash: rows written (or spilled) before it, not again
            "rows_before_restart": 0,
        }
        self._position: int | None = None  # the journal position of the output being added
        self._skip_through: int | None = None  # recovering: outputs up to here are written already
        #: metrics (``metrics/``; None when off): each append's duration; the candle close lag when no
        #: serve sink publishes (then taken when the rows are queued)
        self.write_timer: WriteTimer | None = None
        self.close_lag: CloseLag | None = None

    @classmethod
    def from_config(cls, config: StreamingConfig, option: str | None = None) -> PersistMode:
        return cls(
            config.persist.bigquery,
            config.candles.timeframes,
            config.ingest.source,
            make_sink(config.persist.bigquery, config.persist.local.path),
            spill=config.persist,
        )

    @property
    def dataset(self) -> str:
        return next(iter(self.tables.values())).dataset

    async def start(self) -> None:
        """Check or create the tables; when BigQuery cannot be reached yet this is done before the first
        write instead, and rows wait meanwhile. A refusal (no permission, a bad project) is raised. The
        row writer is compiled now, before the service freezes the heap (``hot_path.py``), so that the
        first boundary does not wait for it. The local store has a row form of its own: it needs no
        protobuf (nor the ``bigquery`` extra)."""
        await self._ensure_tables()
        if self.sink.kind != "local store":
            from ..bigquery_client.proto_rows import compile_row_writer  # loads the protobuf runtime

            compile_row_writer()
        await self._start_backlog()

    async def _start_backlog(self) -> None:
        """Open the spill (in a thread: the batches an earlier run left there are written first) and
        start the background task that writes."""
        if self.spill is not None:
            await asyncio.to_thread(self.spill.open)
            self.backlog_changed()
        self.backlog.start()

    async def _ensure_tables(self) -> None:
        log.info("%s mode writing to dataset %s of %s", self.name, self.dataset, self.sink.describe())
        try:
            for table in self.tables.values():
                await asyncio.to_thread(self.sink.ensure, table)
        except WriteFailed as exc:
            log.warning("BigQuery is not reachable yet (%s): rows will wait for it", exc)

    async def accept(self, output: FrameOutput) -> None:
        """Queue the rows of the candles of ``output`` (its records are not persisted). Returns at once."""
        if self._written_before(output):
            return
        self._position = output.position
        self._add(output.blocks())
        if self.close_lag is not None:
            self.close_lag.observe(closes_of(output.batches))

    def _rows_of(self, output: FrameOutput) -> int:
        """How many rows ``output`` makes in this sink's tables."""
        return sum(
            len(block.columns.slots) for block in output.blocks() if block.columns.timeframe in self.tables
        )

    def _written_before(self, output: FrameOutput) -> bool:
        """Recovering: whether the rows of ``output`` had been written (or spilled) before the restart
        (counted, not written again)."""
        skip = self._skip_through
        if skip is None or output.position is None or output.position > skip:
            return False
        self.stats["rows_before_restart"] += self._rows_of(output)
        return True

    # -- checkpoints (checkpoints.py) ------------------------------------------------------------------
    def _carried(self) -> bool:
        """Whether a checkpoint carries the rows that wait in memory (buffered, and batches not spilled):
        up to ``CHECKPOINT_ROWS_MB`` of them (more only while the store is unreachable)."""
        buffered = sum(len(row) for b in self._buffers.values() for row in b.rows)
        return buffered + self.backlog.nbytes <= CHECKPOINT_ROWS_MB * 1_000_000

    def durable_through(self) -> int | None:
        """All of it when a checkpoint carries the rows waiting in memory (``_carried``); else everything
        but those: the rows buffered and the batches waiting in memory (the oldest: the spill holds the
        newer ones)."""
        if self._carried():
            return None
        waiting = [b.first_position for b in self._buffers.values() if b.rows]
        waiting += [b.first_position for b in self.backlog]
        positions = [p for p in waiting if p is not None]
        return min(positions) - 1 if positions else None

    def checkpoint_state(self) -> Any:
        """The counters, and (when ``_carried``) the rows waiting in memory: a restart writes them. A batch
        keeps its stream and offset (its file name, in the local store), so one that had been written
        before the restart is not written twice."""
        carried = self._carried()
        return {
            "stats": dict(self.stats),
            "buffers": {k: (b.rows, b.first_position) for k, b in self._buffers.items()} if carried else None,
            "batches": list(self.backlog) if carried else None,
            "buffered": sum(len(b.rows) for b in self._buffers.values()),
        }

    async def restore(self, state: Any, durable_through: int | None) -> None:
        """The counters and the rows waiting as they were at the checkpoint (the rows written or spilled
        since come again from the journal, once more: the ``_dedup`` views show them once). A checkpoint
        that did not carry its waiting rows was made at or below what was durable: they were written
        before the restart, or wait in the spill now, reloaded at start and counted there; either way
        they count as written before it."""
        if state is not None:
            counters = {k: v for k, v in state["stats"].items() if k in self.stats}
            waiting = counters.pop("backlog_rows", 0) + state["buffered"]
            for gauge in ("buffered_rows", "buffered_bytes"):
                counters.pop(gauge, None)
            self.stats.update(counters)
            if state["batches"] is None:
                self.stats["rows_before_restart"] += waiting
            else:
                for batch in state["batches"]:
                    self.backlog.put(batch)
                now = time.monotonic()
                for key, (rows, first_position) in state["buffers"].items():
                    if key in self._buffers and rows:
                        self._buffers[key] = _Buffer(list(rows), now, first_position)
                self.backlog.wake()
            self.backlog_changed()
        self._skip_through = durable_through

    async def recovered(self) -> None:
        self._skip_through = None

    def add(self, batch: CandleBatch, local_us: int, out_us: int) -> None:
        """``accept`` of one ``CandleBatch``; ``local_us``/``out_us``: its ``local_timestamp`` and
        ``timestamp_out``. Returns at once."""
        self._add(batch.blocks(Stamps(local_us, out_us)))

    def _add(self, blocks: Iterable[ClosedCandles]) -> None:
        for block in blocks:
            timeframe = block.columns.timeframe
            table = self.tables.get(timeframe)
            if table is None:
                continue  # not a configured timeframe (a batch made elsewhere): no table for it
            self._buffer(timeframe, self.sink.encode(table, block))
        self.backlog.wake()  # a buffer that was empty has a time to be cut at now

    def _buffer(self, key: str, rows: list[bytes]) -> None:
        """Encoded rows of the table of ``key`` into its buffer; full batches go to the backlog (the
        caller wakes the backlog when done)."""
        size, table, buffer = self.config.batch_size, self.tables[key], self._buffers[key]
        if not buffer.rows:
            buffer.since = time.monotonic()
            buffer.first_position = self._position
        buffer.rows.extend(rows)
        while len(buffer.rows) >= size:
            self._enqueue(table, buffer.rows[:size], buffer.first_position)
            del buffer.rows[:size]
            buffer.since = time.monotonic()
            # what is left came from this output alone: the buffer had fewer than ``size`` rows before it
            buffer.first_position = self._position

    def _timeout_s(self, key: str) -> float:
        """How long the oldest row of the buffer of ``key`` may wait before its batch is cut."""
        return self.config.batch_timeout_ms / 1000

    def _cut(self, now: float | None) -> None:
        """Buffers whose oldest row has waited its timeout at ``now`` (all of them when None) become
        batches."""
        for key, buffer in self._buffers.items():
            if buffer.rows and (now is None or buffer.since + self._timeout_s(key) <= now):
                self._enqueue(self.tables[key], buffer.rows, buffer.first_position)
                buffer.rows = []

    def _cut_due(self) -> float | None:
        """The backlog's refill: the buffers due become batches; returns the seconds until the next is due
        (None when nothing is buffered)."""
        self._cut(time.monotonic())
        due = [b.since + self._timeout_s(k) for k, b in self._buffers.items() if b.rows]
        if not due:
            return None
        return max(0.0, min(due) - time.monotonic())

    def _enqueue(self, table: TableSpec, rows: list[bytes], first_position: int | None) -> None:
        self.backlog.put(RowBatch(table, rows, sum(map(len, rows)), first_position=first_position))

    # -- the backlog's delivery (sinks/backlog.py) ----------------------------------------------------
    async def send(self, batch: RowBatch) -> bool:
        started, outcome = time.perf_counter(), "refused"
        try:
            written = await asyncio.to_thread(self.sink.append, batch)
            outcome = "ok"
            return written
        except (WriteFailed, asyncio.CancelledError):
            outcome = "failed"
            raise
        finally:
            if self.write_timer is not None:
                self.write_timer.observe(time.perf_counter() - started, outcome)

    def sent(self, batch: RowBatch, written: bool) -> None:
        self.stats["rows_written"] += len(batch.rows)
        self.stats["batches_written"] += 1
        if not written:
            self.stats["duplicate_appends"] += 1
            log.warning(
                "%d rows of %s had already been written by an earlier try (its reply was lost):"
                " not written twice",
                len(batch.rows),
                batch.table.name,
            )

    def failed(self, batch: RowBatch, error: BaseException, retry_in_s: float, inline: bool) -> None:
        self.stats["write_retries"] += 1
        log.warning(
            "BigQuery write failed (%s): %d rows waiting (%d spilled to disk); next try in %.1f s",
            error,
            self.stats["backlog_rows"],
            self.spill.stats["spilled_rows"] if self.spill is not None else 0,
            retry_in_s,
        )

    def refused(self, batch: RowBatch, error: BaseException) -> None:
        """Refused, or a fault of ours: counted and logged (a fault with its traceback), never retried."""
        self.stats["write_errors"] += 1
        self.stats["rows_refused"] += len(batch.rows)
        log.error("BigQuery refused %d rows of %s: %s", len(batch.rows), batch.table.name, error,
                  exc_info=not isinstance(error, WriteRefused))  # fmt: skip

    def dropped(self, batch: RowBatch) -> None:
        """Over ``backlog_mb`` in memory (no spill): the oldest batch behind the head."""
        self.stats["rows_lost"] += len(batch.rows)
        log.error(
            "backlog over persist.bigquery.backlog_mb=%d while BigQuery is unreachable (no spill): dropped"
            " %d rows of %s",
            self.config.backlog_mb,
            len(batch.rows),
            batch.table.name,
        )

    def _spill_lost(self, table: str, rows: int) -> None:
        """Over ``backlog_mb`` on disk: the spill deleted its oldest batch."""
        self.stats["rows_lost"] += rows
        log.error(
            "spill over persist.bigquery.backlog_mb=%d while BigQuery is unreachable: deleted the oldest"
            " batch, %d rows of %s",
            self.config.backlog_mb,
            rows,
            table,
        )
        self.backlog_changed()

    def backlog_changed(self) -> None:
        s = self.stats
        s["buffered_rows"] = sum(len(b.rows) for b in self.backlog)
        s["buffered_bytes"] = self.backlog.nbytes
        rows = s["buffered_rows"] + (self.spill.stats["spilled_rows"] if self.spill is not None else 0)
        s["backlog_rows"] = rows
        s["backlog_max_rows"] = max(s["backlog_max_rows"], rows)

    # ------------------------------------------------------------------------------------------------
    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered now and wait until it is written (at most ``timeout`` s); True when
        nothing is left."""
        self._cut(None)
        return await self.backlog.flush(timeout)

    async def close(self) -> None:
        """Cut the buffers, give what waits ``close_timeout_s`` to be written (and a write in flight then
        its own ``request_timeout_s`` to end), then spill what is still in memory (without a spill, or
        when a file cannot be written: counted as lost)."""
        self._cut(None)
        left = await self.backlog.close(self.config.close_timeout_s, self.config.request_timeout_s)
        if left:
            lost = sum(len(b.rows) for b in left)
            self.stats["rows_lost"] += lost
            log.error(
                "closing with BigQuery unreachable for %.0f s: %d rows not written",
                self.config.close_timeout_s,
                lost,
            )
        if self.spill is not None and self.spill.stats["spilled_rows"]:
            log.warning(
                "closing with BigQuery unreachable for %.0f s: %d rows wait in %s (%d of them spilled now);"
                " the next start writes them first",
                self.config.close_timeout_s,
                self.spill.stats["spilled_rows"],
                self.spill.dir,
                self.spill.stats["spilled_at_close_rows"],
            )
        self.backlog_changed()
        await asyncio.to_thread(self.sink.close)

    def get_stats(self) -> dict[str, Any]:
        spill = self.spill.stats if self.spill is not None else {}
        return {**self.stats, **spill, **self.sink.stats()}

    def progress_line(self) -> str:
        p = self.stats
        where = ""
        if self.spill is not None:
            where = f" (memory {p['buffered_rows']}, disk {self.spill.stats['spilled_rows']})"
        return (
            f"persisted rows={p['rows_written']} batches={p['batches_written']} backlog={p['backlog_rows']}"
            f"{where} retries={p['write_retries']} lost={p['rows_lost']} refused={p['rows_refused']}"
        )

    def summary_lines(self) -> list[str]:
        p = self.stats
        lines = [
            f"persisted           {p['rows_written']} rows in {p['batches_written']} batches"
            f" (retries {p['write_retries']}, lost {p['rows_lost']})"
        ]
        trouble = {k: p[k] for k in ("write_errors", "rows_refused", "duplicate_appends")}
        if any(trouble.values()):
            lines.append("  while persisting  " + ", ".join(f"{k} {v}" for k, v in trouble.items()))
        if self.spill is not None and any(self.spill.stats.values()):
            q = self.spill.stats
            lines.append(
                f"  spill             {q['spilled_rows_total']} rows to disk"
                f" ({q['spilled_bytes_total']} bytes, {q['spilled_at_close_rows']} at close),"
                f" {q['spilled_rows']} waiting there now;"
                f" {q['spill_reloaded_rows']} reloaded at start ({q['rows_maybe_twice']} maybe twice),"
                f" {q['spill_orphan_rows']} left for other tables, errors {q['spill_errors']}"
            )
        return lines

    def _ledger_entry(self, what: str, handed: int, **more: int) -> Entry:
        """The sink's ledger line: ``handed`` (and the rows an earlier run spilled, reloaded at start) =
        written + waiting (in memory or spilled) + lost + refused (+ ``more``)."""
        p = self.stats
        reloaded = self.spill.stats["spill_reloaded_rows"] if self.spill is not None else 0
        parts = {
            "written": p["rows_written"],
            "waiting": p["backlog_rows"],
            "lost": p["rows_lost"],
            "refused": p["rows_refused"],
            **({"written before a restart": p["rows_before_restart"]} if p["rows_before_restart"] else {}),
            **more,
        }
        entry = sink_entry(self.sink.kind, what, handed + reloaded, parts)
        if reloaded:
            entry = dataclasses.replace(entry, note=f"{handed} handed + {reloaded} reloaded from the spill")
        return entry

    def ledger_entries(self, handed: Mapping[str, int]) -> list[Entry]:
        return [self._ledger_entry("candles", handed["candles"])]
