"""decide() for a job that cannot run (Stalled), and one Event per cause; a fake clock, no I/O.

Refusals (InvalidSpec, NotAllowed, HandlerNotFound, HandlerError, NameConflict) name the spec
field, the object and the fix; an Event is posted when a cause appears, once, whatever the passes
that race on a creation; an edit that makes the spec invalid never hides the run that goes on.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from irods_ingest.errors import ConfigError, ConfigProblem
from irods_ingest_operator.constants import MEMO_STARTED_ONCE, EventReason, EventType
from irods_ingest_operator.reconcile import Observed, decide
from irods_ingest_operator.reconcile.intents import (
    AnnounceRunEnd,
    ApplyDeployment,
    Decision,
    RememberPosted,
    ScaleDeployment,
    StartRun,
    WriteFailures,
)
from irods_ingest_operator.refs import DeploymentState
from irods_ingest_operator.spec import SpecProblem, spec_problems
from testsupport.decide_kit import JOB, OURS, POLICY, T0, condition, events, make_run, observe, of_type

# --- Refusals: Stalled ------------------------------------------------------------------------
PROBLEM = SpecProblem("spec.deleteMode", "Trash cannot be used with operation Put", "use DoNotDelete")


def assert_stalled(decision: Decision, reason: str, event: EventReason, message: str, *, run: bool = False) -> None:
    if not run:  # no run: nothing more to show
        assert set(decision.status) == {"observedGeneration", "conditions", "phase"}
    assert decision.status["phase"] == "Invalid"
    stalled = condition(decision, "Stalled")
    assert (stalled["status"], stalled["reason"], stalled["message"]) == ("True", reason, message)
    assert condition(decision, "Ready")["status"] == "False"
    assert events(decision) == [(event, message, EventType.WARNING)]
    assert not of_type(decision.intents, StartRun) and not of_type(decision.intents, ApplyDeployment)


def test_an_invalid_spec_is_stalled_naming_every_field() -> None:
    decision = decide(Observed(job=JOB, generation=3, created=T0, spec_problems=(PROBLEM,), run=make_run()), POLICY, T0)
    assert_stalled(decision, "InvalidSpec", EventReason.INVALID_SPEC, str(PROBLEM))
    assert decision.status["observedGeneration"] == 3


def test_the_same_stalled_message_posts_no_second_event() -> None:
    first = decide(Observed(job=JOB, generation=3, created=T0, spec_problems=(PROBLEM,), run=make_run()), POLICY, T0)
    assert of_type(first.changes, RememberPosted) == [RememberPosted("refusal", str(PROBLEM))]
    again = decide(Observed(job=JOB, generation=3, created=T0, spec_problems=(PROBLEM,), run=make_run(),
                            old_status=first.status, posted={"refusal": str(PROBLEM)}), POLICY, T0 + timedelta(seconds=5))
    assert not events(again)
    assert condition(again, "Stalled")["lastTransitionTime"] == "2024-05-01T12:00:00Z"


def test_racing_passes_on_create_post_one_event() -> None:
    """Finding 5: kopf's create handler and its first timer tick both read a body without status;
    the second pass finds the cause in the operator's memory (written by the first) and posts nothing."""
    stale = Observed(job=JOB, generation=1, created=T0, spec_problems=(PROBLEM,), run=make_run())
    assert events(decide(stale, POLICY, T0))
    assert not events(decide(stale.with_changes(posted={"refusal": str(PROBLEM)}), POLICY, T0))


def test_a_restarted_operator_trusts_the_status_it_finds() -> None:
    first = decide(Observed(job=JOB, generation=3, created=T0, spec_problems=(PROBLEM,), run=make_run()), POLICY, T0)
    after_restart = decide(Observed(job=JOB, generation=3, created=T0, spec_problems=(PROBLEM,), run=make_run(),
                                    old_status=first.status), POLICY, T0)
    assert not events(after_restart) and of_type(after_restart.changes, RememberPosted)


def test_a_cause_that_comes_back_is_news_again() -> None:
    fixed = decide(observe(posted={"refusal": str(PROBLEM)}), POLICY, T0)
    assert RememberPosted("refusal", "") in fixed.report
    broken_again = decide(Observed(job=JOB, generation=3, created=T0, spec_problems=(PROBLEM,), run=make_run(),
                                   posted={"refusal": ""}), POLICY, T0)
    assert events(broken_again) == [(EventReason.INVALID_SPEC, str(PROBLEM), EventType.WARNING)]


def test_what_the_admin_does_not_allow_is_stalled_as_not_allowed() -> None:
    refused = SpecProblem("spec.source.volume", "volume type hostPath is not allowed on this cluster", "use a PVC")
    assert_stalled(decide(observe(refused=(refused,)), POLICY, T0), "NotAllowed", EventReason.INVALID_SPEC, str(refused))


def test_a_missing_handler_configmap_is_stalled() -> None:
    missing = "spec.handler.configMapRef: ConfigMap science/handler not found (create it, or fix the name)"
    assert_stalled(decide(observe(handler_missing=missing), POLICY, T0), "HandlerNotFound", EventReason.HANDLER_ERROR,
                   missing)


def test_a_handler_that_does_not_parse_is_a_handler_error() -> None:
    origin = "event handler (ConfigMap science/handler, key 'handler.py')"
    error = ConfigError([ConfigProblem("event_handler", f"{origin} has a syntax error (line 3): invalid syntax",
                                       "fix the handler module")])
    assert_stalled(decide(observe(config_error=error), POLICY, T0), "HandlerError", EventReason.HANDLER_ERROR,
                   f"spec.handler.configMapRef: {origin} has a syntax error (line 3): invalid syntax "
                   "(fix the module in that ConfigMap)")


def test_a_config_the_engine_refuses_is_an_invalid_spec() -> None:
    error = ConfigError([ConfigProblem("target_collection", "must be absolute")])
    assert_stalled(decide(observe(config_error=error), POLICY, T0), "InvalidSpec", EventReason.INVALID_SPEC,
                   "spec.destination.collection: must be absolute")


def test_a_deployment_of_another_is_a_name_conflict_and_is_never_scaled() -> None:
    theirs = DeploymentState(replicas=3, ready=3, controller_uid="someone-else")
    decision = decide(observe(deployment=theirs, run=None), POLICY, T0)
    assert_stalled(decision, "NameConflict", EventReason.INVALID_SPEC,
                   "Deployment science/archive-worker already exists and is not this SyncJob's workers; "
                   "rename the SyncJob (or remove that Deployment)")
    assert not of_type(decision.intents, ScaleDeployment)


def test_a_secret_of_another_is_a_name_conflict() -> None:
    taken = "Secret science/archive-worker-redis already exists and was not made by the operator for this SyncJob"
    decision = decide(observe(secret_conflict=taken, deployment=OURS, run=make_run("done")), POLICY, T0)
    assert_stalled(decision, "NameConflict", EventReason.INVALID_SPEC, taken, run=True)
    assert of_type(decision.report, ScaleDeployment) == [ScaleDeployment(0)]  # its own idle workers stop
    assert decision.status["run"] == {"id": "r1"}  # the last run stays visible


def test_a_stalled_job_keeps_an_active_runs_workers_and_stops_idle_ones() -> None:
    refused = (PROBLEM,)
    active = decide(observe(refused=refused, deployment=OURS, run=make_run("running", queued=2)), POLICY, T0)
    assert not of_type(active.intents, ScaleDeployment)  # the run goes on with its stored, valid config
    unknown = decide(observe(refused=refused, deployment=OURS, run=None), POLICY, T0)  # Redis did not answer
    assert of_type(unknown.intents, ScaleDeployment) == [ScaleDeployment(0)]


def test_a_stalled_jobs_deployment_at_zero_is_not_scaled_again() -> None:
    """Each pass of a stalled, idle job would otherwise patch the scale to what it is (issue 18)."""
    at_zero = DeploymentState(replicas=0, ready=0, controller_uid=JOB.uid)
    decision = decide(observe(refused=(PROBLEM,), deployment=at_zero, run=make_run("done")), POLICY, T0)
    assert not of_type(decision.intents, ScaleDeployment)


def test_an_invalid_edit_never_hides_the_run_that_goes_on() -> None:
    """Finding 3: the new generation is Stalled, the run keeps reporting (progress, counts, workers)."""
    running = make_run("running", "r5", queued=3, started=T0.timestamp() - 30, files_discovered=10, files_synced=4)
    facts = observe(refused=(PROBLEM,), deployment=DeploymentState(2, 2, JOB.uid), run=running, generation=3,
                    memo={MEMO_STARTED_ONCE: "r5"})
    decision = decide(facts, POLICY, T0)
    status = decision.status
    assert status["observedGeneration"] == 3 and status["phase"] == "Invalid"
    assert condition(decision, "Stalled")["status"] == "True" and condition(decision, "Reconciling")["status"] == "False"
    assert status["run"]["id"] == "r5" and status["files"]["synced"] == 4 and status["progress"] == "4/10+ files (40%)"
    assert status["workers"] == {"desired": 2, "ready": 2}
    assert not of_type(decision.intents, ScaleDeployment)  # its workers go on


def test_a_run_that_ends_while_the_spec_is_invalid_is_announced_and_shown() -> None:
    done = make_run("done", "r5", started=T0.timestamp() - 60, ended=T0.timestamp(), files_discovered=10,
                    files_synced=10)
    facts = observe(refused=(PROBLEM,), deployment=DeploymentState(2, 2, JOB.uid), run=done, generation=3,
                    memo={MEMO_STARTED_ONCE: "r5"}, failure_count=0, all_failures=())
    decision = decide(facts, POLICY, T0)
    [announce] = of_type(decision.report, AnnounceRunEnd)
    assert announce.run_id == "r5" and announce.succeeded
    assert decision.status["lastSyncTime"] == "2024-05-01T12:00:00Z"
    assert condition(decision, "Succeeded")["status"] == "True" and condition(decision, "Stalled")["status"] == "True"
    assert of_type(decision.report, ScaleDeployment) == [ScaleDeployment(0)]  # the run ended: its workers stop
    assert of_type(decision.report, WriteFailures)  # its (empty) failures published


@pytest.mark.parametrize(("path", "says", "fix"), [
    ("/tmp/data", "is inside /tmp, which worker pods reserve: it is the pod's size-limited scratch space",
     "mount the source elsewhere, such as /data"),
    ("/etc/irods-ingest", "is /etc/irods-ingest, which worker pods reserve: the iRODS connection Secret is mounted there",
     "mount the source elsewhere"),
    ("/etc", "contains /etc/irods-ingest", "mount the source elsewhere"),
    ("/data/../x", "must be normalised", "write it as '/x'"),
])  # fmt: skip
def test_a_refused_source_path_says_why_and_the_fix(path: str, says: str, fix: str) -> None:
    """Finding 5: a source under /tmp is no badly written path: the message says /tmp is reserved."""
    [problem] = spec_problems({"source": {"path": path}, "destination": {
        "collection": "/tempZone/home/alice", "connectionSecret": {"name": "c"}}})
    assert problem.field == "spec.source.path" and says in problem.message and problem.fix.startswith(fix)
    assert "use an absolute, normalised directory path" not in str(problem)
