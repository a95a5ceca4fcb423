"""decide(): the whole reconcile decision as a pure function, driven by a fake clock.

Every branch of a pass -- runs (creation, schedule, runNow, retryFailed, suspend), the handler
mirror, scaling and its stabilisation window, the workers' credential, refusals (InvalidSpec,
NotAllowed, HandlerNotFound, HandlerError, NameConflict), the status and deletion -- decided
from plain values: no Redis, no API server, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from irods_ingest.actions import RunStatus
from irods_ingest.errors import ConfigError, ConfigProblem
from irods_ingest_operator.builders.scaling import ScaleRecommendation
from irods_ingest_operator.constants import (
    CREDENTIAL_VERSION_ANNOTATION,
    ENV_REDIS_URL,
    MEMO_REPORTED_RUN,
    MEMO_RETRY_FAILED,
    MEMO_RUN_NOW,
    MEMO_SCHEDULE_SLOT,
    MEMO_STARTED_ONCE,
    EventReason,
    EventType,
)
from irods_ingest_operator.jobconfig import to_job_config
from irods_ingest_operator.reconcile import (
    CleanupGiveUp,
    CleanupRetry,
    CredentialFacts,
    Observed,
    Policy,
    decide,
    decide_cleanup_failure,
    decide_deletion,
)
from irods_ingest_operator.reconcile.decide import due_slot
from irods_ingest_operator.reconcile.intents import (
    AnnounceRunEnd,
    ApplyDeployment,
    Decision,
    DeleteJob,
    ForgetJob,
    ForgetScaleHistory,
    Intent,
    Note,
    PostEvent,
    Remember,
    RememberScaleHistory,
    ReportMetrics,
    RestoreCredential,
    RetryFailed,
    RotateCredential,
    ScaleDeployment,
    StartRun,
    StopRun,
    UseHandler,
)
from irods_ingest_operator.refs import DeploymentState, JobRef, RedisEndpoint
from irods_ingest_operator.spec import SpecProblem, SyncJobSpec, parse_spec

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
JOB = JobRef("science", "archive", "0b9c3a8e-1111-4222-8333-944455556666")
SHARED_REDIS = RedisEndpoint(url="redis://redis.ingest:6379/0")
POLICY = Policy(
    worker_image="irods-ingest-worker:0.1.0",
    worker_redis=SHARED_REDIS,
    scale_down_window=timedelta(seconds=120),
    credential_rotation=timedelta(days=7),
)
COUNTER_NAMES = (
    "files_discovered", "files_synced", "files_unchanged", "files_skipped", "files_excluded", "files_failed",
    "files_deleted", "collections_deleted", "bytes_discovered", "bytes_synced", "tasks_enqueued", "tasks_done",
    "tasks_failed", "failures_dropped",
)  # fmt: skip
OURS = DeploymentState(replicas=1, ready=1, controller_uid=JOB.uid)
IntentT = TypeVar("IntentT")


@dataclass
class FakeClock:
    """The pass's ``now``: decide() reads no clock, so time is whatever the test says."""

    now: datetime = T0

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def make_spec(**overrides: Any) -> SyncJobSpec:
    raw: dict[str, Any] = {
        "source": {"path": "/data", "volume": {"persistentVolumeClaim": {"claimName": "archive-pvc"}}},
        "destination": {"collection": "/tempZone/home/alice", "connectionSecret": {"name": "irods-conn"}},
        "workers": {"minReplicas": 0, "maxReplicas": 4, "concurrency": 2},
    }
    raw.update(overrides)
    return parse_spec(raw)


def make_run(state: str = "none", run_id: str | None = None, *, queued: int = 0, delayed: int = 0, in_flight: int = 0,
             error: str = "", started: float | None = None, ended: float | None = None, **counters: int) -> RunStatus:
    values = dict.fromkeys(COUNTER_NAMES, 0)
    values.update(counters)
    if run_id is None and state != "none":
        run_id = "r1"
    return RunStatus(job=JOB.key, run_id=run_id, state=state, started=started, ended=ended, counters=values,
                     queued=queued, delayed=delayed, in_flight=in_flight, error=error)


def credential(*, rotated: datetime = T0 - timedelta(days=1), digests: tuple[str, ...] = ("d1",),
               user_exists: bool = True, version: int = 1) -> CredentialFacts:
    return CredentialFacts(version=version, digests=digests, rotated=rotated.timestamp(),
                           tag=f"{version}.{int(rotated.timestamp())}", user_exists=user_exists)


def observe(spec: SyncJobSpec | None = None, run: RunStatus | None = None, **changes: Any) -> Observed:
    """What a pass would have observed: a valid, unsuspended job with no run, by default."""
    spec = spec or make_spec()
    config = to_job_config(spec, namespace=JOB.namespace, name=JOB.name).with_changes(handler_hash="h-new")
    values: dict[str, Any] = {
        "job": JOB, "generation": 2, "created": T0 - timedelta(hours=1), "spec": spec, "config": config,
        "run": run or make_run(), "memo": {}, "deployment": None, "credential": None,
    }
    values.update(changes)
    return Observed(**values)


def of_type(intents: tuple[Intent, ...], kind: type[IntentT]) -> list[IntentT]:
    return [intent for intent in intents if isinstance(intent, kind)]


def events(decision: Decision) -> list[tuple[EventReason, str, EventType]]:
    return [(e.reason, e.message, e.type) for e in of_type(decision.intents, PostEvent)]


def applied(decision: Decision) -> ApplyDeployment:
    [apply] = of_type(decision.report, ApplyDeployment)
    return apply


def condition(decision: Decision, kind: str) -> dict[str, Any]:
    return next(c for c in decision.status["conditions"] if c["type"] == kind)


@dataclass
class Job:
    """A job across passes: what the executor would have remembered, fed to the next decision."""

    clock: FakeClock = field(default_factory=FakeClock)
    history: tuple[ScaleRecommendation, ...] = ()
    replicas: int = 0

    def decide(self, run: RunStatus, spec: SyncJobSpec | None = None) -> int:
        deployment = DeploymentState(self.replicas, self.replicas, JOB.uid)
        decision = decide(observe(spec, run, deployment=deployment, scale_history=self.history, memo={MEMO_STARTED_ONCE: "r1"}),
                          POLICY, self.clock.now)
        for intent in decision.report:
            if isinstance(intent, RememberScaleHistory):
                self.history = intent.history
            elif isinstance(intent, ForgetScaleHistory):
                self.history = ()
        self.replicas = applied(decision).replicas
        return self.replicas


# --- Runs -------------------------------------------------------------------------------------
def test_a_new_job_without_schedule_starts_its_first_run() -> None:
    decision = decide(observe(), POLICY, T0)
    [start] = of_type(decision.changes, StartRun)
    assert (start.force, start.why) == (False, "created")
    assert start.config.handler_hash == "h-new"


def test_a_job_without_schedule_runs_once() -> None:
    done = make_run("done", ended=T0.timestamp())
    assert not decide(observe(run=done, memo={MEMO_STARTED_ONCE: "r1"}), POLICY, T0).changes
    # A run that exists (started by the CLI, say) counts as the first one too.
    assert not of_type(decide(observe(run=done), POLICY, T0).changes, StartRun)


def test_a_schedule_fires_its_due_slot_and_remembers_it() -> None:
    spec = make_spec(schedule="*/5 * * * *")
    decision = decide(observe(spec, memo={MEMO_SCHEDULE_SLOT: "2024-05-01T11:55:00+00:00"}), POLICY, T0)
    remember, start = decision.changes
    assert remember == Remember(MEMO_SCHEDULE_SLOT, "2024-05-01T12:00:00+00:00")
    assert isinstance(start, StartRun) and (start.force, start.why) == (False, "schedule */5 * * * *")
    assert decision.status["nextSyncTime"] == "2024-05-01T12:05:00Z"


def test_a_schedule_between_slots_starts_nothing() -> None:
    spec = make_spec(schedule="*/5 * * * *")
    clock = FakeClock()
    memo = {MEMO_SCHEDULE_SLOT: "2024-05-01T12:00:00+00:00"}
    assert not decide(observe(spec, memo=memo), POLICY, clock.advance(299)).changes
    [remember, _start] = decide(observe(spec, memo=memo), POLICY, clock.advance(1)).changes
    assert remember == Remember(MEMO_SCHEDULE_SLOT, "2024-05-01T12:05:00+00:00")


def test_the_first_slot_counts_from_creation_and_a_scheduled_job_has_no_creation_run() -> None:
    spec = make_spec(schedule="0 * * * *")
    assert not decide(observe(spec, created=T0 + timedelta(minutes=1)), POLICY, T0 + timedelta(minutes=30)).changes
    [remember, start] = decide(observe(spec, created=T0 + timedelta(minutes=1)), POLICY, T0 + timedelta(hours=1)).changes
    assert isinstance(start, StartRun) and remember == Remember(MEMO_SCHEDULE_SLOT, "2024-05-01T13:00:00+00:00")


def test_missed_slots_collapse_to_the_latest() -> None:
    """After downtime one run for the latest missed slot, not one per slot."""
    spec = make_spec(schedule="*/5 * * * *")
    memo = {MEMO_SCHEDULE_SLOT: "2024-05-01T09:00:00+00:00"}
    decision = decide(observe(spec, memo=memo), POLICY, T0 + timedelta(minutes=2))
    assert len(of_type(decision.changes, StartRun)) == 1
    assert of_type(decision.changes, Remember) == [Remember(MEMO_SCHEDULE_SLOT, "2024-05-01T12:00:00+00:00")]
    assert due_slot("*/5 * * * *", "2024-05-01T09:00:00Z", created=T0, now=T0 + timedelta(minutes=2)) == T0


def test_a_slot_that_arrives_during_a_run_is_skipped_but_remembered() -> None:
    spec = make_spec(schedule="*/5 * * * *")
    decision = decide(observe(spec, make_run("running", queued=1), memo={MEMO_SCHEDULE_SLOT: "2024-05-01T11:55:00+00:00"}),
                      POLICY, T0)
    assert not of_type(decision.changes, StartRun)
    assert of_type(decision.changes, Remember) == [Remember(MEMO_SCHEDULE_SLOT, "2024-05-01T12:00:00+00:00")]
    assert of_type(decision.changes, Note)[0].event == "schedule_slot_skipped"


def test_run_now_starts_at_once_replacing_an_active_run() -> None:
    decision = decide(observe(make_spec(runNow="t1"), make_run("running", queued=3)), POLICY, T0)
    remember, start = decision.changes
    assert remember == Remember(MEMO_RUN_NOW, "t1")
    assert isinstance(start, StartRun) and (start.force, start.why) == (True, "runNow=t1")
    assert not of_type(decision.changes, UseHandler)  # the new run starts with the current handler


def test_run_now_acts_once_per_token() -> None:
    assert not decide(observe(make_spec(runNow="t1"), memo={MEMO_RUN_NOW: "t1", MEMO_STARTED_ONCE: "r1"}),
                      POLICY, T0).changes


def test_retry_failed_waits_for_the_active_run() -> None:
    decision = decide(observe(make_spec(retryFailed="again"), make_run("running", queued=1)), POLICY, T0)
    assert not of_type(decision.changes, RetryFailed) and not of_type(decision.changes, Remember)


def test_retry_failed_starts_once_no_run_is_active() -> None:
    failed = make_run("failed", ended=T0.timestamp(), files_failed=1)
    decision = decide(observe(make_spec(retryFailed="again"), failed, memo={MEMO_STARTED_ONCE: "r1"}), POLICY, T0)
    assert decision.changes == (Remember(MEMO_RETRY_FAILED, "again"), RetryFailed("again"))
    done_with_it = {MEMO_STARTED_ONCE: "r1", MEMO_RETRY_FAILED: "again"}
    assert not decide(observe(make_spec(retryFailed="again"), failed, memo=done_with_it), POLICY, T0).changes


def test_suspend_stops_the_active_run_and_scales_to_zero() -> None:
    running = make_run("running", queued=5)
    decision = decide(observe(make_spec(suspend=True, schedule="@hourly"), running, deployment=OURS,
                              scale_history=(ScaleRecommendation(T0, 3),)), POLICY, T0)
    assert decision.changes[0] == StopRun("suspended", EventReason.SUSPENDED, "run r1 stopped: the SyncJob is suspended")
    assert applied(decision).replicas == 0 and of_type(decision.report, ForgetScaleHistory)
    assert condition(decision, "Ready")["reason"] == "Suspended"
    assert "nextSyncTime" not in decision.status


def test_suspend_without_a_run_starts_nothing() -> None:
    decision = decide(observe(make_spec(suspend=True, runNow="t1")), POLICY, T0)
    assert not decision.changes and applied(decision).replicas == 0


def test_a_pass_that_started_a_run_reports_it_and_starts_nothing_more() -> None:
    """After a start the pass reads the run again and decides again: no second start, no handler
    hand-over (the run just started with the current handler), workers for the new run."""
    started = make_run("running", "r2", queued=1, started=T0.timestamp())
    decision = decide(observe(make_spec(runNow="t2"), started, started_run="r2", memo={MEMO_RUN_NOW: "t1"}), POLICY, T0)
    assert decision.changes == ()
    assert applied(decision).replicas == 1
    assert condition(decision, "Reconciling")["status"] == "True"
    assert decision.status["run"] == {"id": "r2", "startTime": "2024-05-01T12:00:00Z"}


# --- The handler ------------------------------------------------------------------------------
def test_a_handler_update_is_mirrored_to_the_active_run() -> None:
    decision = decide(observe(run=make_run("running", "r7", queued=1), memo={MEMO_STARTED_ONCE: "r7"}), POLICY, T0)
    assert decision.changes == (UseHandler("h-new", "event handler updated for run r7"),)


def test_no_handler_mirror_without_an_active_run() -> None:
    assert not of_type(decide(observe(run=make_run("done"), memo={MEMO_STARTED_ONCE: "r1"}), POLICY, T0).changes,
                       UseHandler)


# --- Scaling ----------------------------------------------------------------------------------
def test_scale_up_is_immediate() -> None:
    decision = decide(observe(run=make_run("running", queued=9, in_flight=1), deployment=OURS,
                              memo={MEMO_STARTED_ONCE: "r1"}), POLICY, T0)
    assert applied(decision).replicas == 4  # ceil(10 / concurrency 2) = 5, capped at maxReplicas 4
    assert (EventReason.SCALED_WORKERS, "workers scaled from 1 to 4", EventType.NORMAL) in events(decision)
    [history] = of_type(decision.report, RememberScaleHistory)
    assert history.history[-1] == ScaleRecommendation(T0, 4)


def test_scale_down_waits_for_the_stabilisation_window() -> None:
    job = Job()
    assert job.decide(make_run("running", queued=8)) == 4
    job.clock.advance(30)
    assert job.decide(make_run("running", queued=2)) == 4  # the queue shrank, the workers stay...
    job.clock.advance(60)
    assert job.decide(make_run("running", queued=2)) == 4  # ...for the whole window (120 s)
    job.clock.advance(31)
    assert job.decide(make_run("running", queued=2)) == 1  # the high recommendation left the window
    job.clock.advance(5)
    assert job.decide(make_run("running", queued=6)) == 3  # and up again at once


def test_a_restarted_operator_holds_the_current_count_for_a_window() -> None:
    """No memory (a restart): the current replicas count as a recommendation made now."""
    job = Job(replicas=4)
    held = [job.decide(make_run("running", queued=1))]
    while job.clock.now < T0 + timedelta(seconds=115):
        job.clock.advance(5)  # the reconcile interval
        held.append(job.decide(make_run("running", queued=1)))
    assert set(held) == {4}
    job.clock.advance(5)
    assert job.decide(make_run("running", queued=1)) == 1


def test_an_active_run_keeps_at_least_one_worker() -> None:
    decision = decide(observe(run=make_run("running"), memo={MEMO_STARTED_ONCE: "r1"}), POLICY, T0)
    assert applied(decision).replicas == 1


def test_an_idle_job_goes_to_its_floor_at_once() -> None:
    job = Job(replicas=4, history=(ScaleRecommendation(T0, 4),))
    assert job.decide(make_run("done", ended=T0.timestamp())) == 0 and job.history == ()
    floor = make_spec(workers={"minReplicas": 2, "maxReplicas": 4})
    assert Job(replicas=4).decide(make_run("done"), floor) == 2


def test_no_scaled_event_when_the_count_holds() -> None:
    decision = decide(observe(run=make_run("running", queued=1), deployment=OURS, memo={MEMO_STARTED_ONCE: "r1"}),
                      POLICY, T0)
    assert applied(decision).replicas == 1
    assert not [e for e in events(decision) if e[0] is EventReason.SCALED_WORKERS]


# --- The workers' Redis credential (perJob) ---------------------------------------------------
def test_the_first_credential_is_made_without_an_event() -> None:
    decision = decide(observe(credential=credential(digests=(), user_exists=False)), POLICY, T0)
    assert decision.changes[0] == RotateCredential(at=T0.timestamp(), announce=False)


def test_a_credential_rotates_when_due() -> None:
    due = credential(rotated=T0 - timedelta(days=7))
    assert decide(observe(credential=due), POLICY, T0).changes[0] == RotateCredential(at=T0.timestamp(), announce=True)


def test_a_credential_not_due_stays_and_versions_the_pod_template() -> None:
    fresh = credential(rotated=T0 - timedelta(days=6, hours=23))
    decision = decide(observe(credential=fresh, memo={MEMO_STARTED_ONCE: "r1"}), POLICY, T0)
    assert not of_type(decision.changes, RotateCredential) and not of_type(decision.changes, RestoreCredential)
    template = applied(decision).manifest["spec"]["template"]
    assert template["metadata"]["annotations"] == {CREDENTIAL_VERSION_ANNOTATION: fresh.tag}
    [redis_env] = [e for e in template["spec"]["containers"][0]["env"] if e["name"] == ENV_REDIS_URL]
    assert redis_env["valueFrom"]["secretKeyRef"] == {"name": "archive-worker-redis", "key": "url"}


def test_a_credential_is_never_rotated_without_a_rotation_period() -> None:
    old = credential(rotated=T0 - timedelta(days=400))
    never = Policy(worker_image="w", worker_redis=SHARED_REDIS, credential_rotation=None)
    assert not decide(observe(credential=old, memo={MEMO_STARTED_ONCE: "r1"}), never, T0).changes


def test_a_user_redis_lost_is_restored_from_the_kept_digests() -> None:
    lost = credential(user_exists=False)
    assert decide(observe(credential=lost, memo={MEMO_STARTED_ONCE: "r1"}), POLICY, T0).changes == (RestoreCredential(),)


def test_shared_credentials_give_every_job_the_one_url() -> None:
    decision = decide(observe(credential=None, memo={MEMO_STARTED_ONCE: "r1"}), POLICY, T0)
    template = applied(decision).manifest["spec"]["template"]
    assert "annotations" not in template["metadata"]
    [redis_env] = [e for e in template["spec"]["containers"][0]["env"] if e["name"] == ENV_REDIS_URL]
    assert redis_env == {"name": ENV_REDIS_URL, "value": SHARED_REDIS.url}


# --- Refusals: Stalled ------------------------------------------------------------------------
PROBLEM = SpecProblem("spec.deleteMode", "Trash cannot be used with operation Put", "use DoNotDelete")


def assert_stalled(decision: Decision, reason: str, event: EventReason, message: str) -> None:
    assert set(decision.status) == {"observedGeneration", "conditions"}
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
    again = decide(Observed(job=JOB, generation=3, created=T0, spec_problems=(PROBLEM,), run=make_run(),
                            old_status=first.status), POLICY, T0 + timedelta(seconds=5))
    assert not events(again)
    assert condition(again, "Stalled")["lastTransitionTime"] == "2024-05-01T12:00:00Z"


def test_what_the_admin_does_not_allow_is_stalled_as_not_allowed() -> None:
    refused = SpecProblem("spec.source.volume", "volume type hostPath is not allowed on this cluster", "use a PVC")
    assert_stalled(decide(observe(refused=(refused,)), POLICY, T0), "NotAllowed", EventReason.INVALID_SPEC, str(refused))


def test_a_missing_handler_configmap_is_stalled() -> None:
    missing = "reading ConfigMap science/handler: HTTP 404 Not Found"
    assert_stalled(decide(observe(handler_missing=missing), POLICY, T0), "HandlerNotFound", EventReason.HANDLER_ERROR,
                   missing)


def test_a_handler_that_does_not_parse_is_a_handler_error() -> None:
    error = ConfigError([ConfigProblem("event_handler", "line 3: invalid syntax", "fix the handler module")])
    assert_stalled(decide(observe(config_error=error), POLICY, T0), "HandlerError", EventReason.HANDLER_ERROR, str(error))


def test_a_config_the_engine_refuses_is_an_invalid_spec() -> None:
    error = ConfigError([ConfigProblem("target_collection", "must be absolute")])
    assert_stalled(decide(observe(config_error=error), POLICY, T0), "InvalidSpec", EventReason.INVALID_SPEC, str(error))


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
    assert_stalled(decision, "NameConflict", EventReason.INVALID_SPEC, taken)
    assert of_type(decision.report, ScaleDeployment) == [ScaleDeployment(0)]  # its own idle workers stop


def test_a_stalled_job_keeps_an_active_runs_workers_and_stops_idle_ones() -> None:
    refused = (PROBLEM,)
    active = decide(observe(refused=refused, deployment=OURS, run=make_run("running", queued=2)), POLICY, T0)
    assert not of_type(active.intents, ScaleDeployment)  # the run goes on with its stored, valid config
    unknown = decide(observe(refused=refused, deployment=OURS, run=None), POLICY, T0)  # Redis did not answer
    assert of_type(unknown.intents, ScaleDeployment) == [ScaleDeployment(0)]


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


# --- Deletion ---------------------------------------------------------------------------------
def test_deletion_removes_the_redis_state_and_forgets_the_job() -> None:
    assert decide_deletion() == (DeleteJob("the SyncJob was deleted"), ForgetJob())


def test_cleanup_retries_with_a_doubling_delay_then_proceeds_saying_what_was_left() -> None:
    delays = [decide_cleanup_failure(job=JOB.key, retry=retry, attempts=5, backoff=2.0, error="down")
              for retry in range(4)]
    assert delays == [CleanupRetry(2.0), CleanupRetry(4.0), CleanupRetry(8.0), CleanupRetry(16.0)]
    assert decide_cleanup_failure(job=JOB.key, retry=3, attempts=9, backoff=4.0, error="x") == CleanupRetry(30.0)
    gave_up = decide_cleanup_failure(job=JOB.key, retry=4, attempts=5, backoff=2.0, error="Redis down")
    assert isinstance(gave_up, CleanupGiveUp)
    assert gave_up.event == PostEvent(EventReason.CLEANUP_INCOMPLETE,
                                      "Redis state of science/archive was not removed after 4 attempts: Redis down",
                                      EventType.WARNING)


@pytest.mark.parametrize("suspend", [False, True])
def test_decide_is_pure(suspend: bool) -> None:
    """The same facts and the same time give the same decision (no clock, no I/O)."""
    facts = observe(make_spec(suspend=suspend, schedule="*/5 * * * *"), make_run("running", queued=3),
                    credential=credential(), deployment=OURS)
    assert decide(facts, POLICY, T0) == decide(facts, POLICY, T0)
