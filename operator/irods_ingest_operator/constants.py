"""Every name the operator shares with the API server, kubectl, GitOps tools and the workers.

One module, so that a rename is one edit and a test can hold the CRD, the builders and the
reconcilers to the same vocabulary. Nothing here imports kopf or kubernetes.
"""

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

# Re-exported: the spec enums are the engine's own.
from irods_ingest.config import DeleteMode as DeleteMode
from irods_ingest.config import FileType as FileType
from irods_ingest.config import Operation as Operation
from irods_ingest.config import SymlinkPolicy as SymlinkPolicy

# --- The SyncJob resource ---------------------------------------------------------------------
GROUP: Final = "ingest.irods.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "SyncJob"
PLURAL: Final = "syncjobs"
SINGULAR: Final = "syncjob"
SHORT_NAMES: Final = ("sj",)
CATEGORIES: Final = ("irods",)
CRD_NAME: Final = f"{PLURAL}.{GROUP}"

# --- Operator identity on the API server ------------------------------------------------------
# Finalizer and kopf's own state annotations live under our domain, never kopf.zalando.org, so
# that two operators built on kopf never read each other's progress.
FINALIZER: Final = f"{GROUP}/finalizer"
KOPF_ANNOTATION_PREFIX: Final = f"kopf.{GROUP}"
KOPF_LAST_HANDLED_ANNOTATION: Final = f"{KOPF_ANNOTATION_PREFIX}/last-handled-configuration"
# Server-side apply field manager: fixed, so every apply by every operator replica owns the same fields.
FIELD_MANAGER: Final = "irods-ingest-operator"
# Events: `kubectl describe` shows source.component in its "From" column.
REPORTING_COMPONENT: Final = "irods-ingest-operator"

# --- Labels on the objects we create (Kubernetes recommended labels) --------------------------
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"

WORKER_APP_NAME: Final = "irods-ingest-worker"
WORKER_COMPONENT: Final = "worker"
PART_OF: Final = "irods-ingest-operator"
MANAGED_BY: Final = "irods-ingest-operator"

# Labels every worker object carries besides instance (= the job name).
COMPONENT_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {
        LABEL_NAME: WORKER_APP_NAME,
        LABEL_COMPONENT: WORKER_COMPONENT,
        LABEL_PART_OF: PART_OF,
        LABEL_MANAGED_BY: MANAGED_BY,
    }
)
# A Deployment selector is immutable: only labels that can never change for a job go in it.
SELECTOR_LABELS: Final[Mapping[str, str]] = MappingProxyType(
    {LABEL_NAME: WORKER_APP_NAME, LABEL_COMPONENT: WORKER_COMPONENT}
)

# The worker Deployment is "<job>-worker"; a label value is at most 63 characters, and the job
# name is the instance label, so job names are limited to this length (checked by spec.py).
WORKER_DEPLOYMENT_SUFFIX: Final = "-worker"
WORKER_CONTAINER_NAME: Final = "worker"
# Workers serve Prometheus metrics here (a PodMonitor can scrape the "metrics" port).
WORKER_METRICS_PORT: Final = 9102
MAX_LABEL_VALUE_LENGTH: Final = 63

# --- The contract between the worker Deployment and the worker process ------------------------
WORKER_COMMAND: Final = ("irods-ingest", "worker")
ENV_REDIS_URL: Final = "IRODS_INGEST_REDIS_URL"
ENV_POD_NAME: Final = "IRODS_INGEST_WORKER_ID"
ENV_POD_NAMESPACE: Final = "IRODS_INGEST_NAMESPACE"
ENV_IRODS_ENVIRONMENT_FILE: Final = "IRODS_ENVIRONMENT_FILE"
ENV_IRODS_PASSWORD: Final = "IRODS_PASSWORD"
ENV_AWS_ACCESS_KEY_ID: Final = "AWS_ACCESS_KEY_ID"
ENV_AWS_SECRET_ACCESS_KEY: Final = "AWS_SECRET_ACCESS_KEY"
# Paths the worker pod reserves; a source path may not be one of them, inside one, or above one
# (a source at /etc would otherwise ingest the mounted iRODS credentials).
# perJob credentials: the Secret "<job>-worker-redis" holds the job's worker Redis URL under "url";
# its version also annotates the pod template, so a rotation rolls the pods.
WORKER_REDIS_SECRET_SUFFIX: Final = "-worker-redis"
WORKER_REDIS_SECRET_KEY: Final = "url"
CREDENTIAL_VERSION_ANNOTATION: Final = f"{GROUP}/redis-credential-version"
# On the worker Deployment: the digest of what the operator last applied (all but replicas), so a
# pass whose Deployment would come out the same applies nothing (an apply that changes nothing
# is still a write request; 200 idle jobs made 40 a second at the default interval).
APPLIED_DIGEST_ANNOTATION: Final = f"{GROUP}/applied-digest"
WORKER_CONFIG_ROOT: Final = "/etc/irods-ingest"
IRODS_CONNECTION_MOUNT_PATH: Final = f"{WORKER_CONFIG_ROOT}/irods"
WORKER_TMP_PATH: Final = "/tmp"
RESERVED_WORKER_PATHS: Final = (WORKER_CONFIG_ROOT, WORKER_TMP_PATH)
# What each reserved path holds in a worker pod (the words of a refused spec.source.path).
RESERVED_WORKER_PATH_USES: Final[Mapping[str, str]] = MappingProxyType({
    WORKER_CONFIG_ROOT: "the iRODS connection Secret is mounted there",
    WORKER_TMP_PATH: "it is the pod's size-limited scratch space (an emptyDir)",
})
# The job's failures for kubectl users with namespace RBAC only (the `kubectl ingest` plugin):
# the ConfigMap "<job>-failures", owned by the SyncJob, with these keys.
FAILURES_CONFIG_MAP_SUFFIX: Final = "-failures"
FAILURES_KEY_RUN: Final = "run"
FAILURES_KEY_STATE: Final = "state"
FAILURES_KEY_RECORDS: Final = "failures.json"
FAILURES_KEY_RECORDED: Final = "recorded"
FAILURES_KEY_NOT_RECORDED: Final = "notRecorded"
FAILURES_COMPONENT: Final = "failures"


# --- The operator's notes in the job's Redis hash (the engine keeps them as fields "op:*") ----
# What it must remember between passes, so that a restarted operator neither starts a duplicate
# run nor repeats an Event.
MEMO_RUN_NOW: Final = "op:run_now"  # the last runNow token acted on
MEMO_RETRY_FAILED: Final = "op:retry_failed"  # the last retryFailed token acted on
MEMO_SCHEDULE_SLOT: Final = "op:schedule_slot"  # the last schedule slot fired (ISO 8601)
MEMO_STARTED_ONCE: Final = "op:started_once"  # the last run started (without a schedule a job runs once)
MEMO_REPORTED_RUN: Final = "op:reported_run"  # the last run whose end was announced
MEMO_SUSPENDED: Final = "op:suspended"  # while suspended: the run paused ("-": none); "" once resumed
MEMO_FAILURES_WRITTEN: Final = "op:failures_written"  # what the failures ConfigMap last showed (run|state|counts)

# --- Condition types and statuses (kstatus: Ready is normal-true; Reconciling/Stalled abnormal-true)
class ConditionType(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"  # True while spec.suspend holds (as batch/v1 Job's)
    WORKERS_READY = "WorkersReady"  # False while workers are wanted and none is ready


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


# --- Condition reasons (CamelCase, as the API conventions ask) --------------------------------
class Reason(StrEnum):
    RECONCILED = "Reconciled"
    RUN_IN_PROGRESS = "RunInProgress"
    RUN_SUCCEEDED = "RunSucceeded"
    RUN_FAILED = "RunFailed"
    RUN_STOPPED = "RunStopped"
    WAITING_FOR_SCHEDULE = "WaitingForSchedule"
    SUSPENDED = "Suspended"
    INVALID_SPEC = "InvalidSpec"
    HANDLER_ERROR = "HandlerError"
    HANDLER_NOT_FOUND = "HandlerNotFound"
    NOT_ALLOWED = "NotAllowed"  # the spec asks for what the cluster admin does not allow
    NAME_CONFLICT = "NameConflict"  # a Deployment/Secret of the name the job needs belongs to another
    REDIS_UNAVAILABLE = "RedisUnavailable"
    RESUMED = "Resumed"
    WORKERS_READY = "WorkersReady"
    NO_WORKERS_NEEDED = "NoWorkersNeeded"
    WORKERS_STARTING = "WorkersStarting"  # none ready yet, within the grace period
    WORKERS_NOT_READY = "WorkersNotReady"  # none ready for the whole grace period: the cause is named


# --- Event reasons ----------------------------------------------------------------------------
class EventReason(StrEnum):
    RUN_STARTED = "RunStarted"
    RUN_SUCCEEDED = "RunSucceeded"
    RUN_FAILED = "RunFailed"
    RUN_STOPPED = "RunStopped"
    INVALID_SPEC = "InvalidSpec"
    HANDLER_ERROR = "HandlerError"
    HANDLER_UPDATED = "HandlerUpdated"
    SCALED_WORKERS = "ScaledWorkers"
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"
    CLEANUP_INCOMPLETE = "CleanupIncomplete"
    CREDENTIAL_ROTATED = "CredentialRotated"
    CACHE_ADOPTED = "CacheAdopted"
    WORKERS_NOT_READY = "WorkersNotReady"
    SPEC_CHANGE_PENDING = "SpecChangePending"  # an edit that applies from the next run, during a run
    NAME_CONFLICT = "NameConflict"  # an object the operator would write is another's (the failures ConfigMap)
    FAILURES_NOT_PUBLISHED = "FailuresNotPublished"  # the failures ConfigMap could not be written (say, RBAC)


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


# --- Spec enums (the CRD's enum lists are tested against these) -------------------------------
# Operation, DeleteMode, FileType and SymlinkPolicy are the engine's own (re-exported above), so
# the CRD, the CLI and the workers can never disagree on a spelling.


class ImagePullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class Phase(StrEnum):
    """status.phase: a one-word summary for `kubectl get` (derived from the conditions and the
    run each pass, never read back to decide anything)."""

    WAITING = "Waiting"  # valid, no run yet (the first one, or the first schedule slot, is due)
    RUNNING = "Running"  # a run is active
    SUSPENDED = "Suspended"  # spec.suspend: workers at zero, an active run paused
    SUCCEEDED = "Succeeded"  # idle; the last run succeeded
    FAILED = "Failed"  # idle; the last run failed
    STOPPED = "Stopped"  # idle; the last run was stopped on request (irods-ingest stop)
    INVALID = "Invalid"  # the spec (or a name it needs) cannot run: see the Stalled condition


class RunOutcome(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"
