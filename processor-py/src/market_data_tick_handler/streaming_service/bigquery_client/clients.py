"""The official clients, for BigQuery or for a local emulator. Credentials come only from the environment
(GOOGLE_APPLICATION_CREDENTIALS or Application Default Credentials); the emulator takes none."""

from __future__ import annotations

import grpc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery_storage_v1 import BigQueryWriteClient
from google.cloud.bigquery_storage_v1.services.big_query_write.transports import BigQueryWriteGrpcTransport

from ...config import EmulatorConfig


def rest_client(project: str, emulator: EmulatorConfig | None) -> bigquery.Client:
    if emulator is None:
        return bigquery.Client(project=project)
    return bigquery.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=emulator.rest_url),
    )


def write_client(emulator: EmulatorConfig | None) -> BigQueryWriteClient:
    if emulator is None:
        return BigQueryWriteClient()
    channel = grpc.insecure_channel(emulator.grpc_target)
    return BigQueryWriteClient(transport=BigQueryWriteGrpcTransport(channel=channel))


def describe(project: str, emulator: EmulatorConfig | None) -> str:
    where = f"the emulator at {emulator.rest_url} (gRPC {emulator.grpc_target})" if emulator else "BigQuery"
    return f"project {project} on {where}"
