"""The tick sink (``--mode streaming-ticks-bigquery``, streaming.yaml ``modes: [ticks]``): every tick of
the enabled data types as a row of its table, ``ticks_{data type}`` (``bigquery_client/tables.py``): the
frames' valid trades (``FrameOutput.trades``) and the other types' records; in BigQuery, its emulator or
the local store, as persist mode (``modes/persist_mode.make_sink``).

It is persist mode's machinery with other tables (``modes/persist_mode.py``): rows are encoded at once by
the store's sink (``encode_trades``, ``encode_records``: protobuf rows for BigQuery,
``bigquery_client/tick_rows.py``; msgpack rows for the local store, ``local_store/tick_codec.py``) into a
buffer per data type, which becomes a batch at ``persist.bigquery.batch_size`` rows or when its oldest
row has waited ``data_types.<type>.batch_timeout`` ms, and the batches are appended in order, exactly once
each, by the shared backlog (``sinks/backlog.py``), with the same retries, bounds and counters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...config import StreamingConfig
from ..bigquery_client import RowSink
from ..bigquery_client.tables import tick_tables
from ..ledger import Entry
from ..modes.persist_mode import PersistMode, make_sink
from .base import FrameOutput


class TicksMode(PersistMode):
    """Tick rows into their tables, one per enabled data type that makes records, each with its
    ``batch_timeout`` (ms)."""

    name = "ticks"
    #: the service hands this sink the frames' trade rows (``FrameOutput.trades``)
    wants_trades = True

    def __init__(
        self,
        config: StreamingConfig | None = None,
        source: str = "tardis-realtime",
        sink: RowSink | None = None,
    ) -> None:
        config = config or StreamingConfig()
        enabled = [t for t in config.data_types.names() if config.data_types[t].enabled]
        tables = tick_tables(config.persist.bigquery, source)
        tables = {t: spec for t, spec in tables.items() if t in enabled}
        self._timeouts = {t: config.data_types[t].batch_timeout / 1000 for t in tables}
        if sink is None:
            sink = make_sink(config.persist.bigquery, config.persist.local.path)
        super().__init__(config.persist.bigquery, (), source, sink, tables=tables, spill=config.persist)
        self.stats["rows_skipped"] = 0  # records of a type that is not enabled (none in a run)

    @classmethod
    def from_config(cls, config: StreamingConfig, option: str | None = None) -> TicksMode:
        return cls(config, config.ingest.source)

    async def start(self) -> None:
        """Check or create the tables (as persist mode: rows wait when BigQuery cannot be reached yet),
        then write, what an earlier run spilled first."""
        await self._ensure_tables()
        await self._start_backlog()

    async def accept(self, output: FrameOutput) -> None:
        """Encode and buffer the rows of the output's trades and records. Returns at once."""
        if self._written_before(output):
            return
        self._position = output.position
        out_us, sink = output.stamps.out_us, self.sink
        trades = self.tables.get("trades")
        if trades is not None:
            for rows in output.trades:
                self._buffer("trades", sink.encode_trades(trades, rows, out_us))
        by_type: dict[str, list[Any]] = {}
        for record in output.records:
            by_type.setdefault(record.DATA_TYPE, []).append(record)
        for data_type, records in by_type.items():
            table = self.tables.get(data_type)
            if table is None:
                self.stats["rows_skipped"] += len(records)
                continue
            self._buffer(data_type, sink.encode_records(table, records, out_us))
        self.backlog.wake()

    def _rows_of(self, output: FrameOutput) -> int:
        trades = sum(map(len, output.trades)) if "trades" in self.tables else 0
        return trades + sum(1 for record in output.records if record.DATA_TYPE in self.tables)

    def _timeout_s(self, key: str) -> float:
        return self._timeouts[key]

    def progress_line(self) -> str:
        return "ticks " + super().progress_line()

    def summary_lines(self) -> list[str]:
        return [line.replace("persisted  ", "tick rows  ", 1) for line in super().summary_lines()]

    def ledger_entries(self, handed: Mapping[str, int]) -> list[Entry]:
        handed_rows = handed.get("trades", 0) + handed["records"]
        return [self._ledger_entry("ticks", handed_rows, skipped=self.stats["rows_skipped"])]
