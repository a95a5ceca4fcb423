"""Job configuration: one typed, validated description of what a job does.

The CLI builds it from options, the operator from a SyncJob spec; the worker reads it
back from Redis. Validation collects every problem (field, message, fix) instead of
stopping at the first, and runs before anything touches iRODS.
"""

from __future__ import annotations

import enum
import hashlib
import json
import posixpath
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from irods_ingest.errors import ConfigError, ConfigProblem


class Operation(enum.StrEnum):
    """What happens to each source file (the incumbent's ``Operation`` names, CamelCased)."""

    REGISTER_SYNC = "RegisterSync"
    REGISTER_AS_REPLICA_SYNC = "RegisterAsReplicaSync"
    PUT = "Put"
    PUT_SYNC = "PutSync"
    PUT_APPEND = "PutAppend"
    NO_OP = "NoOp"

    @property
    def uploads(self) -> bool:
        return self in (Operation.PUT, Operation.PUT_SYNC, Operation.PUT_APPEND)

    @property
    def registers(self) -> bool:
        return self in (Operation.REGISTER_SYNC, Operation.REGISTER_AS_REPLICA_SYNC)


class DeleteMode(enum.StrEnum):
    """What happens in iRODS to entries that vanished from the source."""

    DO_NOT_DELETE = "DoNotDelete"
    UNREGISTER = "Unregister"
    TRASH = "Trash"
    NO_TRASH = "NoTrash"


class SymlinkPolicy(enum.StrEnum):
    REGISTER = "Register"  # register/put the link itself (its lstat), with a link_target AVU
    FOLLOW = "Follow"  # sync what the link points to; directory loops are detected
    SKIP = "Skip"  # count as skipped


class FileType(enum.StrEnum):
    REGULAR = "regular"
    DIRECTORY = "directory"
    CHARACTER = "character"
    BLOCK = "block"
    SOCKET = "socket"
    PIPE = "pipe"
    LINK = "link"


# The incumbent's compatibility matrix (irods_capability_automated_ingest 0.7.0,
# utils.delete_mode_is_compatible_with_operation): registering can only unregister,
# uploads own their bytes and may trash them, Put and NoOp never delete.
COMPATIBLE_DELETE_MODES: dict[Operation, frozenset[DeleteMode]] = {
    Operation.NO_OP: frozenset({DeleteMode.DO_NOT_DELETE}),
    Operation.REGISTER_SYNC: frozenset({DeleteMode.DO_NOT_DELETE, DeleteMode.UNREGISTER}),
    Operation.REGISTER_AS_REPLICA_SYNC: frozenset({DeleteMode.DO_NOT_DELETE, DeleteMode.UNREGISTER}),
    Operation.PUT: frozenset({DeleteMode.DO_NOT_DELETE}),
    Operation.PUT_SYNC: frozenset({DeleteMode.DO_NOT_DELETE, DeleteMode.TRASH, DeleteMode.NO_TRASH}),
    Operation.PUT_APPEND: frozenset({DeleteMode.DO_NOT_DELETE, DeleteMode.TRASH, DeleteMode.NO_TRASH}),
}


def delete_mode_compatible(operation: Operation, delete_mode: DeleteMode) -> bool:
    return delete_mode in COMPATIBLE_DELETE_MODES[operation]


# Failure records a run keeps in Redis (JobConfig.max_failure_records): the default, and the bounds.
DEFAULT_MAX_FAILURE_RECORDS = 1000
MIN_FAILURE_RECORDS = 1
MAX_FAILURE_RECORDS = 100_000

JOB_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,252}$")
# S3 bucket naming rules (general purpose buckets): 3-63 of lowercase letters, digits, '.'
# and '-', starting and ending with a letter or digit, no '..', not an IPv4 address.
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4_PATTERN = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
# The incumbent refused every delete mode but DoNotDelete for S3 sources (its #282). Here an
# object removed from the bucket is unregistered/trashed/deleted in iRODS as a vanished file
# is (the prefix's last listing page judges the whole prefix), so every mode the operation
# allows is allowed; this set stays as the one place to narrow that again.
S3_DELETE_MODES: frozenset[DeleteMode] = frozenset(DeleteMode)
BUCKET_NAME_FIX = "use 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"


def valid_bucket_name(bucket: str) -> bool:
    return bool(BUCKET_PATTERN.match(bucket)) and ".." not in bucket and not _IPV4_PATTERN.match(bucket)


@dataclass(frozen=True)
class S3Source:
    """An S3 bucket (or a prefix of it) to ingest. Credentials are never part of it: the
    worker reads them from ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``."""

    bucket: str
    endpoint: str | None = None  # https://host[:port], or host[:port]; None = AWS
    prefix: str = ""  # a "directory" of keys: "data/2024" lists keys under "data/2024/"
    region: str | None = None
    insecure: bool = False  # plain http to the endpoint

    def endpoint_url(self) -> str | None:
        """The endpoint as a URL: a bare ``host[:port]`` gets https, or http if insecure."""
        if self.endpoint is None or "://" in self.endpoint:
            return self.endpoint
        return f"{'http' if self.insecure else 'https'}://{self.endpoint}"

    @property
    def key_prefix(self) -> str:
        """The prefix every listed key starts with ("" or ending in "/")."""
        stripped = self.prefix.strip("/")
        return f"{stripped}/" if stripped else ""

    def key(self, relative: str) -> str:
        """The object key of ``relative`` (a path below the source prefix)."""
        return self.key_prefix + relative

    def physical_path(self, relative: str = "") -> str:
        """``/bucket/key``: how iRODS S3 resources name an object (and how failures name it)."""
        key = self.key(relative).rstrip("/") if relative else self.key_prefix.rstrip("/")
        return f"/{self.bucket}/{key}" if key else f"/{self.bucket}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> S3Source:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError([ConfigProblem(f"s3.{name}", "unknown setting", "remove it") for name in sorted(unknown)])
        return cls(**data)


@dataclass(frozen=True)
class JobConfig:
    """Everything a run needs except secrets (which never enter Redis)."""

    job_name: str
    source_path: str
    target_collection: str
    resource: str | None = None
    operation: Operation = Operation.REGISTER_SYNC
    delete_mode: DeleteMode = DeleteMode.DO_NOT_DELETE
    exclude_types: tuple[FileType, ...] = ()
    exclude_names: tuple[str, ...] = ()
    exclude_directories: tuple[str, ...] = ()
    include_names: tuple[str, ...] = ()
    files_per_task: int = 50
    max_retries: int = 3
    retry_backoff_seconds: float = 5.0
    task_timeout_seconds: int = 3600
    # Failure records kept per run (the first ones; the rest are only counted, as
    # failures_dropped): each may carry a 4 KB traceback, and Redis holds them in memory.
    max_failure_records: int = DEFAULT_MAX_FAILURE_RECORDS
    initial_ingest: bool = False
    ignore_cache: bool = False
    symlinks: SymlinkPolicy = SymlinkPolicy.REGISTER
    verify_checksum: bool = False
    handler_hash: str | None = None
    metadata: tuple[tuple[str, str, str], ...] = field(default=())
    s3: S3Source | None = None  # an S3 source instead of source_path (which is then "")

    @property
    def source_root(self) -> str:
        """The source as failures and hooks name it: the directory, or ``/bucket/prefix``."""
        return self.s3.physical_path() if self.s3 is not None else self.source_path

    def with_changes(self, **changes: Any) -> JobConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in list(data.items()):
            if isinstance(value, enum.Enum):
                data[key] = value.value
            elif isinstance(value, tuple):
                data[key] = [v.value if isinstance(v, enum.Enum) else v for v in value]
        data["metadata"] = [list(avu) for avu in self.metadata]
        if self.s3 is None:
            del data["s3"]  # the wire form of a filesystem job stays as it was
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError([ConfigProblem(name, "unknown setting", "remove it") for name in sorted(unknown)])
        values = dict(data)
        converters: dict[str, Any] = {
            "operation": Operation,
            "delete_mode": DeleteMode,
            "symlinks": SymlinkPolicy,
        }
        problems: list[ConfigProblem] = []
        for key, enum_type in converters.items():
            if key in values and not isinstance(values[key], enum_type):
                try:
                    values[key] = enum_type(values[key])
                except ValueError:
                    allowed = ", ".join(m.value for m in enum_type)
                    problems.append(ConfigProblem(key, f"unknown value {values[key]!r}", f"use one of {allowed}"))
        if "exclude_types" in values:
            converted: list[FileType] = []
            for item in values["exclude_types"]:
                try:
                    converted.append(item if isinstance(item, FileType) else FileType(item))
                except ValueError:
                    allowed = ", ".join(m.value for m in FileType)
                    problems.append(ConfigProblem("exclude_types", f"unknown file type {item!r}", f"use {allowed}"))
            values["exclude_types"] = tuple(converted)
        for key in ("exclude_names", "exclude_directories", "include_names"):
            if key in values:
                values[key] = tuple(values[key])
        if "metadata" in values:
            values["metadata"] = tuple(tuple(avu) for avu in values["metadata"])
        if isinstance(values.get("s3"), dict):
            try:
                values["s3"] = S3Source.from_dict(values["s3"])
            except ConfigError as exc:
                problems += exc.problems
            except TypeError as exc:
                problems.append(ConfigProblem("s3", f"incomplete S3 source: {exc}", "give at least the bucket"))
        if problems:
            raise ConfigError(problems)
        return cls(**values)


def cache_generation(config: JobConfig) -> str:
    """A digest of the settings that decide whether an unchanged file is already synced.

    Change any of them and every file must be looked at again, so the change cache of the
    old settings no longer applies.
    """
    return hashlib.blake2b(json.dumps(cache_settings(config)).encode(), digest_size=6).hexdigest()


def cache_settings(config: JobConfig) -> list[Any]:
    """The settings :func:`cache_generation` digests, as JSON-ready values: what a change
    cache handed from one job to another must match exactly (a digest could collide)."""
    relevant: list[Any] = [
        config.source_path,
        config.target_collection,
        config.resource,
        config.operation.value,
        config.symlinks.value,
        config.handler_hash,
        [list(avu) for avu in config.metadata],
    ]
    if config.s3 is not None:  # appended only for S3, so filesystem jobs keep their cache
        relevant.append(asdict(config.s3))
    return relevant


def normalize_collection(path: str) -> str:
    """``/zone/a//b/`` → ``/zone/a/b`` (without resolving ``..``, which validation rejects)."""
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts)


def validate(config: JobConfig) -> list[ConfigProblem]:
    """Every problem with ``config`` that can be found without touching iRODS."""
    problems: list[ConfigProblem] = []
    if not JOB_NAME_PATTERN.match(config.job_name):
        problems.append(
            ConfigProblem(
                "job_name",
                f"{config.job_name!r} is not a valid job name",
                "use letters, digits and . _ - : / @ (no braces or spaces), at most 253 characters",
            )
        )
    problems += _target_problems(config.target_collection)
    if config.s3 is not None:
        problems += _s3_problems(config)
    elif not config.source_path:
        problems.append(ConfigProblem("source_path", "no source given", "give a directory to ingest"))
    elif not posixpath.isabs(config.source_path):
        problems.append(ConfigProblem("source_path", f"{config.source_path!r} is not absolute", "use an absolute path"))
    if config.resource is not None and not config.resource.strip():
        problems.append(ConfigProblem("resource", "empty resource name", "omit it or name a root resource"))
    problems += _number_problems(config)
    for key in ("exclude_names", "exclude_directories", "include_names"):
        for pattern in getattr(config, key):
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append(ConfigProblem(key, f"invalid regular expression {pattern!r}: {exc}", "fix the regex"))
    problems += _operation_problems(config)
    return problems


def _target_problems(collection: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    if not collection.startswith("/"):
        problems.append(ConfigProblem("target_collection", f"{collection!r} is not absolute", "start it with /<zone>/"))
    elif normalize_collection(collection) == "/":
        problems.append(
            ConfigProblem(
                "target_collection",
                "the root collection / can only hold zones",
                "target a collection inside a zone, e.g. /tempZone/home/rods/ingest",
            )
        )
    elif ".." in collection.split("/") or "." in collection.split("/"):
        problems.append(ConfigProblem("target_collection", f"{collection!r} has . or .. segments", "spell the path out"))
    return problems


def _s3_problems(config: JobConfig) -> list[ConfigProblem]:
    s3 = config.s3
    assert s3 is not None
    problems: list[ConfigProblem] = []
    if config.source_path:
        problems.append(
            ConfigProblem("source_path", "both a source path and an S3 source are given", "give exactly one of them")
        )
    bucket = s3.bucket
    if not valid_bucket_name(bucket):
        problems.append(ConfigProblem("s3.bucket", f"{bucket!r} is not a valid bucket name", BUCKET_NAME_FIX))
    if s3.endpoint is not None:
        scheme = s3.endpoint.split("://", 1)[0] if "://" in s3.endpoint else ""
        if scheme not in ("", "http", "https"):
            problems.append(ConfigProblem("s3.endpoint", f"has scheme {scheme!r}", "use https://host[:port] or host[:port]"))
        elif scheme == "http" and not s3.insecure:
            problems.append(
                ConfigProblem("s3.endpoint", "uses plain http, which sends credentials in the clear",
                              "use https, or set insecure to accept http")
            )
        elif not s3.endpoint.split("://", 1)[-1].strip("/"):
            problems.append(ConfigProblem("s3.endpoint", "names no host", "use https://host[:port]"))
    if any(part in (".", "..") for part in s3.prefix.split("/")):
        problems.append(ConfigProblem("s3.prefix", f"{s3.prefix!r} has . or .. segments", "spell the prefix out"))
    if config.delete_mode not in S3_DELETE_MODES:
        problems.append(
            ConfigProblem(
                "delete_mode",
                f"{config.delete_mode.value} is not supported for an S3 source",
                f"use {DeleteMode.DO_NOT_DELETE.value} with an S3 source",
            )
        )
    return problems


def _number_problems(config: JobConfig) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    if not 1 <= config.files_per_task <= 10000:
        problems.append(ConfigProblem("files_per_task", f"{config.files_per_task} is out of range", "use 1..10000"))
    if not 0 <= config.max_retries <= 100:
        problems.append(ConfigProblem("max_retries", f"{config.max_retries} is out of range", "use 0..100"))
    if config.retry_backoff_seconds < 0:
        problems.append(ConfigProblem("retry_backoff_seconds", "must not be negative", "use 0 or more"))
    if config.task_timeout_seconds < 1:
        problems.append(ConfigProblem("task_timeout_seconds", "must be at least 1", "use a positive number"))
    if not MIN_FAILURE_RECORDS <= config.max_failure_records <= MAX_FAILURE_RECORDS:
        problems.append(
            ConfigProblem(
                "max_failure_records",
                f"{config.max_failure_records} is out of range",
                f"use {MIN_FAILURE_RECORDS}..{MAX_FAILURE_RECORDS} (default {DEFAULT_MAX_FAILURE_RECORDS})",
            )
        )
    return problems


def _operation_problems(config: JobConfig) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    if not delete_mode_compatible(config.operation, config.delete_mode):
        allowed = ", ".join(sorted(m.value for m in COMPATIBLE_DELETE_MODES[config.operation]))
        problems.append(
            ConfigProblem(
                "delete_mode",
                f"{config.delete_mode.value} is incompatible with operation {config.operation.value}",
                f"with {config.operation.value} use one of: {allowed}",
            )
        )
    # A handler's to_resource may supply the resource per file, so only a handler-less job
    # can be judged here; the worker fails such a file with the same message otherwise.
    if config.operation is Operation.REGISTER_AS_REPLICA_SYNC and not config.resource and not config.handler_hash:
        problems.append(
            ConfigProblem(
                "resource",
                "RegisterAsReplicaSync needs a resource to hold the extra replica",
                "set the resource (or a handler's to_resource)",
            )
        )
    return problems


def check(config: JobConfig) -> JobConfig:
    """Return ``config`` if valid, else raise :class:`ConfigError` listing every problem."""
    problems = validate(config)
    if problems:
        raise ConfigError(problems)
    return config
