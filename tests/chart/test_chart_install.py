"""The chart on the real API server: it installs, its RBAC is enough and no more.

The operator runs as a local process with the chart ServiceAccount's token and exactly the
environment the chart's Deployment gives it (Secret references resolved as a kubelet would);
the local kubelet stand-in runs the workers. A SyncJob with a handler ConfigMap goes through a
whole run and its deletion, which exercises every grant (watch, patch, status, apply, scale,
ConfigMap, Events, the job's own Redis credential Secret, finalizer removal).
SelfSubjectAccessReviews as the ServiceAccount then prove that nothing beyond that is granted.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import pytest
import redis
from kubernetes import client as k8s

from irods_ingest_operator.constants import GROUP, PLURAL, VERSION
from irods_ingest_testkit.processes import free_port, stop_process, wait_until
from irods_ingest_testkit.redis_server import RedisServer
from testsupport.helm_fixtures import CHART_DIR, Helm
from testsupport.irods_fixtures import IrodsEnv
from testsupport.kube import ControlPlane
from testsupport.kube_fixtures import NAMESPACE_LABEL, NamespaceReaper
from testsupport.kubelet import local_kubelet

pytestmark = [pytest.mark.helm, pytest.mark.kube]

# The rules docs/deploy.md gives an external Redis's operator user (perJob credentials).
OPERATOR_ACL_RULES: Final = (
    "resetkeys ~ii:* ~iic:* resetchannels -@all +@keyspace +@read +@write +@transaction +@connection"
    " +evalsha +script|load +script|exists -@dangerous +info +acl|setuser +acl|deluser +acl|getuser"
)
RELEASE: Final = "ingest"
FULLNAME: Final = f"{RELEASE}-irods-ingest-operator"
# Kubernetes refusals, and Redis's (NOPERM: the operator's user lacks a command or key).
PERMISSION_ERRORS: Final = re.compile(r"\b403\b|forbidden|not enough permissions|NOPERM|no permissions", re.IGNORECASE)
NOOP_HANDLER: Final = """
from irods_capability_automated_ingest.core import Core

class event_handler(Core):
    @staticmethod
    def post_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        logger.info("created " + meta["target"])
"""


@dataclass(frozen=True)
class Access:
    verb: str
    resource: str
    namespace: str | None = None
    group: str = ""
    subresource: str | None = None

    def __str__(self) -> str:
        target = f"{self.group or 'core'}/{self.resource}{'/' + self.subresource if self.subresource else ''}"
        return f"{self.verb} {target} in {self.namespace or '(cluster)'}"


def can(api: k8s.ApiClient, access: Access) -> bool:
    """What the caller of ``api`` may do, according to the API server's authorizer."""
    review = k8s.V1SelfSubjectAccessReview(
        spec=k8s.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s.V1ResourceAttributes(
                verb=access.verb, resource=access.resource, group=access.group,
                namespace=access.namespace, subresource=access.subresource,
            )
        )
    )
    result = k8s.AuthorizationV1Api(api).create_self_subject_access_review(review)
    assert result.status is not None
    return bool(result.status.allowed)


def service_account_token(api: k8s.ApiClient, namespace: str, name: str) -> str:
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    issued = k8s.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request)
    assert issued.status is not None
    return str(issued.status.token)


def chart_environment(api: k8s.ApiClient, namespace: str) -> dict[str, str]:
    """The operator container's environment from the installed Deployment, resolved as a kubelet would."""
    deployment = k8s.AppsV1Api(api).read_namespaced_deployment(FULLNAME, namespace).to_dict()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for item in container["env"]:
        if item.get("value_from") is None:
            env[item["name"]] = item.get("value") or ""
            continue
        ref = item["value_from"].get("secret_key_ref")
        assert ref is not None, f"{item['name']}: only Secret references are expected"
        secret = k8s.CoreV1Api(api).read_namespaced_secret(ref["name"], namespace)
        env[item["name"]] = base64.b64decode((secret.data or {})[ref["key"]]).decode()
    return env


@pytest.fixture
def jobs_namespace(kube_api: k8s.ApiClient, kube_namespace_reaper: NamespaceReaper) -> Iterator[str]:
    """A second namespace, where the SyncJobs live (the operator itself lives in kube_namespace)."""
    name = f"jobs-{secrets.token_hex(3)}"
    k8s.CoreV1Api(kube_api).create_namespace(
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={NAMESPACE_LABEL: "true"}))
    )
    yield name
    kube_namespace_reaper.delete(name)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """Source files outside /tmp (worker pods reserve /tmp, and the spec refuses it)."""
    path = Path(tempfile.mkdtemp(prefix="irods-ingest-chart-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def helm_release(helm: Helm, plane: ControlPlane, namespace: str, *args: str) -> Iterator[None]:
    kubeconfig = plane.kubeconfig_path
    helm.run("install", RELEASE, str(CHART_DIR), "--namespace", namespace, *args, kubeconfig=kubeconfig)
    try:
        yield
    finally:
        # Cluster-scoped objects (the observer ClusterRole) would outlive the namespace.
        helm.run("uninstall", RELEASE, "--namespace", namespace, kubeconfig=kubeconfig, check=False)


@pytest.mark.redis
@pytest.mark.irods
@pytest.mark.slow
def test_operator_runs_a_syncjob_with_only_the_charts_permissions(
    helm: Helm, kube_control_plane: ControlPlane, kube_api: k8s.ApiClient, kube_namespace: str,
    jobs_namespace: str, private_redis: RedisServer, irods_env: IrodsEnv, host_dir: Path, tmp_path: Path,
) -> None:
    # An external Redis whose admin gave the operator exactly the user docs/deploy.md asks for
    # (perJob credentials: it makes each job's user with ACL SETUSER).
    admin = redis.Redis.from_url(private_redis.url)
    admin.execute_command("ACL", "SETUSER", "ingest-operator", "on", ">operator-Pass-1", *OPERATOR_ACL_RULES.split())
    admin.close()
    redis_url = private_redis.url.replace("redis://", "redis://ingest-operator:operator-Pass-1@", 1)
    assert OPERATOR_ACL_RULES in (CHART_DIR.parents[1] / "docs" / "deploy.md").read_text()
    with ExitStack() as stack:
        stack.enter_context(helm_release(
            helm, kube_control_plane, kube_namespace,
            "--set", "redis.bundled.enabled=false",
            "--set", f"redis.external.url={redis_url}",
            "--set", f"watchNamespaces={{{jobs_namespace}}}",
            "--set", "operator.reconcileInterval=0.5",
            "--set", "operator.scaleDownWindow=2",
            # the platform has no nodes: the local kubelet runs workers on this host's files
            "--set", "workers.allowedVolumeTypes={hostPath}",
        ))
        core, apps = k8s.CoreV1Api(kube_api), k8s.AppsV1Api(kube_api)
        # What the chart installed: the operator in its namespace, its grants and the workers'
        # NetworkPolicy where the SyncJobs live — but no Redis URL there (perJob credentials).
        assert apps.read_namespaced_deployment(FULLNAME, kube_namespace).spec.replicas == 1
        rbac = k8s.RbacAuthorizationV1Api(kube_api)
        binding = rbac.read_namespaced_role_binding(FULLNAME, jobs_namespace).to_dict()
        assert binding["subjects"][0]["name"] == FULLNAME
        assert not core.list_namespaced_secret(jobs_namespace, label_selector="app.kubernetes.io/instance=ingest").items
        policies = k8s.NetworkingV1Api(kube_api)
        assert policies.read_namespaced_network_policy(f"{FULLNAME}-worker", jobs_namespace).to_dict()["spec"]["pod_selector"]
        assert policies.read_namespaced_network_policy(FULLNAME, kube_namespace).to_dict()["spec"]["pod_selector"]

        # The operator, as the chart's ServiceAccount, with the chart's environment.
        token = service_account_token(kube_api, kube_namespace, FULLNAME)
        kubeconfig = kube_control_plane.write_kubeconfig(tmp_path / "operator.kubeconfig", "operator", token=token)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IRODS_INGEST", "KUBERNETES_"))}
        env.update(chart_environment(kube_api, kube_namespace))
        assert env["IRODS_INGEST_OPERATOR_NAMESPACES"] == jobs_namespace
        assert env["IRODS_INGEST_OPERATOR_REDIS_URL"] == redis_url
        # Loopback ports of this host instead of the pod's own 8080/9101.
        env["IRODS_INGEST_OPERATOR_LIVENESS_ENDPOINT"] = f"http://127.0.0.1:{free_port()}/healthz"
        env["IRODS_INGEST_OPERATOR_METRICS_PORT"] = str(free_port())
        env["KUBECONFIG"] = str(kubeconfig)
        log = tmp_path / "operator.log"
        with log.open("wb") as handle:
            operator = subprocess.Popen([sys.executable, "-m", "irods_ingest_operator.main"], env=env,
                                        stdout=handle, stderr=subprocess.STDOUT)
        stack.callback(stop_process, operator)
        kubelet = stack.enter_context(local_kubelet(kube_api, jobs_namespace, tmp_path / "pods"))

        def diagnostics() -> str:
            return "operator log:\n" + log.read_text(errors="replace")[-6000:] + f"\nkubelet errors: {kubelet.errors[-5:]}"

        # A SyncJob that uses every grant: a handler ConfigMap, workers, Events, deletion.
        source = host_dir / "source"
        for i in range(6):
            (source / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
            (source / f"d{i % 2}" / f"f{i}.dat").write_bytes(os.urandom(64 + i))
        core.create_namespaced_secret(jobs_namespace, k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name="irods-connection"),
            string_data={"irods_environment.json": json.dumps({
                "irods_host": irods_env.host, "irods_port": irods_env.port,
                "irods_user_name": irods_env.user, "irods_zone_name": irods_env.zone}),
                "password": irods_env.password},
        ))
        core.create_namespaced_config_map(jobs_namespace, k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name="handler"), data={"handler.py": NOOP_HANDLER}))
        objects = k8s.CustomObjectsApi(kube_api)
        collection = f"{irods_env.home}/chart_{jobs_namespace.replace('-', '_')}"
        objects.create_namespaced_custom_object(GROUP, VERSION, jobs_namespace, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "SyncJob", "metadata": {"name": "chart-job"},
            "spec": {
                "source": {"path": str(source), "volume": {"hostPath": {"path": str(source), "type": "Directory"}}},
                "destination": {"collection": collection, "connectionSecret": {"name": "irods-connection"}},
                "operation": "PutSync",
                "handler": {"configMapRef": {"name": "handler"}},
                "workers": {"maxReplicas": 1, "filesPerTask": 3},
            },
        })

        def denied() -> list[str]:
            lines = log.read_text(errors="replace").splitlines()
            return [line for line in lines if PERMISSION_ERRORS.search(line)]

        def get_job() -> dict[str, Any]:
            # The custom-objects API returns untyped JSON objects.
            return cast(dict[str, Any], objects.get_namespaced_custom_object(
                GROUP, VERSION, jobs_namespace, PLURAL, "chart-job"))

        def condition(kind: str) -> dict[str, Any]:
            if denied():  # fail fast: a missing grant never heals
                raise AssertionError("permission errors in the operator log:\n" + "\n".join(denied()[:10]))
            job = get_job()
            return next((c for c in job.get("status", {}).get("conditions", []) if c["type"] == kind), {})

        try:
            wait_until(lambda: condition("Succeeded").get("status") == "True", timeout=90,
                       what="the SyncJob's run to succeed", process=operator)
            assert get_job()["status"]["files"]["synced"] == 6
            # the job's own Redis credential, made by the operator and owned by the SyncJob
            owners = core.read_namespaced_secret("chart-job-worker-redis", jobs_namespace).to_dict()["metadata"]["owner_references"]
            assert [(o["kind"], o["name"]) for o in owners or []] == [("SyncJob", "chart-job")]
            reasons = [e.reason for e in core.list_namespaced_event(jobs_namespace).items]
            assert "RunStarted" in reasons and "RunSucceeded" in reasons
            wait_until(lambda: apps.read_namespaced_deployment("chart-job-worker", jobs_namespace).spec.replicas == 0,
                       timeout=30, what="workers scaled to zero through the scale subresource", process=operator)
            objects.delete_namespaced_custom_object(GROUP, VERSION, jobs_namespace, PLURAL, "chart-job")
            wait_until(lambda: not cast(dict[str, Any], objects.list_namespaced_custom_object(
                GROUP, VERSION, jobs_namespace, PLURAL))["items"], timeout=30,
                what="the SyncJob's finalizer removed by the operator", process=operator)
            # no delete grant needed: the garbage collector follows the ownerReference
            wait_until(lambda: not core.list_namespaced_secret(
                jobs_namespace, field_selector="metadata.name=chart-job-worker-redis").items, timeout=60,
                what="the job's credential Secret garbage-collected with its SyncJob")
        except (AssertionError, RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{diagnostics()}") from exc
        stop_process(operator)
        assert not denied(), "permission errors in the operator log:\n" + "\n".join(denied()[:10])

        # Not excessive: the same identity, asked about what it must not do.
        with kube_control_plane.api_client(token=token) as as_operator:
            allowed = [
                Access("watch", "syncjobs", jobs_namespace, GROUP),
                Access("patch", "syncjobs", jobs_namespace, GROUP, "status"),
                Access("create", "deployments", jobs_namespace, "apps"),
                Access("patch", "deployments", jobs_namespace, "apps", "scale"),
                Access("get", "configmaps", jobs_namespace),
                Access("create", "configmaps", jobs_namespace),  # "<job>-failures"
                Access("patch", "configmaps", jobs_namespace),
                Access("list", "pods", jobs_namespace),  # why no worker gets ready
                Access("get", "pods", jobs_namespace),
                Access("get", "pods", jobs_namespace, subresource="log"),
                Access("create", "events", jobs_namespace),
                Access("create", "secrets", jobs_namespace),
                Access("patch", "secrets", jobs_namespace),
            ]
            refused = [
                Access("get", "secrets", jobs_namespace),
                Access("list", "secrets", jobs_namespace),
                Access("watch", "secrets", jobs_namespace),
                Access("update", "secrets", jobs_namespace),
                Access("delete", "secrets", jobs_namespace),
                Access("list", "secrets", kube_namespace),
                Access("create", "secrets", kube_namespace),
                Access("list", "secrets"),
                Access("delete", "namespaces"),
                Access("create", "namespaces"),
                Access("delete", "syncjobs", jobs_namespace, GROUP),
                Access("create", "syncjobs", jobs_namespace, GROUP),
                Access("update", "syncjobs", jobs_namespace, GROUP),
                Access("delete", "deployments", jobs_namespace, "apps"),
                Access("create", "pods", jobs_namespace),
                Access("delete", "pods", jobs_namespace),
                Access("patch", "pods", jobs_namespace),
                Access("watch", "pods", jobs_namespace),
                Access("create", "pods", jobs_namespace, subresource="exec"),
                Access("create", "pods", jobs_namespace, subresource="eviction"),
                Access("patch", "pods", jobs_namespace, subresource="status"),
                Access("list", "pods", kube_namespace),
                Access("update", "configmaps", jobs_namespace),
                Access("delete", "configmaps", jobs_namespace),
                Access("list", "configmaps", jobs_namespace),
                Access("patch", "events", jobs_namespace),
                Access("get", "events", jobs_namespace),
                Access("create", "roles", jobs_namespace, "rbac.authorization.k8s.io"),
                Access("create", "clusterrolebindings", None, "rbac.authorization.k8s.io"),
                Access("impersonate", "serviceaccounts", jobs_namespace),
                Access("create", "serviceaccounts", jobs_namespace, subresource="token"),
                # Unwatched namespaces: its own, and any other.
                Access("create", "deployments", kube_namespace, "apps"),
                Access("patch", "deployments", "default", "apps"),
                Access("list", "syncjobs", "default", GROUP),
                Access("watch", "syncjobs", None, GROUP),
                Access("patch", "customresourcedefinitions", None, "apiextensions.k8s.io"),
            ]
            assert [str(a) for a in allowed if not can(as_operator, a)] == []
            assert [str(a) for a in refused if can(as_operator, a)] == []


@pytest.mark.slow
def test_cluster_wide_install_grants_every_namespace_but_no_secrets(
    helm: Helm, kube_control_plane: ControlPlane, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    with ExitStack() as stack:
        stack.enter_context(helm_release(
            helm, kube_control_plane, kube_namespace, "--set", "rbac.clusterWide=true",
            "--set", "redis.bundled.enabled=false", "--set", "redis.external.url=redis://redis.example:6379/0",
        ))
        env = chart_environment(kube_api, kube_namespace)
        assert "IRODS_INGEST_OPERATOR_NAMESPACES" not in env  # every namespace
        token = service_account_token(kube_api, kube_namespace, FULLNAME)
        with kube_control_plane.api_client(token=token) as as_operator:
            assert can(as_operator, Access("watch", "syncjobs", None, GROUP))
            assert can(as_operator, Access("create", "deployments", "any-namespace", "apps"))
            assert can(as_operator, Access("patch", "syncjobs", "any-namespace", GROUP, "status"))
            assert not can(as_operator, Access("get", "secrets", "any-namespace"))
            assert can(as_operator, Access("create", "secrets", "any-namespace"))  # perJob credentials
            assert not can(as_operator, Access("delete", "secrets", "any-namespace"))
            assert not can(as_operator, Access("delete", "namespaces"))
            assert not can(as_operator, Access("delete", "deployments", "any-namespace", "apps"))

