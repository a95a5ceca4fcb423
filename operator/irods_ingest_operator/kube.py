"""The one adapter for Kubernetes API side effects (the only operator module importing kubernetes).

HTTP statuses are mapped once onto the engine's taxonomy: 404 → :class:`NotFound`; 409,
429 and 5xx → retryable; 401/403/422 and other 4xx → permanent (a 403 names the verb and
resource, which is what an RBAC fix needs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from irods_ingest.errors import PermanentError, RetryableError
from irods_ingest_operator.constants import FIELD_MANAGER
from irods_ingest_operator.refs import DeploymentState


class NotFound(PermanentError):
    """The object does not exist."""


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
        metadata = manifest["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        owner_uid = metadata["ownerReferences"][0]["uid"]
        # The action names the object, never its data: the error text may reach status and Events.
        action = f"writing Secret {namespace}/{name}"
        try:
            with api_errors(action):
                body: Any = dict(manifest)  # plain dicts are accepted; the hints name only model classes
                self.core.create_namespaced_secret(namespace=namespace, body=body, field_manager=FIELD_MANAGER)
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
                self.core.patch_namespaced_secret(name=name, namespace=namespace, body=patch,
                                                  field_manager=FIELD_MANAGER, _content_type="application/json-patch+json")
        except PermanentError as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiException) and cause.status == 422:
                raise NotOurs(f"Secret {namespace}/{name} already exists and was not made by the operator for this "
                              "SyncJob; rename the SyncJob (or remove that Secret)") from None
            raise

    def deployment_state(self, namespace: str, name: str) -> DeploymentState | None:
        try:
            with api_errors(f"reading Deployment {namespace}/{name}"):
                deployment = self.apps.read_namespaced_deployment(name=name, namespace=namespace)
        except NotFound:
            return None
        owners = (deployment.metadata.owner_references if deployment.metadata else None) or []
        controller = next((o for o in owners if o.controller), None)
        return DeploymentState(
            replicas=int(deployment.spec.replicas or 0),
            ready=int((deployment.status and deployment.status.ready_replicas) or 0),
            controller_uid=controller.uid if controller is not None else None,
        )

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
        """The text under ``key``; :class:`NotFound` names the ConfigMap or the key that is missing."""
        with api_errors(f"reading ConfigMap {namespace}/{name}"):
            config_map = self.core.read_namespaced_config_map(name=name, namespace=namespace)
        data = config_map.data or {}
        if key not in data:
            raise NotFound(f"ConfigMap {namespace}/{name} has no key {key!r} (keys: {', '.join(sorted(data)) or 'none'})")
        return str(data[key])

    def post_event(self, event: Mapping[str, Any]) -> None:
        namespace = event["metadata"]["namespace"]
        with api_errors(f"posting Event in {namespace}"):
            # The client accepts plain dicts as bodies; its type hints name only the model classes.
            body: Any = dict(event)
            self.core.create_namespaced_event(namespace=namespace, body=body)
