"""Attacker: a SyncJob author (may create SyncJobs in their namespace, nothing else).

The operator turns a SyncJob into a pod that holds the job's iRODS password and Redis
credential. Before: ``spec.source.volume`` accepted any volume type (hostPath of the node's
root, a projected service-account token, another workload's Secret...), ``spec.workers.image``
any image (one that ships those credentials elsewhere), and the pod pinned no user, so an
image running as root ran as root. Now the cluster admin's allow-lists (operator settings,
chart values) decide volumes and images, refused specs are ``Stalled`` naming the field, and
every worker pod passes the "restricted" Pod Security Standard with a fixed non-root uid.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from irods_ingest_operator.admission import AdmissionPolicy, WorkerPodPolicy
from irods_ingest_operator.builders import build_worker_deployment
from irods_ingest_operator.refs import RedisEndpoint, SecretKeyRef
from irods_ingest_operator.settings import OperatorSettings
from irods_ingest_operator.spec import parse_spec
from irods_ingest_testkit.processes import stop_process
from testsupport.kube import ControlPlane
from testsupport.operator_fixtures import Cluster, OperatorProcess, wait_for
from testsupport.pod_security import restricted_violations

WORKER_IMAGE = "ghcr.io/irods-ingest/irods-ingest-worker:0.1.0"
JOB = {"metadata": {"name": "job", "namespace": "team", "uid": "0b9c3a8e-1111-4222-8333-944455556666"}}


def spec_with(volume: dict[str, Any] | None = None, **workers: Any) -> Any:
    raw: dict[str, Any] = {
        "source": {"path": "/data", **({"volume": volume} if volume else {})},
        "destination": {"collection": "/tempZone/home/alice", "connectionSecret": {"name": "irods-conn"}},
    }
    if workers:
        raw["workers"] = workers
    return parse_spec(raw)


def admin_policy(**env: str) -> AdmissionPolicy:
    return OperatorSettings.from_environment({"IRODS_INGEST_OPERATOR_WORKER_IMAGE": WORKER_IMAGE, **env}).admission


@pytest.mark.parametrize("volume", [
    {"hostPath": {"path": "/", "type": "Directory"}},
    {"hostPath": {"path": "/var/lib/kubelet"}},
    {"projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
    {"secret": {"secretName": "another-teams-irods-password"}},
    {"configMap": {"name": "x"}},
    {"gitRepo": {"repository": "https://example.com/x.git"}},
    {"emptyDir": {}},
])
def test_a_volume_type_the_admin_did_not_allow_is_refused_naming_the_field(volume: dict[str, Any]) -> None:
    """Tried: mount the node's root, the kubelet's directory, a service-account token or
    another Secret as the source. Got before: mounted. Now: refused, the field and the fix named."""
    problems = admin_policy().problems(spec_with(volume))
    assert [p.field for p in problems] == ["spec.source.volume"]
    assert f"volume type {next(iter(volume))} is not allowed" in problems[0].message
    assert "PersistentVolumeClaim" in problems[0].fix and "workers.allowedVolumeTypes" in problems[0].fix


@pytest.mark.parametrize("volume", [
    {"persistentVolumeClaim": {"claimName": "data"}},
    {"nfs": {"server": "nas", "path": "/export"}},
    {"csi": {"driver": "example.csi"}},
])
def test_the_default_volume_types_are_allowed(volume: dict[str, Any]) -> None:
    assert admin_policy().problems(spec_with(volume)) == []


def test_the_admin_decides_the_volume_types() -> None:
    policy = admin_policy(IRODS_INGEST_OPERATOR_ALLOWED_VOLUME_TYPES="hostPath")
    assert policy.problems(spec_with({"hostPath": {"path": "/data"}})) == []
    assert policy.problems(spec_with({"persistentVolumeClaim": {"claimName": "x"}}))


@pytest.mark.parametrize(("image", "allowed"), [
    (WORKER_IMAGE, True),
    ("ghcr.io/irods-ingest/irods-ingest-worker:0.2.0", True),
    ("ghcr.io/irods-ingest/irods-ingest-worker@sha256:" + "a" * 64, True),
    ("ghcr.io/irods-ingest/irods-ingest-worker-evil:1", False),
    ("ghcr.io/attacker/irods-ingest-worker:0.1.0", False),
    ("docker.io/library/python:3.11", False),
    ("irods-ingest-worker:0.1.0", False),
])
def test_only_images_from_the_admins_repositories_are_allowed(image: str, allowed: bool) -> None:
    """Tried: run the job's credentials in an image of one's own. Got before: any image ran.
    Now: only the worker image's repository, unless the admin lists more."""
    problems = admin_policy().problems(spec_with(image=image))
    assert (problems == []) is allowed, problems
    if not allowed:
        assert problems[0].field == "spec.workers.image" and "workers.allowedImages" in problems[0].fix


def test_the_admin_may_allow_more_repositories_by_prefix() -> None:
    policy = admin_policy(IRODS_INGEST_OPERATOR_ALLOWED_IMAGES="registry.lab:5000/ingest/*,docker.io/lab/worker")
    assert policy.image_allowed("registry.lab:5000/ingest/worker:1")
    assert policy.image_allowed("docker.io/lab/worker:2")
    assert not policy.image_allowed(WORKER_IMAGE)  # the list replaces the default
    assert not policy.image_allowed("registry.lab:5000/other/worker:1")


def _pod(spec: Any, policy: WorkerPodPolicy | None = None) -> dict[str, Any]:
    built = build_worker_deployment(JOB, spec, replicas=1, image_default=WORKER_IMAGE,
                                    redis=RedisEndpoint(url_secret=SecretKeyRef("r", "url")), pod_policy=policy)
    pod: dict[str, Any] = built["spec"]["template"]["spec"]
    return pod


@pytest.mark.parametrize("volume", [{"persistentVolumeClaim": {"claimName": "data"}}, {"csi": {"driver": "x"}}, None])
def test_worker_pods_pass_the_restricted_pod_security_standard(volume: dict[str, Any] | None) -> None:
    """Whatever an allowed SyncJob says, its pod runs as the admin's non-root uid/gid, with no
    privilege escalation, no capabilities, RuntimeDefault seccomp and a size-limited /tmp."""
    pod = _pod(spec_with(volume))
    assert restricted_violations(pod) == []
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (10001, 10001)
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["sizeLimit"] == "1Gi"
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["memory"] and resources["requests"]["cpu"]


def test_the_checker_itself_catches_what_the_standard_forbids() -> None:
    """The Pod Security checker (tests/testsupport/pod_security.py) is what the tests above rely
    on: it must see a hostPath or an NFS volume (NFS is "baseline", not "restricted")."""
    assert any("HostPath" in v for v in restricted_violations(_pod(spec_with({"hostPath": {"path": "/"}}))))
    assert any("Volume Types" in v for v in restricted_violations(_pod(spec_with({"nfs": {"server": "n", "path": "/"}}))))
    root = _pod(spec_with())
    root["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert restricted_violations(root)


def test_the_admin_sets_the_uid_and_root_is_never_accepted() -> None:
    settings = OperatorSettings.from_environment({"IRODS_INGEST_OPERATOR_WORKER_UID": "4242",
                                                  "IRODS_INGEST_OPERATOR_WORKER_GID": "4343",
                                                  "IRODS_INGEST_OPERATOR_WORKER_TMP_SIZE": "256Mi"})
    pod = _pod(spec_with(), settings.pod_policy)
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (4242, 4343)
    assert next(v for v in pod["volumes"] if v["name"] == "tmp")["emptyDir"]["sizeLimit"] == "256Mi"
    from irods_ingest.errors import ConfigError

    with pytest.raises(ConfigError, match=r"WORKER_UID.*non-zero"):
        OperatorSettings.from_environment({"IRODS_INGEST_OPERATOR_WORKER_UID": "0"})


# --- On the real API server, as the author's own restricted identity ------------------------------

@pytest.fixture
def author(kube_control_plane: ControlPlane, kube_api: k8s.ApiClient, kube_namespace: str) -> Iterator[Cluster]:
    """May create and read SyncJobs in this namespace, and nothing else."""
    from testsupport.kube_fixtures import UNPRIVILEGED_USER

    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(kube_namespace, {"metadata": {"name": "author"}, "rules": [
        {"apiGroups": ["ingest.irods.dev"], "resources": ["syncjobs"], "verbs": ["get", "list", "create", "patch"]}]})
    rbac.create_namespaced_role_binding(kube_namespace, {
        "metadata": {"name": "author"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "author"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": UNPRIVILEGED_USER}]})
    with kube_control_plane.api_client(UNPRIVILEGED_USER) as api:
        cluster = Cluster(api, kube_namespace)

        def granted() -> bool:
            try:
                cluster.objects.list_namespaced_custom_object("ingest.irods.dev", "v1alpha1", kube_namespace, "syncjobs")
            except k8s.ApiException:
                return False
            return True

        wait_for("the author's RBAC grant", granted)
        yield cluster


@pytest.fixture
def strict_operator(kube_control_plane: ControlPlane, kube_namespace: str, redis_url: str,
                    tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator with the chart's defaults: PVC/NFS/CSI volumes, the worker image's repository."""
    env = kube_control_plane.operator_env(kube_namespace, redis_url)
    del env["IRODS_INGEST_OPERATOR_ALLOWED_VOLUME_TYPES"]
    env["IRODS_INGEST_OPERATOR_WORKER_IMAGE"] = WORKER_IMAGE
    process = OperatorProcess(env, tmp_path / "operator.log")
    yield process
    stop_process(process.process)


def _spec(volume: dict[str, Any], **workers: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": {"path": "/data", "volume": volume},
        "destination": {"collection": "/tempZone/home/rods/x", "connectionSecret": {"name": "irods-conn"}},
    }
    if workers:
        spec["workers"] = workers
    return spec


@pytest.mark.kube
@pytest.mark.redis
def test_the_author_gets_a_stalled_job_not_a_privileged_pod(
    author: Cluster, strict_operator: OperatorProcess, kube_api: k8s.ApiClient
) -> None:
    """Tried, as the author: a hostPath of the node's root, and an image of their own. Got
    before: a Deployment mounting / with the job's credentials. Now: Stalled (reason
    NotAllowed, the field named), and no Deployment at all; an allowed job gets a pod that
    passes "restricted" and runs as the admin's uid."""
    author.create_syncjob("rootfs", _spec({"hostPath": {"path": "/", "type": "Directory"}}))
    author.create_syncjob("ownimage", _spec({"persistentVolumeClaim": {"claimName": "data"}},
                                            image="docker.io/attacker/exfiltrate:latest"))
    author.create_syncjob("fine", _spec({"persistentVolumeClaim": {"claimName": "data"}}, minReplicas=1))
    apps = k8s.AppsV1Api(kube_api)
    for name, field in (("rootfs", "spec.source.volume"), ("ownimage", "spec.workers.image")):
        stalled = wait_for(f"{name} stalled", lambda name=name: (author.condition(name, "Stalled") or {}).get("status") == "True"
                           and author.condition(name, "Stalled"))
        assert stalled["reason"] == "NotAllowed" and stalled["message"].startswith(field), stalled
    deployment = wait_for("the allowed job's Deployment", lambda: _deployment_or_none(apps, author.namespace, "fine-worker"))
    pod = kube_api.sanitize_for_serialization(deployment.spec.template.spec)
    assert restricted_violations(pod) == []
    assert pod["securityContext"]["runAsUser"] == 10001
    names = {d.metadata.name for d in apps.list_namespaced_deployment(author.namespace).items}
    assert names == {"fine-worker"}


def _deployment_or_none(apps: k8s.AppsV1Api, namespace: str, name: str) -> Any:
    try:
        return apps.read_namespaced_deployment(name, namespace)
    except k8s.ApiException:
        return None


@pytest.mark.kube
@pytest.mark.redis
def test_each_job_gets_its_own_redis_credential_in_its_own_secret(
    author: Cluster, strict_operator: OperatorProcess, kube_api: k8s.ApiClient, redis_url: str
) -> None:
    """The Deployment names the job's own Secret; its URL's user reaches that job's keys only
    (a SyncJob author who reads their namespace's Secrets holds no more than their own job)."""
    import redis as redis_client

    from irods_ingest.store.keys import JobKeys

    for name in ("one", "two"):
        author.create_syncjob(name, _spec({"persistentVolumeClaim": {"claimName": "data"}}, minReplicas=1))
    apps, core = k8s.AppsV1Api(kube_api), k8s.CoreV1Api(kube_api)
    deployment = wait_for("one's Deployment", lambda: _deployment_or_none(apps, author.namespace, "one-worker"))
    env = {e.name: e for e in deployment.spec.template.spec.containers[0].env}
    ref = env["IRODS_INGEST_REDIS_URL"].value_from.secret_key_ref
    assert (ref.name, ref.key) == ("one-worker-redis", "url")
    secret = core.read_namespaced_secret("one-worker-redis", author.namespace)
    assert secret.metadata.owner_references[0].name == "one"
    url = base64.b64decode(secret.data["url"]).decode()
    worker = redis_client.Redis.from_url(url)
    assert worker.hget(JobKeys(f"{author.namespace}/one").job_hash, "config")
    with pytest.raises(redis_client.exceptions.NoPermissionError):
        worker.hget(JobKeys(f"{author.namespace}/two").job_hash, "config")
    wait_for("two's Secret", lambda: _secret_or_none(core, author.namespace, "two-worker-redis"))
    assert redis_url not in url  # not the operator's URL
    assert deployment.spec.template.metadata.annotations["ingest.irods.dev/redis-credential-version"].startswith("1.")


def _secret_or_none(core: k8s.CoreV1Api, namespace: str, name: str) -> Any:
    try:
        return core.read_namespaced_secret(name, namespace)
    except k8s.ApiException:
        return None


@pytest.mark.kube
@pytest.mark.redis
def test_a_syncjob_named_after_another_workload_cannot_take_it_over(
    author: Cluster, strict_operator: OperatorProcess, kube_api: k8s.ApiClient
) -> None:
    """Tried: name a SyncJob so that its worker Deployment ("<name>-worker") or its Redis
    Secret ("<name>-worker-redis") is an existing object of somebody else. Got before (the
    Secret: with the first version of per-job credentials): server-side apply with force took
    the object over -- rewrote its pod template or data, and set our owner reference, so that
    deleting the SyncJob had the garbage collector delete it. Now: Stalled (NameConflict),
    both objects untouched, no run started."""
    apps, core = k8s.AppsV1Api(kube_api), k8s.CoreV1Api(kube_api)
    labels = {"app": "payroll"}
    apps.create_namespaced_deployment(author.namespace, {
        "metadata": {"name": "payroll-worker", "labels": labels},
        "spec": {"replicas": 3, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "payroll:1"}]}}},
    })
    core.create_namespaced_secret(author.namespace, {"metadata": {"name": "vault-worker-redis"},
                                                     "stringData": {"token": "payroll-db-password"}})
    for name in ("payroll", "vault"):
        author.create_syncjob(name, _spec({"persistentVolumeClaim": {"claimName": "data"}}, minReplicas=1))
    for name, kind in (("payroll", "Deployment"), ("vault", "Secret")):
        stalled = wait_for(f"{name} stalled", lambda name=name: (author.condition(name, "Stalled") or {}).get("status") == "True"
                           and author.condition(name, "Stalled"))
        assert stalled["reason"] == "NameConflict" and kind in stalled["message"], stalled
        assert "run" not in author.get(name).get("status", {})
    victim = apps.read_namespaced_deployment("payroll-worker", author.namespace)
    assert victim.spec.replicas == 3 and not victim.metadata.owner_references
    assert victim.spec.template.spec.containers[0].image == "payroll:1"
    secret = core.read_namespaced_secret("vault-worker-redis", author.namespace)
    assert set(secret.data) == {"token"} and not secret.metadata.owner_references
    assert not _deployment_or_none(apps, author.namespace, "vault-worker")


@pytest.mark.kube
@pytest.mark.redis
def test_the_operator_rotates_a_jobs_credential_and_rolls_its_pods(
    kube_control_plane: ControlPlane, kube_api: k8s.ApiClient, kube_namespace: str, redis_url: str, tmp_path: Path
) -> None:
    """A leaked worker credential (a Secret read, a pod's environment dumped) is only good
    until the next rotation but one. The operator rotates each job's credential every
    CREDENTIAL_ROTATION seconds: new password in the job's Secret, a new version on the pod
    template (the pods roll onto it), a CredentialRotated Event; the password before the
    previous one is refused."""
    import redis as redis_client

    env = kube_control_plane.operator_env(kube_namespace, redis_url)
    env["IRODS_INGEST_OPERATOR_CREDENTIAL_ROTATION"] = "2"
    operator = OperatorProcess(env, tmp_path / "operator.log")
    try:
        cluster = Cluster(kube_api, kube_namespace)
        cluster.create_syncjob("rotating", _spec({"persistentVolumeClaim": {"claimName": "data"}}, minReplicas=1))
        core, apps = k8s.CoreV1Api(kube_api), k8s.AppsV1Api(kube_api)
        first = wait_for("the first credential", lambda: _secret_or_none(core, kube_namespace, "rotating-worker-redis"))
        first_url = base64.b64decode(first.data["url"]).decode()
        assert redis_client.Redis.from_url(first_url).ping()

        def version() -> int:
            secret = _secret_or_none(core, kube_namespace, "rotating-worker-redis")
            return int(secret.metadata.annotations["ingest.irods.dev/redis-credential-version"].split(".")[0]) if secret else 0

        wait_for("two rotations", lambda: version() >= 3, timeout=60)
        secret = core.read_namespaced_secret("rotating-worker-redis", kube_namespace)
        current_url = base64.b64decode(secret.data["url"]).decode()
        assert redis_client.Redis.from_url(current_url).ping()
        with pytest.raises(redis_client.exceptions.AuthenticationError):
            redis_client.Redis.from_url(first_url).ping()
        tag = secret.metadata.annotations["ingest.irods.dev/redis-credential-version"]

        def template_tag() -> str:
            deployment = apps.read_namespaced_deployment("rotating-worker", kube_namespace)
            return str((deployment.spec.template.metadata.annotations or {}).get("ingest.irods.dev/redis-credential-version"))

        # The template follows the Secret (checked once both have settled on the same version).
        wait_for("the pod template on the Secret's version", lambda: template_tag() == core.read_namespaced_secret(
            "rotating-worker-redis", kube_namespace).metadata.annotations["ingest.irods.dev/redis-credential-version"])
        assert tag.split(".")[0] != "1"
        assert "CredentialRotated" in cluster.events("rotating")
    finally:
        stop_process(operator.process)
