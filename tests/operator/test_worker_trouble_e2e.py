"""Issue 19, finding 4 on the real API server: worker trouble reaches the SyncJob.

The test control plane has a controller-manager but no kubelet: the Deployment's ReplicaSet
makes real Pod objects, which stay Pending. As the cluster admin, the test writes into each
pod's status subresource (pods/status) what a kubelet would report for a missing Secret, a
crash loop or an image that cannot be pulled; the operator, which may only list pods and read
their logs, must put that cause into the SyncJob (condition WorkersReady=False with reason
WorkersNotReady, Stalled while it lasts) and post one Warning Event per cause. (Pods that
really run, with real kubelet-reported reasons and logs, come with another issue: the test
platform's real node.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from testsupport.kube import ControlPlane
from testsupport.kubelet import WORKER_LABEL_SELECTOR
from testsupport.operator_fixtures import Cluster, job_spec, wait_for
from testsupport.syncjob_views import events_of, operator_with

pytestmark = [pytest.mark.kube, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]


def _pods(cluster: Cluster, job: str) -> list[Any]:
    selector = f"{WORKER_LABEL_SELECTOR},app.kubernetes.io/instance={job}"
    return list(cluster.core.list_namespaced_pod(cluster.namespace, label_selector=selector).items)


def _report(cluster: Cluster, job: str, state: dict[str, Any], last_state: dict[str, Any] | None = None,
            restarts: int = 0) -> None:
    """What a kubelet would write into the status of each of the job's worker pods."""
    for pod in _pods(cluster, job):
        container = {"name": "worker", "ready": False, "restartCount": restarts, "image": pod.spec.containers[0].image,
                     "imageID": "", "state": state, "lastState": last_state or {}}
        cluster.core.patch_namespaced_pod_status(pod.metadata.name, cluster.namespace, {"status": {
            "phase": "Pending", "containerStatuses": [container],
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}})


def _workers_condition(cluster: Cluster, job: str) -> dict[str, Any]:
    return cluster.condition(job, "WorkersReady") or {}


def _warnings(cluster: Cluster, job: str) -> list[str]:
    return [e.message for e in events_of(cluster.api, cluster.namespace, job)
            if e.reason == "WorkersNotReady" and e.type == "Warning"]


def test_the_cause_of_workers_that_never_get_ready_reaches_the_syncjob(
    kube_control_plane: ControlPlane, cluster: Cluster, redis_url: str, host_dir: Path, tmp_path: Path,
) -> None:
    source = host_dir / "source"
    source.mkdir()
    with operator_with(kube_control_plane, cluster.namespace, redis_url, tmp_path / "operator.log",
                       WORKERS_NOT_READY_AFTER="1"):
        spec = job_spec(source, "/tempZone/home/rods/trouble")
        spec["destination"]["connectionSecret"] = {"name": "irods-conn"}  # never created
        cluster.create_syncjob("trouble", spec)
        wait_for("the worker pod objects", lambda: _pods(cluster, "trouble"))

        _report(cluster, "trouble", {"waiting": {"reason": "CreateContainerConfigError",
                                                 "message": 'secret "irods-conn" not found'}})
        expected = 'CreateContainerConfigError: secret "irods-conn" not found'
        condition = wait_for("WorkersNotReady naming the Secret", lambda: expected in _workers_condition(
            cluster, "trouble").get("message", "") and _workers_condition(cluster, "trouble"), timeout=30)
        assert (condition["status"], condition["reason"]) == ("False", "WorkersNotReady")
        stalled = cluster.condition("trouble", "Stalled") or {}
        assert (stalled.get("status"), stalled.get("reason")) == ("True", "WorkersNotReady")
        assert expected in stalled.get("message", "")
        assert (cluster.condition("trouble", "Ready") or {}).get("status") == "False"
        wait_for("a Warning event", lambda: _warnings(cluster, "trouble"))
        time.sleep(3)  # a few more passes (0.5 s apart) with the same cause
        assert len([m for m in _warnings(cluster, "trouble") if expected in m]) == 1, _warnings(cluster, "trouble")

        _report(cluster, "trouble", {"waiting": {"reason": "CrashLoopBackOff",
                                                 "message": "back-off 10s restarting failed container=worker"}},
                {"terminated": {"exitCode": 1, "reason": "Error",
                                "message": "starting\nirods-ingest: cannot reach Redis: Connection refused\n"}},
                restarts=3)
        crash = "CrashLoopBackOff: irods-ingest: cannot reach Redis: Connection refused"
        wait_for("the crash loop's last line", lambda: crash in _workers_condition(cluster, "trouble").get("message", ""),
                 timeout=30)
        wait_for("a Warning for the new cause", lambda: any(crash in m for m in _warnings(cluster, "trouble")))

        _report(cluster, "trouble", {"waiting": {"reason": "ImagePullBackOff",
                                                 "message": 'Back-off pulling image "irods-ingest-worker:0.1.0"'}})
        wait_for("the image pull", lambda: 'ImagePullBackOff: Back-off pulling image "irods-ingest-worker:0.1.0"'
                 in _workers_condition(cluster, "trouble").get("message", ""), timeout=30)
        assert len(_warnings(cluster, "trouble")) == 3, _warnings(cluster, "trouble")
