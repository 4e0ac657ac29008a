"""The two BigQuery clients a backfill uses, made for Google or for a local emulator.

Everything else takes a :class:`BigQueryClients`, so the same code runs against Google and
against ``bqemulator`` on loopback (tests): only how the clients are made differs.

- ``bigquery.Client``: queries (the one staging query, dry runs), table metadata, load jobs.
- ``BigQueryReadClient``: the Storage Read API, one read session per shard, Arrow batches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

# Storage Read API responses can be large; the emulator sends whole batches of 64k rows.
_UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


@dataclass
class BigQueryClients:
    bq: Any  # google.cloud.bigquery.Client
    read: Any  # google.cloud.bigquery_storage_v1.BigQueryReadClient
    project: str  # the project jobs and read sessions are billed to

    @classmethod
    def for_google(cls, project: str | None = None, credentials: Any = None, location: str | None = None) -> BigQueryClients:
        """Application Default Credentials (``gcloud auth application-default login`` or a
        service account via ``GOOGLE_APPLICATION_CREDENTIALS``) unless ``credentials`` is given."""
        from google.cloud import bigquery
        from google.cloud.bigquery_storage_v1 import BigQueryReadClient

        bq = bigquery.Client(project=project, credentials=credentials, location=location)
        read = BigQueryReadClient(credentials=credentials)
        return cls(bq=bq, read=read, project=bq.project)

    @classmethod
    def for_emulator(cls, rest_url: str, grpc_endpoint: str, project: str) -> BigQueryClients:
        """Anonymous clients for a local emulator: REST at ``rest_url``, gRPC at ``grpc_endpoint``."""
        import grpc
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery
        from google.cloud.bigquery_storage_v1 import BigQueryReadClient
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
            BigQueryReadGrpcTransport,
        )

        bq = bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=rest_url),
        )
        channel = grpc.insecure_channel(grpc_endpoint, options=_UNLIMITED)
        read = BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))
        return cls(bq=bq, read=read, project=project)

    @classmethod
    def from_env(cls, project: str | None = None) -> BigQueryClients:
        """The emulator named by ``EMBER_BQ_ENDPOINT`` / ``EMBER_BQ_GRPC_ENDPOINT`` if set
        (see ``scripts/bqemulator``), Google otherwise."""
        from stream_app.backfill.emulator import ENV_GRPC, ENV_PROJECT, ENV_REST

        rest = os.environ.get(ENV_REST)
        if rest:
            grpc_endpoint = os.environ.get(ENV_GRPC)
            if not grpc_endpoint:
                raise ValueError(f"{ENV_REST} is set but {ENV_GRPC} (the emulator's gRPC host:port) is not")
            return cls.for_emulator(rest, grpc_endpoint, project or os.environ.get(ENV_PROJECT, "ember-local"))
        return cls.for_google(project)
