"""The chart's security settings, offline: the workers' limits handed to the operator, the
NetworkPolicies (objects and selectors; no CNI enforces them here), the bundled Redis's
maxmemory, and pod-template checksums that never depend on a password.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import pytest
from chart.chartkit import (
    FULLNAME,
    NAMESPACE,
    VARIANTS,
    Manifest,
    Pod,
    container_env,
    egress_allowed,
    find,
    ingress_allowed,
    one,
    render_chart,
    values_args,
)

from irods_ingest_operator.constants import (
    COMPONENT_LABELS,
    LABEL_INSTANCE,
    SELECTOR_LABELS,
    WORKER_METRICS_PORT,
)
from irods_ingest_operator.settings import OperatorSettings
from testsupport.helm_fixtures import Helm
from testsupport.pod_security import restricted_violations

pytestmark = pytest.mark.helm

WORKER_POD_LABELS: Final = {**COMPONENT_LABELS, LABEL_INSTANCE: "job"}
PROMETHEUS_PEER: Final = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}
PROMETHEUS: Final = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})


def _env(manifests: list[Manifest]) -> dict[str, str]:
    return {name: item.get("value", "") for name, item in container_env(one(manifests, "Deployment", FULLNAME)).items()}


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# ----------------------------------------------------------------------------- worker limits
def test_worker_defaults_reach_the_operator(render: Any) -> None:
    env = _env(render())
    assert env["IRODS_INGEST_OPERATOR_ALLOWED_VOLUME_TYPES"] == "persistentVolumeClaim,nfs,csi"
    assert env["IRODS_INGEST_OPERATOR_ALLOWED_IMAGES"] == "ghcr.io/irods-ingest/irods-ingest-worker"
    assert (env["IRODS_INGEST_OPERATOR_WORKER_UID"], env["IRODS_INGEST_OPERATOR_WORKER_GID"]) == ("10001", "10001")
    assert "IRODS_INGEST_OPERATOR_WORKER_FS_GROUP" not in env
    assert env["IRODS_INGEST_OPERATOR_WORKER_TMP_SIZE"] == "1Gi"
    assert json.loads(env["IRODS_INGEST_OPERATOR_WORKER_RESOURCES"]) == {
        "requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}}
    assert env["IRODS_INGEST_OPERATOR_MAX_FAILURE_RECORDS"] == "1000"
    assert env["IRODS_INGEST_OPERATOR_WORKER_CREDENTIALS"] == "perJob"
    assert env["IRODS_INGEST_OPERATOR_CREDENTIAL_ROTATION"] == "604800"


def test_worker_values_reach_the_operator(render: Any) -> None:
    env = _env(render(
        "--set", "workers.allowedImages={registry.example.org/ingest/*,ghcr.io/irods-ingest/irods-ingest-worker}",
        "--set", "workers.allowedVolumeTypes={persistentVolumeClaim,hostPath}",
        "--set", "workers.securityContext.runAsUser=20001", "--set", "workers.securityContext.runAsGroup=20002",
        "--set", "workers.securityContext.fsGroup=30000", "--set", "workers.tmpSizeLimit=4Gi",
        "--set-json", 'workers.resources={"requests":{"cpu":"1","memory":"1Gi"},"limits":{"cpu":2,"memory":"8Gi"}}',
        # large numbers: values.yaml numbers are floats in helm; they must not print as 1e+07
        "--set", "workers.maxFailureRecords=100000", "--set", "workers.credentials.rotationSeconds=86400",
    ))
    assert env["IRODS_INGEST_OPERATOR_ALLOWED_IMAGES"] == "registry.example.org/ingest/*,ghcr.io/irods-ingest/irods-ingest-worker"
    assert env["IRODS_INGEST_OPERATOR_ALLOWED_VOLUME_TYPES"] == "persistentVolumeClaim,hostPath"
    assert env["IRODS_INGEST_OPERATOR_WORKER_UID"] == "20001"
    assert env["IRODS_INGEST_OPERATOR_WORKER_GID"] == "20002"
    assert env["IRODS_INGEST_OPERATOR_WORKER_FS_GROUP"] == "30000"
    assert env["IRODS_INGEST_OPERATOR_WORKER_TMP_SIZE"] == "4Gi"
    assert json.loads(env["IRODS_INGEST_OPERATOR_WORKER_RESOURCES"]) == {
        "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": 2, "memory": "8Gi"}}
    assert env["IRODS_INGEST_OPERATOR_MAX_FAILURE_RECORDS"] == "100000"
    assert env["IRODS_INGEST_OPERATOR_CREDENTIAL_ROTATION"] == "86400"


def test_integers_from_values_yaml_never_print_in_exponent_form(helm: Helm, tmp_path: Path) -> None:
    values = tmp_path / "big.yaml"
    values.write_text("workers:\n  maxFailureRecords: 100000\n  credentials:\n    rotationSeconds: 31536000\n")
    env = _env(render_chart(helm, "-f", str(values)))
    assert env["IRODS_INGEST_OPERATOR_MAX_FAILURE_RECORDS"] == "100000"
    assert env["IRODS_INGEST_OPERATOR_CREDENTIAL_ROTATION"] == "31536000"


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_operator_accepts_the_environment_of_every_variant(helm: Helm, variant: str) -> None:
    """The chart's env against the operator's own parser (names, formats, ranges)."""
    env = {}
    for name, item in container_env(one(render_chart(helm, *values_args(variant)), "Deployment", FULLNAME)).items():
        env[name] = "redis://:operator-pw@redis.example.org:6379/0" if "valueFrom" in item else item["value"]
    settings = OperatorSettings.from_environment(env)
    assert settings.worker_credentials.value == env["IRODS_INGEST_OPERATOR_WORKER_CREDENTIALS"]
    assert settings.max_failure_records == int(env["IRODS_INGEST_OPERATOR_MAX_FAILURE_RECORDS"])
    assert sorted(settings.admission.allowed_volume_types) == sorted(
        env["IRODS_INGEST_OPERATOR_ALLOWED_VOLUME_TYPES"].split(","))


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_charts_own_pods_meet_the_restricted_pod_security_standard(helm: Helm, variant: str) -> None:
    """So the release namespace can enforce pod-security.kubernetes.io/enforce=restricted too."""
    for manifest in render_chart(helm, *values_args(variant)):
        if manifest["kind"] in ("Deployment", "StatefulSet"):
            template = manifest["spec"]["template"]
            assert restricted_violations(template["spec"], template["metadata"].get("annotations")) == [], manifest[
                "metadata"
            ]["name"]


# ----------------------------------------------------------------------------- NetworkPolicies
def _policy(manifests: list[Manifest], name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    (policy,) = find(manifests, "NetworkPolicy", name, namespace)
    spec: dict[str, Any] = policy["spec"]
    return spec


def _pod_labels(manifests: list[Manifest], kind: str, name: str) -> dict[str, str]:
    labels: dict[str, str] = one(manifests, kind, name)["spec"]["template"]["metadata"]["labels"]
    return labels


def test_redis_policy_admits_the_operator_and_watched_workers_on_6379_only(render: Any) -> None:
    manifests = render("--set", "watchNamespaces={team-a,team-b}")
    operator_selector = {**{k: v for k, v in _pod_labels(manifests, "Deployment", FULLNAME).items()
                            if k != "helm.sh/chart"}}
    assert _policy(manifests, f"{FULLNAME}-redis") == {
        "podSelector": {"matchLabels": one(manifests, "StatefulSet")["spec"]["selector"]["matchLabels"]},
        "policyTypes": ["Ingress"],
        "ingress": [{
            "from": [
                {"podSelector": {"matchLabels": operator_selector}},
                {"namespaceSelector": {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]},
                 "podSelector": {"matchLabels": dict(SELECTOR_LABELS)}},
            ],
            "ports": [{"port": 6379, "protocol": "TCP"}],
        }],
    }
    # the selectors match the real pods: the operator's pod template, the operator's worker labels
    operator = Pod(NAMESPACE, _pod_labels(manifests, "Deployment", FULLNAME))
    redis_pod = Pod(NAMESPACE, _pod_labels(manifests, "StatefulSet", f"{FULLNAME}-redis"))
    assert ingress_allowed(manifests, operator, redis_pod, 6379)
    for namespace in ("team-a", "team-b"):
        assert ingress_allowed(manifests, Pod(namespace, WORKER_POD_LABELS), redis_pod, 6379)
    assert not ingress_allowed(manifests, Pod(NAMESPACE, WORKER_POD_LABELS), redis_pod, 6379)  # not watched


def test_redis_policy_on_clusters_without_the_namespace_name_label(render: Any) -> None:
    """Kubernetes 1.20 sets no kubernetes.io/metadata.name label: workers are refused until the
    namespaces are labelled, or networkPolicy.workerNamespaceSelector names a label they carry."""
    manifests = render("--set", "watchNamespaces={team-a}")
    redis_pod = Pod(NAMESPACE, _pod_labels(manifests, "StatefulSet", f"{FULLNAME}-redis"))
    unlabelled = Pod("team-a", WORKER_POD_LABELS, namespace_labels={})
    assert not ingress_allowed(manifests, unlabelled, redis_pod, 6379)
    tenant = Pod("team-a", WORKER_POD_LABELS, namespace_labels={"ingest.example.org/tenant": "true"})
    selected = render("--set", "watchNamespaces={team-a}",
                      "--set-string", "networkPolicy.workerNamespaceSelector.matchLabels.ingest\\.example\\.org/tenant=true")
    assert _policy(selected, f"{FULLNAME}-redis")["ingress"][0]["from"][1]["namespaceSelector"] == {
        "matchLabels": {"ingest.example.org/tenant": "true"}}
    assert ingress_allowed(selected, tenant, redis_pod, 6379)
    assert not ingress_allowed(selected, Pod("team-b", WORKER_POD_LABELS), redis_pod, 6379)


def test_cluster_wide_redis_policy_admits_workers_of_any_namespace(render: Any) -> None:
    manifests = render("--set", "rbac.clusterWide=true", "--set", "networkPolicy.extraWorkerNamespaces={team-a}")
    peers = _policy(manifests, f"{FULLNAME}-redis")["ingress"][0]["from"]
    assert peers[1] == {"namespaceSelector": {}, "podSelector": {"matchLabels": dict(SELECTOR_LABELS)}}
    # the workers' own policy: only where the chart is told SyncJobs live
    assert [p["metadata"]["namespace"] for p in find(manifests, "NetworkPolicy", f"{FULLNAME}-worker")] == ["team-a"]


def test_operator_policy_admits_metrics_from_the_configured_peers_only(render: Any) -> None:
    closed = _policy(render(), FULLNAME)
    labels = {"app.kubernetes.io/name": "irods-ingest-operator", "app.kubernetes.io/instance": "ingest",
              "app.kubernetes.io/component": "operator"}
    assert closed == {"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"], "ingress": []}
    opened = render("--set-json", f"networkPolicy.metrics.from=[{_json(PROMETHEUS_PEER)}]")
    assert _policy(opened, FULLNAME)["ingress"] == [
        {"from": [PROMETHEUS_PEER], "ports": [{"port": 9101, "protocol": "TCP"}]}]
    operator = Pod(NAMESPACE, _pod_labels(opened, "Deployment", FULLNAME))
    assert ingress_allowed(opened, PROMETHEUS, operator, 9101)
    assert not ingress_allowed(opened, PROMETHEUS, operator, 8080)
    # metrics off: nothing to admit
    off = render("--set-json", f"networkPolicy.metrics.from=[{_json(PROMETHEUS_PEER)}]", "--set", "metrics.enabled=false")
    assert _policy(off, FULLNAME)["ingress"] == []


def test_worker_policy_in_every_watched_namespace(render: Any) -> None:
    manifests = render("--set", "watchNamespaces={team-a,team-b}",
                       "--set-json", f"networkPolicy.metrics.from=[{_json(PROMETHEUS_PEER)}]")
    for namespace in ("team-a", "team-b"):
        assert _policy(manifests, f"{FULLNAME}-worker", namespace) == {
            "podSelector": {"matchLabels": dict(SELECTOR_LABELS)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [PROMETHEUS_PEER], "ports": [{"port": WORKER_METRICS_PORT, "protocol": "TCP"}]}],
        }
        worker = Pod(namespace, WORKER_POD_LABELS)
        assert ingress_allowed(manifests, PROMETHEUS, worker, WORKER_METRICS_PORT)
        # egress is not restricted by default: iRODS, S3 and Redis may be anywhere
        assert egress_allowed(manifests, worker, None, 1247)
    assert not find(manifests, "NetworkPolicy", f"{FULLNAME}-worker", NAMESPACE)


def test_restricted_worker_egress_allows_dns_the_bundled_redis_and_the_given_rules(render: Any) -> None:
    irods = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 1247, "protocol": "TCP"}]}
    manifests = render("--set", "networkPolicy.workerEgress.restrict=true",
                       "--set-json", f"networkPolicy.workerEgress.to=[{_json(irods)}]")
    policy = _policy(manifests, f"{FULLNAME}-worker")
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    redis_labels = one(manifests, "StatefulSet")["spec"]["selector"]["matchLabels"]
    assert policy["egress"] == [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
                 "podSelector": {"matchLabels": redis_labels}}],
         "ports": [{"port": 6379, "protocol": "TCP"}]},
        irods,
    ]
    worker = Pod(NAMESPACE, WORKER_POD_LABELS)
    redis_pod = Pod(NAMESPACE, _pod_labels(manifests, "StatefulSet", f"{FULLNAME}-redis"))
    assert egress_allowed(manifests, worker, redis_pod, 6379)
    assert egress_allowed(manifests, worker, None, 53, "UDP")
    assert not egress_allowed(manifests, worker, Pod("elsewhere", {}), 6379)
    assert not egress_allowed(manifests, worker, Pod("elsewhere", {}), 443)


def test_network_policies_can_be_turned_off(render: Any) -> None:
    assert not find(render("--set", "networkPolicy.enabled=false"), "NetworkPolicy")


def test_external_redis_has_no_redis_policy(render: Any) -> None:
    manifests = render("--set", "redis.bundled.enabled=false", "--set", "redis.external.url=redis://r:6379/0")
    names = sorted(p["metadata"]["name"] for p in find(manifests, "NetworkPolicy"))
    assert names == [FULLNAME, f"{FULLNAME}-worker"]


# ----------------------------------------------------------------------------- maxmemory
def _maxmemory(manifests: list[Manifest]) -> int | None:
    config = one(manifests, "ConfigMap", f"{FULLNAME}-redis")["data"]["redis.conf"].splitlines()
    assert "maxmemory-policy noeviction" in config
    values = [int(line.split()[1]) for line in config if line.startswith("maxmemory ")]
    assert len(values) <= 1
    return values[0] if values else None


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("1Gi", int(1024**3 * 0.8)),
        ("1.5Gi", int(1.5 * 1024**3 * 0.8)),
        ("512Mi", int(512 * 1024**2 * 0.8)),
        ("500M", 400_000_000),
        ("2G", 1_600_000_000),
        ("4294967296", int(4294967296 * 0.8)),
    ],
)
def test_maxmemory_is_eighty_percent_of_the_memory_limit(render: Any, limit: str, expected: int) -> None:
    assert _maxmemory(render("--set-string", f"redis.bundled.resources.limits.memory={limit}")) == expected


def test_explicit_maxmemory_and_no_limit(render: Any) -> None:
    assert _maxmemory(render("--set", "redis.bundled.maxmemory=600Mi")) == 600 * 1024**2
    no_limit = ("--set", "redis.bundled.resources.limits=null")
    assert _maxmemory(render(*no_limit)) is None  # nothing to stay below (docs/deploy.md advises a limit)
    assert _maxmemory(render(*no_limit, "--set", "redis.bundled.maxmemory=3G")) == 3_000_000_000


# ----------------------------------------------------------------------------- checksums
def _annotations(manifests: list[Manifest]) -> dict[str, dict[str, str]]:
    return {f"{m['kind']}/{m['metadata']['name']}": dict(m["spec"]["template"]["metadata"].get("annotations", {}))
            for m in manifests if m["kind"] in ("Deployment", "StatefulSet")}


@pytest.mark.parametrize("mode", ["perJob", "shared"])
def test_checksums_ignore_the_bundled_password(render: Any, mode: str) -> None:
    def annotations(password: str) -> dict[str, dict[str, str]]:
        return _annotations(render("--set", f"workers.credentials.mode={mode}",
                                   "--set", f"redis.bundled.auth.password={password}"))

    first = annotations("Password1")
    assert set(first) == {f"Deployment/{FULLNAME}", f"StatefulSet/{FULLNAME}-redis"}
    assert first == annotations("Password2")
    # a generated password (a new one on every `helm template`) changes nothing either
    assert _annotations(render("--set", f"workers.credentials.mode={mode}")) == _annotations(
        render("--set", f"workers.credentials.mode={mode}"))


def test_checksums_ignore_the_external_urls_credentials_but_not_its_address(render: Any) -> None:
    def annotations(url: str) -> dict[str, str]:
        manifests = render("--set", "redis.bundled.enabled=false", "--set", f"redis.external.url={url}")
        return _annotations(manifests)[f"Deployment/{FULLNAME}"]

    base = annotations("rediss://ingest:pw1@redis.example.org:6380/2")
    assert base == annotations("rediss://ingest:pw2@redis.example.org:6380/2")
    assert base == annotations("rediss://other:pw3@redis.example.org:6380/2?password=pw4")
    assert base != annotations("rediss://ingest:pw1@redis2.example.org:6380/2")
    assert base != annotations("rediss://ingest:pw1@redis.example.org:6380/3")


def test_credentials_revision_and_settings_restart_the_pods(render: Any) -> None:
    base = _annotations(render())
    bumped = _annotations(render("--set", "redis.credentialsRevision=2"))
    assert all(base[name] != bumped[name] for name in base)
    config_change = _annotations(render("--set", "redis.bundled.appendfsync=always"))
    assert config_change[f"StatefulSet/{FULLNAME}-redis"] != base[f"StatefulSet/{FULLNAME}-redis"]
