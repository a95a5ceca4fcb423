"""Issue 19, finding 7 on the real API server: a run never starts before its handler is in place.

Reported: ``retryFailed`` started the retry run with the previous run's stored handler, and the
edited one reached the run only at the next reconcile pass, about one interval later. Here the
operator's interval is long (20 s), so that a retry run started with the stale handler would
be done before the next pass could hand it the new one: the handler of the failed run refuses
a file, the edited one accepts it, and the ConfigMap is edited just before ``retryFailed``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from testsupport.irods_fixtures import IrodsEnv
from testsupport.kube import ControlPlane
from testsupport.kubelet import LocalKubelet
from testsupport.operator_fixtures import Cluster, job_spec, make_tree, wait_for
from testsupport.syncjob_views import operator_with

pytestmark = [pytest.mark.kube, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]

HANDLER = """
from irods_capability_automated_ingest.core import Core

class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        if {refuse} and meta["path"].endswith("file3.dat"):
            raise RuntimeError("refused by handler v1")
"""


def test_a_retry_run_starts_with_the_handler_the_configmap_holds(
    kube_control_plane: ControlPlane, cluster: Cluster, kubelet: LocalKubelet, redis_url: str,
    irods_session: Callable[..., Any], irods_env: IrodsEnv, host_dir: Path, tmp_path: Path,
) -> None:
    source = host_dir / "source"
    make_tree(source, 6)
    collection = f"{irods_env.home}/retryh_{cluster.namespace}"
    cluster.core.create_namespaced_config_map(cluster.namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="handler"), data={"handler.py": HANDLER.format(refuse=True)}))
    with operator_with(kube_control_plane, cluster.namespace, redis_url, tmp_path / "operator.log",
                       RECONCILE_INTERVAL="20"):
        cluster.create_syncjob("retried", job_spec(source, collection, operation="Put",
                                                   handler={"configMapRef": {"name": "handler"}}))
        wait_for("the first run to fail", lambda: (cluster.condition("retried", "Failed") or {}).get("status") == "True",
                 timeout=90)
        first = cluster.get("retried")["status"]
        assert first["files"]["failed"] == 1 and "refused by handler v1" in first["recentFailures"][0]["reason"]

        cluster.core.patch_namespaced_config_map("handler", cluster.namespace,
                                                 {"data": {"handler.py": HANDLER.format(refuse=False)}})
        cluster.patch_spec("retried", {"retryFailed": "after-the-fix"})
        wait_for("the retry run to end", lambda: cluster.get("retried")["status"]["run"]["id"] != first["run"]["id"]
                 and cluster.get("retried")["status"]["run"].get("outcome"), timeout=90)
        status = cluster.get("retried")["status"]
        assert status["run"]["outcome"] == "Succeeded", status.get("recentFailures")
        assert (status["files"]["discovered"], status["files"]["synced"]) == (1, 1)
    irods_session().collections.remove(collection, recurse=True, force=True)
