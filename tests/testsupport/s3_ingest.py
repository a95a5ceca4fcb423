"""Running whole jobs whose source is an S3 bucket on the moto server (see s3_fixtures)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from irods_ingest.config import S3Source
from irods_ingest.jobstate import RunStatus
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
        self.client.put_object(Bucket=self.bucket, Key=self.key(relative), Body=data)

    def run(self, **changes: Any) -> RunStatus:
        changes.setdefault("s3", self.source)
        return self.ingest.run(source_path="", **changes)

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def put_multipart(self, relative: str, parts: list[bytes]) -> str:
        """Upload ``parts`` as one multipart object (as aws-cli/boto3 do above 8 MiB); returns its ETag."""
        key = self.key(relative)
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
        done = []
        for number, data in enumerate(parts, start=1):
            reply = self.client.upload_part(Bucket=self.bucket, Key=key, PartNumber=number, UploadId=upload["UploadId"], Body=data)
            done.append({"PartNumber": number, "ETag": reply["ETag"]})
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"],
                                              MultipartUpload={"Parts": done})
        return str(self.client.head_object(Bucket=self.bucket, Key=key)["ETag"]).strip('"')

    def delete(self, relative: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(relative))


def tune_transfers(monkeypatch: Any, *, threshold: int | None = None, part: int | None = None, in_flight: int | None = None,
                   page_size: int | None = None) -> None:
    """Set the workers' S3 transfer settings (environment, read when a worker opens its bucket)."""
    from irods_ingest.s3_io import bucket

    for variable, value in ((bucket.ENV_PARALLEL_THRESHOLD, threshold), (bucket.ENV_PART_BYTES, part),
                            (bucket.ENV_PARTS_IN_FLIGHT, in_flight), (bucket.ENV_PAGE_SIZE, page_size)):
        if value is not None:
            monkeypatch.setenv(variable, str(value))


def irods_sha256(s3: S3Ingest, relative: str) -> tuple[int, str]:
    """Size and sha256 of an iRODS object, read in 4 MiB chunks (bounded memory)."""
    digest = hashlib.sha256()
    size = 0
    with s3.ingest.session.data_objects.open(s3.ingest.logical(relative), "r") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def overwriting_handler(s3: S3Ingest, server: S3Endpoint, key: str, body_source: str) -> str:
    """Handler source whose ``pre_data_obj_create`` rewrites ``data/<key>`` in the bucket with
    the bytes ``body_source`` evaluates to (Python source, e.g. ``"b'x' * 1024"``) just before
    that object is copied -- after the listing, as a concurrent writer would."""
    return (
        "import boto3\n"
        "from irods_capability_automated_ingest.core import Core\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n"
        "    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):\n"
        f"        if meta['target'].endswith({'/' + key!r}):\n"
        f"            client = boto3.client('s3', endpoint_url={server.url!r}, region_name='us-east-1',\n"
        f"                                  aws_access_key_id={server.access_key!r}, aws_secret_access_key={server.secret_key!r})\n"
        f"            client.put_object(Bucket={s3.bucket!r}, Key={'data/' + key!r}, Body={body_source})\n"
    )
