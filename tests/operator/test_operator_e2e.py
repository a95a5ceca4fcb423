"""The whole path: kubectl-style apply → operator → Deployment → workers → iRODS → status.

Real kube-apiserver and controller-manager, real redis-server, the iRODS test server, the
operator as its own process, and a local stand-in for the kubelet that runs each worker
Deployment's replicas as local processes with the pod's environment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from irods_ingest.actions import JobActions
from irods_ingest.jobstate import RunState
from irods_ingest.store.connection import connect
from irods_ingest_operator.constants import GROUP, PLURAL, VERSION
from irods_ingest_testkit.processes import stop_process
from testsupport.irods_fixtures import IrodsEnv
from testsupport.kube import ControlPlane
from testsupport.kubelet import LocalKubelet
from testsupport.operator_fixtures import (
    Cluster,
    OperatorProcess,
    job_spec,
    make_tree,
    scrape_or_none,
    wait_for,
)

pytestmark = [pytest.mark.kube, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]


def test_syncjob_runs_end_to_end(cluster: Cluster, operator_process: OperatorProcess, kubelet: LocalKubelet,
                                 irods_session: Callable[..., Any], irods_env: IrodsEnv, redis_url: str,
                                 host_dir: Path) -> None:
    source = host_dir / "source"
    make_tree(source, 15)
    collection = f"{irods_env.home}/e2e_{cluster.namespace}"
    cluster.create_syncjob("ingest", job_spec(source, collection))

    succeeded = wait_for("the first run to succeed", lambda: (cluster.condition("ingest", "Succeeded") or {}).get("status") == "True")
    assert succeeded
    status = cluster.get("ingest")["status"]
    assert status["files"]["discovered"] == 15 and status["files"]["synced"] == 15 and status["files"]["failed"] == 0
    assert status["observedGeneration"] == 1
    assert cluster.condition("ingest", "Ready")["status"] == "True"  # type: ignore[index]
    assert "lastSyncTime" in status and status["run"]["outcome"] == "Succeeded"
    session = irods_session()
    listed = {obj.name for _c, _s, objs in session.collections.get(collection).walk() for obj in objs}
    assert listed == {f"file{i}.dat" for i in range(15)}
    assert kubelet.max_seen["ingest-worker"] >= 1  # workers were scaled up for the run...
    port = int(operator_process.env["IRODS_INGEST_OPERATOR_METRICS_PORT"])
    job_labels = f'job="ingest",namespace="{cluster.namespace}"'
    samples = wait_for("the operator's metrics", lambda: scrape_or_none(port))
    assert samples[f'irods_ingest_runs_total{{{job_labels},outcome="succeeded"}}'] == 1
    assert samples[f"irods_ingest_last_successful_sync_timestamp_seconds{{{job_labels}}}"] > time.time() - 300
    assert samples[f"irods_ingest_queue_depth_tasks{{{job_labels}}}"] == 0
    wait_for("workers scaled to zero after the run", lambda: kubelet.running("ingest-worker") == 0)  # ...and down

    # A scheduled second run only syncs what changed.
    (source / "dir0" / "file0.dat").write_bytes(b"changed")
    first_run = status["run"]["id"]
    cluster.patch_spec("ingest", {"schedule": "*/5 * * * *"})
    wait_for("nextSyncTime", lambda: "nextSyncTime" in cluster.get("ingest")["status"])
    # Make the current slot due now instead of waiting for the clock: the operator's memo of
    # the last fired slot moves back ten minutes.
    JobActions(connect(redis_url), f"{cluster.namespace}/ingest").remember("op:schedule_slot", time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 600)))
    wait_for("the scheduled run to finish", lambda: (cluster.get("ingest")["status"].get("run", {}).get("id") != first_run
                                                     and cluster.get("ingest")["status"]["run"].get("outcome") == "Succeeded"))
    files = cluster.get("ingest")["status"]["files"]
    assert (files["synced"], files["unchanged"]) == (1, 14), json.dumps(cluster.get("ingest")["status"])
    assert session.data_objects.open(f"{collection}/dir0/file0.dat", "r").read() == b"changed"
    reasons = cluster.events("ingest")
    assert reasons.count("RunStarted") == 2 and reasons.count("RunSucceeded") == 2
    assert "ScaledWorkers" in reasons

    # Suspend: no workers.
    cluster.patch_spec("ingest", {"suspend": True})
    wait_for("suspended status", lambda: (cluster.condition("ingest", "Ready") or {}).get("reason") == "Suspended")
    assert cluster.apps.read_namespaced_deployment("ingest-worker", cluster.namespace).spec.replicas == 0

    # Delete: Redis state removed, the Deployment garbage-collected.
    cluster.delete("ingest")
    client = connect(redis_url)
    wait_for("Redis keys removed", lambda: not [k for p in ("ii", "iic") for k in client.scan_iter(match=f"{p}:{{{cluster.namespace}/ingest}}:*")])
    wait_for("the SyncJob gone", lambda: not any(
        i["metadata"]["name"] == "ingest"
        for i in cluster.objects.list_namespaced_custom_object(GROUP, VERSION, cluster.namespace, PLURAL)["items"]))
    session.collections.remove(collection, recurse=True, force=True)
    assert operator_process.poll() is None, "the operator died"


def test_invalid_spec_becomes_a_stalled_condition(cluster: Cluster, operator_process: OperatorProcess,
                                                  host_dir: Path, redis_url: str) -> None:
    source = host_dir / "source"
    source.mkdir()
    cluster.create_syncjob("bad", job_spec(source, "/tempZone/home/rods/bad", operation="Put", deleteMode="Trash"))
    stalled = wait_for("Stalled", lambda: (cluster.condition("bad", "Stalled") or {}).get("status") == "True"
                       and cluster.condition("bad", "Stalled"))
    assert stalled["reason"] == "InvalidSpec"
    assert "spec.deleteMode" in stalled["message"] and "Put" in stalled["message"]
    assert cluster.condition("bad", "Ready")["status"] == "False"  # type: ignore[index]
    wait_for("an InvalidSpec event", lambda: "InvalidSpec" in cluster.events("bad"))
    assert RunState(connect(redis_url), f"{cluster.namespace}/bad").status().state == "none"  # nothing ran
    # Fixing the spec clears the condition and runs the job.
    cluster.patch_spec("bad", {"deleteMode": "DoNotDelete"})
    wait_for("Stalled cleared", lambda: (cluster.condition("bad", "Stalled") or {}).get("status") == "False")


def test_api_server_rejects_invalid_manifests_naming_the_field(cluster: Cluster) -> None:
    with pytest.raises(k8s.ApiException) as caught:
        cluster.create_syncjob("rejected", {
            "source": {"path": "/data"},
            "destination": {"collection": "/tempZone/home/rods/x", "connectionSecret": {"name": "c"}},
            "operation": "Copy",
        })
    assert caught.value.status == 422
    assert "spec.operation" in caught.value.body


HANDLER = """
import time
from irods_capability_automated_ingest.core import Core

class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        time.sleep({sleep})
        with open({log!r}, "a") as handle:
            handle.write("{version} " + meta["target"] + "\\n")
"""


@pytest.mark.faults  # the fault suite's "operator killed mid-run" case
def test_operator_restart_mid_run_and_handler_configmap(
    cluster: Cluster, operator_process: OperatorProcess, kubelet: LocalKubelet, irods_session: Callable[..., Any],
    irods_env: IrodsEnv, host_dir: Path
) -> None:
    source = host_dir / "source"
    make_tree(source, 20)
    hook_log = host_dir / "hooks.log"
    collection = f"{irods_env.home}/restart_{cluster.namespace}"
    cluster.core.create_namespaced_config_map(cluster.namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="handler"),
        data={"handler.py": HANDLER.format(sleep=0.15, log=str(hook_log), version="v1")}))
    cluster.create_syncjob("slow", job_spec(source, collection, handler={"configMapRef": {"name": "handler"}},
                                            workers={"minReplicas": 0, "maxReplicas": 1, "filesPerTask": 2}))
    running = wait_for("the run to be in progress", lambda: (cluster.condition("slow", "Reconciling") or {}).get("status") == "True"
                       and cluster.get("slow")["status"]["run"]["id"])
    wait_for("some files synced", lambda: cluster.get("slow")["status"]["files"]["synced"] >= 2)

    operator_process.restart()  # SIGKILL mid-run, then a fresh operator

    wait_for("the run to succeed", lambda: (cluster.condition("slow", "Succeeded") or {}).get("status") == "True", timeout=90)
    status = cluster.get("slow")["status"]
    assert status["run"]["id"] == running  # the same run resumed: no duplicate
    assert status["files"]["synced"] == 20
    assert cluster.events("slow").count("RunStarted") == 1
    lines = hook_log.read_text().splitlines()
    assert len(lines) == 20 and all(line.startswith("v1 ") for line in lines)
    # Exactly once in the catalog: one object with one replica and the right size per file.
    landed: dict[str, Any] = {}
    for _coll, _subs, objects in irods_session().collections.get(collection).walk():
        for obj in objects:
            relative = obj.path[len(collection) + 1 :]
            assert relative not in landed, f"{relative} twice"
            landed[relative] = obj
    files = {str(p.relative_to(source)): p.stat().st_size for p in source.rglob("*") if p.is_file()}
    assert {rel: obj.size for rel, obj in landed.items()} == files
    assert all(len(obj.replicas) == 1 for obj in landed.values())

    # A ConfigMap edit reaches the workers: the next run uses the new handler.
    cluster.core.patch_namespaced_config_map("handler", cluster.namespace, {
        "data": {"handler.py": HANDLER.format(sleep=0, log=str(hook_log), version="v2")}})
    (source / "dir1" / "new.dat").write_bytes(b"new")
    cluster.patch_spec("slow", {"runNow": "after-handler-edit"})
    wait_for("the second run", lambda: cluster.get("slow")["status"].get("run", {}).get("id") != running
             and cluster.get("slow")["status"]["run"].get("outcome") == "Succeeded", timeout=90)
    new_lines = hook_log.read_text().splitlines()[20:]
    # the handler changed, so the new run looked at every file again, with the new handler
    assert new_lines and all(line.startswith("v2 ") for line in new_lines)
    assert any(line.endswith("/dir1/new.dat") for line in new_lines)
    assert "HandlerUpdated" in cluster.events("slow") or cluster.events("slow").count("RunStarted") == 2
    irods_session().collections.remove(collection, recurse=True, force=True)


def test_liveness_endpoint_answers(operator_process: OperatorProcess) -> None:
    import urllib.request

    url = operator_process.env["IRODS_INGEST_OPERATOR_LIVENESS_ENDPOINT"]

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    assert wait_for("the liveness endpoint", healthy)


def test_deletion_never_hangs_when_redis_is_down(kube_control_plane: ControlPlane, kube_namespace: str,
                                                 cluster: Cluster, private_redis: Any, host_dir: Path,
                                                 tmp_path: Path) -> None:
    env = kube_control_plane.env()
    env.update(
        IRODS_INGEST_OPERATOR_REDIS_URL=private_redis.url,
        IRODS_INGEST_OPERATOR_NAMESPACES=kube_namespace,
        IRODS_INGEST_OPERATOR_RECONCILE_INTERVAL="0.5",
        IRODS_INGEST_OPERATOR_CLEANUP_ATTEMPTS="2",
        IRODS_INGEST_OPERATOR_CLEANUP_BACKOFF="0.2",
        IRODS_INGEST_OPERATOR_LIVENESS_ENDPOINT="",
        IRODS_INGEST_OPERATOR_METRICS_PORT="",
        IRODS_INGEST_OPERATOR_ALLOWED_VOLUME_TYPES="hostPath",
    )
    operator = OperatorProcess(env, tmp_path / "operator.log")
    try:
        source = host_dir / "source"
        source.mkdir()
        cluster.create_syncjob("orphan", job_spec(source, "/tempZone/home/rods/orphan"))
        wait_for("the run to start", lambda: (cluster.condition("orphan", "Reconciling") or {}).get("status") == "True")
        private_redis.kill()
        cluster.delete("orphan")
        wait_for("the SyncJob gone despite Redis being down", lambda: not any(
            i["metadata"]["name"] == "orphan"
            for i in cluster.objects.list_namespaced_custom_object(GROUP, VERSION, cluster.namespace, PLURAL)["items"]),
            timeout=90)
        assert "CleanupIncomplete" in cluster.events("orphan")
    finally:
        stop_process(operator.process)


REFUSING_HANDLER = """
import os
from irods_capability_automated_ingest.core import Core

class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        if os.path.exists({marker!r}) and meta["path"].endswith("file3.dat"):
            raise RuntimeError("refused for now")
"""


def test_retry_failed_redoes_only_the_failures(cluster: Cluster, operator_process: OperatorProcess,
                                               kubelet: LocalKubelet, irods_session: Callable[..., Any],
                                               irods_env: IrodsEnv, host_dir: Path) -> None:
    source = host_dir / "source"
    make_tree(source, 9)
    marker = host_dir / "refuse"
    marker.write_text("x")
    collection = f"{irods_env.home}/retry_{cluster.namespace}"
    cluster.core.create_namespaced_config_map(cluster.namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="handler"), data={"handler.py": REFUSING_HANDLER.format(marker=str(marker))}))
    cluster.create_syncjob("flaky", job_spec(source, collection, operation="Put",
                                             handler={"configMapRef": {"name": "handler"}}))
    wait_for("the first run to fail", lambda: (cluster.condition("flaky", "Failed") or {}).get("status") == "True")
    status = cluster.get("flaky")["status"]
    assert (status["files"]["synced"], status["files"]["failed"]) == (8, 1)
    assert status["recentFailures"][0]["path"].endswith("file3.dat")
    first_run = status["run"]["id"]
    marker.unlink()
    cluster.patch_spec("flaky", {"retryFailed": "now"})
    wait_for("the retry run to succeed", lambda: cluster.get("flaky")["status"]["run"]["id"] != first_run
             and (cluster.condition("flaky", "Succeeded") or {}).get("status") == "True")
    files = cluster.get("flaky")["status"]["files"]
    assert (files["discovered"], files["synced"], files["failed"]) == (1, 1, 0)  # only the failed file, no rescan
    names = {o.name for _c, _s, objs in irods_session().collections.get(collection).walk() for o in objs}
    assert len(names) == 9
    irods_session().collections.remove(collection, recurse=True, force=True)


def test_no_secret_in_status_events_deployment_or_logs(cluster: Cluster, operator_process: OperatorProcess,
                                                        kubelet: LocalKubelet, irods_session: Callable[..., Any],
                                                        irods_env: IrodsEnv, host_dir: Path) -> None:
    from irods.exception import UserDoesNotExist

    secret = "op-Secr3t-pw-91x"
    admin = irods_session()
    try:
        admin.users.get("opuser")
    except UserDoesNotExist:
        admin.users.create("opuser", "rodsuser")
    admin.users.modify("opuser", "password", secret)
    environment = {"irods_host": irods_env.host, "irods_port": irods_env.port, "irods_user_name": "opuser",
                   "irods_zone_name": irods_env.zone}
    cluster.core.create_namespaced_secret(cluster.namespace, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="opuser-connection"),
        string_data={"irods_environment.json": json.dumps(environment), "password": secret}))
    source = host_dir / "source"
    make_tree(source, 4)
    spec = job_spec(source, f"/{irods_env.zone}/home/opuser/secrets", operation="Put")
    spec["destination"]["connectionSecret"] = {"name": "opuser-connection"}
    cluster.create_syncjob("private", spec)
    wait_for("the run to succeed", lambda: (cluster.condition("private", "Succeeded") or {}).get("status") == "True")
    assert cluster.get("private")["status"]["files"]["synced"] == 4  # the password really was used

    deployment = cluster.apps.read_namespaced_deployment("private-worker", cluster.namespace)
    surfaces = {
        "status": json.dumps(cluster.get("private")),
        "events": json.dumps([e.message for e in cluster.core.list_namespaced_event(cluster.namespace).items]),
        "deployment": json.dumps(cluster.api.sanitize_for_serialization(deployment)),
        "operator log": operator_process.log.read_text(errors="replace"),
        "worker logs": kubelet.logs("private-worker"),
    }
    for where, text in surfaces.items():
        assert secret not in text, f"the iRODS password leaked into the {where}"
    env = {e.name: e for e in deployment.spec.template.spec.containers[0].env}
    assert env["IRODS_PASSWORD"].value_from.secret_key_ref.name == "opuser-connection"
