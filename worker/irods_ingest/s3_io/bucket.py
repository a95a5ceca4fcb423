"""Listing and reading one S3 bucket, with every boto error translated at this edge.

Credentials come only from the worker's environment (``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, as a Kubernetes Secret or ``--s3_keypair`` puts them there);
they are never stored in Redis, in a task or in a log line. Errors become the engine's
taxonomy: a refused credential is a :class:`PermanentError` that names the setting to fix;
throttling, 5xx and broken connections are :class:`RetryableError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import boto3
import botocore.config
import botocore.exceptions as boto_exc
import urllib3.exceptions

from irods_ingest.config import S3Source
from irods_ingest.errors import PermanentError, RetryableError, SourceVanished

MIB: Final = 1024 * 1024
LIST_PAGE_SIZE: Final = 1000  # S3's own maximum
CHUNK_BYTES: Final = 8 * MIB
RESUMES_PER_READ: Final = 3  # a broken body stream is resumed (ranged GET) this often in one read

# Worker environment settings of S3 transfers (a property of the worker's memory, not of a job).
ENV_PARALLEL_THRESHOLD: Final = "IRODS_INGEST_S3_PARALLEL_THRESHOLD"
ENV_PART_BYTES: Final = "IRODS_INGEST_S3_PART_BYTES"
ENV_PARTS_IN_FLIGHT: Final = "IRODS_INGEST_S3_PARTS_IN_FLIGHT"
ENV_PAGE_SIZE: Final = "IRODS_INGEST_S3_PAGE_SIZE"

CREDENTIALS_HINT: Final = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the S3 credentials Secret or --s3_keypair)"
_CREDENTIAL_CODES: Final = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken",
     "InvalidClientTokenId", "AuthorizationHeaderMalformed", "AllAccessDisabled"}
)
_RETRYABLE_CODES: Final = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestTimeout", "RequestTimeTooSkewed",
     "InternalError", "ServiceUnavailable", "503", "500", "502", "504"}
)
_MISSING_CODES: Final = frozenset({"NoSuchKey", "404", "NotFound"})
_NETWORK_ERRORS: Final = (
    boto_exc.HTTPClientError,  # ConnectionClosedError, ReadTimeoutError, ...
    boto_exc.ConnectionError,  # EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError
    boto_exc.ResponseStreamingError,
    boto_exc.IncompleteReadError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str  # without the quotes
    last_modified_ns: int


@dataclass(frozen=True)
class TransferSettings:
    """How one worker thread moves S3 objects: objects of at least ``parallel_threshold``
    bytes go as ranged GETs of ``part_bytes``, ``parts_in_flight`` at a time, each written
    at its offset into the iRODS object; at most ``parts_in_flight * part_bytes`` are held
    in memory per file. ``page_size`` keys are listed per ListObjectsV2 request."""

    parallel_threshold: int = 32 * MIB
    part_bytes: int = 8 * MIB
    parts_in_flight: int = 4
    page_size: int = LIST_PAGE_SIZE

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TransferSettings:
        env = os.environ if environ is None else environ
        defaults = cls()
        limits = {  # variable -> (field, smallest, largest)
            ENV_PARALLEL_THRESHOLD: ("parallel_threshold", 1, 2**50),
            ENV_PART_BYTES: ("part_bytes", 64 * 1024, 1024 * MIB),
            ENV_PARTS_IN_FLIGHT: ("parts_in_flight", 1, 64),
            ENV_PAGE_SIZE: ("page_size", 1, LIST_PAGE_SIZE),
        }
        values: dict[str, int] = {}
        for variable, (name, smallest, largest) in limits.items():
            raw = env.get(variable, "").strip()
            if not raw:
                values[name] = getattr(defaults, name)
                continue
            try:
                number = int(raw)
            except ValueError:
                number = -1
            if not smallest <= number <= largest:
                raise PermanentError(f"{variable}={raw!r} is not a whole number in {smallest}..{largest}; fix or unset it")
            values[name] = number
        return cls(**values)


@dataclass(frozen=True)
class ListPage:
    objects: list[S3Object]
    common_prefixes: list[str]
    next_token: str  # "" on the last page


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


@contextmanager
def s3_errors(action: str, where: str) -> Iterator[None]:
    """Translate boto errors for ``action`` on ``where`` (``/bucket/key``)."""
    try:
        yield
    except (boto_exc.NoCredentialsError, boto_exc.PartialCredentialsError) as exc:
        raise PermanentError(f"{action} {where}: no usable S3 credentials ({type(exc).__name__}); {CREDENTIALS_HINT}") from exc
    except boto_exc.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = f"{action} {where}: S3 error {code}" + (f" ({error.get('Message')})" if error.get("Message") else "")
        if code in _CREDENTIAL_CODES or status in (401, 403):
            raise PermanentError(f"{message}: S3 refused the credentials; {CREDENTIALS_HINT}") from exc
        if code in _MISSING_CODES:
            raise SourceVanished(f"{action} {where}: the object vanished from the bucket before it was synced") from exc
        if code == "PreconditionFailed":
            raise RetryableError(f"{action} {where}: the object changed during the transfer") from exc
        if code == "InvalidRange":
            raise RetryableError(f"{action} {where}: the object shrank during the transfer") from exc
        if code == "NoSuchBucket":
            raise PermanentError(f"{message}: check the bucket name") from exc
        if code in _RETRYABLE_CODES or status >= 500 or status == 429:
            raise RetryableError(message) from exc
        raise PermanentError(message) from exc
    except _NETWORK_ERRORS as exc:
        raise RetryableError(f"{action} {where}: connection to S3 lost: {exc}") from exc


class S3Bucket:
    """One bucket over one boto3 client (thread-safe once built)."""

    def __init__(self, source: S3Source, client: Any, transfer: TransferSettings | None = None) -> None:
        self.source = source
        self.client = client
        self.transfer = transfer or TransferSettings()

    @property
    def name(self) -> str:
        return self.source.bucket

    def where(self, key: str) -> str:
        return f"/{self.name}/{key}"

    def list_page(self, prefix: str, token: str = "") -> ListPage:
        """One ListObjectsV2 page of ``prefix`` (a full key prefix, "" or ending in "/")."""
        request: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix, "Delimiter": "/", "MaxKeys": self.transfer.page_size}
        if token:
            request["ContinuationToken"] = token
        with s3_errors("listing", self.where(prefix)):
            reply = self.client.list_objects_v2(**request)
        objects = [
            S3Object(
                key=item["Key"],
                size=int(item.get("Size", 0)),
                etag=str(item.get("ETag", "")).strip('"'),
                last_modified_ns=_ns(item["LastModified"]),
            )
            for item in reply.get("Contents", ())
        ]
        prefixes = [str(p["Prefix"]) for p in reply.get("CommonPrefixes", ())]
        next_token = str(reply.get("NextContinuationToken", "")) if reply.get("IsTruncated") else ""
        return ListPage(objects, prefixes, next_token)

    def head(self, key: str) -> S3Object:
        with s3_errors("reading metadata of", self.where(key)):
            reply = self.client.head_object(Bucket=self.name, Key=key)
        return S3Object(key, int(reply["ContentLength"]), str(reply.get("ETag", "")).strip('"'), _ns(reply["LastModified"]))

    def read(
        self, key: str, start: int = 0, end: int | None = None, chunk_bytes: int = CHUNK_BYTES, *, if_match: str = ""
    ) -> Iterator[bytes]:
        """The bytes ``start..end`` (end exclusive; None = to the end) in chunks of at most
        ``chunk_bytes``: one ranged GET, resumed from the last byte received if the stream
        breaks; memory stays at one chunk whatever the object's size.

        ``if_match`` (an ETag as listed) pins the read to that version of the object: the
        parts of one parallel transfer can never mix two versions. If the object changed
        since, :class:`PermanentError` says so (retrying with the old listing cannot help;
        the next run lists the new version)."""
        offset = start
        resumes = 0
        etag = f'"{if_match}"' if if_match else ""  # a resumed read must continue the same object
        while end is None or offset < end:
            request: dict[str, Any] = {"Bucket": self.name, "Key": key, "Range": f"bytes={offset}-" + ("" if end is None else str(end - 1))}
            if etag:
                request["IfMatch"] = etag
            try:
                with s3_errors("reading", self.where(key)):
                    try:
                        reply = self.client.get_object(**request)
                    except boto_exc.ClientError as exc:
                        if if_match and exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                            raise PermanentError(
                                f"reading {self.where(key)}: the object changed after it was listed (its ETag is no "
                                f"longer {if_match}); the next run syncs the new version"
                            ) from exc
                        raise
                    etag = etag or str(reply.get("ETag", ""))
                    body = reply["Body"]
                    try:
                        while chunk := body.read(chunk_bytes):
                            offset += len(chunk)
                            yield chunk
                    finally:
                        body.close()
            except RetryableError:
                resumes += 1
                if resumes > RESUMES_PER_READ:
                    raise
                continue
            return

    def put(self, key: str, data: bytes) -> None:
        """Write a small object (tests and tooling; the engine only reads)."""
        with s3_errors("writing", self.where(key)):
            self.client.put_object(Bucket=self.name, Key=key, Body=data)


def open_bucket(source: S3Source, environ: Mapping[str, str] | None = None) -> S3Bucket:
    """A bucket client from the source and the environment's credentials (never from Redis)."""
    env = os.environ if environ is None else environ
    transfer = TransferSettings.from_environment(env)
    options: dict[str, Any] = {
        "retries": {"max_attempts": 3, "mode": "standard"},
        "connect_timeout": 10,
        "read_timeout": 60,
        # every part in flight holds a connection, plus the listing
        "max_pool_connections": max(16, transfer.parts_in_flight + 2),
    }
    if source.endpoint:  # MinIO, Ceph and moto serve buckets by path, not by virtual host
        options["s3"] = {"addressing_style": "path"}
    config = botocore.config.Config(**options)
    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
        aws_session_token=env.get("AWS_SESSION_TOKEN") or None,
        region_name=source.region or env.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    client = session.client("s3", endpoint_url=source.endpoint_url(), use_ssl=not source.insecure, config=config)
    return S3Bucket(source, client, transfer)
