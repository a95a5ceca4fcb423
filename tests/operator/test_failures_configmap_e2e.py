"""Issue 19, finding 8 (the operator's side) on the real API server: a job's failures, readable
with namespace RBAC only, in the bounded ConfigMap ``<job>-failures`` that the SyncJob owns.

The ``kubectl ingest failures`` plugin reads exactly these keys: ``run``, ``state``,
``failures.json`` (newest first, at most 500 records of {path, reason, attempts, time, kind,
outcome?}), ``recorded`` and ``notRecorded``. A ConfigMap of that name made by anybody else
is never taken over.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from testsupport.irods_fixtures import IrodsEnv
from testsupport.kubelet import LocalKubelet
from testsupport.operator_fixtures import Cluster, OperatorProcess, job_spec, make_tree, wait_for
from testsupport.syncjob_views import events_of

pytestmark = [pytest.mark.kube, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]

REFUSING = """
from irods_capability_automated_ingest.core import Core

class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        if meta["path"].endswith(("file3.dat", "file5.dat")):
            raise RuntimeError("refused: " + meta["path"].rsplit("/", 1)[-1])
"""


def _config_map(cluster: Cluster, name: str) -> Any:
    try:
        return cluster.core.read_namespaced_config_map(name, cluster.namespace)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_a_runs_failures_are_kept_in_a_configmap_the_syncjob_owns(
    cluster: Cluster, operator_process: OperatorProcess, kubelet: LocalKubelet, irods_session: Callable[..., Any],
    irods_env: IrodsEnv, host_dir: Path,
) -> None:
    source = host_dir / "source"
    make_tree(source, 8)
    collection = f"{irods_env.home}/failcm_{cluster.namespace}"
    cluster.core.create_namespaced_config_map(cluster.namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="refusing"), data={"handler.py": REFUSING}))
    # Somebody else's ConfigMap under the name the second job would write.
    cluster.core.create_namespaced_config_map(cluster.namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="taken-failures"), data={"mine": "do not touch"}))
    for name in ("flaky", "taken"):
        cluster.create_syncjob(name, job_spec(source, f"{collection}_{name}", operation="Put",
                                              handler={"configMapRef": {"name": "refusing"}}))

    for name in ("flaky", "taken"):
        wait_for(f"{name}'s run to fail", lambda name=name: (cluster.condition(name, "Failed") or {}).get("status") == "True",
                 timeout=90)
    status = cluster.get("flaky")["status"]
    written = wait_for("the failures ConfigMap of the failed run", lambda: (
        (cm := _config_map(cluster, "flaky-failures")) is not None and (cm.data or {}).get("state") == "failed" and cm))
    owners = written.metadata.owner_references or []
    assert [(o.kind, o.name, o.uid, o.controller) for o in owners] == [
        ("SyncJob", "flaky", cluster.get("flaky")["metadata"]["uid"], True)]
    data = written.data
    assert set(data) == {"run", "state", "failures.json", "recorded", "notRecorded"}
    assert data["run"] == status["run"]["id"] and (data["recorded"], data["notRecorded"]) == ("2", "0")
    records = json.loads(data["failures.json"])
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in records) == ["file3.dat", "file5.dat"]
    assert all(set(r) >= {"path", "reason", "attempts", "time", "kind"} and r["kind"] == "files" for r in records)
    assert all("RuntimeError: refused: file" in r["reason"] for r in records)
    assert [r["time"] for r in records] == sorted((r["time"] for r in records), reverse=True)  # newest first

    version = written.metadata.resource_version
    time.sleep(2)  # passes with nothing new: no write
    assert _config_map(cluster, "flaky-failures").metadata.resource_version == version

    theirs = _config_map(cluster, "taken-failures")
    assert theirs.data == {"mine": "do not touch"} and not theirs.metadata.owner_references
    wait_for("a Warning saying the name is taken", lambda: any(
        e.reason == "NameConflict" and e.type == "Warning" and "taken-failures" in e.message
        for e in events_of(cluster.api, cluster.namespace, "taken")))
    irods_session().collections.remove(f"{collection}_flaky", recurse=True, force=True)
    irods_session().collections.remove(f"{collection}_taken", recurse=True, force=True)
