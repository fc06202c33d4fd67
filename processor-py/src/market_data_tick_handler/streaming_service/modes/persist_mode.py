"""Persist mode: closed candles, with their HFT features, as rows of partitioned, clustered BigQuery
tables (``candles_{timeframe}``, see ``bigquery_client/tables.py``), for analytics.

The processor hands over each closed batch (``add``): its rows are built and encoded at once and wait in
a buffer per table, which becomes a batch at ``batch_size`` rows or when its oldest row has waited
``batch_timeout_ms``, whichever comes first, and at shutdown. A background task writes the batches in
order; ``add`` never waits for BigQuery. A batch that cannot be written (BigQuery unreachable, busy,
timing out) stays at the head and is sent again, the same rows at the same stream offset, with backoff
(0.1 s doubling to 10 s) while later batches queue behind it up to ``backlog_mb``; over that the oldest
queued batch behind the head is dropped and counted (``rows_lost``). A batch BigQuery refuses is counted
(``write_errors``, ``rows_refused``) and logged. At shutdown what is left gets ``close_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...config import BigQueryConfig, ConfigError
from ..bigquery_client import (
    RowBatch,
    RowSink,
    TableSpec,
    WriteFailed,
    WriteRefused,
    candle_tables,
)
from ..candle_processor import CandleBatch, Stamps

log = logging.getLogger(__name__)
RETRY_FIRST_S, RETRY_MAX_S = 0.1, 10.0


@dataclass(slots=True)
class _Buffer:
    """Encoded rows of one table not yet in a batch; ``since``: monotonic time of the oldest."""

    rows: list[bytes] = field(default_factory=list)
    since: float = 0.0


def make_sink(config: BigQueryConfig) -> RowSink:
    from google.auth.exceptions import DefaultCredentialsError  # the Google clients load only here

    from ..bigquery_client.storage_write import StorageWriteSink

    try:
        return StorageWriteSink(config, config.project())
    except DefaultCredentialsError:
        raise ConfigError(
            "persist mode: no Google credentials in the environment; set GOOGLE_APPLICATION_CREDENTIALS"
            " or run `gcloud auth application-default login` (or use an emulator: persist.bigquery.emulator)"
        ) from None


class PersistMode:
    def __init__(
        self,
        config: BigQueryConfig | None = None,
        timeframes: Sequence[str] = ("15s", "1m", "5m", "15m", "4h", "24h"),
        source: str = "tardis-realtime",
        sink: RowSink | None = None,
    ) -> None:
        self.config = config or BigQueryConfig()
        self.tables: dict[str, TableSpec] = candle_tables(self.config, source, tuple(timeframes))
        self.sink = sink if sink is not None else make_sink(self.config)
        self._buffers: dict[str, _Buffer] = {tf: _Buffer() for tf in self.tables}
        self._backlog: deque[RowBatch] = deque()
        self._backlog_bytes = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self.stats: dict[str, Any] = {
            "rows_written": 0,
            "batches_written": 0,
            "write_retries": 0,
            "write_errors": 0,
            "rows_refused": 0,
            "duplicate_appends": 0,
            "backlog_rows": 0,
            "backlog_max_rows": 0,
            "rows_lost": 0,
        }

    @property
    def dataset(self) -> str:
        return next(iter(self.tables.values())).dataset

    async def start(self) -> None:
        """Check or create the tables; when BigQuery cannot be reached yet this is done before the first
        write instead, and rows wait meanwhile. A refusal (no permission, a bad project) is raised."""
        log.info("persist mode writing to dataset %s of %s", self.dataset, self.sink.describe())
        try:
            for table in self.tables.values():
                await asyncio.to_thread(self.sink.ensure, table)
        except WriteFailed as exc:
            log.warning("BigQuery is not reachable yet (%s): rows will wait for it", exc)
        self._worker = asyncio.create_task(self._run())

    def add(self, batch: CandleBatch, local_us: int, out_us: int) -> None:
        """Queue the rows of a ``CandleBatch``; ``local_us``/``out_us``: its ``local_timestamp`` and
        ``timestamp_out``. Returns at once."""
        size = self.config.batch_size
        for block in batch.blocks(Stamps(local_us, out_us)):
            timeframe = block.columns.timeframe
            table = self.tables.get(timeframe)
            if table is None:
                continue  # not a configured timeframe (a batch made elsewhere): no table for it
            buffer = self._buffers[timeframe]
            if not buffer.rows:
                buffer.since = time.monotonic()
            buffer.rows.extend(self.sink.encode(table, block))
            while len(buffer.rows) >= size:
                self._enqueue(table, buffer.rows[:size])
                del buffer.rows[:size]
                buffer.since = time.monotonic()
        self._wake.set()

    def _cut(self, due_before: float | None) -> None:
        """Buffers whose oldest row is older than ``due_before`` (all of them when None) become batches."""
        for timeframe, buffer in self._buffers.items():
            if buffer.rows and (due_before is None or buffer.since <= due_before):
                self._enqueue(self.tables[timeframe], buffer.rows)
                buffer.rows = []

    def _next_due(self) -> float | None:
        """Seconds until the oldest buffered row is due, or None when nothing is buffered."""
        since = [b.since for b in self._buffers.values() if b.rows]
        if not since:
            return None
        return max(0.0, min(since) + self.config.batch_timeout_ms / 1000 - time.monotonic())

    def _enqueue(self, table: TableSpec, rows: list[bytes]) -> None:
        batch = RowBatch(table, rows, sum(map(len, rows)))
        self._backlog.append(batch)
        self._backlog_bytes += batch.nbytes
        self._idle.clear()
        limit = self.config.backlog_mb * 1_000_000
        while self._backlog_bytes > limit and len(self._backlog) > 1:
            dropped = self._backlog[1]  # the head may be in flight: it stays
            del self._backlog[1]
            self._backlog_bytes -= dropped.nbytes
            self.stats["rows_lost"] += len(dropped.rows)
            log.error(
                "backlog over persist.bigquery.backlog_mb=%d while BigQuery is unreachable: dropped %d rows"
                " of %s",
                self.config.backlog_mb,
                len(dropped.rows),
                dropped.table.name,
            )
        self._count_backlog()

    def _count_backlog(self) -> None:
        rows = sum(len(b.rows) for b in self._backlog)
        self.stats["backlog_rows"] = rows
        self.stats["backlog_max_rows"] = max(self.stats["backlog_max_rows"], rows)

    async def _run(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            now = time.monotonic()
            self._cut(now - self.config.batch_timeout_ms / 1000)
            if not self._backlog:
                self._idle.set()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._next_due()):
                        await self._wake.wait()
                continue
            batch = self._backlog[0]
            try:
                written = await asyncio.to_thread(self.sink.append, batch)
            except WriteFailed as exc:
                self.stats["write_retries"] += 1
                log.warning(
                    "BigQuery write failed (%s): %d rows waiting; next try in %.1f s",
                    exc,
                    sum(len(b.rows) for b in self._backlog),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
                continue
            except Exception as exc:  # refused, or a fault of ours: counted and logged, never retried
                self.stats["write_errors"] += 1
                self.stats["rows_refused"] += len(batch.rows)
                log.error("BigQuery refused %d rows of %s: %s", len(batch.rows), batch.table.name, exc,
                          exc_info=not isinstance(exc, WriteRefused))  # fmt: skip
            else:
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
            delay = RETRY_FIRST_S
            self._backlog.popleft()
            self._backlog_bytes -= batch.nbytes
            self._count_backlog()

    async def flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered now and wait until it is written (at most ``timeout`` s); True when
        nothing is left."""
        self._cut(None)
        self._wake.set()
        if self._worker is not None and self._backlog:
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: wait_for can lose a cancel (3.11)
                async with asyncio.timeout(timeout):
                    await self._idle.wait()
        return not self._backlog

    async def close(self) -> None:
        if not await self.flush(self.config.close_timeout_s):
            lost = sum(len(b.rows) for b in self._backlog)
            self.stats["rows_lost"] += lost
            log.error(
                "closing with BigQuery unreachable for %.0f s: %d rows not written",
                self.config.close_timeout_s,
                lost,
            )
            self._backlog.clear()
            self._backlog_bytes = 0
            self._count_backlog()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await asyncio.to_thread(self.sink.close)

    def get_stats(self) -> dict[str, Any]:
        return dict(self.stats)


def summary_line(stats: dict[str, Any]) -> str:
    """The line of the end-of-run summary."""
    line = (
        f"persisted           {stats['rows_written']} rows in {stats['batches_written']} batches"
        f" (retries {stats['write_retries']}, lost {stats['rows_lost']})"
    )
    trouble = {k: stats[k] for k in ("write_errors", "rows_refused", "duplicate_appends")}
    if any(trouble.values()):
        line += "\n  while persisting  " + ", ".join(f"{k} {v}" for k, v in trouble.items())
    return line
