"""Running whole jobs whose source is an S3 bucket on the moto server (see s3_fixtures)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from irods_ingest.config import S3Source
from irods_ingest.store.jobstore import RunStatus
from testsupport.ingest import Ingest
from testsupport.s3_fixtures import S3Endpoint


@dataclass
class S3Ingest:
    """An :class:`Ingest` whose source is a prefix of a bucket on the moto server."""

    ingest: Ingest
    endpoint: S3Endpoint
    bucket: str
    prefix: str = "data"
    client: Any = None

    @property
    def source(self) -> S3Source:
        return S3Source(bucket=self.bucket, endpoint=self.endpoint.url, prefix=self.prefix, insecure=True,
                        region=self.endpoint.region)

    def put(self, relative: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{relative}" if self.prefix else relative, Body=data)

    def run(self, **changes: Any) -> RunStatus:
        changes.setdefault("s3", self.source)
        return self.ingest.run(source_path="", **changes)
