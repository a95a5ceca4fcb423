"""The chart stays valid: strict lint, manifests that validate offline, and a real install."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client as k8s

from testsupport.helm_fixtures import Helm
from testsupport.kube import ControlPlane

pytestmark = pytest.mark.helm

# The oldest schema kubernetes-validate ships; the real 1.20 apiserver is covered by the install test.
OFFLINE_SCHEMA_VERSION = "1.25.0"


def _render(helm: Helm, chart_dir: Path, *args: str) -> list[dict[str, Any]]:
    # Rendered as for the oldest supported cluster, which the chart's kubeVersion must admit.
    output = helm.run(
        "template", "smoke", str(chart_dir), "--namespace", "ingest", "--kube-version", "1.20.2", *args
    ).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def test_chart_lints_strictly(helm: Helm, chart_dir: Path) -> None:
    result = helm.run("lint", "--strict", str(chart_dir))
    assert "0 chart(s) failed" in result.stdout


def test_chart_renders_valid_labelled_manifests(helm: Helm, chart_dir: Path) -> None:
    manifests = _render(helm, chart_dir)

    assert {(m["kind"], m["metadata"]["name"]) for m in manifests} == {
        ("ServiceAccount", "smoke-irods-ingest-operator")
    }
    for manifest in manifests:
        kubernetes_validate.validate(manifest, OFFLINE_SCHEMA_VERSION, strict=True)
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "irods-ingest-operator"
        assert labels["app.kubernetes.io/instance"] == "smoke"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "irods-ingest-operator-0.1.0"
        assert manifest["metadata"]["namespace"] == "ingest"


def test_chart_can_skip_the_service_account(helm: Helm, chart_dir: Path) -> None:
    assert _render(helm, chart_dir, "--set", "serviceAccount.create=false") == []


@pytest.mark.kube
def test_chart_installs_into_the_control_plane(
    helm: Helm,
    chart_dir: Path,
    kube_control_plane: ControlPlane,
    kube_api: k8s.ApiClient,
    kube_namespace: str,
) -> None:
    kubeconfig = kube_control_plane.kubeconfig_path
    helm.run(
        "install", "smoke", str(chart_dir), "--namespace", kube_namespace, "--wait", kubeconfig=kubeconfig
    )

    account = k8s.CoreV1Api(kube_api).read_namespaced_service_account(
        "smoke-irods-ingest-operator", kube_namespace
    )
    assert account.metadata is not None
    assert (account.metadata.labels or {}).get("app.kubernetes.io/instance") == "smoke"
    status = helm.run("status", "smoke", "--namespace", kube_namespace, kubeconfig=kubeconfig).stdout
    assert "STATUS: deployed" in status

    helm.run("uninstall", "smoke", "--namespace", kube_namespace, "--wait", kubeconfig=kubeconfig)
    listing = k8s.CoreV1Api(kube_api).list_namespaced_service_account(kube_namespace)
    assert "smoke-irods-ingest-operator" not in [sa.metadata.name for sa in listing.items if sa.metadata]
