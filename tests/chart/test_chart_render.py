"""The chart, offline: strict lint, valid manifests for every variant, least-privilege RBAC,
hardened pods, secrets only by reference, a schema that rejects typos, documented values, and
CRDs identical to deploy/crds/.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest
import yaml
from chart.chartkit import (
    FULLNAME,
    NAMESPACE,
    RELEASE,
    VARIANTS,
    Manifest,
    container_env,
    find,
    one,
    render_chart,
    values_args,
)

from testsupport.helm_fixtures import CHART_DIR, Helm

pytestmark = pytest.mark.helm

# kubernetes-validate ships no 1.20 schemas; its oldest. The real 1.20 apiserver is covered by
# tests/chart/test_chart_install.py.
OFFLINE_SCHEMA_VERSION: Final = "1.25.0"
REPO_ROOT: Final = CHART_DIR.parents[1]
STANDARD_LABELS: Final = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/component",
    "helm.sh/chart",
)
CLUSTER_SCOPED: Final = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}

# What the operator calls (operator/irods_ingest_operator/kube.py, and kopf's watch/patch/event
# calls); the install test proves it is enough, these tests that nothing more is granted.
OPERATOR_RULES: Final = [
    {"apiGroups": ["ingest.irods.dev"], "resources": ["syncjobs"], "verbs": ["list", "watch", "patch"]},
    {"apiGroups": ["ingest.irods.dev"], "resources": ["syncjobs/status"], "verbs": ["patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "create", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]
# workers.credentials.mode=perJob: each job's "<job>-worker-redis" Secret, created, then patched on rotation.
# Never get/list/watch, never delete (the SyncJob owns it: the garbage collector deletes it).
PER_JOB_SECRET_RULE: Final = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "patch"]}
PER_JOB_RULES: Final = [*OPERATOR_RULES, PER_JOB_SECRET_RULE]
SHARED: Final = ("--set", "workers.credentials.mode=shared")
KOPF_OBSERVATION_RULES: Final = [
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
]


def _render(helm: Helm, variant: str, *extra: str) -> list[Manifest]:
    return render_chart(helm, *values_args(variant), *extra)


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ----------------------------------------------------------------------------- lint and validity
def test_lint_strict(helm: Helm, variant: str) -> None:
    result = helm.run("lint", "--strict", str(CHART_DIR), *values_args(variant))
    assert "0 chart(s) failed" in result.stdout


def test_manifests_validate_and_carry_standard_labels(helm: Helm, variant: str) -> None:
    manifests = _render(helm, variant, "--include-crds")
    assert manifests
    for manifest in manifests:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if manifest["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # no offline schema for the Prometheus Operator's CRDs; checked below
        kubernetes_validate.validate(manifest, OFFLINE_SCHEMA_VERSION, strict=True)
        if kind == "CustomResourceDefinition":
            continue  # a verbatim copy of deploy/crds/ (see the drift test)
        labels = manifest["metadata"]["labels"]
        for label in STANDARD_LABELS:
            assert label in labels, f"{kind} {name} lacks {label}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert (kind in CLUSTER_SCOPED) == ("namespace" not in manifest["metadata"]), f"{kind} {name}"


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", chart["version"])
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", chart["appVersion"])
    assert chart["kubeVersion"].startswith(">=1.20")


# ----------------------------------------------------------------------------- the operator pod
def test_operator_deployment_is_hardened(helm: Helm, variant: str) -> None:
    deployment = one(_render(helm, variant), "Deployment", FULLNAME)
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == FULLNAME
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    env = container_env(deployment)
    assert env["IRODS_INGEST_OPERATOR_LIVENESS_ENDPOINT"]["value"] == "http://0.0.0.0:8080/healthz"
    probe = container["livenessProbe"]["httpGet"]
    health_port = {p["name"]: p["containerPort"] for p in container["ports"]}[probe["port"]]
    assert (probe["path"], health_port) == ("/healthz", 8080)


def _plain_env_values(manifest: Manifest) -> Iterator[tuple[str, str]]:
    pod = manifest.get("spec", {}).get("template", {}).get("spec", {})
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        for item in container.get("env", []):
            if "value" in item:
                yield item["name"], str(item["value"])
        for word in [*container.get("command", []), *container.get("args", [])]:
            yield "command", str(word)


def test_redis_urls_and_passwords_reach_pods_only_through_secrets(helm: Helm, variant: str) -> None:
    manifests = _render(helm, variant)
    secrets = [m for m in manifests if m["kind"] == "Secret"]
    secret_values = {_b64(value) for s in secrets for value in s.get("data", {}).values()}
    for manifest in manifests:
        if manifest["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for name, value in _plain_env_values(manifest):
            # a Redis URL in plain sight carries no user, password or query (?password=...)
            for url in re.findall(r"rediss?://\S+", value):
                parts = urlsplit(url)
                assert (parts.username, parts.password, parts.query) == (None, None, ""), f"{name}={value}"
            assert not any(v and v in value for v in secret_values), f"{manifest['kind']} {name} holds a secret"
    env = container_env(one(manifests, "Deployment", FULLNAME))
    assert "secretKeyRef" in env["IRODS_INGEST_OPERATOR_REDIS_URL"]["valueFrom"]
    if env["IRODS_INGEST_OPERATOR_WORKER_CREDENTIALS"]["value"] == "shared":
        worker_secret, _, key = env["IRODS_INGEST_OPERATOR_WORKER_REDIS_SECRET"]["value"].partition("/")
        assert worker_secret and key
    else:
        assert "IRODS_INGEST_OPERATOR_WORKER_REDIS_SECRET" not in env


def test_shared_worker_redis_secret_is_in_every_watched_namespace(render: Any) -> None:
    manifests = render("--set", "watchNamespaces={team-a,team-b}", *SHARED)
    env = container_env(one(manifests, "Deployment", FULLNAME))
    assert env["IRODS_INGEST_OPERATOR_NAMESPACES"]["value"] == "team-a,team-b"
    name, _, key = env["IRODS_INGEST_OPERATOR_WORKER_REDIS_SECRET"]["value"].partition("/")
    copies = find(manifests, "Secret", name)
    assert sorted(s["metadata"]["namespace"] for s in copies) == ["team-a", "team-b"]
    bundled = one(manifests, "Secret", f"{FULLNAME}-redis")
    worker_password = _b64(bundled["data"]["worker-password"])
    # the same Redis, as the `worker` ACL user (never the operator's full-access password)
    assert {_b64(s["data"][key]) for s in copies} == {
        f"redis://worker:{worker_password}@{FULLNAME}-redis.{NAMESPACE}.svc:6379/0"
    }
    assert _b64(bundled["data"]["redis-password"]) not in _b64(copies[0]["data"][key])


def test_per_job_credentials_leave_redis_urls_out_of_syncjob_namespaces(render: Any) -> None:
    manifests = render("--set", "watchNamespaces={team-a,team-b}")
    env = container_env(one(manifests, "Deployment", FULLNAME))
    assert env["IRODS_INGEST_OPERATOR_WORKER_CREDENTIALS"]["value"] == "perJob"
    assert env["IRODS_INGEST_OPERATOR_CREDENTIAL_ROTATION"]["value"] == "604800"
    # workers' URL without credentials: the operator adds each job's user and password
    assert env["IRODS_INGEST_OPERATOR_WORKER_REDIS_URL"]["value"] == f"redis://{FULLNAME}-redis.{NAMESPACE}.svc:6379/0"
    assert "IRODS_INGEST_OPERATOR_WORKER_REDIS_SECRET" not in env
    assert [s["metadata"]["name"] for s in find(manifests, "Secret")] == [f"{FULLNAME}-redis"]
    # no shared `worker` user: neither its password nor its ACL line exists
    bundled = one(manifests, "Secret", f"{FULLNAME}-redis")
    assert set(bundled["data"]) == {"redis-password", "redis-url"}
    (init,) = one(manifests, "StatefulSet", f"{FULLNAME}-redis")["spec"]["template"]["spec"]["initContainers"]
    assert [e["name"] for e in init["env"]] == ["REDIS_PASSWORD"]
    assert "user worker" not in init["command"][-1]


def test_external_redis_workers_url_is_derived_by_the_operator(render: Any) -> None:
    manifests = render("--set", "redis.bundled.enabled=false", "--set", "redis.external.url=rediss://:pw@r.example:6380/2")
    env = container_env(one(manifests, "Deployment", FULLNAME))
    assert "IRODS_INGEST_OPERATOR_WORKER_REDIS_URL" not in env  # the operator's URL minus its credentials
    assert [s["metadata"]["name"] for s in find(manifests, "Secret")] == [f"{FULLNAME}-redis-url"]
    rotation = container_env(one(render("--set", "workers.credentials.rotationSeconds=0"), "Deployment", FULLNAME))
    assert rotation["IRODS_INGEST_OPERATOR_CREDENTIAL_ROTATION"]["value"] == "0"


def test_shared_workers_with_an_external_redis_use_the_users_own_worker_secret(helm: Helm) -> None:
    manifests = _render(helm, "shared-workers-external-redis")
    assert not find(manifests, "Secret")  # both URLs live in the user's Secrets
    env = container_env(one(manifests, "Deployment", FULLNAME))
    assert env["IRODS_INGEST_OPERATOR_WORKER_CREDENTIALS"]["value"] == "shared"
    assert env["IRODS_INGEST_OPERATOR_WORKER_REDIS_SECRET"]["value"] == "ingest-redis-worker/url"
    assert env["IRODS_INGEST_OPERATOR_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "ingest-redis", "key": "url"}


def test_default_watches_the_release_namespace_only(render: Any) -> None:
    env = container_env(one(render(), "Deployment", FULLNAME))
    assert env["IRODS_INGEST_OPERATOR_NAMESPACES"]["value"] == NAMESPACE


def test_cluster_wide_watches_every_namespace(render: Any) -> None:
    env = container_env(one(render("--set", "rbac.clusterWide=true"), "Deployment", FULLNAME))
    assert "IRODS_INGEST_OPERATOR_NAMESPACES" not in env


def test_images_default_to_app_version_and_accept_digests(render: Any) -> None:
    digest = "sha256:" + "ab" * 32
    manifests = render("--set", f"image.digest={digest}", "--set", "workers.image.tag=9.9.9")
    deployment = one(manifests, "Deployment", FULLNAME)
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/irods-ingest/irods-ingest-operator:0.1.0@{digest}"
    env = container_env(deployment)
    assert env["IRODS_INGEST_OPERATOR_WORKER_IMAGE"]["value"] == "ghcr.io/irods-ingest/irods-ingest-worker:9.9.9"


# ----------------------------------------------------------------------------- RBAC
def _rules(manifest: Manifest) -> list[dict[str, Any]]:
    return [dict(rule) for rule in manifest.get("rules", [])]


def test_rbac_never_uses_wildcards_or_reads_secrets(helm: Helm, variant: str) -> None:
    manifests = _render(helm, variant)
    per_job = container_env(one(manifests, "Deployment", FULLNAME))["IRODS_INGEST_OPERATOR_WORKER_CREDENTIALS"]["value"]
    for manifest in manifests:
        if manifest["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in _rules(manifest):
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{manifest['kind']} {manifest['metadata']['name']}: {rule}"
            assert "resourceNames" not in rule
            if "secrets" in rule["resources"]:
                # per-job credentials only: write the job's Secret, never read, list or delete any
                assert per_job == "perJob" and rule == PER_JOB_SECRET_RULE, rule
            assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_namespaced_rbac_is_exactly_what_the_operator_calls(render: Any) -> None:
    manifests = render()
    role = one(manifests, "Role", FULLNAME)
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _rules(role) == PER_JOB_RULES
    assert _rules(one(render(*SHARED), "Role", FULLNAME)) == OPERATOR_RULES  # shared: no Secrets at all
    binding = one(manifests, "RoleBinding", FULLNAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FULLNAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    # kopf's read-only cluster observation is the only cluster-scoped grant.
    (observer,) = find(manifests, "ClusterRole")
    assert _rules(observer) == KOPF_OBSERVATION_RULES


def test_watched_namespaces_get_a_role_each_and_nothing_cluster_scoped(render: Any) -> None:
    manifests = render("--set", "watchNamespaces={team-a,team-b}", "--set", "rbac.kopfObservation=false")
    roles = find(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(_rules(r) == PER_JOB_RULES for r in roles)
    assert sorted(b["metadata"]["namespace"] for b in find(manifests, "RoleBinding")) == ["team-a", "team-b"]
    assert not [m for m in manifests if m["kind"] in CLUSTER_SCOPED]


def test_cluster_wide_uses_one_cluster_role(render: Any) -> None:
    manifests = render("--set", "rbac.clusterWide=true")
    assert not find(manifests, "Role") and not find(manifests, "RoleBinding")
    role = one(manifests, "ClusterRole")
    assert _rules(role) == PER_JOB_RULES + KOPF_OBSERVATION_RULES
    shared = one(render("--set", "rbac.clusterWide=true", *SHARED), "ClusterRole")
    assert _rules(shared) == OPERATOR_RULES + KOPF_OBSERVATION_RULES
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert NAMESPACE in role["metadata"]["name"]  # two releases of one name never collide


def test_rbac_can_be_left_to_the_user(render: Any) -> None:
    manifests = render("--set", "rbac.create=false")
    assert not [m for m in manifests if m["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")]


# ----------------------------------------------------------------------------- Redis
def test_bundled_redis_persists_with_aof_and_hides_its_password(render: Any) -> None:
    manifests = render()
    config = one(manifests, "ConfigMap", f"{FULLNAME}-redis")["data"]["redis.conf"]
    assert "appendonly yes" in config.splitlines()
    assert "maxmemory-policy noeviction" in config
    statefulset = one(manifests, "StatefulSet", f"{FULLNAME}-redis")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (init,) = pod["initContainers"]
    password_env = {e["name"]: e for e in init["env"]}["REDIS_PASSWORD"]
    assert password_env["valueFrom"]["secretKeyRef"] == {"name": f"{FULLNAME}-redis", "key": "redis-password"}
    (redis,) = pod["containers"]
    assert redis["command"] == ["redis-server", "/etc/redis/redis.conf"]  # no password on the command line
    assert "env" not in redis
    secret = one(manifests, "Secret", f"{FULLNAME}-redis")
    password = _b64(secret["data"]["redis-password"])
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    assert _b64(secret["data"]["redis-url"]) == f"redis://:{password}@{FULLNAME}-redis.{NAMESPACE}.svc:6379/0"


def test_bundled_redis_without_persistence_uses_an_empty_dir(render: Any) -> None:
    statefulset = one(render("--set", "redis.bundled.persistence.enabled=false"), "StatefulSet")
    assert "volumeClaimTemplates" not in statefulset["spec"]
    volumes = {v["name"]: v for v in statefulset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}


def test_external_redis_from_an_existing_secret(helm: Helm) -> None:
    manifests = _render(helm, "external-redis-secret")
    assert not find(manifests, "Secret") and not find(manifests, "StatefulSet")
    env = container_env(one(manifests, "Deployment", FULLNAME))
    assert env["IRODS_INGEST_OPERATOR_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "ingest-redis", "key": "url"}
    assert env["IRODS_INGEST_OPERATOR_WORKER_CREDENTIALS"]["value"] == "perJob"
    assert "IRODS_INGEST_OPERATOR_WORKER_REDIS_SECRET" not in env


def _b64(value: str) -> str:
    return base64.b64decode(value).decode()


# ----------------------------------------------------------------------------- monitoring
def test_service_monitor_scrapes_the_metrics_service(helm: Helm) -> None:
    manifests = _render(helm, "service-monitor")
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = one(manifests, "Service", f"{FULLNAME}-metrics")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    # The Service reaches the operator pod's metrics port.
    deployment = one(manifests, "Deployment", FULLNAME)
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert container_env(deployment)["IRODS_INGEST_OPERATOR_METRICS_PORT"]["value"] == "9101"


def test_service_monitor_is_off_by_default_and_metrics_can_be_disabled(render: Any) -> None:
    assert not find(render(), "ServiceMonitor")
    manifests = render("--set", "metrics.enabled=false")
    assert not find(manifests, "Service", f"{FULLNAME}-metrics")
    assert container_env(one(manifests, "Deployment", FULLNAME))["IRODS_INGEST_OPERATOR_METRICS_PORT"]["value"] == ""


# ----------------------------------------------------------------------------- values and schema
@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--set", "rbac.clusterwide=true"], "additional properties 'clusterwide' not allowed"),
        (["--set", "redis.bundeled.enabled=false"], "additional properties 'bundeled' not allowed"),
        (["--set", "replicaCount=2"], "additional properties 'replicaCount' not allowed"),
        (["--set", "operator.logLevel=VERBOSE"], "logLevel"),
        (["--set", "watchNamespaces={Team_A}"], "watchNamespaces/0"),
        (["--set", "redis.bundled.persistence.size=lots"], "size"),
        (["--set", "image.digest=latest"], "digest"),
        (["--set", "redis.bundled.auth.password=has space"], "password"),
        (["--set-string", "operator.reconcileInterval=soon"], "reconcileInterval"),
        (["--set", "workers.credentials.mode=perNamespace"], "mode"),
        (["--set", "workers.credentials.rotationSeconds=-1"], "rotationSeconds"),
        (["--set", "workers.allowedVolumeTypes={host-path}"], "allowedVolumeTypes/0"),
        (["--set", "workers.allowedVolumeTypes=null"], "allowedVolumeTypes"),
        (["--set", "workers.allowedImages={ghcr.io/*/worker}"], "allowedImages/0"),
        (["--set", "workers.securityContext.runAsUser=0"], "runAsUser"),
        (["--set", "workers.securityContext.fsGroup=0"], "fsGroup"),
        (["--set", "workers.tmpSizeLimit=big"], "tmpSizeLimit"),
        (["--set", "workers.maxFailureRecords=0"], "maxFailureRecords"),
        (["--set", "workers.maxFailureRecords=100001"], "maxFailureRecords"),
        (["--set", "redis.bundled.maxmemory=2gb"], "maxmemory"),
        (["--set", "networkPolicy.metrics.from[0].namespaceSelecter.matchLabels.a=b"], "namespaceSelecter"),
        (["--set", "networkPolicy.workerNamespaceSelector.matchLabel.a=b"], "matchLabel"),
        (["--set-json", "networkPolicy.metrics.from=[{}]"], "from/0"),
        (["--set", "networkPolicy.workerEgress.to[0].ports[0].protocol=ICMP"], "protocol"),
    ],
)
def test_schema_rejects_typos_and_bad_values(helm: Helm, args: list[str], complaint: str) -> None:
    result = helm.run("template", RELEASE, str(CHART_DIR), *args, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--set", "redis.bundled.enabled=false"], "redis.external.url or redis.external.existingSecret"),
        (["--set", "redis.external.url=redis://r:6379/0"], "choose one"),
        (["--set", "redis.bundled.auth.existingSecret=mine", *SHARED], "workers.redisSecret.create=false"),
        (["--set", "redis.bundled.enabled=false", "--set", "redis.external.url=redis://r:6379/0", *SHARED],
         "name that Secret in redis.external.workerSecret"),
        (["--set", "redis.bundled.enabled=false", "--set", "redis.external.existingSecret=r", *SHARED,
          "--set", "redis.external.workerSecret=r"], "the operator's own Secret"),
        (["--set", "redis.bundled.enabled=false", "--set", "redis.external.existingSecret=r",
          "--set", "redis.external.workerSecret=w"], "only with workers.credentials.mode=shared"),
        (["--set", "redis.external.workerSecret=w"], "choose one"),
        (["--set", "redis.bundled.extraConfig=maxmemory 2gb"], "use redis.bundled.maxmemory"),
        (["--set-string", "redis.bundled.extraConfig=maxmemory-policy allkeys-lru"], "use redis.bundled.maxmemory"),
        (["--set", "redis.bundled.maxmemory=1Gi"], "must stay below redis.bundled.resources.limits.memory=1Gi"),
        (["--set", "redis.bundled.resources.limits.memory=1e9"], "not a memory quantity"),
        (["--set", "redis.bundled.enabled=false", "--set", "redis.external.url=redis://:p/w@r:6379/0"],
         "percent-encode"),
        (["--set", "rbac.clusterWide=true", "--set", "watchNamespaces={a}"], "use one or the other"),
        (["--set", "serviceMonitor.enabled=true", "--set", "metrics.enabled=false"], "metrics.enabled=true"),
    ],
)
def test_contradictory_values_fail_with_a_fix(helm: Helm, args: list[str], complaint: str) -> None:
    result = helm.run("template", RELEASE, str(CHART_DIR), *args, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


# Kubernetes objects passed through to pod specs: their keys are Kubernetes', not ours.
PASSTHROUGH: Final = {"resources", "affinity"}


def _schema_keys(schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, sub in schema.get("properties", {}).items():
        yield prefix + key
        if key not in PASSTHROUGH and sub.get("type") == "object" and sub.get("additionalProperties") is False:
            yield from _schema_keys(sub, f"{prefix}{key}.")


def _value_keys(values: Mapping[str, Any], schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        yield prefix + key
        sub = schema.get("properties", {}).get(key, {})
        if key not in PASSTHROUGH and isinstance(value, dict) and sub.get("additionalProperties") is False:
            yield from _value_keys(value, sub, f"{prefix}{key}.")


def test_schema_is_closed_and_matches_values_yaml() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(values, schema)

    def closed(node: Mapping[str, Any], where: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{where} accepts unknown keys"
            for key, sub in node["properties"].items():
                assert sub.get("description"), f"{where}.{key} has no description"
                closed(sub, f"{where}.{key}")
        if "items" in node:
            closed(node["items"], f"{where}[]")
        if "$ref" in node:
            assert node["$ref"].removeprefix("#/definitions/") in schema["definitions"], f"{where}: {node['$ref']}"

    closed(schema, "values")
    for name, definition in schema.get("definitions", {}).items():
        closed(definition, f"definitions.{name}")
    # Every documented value is in the schema (global is Helm's own), and vice versa.
    assert set(_schema_keys(schema)) - {"global"} == set(_value_keys(values, schema))


def test_every_value_is_documented() -> None:
    """Each leaf in values.yaml has a `# --` comment right above it (the helm-docs convention)."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    undocumented = []
    parents: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = match.groups()
        parents = [(depth, name) for depth, name in parents if depth < len(indent)]
        inside_passthrough = any(name in PASSTHROUGH for _, name in parents)
        parents.append((len(indent), key))
        if inside_passthrough:
            continue  # an example Kubernetes object, documented as a whole
        following = next((n for n in lines[number + 1:] if n.strip() and not n.strip().startswith("#")), "")
        is_parent = not rest.strip() and len(following) - len(following.lstrip()) > len(indent)
        if is_parent:
            continue
        comments = []
        for above in reversed(lines[:number]):
            if not above.strip().startswith("#"):
                break
            comments.append(above.strip())
        if not comments or not comments[-1].startswith("# --"):
            undocumented.append(key)
    assert not undocumented, f"values without a '# --' description: {undocumented}"


# ----------------------------------------------------------------------------- CRDs and NOTES
def test_chart_crds_are_byte_identical_to_deploy_crds() -> None:
    """CI's drift check: the chart carries copies of deploy/crds/*.yaml in its crds/ folder."""
    source = {p.name: p.read_bytes() for p in (REPO_ROOT / "deploy" / "crds").glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in (CHART_DIR / "crds").glob("*.yaml")}
    assert source, "deploy/crds/ is empty"
    assert copies.keys() == source.keys(), "fix: cp deploy/crds/*.yaml charts/irods-ingest-operator/crds/"
    drifted = [name for name in source if source[name] != copies[name]]
    assert not drifted, f"{drifted} differ; fix: cp deploy/crds/*.yaml charts/irods-ingest-operator/crds/"


def test_crds_are_installed_from_the_crds_folder_only(helm: Helm) -> None:
    without = _render(helm, "default")
    with_crds = _render(helm, "default", "--include-crds")
    assert not find(without, "CustomResourceDefinition")
    (crd,) = find(with_crds, "CustomResourceDefinition")
    assert crd["metadata"]["name"] == "syncjobs.ingest.irods.dev"


def _crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load((REPO_ROOT / "deploy" / "crds" / "syncjobs.ingest.irods.dev.yaml").read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _notes(helm: Helm, *args: str) -> str:
    result = helm.run("install", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, "--dry-run=client", *args)
    return result.stdout.split("NOTES:", 1)[1]


def test_notes_show_a_valid_first_syncjob(helm: Helm) -> None:
    notes = _notes(helm)
    heredoc = notes.split("<<'YAML'", 1)[1].split("\n  YAML", 1)[0]
    syncjob = yaml.safe_load("\n".join(line.removeprefix("  ") for line in heredoc.splitlines()[1:]))
    assert syncjob["kind"] == "SyncJob" and syncjob["apiVersion"] == "ingest.irods.dev/v1alpha1"
    jsonschema.validate(syncjob, _crd_schema())
    assert f"kubectl describe sj first-ingest --namespace {NAMESPACE}" in notes
    assert "kubectl apply --server-side -f deploy/crds/" in notes


def test_notes_ask_for_the_workers_secret_when_the_chart_cannot_make_it(helm: Helm) -> None:
    notes = _notes(helm, "-f", str(CHART_DIR / "ci" / "shared-workers-external-redis-values.yaml"))
    assert "kubectl create secret generic ingest-redis-worker" in notes
    assert "never the operator's" in notes
    per_job = _notes(helm, "-f", str(CHART_DIR / "ci" / "external-redis-secret-values.yaml"))
    assert "kubectl create secret" not in per_job.split("Create your first SyncJob")[0]
    assert "ACL SETUSER/DELUSER/GETUSER" in per_job


def test_ci_values_cover_the_required_variants() -> None:
    names = {p.name for p in (CHART_DIR / "ci").glob("*-values.yaml")}
    assert {"external-redis-values.yaml", "bundled-redis-persistence-values.yaml", "cluster-wide-values.yaml",
            "watch-namespaces-values.yaml", "service-monitor-values.yaml", "shared-workers-values.yaml",
            "shared-workers-external-redis-values.yaml"} <= names


def test_values_files_are_plain_yaml() -> None:
    for path in [CHART_DIR / "values.yaml", *(CHART_DIR / "ci").glob("*.yaml")]:
        assert isinstance(yaml.safe_load(path.read_text()), dict), path
