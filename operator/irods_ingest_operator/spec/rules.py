"""The rules a SyncJob spec must follow beyond its types: names, collections and source paths,
cron schedules, metadata templates, volumes, S3 endpoints, and the checks that span fields
(operation x deleteMode, the replica's resource, minReplicas <= maxReplicas).

The API server (v1.20) checks types, enums, bounds and patterns from the CRD schema, but it
cannot check rules that span fields, nor compile a regex or a cron expression: they are here.
Pure: each rule returns why a value is wrong (or the problems, with field and fix), never raises.
"""

from __future__ import annotations

import posixpath
import re
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from croniter import CroniterError, croniter

from irods_ingest.config import COMPATIBLE_DELETE_MODES as ENGINE_COMPATIBLE_DELETE_MODES
from irods_ingest.config import S3_DELETE_MODES as ENGINE_S3_DELETE_MODES
from irods_ingest.config import delete_mode_compatible
from irods_ingest_operator.constants import (
    MAX_LABEL_VALUE_LENGTH,
    RESERVED_WORKER_PATH_USES,
    RESERVED_WORKER_PATHS,
    DeleteMode,
    Operation,
)
from irods_ingest_operator.spec.model import Destination, HandlerRef, S3Source, Source
from irods_ingest_operator.spec.problems import SpecProblem

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

MAX_NAME_LENGTH: Final = 253
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_OBJECT_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_CRON_PROBE_START: Final = datetime(2000, 1, 1, tzinfo=UTC)


# --- Names ------------------------------------------------------------------------------------
def valid_object_name(name: str) -> bool:
    """A Kubernetes object name (DNS subdomain): a Secret's or a ConfigMap's."""
    return len(name) <= MAX_NAME_LENGTH and bool(_DNS_SUBDOMAIN.match(name))


def valid_object_key(key: str) -> bool:
    """A key of a Secret or ConfigMap."""
    return len(key) <= MAX_NAME_LENGTH and bool(_OBJECT_KEY.match(key))


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


# --- Paths ------------------------------------------------------------------------------------
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


def check_source_path(path: str) -> str | None:
    """Why ``path`` cannot be a source directory in the worker pod, or None when it can."""
    problem = source_path_problem(path)
    return problem[0] if problem is not None else None


def source_path_problem(path: str) -> tuple[str, str] | None:
    """Why ``path`` cannot be a source directory in the worker pod, and the fix; None when it can."""
    if not path.startswith("/"):
        return "must be absolute", "give an absolute directory path, such as /data"
    if path == "/":
        return "must not be the root directory", "give the directory to sync, such as /data"
    if posixpath.normpath(path) != path or path.startswith("//"):
        normal = posixpath.normpath(path)
        return (f"must be normalised (no '.', '..', '//' or trailing '/'; perhaps '{normal}')",
                f"write it as '{normal}'")
    for reserved in RESERVED_WORKER_PATHS:
        if _overlaps(path, reserved):
            inside = "is" if path == reserved else ("is inside" if path.startswith(reserved + "/") else "contains")
            return (f"{inside} {reserved}, which worker pods reserve: {RESERVED_WORKER_PATH_USES[reserved]}",
                    f"mount the source elsewhere, such as /data (any absolute path outside {reserved})")
    return None


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


# --- Schedules --------------------------------------------------------------------------------
def next_fire_time(schedule: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``schedule`` fires (UTC, as CronJob without a time zone)."""
    result = croniter(schedule, after.astimezone(UTC)).get_next(datetime)
    assert isinstance(result, datetime)
    return result


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


# --- Metadata templates -----------------------------------------------------------------------
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


# --- Volumes and S3 endpoints -----------------------------------------------------------------
def volume_problems(volume: Mapping[str, Any], where: str = "spec.source.volume") -> list[SpecProblem]:
    """One known core/v1 volume source, without the name (the operator sets it)."""
    problems: list[SpecProblem] = []
    if "name" in volume:
        problems.append(
            SpecProblem(f"{where}.name", "is set by the operator", "remove name; give only the volume source")
        )
    kinds = [key for key in volume if key != "name"]
    unknown = [key for key in kinds if key not in VOLUME_SOURCE_KINDS]
    if unknown:
        problems.append(
            SpecProblem(
                where,
                f"has unknown volume source {', '.join(unknown)}",
                "use a core/v1 volume source, e.g. persistentVolumeClaim",
            )
        )
    elif len(kinds) != 1:
        problems.append(
            SpecProblem(
                where,
                f"must hold exactly one volume source, not {len(kinds)}",
                "keep one, e.g. persistentVolumeClaim",
            )
        )
    elif not isinstance(volume[kinds[0]], Mapping):
        problems.append(SpecProblem(f"{where}.{kinds[0]}", "must be an object", f"write {kinds[0]} as a mapping"))
    return problems


def s3_endpoint_problems(endpoint: str, *, insecure: bool, where: str) -> list[SpecProblem]:
    """An https endpoint, or http only when the spec says it accepts credentials in the clear."""
    scheme = urlsplit(endpoint).scheme if "://" in endpoint else ""
    if scheme not in ("", "http", "https"):
        return [SpecProblem(f"{where}.endpoint", f"has scheme '{scheme}'", "use https://host[:port] or host[:port]")]
    if scheme == "http" and not insecure:
        return [
            SpecProblem(
                f"{where}.endpoint",
                "uses plain http, which sends credentials in the clear",
                "use https, or set source.s3.insecure: true to accept http",
            )
        ]
    return []


# --- Across fields ----------------------------------------------------------------------------
def delete_mode_problems(operation: Operation, delete_mode: DeleteMode, source: Source | None) -> list[SpecProblem]:
    """The incumbent's operation x deleteMode matrix, and what an S3 source can delete."""
    if not delete_mode_is_compatible(operation, delete_mode):
        allowed = ", ".join(mode for mode in DeleteMode if mode in COMPATIBLE_DELETE_MODES[operation])
        return [
            SpecProblem(
                "spec.deleteMode",
                f"{delete_mode} cannot be used with operation {operation}",
                f"with {operation} use deleteMode {allowed}, or choose another operation",
            )
        ]
    if isinstance(source, S3Source) and delete_mode not in S3_DELETE_MODES:
        return [
            SpecProblem(
                "spec.deleteMode",
                f"{delete_mode} is not supported for an S3 source",
                f"use deleteMode {DeleteMode.DO_NOT_DELETE} with source.s3",
            )
        ]
    return []


def replica_resource_problems(
    operation: Operation, destination: Destination | None, handler: HandlerRef | None
) -> list[SpecProblem]:
    """RegisterAsReplicaSync needs a target resource: sync_irods.py (0.7.0) raises "no resource
    name defined" for every existing file otherwise."""
    if (
        operation is Operation.REGISTER_AS_REPLICA_SYNC
        and destination is not None
        and destination.resource is None
        and handler is None
    ):
        return [
            SpecProblem(
                "spec.destination.resource",
                "is required by operation RegisterAsReplicaSync (the replica needs a target resource)",
                "set destination.resource, or a handler whose to_resource() names one",
            )
        ]
    return []


def replica_bounds_problems(minimum: int, maximum: int, where: str = "spec.workers") -> list[SpecProblem]:
    if minimum > maximum:
        return [
            SpecProblem(
                f"{where}.minReplicas",
                f"is {minimum}, above maxReplicas {maximum}",
                "lower minReplicas or raise maxReplicas",
            )
        ]
    return []
