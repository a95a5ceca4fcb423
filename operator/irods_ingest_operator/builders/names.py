"""The names and labels of the objects a SyncJob's workers consist of."""

from __future__ import annotations

from irods_ingest_operator.constants import (
    COMPONENT_LABELS,
    FAILURES_COMPONENT,
    FAILURES_CONFIG_MAP_SUFFIX,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_PART_OF,
    MANAGED_BY,
    PART_OF,
    SELECTOR_LABELS,
    WORKER_DEPLOYMENT_SUFFIX,
    WORKER_REDIS_SECRET_KEY,
    WORKER_REDIS_SECRET_SUFFIX,
)
from irods_ingest_operator.refs import RedisEndpoint, SecretKeyRef


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


def failures_config_map_name(job_name: str) -> str:
    return f"{job_name}{FAILURES_CONFIG_MAP_SUFFIX}"


def failures_labels(job_name: str) -> dict[str, str]:
    """Labels of the failures ConfigMap: never the workers' (a worker selector must not match it)."""
    return {LABEL_COMPONENT: FAILURES_COMPONENT, LABEL_PART_OF: PART_OF, LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_INSTANCE: job_name}


def job_redis_endpoint(job_name: str) -> RedisEndpoint:
    """Where a job's workers find their own Redis credential (perJob mode)."""
    return RedisEndpoint(url_secret=SecretKeyRef(worker_redis_secret_name(job_name), WORKER_REDIS_SECRET_KEY))
