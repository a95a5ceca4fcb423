"""The parsed SyncJob spec: typed values, their defaults and their bounds.

The CRD schema carries the same numbers; tests/operator/test_crd.py holds the two together.
Pure data: parsing lives in :mod:`.sections`, the rules in :mod:`.rules`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from irods_ingest_operator.constants import DeleteMode, FileType, ImagePullPolicy, Operation, SymlinkPolicy

# --- Defaults ---------------------------------------------------------------------------------
DEFAULT_OPERATION: Final = Operation.REGISTER_SYNC
DEFAULT_DELETE_MODE: Final = DeleteMode.DO_NOT_DELETE
DEFAULT_SYMLINKS: Final = SymlinkPolicy.REGISTER
DEFAULT_HANDLER_KEY: Final = "handler.py"
DEFAULT_ENVIRONMENT_KEY: Final = "irods_environment.json"
DEFAULT_PASSWORD_KEY: Final = "password"
DEFAULT_ACCESS_KEY_ID_KEY: Final = "AWS_ACCESS_KEY_ID"
DEFAULT_SECRET_ACCESS_KEY_KEY: Final = "AWS_SECRET_ACCESS_KEY"

DEFAULT_MIN_REPLICAS: Final = 0
DEFAULT_MAX_REPLICAS: Final = 4
DEFAULT_CONCURRENCY: Final = 1
DEFAULT_FILES_PER_TASK: Final = 50
DEFAULT_TASK_TIMEOUT_SECONDS: Final = 3600
DEFAULT_MAX_RETRIES: Final = 3
DEFAULT_RETRY_BACKOFF_SECONDS: Final = 5

# --- Bounds -----------------------------------------------------------------------------------
MAX_REPLICAS_LIMIT: Final = 1000
MAX_CONCURRENCY: Final = 256
MAX_FILES_PER_TASK: Final = 10000
MAX_TASK_TIMEOUT_SECONDS: Final = 7 * 24 * 3600
MAX_RETRIES_LIMIT: Final = 100
MAX_RETRY_BACKOFF_SECONDS: Final = 3600


# --- The parsed spec --------------------------------------------------------------------------
@dataclass(frozen=True)
class PathSource:
    path: str
    # A core/v1 volume source ({"persistentVolumeClaim": {...}}), mounted read-only at ``path``.
    volume: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class S3CredentialsRef:
    secret_name: str
    access_key_id_key: str = DEFAULT_ACCESS_KEY_ID_KEY
    secret_access_key_key: str = DEFAULT_SECRET_ACCESS_KEY_KEY


@dataclass(frozen=True)
class S3Transfer:
    """How workers move S3 data (unset: the workers' defaults, see irods_ingest.s3_io)."""

    parallel_threshold_mib: int | None = None  # objects this large or larger go in parallel parts
    part_size_mib: int | None = None
    parts_in_flight: int | None = None  # parts per object at once; memory is about parts times part size
    list_page_size: int | None = None  # keys per listing request (and per scan task)


@dataclass(frozen=True)
class S3Source:
    bucket: str
    endpoint: str | None = None
    prefix: str = ""
    region: str | None = None
    insecure: bool = False
    credentials: S3CredentialsRef | None = None
    transfer: S3Transfer = S3Transfer()

    def endpoint_url(self) -> str | None:
        """The endpoint as a URL: a bare ``host[:port]`` (the incumbent's form) gets https, or http if insecure."""
        if self.endpoint is None or "://" in self.endpoint:
            return self.endpoint
        return f"{'http' if self.insecure else 'https'}://{self.endpoint}"


Source = PathSource | S3Source


@dataclass(frozen=True)
class ConnectionSecretRef:
    name: str
    environment_key: str = DEFAULT_ENVIRONMENT_KEY
    password_key: str = DEFAULT_PASSWORD_KEY


@dataclass(frozen=True)
class Destination:
    collection: str
    connection_secret: ConnectionSecretRef
    resource: str | None = None


@dataclass(frozen=True)
class Filter:
    exclude_types: frozenset[FileType] = frozenset()
    exclude_names: tuple[str, ...] = ()
    exclude_directories: tuple[str, ...] = ()
    include_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class HandlerRef:
    config_map_name: str
    key: str = DEFAULT_HANDLER_KEY


@dataclass(frozen=True)
class MetadataTemplate:
    attribute: str
    value: str
    units: str | None = None


@dataclass(frozen=True)
class Workers:
    image: str | None = None
    image_pull_policy: ImagePullPolicy | None = None
    min_replicas: int = DEFAULT_MIN_REPLICAS
    max_replicas: int = DEFAULT_MAX_REPLICAS
    concurrency: int = DEFAULT_CONCURRENCY
    resources: Mapping[str, Any] = field(default_factory=dict)
    files_per_task: int = DEFAULT_FILES_PER_TASK
    task_timeout_seconds: int = DEFAULT_TASK_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff_seconds: int = DEFAULT_RETRY_BACKOFF_SECONDS


@dataclass(frozen=True)
class SyncJobSpec:
    source: Source
    destination: Destination
    operation: Operation = DEFAULT_OPERATION
    delete_mode: DeleteMode = DEFAULT_DELETE_MODE
    filter: Filter = Filter()
    handler: HandlerRef | None = None
    metadata: tuple[MetadataTemplate, ...] = ()
    schedule: str | None = None
    suspend: bool = False
    run_now: str | None = None
    retry_failed: str | None = None
    workers: Workers = Workers()
    initial_ingest: bool = False
    ignore_cache: bool = False
    symlinks: SymlinkPolicy = DEFAULT_SYMLINKS
    verify_checksum: bool = False
