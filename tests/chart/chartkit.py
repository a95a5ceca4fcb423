"""Helpers shared by the chart tests: rendering with helm, the chart's variants, manifest lookups.

Imported as ``chart.chartkit`` (``tests/`` is on the path; ``tests/chart`` is a namespace package).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import yaml

from testsupport.helm_fixtures import CHART_DIR, Helm

RELEASE: Final = "ingest"
NAMESPACE: Final = "ingest-system"
FULLNAME: Final = f"{RELEASE}-irods-ingest-operator"
# The oldest control plane the chart supports; its kubeVersion must admit it.
KUBE_VERSION: Final = "1.20.2"
CI_VALUES: Final = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
# "default" plus every ci/*-values.yaml, as pytest ids.
VARIANTS: Final = ["default", *(path.name.removesuffix("-values.yaml") for path in CI_VALUES)]

Manifest = dict[str, Any]


def values_args(variant: str) -> list[str]:
    return [] if variant == "default" else ["-f", str(CHART_DIR / "ci" / f"{variant}-values.yaml")]


def render_chart(helm: Helm, *args: str, include_crds: bool = False) -> list[Manifest]:
    command = ["template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    if include_crds:
        command.append("--include-crds")
    output = helm.run(*command, *args).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


def find(manifests: Iterable[Manifest], kind: str, name: str | None = None,
         namespace: str | None = None) -> list[Manifest]:
    return [
        m for m in manifests
        if m["kind"] == kind
        and (name is None or m["metadata"]["name"] == name)
        and (namespace is None or m["metadata"].get("namespace") == namespace)
    ]


def one(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[m['metadata']['name'] for m in found]}"
    return found[0]


def container_env(deployment: Mapping[str, Any], container: str = "operator") -> dict[str, dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    (match,) = [c for c in spec["containers"] if c["name"] == container]
    return {item["name"]: item for item in match.get("env", [])}
