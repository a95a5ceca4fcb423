"""Typed parsing and validation of a SyncJob spec.

The API server (v1.20) checks types, enums, bounds and patterns from the CRD schema and fills the
defaults, but it cannot check rules that span fields, nor compile a regex or a cron expression.
This module checks everything again (the CLI reads specs that never saw an API server) and adds
those cross-field rules. It collects every problem instead of stopping at the first, so one
``Stalled`` condition can tell the user all that is wrong, each with the field and a fix.

Pure: no kopf, no kubernetes, no I/O.
"""

from __future__ import annotations

import copy
import posixpath
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from croniter import CroniterError, croniter

from irods_ingest.config import BUCKET_NAME_FIX, delete_mode_compatible, valid_bucket_name
from irods_ingest.config import COMPATIBLE_DELETE_MODES as ENGINE_COMPATIBLE_DELETE_MODES
from irods_ingest.config import S3_DELETE_MODES as ENGINE_S3_DELETE_MODES
from irods_ingest_operator.constants import (
    MAX_LABEL_VALUE_LENGTH,
    RESERVED_WORKER_PATHS,
    DeleteMode,
    FileType,
    ImagePullPolicy,
    Operation,
    SymlinkPolicy,
)

# --- Defaults and bounds (the CRD schema carries the same numbers; tests/operator/test_crd.py
# holds the two together) ---------------------------------------------------------------------
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

MAX_REPLICAS_LIMIT: Final = 1000
MAX_CONCURRENCY: Final = 256
MAX_FILES_PER_TASK: Final = 10000
MAX_TASK_TIMEOUT_SECONDS: Final = 7 * 24 * 3600
MAX_RETRIES_LIMIT: Final = 100
MAX_RETRY_BACKOFF_SECONDS: Final = 3600

# --- The incumbent's operation x deleteMode compatibility matrix ------------------------------
# Source: irods-capability-automated-ingest 0.7.0, utils.py, delete_mode_is_compatible_with_operation(),
# checked by tasks/filesystem_tasks.py before a filesystem sync touches anything and exercised by
# test/test_delete_modes.py (cases 0-23, six operations x four delete modes). Two quirks of that test
# file, so nobody "fixes" this table from it: cases 0 (NO_OP x DO_NOT_DELETE) and 12 (PUT x
# DO_NOT_DELETE) are named "incompatible" but skipped, while the function accepts DO_NOT_DELETE for
# every operation; and case 21 repeats PUT_SYNC x UNREGISTER under the same method name (so case 17
# is shadowed and PUT_APPEND x UNREGISTER is never run), while the function rejects it.
# The table itself lives in the engine (irods_ingest.config), shared with the CLI and workers.
COMPATIBLE_DELETE_MODES: Final = ENGINE_COMPATIBLE_DELETE_MODES
# That release refused every deleteMode but DoNotDelete for an S3 source (their #282); the engine
# deletes what left the bucket per prefix, so its set (every mode, today) is the one rule.
S3_DELETE_MODES: Final = frozenset(DeleteMode(str(mode)) for mode in ENGINE_S3_DELETE_MODES)


def delete_mode_is_compatible(operation: Operation, delete_mode: DeleteMode) -> bool:
    return delete_mode_compatible(operation, delete_mode)


# Fields a metadata template may use, as ``{name}`` (str.format syntax without conversions,
# format specs, attribute or index access: the worker renders with format_map over exactly these).
METADATA_TEMPLATE_FIELDS: Final = frozenset(
    {
        "job",  # SyncJob name
        "namespace",  # SyncJob namespace
        "run",  # run id
        "path",  # source path of the file (absolute in the worker pod, or the S3 key)
        "relativePath",  # path relative to the source root
        "name",  # file name
        "logicalPath",  # iRODS logical path of the data object
        "collection",  # destination collection of the job
        "size",  # bytes
        "mtime",  # modification time, integer seconds since the epoch
    }
)

# Volume source kinds a core/v1 Volume can carry (every member but "name").
VOLUME_SOURCE_KINDS: Final = frozenset(
    {
        "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "configMap", "csi",
        "downwardAPI", "emptyDir", "ephemeral", "fc", "flexVolume", "flocker", "gcePersistentDisk",
        "gitRepo", "glusterfs", "hostPath", "image", "iscsi", "nfs", "persistentVolumeClaim",
        "photonPersistentDisk", "portworxVolume", "projected", "quobyte", "rbd", "scaleIO", "secret",
        "storageos", "vsphereVolume",
    }
)  # fmt: skip

CRON_MACROS: Final = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_OBJECT_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_MAX_NAME_LENGTH: Final = 253
_CRON_PROBE_START: Final = datetime(2000, 1, 1, tzinfo=UTC)


# --- Problems ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpecProblem:
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} ({self.fix})"


class InvalidSpecError(ValueError):
    """The spec cannot run; ``problems`` lists every reason, in spec order."""

    def __init__(self, problems: Sequence[SpecProblem]) -> None:
        self.problems: tuple[SpecProblem, ...] = tuple(problems)
        super().__init__(summarize_problems(self.problems))


def summarize_problems(problems: Sequence[SpecProblem], *, limit: int = 3) -> str:
    """A one-line summary for a condition message: the first few problems, then a count."""
    shown = "; ".join(str(p) for p in problems[:limit])
    rest = len(problems) - limit
    return f"{shown}; and {rest} more" if rest > 0 else shown


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


# --- Entry points -----------------------------------------------------------------------------
def parse_spec(raw: Mapping[str, Any]) -> SyncJobSpec:
    """Parse ``spec`` of a SyncJob; raise InvalidSpecError listing every problem."""
    reader = _SpecReader()
    spec = reader.spec(raw)
    if reader.problems or spec is None:
        raise InvalidSpecError(reader.problems)
    return spec


def parse_syncjob(body: Mapping[str, Any]) -> SyncJobSpec:
    """Parse a whole SyncJob object: its name's limits plus its spec, problems collected together."""
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    problems = check_job_name(name) if isinstance(name, str) else []
    reader = _SpecReader()
    spec = reader.spec(body.get("spec"))
    problems += reader.problems
    if problems or spec is None:
        raise InvalidSpecError(problems)
    return spec


def spec_problems(raw: Mapping[str, Any]) -> list[SpecProblem]:
    reader = _SpecReader()
    reader.spec(raw)
    return list(reader.problems)


def check_job_name(name: str) -> list[SpecProblem]:
    """The job name becomes a label value (``app.kubernetes.io/instance``): at most 63 characters."""
    if len(name) > MAX_LABEL_VALUE_LENGTH:
        return [
            SpecProblem(
                "metadata.name",
                f"is {len(name)} characters; the worker labels allow at most {MAX_LABEL_VALUE_LENGTH}",
                f"rename the SyncJob to at most {MAX_LABEL_VALUE_LENGTH} characters",
            )
        ]
    return []


def next_fire_time(schedule: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``schedule`` fires (UTC, as CronJob without a time zone)."""
    result = croniter(schedule, after.astimezone(UTC)).get_next(datetime)
    assert isinstance(result, datetime)
    return result


def check_collection(collection: str) -> str | None:
    """Why ``collection`` cannot be a destination, or None when it can."""
    if not collection.startswith("/"):
        return "must be an absolute iRODS path"
    if collection == "/":
        return "must not be the root collection"
    if collection.endswith("/"):
        return "must not end with '/'"
    segments = collection[1:].split("/")
    if "" in segments:
        return "must not contain an empty segment ('//')"
    if ".." in segments or "." in segments:
        return "must not contain '.' or '..' segments"
    return None


def check_schedule(schedule: str) -> str | None:
    """Why ``schedule`` is not a usable cron expression, or None when it is.

    Five fields or a macro, as a CronJob: croniter would read a sixth field as seconds.
    """
    fields = schedule.split()
    is_macro = len(fields) == 1 and fields[0] in CRON_MACROS
    if not is_macro and len(fields) != 5:
        return f"has {len(fields)} fields; a schedule has five (minute hour day month weekday) or is a macro"
    try:
        # Probing for a next time also catches expressions that parse but never fire ("0 0 30 2 *").
        croniter(schedule, _CRON_PROBE_START).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as error:
        return f"is not a valid cron expression: {error}"
    return None


def check_metadata_template(template: str) -> str | None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        return f"is not a valid template: {error}"
    for _literal, name, format_spec, conversion in parsed:
        if name is None:
            continue
        if conversion or format_spec:
            return f"formats field '{name}' with '!' or ':'; only plain {{field}} is supported"
        if name not in METADATA_TEMPLATE_FIELDS:
            return f"uses unknown field '{{{name}}}'"
    return None


# --- The reader -------------------------------------------------------------------------------
_E = TypeVar("_E", bound=StrEnum)

_SPEC_KEYS: Final = frozenset(
    {
        "source", "destination", "operation", "deleteMode", "filter", "handler", "metadata", "schedule",
        "suspend", "runNow", "retryFailed", "workers", "initialIngest", "ignoreCache", "symlinks",
        "verifyChecksum",
    }
)  # fmt: skip
_SOURCE_KEYS: Final = frozenset({"path", "volume", "s3"})
_S3_KEYS: Final = frozenset({"endpoint", "bucket", "prefix", "region", "insecure", "credentialsSecret", "transfer"})
_S3_TRANSFER_KEYS: Final = frozenset({"parallelThresholdMiB", "partSizeMiB", "partsInFlight", "listPageSize"})
_S3_SECRET_KEYS: Final = frozenset({"name", "accessKeyIdKey", "secretAccessKeyKey"})
_DESTINATION_KEYS: Final = frozenset({"collection", "resource", "connectionSecret"})
_CONNECTION_SECRET_KEYS: Final = frozenset({"name", "environmentKey", "passwordKey"})
_FILTER_KEYS: Final = frozenset({"excludeTypes", "excludeNames", "excludeDirectories", "includeNames"})
_HANDLER_KEYS: Final = frozenset({"configMapRef"})
_CONFIG_MAP_REF_KEYS: Final = frozenset({"name", "key"})
_METADATA_KEYS: Final = frozenset({"attribute", "value", "units"})
_WORKERS_KEYS: Final = frozenset(
    {
        "image", "imagePullPolicy", "minReplicas", "maxReplicas", "concurrency", "resources",
        "filesPerTask", "taskTimeoutSeconds", "maxRetries", "retryBackoffSeconds",
    }
)  # fmt: skip
_RESOURCES_KEYS: Final = frozenset({"limits", "requests", "claims"})


class _SpecReader:
    """Reads one spec, recording problems and carrying on with a stand-in value after each."""

    def __init__(self) -> None:
        self.problems: list[SpecProblem] = []

    def problem(self, field_path: str, message: str, fix: str) -> None:
        self.problems.append(SpecProblem(field_path, message, fix))

    # -- typed accessors --
    def obj(self, raw: object, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.problem(path, f"must be an object, not {_kind(raw)}", f"write {path} as a mapping of fields")
            return {}
        for key in raw:
            if key not in allowed:
                self.problem(
                    f"{path}.{key}",
                    "is not a known field",
                    f"remove it or use one of: {', '.join(sorted(allowed))}",
                )
        return raw

    def string(self, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
        value = obj.get(key)
        where = f"{path}.{key}"
        if value is None:
            if required:
                self.problem(where, "is required", f"set {where}")
            return None
        if not isinstance(value, str):
            self.problem(where, f"must be a string, not {_kind(value)}", f"quote the value of {where}")
            return None
        if required and not value:
            self.problem(where, "must not be empty", f"set {where}")
            return None
        return value

    def name(self, obj: Mapping[str, Any], key: str, path: str, *, what: str) -> str | None:
        value = self.string(obj, key, path, required=True)
        if value is not None and (len(value) > _MAX_NAME_LENGTH or not _DNS_SUBDOMAIN.match(value)):
            self.problem(
                f"{path}.{key}",
                f"'{value}' is not a valid {what} name",
                "use lower-case letters, digits, '-' and '.', at most 253 characters",
            )
            return None
        return value

    def object_key(self, obj: Mapping[str, Any], key: str, path: str, default: str) -> str:
        value = self.string(obj, key, path)
        if value is None:
            return default
        if len(value) > _MAX_NAME_LENGTH or not _OBJECT_KEY.match(value):
            self.problem(
                f"{path}.{key}", f"'{value}' is not a valid key", "use letters, digits, '-', '_' and '.'"
            )
            return default
        return value

    def boolean(self, obj: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(
                f"{path}.{key}", f"must be true or false, not {_kind(value)}", "write true or false unquoted"
            )
            return default
        return value

    def integer(
        self, obj: Mapping[str, Any], key: str, path: str, default: int, *, minimum: int, maximum: int
    ) -> int:
        value = obj.get(key)
        where = f"{path}.{key}"
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(where, f"must be an integer, not {_kind(value)}", f"write {where} as a whole number")
            return default
        if not minimum <= value <= maximum:
            self.problem(
                where, f"is {value}; it must be between {minimum} and {maximum}", f"set {where} in range"
            )
            return default
        return value

    def enum(self, obj: Mapping[str, Any], key: str, path: str, kind: type[_E], default: _E) -> _E:
        value = obj.get(key)
        if value is None:
            return default
        try:
            return kind(value)
        except ValueError:
            self.problem(f"{path}.{key}", f"{value!r} is not allowed", f"use one of: {', '.join(kind)}")
            return default

    def strings(self, obj: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        value = obj.get(key)
        where = f"{path}.{key}"
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(
                where, "must be a list of strings", f"write {where} as a YAML list of quoted strings"
            )
            return ()
        return tuple(value)

    def regexes(self, obj: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        patterns = self.strings(obj, key, path)
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as error:
                self.problem(
                    f"{path}.{key}[{index}]",
                    f"{pattern!r} is not a valid regular expression: {error}",
                    "fix the expression (Python re syntax)",
                )
        return patterns

    # -- sections --
    def spec(self, raw: object) -> SyncJobSpec | None:
        if raw is None:
            self.problem("spec", "is required", "add a spec with at least source and destination")
            return None
        spec = self.obj(raw, "spec", _SPEC_KEYS)
        if not spec:
            if isinstance(raw, Mapping):
                self.problem("spec.source", "is required", "set source.path or source.s3")
                self.problem(
                    "spec.destination", "is required", "set destination.collection and connectionSecret"
                )
            return None
        source = self.source(spec.get("source"))
        destination = self.destination(spec.get("destination"))
        operation = self.enum(spec, "operation", "spec", Operation, DEFAULT_OPERATION)
        delete_mode = self.enum(spec, "deleteMode", "spec", DeleteMode, DEFAULT_DELETE_MODE)
        handler = self.handler(spec.get("handler"))
        workers = self.workers(spec.get("workers"))
        self.delete_mode_rules(operation, delete_mode, source)
        if (
            operation is Operation.REGISTER_AS_REPLICA_SYNC
            and destination is not None
            and destination.resource is None
            and handler is None
        ):
            # sync_irods.py (0.7.0) raises "no resource name defined" for every existing file otherwise.
            self.problem(
                "spec.destination.resource",
                "is required by operation RegisterAsReplicaSync (the replica needs a target resource)",
                "set destination.resource, or a handler whose to_resource() names one",
            )
        schedule = self.string(spec, "schedule", "spec") or None
        if schedule is not None and (why := check_schedule(schedule)) is not None:
            self.problem(
                "spec.schedule", f"{schedule!r} {why}", "use five cron fields, e.g. '0 2 * * *', or @daily"
            )
        spec_filter = self.filter(spec.get("filter"))
        metadata = self.metadata(spec.get("metadata"))
        suspend = self.boolean(spec, "suspend", "spec", False)
        run_now = self.string(spec, "runNow", "spec") or None
        retry_failed = self.string(spec, "retryFailed", "spec") or None
        initial_ingest = self.boolean(spec, "initialIngest", "spec", False)
        ignore_cache = self.boolean(spec, "ignoreCache", "spec", False)
        symlinks = self.enum(spec, "symlinks", "spec", SymlinkPolicy, DEFAULT_SYMLINKS)
        verify_checksum = self.boolean(spec, "verifyChecksum", "spec", False)
        if source is None or destination is None:
            return None
        return SyncJobSpec(
            source=source,
            destination=destination,
            operation=operation,
            delete_mode=delete_mode,
            filter=spec_filter,
            handler=handler,
            metadata=metadata,
            schedule=schedule,
            suspend=suspend,
            run_now=run_now,
            retry_failed=retry_failed,
            workers=workers,
            initial_ingest=initial_ingest,
            ignore_cache=ignore_cache,
            symlinks=symlinks,
            verify_checksum=verify_checksum,
        )

    def delete_mode_rules(self, operation: Operation, delete_mode: DeleteMode, source: Source | None) -> None:
        if not delete_mode_is_compatible(operation, delete_mode):
            allowed = ", ".join(mode for mode in DeleteMode if mode in COMPATIBLE_DELETE_MODES[operation])
            self.problem(
                "spec.deleteMode",
                f"{delete_mode} cannot be used with operation {operation}",
                f"with {operation} use deleteMode {allowed}, or choose another operation",
            )
        elif isinstance(source, S3Source) and delete_mode not in S3_DELETE_MODES:
            self.problem(
                "spec.deleteMode",
                f"{delete_mode} is not supported for an S3 source",
                f"use deleteMode {DeleteMode.DO_NOT_DELETE} with source.s3",
            )

    def source(self, raw: object) -> Source | None:
        path = "spec.source"
        if raw is None:
            self.problem(path, "is required", "set source.path (with source.volume) or source.s3")
            return None
        source = self.obj(raw, path, _SOURCE_KEYS)
        has_path = source.get("path") is not None
        has_s3 = source.get("s3") is not None
        if has_path == has_s3:
            self.problem(
                path,
                "sets both path and s3" if has_path else "sets neither path nor s3",
                "set exactly one of source.path and source.s3",
            )
            return None
        if has_s3:
            if source.get("volume") is not None:
                self.problem(f"{path}.volume", "is only used with source.path", "remove source.volume")
            return self.s3(source["s3"])
        return self.path_source(source)

    def path_source(self, source: Mapping[str, Any]) -> PathSource | None:
        value = self.string(source, "path", "spec.source", required=True)
        volume = self.volume(source.get("volume"))
        if value is None:
            return None
        why = _check_source_path(value)
        if why is not None:
            self.problem("spec.source.path", f"'{value}' {why}", "use an absolute, normalised directory path")
            return None
        return PathSource(path=value, volume=volume)

    def volume(self, raw: object) -> Mapping[str, Any] | None:
        where = "spec.source.volume"
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            self.problem(
                where,
                f"must be an object, not {_kind(raw)}",
                "write one volume source, e.g. persistentVolumeClaim",
            )
            return None
        if "name" in raw:
            self.problem(
                f"{where}.name", "is set by the operator", "remove name; give only the volume source"
            )
        kinds = [key for key in raw if key != "name"]
        unknown = [key for key in kinds if key not in VOLUME_SOURCE_KINDS]
        if unknown:
            self.problem(
                where,
                f"has unknown volume source {', '.join(unknown)}",
                "use a core/v1 volume source, e.g. persistentVolumeClaim",
            )
        elif len(kinds) != 1:
            self.problem(
                where,
                f"must hold exactly one volume source, not {len(kinds)}",
                "keep one, e.g. persistentVolumeClaim",
            )
        elif not isinstance(raw[kinds[0]], Mapping):
            self.problem(f"{where}.{kinds[0]}", "must be an object", f"write {kinds[0]} as a mapping")
        return {key: copy.deepcopy(raw[key]) for key in kinds}

    def s3(self, raw: object) -> S3Source | None:
        path = "spec.source.s3"
        if not isinstance(raw, Mapping):
            self.obj(raw, path, _S3_KEYS)
            return None
        s3 = self.obj(raw, path, _S3_KEYS)
        bucket = self.string(s3, "bucket", path, required=True)
        if bucket is not None and not valid_bucket_name(bucket):  # else the engine refuses it at start
            self.problem(f"{path}.bucket", f"'{bucket}' is not a valid bucket name", BUCKET_NAME_FIX)
        endpoint = self.string(s3, "endpoint", path) or None
        insecure = self.boolean(s3, "insecure", path, False)
        if endpoint is not None:
            scheme = urlsplit(endpoint).scheme if "://" in endpoint else ""
            if scheme not in ("", "http", "https"):
                self.problem(
                    f"{path}.endpoint", f"has scheme '{scheme}'", "use https://host[:port] or host[:port]"
                )
            elif scheme == "http" and not insecure:
                self.problem(
                    f"{path}.endpoint",
                    "uses plain http, which sends credentials in the clear",
                    "use https, or set source.s3.insecure: true to accept http",
                )
        credentials = None
        if s3.get("credentialsSecret") is not None:
            secret_path = f"{path}.credentialsSecret"
            secret = self.obj(s3["credentialsSecret"], secret_path, _S3_SECRET_KEYS)
            secret_name = self.name(secret, "name", secret_path, what="Secret")
            credentials = S3CredentialsRef(
                secret_name=secret_name or "",
                access_key_id_key=self.object_key(
                    secret, "accessKeyIdKey", secret_path, DEFAULT_ACCESS_KEY_ID_KEY
                ),
                secret_access_key_key=self.object_key(
                    secret, "secretAccessKeyKey", secret_path, DEFAULT_SECRET_ACCESS_KEY_KEY
                ),
            )
        transfer = self.s3_transfer(s3.get("transfer"), f"{path}.transfer")
        if bucket is None:
            return None
        return S3Source(
            bucket=bucket,
            endpoint=endpoint,
            prefix=self.string(s3, "prefix", path) or "",
            region=self.string(s3, "region", path) or None,
            insecure=insecure,
            credentials=credentials,
            transfer=transfer,
        )

    def s3_transfer(self, raw: object, path: str) -> S3Transfer:
        transfer = self.obj(raw, path, _S3_TRANSFER_KEYS)

        def optional(key: str, minimum: int, maximum: int) -> int | None:
            if transfer.get(key) is None:
                return None
            return self.integer(transfer, key, path, minimum, minimum=minimum, maximum=maximum)

        return S3Transfer(
            parallel_threshold_mib=optional("parallelThresholdMiB", 1, 1024 * 1024),
            part_size_mib=optional("partSizeMiB", 1, 1024),
            parts_in_flight=optional("partsInFlight", 1, 64),
            list_page_size=optional("listPageSize", 1, 1000),
        )

    def destination(self, raw: object) -> Destination | None:
        path = "spec.destination"
        if raw is None:
            self.problem(path, "is required", "set destination.collection and destination.connectionSecret")
            return None
        destination = self.obj(raw, path, _DESTINATION_KEYS)
        collection = self.string(destination, "collection", path, required=True)
        if collection is not None and (why := check_collection(collection)) is not None:
            self.problem(
                f"{path}.collection",
                f"'{collection}' {why}",
                "use an absolute collection such as /tempZone/home/alice/ingest",
            )
            collection = None
        secret_path = f"{path}.connectionSecret"
        secret_name: str | None = None
        environment_key, password_key = DEFAULT_ENVIRONMENT_KEY, DEFAULT_PASSWORD_KEY
        if destination.get("connectionSecret") is None:
            self.problem(
                secret_path, "is required", "name the Secret holding irods_environment.json and password"
            )
        else:
            secret = self.obj(destination["connectionSecret"], secret_path, _CONNECTION_SECRET_KEYS)
            secret_name = self.name(secret, "name", secret_path, what="Secret")
            environment_key = self.object_key(secret, "environmentKey", secret_path, DEFAULT_ENVIRONMENT_KEY)
            password_key = self.object_key(secret, "passwordKey", secret_path, DEFAULT_PASSWORD_KEY)
        resource = self.string(destination, "resource", path) or None
        if collection is None or secret_name is None:
            return None
        return Destination(
            collection=collection,
            connection_secret=ConnectionSecretRef(secret_name, environment_key, password_key),
            resource=resource,
        )

    def filter(self, raw: object) -> Filter:
        path = "spec.filter"
        spec_filter = self.obj(raw, path, _FILTER_KEYS)
        types: set[FileType] = set()
        for index, value in enumerate(self.strings(spec_filter, "excludeTypes", path)):
            try:
                types.add(FileType(value))
            except ValueError:
                self.problem(
                    f"{path}.excludeTypes[{index}]",
                    f"{value!r} is not a file type",
                    f"use one of: {', '.join(FileType)}",
                )
        return Filter(
            exclude_types=frozenset(types),
            exclude_names=self.regexes(spec_filter, "excludeNames", path),
            exclude_directories=self.regexes(spec_filter, "excludeDirectories", path),
            include_names=self.regexes(spec_filter, "includeNames", path),
        )

    def handler(self, raw: object) -> HandlerRef | None:
        path = "spec.handler"
        if raw is None:
            return None
        handler = self.obj(raw, path, _HANDLER_KEYS)
        ref_path = f"{path}.configMapRef"
        if handler.get("configMapRef") is None:
            if isinstance(raw, Mapping):
                self.problem(ref_path, "is required", "name the ConfigMap holding the handler module")
            return None
        ref = self.obj(handler["configMapRef"], ref_path, _CONFIG_MAP_REF_KEYS)
        name = self.name(ref, "name", ref_path, what="ConfigMap")
        key = self.object_key(ref, "key", ref_path, DEFAULT_HANDLER_KEY)
        return None if name is None else HandlerRef(config_map_name=name, key=key)

    def metadata(self, raw: object) -> tuple[MetadataTemplate, ...]:
        path = "spec.metadata"
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.problem(
                path,
                f"must be a list, not {_kind(raw)}",
                "write metadata as a list of {attribute, value, units}",
            )
            return ()
        templates: list[MetadataTemplate] = []
        for index, item in enumerate(raw):
            item_path = f"{path}[{index}]"
            entry = self.obj(item, item_path, _METADATA_KEYS)
            parts: dict[str, str | None] = {}
            for key in ("attribute", "value", "units"):
                text = self.string(entry, key, item_path, required=key != "units")
                if text is not None and (why := check_metadata_template(text)) is not None:
                    self.problem(
                        f"{item_path}.{key}",
                        why,
                        f"use only {{{'}, {'.join(sorted(METADATA_TEMPLATE_FIELDS))}}}; write {{{{ for a literal brace",
                    )
                parts[key] = text
            attribute, value = parts["attribute"], parts["value"]
            if attribute is not None and value is not None:
                templates.append(MetadataTemplate(attribute, value, parts["units"] or None))
        return tuple(templates)

    def workers(self, raw: object) -> Workers:
        path = "spec.workers"
        workers = self.obj(raw, path, _WORKERS_KEYS)
        image = self.string(workers, "image", path)
        if image is not None and (not image or any(ch.isspace() for ch in image)):
            self.problem(
                f"{path}.image",
                f"{image!r} is not an image reference",
                "write e.g. registry/irods-ingest:1.0",
            )
            image = None
        minimum = self.integer(
            workers, "minReplicas", path, DEFAULT_MIN_REPLICAS, minimum=0, maximum=MAX_REPLICAS_LIMIT
        )
        maximum = self.integer(
            workers, "maxReplicas", path, DEFAULT_MAX_REPLICAS, minimum=1, maximum=MAX_REPLICAS_LIMIT
        )
        if minimum > maximum:
            self.problem(
                f"{path}.minReplicas",
                f"is {minimum}, above maxReplicas {maximum}",
                "lower minReplicas or raise maxReplicas",
            )
        pull_policy = None
        if workers.get("imagePullPolicy") is not None:
            pull_policy = self.enum(
                workers, "imagePullPolicy", path, ImagePullPolicy, ImagePullPolicy.IF_NOT_PRESENT
            )
        return Workers(
            image=image,
            image_pull_policy=pull_policy,
            min_replicas=minimum,
            max_replicas=maximum,
            concurrency=self.integer(
                workers, "concurrency", path, DEFAULT_CONCURRENCY, minimum=1, maximum=MAX_CONCURRENCY
            ),
            resources=self.resources(workers.get("resources")),
            files_per_task=self.integer(
                workers, "filesPerTask", path, DEFAULT_FILES_PER_TASK, minimum=1, maximum=MAX_FILES_PER_TASK
            ),
            task_timeout_seconds=self.integer(
                workers,
                "taskTimeoutSeconds",
                path,
                DEFAULT_TASK_TIMEOUT_SECONDS,
                minimum=1,
                maximum=MAX_TASK_TIMEOUT_SECONDS,
            ),
            max_retries=self.integer(
                workers, "maxRetries", path, DEFAULT_MAX_RETRIES, minimum=0, maximum=MAX_RETRIES_LIMIT
            ),
            retry_backoff_seconds=self.integer(
                workers,
                "retryBackoffSeconds",
                path,
                DEFAULT_RETRY_BACKOFF_SECONDS,
                minimum=0,
                maximum=MAX_RETRY_BACKOFF_SECONDS,
            ),
        )

    def resources(self, raw: object) -> Mapping[str, Any]:
        resources = self.obj(raw, "spec.workers.resources", _RESOURCES_KEYS)
        return copy.deepcopy(dict(resources))


def _check_source_path(path: str) -> str | None:
    if not path.startswith("/"):
        return "must be absolute"
    if path == "/":
        return "must not be the root directory"
    if posixpath.normpath(path) != path or path.startswith("//"):
        return (
            f"must be normalised (no '.', '..', '//' or trailing '/'; perhaps '{posixpath.normpath(path)}')"
        )
    for reserved in RESERVED_WORKER_PATHS:
        if _overlaps(path, reserved):
            return f"overlaps {reserved}, which the worker pod reserves"
    return None


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _kind(value: object) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "an object" if isinstance(value, Mapping) else type(value).__name__
    )
