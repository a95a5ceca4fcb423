"""The one adapter for Kubernetes API side effects (the only operator module importing kubernetes).

HTTP statuses are mapped once onto the engine's taxonomy: 404 → :class:`NotFound`; 409,
429 and 5xx → retryable; 401/403/422 and other 4xx → permanent (a 403 names the verb and
resource, which is what an RBAC fix needs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from irods_ingest.errors import PermanentError, RetryableError
from irods_ingest_operator.constants import APPLIED_DIGEST_ANNOTATION, FIELD_MANAGER
from irods_ingest_operator.refs import ContainerFacts, DeploymentState, PodFacts

MAX_WORKER_PODS_READ = 20
LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 16384


class NotFound(PermanentError):
    """The object does not exist."""


class KeyNotFound(NotFound):
    """The ConfigMap exists, without the key asked for; ``keys`` are the ones it has."""

    def __init__(self, message: str, keys: tuple[str, ...]) -> None:
        super().__init__(message)
        self.keys = keys


class NotOurs(PermanentError):
    """An object of the name we would write exists and belongs to something else: writing
    it would hijack it (and, through our owner reference, have it deleted with the SyncJob)."""


@contextmanager
def api_errors(action: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        reason = f"{action}: HTTP {exc.status} {exc.reason}"
        if exc.status == 404:
            raise NotFound(reason) from exc
        if exc.status in (409, 429) or (exc.status or 0) >= 500:
            raise RetryableError(reason) from exc
        raise PermanentError(f"{reason}: {(exc.body or '')[:500]}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise RetryableError(f"{action}: Kubernetes API unreachable: {exc}") from exc


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """An ApiClient from in-cluster credentials, or a kubeconfig (``$KUBECONFIG`` by default).

    Builds its own Configuration: nothing global is changed.
    """
    configuration = client.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig or os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    return client.ApiClient(configuration)


class KubeAdapter:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def apply_deployment(self, manifest: Mapping[str, Any]) -> None:
        """Server-side apply with our fixed field manager (idempotent; we own what we set)."""
        metadata = manifest["metadata"]
        with api_errors(f"applying Deployment {metadata['namespace']}/{metadata['name']}"):
            self.apps.patch_namespaced_deployment(
                name=metadata["name"],
                namespace=metadata["namespace"],
                body=dict(manifest),
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
            )

    def write_owned_secret(self, manifest: Mapping[str, Any]) -> None:
        """Create the Secret, or replace the data of the one we made before -- never another's.

        The operator may not read Secrets (it needs only create and patch), so ownership is
        checked by the API server: the update is a JSON patch whose first operation tests that
        the Secret's owner is this manifest's owner (a Secret of the same name that somebody
        else made fails the test, and :class:`NotOurs` says so).
        """
        self._write_owned(manifest, "Secret", self.core.create_namespaced_secret, self.core.patch_namespaced_secret)

    def write_owned_config_map(self, manifest: Mapping[str, Any]) -> None:
        """Create the ConfigMap, or replace the data of the one we made before -- never another's
        (the same owner-testing JSON patch as :meth:`write_owned_secret`: nothing is adopted)."""
        self._write_owned(manifest, "ConfigMap", self.core.create_namespaced_config_map,
                          self.core.patch_namespaced_config_map)

    def _write_owned(self, manifest: Mapping[str, Any], kind: str, create: Any, patch_json: Any) -> None:
        metadata = manifest["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        owner_uid = metadata["ownerReferences"][0]["uid"]
        # The action names the object, never its data: the error text may reach status and Events.
        action = f"writing {kind} {namespace}/{name}"
        try:
            with api_errors(action):
                body: Any = dict(manifest)  # plain dicts are accepted; the hints name only model classes
                create(namespace=namespace, body=body, field_manager=FIELD_MANAGER)
            return
        except RetryableError as exc:
            if not isinstance(exc.__cause__, ApiException) or exc.__cause__.status != 409:
                raise
        patch = [
            {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": owner_uid},
            {"op": "replace", "path": "/data", "value": manifest["data"]},
            {"op": "replace", "path": "/metadata/annotations", "value": metadata.get("annotations", {})},
        ]
        try:
            with api_errors(action):
                patch_json(name=name, namespace=namespace, body=patch, field_manager=FIELD_MANAGER,
                           _content_type="application/json-patch+json")
        except PermanentError as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiException) and cause.status == 422:
                raise NotOurs(f"{kind} {namespace}/{name} already exists and was not made by the operator for this "
                              f"SyncJob; rename the SyncJob (or remove that {kind})") from None
            raise

    def deployment_state(self, namespace: str, name: str) -> DeploymentState | None:
        try:
            with api_errors(f"reading Deployment {namespace}/{name}"):
                deployment = self.apps.read_namespaced_deployment(name=name, namespace=namespace)
        except NotFound:
            return None
        owners = (deployment.metadata.owner_references if deployment.metadata else None) or []
        annotations = (deployment.metadata.annotations if deployment.metadata else None) or {}
        controller = next((o for o in owners if o.controller), None)
        conditions = (deployment.status and deployment.status.conditions) or []
        failure = next((f"{c.reason or 'ReplicaFailure'}: {c.message or ''}".rstrip(": ") for c in conditions
                        if c.type == "ReplicaFailure" and c.status == "True"), "")
        return DeploymentState(
            replicas=int(deployment.spec.replicas or 0),
            ready=int((deployment.status and deployment.status.ready_replicas) or 0),
            controller_uid=controller.uid if controller is not None else None,
            failure=failure,
            applied=str(annotations.get(APPLIED_DIGEST_ANNOTATION, "")),
        )

    def worker_pods(self, namespace: str, selector: Mapping[str, str]) -> tuple[PodFacts, ...]:
        """The worker pods' state (read-only: pods list, and for a crash loop its last log line)."""
        label_selector = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
        with api_errors(f"listing worker pods in {namespace} ({label_selector})"):
            pods = self.core.list_namespaced_pod(namespace, label_selector=label_selector, limit=MAX_WORKER_PODS_READ)
        facts = [_pod_facts(pod) for pod in pods.items]
        for index, pod in enumerate(facts):  # one log read per pass at most: the first crash loop's
            for position, container in enumerate(pod.containers):
                if container.waiting_reason == "CrashLoopBackOff":
                    line = self._last_log_line(namespace, pod.name, container.name)
                    containers = list(pod.containers)
                    containers[position] = replace(container, last_log_line=line)
                    facts[index] = replace(pod, containers=tuple(containers))
                    return tuple(facts)
        return tuple(facts)

    def _last_log_line(self, namespace: str, pod: str, container: str) -> str:
        """The last non-empty line the container's previous instance logged ("" if unreadable)."""
        try:
            with api_errors(f"reading the log of pod {namespace}/{pod}"):
                text = self.core.read_namespaced_pod_log(pod, namespace, container=container, previous=True,
                                                         tail_lines=LOG_TAIL_LINES, limit_bytes=LOG_TAIL_BYTES)
        except (PermanentError, RetryableError):  # no node, no log yet, or no right: the status has to do
            return ""
        lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def scale_deployment_if_exists(self, namespace: str, name: str, replicas: int) -> None:
        """Set replicas through the scale subresource (leaves the rest of our applied fields alone)."""
        try:
            with api_errors(f"scaling Deployment {namespace}/{name}"):
                self.apps.patch_namespaced_deployment_scale(
                    name=name, namespace=namespace, body={"spec": {"replicas": replicas}}
                )
        except NotFound:
            return

    def read_config_map_key(self, namespace: str, name: str, key: str) -> str:
        """The text under ``key``; :class:`NotFound` if the ConfigMap is missing, :class:`KeyNotFound`
        (with the keys it has) if the key is."""
        with api_errors(f"reading ConfigMap {namespace}/{name}"):
            config_map = self.core.read_namespaced_config_map(name=name, namespace=namespace)
        data = config_map.data or {}
        if key not in data:
            raise KeyNotFound(f"ConfigMap {namespace}/{name} has no key {key!r}", tuple(sorted(data)))
        return str(data[key])

    def post_event(self, event: Mapping[str, Any]) -> None:
        namespace = event["metadata"]["namespace"]
        with api_errors(f"posting Event in {namespace}"):
            # The client accepts plain dicts as bodies; its type hints name only the model classes.
            body: Any = dict(event)
            self.core.create_namespaced_event(namespace=namespace, body=body)


def _pod_facts(pod: Any) -> PodFacts:
    status = pod.status
    conditions = (status and status.conditions) or []
    scheduled = next((c for c in conditions if c.type == "PodScheduled"), None)
    statuses = [*((status and status.init_container_statuses) or []), *((status and status.container_statuses) or [])]
    return PodFacts(
        name=pod.metadata.name,
        phase=(status and status.phase) or "Pending",
        scheduled=scheduled is not None and scheduled.status == "True",
        unschedulable=(scheduled.message or scheduled.reason or "") if scheduled is not None and scheduled.status == "False" else "",
        containers=tuple(_container_facts(c) for c in statuses),
    )


def _container_facts(container: Any) -> ContainerFacts:
    waiting = container.state.waiting if container.state else None
    last = container.last_state.terminated if container.last_state else None
    return ContainerFacts(
        name=container.name,
        waiting_reason=(waiting and waiting.reason) or "",
        waiting_message=(waiting and waiting.message) or "",
        last_exit_code=last.exit_code if last is not None else None,
        last_reason=(last and last.reason) or "",
        last_message=(last and last.message) or "",
        restarts=int(container.restart_count or 0),
    )
