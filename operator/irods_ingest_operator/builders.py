"""Pure builders for every Kubernetes object the operator writes, and the pure scaling arithmetic.

Data in, dicts out: no API calls, no clock reads (``now`` is always an argument), no kubernetes
import. The adapter that applies these objects owns every side effect.
"""

from __future__ import annotations

import base64
import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from irods_ingest_operator.admission import WorkerPodPolicy
from irods_ingest_operator.constants import (
    API_VERSION,
    COMPONENT_LABELS,
    CREDENTIAL_VERSION_ANNOTATION,
    ENV_AWS_ACCESS_KEY_ID,
    ENV_AWS_SECRET_ACCESS_KEY,
    ENV_IRODS_ENVIRONMENT_FILE,
    ENV_IRODS_PASSWORD,
    ENV_POD_NAME,
    ENV_POD_NAMESPACE,
    ENV_REDIS_URL,
    IRODS_CONNECTION_MOUNT_PATH,
    KIND,
    LABEL_INSTANCE,
    REPORTING_COMPONENT,
    SELECTOR_LABELS,
    WORKER_COMMAND,
    WORKER_CONTAINER_NAME,
    WORKER_DEPLOYMENT_SUFFIX,
    WORKER_METRICS_PORT,
    WORKER_REDIS_SECRET_KEY,
    WORKER_REDIS_SECRET_SUFFIX,
    WORKER_TMP_PATH,
    ConditionStatus,
    ConditionType,
    EventType,
)
from irods_ingest_operator.spec import PathSource, S3Source, SyncJobSpec

DEFAULT_TERMINATION_GRACE_SECONDS: Final = 60
DEFAULT_SCALE_DOWN_WINDOW: Final = timedelta(seconds=120)
MAX_EVENT_MESSAGE_LENGTH: Final = 1024
_SOURCE_VOLUME: Final = "source"
_IRODS_VOLUME: Final = "irods-connection"
_TMP_VOLUME: Final = "tmp"


# --- References -------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobRef:
    """The identity of one SyncJob: what owner references, events and worker arguments need."""

    namespace: str
    name: str
    uid: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JobRef:
        metadata = body["metadata"]
        return cls(namespace=metadata["namespace"], name=metadata["name"], uid=metadata["uid"])

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def owner_reference(self) -> dict[str, Any]:
        # controller=True lets `kubectl describe` and kopf find the owner; blockOwnerDeletion makes a
        # foreground delete of the SyncJob wait for its Deployment.
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def object_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }


def _as_job_ref(job: JobRef | Mapping[str, Any]) -> JobRef:
    return job if isinstance(job, JobRef) else JobRef.from_body(job)


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str

    def env_source(self) -> dict[str, Any]:
        return {"secretKeyRef": {"name": self.name, "key": self.key}}


@dataclass(frozen=True)
class RedisEndpoint:
    """How workers reach Redis: a URL without credentials, or a key of a Secret that holds the URL."""

    url: str | None = None
    url_secret: SecretKeyRef | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.url_secret is None):
            raise ValueError("give exactly one of url and url_secret")
        if self.url is not None and urlsplit(self.url).password is not None:
            # A literal value lands in the Deployment, readable by anyone who can read Deployments.
            raise ValueError("a Redis URL with a password must come from a Secret (url_secret)")

    def env(self) -> dict[str, Any]:
        if self.url_secret is not None:
            return {"name": ENV_REDIS_URL, "valueFrom": self.url_secret.env_source()}
        return {"name": ENV_REDIS_URL, "value": self.url}


# --- Labels and names -------------------------------------------------------------------------
def worker_deployment_name(job_name: str) -> str:
    return f"{job_name}{WORKER_DEPLOYMENT_SUFFIX}"


def worker_selector(job_name: str) -> dict[str, str]:
    """The immutable selector: only labels whose values can never change for this job."""
    return {**SELECTOR_LABELS, LABEL_INSTANCE: job_name}


def worker_labels(job_name: str) -> dict[str, str]:
    # Built from constants only. The SyncJob's own labels and annotations are never copied: GitOps
    # tools track their objects by them (Argo CD's app.kubernetes.io/instance, argocd.argoproj.io/*)
    # and would otherwise claim, diff or prune the operator's children.
    return {**COMPONENT_LABELS, LABEL_INSTANCE: job_name}


def worker_redis_secret_name(job_name: str) -> str:
    return f"{job_name}{WORKER_REDIS_SECRET_SUFFIX}"


def job_redis_endpoint(job_name: str) -> RedisEndpoint:
    """Where a job's workers find their own Redis credential (perJob mode)."""
    return RedisEndpoint(url_secret=SecretKeyRef(worker_redis_secret_name(job_name), WORKER_REDIS_SECRET_KEY))


# --- The workers' Redis credential (perJob mode) ----------------------------------------------
def build_worker_redis_secret(job: JobRef | Mapping[str, Any], *, url: str, version: str) -> dict[str, Any]:
    """The Secret holding a job's worker Redis URL (with the job's own user and password), for
    server-side apply. Owned by the SyncJob, so the garbage collector removes it with the job."""
    ref = _as_job_ref(job)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": worker_redis_secret_name(ref.name),
            "namespace": ref.namespace,
            "labels": worker_labels(ref.name),
            "annotations": {CREDENTIAL_VERSION_ANNOTATION: version},
            "ownerReferences": [ref.owner_reference()],
        },
        "type": "Opaque",
        "data": {WORKER_REDIS_SECRET_KEY: base64.b64encode(url.encode()).decode()},
    }


# --- The worker Deployment --------------------------------------------------------------------
def build_worker_deployment(
    job: JobRef | Mapping[str, Any],
    spec: SyncJobSpec,
    *,
    replicas: int,
    image_default: str,
    redis: RedisEndpoint,
    service_account_name: str | None = None,
    termination_grace_period_seconds: int = DEFAULT_TERMINATION_GRACE_SECONDS,
    pod_policy: WorkerPodPolicy | None = None,
    credential_version: str | None = None,
) -> dict[str, Any]:
    """The job's worker Deployment, for server-side apply.

    The pod template depends only on what a pod needs to start: it carries no run id (workers read
    the current run from Redis, the fencing token) and no handler hash. Handler changes must NOT
    roll the pods: workers look the handler up by content hash in Redis and reload it themselves,
    so a ConfigMap edit reaches running workers within seconds and never interrupts in-flight tasks.
    """
    if replicas < 0:
        raise ValueError(f"replicas must be >= 0, not {replicas}")
    ref = _as_job_ref(job)
    labels = worker_labels(ref.name)
    template_metadata: dict[str, Any] = {"labels": dict(labels)}
    if credential_version is not None:
        # A rotated credential is in the Secret, but env from a Secret is read at container
        # start: a new version in the template rolls the pods onto it (the previous password
        # stays valid meanwhile, see irods_ingest.store.acl).
        template_metadata["annotations"] = {CREDENTIAL_VERSION_ANNOTATION: credential_version}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": worker_deployment_name(ref.name),
            "namespace": ref.namespace,
            "labels": labels,
            "ownerReferences": [ref.owner_reference()],
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": worker_selector(ref.name)},
            "template": {
                "metadata": template_metadata,
                "spec": _worker_pod_spec(
                    ref,
                    spec,
                    image_default=image_default,
                    redis=redis,
                    service_account_name=service_account_name,
                    termination_grace_period_seconds=termination_grace_period_seconds,
                    pod_policy=pod_policy or WorkerPodPolicy(),
                ),
            },
        },
    }


def _worker_pod_spec(
    ref: JobRef,
    spec: SyncJobSpec,
    *,
    image_default: str,
    redis: RedisEndpoint,
    service_account_name: str | None,
    termination_grace_period_seconds: int,
    pod_policy: WorkerPodPolicy,
) -> dict[str, Any]:
    volumes, mounts = _worker_volumes(spec, pod_policy)
    # Fixed by the cluster admin (operator settings), never by the SyncJob: a non-root user
    # and group, so the pod passes the "restricted" Pod Security Standard whatever the image.
    security: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": pod_policy.run_as_user,
        "runAsGroup": pod_policy.run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if pod_policy.fs_group is not None:
        security["fsGroup"] = pod_policy.fs_group
        security["fsGroupChangePolicy"] = "OnRootMismatch"
    pod: dict[str, Any] = {
        # Workers never call the Kubernetes API.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": termination_grace_period_seconds,
        "securityContext": security,
        "containers": [
            _worker_container(ref, spec, image_default=image_default, redis=redis, mounts=mounts, pod_policy=pod_policy)
        ],
        "volumes": volumes,
    }
    if service_account_name is not None:
        pod["serviceAccountName"] = service_account_name
    return pod


def _worker_container(
    ref: JobRef,
    spec: SyncJobSpec,
    *,
    image_default: str,
    redis: RedisEndpoint,
    mounts: list[dict[str, Any]],
    pod_policy: WorkerPodPolicy,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": WORKER_CONTAINER_NAME,
        "image": spec.workers.image or image_default,
        "command": [
            *WORKER_COMMAND, "--job", ref.key, "--concurrency", str(spec.workers.concurrency),
            "--metrics-port", str(WORKER_METRICS_PORT),
        ],
        "ports": [{"name": "metrics", "containerPort": WORKER_METRICS_PORT, "protocol": "TCP"}],
        "env": _worker_env(spec, redis),
        "volumeMounts": mounts,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": pod_policy.run_as_user,
            "runAsGroup": pod_policy.run_as_group,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if spec.workers.image_pull_policy is not None:
        container["imagePullPolicy"] = str(spec.workers.image_pull_policy)
    resources = pod_policy.resources(spec.workers.resources)
    if resources:
        container["resources"] = copy.deepcopy(resources)
    return container


def _worker_env(spec: SyncJobSpec, redis: RedisEndpoint) -> list[dict[str, Any]]:
    # Secrets reach the pod only as references; their values never appear in the Deployment.
    connection = spec.destination.connection_secret
    env: list[dict[str, Any]] = [
        redis.env(),
        {"name": ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": ENV_POD_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {
            "name": ENV_IRODS_ENVIRONMENT_FILE,
            "value": f"{IRODS_CONNECTION_MOUNT_PATH}/{connection.environment_key}",
        },
        {
            "name": ENV_IRODS_PASSWORD,
            "valueFrom": SecretKeyRef(connection.name, connection.password_key).env_source(),
        },
        # The root filesystem is read-only; python-irodsclient and friends look under $HOME.
        {"name": "HOME", "value": WORKER_TMP_PATH},
    ]
    source = spec.source
    if isinstance(source, S3Source):
        env += _s3_transfer_env(source)
    if isinstance(source, S3Source) and source.credentials is not None:
        creds = source.credentials
        env += [
            {
                "name": ENV_AWS_ACCESS_KEY_ID,
                "valueFrom": SecretKeyRef(creds.secret_name, creds.access_key_id_key).env_source(),
            },
            {
                "name": ENV_AWS_SECRET_ACCESS_KEY,
                "valueFrom": SecretKeyRef(creds.secret_name, creds.secret_access_key_key).env_source(),
            },
        ]
    return env


# The workers read these (irods_ingest.s3_io.bucket.TransferSettings; a test keeps the names in step).
S3_TRANSFER_ENV: Final = {
    "parallel_threshold": "IRODS_INGEST_S3_PARALLEL_THRESHOLD",
    "part_bytes": "IRODS_INGEST_S3_PART_BYTES",
    "parts_in_flight": "IRODS_INGEST_S3_PARTS_IN_FLIGHT",
    "page_size": "IRODS_INGEST_S3_PAGE_SIZE",
}
_MIB: Final = 1024 * 1024


def _s3_transfer_env(source: S3Source) -> list[dict[str, Any]]:
    transfer = source.transfer
    values = {
        "parallel_threshold": None if transfer.parallel_threshold_mib is None else transfer.parallel_threshold_mib * _MIB,
        "part_bytes": None if transfer.part_size_mib is None else transfer.part_size_mib * _MIB,
        "parts_in_flight": transfer.parts_in_flight,
        "page_size": transfer.list_page_size,
    }
    return [{"name": S3_TRANSFER_ENV[name], "value": str(value)} for name, value in values.items() if value is not None]


def _worker_volumes(spec: SyncJobSpec, pod_policy: WorkerPodPolicy) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # The whole connection Secret is mounted (not just two items) so that files it also carries,
    # such as a CA certificate named in irods_environment.json, are there too.
    volumes: list[dict[str, Any]] = [
        {
            "name": _IRODS_VOLUME,
            "secret": {"secretName": spec.destination.connection_secret.name, "defaultMode": 0o444},
        },
        # Bounded: a full /tmp evicts this pod, never fills the node's disk.
        {"name": _TMP_VOLUME, "emptyDir": {"sizeLimit": pod_policy.tmp_size}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": _IRODS_VOLUME, "mountPath": IRODS_CONNECTION_MOUNT_PATH, "readOnly": True},
        {"name": _TMP_VOLUME, "mountPath": WORKER_TMP_PATH},
    ]
    source = spec.source
    if isinstance(source, PathSource) and source.volume is not None:
        volumes.insert(0, {"name": _SOURCE_VOLUME, **copy.deepcopy(dict(source.volume))})
        mounts.insert(0, {"name": _SOURCE_VOLUME, "mountPath": source.path, "readOnly": True})
    return volumes, mounts


# --- Events -----------------------------------------------------------------------------------
def build_event(
    job: JobRef | Mapping[str, Any],
    *,
    reason: str,
    message: str,
    now: datetime,
    type: EventType = EventType.NORMAL,
    action: str | None = None,
    reporting_instance: str = REPORTING_COMPONENT,
) -> dict[str, Any]:
    """A core/v1 Event about the SyncJob (posted explicitly: kopf 1.45 no longer turns logs into Events)."""
    ref = _as_job_ref(job)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": ref.object_reference(),
        "reason": reason,
        "message": _shorten(message, MAX_EVENT_MESSAGE_LENGTH),
        "type": str(type),
        "action": action or reason,
        "source": {"component": REPORTING_COMPONENT},
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": reporting_instance,
        "firstTimestamp": format_time(now),
        "lastTimestamp": format_time(now),
        "eventTime": format_micro_time(now),
        "count": 1,
    }


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    infix = "..."
    head = (limit - len(infix)) // 2
    tail = limit - len(infix) - head
    return f"{text[:head]}{infix}{text[-tail:]}"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with seconds, as metav1.Time serialises."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("pass an aware datetime (UTC); naive times are ambiguous")
    return moment.astimezone(UTC)


# --- Conditions -------------------------------------------------------------------------------
def build_condition(
    type: ConditionType | str,
    status: ConditionStatus | bool,
    *,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime,
) -> dict[str, Any]:
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    condition: dict[str, Any] = {
        "type": str(type),
        "status": str(status),
        "reason": str(reason),
        "observedGeneration": observed_generation,
        "lastTransitionTime": format_time(now),
    }
    # An empty message is left out rather than written as "": the project's 1.20 test apiserver
    # decodes "" in custom resources as null and rejects it, and an absent message reads the same.
    if message:
        condition["message"] = message
    return condition


def merge_conditions(
    existing: Sequence[Mapping[str, Any]], updates: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Merge updated conditions into a list-map keyed by type.

    A condition whose status did not change keeps its lastTransitionTime (the time it last flipped,
    not the time we last looked); reason, message and observedGeneration always take the new values.
    Order is stable: existing types keep their place, new types are appended.
    """
    merged = [dict(condition) for condition in existing]
    index = {condition.get("type"): position for position, condition in enumerate(merged)}
    for update in updates:
        new = dict(update)
        position = index.get(new["type"])
        if position is None:
            index[new["type"]] = len(merged)
            merged.append(new)
            continue
        old = merged[position]
        if old.get("status") == new["status"] and "lastTransitionTime" in old:
            new["lastTransitionTime"] = old["lastTransitionTime"]
        merged[position] = new
    return merged


class Health(StrEnum):
    """The kstatus summary of a SyncJob: Current (ready), InProgress (reconciling) or Failed (stalled)."""

    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


def health_conditions(
    existing: Sequence[Mapping[str, Any]],
    health: Health,
    *,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Set Ready / Reconciling / Stalled together, so they never contradict each other.

    kstatus reads Reconciling and Stalled as "abnormal-true" (present and True only while that is
    the case) and Ready as "normal-true"; all three are always written so `kubectl describe` shows
    the whole picture.
    """
    updates = [
        build_condition(
            kind,
            health.value == kind.value,
            reason=reason,
            message=message if health.value == kind.value or kind is ConditionType.READY else "",
            observed_generation=observed_generation,
            now=now,
        )
        for kind in (ConditionType.READY, ConditionType.RECONCILING, ConditionType.STALLED)
    ]
    return merge_conditions(existing, updates)


def run_outcome_conditions(
    existing: Sequence[Mapping[str, Any]],
    *,
    succeeded: bool,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Succeeded / Failed for the last finished run (exactly one of them True)."""
    updates = [
        build_condition(
            kind,
            succeeded == (kind is ConditionType.SUCCEEDED),
            reason=reason,
            message=message,
            observed_generation=observed_generation,
            now=now,
        )
        for kind in (ConditionType.SUCCEEDED, ConditionType.FAILED)
    ]
    return merge_conditions(existing, updates)


# --- Scaling ----------------------------------------------------------------------------------
def desired_replicas(
    *,
    queued: int,
    in_flight: int,
    concurrency: int,
    min_replicas: int,
    max_replicas: int,
    suspended: bool = False,
) -> int:
    """Workers needed so that every queued or running task has a slot, within [min, max].

    Queue depth is counted in tasks, and filesPerTask already sized the file tasks, so the number
    of files does not enter here. A suspended job has no workers regardless of minReplicas.
    """
    if suspended:
        return 0
    if concurrency < 1 or min_replicas < 0 or max_replicas < min_replicas:
        raise ValueError("need concurrency >= 1 and 0 <= min_replicas <= max_replicas")
    pending = max(queued, 0) + max(in_flight, 0)
    wanted = math.ceil(pending / concurrency)
    return max(min_replicas, min(max_replicas, wanted))


@dataclass(frozen=True)
class ScaleRecommendation:
    at: datetime
    replicas: int


@dataclass(frozen=True)
class ScaleDecision:
    replicas: int
    history: tuple[ScaleRecommendation, ...]


def stabilize_replicas(
    *,
    desired: int,
    current: int,
    history: Sequence[ScaleRecommendation],
    now: datetime,
    window: timedelta = DEFAULT_SCALE_DOWN_WINDOW,
) -> ScaleDecision:
    """Scale up at once; scale down only to the highest value recommended within ``window``.

    The same rule as the HorizontalPodAutoscaler's scale-down stabilisation. Keep the returned
    history for the next call. With no recommendation inside the window (first call, or after a
    restart), the current replica count counts as one made now, so a restart never scales down
    early. Stopping (suspend, delete) should apply 0 directly, without this.
    """
    recent = [entry for entry in history if now - entry.at < window]
    if not recent:
        recent = [ScaleRecommendation(now, current)]
    recent.append(ScaleRecommendation(now, desired))
    replicas = desired if desired >= current else min(current, max(entry.replicas for entry in recent))
    return ScaleDecision(replicas=replicas, history=tuple(recent))


# --- Status text ------------------------------------------------------------------------------
MAX_FAILURE_PATH_CHARS: Final = 1024
MAX_FAILURE_REASON_CHARS: Final = 512


def failure_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """One ``recentFailures`` entry from a failure record that a worker wrote: every field
    checked and cut to size, since anyone holding a worker's Redis credential can write
    records, and the status must stay small and valid whatever they wrote."""
    attempts = record.get("attempts", 1)
    moment = record.get("time", 0)
    try:
        attempts = min(max(int(attempts), 0), 1_000_000)
    except (TypeError, ValueError, OverflowError):
        attempts = 0
    try:
        when = datetime.fromtimestamp(min(max(float(moment), 0.0), 253402300799.0), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        when = datetime.fromtimestamp(0, UTC)
    return {
        "path": _shorten(str(record.get("path") or "(run)"), MAX_FAILURE_PATH_CHARS),
        "reason": _shorten(str(record.get("reason") or "unknown"), MAX_FAILURE_REASON_CHARS),
        "attempts": attempts,
        "time": format_time(when),
    }


def progress_text(*, discovered: int, processed: int, running: bool) -> str | None:
    """The printer column: files processed of files discovered so far ("+" while still running).

    None when there is nothing to show: leave status.progress out then (see build_condition on "").
    """
    if discovered <= 0:
        return "scanning" if running else None
    percent = min(100, processed * 100 // discovered)
    more = "+" if running else ""
    return f"{processed}/{discovered}{more} files ({percent}%)"
