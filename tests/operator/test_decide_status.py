"""decide(): what the status shows (pure, fake clock).

The end of a run (its Event, once, and its counts); status.phase and Ready as kstatus, Argo CD and Flux read them; the workers' readiness and the
cause when none gets ready (WorkersNotReady); edits that wait for the next run; the failures
ConfigMap, written when what it shows changes.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from irods_ingest_operator.builders.failures import (
    MAX_FAILURES_BYTES,
    MAX_FAILURES_SHOWN,
    build_failures_config_map,
    failures_signature,
)
from irods_ingest_operator.builders.text import format_time
from irods_ingest_operator.constants import (
    MEMO_FAILURES_WRITTEN,
    MEMO_REPORTED_RUN,
    MEMO_STARTED_ONCE,
    EventReason,
    EventType,
)
from irods_ingest_operator.reconcile import decide
from irods_ingest_operator.reconcile.intents import (
    AnnounceRunEnd,
    RememberPosted,
    ReportMetrics,
    WriteFailures,
)
from irods_ingest_operator.reconcile.workers import worker_trouble
from irods_ingest_operator.refs import ContainerFacts, DeploymentState, PodFacts
from testsupport.decide_kit import (
    JOB,
    OURS,
    POLICY,
    T0,
    FakeClock,
    condition,
    events,
    make_run,
    make_spec,
    observe,
    of_type,
)

DONE_ONCE = {MEMO_STARTED_ONCE: "r1"}
STARTING = DeploymentState(replicas=1, ready=0, controller_uid=JOB.uid)


def health(decision: Any) -> tuple[str, str, str, str]:
    """(Ready, its reason, Reconciling, Stalled) as statuses."""
    ready = condition(decision, "Ready")
    return ready["status"], ready["reason"], condition(decision, "Reconciling")["status"], condition(decision, "Stalled")["status"]


# --- Status and the end of a run --------------------------------------------------------------
def test_a_finished_run_is_announced_once() -> None:
    done = make_run("done", "r4", started=T0.timestamp() - 60, ended=T0.timestamp(), files_discovered=3, files_synced=3)
    decision = decide(observe(run=done, memo={MEMO_STARTED_ONCE: "r4"}), POLICY, T0)
    [announce] = of_type(decision.report, AnnounceRunEnd)
    assert (announce.run_id, announce.succeeded) == ("r4", True)
    assert announce.message.startswith("run r4 done: 3 synced")
    again = decide(observe(run=done, memo={MEMO_STARTED_ONCE: "r4", MEMO_REPORTED_RUN: "r4"}), POLICY, T0)
    assert not of_type(again.report, AnnounceRunEnd)


def test_the_status_of_a_finished_run() -> None:
    done = make_run("done", "r4", started=T0.timestamp() - 60, ended=T0.timestamp(), files_discovered=4,
                    files_synced=3, files_failed=1, tasks_failed=1)
    failures = ({"path": "/data/x", "reason": "denied", "attempts": 3, "time": T0.timestamp()},)
    decision = decide(observe(run=done, failures=failures, memo={MEMO_STARTED_ONCE: "r4"}), POLICY, T0)
    status = decision.status
    assert status["run"] == {"id": "r4", "startTime": "2024-05-01T11:59:00Z",
                             "completionTime": "2024-05-01T12:00:00Z", "outcome": "Succeeded"}
    assert status["lastSyncTime"] == "2024-05-01T12:00:00Z" and status["progress"] == "4/4 files (100%)"
    assert status["recentFailures"] == [{"path": "/data/x", "reason": "denied", "attempts": 3,
                                         "time": "2024-05-01T12:00:00Z"}]
    assert condition(decision, "Succeeded")["status"] == "True" and condition(decision, "Ready")["reason"] == "Reconciled"
    [metrics] = of_type(decision.report, ReportMetrics)
    assert metrics.last_sync == T0 and not metrics.active


def test_a_run_the_workers_failed_on_the_handler_says_handler_error() -> None:
    failed = make_run("failed", ended=T0.timestamp(), error="event handler: operation() raised RuntimeError")
    history = ({"state": "done", "ended": str((T0 - timedelta(days=1)).timestamp())},)
    decision = decide(observe(run=failed, history=history, memo={MEMO_STARTED_ONCE: "r1"}), POLICY, T0)
    assert condition(decision, "Failed")["reason"] == "HandlerError"
    assert decision.status["lastSyncTime"] == "2024-04-30T12:00:00Z"  # the last run that succeeded
    [announce] = of_type(decision.report, AnnounceRunEnd)
    assert not announce.succeeded


# --- phase and Ready --------------------------------------------------------------------------
@pytest.mark.parametrize(("state", "suspend", "schedule", "phase", "expected"), [
    ("none", False, "0 3 * * *", "Waiting", ("True", "WaitingForSchedule", "False", "False")),
    ("running", False, None, "Running", ("False", "RunInProgress", "True", "False")),
    ("done", False, None, "Succeeded", ("True", "Reconciled", "False", "False")),
    ("done", False, "0 3 * * *", "Succeeded", ("True", "WaitingForSchedule", "False", "False")),
    ("failed", False, None, "Failed", ("False", "RunFailed", "False", "True")),
    ("stopped", False, None, "Stopped", ("True", "Reconciled", "False", "False")),
    ("running", True, None, "Suspended", ("True", "Suspended", "False", "False")),
    ("failed", True, None, "Suspended", ("True", "Suspended", "False", "False")),
])  # fmt: skip
def test_phase_and_ready(state: str, suspend: bool, schedule: str | None, phase: str,
                         expected: tuple[str, str, str, str]) -> None:
    spec = make_spec(suspend=suspend, **({"schedule": schedule} if schedule else {}))
    run = make_run(state, queued=1 if state == "running" else 0, ended=T0.timestamp() if state != "running" else None)
    decision = decide(observe(spec, run, memo=DONE_ONCE, created=T0 - timedelta(minutes=1)), POLICY, T0)
    assert decision.status["phase"] == phase
    assert health(decision) == expected


def test_a_failed_run_is_not_ready_and_stalled_until_the_next_one() -> None:
    """A wrong iRODS password fails the run: READY False (kstatus Failed, Argo CD Degraded), never True."""
    failed = make_run("failed", ended=T0.timestamp(), error="iRODS refused the login: CAT_INVALID_AUTHENTICATION")
    decision = decide(observe(run=failed, memo=DONE_ONCE), POLICY, T0)
    ready, stalled = condition(decision, "Ready"), condition(decision, "Stalled")
    assert (ready["status"], ready["reason"]) == ("False", "RunFailed")
    assert stalled["message"] == ready["message"] and "CAT_INVALID_AUTHENTICATION" in stalled["message"]
    assert condition(decision, "Failed")["status"] == "True"


def test_a_run_stopped_on_request_is_no_failure() -> None:
    stopped = make_run("stopped", ended=T0.timestamp(), error="stopped by request")
    decision = decide(observe(run=stopped, memo=DONE_ONCE), POLICY, T0)
    succeeded, failed = condition(decision, "Succeeded"), condition(decision, "Failed")
    assert (succeeded["status"], failed["status"]) == ("False", "False")
    assert succeeded["reason"] == failed["reason"] == "RunStopped"
    assert decision.status["run"]["outcome"] == "Stopped"


def test_a_handler_named_by_its_hash_is_named_by_its_configmap() -> None:
    spec = make_spec(handler={"configMapRef": {"name": "tagging"}})
    error = "event handler failed to load: SyntaxError: 'return' outside function (<event handler 64c8e03c0a1b2c3d>, line 3)"
    decision = decide(observe(spec, make_run("failed", ended=T0.timestamp(), error=error), memo=DONE_ONCE), POLICY, T0)
    failed = condition(decision, "Failed")
    assert failed["reason"] == "HandlerError"
    assert "(event handler (ConfigMap science/tagging, key 'handler.py'), line 3)" in failed["message"]
    assert "64c8e03c" not in failed["message"]


# --- Workers that never get ready -------------------------------------------------------------
def not_ready_for(seconds: float) -> dict[str, Any]:
    since = format_time(T0 - timedelta(seconds=seconds))
    return {"conditions": [{"type": "WorkersReady", "status": "False", "reason": "WorkersStarting",
                            "lastTransitionTime": since, "observedGeneration": 2}]}


MISSING_SECRET = PodFacts("archive-worker-7d9-x2", containers=(ContainerFacts(
    "worker", waiting_reason="CreateContainerConfigError", waiting_message='secret "irods-conn" not found'),))


def test_workers_starting_are_no_trouble_within_the_grace_period() -> None:
    clock = FakeClock()
    first = decide(observe(run=make_run("running", queued=1), deployment=STARTING, memo=DONE_ONCE), POLICY, clock.now)
    workers = condition(first, "WorkersReady")
    assert (workers["status"], workers["reason"]) == ("False", "WorkersStarting")
    later = decide(observe(run=make_run("running", queued=1), deployment=STARTING, memo=DONE_ONCE,
                           old_status=first.status, pods=(MISSING_SECRET,)), POLICY, clock.advance(59))
    assert condition(later, "WorkersReady")["reason"] == "WorkersStarting" and not events(later)
    assert condition(later, "Reconciling")["status"] == "True"


def test_workers_not_ready_past_the_grace_period_stall_the_job_naming_the_cause_once() -> None:
    facts = observe(run=make_run("running", queued=1), deployment=STARTING, memo=DONE_ONCE,
                    old_status=not_ready_for(61), pods=(MISSING_SECRET,))
    decision = decide(facts, POLICY, T0)
    cause = 'CreateContainerConfigError: secret "irods-conn" not found'
    message = f"0/1 workers ready for more than 60s: {cause} (pod archive-worker-7d9-x2)"
    workers = condition(decision, "WorkersReady")
    assert (workers["status"], workers["reason"], workers["message"]) == ("False", "WorkersNotReady", message)
    assert workers["lastTransitionTime"] == format_time(T0 - timedelta(seconds=61))  # since when
    assert health(decision) == ("False", "WorkersNotReady", "False", "True")
    assert condition(decision, "Stalled")["message"] == message and decision.status["phase"] == "Running"
    assert events(decision) == [(EventReason.WORKERS_NOT_READY, message, EventType.WARNING)]
    assert RememberPosted("workers", cause) in decision.report
    again = decide(facts.with_changes(posted={"workers": cause}, old_status=decision.status), POLICY, T0)
    assert not events(again)


def test_ready_workers_clear_the_trouble() -> None:
    decision = decide(observe(run=make_run("running", queued=1), deployment=OURS, memo=DONE_ONCE,
                              old_status=not_ready_for(300), posted={"workers": "x"}), POLICY, T0)
    assert condition(decision, "WorkersReady")["status"] == "True" and RememberPosted("workers", "") in decision.report
    idle = decide(observe(run=make_run("done", ended=T0.timestamp()), memo=DONE_ONCE), POLICY, T0)
    assert condition(idle, "WorkersReady")["reason"] == "NoWorkersNeeded"


def crash(**facts: Any) -> PodFacts:
    return PodFacts("p1", phase="Running", scheduled=True,
                    containers=(ContainerFacts("worker", waiting_reason="CrashLoopBackOff", restarts=4, **facts),))


@pytest.mark.parametrize(("deployment_failure", "pods", "pods_error", "cause"), [
    ('FailedCreate: pods "w-1" is forbidden: exceeded quota', (MISSING_SECRET,), "",
     'FailedCreate: pods "w-1" is forbidden: exceeded quota'),
    ("", (crash(last_log_line="cannot reach Redis", last_message="old\ntermination"),), "",
     "CrashLoopBackOff: cannot reach Redis"),
    ("", (crash(last_message="starting\nirods-ingest: bad URL\n"),), "", "CrashLoopBackOff: irods-ingest: bad URL"),
    ("", (crash(last_exit_code=137, last_reason="OOMKilled"),), "", "CrashLoopBackOff: exited with code 137 (OOMKilled)"),
    ("", (PodFacts("p1", containers=(ContainerFacts("worker", waiting_reason="ImagePullBackOff",
                                                    waiting_message='Back-off pulling image "w:1"'),)),), "",
     'ImagePullBackOff: Back-off pulling image "w:1"'),
    ("", (PodFacts("p1", unschedulable="0/3 nodes are available: 3 Insufficient memory."),), "",
     "Unschedulable: 0/3 nodes are available: 3 Insufficient memory."),
    ("", (PodFacts("p1"),), "", "Pending: not scheduled to a node yet"),
    ("", (PodFacts("p1", scheduled=True, containers=(ContainerFacts("worker", waiting_reason="ContainerCreating"),)),),
     "", "ContainerCreating: still starting (see the pod's Events)"),
    ("", (), "", "no worker pod exists (see the Events of the Deployment's ReplicaSet)"),
    ("", (), "listing pods: HTTP 403 Forbidden", "the worker pods could not be read: listing pods: HTTP 403 Forbidden"),
])  # fmt: skip
def test_the_most_telling_cause(deployment_failure: str, pods: tuple[PodFacts, ...], pods_error: str, cause: str) -> None:
    deployment = DeploymentState(replicas=1, ready=0, controller_uid=JOB.uid, failure=deployment_failure)
    assert worker_trouble(deployment, pods, pods_error=pods_error).cause == cause


def test_a_suspended_job_wants_no_workers_so_none_can_be_missing() -> None:
    decision = decide(observe(make_spec(suspend=True), make_run("running", queued=2), deployment=DeploymentState(0, 0, JOB.uid),
                              memo={**DONE_ONCE, "op:suspended": "r1"}, old_status=not_ready_for(300)), POLICY, T0)
    assert condition(decision, "WorkersReady")["status"] == "True" and condition(decision, "Stalled")["status"] == "False"


# --- Edits that wait for the next run ---------------------------------------------------------
def test_an_edit_during_a_run_says_which_fields_wait_for_the_next_run() -> None:
    spec = make_spec(destination={"collection": "/tempZone/home/alice/next", "connectionSecret": {"name": "irods-conn"}},
                     workers={"minReplicas": 0, "maxReplicas": 8, "concurrency": 2, "filesPerTask": 10})
    running_config = observe().config
    facts = observe(spec, make_run("running", queued=2), memo=DONE_ONCE, running_config=running_config, deployment=OURS)
    decision = decide(facts, POLICY, T0)
    pending = "spec.destination.collection, spec.workers.filesPerTask changed: apply from the next run"
    assert condition(decision, "Reconciling")["message"] == f"run r1 in progress; {pending}"  # not maxReplicas: at once
    assert events(decision) == [(EventReason.SPEC_CHANGE_PENDING, f"run r1 goes on as it started; {pending}",
                                 EventType.NORMAL)]
    assert not events(decide(facts.with_changes(posted={"pending": pending}), POLICY, T0))
    ended = decide(observe(spec, make_run("done", ended=T0.timestamp()), memo={**DONE_ONCE, "op:reported_run": "r1"},
                           posted={"pending": pending}), POLICY, T0)
    assert RememberPosted("pending", "") in ended.report and not events(ended)


def test_no_pending_edit_when_the_run_has_the_current_config() -> None:
    facts = observe(run=make_run("running", queued=2), memo=DONE_ONCE, deployment=OURS)
    decision = decide(facts.with_changes(running_config=facts.config), POLICY, T0)
    assert condition(decision, "Reconciling")["message"] == "run r1 in progress" and not events(decision)


# --- The failures ConfigMap ---------------------------------------------------------------------
def record(i: int, **extra: Any) -> dict[str, Any]:
    return {"path": f"/data/f{i}", "reason": f"denied {i}", "attempts": 2, "time": T0.timestamp() - i, "kind": "files",
            **extra}


def test_the_failures_configmap_is_written_when_what_it_shows_changes() -> None:
    failed = make_run("failed", ended=T0.timestamp(), files_failed=2)
    records = (record(0), record(1, outcome="skipped"))
    decision = decide(observe(run=failed, memo=DONE_ONCE, failure_count=2, all_failures=records), POLICY, T0)
    [write] = of_type(decision.report, WriteFailures)
    assert write.signature == failures_signature(failed, 2) == "r1|failed|2|0"
    manifest = write.manifest
    assert manifest["metadata"]["name"] == "archive-failures" and manifest["metadata"]["ownerReferences"][0]["uid"] == JOB.uid
    assert manifest["data"]["run"] == "r1" and manifest["data"]["state"] == "failed"
    assert (manifest["data"]["recorded"], manifest["data"]["notRecorded"]) == ("2", "0")
    assert json.loads(manifest["data"]["failures.json"]) == [
        {"path": "/data/f0", "reason": "denied 0", "attempts": 2, "time": "2024-05-01T12:00:00Z", "kind": "files"},
        {"path": "/data/f1", "reason": "denied 1", "attempts": 2, "time": "2024-05-01T11:59:59Z", "kind": "files",
         "outcome": "skipped"}]
    unchanged = {**DONE_ONCE, MEMO_FAILURES_WRITTEN: write.signature}
    assert not of_type(decide(observe(run=failed, memo=unchanged, failure_count=2), POLICY, T0).report, WriteFailures)


def test_the_failures_configmap_is_bounded() -> None:
    run = make_run("failed", ended=T0.timestamp(), failures_dropped=7)
    many = [record(i) for i in range(MAX_FAILURES_SHOWN + 100)]
    data = build_failures_config_map(JOB, run, many, 1000)["data"]
    assert len(json.loads(data["failures.json"])) == MAX_FAILURES_SHOWN and data["notRecorded"] == "7"
    huge = [record(i, path="/data/" + "é" * 5000, reason="ü" * 5000) for i in range(MAX_FAILURES_SHOWN)]
    data = build_failures_config_map(JOB, run, huge, MAX_FAILURES_SHOWN)["data"]
    entries = json.loads(data["failures.json"])
    assert len(data["failures.json"].encode()) <= MAX_FAILURES_BYTES < 1024 * 1024
    assert len(entries[0]["path"]) <= 1024 and len(entries[0]["reason"]) <= 512 and len(entries) < MAX_FAILURES_SHOWN
    assert data["recorded"] == str(MAX_FAILURES_SHOWN)  # the array shows fewer: the reader can tell


def test_a_paused_run_says_which_edits_wait_for_the_next_run() -> None:
    spec = make_spec(suspend=True, operation="PutSync")
    facts = observe(spec, make_run("running", queued=2), memo={**DONE_ONCE, "op:suspended": "r1"},
                    running_config=observe().config)
    decision = decide(facts, POLICY, T0)
    assert condition(decision, "Suspended")["message"].endswith("spec.operation changed: applies from the next run")
    assert condition(decision, "Ready")["message"] == condition(decision, "Suspended")["message"]
