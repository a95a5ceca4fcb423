"""Helpers shared by the chart tests: rendering with helm, the chart's variants, manifest lookups.

Imported as ``chart.chartkit`` (``tests/`` is on the path; ``tests/chart`` is a namespace package).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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


# ----------------------------------------------------------------------------- NetworkPolicy
# The test platform has no CNI, so nothing enforces the chart's NetworkPolicies here; these
# helpers evaluate them the way the NetworkPolicy API defines (an ingress is allowed when no
# policy isolates the target pod, or some rule of an isolating policy admits source and port).
NAME_LABEL: Final = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Pod:
    """A pod as NetworkPolicy sees it: its namespace (with its labels) and its own labels."""

    namespace: str
    labels: Mapping[str, str]
    # None: the label Kubernetes 1.21+ puts on every namespace (kubernetes.io/metadata.name).
    namespace_labels: Mapping[str, str] | None = None

    def ns_labels(self) -> Mapping[str, str]:
        return {NAME_LABEL: self.namespace} if self.namespace_labels is None else self.namespace_labels


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector matches ``labels`` (an empty selector matches everything)."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def isolating_policies(manifests: Iterable[Manifest], target: Pod, direction: str = "Ingress") -> list[Manifest]:
    """The NetworkPolicies that select ``target`` and isolate it in ``direction``."""
    return [
        m for m in manifests
        if m["kind"] == "NetworkPolicy" and m["metadata"]["namespace"] == target.namespace
        and selects(m["spec"]["podSelector"], target.labels)
        and direction in m["spec"].get("policyTypes", ["Ingress"])
    ]


def _peer_admits(peer: Mapping[str, Any], policy_namespace: str, source: Pod) -> bool:
    if "ipBlock" in peer:
        return True  # pod IPs may fall in any block: count it as admitting (the conservative answer)
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], source.ns_labels()):
            return False
    elif source.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector"), source.labels)


def _port_admits(ports: list[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        first = entry["port"]
        assert isinstance(first, int), f"named port {first!r}: the chart should use numbers"
        if first <= port <= entry.get("endPort", first):
            return True
    return False


def ingress_allowed(manifests: Iterable[Manifest], source: Pod, target: Pod, port: int,
                    protocol: str = "TCP") -> bool:
    """Whether the NetworkPolicies in ``manifests`` let ``source`` connect to ``target:port``."""
    policies = isolating_policies(manifests, target, "Ingress")
    if not policies:
        return True
    return any(
        _port_admits(rule.get("ports"), port, protocol)
        and (not rule.get("from") or any(_peer_admits(p, target.namespace, source) for p in rule["from"]))
        for policy in policies for rule in policy["spec"].get("ingress") or []
    )


def egress_allowed(manifests: Iterable[Manifest], source: Pod, target: Pod | None, port: int,
                   protocol: str = "TCP") -> bool:
    """Whether ``source`` may open a connection to ``target:port`` (None: an address outside the cluster)."""
    policies = isolating_policies(manifests, source, "Egress")
    if not policies:
        return True
    for policy in policies:
        for rule in policy["spec"].get("egress") or []:
            if not _port_admits(rule.get("ports"), port, protocol):
                continue
            peers = rule.get("to")
            if not peers:
                return True
            for peer in peers:
                if "ipBlock" in peer or (target is not None and _peer_admits(peer, source.namespace, target)):
                    return True
    return False
