"""The ``s3_ingest`` fixture: a job whose source is a prefix of a fresh bucket on the moto server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testsupport.ingest import Ingest
from testsupport.s3_fixtures import S3Endpoint
from testsupport.s3_ingest import S3Ingest


@pytest.fixture
def s3_ingest(ingest: Ingest, s3_server: S3Endpoint, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Ingest]:
    for name, value in s3_server.environ.items():
        monkeypatch.setenv(name, value)
    yield S3Ingest(ingest=ingest, endpoint=s3_server, bucket=s3_bucket, client=s3_server.client())
