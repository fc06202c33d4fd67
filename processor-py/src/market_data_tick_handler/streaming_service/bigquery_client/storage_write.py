"""Rows into BigQuery through the Storage Write API (the recommended path), exactly once per batch.

Each table gets a COMMITTED write stream: rows are visible as soon as an append is acknowledged, and every
append carries the stream offset it must land at. A batch keeps its (stream, offset) across retries, so
when an append did land but its reply was lost, the retry is refused with ALREADY_EXISTS and is counted,
not written twice. Should the stream itself be gone (NOT_FOUND: an emulator restarted, a stream expired),
a new one is opened and the batch is re-sent at the new stream's offset: the one case where a batch whose
first reply was lost could be written twice.

Datasets and tables are created through the API when missing (partitioning, expiration and clustering
from tables.py); a table that lacks columns (new features) gets them added as NULLABLE, and a column is
never dropped. Beside each table, the view ``{table}_dedup`` shows one row per ``TableSpec.key`` (of rows
written more than once, the one with the earliest ``timestamp_out``; :func:`dedup_query`). Every call has
a timeout and no client-side retry: persist mode retries, with backoff.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as api_errors
from google.auth import exceptions as auth_errors
from google.cloud import bigquery
from google.cloud.bigquery_storage_v1 import types

from ...config import BigQueryConfig
from .clients import describe, rest_client, write_client
from .proto_rows import RowEncoder
from .sink import RowBatch, WriteFailed, WriteRefused, is_candle_table
from .tables import Column, TableSpec
from .tick_rows import TickEncoders

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..candle_processor import ClosedCandles
    from ..data_types.records import Record
    from ..data_types.trades import TradeRows

log = logging.getLogger(__name__)

_TRANSIENT = (
    api_errors.ServiceUnavailable,
    api_errors.DeadlineExceeded,
    api_errors.InternalServerError,
    api_errors.BadGateway,
    api_errors.GatewayTimeout,
    api_errors.TooManyRequests,
    api_errors.Aborted,
    api_errors.Unknown,
    api_errors.RetryError,
    auth_errors.TransportError,  # credentials could not be refreshed: the network
    OSError,  # the REST client's connection errors (requests') are OSErrors
)
_ALREADY_EXISTS, _NOT_FOUND = 6, 5  # google.rpc.Code


class StorageWriteSink:
    def __init__(self, config: BigQueryConfig, project: str) -> None:
        self.config = config
        self.project = project
        self.timeout = config.request_timeout_s
        self.rest = rest_client(project, config.emulator)
        self.write = write_client(config.emulator)
        self._encoders: dict[str, RowEncoder] = {}
        self._ticks = TickEncoders()
        self._ready: set[tuple[str, str]] = set()  # (dataset, table) known to exist with every column
        self._streams: dict[tuple[str, str], str] = {}
        self._next_offset: dict[str, int] = {}  # by stream

    kind = "bigquery"

    def describe(self) -> str:
        return describe(self.project, self.config.emulator)

    def _encoder(self, table: TableSpec) -> RowEncoder:
        encoder = self._encoders.get(table.name)
        if encoder is None:
            encoder = self._encoders[table.name] = RowEncoder(table.columns)
        return encoder

    def encode(self, table: TableSpec, block: ClosedCandles) -> list[bytes]:
        return self._encoder(table).encode(block)

    def encode_trades(self, table: TableSpec, trades: TradeRows, out_us: int) -> list[bytes]:
        return self._ticks.of(table).trades(trades, out_us)

    def encode_records(self, table: TableSpec, records: Sequence[Record], out_us: int) -> list[bytes]:
        return self._ticks.of(table).records(records, out_us)

    def _descriptor(self, table: TableSpec) -> Any:
        """The rows' ``DescriptorProto``, the append's ``writer_schema``."""
        if is_candle_table(table):
            return self._encoder(table).descriptor
        return self._ticks.of(table).descriptor

    def ensure(self, table: TableSpec) -> None:
        try:
            self._ensure(table)
        except _TRANSIENT as exc:
            raise WriteFailed(f"{table.dataset}.{table.name}: {exc}") from exc
        except api_errors.GoogleAPICallError as exc:
            raise WriteRefused(f"{table.dataset}.{table.name}: {exc}") from exc

    def _ensure(self, spec: TableSpec) -> None:
        key = (spec.dataset, spec.name)
        if key in self._ready:
            return
        calls = {"retry": None, "timeout": self.timeout}
        dataset = bigquery.DatasetReference(self.project, spec.dataset)
        try:
            self.rest.get_dataset(dataset, **calls)
        except api_errors.NotFound:
            created = bigquery.Dataset(dataset)
            created.location = self.config.location
            self.rest.create_dataset(created, exists_ok=True, **calls)
            log.info("created dataset %s.%s (%s)", self.project, spec.dataset, self.config.location)
        ref = dataset.table(spec.name)
        try:
            table = self.rest.get_table(ref, **calls)
        except api_errors.NotFound:
            self.rest.create_table(_table(spec, ref), exists_ok=True, **calls)
            ttl = spec.partitioning.ttl_days
            log.info(
                "created table %s.%s: partitioned by %s on %s (%s), clustered by %s",
                spec.dataset,
                spec.name,
                spec.partitioning.type,
                spec.partitioning.field,
                "no expiry" if ttl is None else f"partitions expire after {ttl} days",
                ", ".join(spec.clustering_fields),
            )
        else:
            _check(spec, table)
            have = {f.name for f in table.schema}
            missing = [c for c in spec.columns if c.name not in have]
            if missing:
                table.schema = [*table.schema, *(_schema_field(c, nullable=True) for c in missing)]
                self.rest.update_table(table, ["schema"], **calls)
                log.warning(
                    "table %s.%s: added the NULLABLE column(s) %s",
                    spec.dataset,
                    spec.name,
                    ", ".join(c.name for c in missing),
                )
        if spec.key:
            view = bigquery.Table(dataset.table(f"{spec.name}_dedup"))
            view.view_query = dedup_query(self.project, spec)
            self.rest.create_table(view, exists_ok=True, **calls)
        self._ready.add(key)

    def _stream(self, spec: TableSpec) -> str:
        key = (spec.dataset, spec.name)
        stream = self._streams.get(key)
        if stream is None:
            self._ensure(spec)
            parent = self.write.table_path(self.project, spec.dataset, spec.name)
            created = self.write.create_write_stream(
                parent=parent,
                write_stream=types.WriteStream(type_=types.WriteStream.Type.COMMITTED),
                retry=None,
                timeout=self.timeout,
            )
            stream = self._streams[key] = created.name
            self._next_offset[stream] = 0
            log.info("opened a committed write stream on %s.%s", spec.dataset, spec.name)
        return stream

    def _forget(self, spec: TableSpec) -> None:
        """The stream (or the table) is gone: check the table and open a new stream on the next try."""
        key = (spec.dataset, spec.name)
        self._ready.discard(key)
        stream = self._streams.pop(key, None)
        log.warning(
            "the write stream of %s.%s is gone (%s): opening a new one", spec.dataset, spec.name, stream
        )

    def append(self, batch: RowBatch) -> bool:
        spec = batch.table
        if batch.stream is not None and batch.offset is not None and batch.stream not in self._next_offset:
            # made by an earlier process (a checkpoint carried it, or the spill kept it): at its own stream
            # and offset first, so that a batch that landed before the restart is not written twice
            earlier = self._append_earlier(batch)
            if earlier is not None:
                return earlier
            batch.stream = batch.offset = None  # its stream is gone: this process's stream, at its end
        try:
            stream = self._stream(spec)
            if batch.stream != stream:  # first attempt, or its stream is gone: the next offset of this one
                batch.stream, batch.offset = stream, self._next_offset[stream]
            request = self._request(stream, batch.offset, batch)
            # one request per call: the client's AppendRowsStream helper fails from its second request on
            # some servers, and a call of its own gives each append its own timeout
            responses = list(self.write.append_rows(iter([request]), retry=None, timeout=self.timeout))
        except api_errors.AlreadyExists:
            return self._written_before(batch)
        except api_errors.NotFound as exc:
            self._forget(spec)
            raise WriteFailed(f"{spec.dataset}.{spec.name}: {exc}") from exc
        except _TRANSIENT as exc:
            raise WriteFailed(f"{spec.dataset}.{spec.name}: {exc}") from exc
        except api_errors.GoogleAPICallError as exc:
            raise WriteRefused(f"{spec.dataset}.{spec.name}: {exc}") from exc
        if not responses:
            raise WriteFailed(f"{spec.dataset}.{spec.name}: the append got no reply")
        response = responses[-1]
        code = response.error.code
        if code == _ALREADY_EXISTS:
            return self._written_before(batch)
        if code == _NOT_FOUND:
            self._forget(spec)
            raise WriteFailed(f"{spec.dataset}.{spec.name}: {response.error.message}")
        if code or response.row_errors:
            errors = "; ".join(f"row {e.index}: {e.message}" for e in response.row_errors[:5])
            raise WriteRefused(f"{spec.dataset}.{spec.name}: {response.error.message or errors}")
        self._next_offset[stream] = batch.offset + len(batch.rows)
        return True

    def _request(self, stream: str, offset: int | None, batch: RowBatch) -> types.AppendRowsRequest:
        return types.AppendRowsRequest(
            write_stream=stream,
            offset=offset,
            proto_rows=types.AppendRowsRequest.ProtoData(
                writer_schema=types.ProtoSchema(proto_descriptor=self._descriptor(batch.table)),
                rows=types.ProtoRows(serialized_rows=batch.rows),
            ),
        )

    def _append_earlier(self, batch: RowBatch) -> bool | None:
        """Append ``batch`` on the stream of the process that made it, at its offset: True when written
        now, False when it had landed already (ALREADY_EXISTS), None when that stream cannot take it any
        more (gone, finalized, or its offset not the stream's end: an earlier batch never landed)."""
        spec, stream = batch.table, batch.stream
        assert stream is not None
        try:
            request = self._request(stream, batch.offset, batch)
            responses = list(self.write.append_rows(iter([request]), retry=None, timeout=self.timeout))
        except api_errors.AlreadyExists:
            return False
        except (api_errors.NotFound, api_errors.FailedPrecondition, api_errors.OutOfRange):
            return None
        except _TRANSIENT as exc:
            raise WriteFailed(f"{spec.dataset}.{spec.name}: {exc}") from exc
        except api_errors.GoogleAPICallError:
            return None
        code = responses[-1].error.code if responses else _NOT_FOUND
        if code == _ALREADY_EXISTS:
            return False
        return None if code else True

    def _written_before(self, batch: RowBatch) -> bool:
        """ALREADY_EXISTS: an earlier attempt of this batch landed at its offset (its reply was lost)."""
        assert batch.stream is not None and batch.offset is not None
        self._next_offset[batch.stream] = max(self._next_offset[batch.stream], batch.offset + len(batch.rows))
        return False

    def stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        # the committed streams are left open (their rows are visible already): a batch spilled at close,
        # or carried by a checkpoint, lands on its own stream at its offset after a restart, or is found
        # there (``_append_earlier``); BigQuery drops idle streams itself
        self._streams.clear()
        self.rest.close()
        self.write.transport.close()


def dedup_query(project: str, spec: TableSpec) -> str:
    """The query of the view ``{table}_dedup``: one row per key, of rows written more than once the one
    with the earliest ``timestamp_out``. A GROUP BY rather than ``QUALIFY ROW_NUMBER() OVER (PARTITION BY
    key ...)``: BigQuery refuses FLOAT64 columns in PARTITION BY, and tick keys have prices."""
    keys = ", ".join(f"`{k}`" for k in spec.key)
    return (
        f"SELECT row.* FROM (SELECT ARRAY_AGG(t ORDER BY t.timestamp_out, t.local_timestamp LIMIT 1)"
        f"[OFFSET(0)] AS row FROM `{project}.{spec.dataset}.{spec.name}` AS t GROUP BY {keys})"
    )


def _schema_field(column: Column, nullable: bool = False) -> bigquery.SchemaField:
    """``column`` as the client's field (a RECORD with its fields); ``nullable``: as a column added to an
    existing table is (a REPEATED one stays REPEATED)."""
    mode = "NULLABLE" if nullable and not column.repeated else column.mode
    fields = [_schema_field(f) for f in column.fields]
    return bigquery.SchemaField(column.name, column.type, mode=mode, fields=fields)


def _table(spec: TableSpec, ref: bigquery.TableReference) -> bigquery.Table:
    table = bigquery.Table(ref, schema=[_schema_field(c) for c in spec.columns])
    table.time_partitioning = bigquery.TimePartitioning(
        type_=spec.partitioning.type,
        field=spec.partitioning.field,
        expiration_ms=spec.partition_expiration_ms,
    )
    table.clustering_fields = list(spec.clustering_fields) or None
    return table


def _check(spec: TableSpec, table: bigquery.Table) -> None:
    """An existing table keeps its partitioning and clustering (BigQuery cannot change them in place):
    say so when they are not the configured ones."""
    tp = table.time_partitioning
    have = (tp.type_, tp.field, tp.expiration_ms, tuple(table.clustering_fields or ())) if tp else None
    want = (
        spec.partitioning.type,
        spec.partitioning.field,
        spec.partition_expiration_ms,
        spec.clustering_fields,
    )
    if have != want:
        log.warning(
            "table %s.%s exists with partitioning/clustering %s, not the configured %s: kept as it is",
            spec.dataset,
            spec.name,
            have,
            want,
        )
