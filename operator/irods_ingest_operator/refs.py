"""Values the operator's layers share: a SyncJob's identity, a Secret key, how workers reach
Redis, what a Deployment looks like now.

Pure values, no logic of the layers that use them: settings.py (configuration), the builders,
the kube adapter and the reconcile decision all use them, and none needs another for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from irods_ingest_operator.constants import API_VERSION, ENV_REDIS_URL, KIND


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


def as_job_ref(job: JobRef | Mapping[str, Any]) -> JobRef:
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


@dataclass(frozen=True)
class DeploymentState:
    """A Deployment as the kube adapter read it."""

    replicas: int
    ready: int
    controller_uid: str | None = None  # the uid of the object that controls it (ownerReferences)
    failure: str = ""  # its ReplicaFailure condition ("FailedCreate: pods ... is forbidden: ..."), if any
    applied: str = ""  # the digest of what the operator last applied to it (APPLIED_DIGEST_ANNOTATION)


@dataclass(frozen=True)
class ContainerFacts:
    """One container of a worker pod, as its kubelet reported it (status.containerStatuses)."""

    name: str
    waiting_reason: str = ""  # CreateContainerConfigError, ImagePullBackOff, CrashLoopBackOff, ...
    waiting_message: str = ""
    last_exit_code: int | None = None  # lastState.terminated (the instance that died before this one)
    last_reason: str = ""
    last_message: str = ""  # its termination message (or, with FallbackToLogsOnError, its log's tail)
    restarts: int = 0
    last_log_line: str = ""  # crash loops only: the last line the dead instance logged (pods/log)


@dataclass(frozen=True)
class PodFacts:
    """One worker pod, as much as says why it is not ready."""

    name: str
    phase: str = "Pending"
    scheduled: bool = False  # PodScheduled=True
    unschedulable: str = ""  # PodScheduled=False: the scheduler's message
    containers: tuple[ContainerFacts, ...] = ()  # init containers first
