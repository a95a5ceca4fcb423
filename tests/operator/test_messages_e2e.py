"""Issue 19, finding 5 on the real API server: every operator-side error names the spec field,
the object and the fix; an Event is posted once per cause (not once per racing pass); and with
LOG_FORMAT=text every operator line still carries the job, the reason and the message.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testsupport.kube import ControlPlane
from testsupport.operator_fixtures import Cluster, job_spec, wait_for
from testsupport.syncjob_views import events_of, operator_with

pytestmark = [pytest.mark.kube, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]


def _stalled(cluster: Cluster, name: str) -> dict[str, str]:
    return wait_for(f"{name} Stalled", lambda: (cluster.condition(name, "Stalled") or {}).get("status") == "True"
                    and cluster.condition(name, "Stalled"), timeout=30)


def test_refusals_name_the_field_the_object_and_the_fix_once(
    kube_control_plane: ControlPlane, cluster: Cluster, redis_url: str, host_dir: Path, tmp_path: Path,
) -> None:
    log = tmp_path / "operator.log"
    source = host_dir / "source"
    source.mkdir()
    with operator_with(kube_control_plane, cluster.namespace, redis_url, log, LOG_FORMAT="text"):
        cluster.create_syncjob("tagging", job_spec(source, "/tempZone/home/rods/tagging",
                                                   handler={"configMapRef": {"name": "tagging-handler"}}))
        bad_path = job_spec(source, "/tempZone/home/rods/scratch")
        bad_path["source"] = {"path": "/tmp/data"}
        cluster.create_syncjob("scratch", bad_path)
        cluster.create_syncjob("matrix", job_spec(source, "/tempZone/home/rods/matrix", operation="Put",
                                                  deleteMode="Trash"))

        missing = _stalled(cluster, "tagging")
        assert missing["reason"] == "HandlerNotFound"
        assert missing["message"] == (f"spec.handler.configMapRef: ConfigMap {cluster.namespace}/tagging-handler "
                                      "not found (create it, or fix the name)")
        tmp = _stalled(cluster, "scratch")["message"]
        assert tmp.startswith("spec.source.path: ") and "inside /tmp, which worker pods reserve" in tmp, tmp
        assert "normalised" not in tmp, tmp
        matrix = _stalled(cluster, "matrix")["message"]
        assert matrix.startswith("spec.deleteMode: ") and "Put" in matrix

        time.sleep(4)  # several passes: timer and change handlers, each with the same cause
        for name, reason in (("tagging", "HandlerError"), ("scratch", "InvalidSpec"), ("matrix", "InvalidSpec")):
            posted = [e for e in events_of(cluster.api, cluster.namespace, name) if e.reason == reason]
            assert len(posted) == 1 and posted[0].count == 1, f"{name}: {posted}"

        # A new cause is a new Event: the key that is missing now.
        cluster.core.create_namespaced_config_map(cluster.namespace, {
            "metadata": {"name": "tagging-handler"}, "data": {"tagging.py": "class event_handler: pass\n"}})
        key = wait_for("the missing key named", lambda: "has no key 'handler.py'" in
                       (cluster.condition("tagging", "Stalled") or {}).get("message", "")
                       and cluster.condition("tagging", "Stalled"), timeout=30)
        assert key["message"].startswith("spec.handler.configMapRef.key: ConfigMap ")
        assert "tagging.py" in key["message"]  # the keys it does have
        wait_for("its Event", lambda: len([e for e in events_of(cluster.api, cluster.namespace, "tagging")
                                           if e.reason == "HandlerError"]) == 2)

        lines = [line for line in log.read_text(errors="replace").splitlines()
                 if f"job={cluster.namespace}/tagging" in line and "reason=HandlerError" in line]
        assert lines and "spec.handler.configMapRef" in lines[0], log.read_text(errors="replace")[-3000:]
