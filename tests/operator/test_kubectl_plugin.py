"""Issue 19, finding 8: `kubectl ingest` for a user with namespace RBAC only.

Tried before: as a namespace user, list a job's failed files and retry them. Got: only
`irods-ingest failures`/`retry`, which need the Redis credentials such a user must not have.
Now: `kubectl ingest failures|retry|status JOB`, run here by the real kubectl (plugin discovery
on PATH) against the real API server, as a user whose Role holds get/list/patch on syncjobs
and get on configmaps — nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from irods_ingest.actions import RunStatus
from irods_ingest.jobstate import COUNTERS
from irods_ingest_operator.builders.failures import build_failures_config_map
from irods_ingest_operator.constants import GROUP, PLURAL, VERSION
from irods_ingest_operator.plugin.cli import _parser
from irods_ingest_operator.plugin.kubectl import Kubectl
from irods_ingest_operator.plugin.views import FailureReport, failures_table, phase_of, status_lines
from irods_ingest_operator.refs import JobRef
from testsupport.kube import ControlPlane
from testsupport.kube_fixtures import UNPRIVILEGED_USER
from testsupport.operator_fixtures import Cluster, job_spec, wait_for
from testsupport.require import service_unavailable

RECORDS = [
    {"path": "/data/src/b/broken.dat", "reason": "permission denied", "attempts": 3, "time": 1767225600.0,
     "kind": "files"},
    {"path": "/data/src/a/gone.dat", "reason": "vanished before it was synced", "attempts": 1, "time": 1767225500.0,
     "kind": "files"},
    {"path": "/data/src/a/fifo", "reason": "not a regular file", "attempts": 1, "time": 1767225400.0,
     "kind": "files", "outcome": "skipped"},
]


# ------------------------------------------------------------------------- pure parts
def test_the_table_names_path_reason_attempts_time_and_what_was_not_recorded() -> None:
    report = FailureReport.from_config_map({"data": {"run": "r1", "state": "done", "recorded": "5",
                                                     "notRecorded": "2", "failures.json": json.dumps(RECORDS)}})
    text = failures_table("lab/ingest", report, current_run="r2")
    lines = text.splitlines()
    assert lines[0] == "syncjob lab/ingest: run r1 (done): 5 failures recorded (the report keeps the newest 3)."
    assert "2 more failed but were not recorded" in text and "kubectl ingest retry" in text
    assert "current run is r2" in text
    header = next(line for line in lines if line.startswith("PATH"))
    assert header.split() == ["PATH", "REASON", "ATTEMPTS", "TIME"]
    assert any("/data/src/b/broken.dat" in line and "permission denied" in line and "2026-01-01T00:00:00Z" in line
               for line in lines)
    assert any("(skipped) not a regular file" in line for line in lines)


def test_a_report_edited_into_nonsense_is_read_without_crashing() -> None:
    report = FailureReport.from_config_map({"data": {"failures.json": "{not json", "recorded": "many"}})
    assert (report.records, report.recorded, report.not_recorded) == ([], 0, 0)
    assert "no failures recorded" in failures_table("lab/x", report, None)
    assert FailureReport.from_config_map({"data": {"failures.json": '[1, {"path": "/p"}]'}}).records == [{"path": "/p"}]


def test_status_reads_the_phase_or_the_conditions() -> None:
    body: dict[str, Any] = {"metadata": {"name": "ingest", "generation": 2}, "spec": {"schedule": "0 * * * *"},
                            "status": {"observedGeneration": 1, "progress": "10/20+ files (50%)",
                                       "files": {"discovered": 20, "synced": 9, "failed": 1},
                                       "workers": {"desired": 2, "ready": 1},
                                       "run": {"id": "r1", "startTime": "2026-01-01T00:00:00Z"},
                                       "conditions": [{"type": "Reconciling", "status": "True",
                                                       "reason": "RunInProgress", "message": "run r1 in progress"}]}}
    assert phase_of(body) == "Running"
    text = status_lines("lab/ingest", body)
    for expected in ("syncjob lab/ingest: Running — run r1", "progress: 10/20+ files (50%)", "failed 1",
                     "workers: 2 desired, 1 ready", "schedule 0 * * * *", "spec generation 2 not observed",
                     "Reconciling=True RunInProgress: run r1 in progress", "kubectl ingest failures ingest"):
        assert expected in text, text
    body["status"]["phase"] = "Suspended"
    assert phase_of(body) == "Suspended"


def test_connection_flags_go_before_or_after_the_command_and_on_to_kubectl() -> None:
    parser = _parser()
    for argv in (["-n", "lab", "failures", "job", "--context=c"], ["failures", "job", "--namespace", "lab", "--context", "c"]):
        args = parser.parse_args(argv)
        assert (args.job, args.namespace, args.context, args.output) == ("job", "lab", "c", "table")
    assert Kubectl(namespace="lab", kubeconfig="/k").flags() == ["--kubeconfig=/k", "--namespace=lab"]
    with pytest.raises(SystemExit):
        parser.parse_args(["failures", "job", "-o", "yaml"])


# ------------------------------------------------------------------------- on the API server
@pytest.fixture
def namespace_user(kube_control_plane: ControlPlane, kube_api: k8s.ApiClient, kube_namespace: str,
                   tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig of a user who may get/list/patch syncjobs and get configmaps in this namespace
    only (its current context's namespace is this one)."""
    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(kube_namespace, {
        "metadata": {"name": "syncjob-user"},
        "rules": [
            {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "patch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
        ],
    })
    rbac.create_namespaced_role_binding(kube_namespace, {
        "metadata": {"name": "syncjob-user"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "syncjob-user"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": UNPRIVILEGED_USER}],
    })
    kubeconfig = kube_control_plane.write_kubeconfig(tmp_path / "user.kubeconfig", UNPRIVILEGED_USER,
                                                     namespace=kube_namespace)
    with kube_control_plane.api_client(UNPRIVILEGED_USER) as api:
        user = Cluster(api, kube_namespace)
        wait_for("the user's RBAC grant", lambda: _can_get_syncjobs(user))
    yield kubeconfig


def _can_get_syncjobs(user: Cluster) -> bool:
    try:
        user.objects.list_namespaced_custom_object(GROUP, VERSION, user.namespace, PLURAL)
    except k8s.ApiException:
        return False
    return True


def _kubectl(kubeconfig: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The user's kubectl, which finds `kubectl-ingest` on PATH as any kubectl plugin."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        service_unavailable("kubectl", "not on PATH", "install kubectl (the machine's own; see DESIGN.md)")
    scripts = Path(sys.executable).parent
    assert (scripts / "kubectl-ingest").exists(), "the kubectl-ingest script is missing: pip install -e . again"
    env = {**os.environ, "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}", "KUBECONFIG": str(kubeconfig),
           "HOME": str(home)}  # kubectl's discovery cache goes to $HOME/.kube
    return subprocess.run([kubectl, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def _run_status(run_id: str) -> RunStatus:
    counters = dict.fromkeys(COUNTERS, 0) | {"files_discovered": 20, "files_synced": 17, "files_failed": 2,
                                             "failures_dropped": 2}
    return RunStatus(job="x", run_id=run_id, state="done", started=1767225000.0, ended=1767225700.0,
                     counters=counters, queued=0, delayed=0, in_flight=0, error="")


@pytest.mark.kube
def test_a_namespace_user_lists_failures_retries_and_reads_status_with_kubectl(
    kube_api: k8s.ApiClient, kube_namespace: str, namespace_user: Path, tmp_path: Path
) -> None:
    admin = Cluster(kube_api, kube_namespace)
    job = admin.create_syncjob("ingest", job_spec(Path("/data/src"), "/tempZone/home/rods/x"))
    admin.objects.patch_namespaced_custom_object_status(GROUP, VERSION, kube_namespace, PLURAL, "ingest", {"status": {
        "observedGeneration": 1, "phase": "Failed", "progress": "19/20 files (95%)",
        "files": {"discovered": 20, "synced": 17, "unchanged": 0, "failed": 2}, "failuresNotRecorded": 2,
        "run": {"id": "run-1", "outcome": "Failed"},
        "conditions": [{"type": "Failed", "status": "True", "reason": "RunFailed", "message": "2 files failed",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    home = tmp_path / "home"
    home.mkdir()

    # Before the operator wrote any report: a clear message, not an error.
    early = _kubectl(namespace_user, home, "ingest", "failures", "ingest")
    assert early.returncode == 0, early.stderr
    assert "No failure report for syncjob" in early.stdout and "ingest-failures" in early.stdout

    # The report as the operator writes it (builders/failures.py), owned by the SyncJob.
    config_map = build_failures_config_map(JobRef.from_body(job), _run_status("run-1"), RECORDS, recorded=3)
    admin.core.create_namespaced_config_map(kube_namespace, config_map)

    table = _kubectl(namespace_user, home, "ingest", "failures", "ingest")
    assert table.returncode == 0, table.stderr
    assert f"syncjob {kube_namespace}/ingest: run run-1 (done): 3 failures recorded" in table.stdout
    assert "2 more failed but were not recorded" in table.stdout
    assert all(record["path"] in table.stdout for record in RECORDS)
    assert "permission denied" in table.stdout and "PATH" in table.stdout

    as_json = _kubectl(namespace_user, home, "ingest", "failures", "ingest", "-o", "json")
    report = json.loads(as_json.stdout)
    assert (report["run"], report["recorded"], report["notRecorded"]) == ("run-1", 3, 2)
    assert [f["path"] for f in report["failures"]] == [r["path"] for r in RECORDS]
    paths = _kubectl(namespace_user, home, "ingest", "failures", "ingest", "-o=paths", f"--kubeconfig={namespace_user}",
                     "-n", kube_namespace)
    assert paths.stdout.splitlines() == [r["path"] for r in RECORDS]

    retried = _kubectl(namespace_user, home, "ingest", "retry", "ingest")
    assert retried.returncode == 0, retried.stderr
    token = admin.get("ingest")["spec"]["retryFailed"]
    assert datetime.fromisoformat(token.replace("Z", "+00:00")).tzinfo is not None  # an RFC 3339 time
    assert f"spec.retryFailed set to {token!r}" in retried.stdout and "runs the whole job" in retried.stdout
    again = _kubectl(namespace_user, home, "ingest", "retry", "ingest", "--token", token)
    assert again.returncode == 1 and "acts only on a new value" in again.stderr

    status = _kubectl(namespace_user, home, "ingest", "status", "ingest")
    assert status.returncode == 0, status.stderr
    assert f"syncjob {kube_namespace}/ingest: Failed — run run-1" in status.stdout
    assert "progress: 19/20 files (95%)" in status.stdout and "Failed=True RunFailed: 2 files failed" in status.stdout

    # The user really holds namespace RBAC only: no Secrets, nothing in other namespaces.
    secrets = _kubectl(namespace_user, home, "get", "secrets")
    assert secrets.returncode != 0 and "Forbidden" in secrets.stderr
    elsewhere = _kubectl(namespace_user, home, "ingest", "failures", "ingest", "-n", "default")
    assert elsewhere.returncode == 1 and "Forbidden" in elsewhere.stderr


@pytest.mark.kube
def test_an_unknown_job_is_named_in_the_answer(kube_namespace: str, namespace_user: Path, tmp_path: Path) -> None:
    answer = _kubectl(namespace_user, tmp_path, "ingest", "status", "nope")
    assert answer.returncode == 1
    assert "syncjob nope not found in the current namespace" in answer.stderr


REFUSING_WHILE_MARKED = """
import os
from irods_capability_automated_ingest.core import Core

MARKER = {marker!r}

class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        if os.path.exists(MARKER) and meta["path"].endswith(("file3.dat", "file5.dat")):
            raise RuntimeError("refused: " + meta["path"].rsplit("/", 1)[-1])
"""


@pytest.mark.kube
@pytest.mark.redis
@pytest.mark.irods
@pytest.mark.slow
def test_with_the_operator_a_namespace_user_sees_the_failures_and_their_retry_succeed(
    cluster: Cluster, operator_process: Any, kubelet: Any, irods_session: Any, irods_env: Any, host_dir: Path,
    namespace_user: Path, tmp_path: Path,
) -> None:
    """The whole loop with the operator writing the report: a run fails two files, the user lists
    them, the cause goes away, the user retries, the retry redoes exactly those two."""
    from testsupport.operator_fixtures import make_tree

    source = host_dir / "source"
    make_tree(source, 8)
    marker = host_dir / "refuse"
    marker.write_text("")
    collection = f"{irods_env.home}/plugin_{cluster.namespace}"
    cluster.core.create_namespaced_config_map(cluster.namespace, k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="refusing"), data={"handler.py": REFUSING_WHILE_MARKED.format(marker=str(marker))}))
    cluster.create_syncjob("flaky", job_spec(source, collection, operation="Put",
                                             handler={"configMapRef": {"name": "refusing"}}))
    home = tmp_path / "home"
    home.mkdir()
    try:
        listed = wait_for("the failures in the report, through the plugin", lambda: (
            (done := _kubectl(namespace_user, home, "ingest", "failures", "flaky", "-o", "json")).returncode == 0
            and done.stdout.strip() and json.loads(done.stdout)["state"] == "failed" and json.loads(done.stdout)),
            timeout=120)
        assert sorted(f["path"].rsplit("/", 1)[-1] for f in listed["failures"]) == ["file3.dat", "file5.dat"]
        assert all("refused: file" in f["reason"] for f in listed["failures"]), listed
        failed_run = listed["run"]

        marker.unlink()  # the cause is fixed
        retried = _kubectl(namespace_user, home, "ingest", "retry", "flaky")
        assert retried.returncode == 0, retried.stderr

        def retry_succeeded() -> bool:
            run = (cluster.get("flaky").get("status") or {}).get("run") or {}
            return run.get("id") not in (None, failed_run) and run.get("outcome") == "Succeeded"

        wait_for("the retry run to succeed", retry_succeeded, timeout=120)
        files = cluster.get("flaky")["status"]["files"]
        assert (files["synced"], files["failed"]) == (2, 0)  # exactly the two that failed, nothing else
        after = wait_for("the report of the retry run", lambda: (
            (done := _kubectl(namespace_user, home, "ingest", "failures", "flaky")).returncode == 0
            and "no failures recorded" in done.stdout and done.stdout))
        assert failed_run not in after
        status = _kubectl(namespace_user, home, "ingest", "status", "flaky")
        assert status.returncode == 0 and "Succeeded" in status.stdout
    finally:
        session = irods_session()
        if session.collections.exists(collection):
            session.collections.remove(collection, recurse=True, force=True)
