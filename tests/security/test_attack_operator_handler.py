"""Attacker: a tenant who may edit ConfigMaps and SyncJobs in their own namespace.

The handler module of a SyncJob is that tenant's code. The operator holds rights the tenant
does not (its Redis password, Deployments in every watched namespace), so it must never
import, execute or call that code: it checks the module's syntax only, and everything that
needs the handler to run happens in the tenant's own workers, whose failures come back
through the run's status.

Before the fix, every reconcile pass compiled the handler inside the operator and called
``operation()``, ``delete_mode()`` and ``character_map()``: a handler that raised with
``os.environ`` in its message put the operator's Redis URL, password included, into the
SyncJob's status and an Event; a module that looped forever hung the operator's handler
thread for that SyncJob.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from irods_ingest.actions import prepare
from irods_ingest.config import DeleteMode, JobConfig, Operation
from irods_ingest.jobstate import HandlerSources, RunState
from irods_ingest.store.connection import connect
from irods_ingest_testkit.processes import stop_process
from irods_ingest_testkit.redis_server import RedisServer
from testsupport.ingest import Ingest
from testsupport.kube import ControlPlane
from testsupport.kube_fixtures import UNPRIVILEGED_USER
from testsupport.operator_fixtures import Cluster, OperatorProcess, job_spec, wait_for

REDIS_PASSWORD = "operator-Redis-" + secrets.token_hex(6)

LEAKING_HANDLER = """
import os, sys
with open({marker!r}, "a") as out:  # proof of execution, and by which process
    out.write(f"{{os.getpid()}} {{sys.argv!r}}\\n")

class event_handler:
    @staticmethod
    def operation(session, meta, **options):
        raise RuntimeError("leak: " + repr(dict(os.environ)))

    @staticmethod
    def delete_mode(meta):
        raise RuntimeError("leak: " + repr(dict(os.environ)))

    @staticmethod
    def character_map():
        raise RuntimeError("leak: " + repr(dict(os.environ)))
"""

LOOPING_HANDLER = """
while True:  # the module never finishes loading
    pass

class event_handler:
    pass
"""


@pytest.fixture
def tenant(kube_control_plane: ControlPlane, kube_api: k8s.ApiClient, kube_namespace: str) -> Iterator[Cluster]:
    """The attacker's own identity: may edit ConfigMaps and SyncJobs in this namespace only."""
    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(kube_namespace, {
        "metadata": {"name": "tenant"},
        "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update", "patch"]},
            {"apiGroups": ["ingest.irods.dev"], "resources": ["syncjobs"], "verbs": ["get", "list", "create", "patch"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
        ],
    })
    rbac.create_namespaced_role_binding(kube_namespace, {
        "metadata": {"name": "tenant"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": UNPRIVILEGED_USER}],
    })
    with kube_control_plane.api_client(UNPRIVILEGED_USER) as api:
        cluster = Cluster(api, kube_namespace)
        # The authorizer reads bindings from an informer cache: await the grant.
        wait_for("the tenant's RBAC grant", lambda: _can_list_syncjobs(cluster))
        yield cluster


def _can_list_syncjobs(cluster: Cluster) -> bool:
    try:
        cluster.objects.list_namespaced_custom_object("ingest.irods.dev", "v1alpha1", cluster.namespace, "syncjobs")
    except k8s.ApiException:
        return False
    return True


@pytest.fixture
def guarded_operator(kube_control_plane: ControlPlane, kube_namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator, holding a Redis password the tenant must never see."""
    with RedisServer(data_dir=tmp_path / "redis", password=REDIS_PASSWORD) as server:
        env = kube_control_plane.operator_env(kube_namespace, server.url)
        env["IRODS_INGEST_OPERATOR_LOG_LEVEL"] = "DEBUG"
        process = OperatorProcess(env, tmp_path / "operator.log")
        try:
            yield process
        finally:
            stop_process(process.process)


def _handler_configmap(tenant: Cluster, name: str, source: str) -> None:
    tenant.core.create_namespaced_config_map(tenant.namespace, {"metadata": {"name": name}, "data": {"handler.py": source}})


def _everything_the_tenant_reads(tenant: Cluster, name: str) -> str:
    events = tenant.core.list_namespaced_event(tenant.namespace, field_selector=f"involvedObject.name={name}").items
    return json.dumps(tenant.get(name)) + "\n".join(f"{e.reason}: {e.message}" for e in events)


@pytest.mark.kube
@pytest.mark.redis
def test_the_operator_never_runs_a_handler_that_leaks_its_environment(
    tenant: Cluster, guarded_operator: OperatorProcess, host_dir: Path, tmp_path: Path
) -> None:
    """Tried: a handler whose module body records who ran it and whose operation(),
    delete_mode() and character_map() raise with os.environ. Got before: the operator ran
    it, and its Redis URL with the password landed in status and an Event. Now: the module
    is never run by the operator (no marker), the run starts (its workers would apply the
    handler), and nothing the tenant can read holds the password."""
    marker = tmp_path / "executed-by"
    _handler_configmap(tenant, "leaky", LEAKING_HANDLER.format(marker=str(marker)))
    source = host_dir / "source"
    source.mkdir()
    tenant.create_syncjob("leaky", job_spec(source, "/tempZone/home/rods/leaky",
                                            handler={"configMapRef": {"name": "leaky"}}))
    wait_for("the operator's verdict", lambda: any((tenant.condition("leaky", kind) or {}).get("status") == "True"
                                                   for kind in ("Reconciling", "Stalled")))
    seen = _everything_the_tenant_reads(tenant, "leaky")
    assert REDIS_PASSWORD not in seen, "the operator's Redis password reached the tenant"
    assert not marker.exists(), f"the operator executed tenant code: {marker.read_text()}"
    assert REDIS_PASSWORD not in guarded_operator.log.read_text(errors="replace")
    assert (tenant.condition("leaky", "Reconciling") or {}).get("status") == "True"  # the run started
    assert guarded_operator.poll() is None


@pytest.mark.kube
@pytest.mark.redis
def test_a_handler_that_never_finishes_loading_cannot_hang_the_operator(
    tenant: Cluster, guarded_operator: OperatorProcess, host_dir: Path
) -> None:
    """Tried: a handler module that loops forever at import. Got before: the operator's
    handler thread for the SyncJob hung in exec(), and the job never got a status. Now: the
    operator only parses it; the run starts."""
    _handler_configmap(tenant, "looping", LOOPING_HANDLER)
    source = host_dir / "source"
    source.mkdir()
    tenant.create_syncjob("looping", job_spec(source, "/tempZone/home/rods/looping",
                                              handler={"configMapRef": {"name": "looping"}}))
    wait_for("the run to start", lambda: (tenant.condition("looping", "Reconciling") or {}).get("status") == "True",
             timeout=30)


@pytest.mark.kube
@pytest.mark.redis
def test_a_broken_handler_is_refused_by_its_syntax_naming_the_configmap(
    tenant: Cluster, guarded_operator: OperatorProcess, host_dir: Path
) -> None:
    """Tried: a handler with a syntax error, and one without ``class event_handler``. Now:
    Stalled with reason HandlerError, the message naming the ConfigMap, the key and the line,
    without the operator running a line of it."""
    _handler_configmap(tenant, "typo", "class event_handler(:\n    pass\n")
    _handler_configmap(tenant, "empty", "import os\nx = 1\n")
    source = host_dir / "source"
    source.mkdir()
    for name in ("typo", "empty"):
        tenant.create_syncjob(name, job_spec(source, f"/tempZone/home/rods/{name}", handler={"configMapRef": {"name": name}}))
    for name, expected in (("typo", "syntax error (line 1"), ("empty", "defines no class named event_handler")):
        stalled = wait_for(f"{name} stalled", lambda name=name: (tenant.condition(name, "Stalled") or {}).get("status") == "True"
                           and tenant.condition(name, "Stalled"))
        assert stalled["reason"] == "HandlerError"
        assert f"ConfigMap {tenant.namespace}/{name}, key 'handler.py'" in stalled["message"]
        assert expected in stalled["message"], stalled["message"]


# --- What the workers do instead: the tenant's code runs there, and failures reach the run ---------

@pytest.mark.redis
@pytest.mark.irods
def test_a_handler_the_operator_accepted_fails_the_run_in_the_workers(ingest: Ingest, tmp_path: Path) -> None:
    """The operator's path (syntax only) for the leaking handler: the workers run it, the run
    fails with the handler's error, and no file is touched."""
    marker = tmp_path / "executed-by"
    ingest.write("a.txt", "a")
    status = _run_operator_style(ingest, LEAKING_HANDLER.format(marker=str(marker)))
    assert status.state == "failed"
    assert "raised RuntimeError" in status.error and "event handler" in status.error
    assert status.counters["files_synced"] == 0
    assert marker.exists()  # ran where tenant code belongs: in a worker
    assert not ingest.objects()


@pytest.mark.redis
@pytest.mark.irods
def test_a_handler_answer_the_matrix_forbids_fails_the_run_before_any_file(ingest: Ingest) -> None:
    """A handler whose operation() says Put while the job says Trash: the incumbent's matrix
    refuses it. The CLI refuses at start; on the operator's path the workers refuse, failing
    the run with the reason, before any file is synced or deleted."""
    ingest.write("a.txt", "a")
    handler = (
        "from irods_capability_automated_ingest.utils import Operation\n"
        "class event_handler:\n"
        "    @staticmethod\n"
        "    def operation(session, meta, **options):\n"
        "        return Operation.PUT\n"
    )
    status = _run_operator_style(ingest, handler, operation=Operation.PUT_SYNC, delete_mode=DeleteMode.TRASH)
    assert status.state == "failed"
    assert "incompatible" in status.error and "Put" in status.error
    assert status.counters["files_synced"] == 0 and not ingest.objects()


def _run_operator_style(ingest: Ingest, handler: str, **changes: Any) -> Any:
    from irods_ingest.worker import WorkerOptions, run_worker

    client = connect(ingest.redis_url)
    runs = RunState(client, ingest.job)
    config = prepare(ingest.config(**changes) if changes else ingest.config(), handler, HandlerSources(client, ingest.job),
                     run_handler=False)
    assert isinstance(config, JobConfig)
    runs.start(config, force=True)
    run_worker(WorkerOptions(jobs=[ingest.job], redis_url=ingest.redis_url, exit_when_idle=True,
                             irods_settings=ingest.settings), install_signals=False)
    return runs.status()
