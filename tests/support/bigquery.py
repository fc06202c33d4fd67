"""Reading BigQuery (the emulator) back with the official client, as an analyst would. Every call has an
explicit retry and timeout: the client's defaults wait up to 600 s when the emulator answers 500."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from market_data_tick_handler.devtools.bq_emulator import EmulatorEndpoint

TIMEOUT_S = 30
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def client(endpoint: EmulatorEndpoint) -> bigquery.Client:
    return bigquery.Client(
        project=endpoint.project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint.rest_url),
    )


def query(bq: bigquery.Client, sql: str) -> list[dict[str, Any]]:
    job = bq.query(sql, retry=None, job_retry=None, timeout=TIMEOUT_S)
    return [dict(row) for row in job.result(retry=None, timeout=TIMEOUT_S)]


def table(bq: bigquery.Client, name: str) -> bigquery.Table:
    return bq.get_table(name, retry=None, timeout=TIMEOUT_S)


def micros(value: datetime | None) -> int | None:
    """A TIMESTAMP as read back -> µs since the epoch."""
    if value is None:
        return None
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
