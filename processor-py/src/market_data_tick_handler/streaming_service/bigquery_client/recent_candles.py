"""Recent candles from persist mode's tables, to warm the HFT features up at start (docs/FEATURES.md).

Per hft timeframe and exchange streamed (``IngestConfig.streams()``), one query on ``candles_{timeframe}``
of the dataset persist mode writes to (``tables.target_dataset``): the candles of the exchange and its
symbols that closed at or before the anchor ``until`` (``timestamp_in + timeframe <= until``), within the
``count`` buckets before the anchor's bucket, so at most ``count`` per series. That is the last ``count``
candles of a series without holes; where a series has holes, the candles before a hole would not count
anyway (the hole resets the series' windows). One row per (``exchange_symbol``, ``timestamp_in``): the
highest ``revision``, and of equal ones (a replay written twice) the one written last. The same bound on
the partitioning column lets BigQuery prune partitions (every row has ``timestamp_out`` and
``local_timestamp`` after its ``timestamp_in``). Values are query parameters; only the table's name is
written into the SQL.

Every call has ``persist.bigquery.request_timeout_s`` as its timeout and no client-side retry, and the
first failure ends the read (the processor then starts cold): a BigQuery that does not answer costs one or
two timeouts (the query, its result). A table that does not exist in an existing dataset is no history
yet; a dataset that does not exist is a failure (a wrong name, most likely)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ...config import StreamingConfig
from ..candle_processor import Timeframe
from ..candle_processor.schema import WARM_UP
from .tables import CANDLE_COLUMNS, candle_table_name, target_dataset

if TYPE_CHECKING:  # the Google client loads only when BigQuery is read (the local store shares the rest)
    from google.cloud import bigquery

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: the columns a warm-up reads (``TickHandler.warm_up``): the candle's names and the fields the schema
#: marks ``warm_up`` (candle_processor/schema.py)
CANDLE_FIELDS = ("exchange", "exchange_symbol", "timeframe", "timestamp_in", *WARM_UP)
#: feature columns that are also feature inputs (``hft_features/inputs.CONTEXT``): the derivative
#: group's ``open_interest_change`` of the first live candle needs the last stored ``open_interest``
CONTEXT_FIELDS = ("funding_rate", "open_interest")
_NULLABLE = {c.name for c in CANDLE_COLUMNS if not c.required}

SQL = """SELECT {columns}
FROM `{table}`
WHERE exchange = @exchange
  AND LOWER(exchange_symbol) IN UNNEST(@symbols)
  AND timestamp_in >= @since AND timestamp_in <= @last_start{partition_filter}
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY exchange_symbol, timestamp_in ORDER BY revision DESC, timestamp_out DESC) = 1
ORDER BY exchange_symbol, timestamp_in"""


def to_datetime(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def to_us(value: datetime | int) -> int:
    """A TIMESTAMP as the client returns it (an aware datetime; naive = UTC) -> µs since the epoch,
    exactly."""
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def bounds(until_us: int, timeframe_us: int, count: int) -> tuple[int, int]:
    """(``since``, ``last_start``): the first and the last bucket start a warm-up anchored at ``until_us``
    loads. ``last_start`` = ``until - timeframe`` (the candle closed at or before the anchor); ``since`` =
    ``count`` buckets before the bucket holding the anchor, so ``count`` bucket starts lie between them."""
    return (until_us // timeframe_us - count) * timeframe_us, until_us - timeframe_us


def candle_query(table_id: str, partition_field: str) -> str:
    """The SQL for ``project.dataset.table``; ``partition_field``: the table's time-partitioning column,
    bounded below by ``@since`` too (a nullable one keeps its nulls)."""
    columns = ", ".join((*CANDLE_FIELDS, *CONTEXT_FIELDS))
    partition_filter = ""
    if partition_field != "timestamp_in":
        partition_filter = f"\n  AND {partition_field} >= @since"
        if partition_field in _NULLABLE:
            partition_filter = f"\n  AND ({partition_field} IS NULL OR {partition_field} >= @since)"
    return SQL.format(columns=columns, table=table_id, partition_filter=partition_filter)


def query_parameters(
    exchange: str, symbols: Sequence[str], since_us: int, last_start_us: int
) -> list[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter]:
    from google.cloud import bigquery

    return [
        bigquery.ScalarQueryParameter("exchange", "STRING", exchange),
        bigquery.ArrayQueryParameter("symbols", "STRING", sorted({s.lower() for s in symbols})),
        bigquery.ScalarQueryParameter("since", "TIMESTAMP", to_datetime(since_us)),
        bigquery.ScalarQueryParameter("last_start", "TIMESTAMP", to_datetime(last_start_us)),
    ]


def warmup_candle(row: Mapping[str, Any]) -> dict[str, Any]:
    """One row as ``TickHandler.warm_up`` takes it: the candle's fields, ``timestamp_in`` in µs, and
    ``funding_rate``/``open_interest`` when not null (a null context value is unknown, as a missing one)."""
    candle = {name: row[name] for name in CANDLE_FIELDS}
    candle["timestamp_in"] = to_us(candle["timestamp_in"])
    for name in CONTEXT_FIELDS:
        if row.get(name) is not None:
            candle[name] = row[name]
    return candle


def query_recent_candles(
    client: bigquery.Client,
    table_id: str,
    partition_field: str,
    exchange: str,
    symbols: Sequence[str],
    timeframe: str,
    until_us: int,
    count: int,
    timeout: float,
) -> list[dict[str, Any]]:
    """The candles of one table (see the module's docstring), oldest first per series. Raises what the
    client raises (``NotFound`` for a table or dataset that does not exist)."""
    from google.cloud import bigquery

    since, last_start = bounds(until_us, Timeframe.parse(timeframe).micros, count)
    config = bigquery.QueryJobConfig(query_parameters=query_parameters(exchange, symbols, since, last_start))
    sql = candle_query(table_id, partition_field)
    job = client.query(sql, job_config=config, retry=None, job_retry=None, timeout=timeout)
    return [warmup_candle(row) for row in job.result(retry=None, timeout=timeout)]


@dataclass(slots=True)
class RecentCandles:
    """What a warm-up read: candles by timeframe, tables that do not exist yet (no history), and the
    failure that ended the read, if one did (with the table it was reading)."""

    project: str
    dataset: str
    until_us: int
    candles: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    error: BaseException | None = None
    failed_table: str | None = None


def read_recent_candles(config: StreamingConfig, project: str, until_us: int) -> RecentCandles:
    """Recent candles of every hft timeframe and every exchange streamed, from the dataset persist mode
    would write to (blocking; never raises: a failure is in ``error``)."""
    from google.api_core import exceptions as api_errors

    from .clients import rest_client

    bq = config.persist.bigquery
    dataset, partitioning = target_dataset(bq, config.ingest.source)
    out = RecentCandles(project, dataset, until_us)
    try:
        client = rest_client(project, bq.emulator)
    except Exception as exc:  # no credentials in the environment (DefaultCredentialsError), ...
        out.error = exc
        return out
    try:
        for timeframe in config.candles.hft_timeframes:
            table = candle_table_name(timeframe)
            out.failed_table = table
            try:
                out.candles[timeframe] = [
                    candle
                    for stream in config.ingest.streams()
                    for candle in query_recent_candles(
                        client, f"{project}.{dataset}.{table}", partitioning.field, stream.exchange,
                        stream.symbols, timeframe, until_us, config.candles.hft_warmup_candles,
                        bq.request_timeout_s,
                    )
                ]  # fmt: skip
            except api_errors.NotFound as exc:
                if not _dataset_exists(client, project, dataset, bq.request_timeout_s):
                    out.error = exc
                    return out
                out.missing.append(table)
        out.failed_table = None
    except Exception as exc:  # unreachable, refused, timed out; or a fault of ours: the caller says which
        out.error = exc
    finally:
        client.close()
    return out


def _dataset_exists(client: bigquery.Client, project: str, dataset: str, timeout: float) -> bool:
    """After a NotFound: is it the table (False: the dataset is there) or the dataset that is missing?"""
    from google.api_core import exceptions as api_errors
    from google.cloud import bigquery

    try:
        client.get_dataset(bigquery.DatasetReference(project, dataset), retry=None, timeout=timeout)
    except api_errors.NotFound:
        return False
    return True
