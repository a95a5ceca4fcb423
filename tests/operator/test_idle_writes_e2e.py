"""Issue 18, item 4: when nothing changes, the operator writes nothing.

Settled SyncJobs of every idle kind -- runs that Succeeded (one with an event handler), a
`schedule` whose next slot is far away, suspended ones -- are watched over a window of many
reconcile passes (the timer runs every 0.5 s here), and the operator's writes are counted
without mocks:

* to the API server: the kube-apiserver's audit log of the operator's own identity
  (`AUDITED_OPERATOR_USER`), every create/update/patch/delete it sent, also a patch that would
  change nothing (which no resourceVersion shows); and, besides, every resourceVersion of the
  namespace's SyncJobs, Deployments, ConfigMaps and Secrets and the Events stay as they were;
* to Redis: `INFO commandstats` deltas of the commands flagged `write` (scripts and ACL users
  included). The operator is the only Redis client then: no worker runs (the test checks).

Both must be zero, while the reads show that the passes did happen in the window.

Real kube-apiserver and controller-manager, real redis-server, the iRODS test server, the
operator as its own process and the local kubelet stand-in running the workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kubernetes import client as k8s

from irods_ingest_testkit.processes import stop_process
from testsupport.call_counts import AuditLog, RedisCommandCounter, by_verb_and_resource
from testsupport.irods_fixtures import IrodsEnv
from testsupport.kube import ControlPlane
from testsupport.kube_fixtures import AUDITED_OPERATOR_USER
from testsupport.kubelet import LocalKubelet
from testsupport.operator_fixtures import DIAGNOSTICS, Cluster, OperatorProcess, job_spec, make_tree, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]

RECONCILE_INTERVAL = 0.5
SETTLE_SECONDS = 3.0  # passes after the last job settled: a write that follows settling shows before the window
WINDOW_SECONDS = 6.0  # about 12 timer passes of each job
FAR_AWAY = "0 0 1 1 *"  # yearly, on 1 January: far from any test run (but on that day's first minute)
HANDLER = "from irods_capability_automated_ingest.core import Core\n\nclass event_handler(Core):\n    pass\n"


@pytest.fixture
def audited_operator(kube_control_plane: ControlPlane, kube_namespace: str, redis_url: str,
                     tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator, acting as the audited identity (as the operator_process fixture otherwise)."""
    log = tmp_path / "operator.log"
    env = kube_control_plane.operator_env(kube_namespace, redis_url, user=AUDITED_OPERATOR_USER)
    env["IRODS_INGEST_OPERATOR_RECONCILE_INTERVAL"] = str(RECONCILE_INTERVAL)
    process = OperatorProcess(env, log)
    DIAGNOSTICS.append(lambda: "operator log (tail):\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
    yield process
    DIAGNOSTICS.clear()
    stop_process(process.process)


def _phase(cluster: Cluster, name: str) -> str:
    return str((cluster.get(name).get("status") or {}).get("phase", ""))


def _versions(cluster: Cluster) -> dict[str, str]:
    """The resourceVersion of everything the operator writes in the namespace (Events: their count)."""
    ns = cluster.namespace
    items: list[tuple[str, Any]] = [
        *(("syncjob", i) for i in cluster.objects.list_namespaced_custom_object(
            "ingest.irods.dev", "v1alpha1", ns, "syncjobs")["items"]),
    ]
    versions = {f"{kind}/{item['metadata']['name']}": item["metadata"]["resourceVersion"] for kind, item in items}
    for kind, listing in (("deployment", cluster.apps.list_namespaced_deployment(ns)),
                          ("configmap", cluster.core.list_namespaced_config_map(ns)),
                          ("secret", cluster.core.list_namespaced_secret(ns))):
        versions.update({f"{kind}/{o.metadata.name}": o.metadata.resource_version for o in listing.items})
    versions["events"] = str(len(cluster.core.list_namespaced_event(ns).items))
    return versions


def test_settled_jobs_cost_reads_only(
    cluster: Cluster, audited_operator: OperatorProcess, kubelet: LocalKubelet, kube_control_plane: ControlPlane,
    irods_env: IrodsEnv, redis_url: str, host_dir: Path,
) -> None:
    collection = f"{irods_env.home}/idle_{cluster.namespace}"
    source = host_dir / "source"
    make_tree(source, 6)
    cluster.core.create_namespaced_config_map(cluster.namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="noop-handler"), data={"handler.py": HANDLER}))
    expected = {
        "done-a": "Succeeded", "done-b": "Succeeded", "done-handler": "Succeeded",
        "yearly-a": "Waiting", "yearly-b": "Waiting",
        "paused": "Suspended", "paused-yearly": "Suspended",
    }
    extra: dict[str, dict[str, Any]] = {
        "done-handler": {"handler": {"configMapRef": {"name": "noop-handler"}}},
        "yearly-a": {"schedule": FAR_AWAY}, "yearly-b": {"schedule": FAR_AWAY},
        "paused": {"suspend": True}, "paused-yearly": {"suspend": True, "schedule": FAR_AWAY},
    }
    for name in expected:
        cluster.create_syncjob(name, job_spec(source, f"{collection}/{name}", **extra.get(name, {})))

    def settled() -> bool:
        return all(_phase(cluster, name) == phase for name, phase in expected.items()) and all(
            (d.spec.replicas or 0) == 0 for d in cluster.apps.list_namespaced_deployment(cluster.namespace).items
        ) and len(cluster.apps.list_namespaced_deployment(cluster.namespace).items) == len(expected) and not any(
            kubelet.running(f"{name}-worker") for name in expected)

    wait_for("every job settled, no worker running", settled, timeout=120)
    time.sleep(SETTLE_SECONDS)

    audit = AuditLog(kube_control_plane.audit_log_path)
    assert audit.path.exists(), "the apiserver writes no audit log: the count below would prove nothing"
    redis_client = redis.Redis.from_url(redis_url)
    commands = RedisCommandCounter(redis_client)
    before = _versions(cluster)
    audit.mark()
    commands.mark()
    time.sleep(WINDOW_SECONDS)
    redis_delta = commands.delta()
    calls = audit.calls(user=AUDITED_OPERATOR_USER)
    after = _versions(cluster)

    assert not any(kubelet.running(f"{name}-worker") for name in expected), "a worker ran: Redis is not the operator's alone"
    api_writes = [call.describe() for call in calls if call.write]
    redis_writes = commands.writes(redis_delta)
    assert api_writes == [], f"the operator wrote to the API server with nothing changed: {api_writes}"
    assert redis_writes == {}, f"the operator wrote to Redis with nothing changed: {redis_writes} (all: {redis_delta})"
    assert after == before, "an object changed while nothing changed"

    # The passes did run in the window: each one reads every job's run from Redis, and the
    # Deployments from the API server (a job's status is not re-read: kopf holds it from its watch).
    passes = WINDOW_SECONDS / RECONCILE_INTERVAL
    assert redis_delta.get("hgetall", 0) >= len(expected) * passes / 3, redis_delta
    reads = by_verb_and_resource(calls)
    assert reads.get("get deployments", 0) >= len(expected) * passes / 3, reads
