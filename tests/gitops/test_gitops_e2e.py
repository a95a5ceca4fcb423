"""GitOps on the real thing: the operator's own status objects, judged by kstatus (Flux) and the
Argo CD health script, and the two promises that keep GitOps tools from seeing drift — the
operator never writes spec, and never copies Argo CD's tracking labels onto what it creates.

Same setup as tests/operator/test_operator_e2e.py: real apiserver, redis-server, the iRODS test
server, the operator as its own process and the local kubelet stand-in for the workers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, cast

import pytest
from gitops.gitopskit import Verdict, argocd_health, kstatus
from kubernetes import client as k8s

from irods_ingest_operator.constants import GROUP, PLURAL, VERSION
from irods_ingest_testkit.processes import stop_process
from testsupport.irods_fixtures import IrodsEnv
from testsupport.kube import ControlPlane
from testsupport.kubelet import LocalKubelet, local_kubelet

pytestmark = [pytest.mark.kube, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]

ARGO_LABELS: Final = {"argocd.argoproj.io/instance": "argo-app", "app.kubernetes.io/instance": "argo-app"}
ARGO_ANNOTATIONS: Final = {"argocd.argoproj.io/tracking-id": "argo-app:ingest.irods.dev/SyncJob:ns/gitops"}
SLOW_HANDLER: Final = """
import time
from irods_capability_automated_ingest.core import Core

class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        time.sleep(0.3)
"""


class Jobs:
    def __init__(self, api: k8s.ApiClient, namespace: str, diagnostics: Callable[[], str]) -> None:
        self.objects = k8s.CustomObjectsApi(api)
        self.namespace = namespace
        self.diagnostics = diagnostics

    # The custom-objects API returns untyped JSON objects.
    def get(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name))

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self.objects.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body))

    def patch_spec(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}))

    def wait(self, name: str, what: str, condition: Callable[[dict[str, Any]], bool],
             timeout: float = 60.0, seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Poll the SyncJob until ``condition``; every object read is appended to ``seen``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(name)
            if seen is not None:
                seen.append(job)
            if condition(job):
                return job
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {json.dumps(self.get(name).get('status'))}\n"
                             f"{self.diagnostics()}")


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in job.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def _spec_writers(job: dict[str, Any]) -> set[str]:
    """Field managers that own anything under spec (metadata.managedFields)."""
    return {entry["manager"] for entry in job["metadata"].get("managedFields", [])
            if "f:spec" in (entry.get("fieldsV1") or {})}


@pytest.fixture
def host_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="irods-ingest-gitops-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def operator_log(kube_control_plane: ControlPlane, kube_namespace: str, redis_url: str,
                 tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "operator.log"
    env = kube_control_plane.operator_env(kube_namespace, redis_url)
    with log.open("wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", "irods_ingest_operator.main"], env=env,
                                   stdout=handle, stderr=subprocess.STDOUT)
    try:
        yield log
    finally:
        stop_process(process)


@pytest.fixture
def kubelet(kube_api: k8s.ApiClient, kube_namespace: str, tmp_path: Path) -> Iterator[LocalKubelet]:
    with local_kubelet(kube_api, kube_namespace, tmp_path / "pods") as running:
        yield running


def test_gitops_view_of_real_syncjobs(
    kube_api: k8s.ApiClient, kube_namespace: str, operator_log: Path, kubelet: LocalKubelet,
    irods_env: IrodsEnv, irods_session: Callable[..., Any], host_dir: Path,
) -> None:
    core, apps = k8s.CoreV1Api(kube_api), k8s.AppsV1Api(kube_api)

    def diagnostics() -> str:
        return "operator log (tail):\n" + operator_log.read_text(errors="replace")[-4000:] + \
            f"\nkubelet errors: {kubelet.errors[-5:]}"

    jobs = Jobs(kube_api, kube_namespace, diagnostics)
    core.create_namespaced_secret(kube_namespace, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="irods-connection"),
        string_data={"irods_environment.json": json.dumps({
            "irods_host": irods_env.host, "irods_port": irods_env.port,
            "irods_user_name": irods_env.user, "irods_zone_name": irods_env.zone}),
            "password": irods_env.password},
    ))
    core.create_namespaced_config_map(kube_namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="slow-handler"), data={"handler.py": SLOW_HANDLER}))
    source = host_dir / "source"
    source.mkdir()
    for i in range(6):
        (source / f"f{i}.dat").write_bytes(os.urandom(32))
    collection = f"{irods_env.home}/gitops_{kube_namespace.replace('-', '_')}"

    # A SyncJob as Argo CD applies it: with its tracking label and annotation.
    created = jobs.create({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SyncJob",
        "metadata": {"name": "gitops", "labels": dict(ARGO_LABELS), "annotations": dict(ARGO_ANNOTATIONS)},
        "spec": {
            "source": {"path": str(source), "volume": {"hostPath": {"path": str(source), "type": "Directory"}}},
            "destination": {"collection": collection, "connectionSecret": {"name": "irods-connection"}},
            "operation": "PutSync",
            "handler": {"configMapRef": {"name": "slow-handler"}},
            "workers": {"maxReplicas": 1, "filesPerTask": 2},
        },
    })
    creator = _spec_writers(created)

    # 1. kstatus and Argo CD health over a whole run, on every status the operator wrote.
    seen: list[dict[str, Any]] = []
    done = jobs.wait("gitops", "the run to succeed", lambda j: _condition(j, "Succeeded").get("status") == "True",
                     timeout=90, seen=seen)
    verdicts = [(kstatus(j, ready_required=True), argocd_health(j)) for j in seen]
    running = [(k, a) for (k, a), j in zip(verdicts, seen, strict=True)
               if _condition(j, "Reconciling").get("status") == "True"]
    assert running, "never saw the run in progress"
    assert all(k.status == "InProgress" and a.status == "Progressing" for k, a in running), running
    assert kstatus(done, ready_required=True) == Verdict("Current", "Resource is current")
    assert argocd_health(done).status == "Healthy"
    assert done["status"]["observedGeneration"] == done["metadata"]["generation"] == 1
    for condition in done["status"]["conditions"]:
        assert condition["observedGeneration"] == 1 and condition["lastTransitionTime"].endswith("Z")
    assert {c["type"] for c in done["status"]["conditions"]} >= {"Ready", "Reconciling", "Stalled"}

    # 2. No Argo CD tracking metadata on the child; it is owned (Argo CD shows it as a child).
    worker = apps.read_namespaced_deployment("gitops-worker", kube_namespace).to_dict()
    for metadata in (worker["metadata"], worker["spec"]["template"]["metadata"]):
        labels, annotations = metadata.get("labels") or {}, metadata.get("annotations") or {}
        assert not [k for k in (*labels, *annotations) if k.startswith("argocd.argoproj.io/")], metadata
        assert labels.get("app.kubernetes.io/instance") == "gitops"  # the job's name, not Argo CD's app
    (owner,) = worker["metadata"]["owner_references"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("SyncJob", "gitops", True)

    # 3. The operator never wrote spec: same spec and generation, and no other manager owns spec fields.
    assert done["spec"] == created["spec"]
    assert done["metadata"]["labels"] == ARGO_LABELS
    assert {k: v for k, v in done["metadata"]["annotations"].items() if k.startswith("argocd")} == ARGO_ANNOTATIONS
    assert _spec_writers(done) == creator

    # 4. A spec change is InProgress until observed, then the job reports Suspended.
    patched = jobs.patch_spec("gitops", {"suspend": True})
    assert patched["metadata"]["generation"] == 2
    assert kstatus(patched).status == "InProgress"
    assert argocd_health(patched).status == "Progressing"
    suspended = jobs.wait("gitops", "the suspension observed",
                          lambda j: j["status"]["observedGeneration"] == 2
                          and _condition(j, "Ready").get("reason") == "Suspended")
    assert kstatus(suspended, ready_required=True).status == "Current"
    assert argocd_health(suspended) == Verdict("Suspended", "SyncJob is suspended")
    assert suspended["spec"] == patched["spec"] and suspended["metadata"]["generation"] == 2
    assert _spec_writers(suspended) == creator

    # 5. An invalid spec is Stalled: kstatus Failed, Argo CD Degraded, and the spec left as written.
    bad = jobs.create({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SyncJob", "metadata": {"name": "gitops-bad"},
        "spec": {**created["spec"], "operation": "Put", "deleteMode": "Trash"},
    })
    stalled = jobs.wait("gitops-bad", "Stalled", lambda j: _condition(j, "Stalled").get("status") == "True")
    assert kstatus(stalled) == Verdict("Failed", _condition(stalled, "Stalled")["message"])
    health = argocd_health(stalled)
    assert health.status == "Degraded" and "spec.deleteMode" in health.message
    assert stalled["spec"] == bad["spec"] and stalled["metadata"]["generation"] == 1
    irods_session().collections.remove(collection, recurse=True, force=True)
