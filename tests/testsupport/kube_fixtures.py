"""Fixtures for a real Kubernetes control plane (see ``testsupport.kube``).

One control plane per test session, with the project's CRDs (``deploy/crds/*.yaml``)
applied before the controller-manager starts, so that its garbage collector knows them.
Each test that needs a namespace gets a fresh one, deleted afterwards.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, cast

import pytest
from kubernetes import client as k8s

from irods_ingest_testkit.processes import wait_until
from testsupport.kube import ADMIN_USER, ControlPlane, missing_tools
from testsupport.require import service_unavailable
from testsupport.toolcache import control_plane_bin_dir

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
CRD_DIR: Final = REPO_ROOT / "deploy" / "crds"
BUILD_FIX: Final = "run scripts/build-control-plane.sh (it also installs etcd-server and openssl)"

# A static identity with no RBAC grants: what an unprivileged user or a misconfigured
# operator looks like. Tests grant it exactly what they mean to test.
UNPRIVILEGED_USER: Final = "jane"
UNPRIVILEGED_GROUPS: Final = ("irods-ingest:testers",)
NAMESPACE_LABEL: Final = "irods-ingest.test/namespace"
# An identity of the operator's own (as rights go, the cluster's admin), whose every request the
# apiserver's audit log records (`ControlPlane.audit_log_path`): a test that runs its operator as
# this user counts the operator's API calls, and nobody else's (tests, kubelet, controllers).
AUDITED_OPERATOR_USER: Final = "irods-ingest-operator"


@pytest.fixture(scope="session")
def kube_bin_dir() -> Path:
    """Folder of kube-apiserver and kube-controller-manager; skips (fails in CI) when incomplete.

    Tests that start a ``ControlPlane`` of their own request this first.
    """
    problems = missing_tools()
    if problems:
        service_unavailable("Kubernetes control plane", "; ".join(problems), BUILD_FIX)
    return control_plane_bin_dir()


@pytest.fixture(scope="session")
def kube_control_plane(
    kube_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """The session's etcd + kube-apiserver + kube-controller-manager (admin kubeconfig inside)."""
    plane = ControlPlane(
        bin_dir=kube_bin_dir,
        state_dir=tmp_path_factory.mktemp("kube"),  # pytest keeps it: logs for debugging
        crds=sorted(CRD_DIR.glob("*.yaml")),
        extra_users={UNPRIVILEGED_USER: UNPRIVILEGED_GROUPS, AUDITED_OPERATOR_USER: ("system:masters",)},
        audit_users=(AUDITED_OPERATOR_USER,),
    )
    with plane:
        yield plane


@pytest.fixture(scope="session")
def kube_api(kube_control_plane: ControlPlane) -> Iterator[k8s.ApiClient]:
    """An admin ``ApiClient`` (system:masters); global kubernetes config stays untouched."""
    with kube_control_plane.api_client(ADMIN_USER) as api:
        yield api


@pytest.fixture(scope="session")
def kube_unprivileged_api(kube_control_plane: ControlPlane) -> Iterator[k8s.ApiClient]:
    """An ``ApiClient`` acting as ``UNPRIVILEGED_USER``, who has no RBAC grants."""
    with kube_control_plane.api_client(UNPRIVILEGED_USER) as api:
        yield api


class NamespaceReaper:
    """Deletes test namespaces without making each test wait for it.

    kube-controller-manager starts on a deleted namespace only after a fixed 5 s grace
    period, so waiting in every test's teardown would cost 5 s per test. The reaper issues
    the deletion and waits once, for all namespaces, at the end of the session, stripping
    custom-resource finalizers meanwhile so that no namespace hangs in Terminating.
    """

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api
        self.pending: list[str] = []

    def delete(self, name: str) -> None:
        strip_custom_resource_finalizers(self.api, name)
        if _request_namespace_deletion(self.api, name):
            self.pending.append(name)

    def drain(self, timeout: float = 120.0) -> None:
        def all_gone() -> bool:
            self.pending = [name for name in self.pending if not _namespace_gone(self.api, name)]
            return not self.pending

        wait_until(all_gone, timeout=timeout, what=f"deletion of namespaces {self.pending}", interval=0.5)


@pytest.fixture(scope="session")
def kube_namespace_reaper(kube_api: k8s.ApiClient) -> Iterator[NamespaceReaper]:
    reaper = NamespaceReaper(kube_api)
    yield reaper
    reaper.drain()


@pytest.fixture
def kube_namespace(
    kube_api: k8s.ApiClient, kube_namespace_reaper: NamespaceReaper, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace named after the test; deleted afterwards (see ``NamespaceReaper``)."""
    name = _namespace_name(request.node.name)
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace(
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={NAMESPACE_LABEL: "true"}))
    )
    yield name
    kube_namespace_reaper.delete(name)


def delete_namespace(api: k8s.ApiClient, name: str, *, timeout: float = 60.0) -> None:
    """Delete a namespace and wait until it is gone (at least 5 s: the namespace controller's grace).

    Custom resources in it lose their finalizers, so that a stopped (or buggy) operator can
    never leave the namespace stuck in Terminating.
    """
    if _request_namespace_deletion(api, name):
        wait_until(
            lambda: _namespace_gone(api, name),
            timeout=timeout,
            what=f"namespace {name} deleted",
            interval=0.25,
        )


def _request_namespace_deletion(api: k8s.ApiClient, name: str) -> bool:
    """Ask for the deletion; False when the namespace is already gone."""
    try:
        k8s.CoreV1Api(api).delete_namespace(name)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _namespace_gone(api: k8s.ApiClient, name: str) -> bool:
    strip_custom_resource_finalizers(api, name)
    try:
        k8s.CoreV1Api(api).read_namespace(name)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def strip_custom_resource_finalizers(api: k8s.ApiClient, namespace: str) -> None:
    """Remove the finalizers of every custom resource in ``namespace``."""
    objects = k8s.CustomObjectsApi(api)
    crds = cast(
        dict[str, Any],
        objects.list_cluster_custom_object("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
    )
    for crd in crds.get("items", []):
        spec: dict[str, Any] = crd["spec"]
        if spec.get("scope") != "Namespaced":
            continue
        group, plural = spec["group"], spec["names"]["plural"]
        version = next(v["name"] for v in spec["versions"] if v.get("storage"))
        try:
            listing = cast(
                dict[str, Any], objects.list_namespaced_custom_object(group, version, namespace, plural)
            )
        except k8s.ApiException as exc:
            if exc.status == 404:  # the CRD is being deleted
                continue
            raise
        for item in listing.get("items", []):
            if not item["metadata"].get("finalizers"):
                continue
            try:
                objects.patch_namespaced_custom_object(
                    group, version, namespace, plural, item["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                    _content_type="application/merge-patch+json",
                )  # fmt: skip
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise


def _namespace_name(test_name: str) -> str:
    """A DNS-1123 label from the test's name plus a random suffix (readable in logs)."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")
    slug = slug.removeprefix("test-")[:48].strip("-") or "test"
    return f"{slug}-{secrets.token_hex(3)}"
