"""Attacks on an installation made with the Helm chart, and what the chart's defaults hold.

Each test names its attacker: a *network neighbour* (any pod in the cluster, in any
namespace), a *SyncJob author* (may create SyncJobs in a watched namespace, nothing more) or
a *cluster tenant* (may read workloads, e.g. Kubernetes' `view` role, and run pods of their
own). The NetworkPolicy tests check the rendered policy objects with the API's semantics
(chart.chartkit.ingress_allowed): the test platform runs no CNI, so nothing enforces them
here — the guarantee is "the objects admit only this", and a cluster without a
NetworkPolicy-enforcing CNI gets none of it (docs/deploy.md, "Security").
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
import redis
from chart.chartkit import (
    FULLNAME,
    NAMESPACE,
    RELEASE,
    Manifest,
    Pod,
    container_env,
    find,
    ingress_allowed,
    one,
    render_chart,
)

from irods_ingest.store.keys import JobKeys
from irods_ingest_operator.constants import COMPONENT_LABELS, LABEL_INSTANCE, WORKER_METRICS_PORT
from irods_ingest_testkit.redis_server import RedisServer
from testsupport.helm_fixtures import CHART_DIR, Helm

pytestmark = pytest.mark.helm

REDIS_PORT: Final = 6379
HEALTH_PORT: Final = 8080
METRICS_PORT: Final = 9101
WORKER_LABELS: Final = {**COMPONENT_LABELS, LABEL_INSTANCE: "some-job"}
# A pod that claims to be a worker: anyone who may create pods can set these labels.
IMPOSTOR_LABELS: Final = dict(WORKER_LABELS)


def _template_labels(manifests: list[Manifest], kind: str, name: str) -> dict[str, str]:
    labels: dict[str, str] = one(manifests, kind, name)["spec"]["template"]["metadata"]["labels"]
    return labels


def _pods(manifests: list[Manifest]) -> tuple[Pod, Pod]:
    """The operator and the bundled Redis, with the labels their pod templates give them."""
    operator = Pod(NAMESPACE, _template_labels(manifests, "Deployment", FULLNAME))
    redis_pod = Pod(NAMESPACE, _template_labels(manifests, "StatefulSet", f"{FULLNAME}-redis"))
    return operator, redis_pod


# ----------------------------------------------------------------------------- network neighbours
def test_a_pod_in_another_namespace_cannot_connect_to_the_bundled_redis(helm: Helm) -> None:
    """Network neighbour: a pod in an unwatched namespace (or an unrelated pod in the release
    or a watched namespace) opens a connection to the bundled Redis on 6379.

    Before: no NetworkPolicy selected Redis, so every pod in the cluster could connect and try
    passwords (or use one it found). Now: the chart's policy isolates Redis and admits 6379
    only from the operator pod and from worker pods in the watched namespaces — a pod that
    copies the worker labels in any other namespace is still refused.
    """
    manifests = render_chart(helm, "--set", "watchNamespaces={team-a}")
    operator, redis_pod = _pods(manifests)
    worker = Pod("team-a", WORKER_LABELS)
    assert ingress_allowed(manifests, operator, redis_pod, REDIS_PORT)
    assert ingress_allowed(manifests, worker, redis_pod, REDIS_PORT)
    attackers = [
        Pod("elsewhere", {"app": "curious"}),
        Pod("elsewhere", IMPOSTOR_LABELS),          # worker labels, unwatched namespace
        Pod(NAMESPACE, {"app": "curious"}),         # the release namespace, not the operator
        Pod("team-a", {"app": "curious"}),          # a watched namespace, not a worker
        Pod("kube-system", {"k8s-app": "kube-dns"}),
    ]
    admitted = [a for a in attackers if ingress_allowed(manifests, a, redis_pod, REDIS_PORT)]
    assert admitted == [], f"Redis admits {admitted}"
    # ...and only on the Redis port: the operator itself has no other door into the pod.
    assert not ingress_allowed(manifests, operator, redis_pod, 16379)


def test_neighbours_reach_neither_the_operators_health_nor_its_metrics_port(helm: Helm) -> None:
    """Network neighbour: a pod in the release namespace (or anywhere) scrapes the operator's
    /metrics (job names, namespaces, counts) or pokes its /healthz.

    Before: both ports were open to every pod. Now: metrics only from the peers in
    networkPolicy.metrics.from (none by default), health from nowhere (the kubelet's probes are
    not subject to NetworkPolicy).
    """
    manifests = render_chart(helm)
    operator, _ = _pods(manifests)
    for attacker in (Pod(NAMESPACE, {"app": "curious"}), Pod("elsewhere", {})):
        assert not ingress_allowed(manifests, attacker, operator, METRICS_PORT)
        assert not ingress_allowed(manifests, attacker, operator, HEALTH_PORT)

    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                  "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    opened = render_chart(helm, "--set-json", f"networkPolicy.metrics.from=[{_json(monitoring)}]")
    operator, _ = _pods(opened)
    prometheus = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
    assert ingress_allowed(opened, prometheus, operator, METRICS_PORT)
    assert not ingress_allowed(opened, prometheus, operator, HEALTH_PORT)
    assert not ingress_allowed(opened, Pod("monitoring", {"app": "other"}), operator, METRICS_PORT)


def test_worker_pods_accept_nothing_but_metrics_scrapes_from_the_configured_peers(helm: Helm) -> None:
    """Network neighbour: a pod in a watched namespace connects to a worker pod (its metrics on
    9102, or any port a future worker might open).

    Before: workers were open to every pod. Now: the chart's policy in every watched namespace
    isolates worker pods; only networkPolicy.metrics.from may reach 9102.
    """
    manifests = render_chart(helm, "--set", "watchNamespaces={team-a,team-b}")
    for namespace in ("team-a", "team-b"):
        worker = Pod(namespace, WORKER_LABELS)
        for attacker in (Pod(namespace, {"app": "curious"}), Pod("elsewhere", {}), Pod(namespace, IMPOSTOR_LABELS)):
            assert not ingress_allowed(manifests, attacker, worker, WORKER_METRICS_PORT)
            assert not ingress_allowed(manifests, attacker, worker, 8000)


# ----------------------------------------------------------------------------- credentials
def test_shared_workers_with_an_external_redis_refuse_to_render(helm: Helm) -> None:
    """Cluster tenant: anyone who may read Secrets (or run a pod) in a watched namespace reads
    the workers' Redis URL there.

    Before: with an external Redis, the chart copied the operator's own full-access URL into
    the workers' Secret of every watched namespace, so any such tenant owned Redis (every
    job's config, handler code and queue). Now: shared worker credentials with an external
    Redis render only with a separate worker Secret (redis.external.workerSecret); otherwise
    helm refuses, naming the values and the fix.
    """
    for source in (["--set", "redis.external.url=rediss://:s3cret@redis.example.org:6380/2"],
                   ["--set", "redis.external.existingSecret=ingest-redis"]):
        result = helm.run("template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE,
                          "--set", "redis.bundled.enabled=false", "--set", "workers.credentials.mode=shared",
                          "--set", "workers.redisSecret.create=false", *source, check=False)
        assert result.returncode != 0, result.stdout
        for named in ("workers.credentials.mode=shared", "redis.external.workerSecret", "perJob"):
            assert named in result.stderr, result.stderr


def test_no_namespace_gets_a_redis_url_shared_by_all_jobs(helm: Helm) -> None:
    """Cluster tenant: a tenant who may read Secrets in their own (watched) namespace reads the
    workers' Redis URL there and uses it against other tenants' jobs.

    Before: every watched namespace held a copy of one URL that every job's workers used, so a
    tenant could drain, reorder or poison another tenant's queue. Now (perJob, the default):
    the chart puts no Redis URL in any SyncJob namespace; the operator gives each SyncJob a
    user limited to that job's keys, and the only Redis Secret is the operator's own.
    """
    for args in ([], ["--set", "redis.bundled.enabled=false", "--set", "redis.external.url=redis://:pw@r.example:6379/0"]):
        manifests = render_chart(helm, "--set", "watchNamespaces={team-a,team-b}", *args)
        secrets = find(manifests, "Secret")
        assert {s["metadata"]["namespace"] for s in secrets} == {NAMESPACE}
        env = container_env(one(manifests, "Deployment", FULLNAME))
        assert env["IRODS_INGEST_OPERATOR_WORKER_CREDENTIALS"]["value"] == "perJob"
        assert "IRODS_INGEST_OPERATOR_WORKER_REDIS_SECRET" not in env


@pytest.mark.parametrize("where", ["bundled", "external"])
def test_pod_template_checksums_do_not_reveal_the_redis_password(helm: Helm, where: str) -> None:
    """Cluster tenant: a tenant with `view` rights reads the operator's and Redis's pod-template
    annotations (Secrets stay hidden from them) and guesses the Redis password offline.

    Before: checksum/config was sha256 of the bundled Redis values including auth.password,
    and checksum/redis sha256 of the rendered Secrets: a user-chosen password could be tested
    against them offline at GPU speed. Now: no annotation depends on a password — rendered
    with two different passwords, every annotation is identical.
    """
    def annotations(password: str) -> dict[str, dict[str, str]]:
        if where == "bundled":
            args = ["--set", f"redis.bundled.auth.password={password}"]
        else:
            args = ["--set", "redis.bundled.enabled=false",
                    "--set", f"redis.external.url=redis://ingest:{password}@redis.example.org:6379/0"]
        manifests = render_chart(helm, *args)
        return {f"{m['kind']}/{m['metadata']['name']}": m["spec"]["template"]["metadata"].get("annotations", {})
                for m in manifests if m["kind"] in ("Deployment", "StatefulSet")}

    first, second = annotations("Summer2024"), annotations("Winter2025")
    assert first == second
    assert any(key.startswith("checksum/") for a in first.values() for key in a)


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "redis.bundled.enabled=false", "--set-string", "redis.external.url=http://:Hunter2secret@redis.example:6379/0"],
        ["--set", "redis.bundled.enabled=false", "--set-string", "redis.external.url=redis://:Hunter2/secret@redis.example:6379/0"],
        ["--set-string", "redis.bundled.auth.password=Hunter2 secret"],
    ],
    ids=["wrong-scheme", "unencoded-slash", "password-with-space"],
)
def test_a_mistyped_secret_is_refused_without_being_printed(helm: Helm, args: list[str]) -> None:
    """Cluster tenant (or anyone who reads the deploy pipeline's logs): a release whose Redis
    URL or password has a typo fails, and helm's error lands in CI logs.

    Before: the schema's pattern errors quoted the value ("'http://:PASSWORD@…' does not match
    pattern …"), and urlParse errors would have too. Now: the templates check these values and
    fail without showing them.
    """
    result = helm.run("template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, *args, check=False)
    assert result.returncode != 0
    assert "Hunter2" not in result.stderr + result.stdout
    assert "the value is not shown" in result.stderr, result.stderr


# ----------------------------------------------------------------------------- SyncJob authors
def test_syncjob_authors_get_no_host_paths_and_only_the_worker_image_by_default(helm: Helm) -> None:
    """SyncJob author: a SyncJob whose spec.source.volume is a hostPath of the node's / (or
    whose spec.workers.image is an image of their own choosing) runs as a worker with the
    job's iRODS and Redis credentials.

    Before: the chart told the operator nothing, and any volume source and image went through.
    Now: the operator's allow-lists come from the chart — PVC, NFS and CSI volumes and the
    worker image's repository by default (the operator refuses the rest; tests/operator hold
    it to that) — and workers run as the image's non-root user with a bounded /tmp.
    """
    env = container_env(one(render_chart(helm), "Deployment", FULLNAME))
    volume_types = env["IRODS_INGEST_OPERATOR_ALLOWED_VOLUME_TYPES"]["value"].split(",")
    assert volume_types == ["persistentVolumeClaim", "nfs", "csi"]
    assert "hostPath" not in volume_types
    assert env["IRODS_INGEST_OPERATOR_ALLOWED_IMAGES"]["value"] == "ghcr.io/irods-ingest/irods-ingest-worker"
    assert env["IRODS_INGEST_OPERATOR_WORKER_UID"]["value"] == "10001"
    assert "IRODS_INGEST_OPERATOR_WORKER_FS_GROUP" not in env  # no recursive chown of the source


def test_a_syncjob_author_cannot_exhaust_the_bundled_redis_memory(helm: Helm) -> None:
    """SyncJob author: a job with millions of files (or failures) fills the bundled Redis.

    Before: Redis had no maxmemory, so it grew until the kubelet OOM-killed it — every job's
    queue lost its unsynced tail, and a restart loop followed. Now: maxmemory sits below the
    container's memory limit with noeviction, so writes fail (and workers back off) instead;
    job state is never evicted.
    """
    config = one(render_chart(helm), "ConfigMap", f"{FULLNAME}-redis")["data"]["redis.conf"].splitlines()
    assert "maxmemory-policy noeviction" in config
    (maxmemory,) = [line for line in config if line.startswith("maxmemory ")]
    assert int(maxmemory.split()[1]) < 1024**3  # the default limit: 1Gi


# ----------------------------------------------------------------------------- a real redis-server
@pytest.mark.redis
def test_the_shared_worker_user_is_refused_everything_outside_the_queue(helm: Helm, tmp_path: Path) -> None:
    """Cluster tenant (shared credential mode): the holder of the workers' URL runs commands
    a worker never sends — FUNCTION LOAD (server-side code), SCAN/KEYS (every job's key
    names), SELECT (another database), CONFIG, FLUSHALL, pub/sub, SCRIPT FLUSH, EVAL.

    Before: the worker user had `+@all -@admin -@dangerous`, which still allowed SCAN,
    SELECT, FUNCTION LOAD, SUBSCRIBE/PUBLISH and EVAL. Now: the rendered user is an explicit
    allow-list (irods_ingest.store.keys.WORKER_ACL_RULES) and a real redis-server refuses
    each of them.
    """
    manifests = render_chart(helm, "--set", "workers.credentials.mode=shared")
    secret = one(manifests, "Secret", f"{FULLNAME}-redis")["data"]
    (init,) = one(manifests, "StatefulSet", f"{FULLNAME}-redis")["spec"]["template"]["spec"]["initContainers"]
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": _b64(secret["redis-password"]),
           "WORKER_PASSWORD": _b64(secret["worker-password"])}
    subprocess.run(["sh", "-c", init["command"][-1].replace("/run/redis/", f"{tmp_path}/")], env=env, check=True)
    (worker_secret,) = [m for m in find(manifests, "Secret") if m["metadata"]["name"].endswith("-worker-redis")]
    worker_url = urlsplit(_b64(next(iter(worker_secret["data"].values()))))
    with RedisServer(data_dir=tmp_path / "redis", password=env["REDIS_PASSWORD"],
                     extra_args=["--include", str(tmp_path / "auth.conf")]) as server:
        def as_worker() -> redis.Redis:
            # a fresh connection per command: an admitted SUBSCRIBE or SELECT changes the connection
            return redis.Redis(port=server.port, username=worker_url.username, password=worker_url.password,
                               socket_timeout=5)

        assert as_worker().ping()
        keys = JobKeys("team-a/job")
        refused = {
            "FUNCTION LOAD": ("FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('x', function() return 1 end)"),
            "FUNCTION FLUSH": ("FUNCTION", "FLUSH"),
            "SCAN": ("SCAN", "0"),
            "KEYS": ("KEYS", "*"),
            "SELECT": ("SELECT", "1"),
            "CONFIG GET": ("CONFIG", "GET", "requirepass"),
            "FLUSHALL": ("FLUSHALL",),
            "FLUSHDB": ("FLUSHDB",),
            "SUBSCRIBE": ("SUBSCRIBE", "ii:events"),
            "PUBLISH": ("PUBLISH", "ii:events", "x"),
            "SCRIPT FLUSH": ("SCRIPT", "FLUSH"),
            "EVAL": ("EVAL", "return 1", "0"),
            "ACL SETUSER": ("ACL", "SETUSER", worker_url.username or "worker", "~*", "+@all"),
            "write iic:*": ("SET", keys.handler("abc"), "import os"),
        }
        allowed = []
        for name, command in refused.items():
            client = as_worker()
            try:
                client.execute_command(*command)
            except redis.exceptions.NoPermissionError:
                continue
            except redis.exceptions.TimeoutError:
                pass  # admitted: an admitted SUBSCRIBE waits for messages (a refusal is immediate)
            finally:
                client.close()
            allowed.append(name)
        assert allowed == [], f"the worker user may run {allowed}"


def _b64(value: str) -> str:
    return base64.b64decode(value).decode()


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))
