"""Issue 19, findings 1-3 on the real API server: what a kubectl user sees is the truth.

1. suspend pauses a run and resume continues the same run (batch/v1 Job semantics); a stop
   the user asked for is never Failed;
2. `kubectl get sj` (the server-side Table) and Ready say what kstatus, Argo CD and Flux
   expect: a run that failed on a wrong iRODS password is READY False, STATUS Failed;
3. a mid-run edit of a field that applies from the next run says so, and an edit that makes
   the spec invalid never hides the run that goes on: it reports to its end while the new
   generation is Stalled.

Real kube-apiserver and controller-manager, real redis-server, the iRODS test server, the
operator as its own process and the local kubelet stand-in running the workers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gitops.gitopskit import argocd_health, kstatus
from kubernetes import client as k8s

from irods_ingest.jobstate import RunState
from irods_ingest.store.connection import connect
from testsupport.irods_fixtures import IrodsEnv
from testsupport.kubelet import LocalKubelet
from testsupport.operator_fixtures import Cluster, OperatorProcess, job_spec, make_tree, wait_for
from testsupport.syncjob_views import events_of, printed_columns

pytestmark = [pytest.mark.kube, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]

SLOW_HANDLER = """
import time
from irods_capability_automated_ingest.core import Core

class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        time.sleep({sleep})
"""


def _slow_job(cluster: Cluster, name: str, source: Path, collection: str, *, files: int, sleep: float = 0.2) -> None:
    make_tree(source, files)
    cluster.core.create_namespaced_config_map(cluster.namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name=f"{name}-handler"), data={"handler.py": SLOW_HANDLER.format(sleep=sleep)}))
    cluster.create_syncjob(name, job_spec(source, collection, handler={"configMapRef": {"name": f"{name}-handler"}},
                                          workers={"minReplicas": 0, "maxReplicas": 1, "filesPerTask": 2}))


def _status(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.get(name).get("status") or {}


def _true(cluster: Cluster, name: str, kind: str) -> bool:
    return (cluster.condition(name, kind) or {}).get("status") == "True"


def test_suspend_pauses_the_run_and_resume_continues_it(
    cluster: Cluster, operator_process: OperatorProcess, kubelet: LocalKubelet, irods_session: Callable[..., Any],
    irods_env: IrodsEnv, redis_url: str, host_dir: Path,
) -> None:
    collection = f"{irods_env.home}/pause_{cluster.namespace}"
    _slow_job(cluster, "pausable", host_dir / "source", collection, files=30)
    wait_for("some files synced", lambda: _status(cluster, "pausable").get("files", {}).get("synced", 0) >= 4)
    run_id = _status(cluster, "pausable")["run"]["id"]

    cluster.patch_spec("pausable", {"suspend": True})
    wait_for("the workers gone", lambda: kubelet.running("pausable-worker") == 0
             and cluster.apps.read_namespaced_deployment("pausable-worker", cluster.namespace).spec.replicas == 0)
    runs = RunState(connect(redis_url), f"{cluster.namespace}/pausable")
    assert runs.status().run_id == run_id and runs.status().state == "running", "suspend must keep the run"
    assert not _true(cluster, "pausable", "Failed"), "a suspend is no failure"
    suspended = wait_for("Suspended=True", lambda: _true(cluster, "pausable", "Suspended")
                         and cluster.condition("pausable", "Suspended"))
    assert run_id in suspended["message"]
    status = _status(cluster, "pausable")
    assert status["phase"] == "Suspended" and status["run"]["id"] == run_id
    paused_at = runs.status().counters["files_synced"]  # the stopping worker finished its task first
    assert 0 < paused_at < 30 and runs.status().queued > 0  # its tasks wait in Redis
    wait_for("the status to show the paused run", lambda: _status(cluster, "pausable")["files"]["synced"] == paused_at)
    time.sleep(2)
    assert _status(cluster, "pausable")["files"]["synced"] == runs.status().counters["files_synced"] == paused_at
    assert printed_columns(cluster.api, cluster.namespace, "pausable")["Status"].value == "Suspended"

    cluster.patch_spec("pausable", {"suspend": False})
    wait_for("the same run to succeed", lambda: _true(cluster, "pausable", "Succeeded"), timeout=90)
    status = _status(cluster, "pausable")
    assert status["run"]["id"] == run_id and status["files"]["synced"] == 30, json.dumps(status)
    assert status["phase"] == "Succeeded" and not _true(cluster, "pausable", "Failed")
    assert cluster.condition("pausable", "Suspended")["status"] == "False"  # type: ignore[index]
    reasons = [e.reason for e in events_of(cluster.api, cluster.namespace, "pausable")]
    assert reasons.count("Suspended") == 1 and reasons.count("Resumed") == 1, reasons
    assert reasons.count("RunStarted") == 1 and "RunFailed" not in reasons and "RunStopped" not in reasons
    landed = {o.name for _c, _s, objs in irods_session().collections.get(collection).walk() for o in objs}
    assert len(landed) == 30
    irods_session().collections.remove(collection, recurse=True, force=True)


def test_get_and_ready_tell_a_failed_run_from_a_healthy_schedule(
    cluster: Cluster, operator_process: OperatorProcess, kubelet: LocalKubelet, irods_env: IrodsEnv, host_dir: Path,
) -> None:
    environment = {"irods_host": irods_env.host, "irods_port": irods_env.port, "irods_user_name": irods_env.user,
                   "irods_zone_name": irods_env.zone}
    cluster.core.create_namespaced_secret(cluster.namespace, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="wrong-password"),
        string_data={"irods_environment.json": json.dumps(environment), "password": "not-the-password"}))
    source = host_dir / "source"
    make_tree(source, 3)
    wrong = job_spec(source, f"{irods_env.home}/wrong_{cluster.namespace}")
    wrong["destination"]["connectionSecret"] = {"name": "wrong-password"}
    wrong["workers"].update(maxRetries=0, retryBackoffSeconds=1)
    cluster.create_syncjob("wrong", wrong)
    cluster.create_syncjob("nightly", job_spec(source, f"{irods_env.home}/nightly_{cluster.namespace}",
                                               schedule="0 3 * * *", runNow="first"))

    wait_for("the wrong password's run to end", lambda: _status(cluster, "wrong").get("run", {}).get("outcome"),
             timeout=90)
    ready = cluster.condition("wrong", "Ready") or {}
    assert ready.get("status") == "False", f"a run that failed is not Ready: {ready}"
    assert ready.get("reason") == "RunFailed" and "failed" in ready.get("message", "")
    job = cluster.get("wrong")
    assert job["status"]["phase"] == "Failed"
    assert kstatus(job, ready_required=True).status == "Failed" and argocd_health(job).status == "Degraded"
    columns = printed_columns(cluster.api, cluster.namespace, "wrong")
    assert (columns["Status"].value, columns["Ready"].value) == ("Failed", "False")

    wait_for("the scheduled job's runNow run to succeed", lambda: _true(cluster, "nightly", "Succeeded"), timeout=90)
    columns = printed_columns(cluster.api, cluster.namespace, "nightly")
    assert (columns["Status"].value, columns["Ready"].value) == ("Succeeded", "True")
    assert columns["Schedule"].value == "0 3 * * *" and columns["Schedule"].priority == 0
    assert columns["Next Sync"].value.endswith("T03:00:00Z") and columns["Next Sync"].priority == 1
    assert columns["Suspend"].value is False and columns["Suspend"].priority == 1
    assert columns["Progress"].value == "3/3 files (100%)" and columns["Synced"].value == 3
    assert list(columns)[:3] == ["Name", "Status", "Ready"]
    job = cluster.get("nightly")
    assert kstatus(job, ready_required=True).status == "Current" and argocd_health(job).status == "Healthy"


def test_mid_run_edits_say_when_they_apply_and_an_invalid_one_never_hides_the_run(
    cluster: Cluster, operator_process: OperatorProcess, kubelet: LocalKubelet, irods_session: Callable[..., Any],
    irods_env: IrodsEnv, host_dir: Path,
) -> None:
    collection = f"{irods_env.home}/edits_{cluster.namespace}"
    _slow_job(cluster, "edited", host_dir / "source", collection, files=40, sleep=0.5)  # 10 s on two workers
    wait_for("some files synced", lambda: _status(cluster, "edited").get("files", {}).get("synced", 0) >= 2)
    run_id = _status(cluster, "edited")["run"]["id"]

    cluster.patch_spec("edited", {"destination": {"collection": f"{collection}_next"},
                                  "workers": {"maxReplicas": 2}})
    pending = "spec.destination.collection changed: applies from the next run"
    wait_for("the pending change in the status", lambda: pending in (cluster.condition("edited", "Reconciling") or {})
             .get("message", ""), timeout=20)
    wait_for("a SpecChangePending event", lambda: any(
        e.reason == "SpecChangePending" and pending in e.message for e in events_of(cluster.api, cluster.namespace, "edited")))
    assert "workers.maxReplicas" not in cluster.condition("edited", "Reconciling")["message"]  # type: ignore[index]

    cluster.patch_spec("edited", {"operation": "Put", "deleteMode": "Trash"})  # invalid: the matrix refuses it
    stalled = wait_for("the new generation Stalled", lambda: _true(cluster, "edited", "Stalled")
                       and cluster.condition("edited", "Stalled"), timeout=20)
    assert stalled["reason"] == "InvalidSpec" and "spec.deleteMode" in stalled["message"]
    status = _status(cluster, "edited")
    assert status["observedGeneration"] == cluster.get("edited")["metadata"]["generation"]
    assert status.get("run", {}).get("id") == run_id and "progress" in status and "files" in status, json.dumps(status)
    assert status["phase"] == "Invalid"

    wait_for("the run's end, reported while the spec is invalid", lambda: _true(cluster, "edited", "Succeeded"), timeout=90)
    status = _status(cluster, "edited")
    assert status["run"]["id"] == run_id and status["files"]["synced"] == 40 and "lastSyncTime" in status
    assert _true(cluster, "edited", "Stalled")  # the spec is still invalid
    assert "RunSucceeded" in [e.reason for e in events_of(cluster.api, cluster.namespace, "edited")]
    landed = {o.name for _c, _s, objs in irods_session().collections.get(collection).walk() for o in objs}
    assert len(landed) == 40  # the run kept the collection it started with
    irods_session().collections.remove(collection, recurse=True, force=True)
