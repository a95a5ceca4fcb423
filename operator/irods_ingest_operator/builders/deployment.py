"""The job's worker Deployment: its pod, container, environment and volumes."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from irods_ingest_operator.admission import WorkerPodPolicy
from irods_ingest_operator.builders.names import worker_deployment_name, worker_labels, worker_selector
from irods_ingest_operator.constants import (
    APPLIED_DIGEST_ANNOTATION,
    CREDENTIAL_VERSION_ANNOTATION,
    ENV_AWS_ACCESS_KEY_ID,
    ENV_AWS_SECRET_ACCESS_KEY,
    ENV_IRODS_ENVIRONMENT_FILE,
    ENV_IRODS_PASSWORD,
    ENV_POD_NAME,
    ENV_POD_NAMESPACE,
    IRODS_CONNECTION_MOUNT_PATH,
    WORKER_COMMAND,
    WORKER_CONTAINER_NAME,
    WORKER_METRICS_PORT,
    WORKER_TMP_PATH,
)
from irods_ingest_operator.refs import JobRef, RedisEndpoint, SecretKeyRef, as_job_ref
from irods_ingest_operator.spec import PathSource, S3Source, SyncJobSpec

DEFAULT_TERMINATION_GRACE_SECONDS: Final = 60
_SOURCE_VOLUME: Final = "source"
_IRODS_VOLUME: Final = "irods-connection"
_TMP_VOLUME: Final = "tmp"


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
    ref = as_job_ref(job)
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


def with_applied_digest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """``manifest`` annotated with the digest of what it asks for, its replicas aside (they are
    compared as they are: the scale subresource changes them without touching the annotation).
    A Deployment that carries the digest of the manifest a pass builds needs no apply."""
    annotated = copy.deepcopy(dict(manifest))
    annotated["metadata"].setdefault("annotations", {})[APPLIED_DIGEST_ANNOTATION] = applied_digest(manifest)
    return annotated


def applied_digest(manifest: Mapping[str, Any]) -> str:
    body = copy.deepcopy(dict(manifest))
    body["spec"] = {key: value for key, value in body["spec"].items() if key != "replicas"}
    annotations = body["metadata"].pop("annotations", {})
    annotations.pop(APPLIED_DIGEST_ANNOTATION, None)
    if annotations:
        body["metadata"]["annotations"] = annotations
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


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
