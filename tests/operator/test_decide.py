"""decide(): the whole reconcile decision as a pure function, driven by a fake clock.

Every branch of a pass -- runs (creation, schedule, runNow, retryFailed, suspend and resume),
the handler mirror, scaling and its stabilisation window, the workers' credential, the end of a
deletion -- decided from plain values: no Redis, no API server, no clock. Refusals and one
Event per cause: test_decide_refusals.py; what the status shows (the end of a run, phase,
Ready, workers, pending edits, the failures ConfigMap): test_decide_status.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from irods_ingest_operator.builders.scaling import ScaleRecommendation
from irods_ingest_operator.constants import (
    APPLIED_DIGEST_ANNOTATION,
    CREDENTIAL_VERSION_ANNOTATION,
    ENV_REDIS_URL,
    MEMO_RETRY_FAILED,
    MEMO_RUN_NOW,
    MEMO_SCHEDULE_SLOT,
    MEMO_STARTED_ONCE,
    MEMO_SUSPENDED,
    EventReason,
    EventType,
)
from irods_ingest_operator.reconcile import (
    CleanupGiveUp,
    CleanupRetry,
    Policy,
    decide,
    decide_cleanup_failure,
    decide_deletion,
)
from irods_ingest_operator.reconcile.decide import due_slot
from irods_ingest_operator.reconcile.intents import (
    AnnounceRunEnd,
    ApplyDeployment,
    DeleteJob,
    ForgetJob,
    ForgetScaleHistory,
    Note,
    PostEvent,
    Remember,
    RememberScaleHistory,
    RestoreCredential,
    RetryFailed,
    RotateCredential,
    StartRun,
    UseHandler,
)
from irods_ingest_operator.refs import DeploymentState
from testsupport.decide_kit import (
    JOB,
    OURS,
    POLICY,
    SHARED_REDIS,
    T0,
    FakeClock,
    Job,
    applied,
    condition,
    credential,
    events,
    make_run,
    make_spec,
    observe,
    of_type,
)


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
    facts = observe(make_spec(retryFailed="again"), failed, memo={MEMO_STARTED_ONCE: "r1"})
    decision = decide(facts, POLICY, T0)
    assert decision.changes == (Remember(MEMO_RETRY_FAILED, "again"), RetryFailed("again", facts.config))
    done_with_it = {MEMO_STARTED_ONCE: "r1", MEMO_RETRY_FAILED: "again"}
    assert not decide(observe(make_spec(retryFailed="again"), failed, memo=done_with_it), POLICY, T0).changes


def test_a_retry_run_starts_with_the_config_this_pass_prepared() -> None:
    """Finding 7: the retry run carries the config prepared from the ConfigMap read in this pass
    (its handler hash), never the one the last run was left with."""
    failed = make_run("failed", ended=T0.timestamp(), files_failed=1)
    facts = observe(make_spec(retryFailed="fixed"), failed, memo={MEMO_STARTED_ONCE: "r1"})
    [retry] = of_type(decide(facts, POLICY, T0).changes, RetryFailed)
    assert retry.config is facts.config and retry.config.handler_hash == "h-new"


def test_a_pass_that_started_a_run_reports_it_and_starts_nothing_more() -> None:
    """After a start the pass reads the run again and decides again: no second start, no handler
    hand-over (the run just started with the current handler), workers for the new run."""
    started = make_run("running", "r2", queued=1, started=T0.timestamp())
    decision = decide(observe(make_spec(runNow="t2"), started, started_run="r2", memo={MEMO_RUN_NOW: "t1"}), POLICY, T0)
    assert decision.changes == ()
    assert applied(decision).replicas == 1
    assert condition(decision, "Reconciling")["status"] == "True"
    assert decision.status["run"] == {"id": "r2", "startTime": "2024-05-01T12:00:00Z"}


# --- Suspend and resume (batch/v1 Job semantics) ---------------------------------------------
def test_suspend_pauses_the_active_run_and_scales_to_zero() -> None:
    running = make_run("running", queued=5)
    decision = decide(observe(make_spec(suspend=True, schedule="@hourly"), running, deployment=OURS,
                              scale_history=(ScaleRecommendation(T0, 3),), memo={MEMO_STARTED_ONCE: "r1"}), POLICY, T0)
    assert not of_type(decision.changes, StartRun) and not of_type(decision.changes, RetryFailed)
    assert decision.changes[:2] == (
        Remember(MEMO_SUSPENDED, "r1"),
        PostEvent(EventReason.SUSPENDED, "run r1 paused: workers scaled to zero, its 5 tasks wait in Redis; "
                                         "set spec.suspend to false to continue it"))
    assert of_type(decision.changes, UseHandler)  # a handler edit still reaches the paused run
    assert applied(decision).replicas == 0 and of_type(decision.report, ForgetScaleHistory)
    ready, suspended = condition(decision, "Ready"), condition(decision, "Suspended")
    assert (ready["status"], ready["reason"]) == ("True", "Suspended")
    assert (suspended["status"], suspended["reason"]) == ("True", "Suspended") and "run r1 paused" in suspended["message"]
    assert condition(decision, "Reconciling")["status"] == "False" and condition(decision, "Stalled")["status"] == "False"
    assert decision.status["phase"] == "Suspended" and "nextSyncTime" not in decision.status
    assert not of_type(decision.report, AnnounceRunEnd)  # paused, not ended


def test_a_suspension_is_announced_once() -> None:
    memo = {MEMO_STARTED_ONCE: "r1", MEMO_SUSPENDED: "r1"}
    decision = decide(observe(make_spec(suspend=True), make_run("running", queued=5), memo=memo), POLICY, T0)
    assert not of_type(decision.changes, Remember) and not events(decision)


def test_resume_continues_the_same_run() -> None:
    paused = make_run("running", queued=5)
    suspended = decide(observe(make_spec(suspend=True), paused, memo={MEMO_STARTED_ONCE: "r1"}), POLICY, T0).status
    memo = {MEMO_STARTED_ONCE: "r1", MEMO_SUSPENDED: "r1"}
    decision = decide(observe(run=paused, memo=memo, old_status=suspended), POLICY, T0 + timedelta(minutes=5))
    assert decision.changes[:2] == (Remember(MEMO_SUSPENDED, ""),
                                    PostEvent(EventReason.RESUMED, "resumed: run r1 continues where it was"))
    assert not of_type(decision.changes, StartRun)  # the same run, from where it was
    assert applied(decision).replicas == 3  # ceil(5 queued / concurrency 2)
    assert condition(decision, "Suspended")["status"] == "False" and condition(decision, "Suspended")["reason"] == "Resumed"
    assert condition(decision, "Reconciling")["status"] == "True" and decision.status["phase"] == "Running"


def test_a_job_created_suspended_runs_first_when_resumed() -> None:
    first = decide(observe(make_spec(suspend=True)), POLICY, T0)
    assert first.changes == (Remember(MEMO_SUSPENDED, "-"), PostEvent(
        EventReason.SUSPENDED, "suspended: no run starts and workers are scaled to zero until spec.suspend is false"))
    assert applied(first).replicas == 0 and first.status["phase"] == "Suspended"
    resumed = decide(observe(memo={MEMO_SUSPENDED: "-"}), POLICY, T0)
    assert (EventReason.RESUMED, "resumed: runs start again", EventType.NORMAL) in events(resumed)
    [start] = of_type(resumed.changes, StartRun)
    assert start.why == "created"


def test_schedule_slots_pass_while_suspended_and_are_not_made_up() -> None:
    spec = make_spec(schedule="*/5 * * * *", suspend=True)
    decision = decide(observe(spec, memo={MEMO_SCHEDULE_SLOT: "2024-05-01T11:55:00+00:00", MEMO_SUSPENDED: "-"}),
                      POLICY, T0)
    assert not of_type(decision.changes, StartRun)
    assert of_type(decision.changes, Remember) == [Remember(MEMO_SCHEDULE_SLOT, "2024-05-01T12:00:00+00:00")]
    assert of_type(decision.changes, Note)[0].fields["why"] == "suspended"
    resumed = make_spec(schedule="*/5 * * * *")
    memo = {MEMO_SCHEDULE_SLOT: "2024-05-01T12:00:00+00:00", MEMO_SUSPENDED: "-"}
    assert not of_type(decide(observe(resumed, memo=memo), POLICY, T0 + timedelta(minutes=2)).changes, StartRun)
    later = {MEMO_SCHEDULE_SLOT: "2024-05-01T12:00:00+00:00"}
    assert of_type(decide(observe(resumed, memo=later), POLICY, T0 + timedelta(minutes=5)).changes, StartRun)


def test_run_now_while_suspended_waits_for_the_resume_then_replaces_the_paused_run() -> None:
    paused, memo = make_run("running", queued=5), {MEMO_STARTED_ONCE: "r1", MEMO_SUSPENDED: "r1"}
    held = decide(observe(make_spec(suspend=True, runNow="t1"), paused, memo=memo), POLICY, T0)
    assert not of_type(held.changes, StartRun) and not of_type(held.changes, Remember)  # not consumed
    resumed = decide(observe(make_spec(runNow="t1"), paused, memo=memo), POLICY, T0)
    assert (EventReason.RESUMED, "resumed: runNow=t1 starts a run, replacing paused run r1",
            EventType.NORMAL) in events(resumed)
    [start] = of_type(resumed.changes, StartRun)
    assert start.force and start.why == "runNow=t1"


def test_retry_failed_while_suspended_waits_for_the_resume() -> None:
    failed = make_run("failed", ended=T0.timestamp(), files_failed=1)
    held = decide(observe(make_spec(suspend=True, retryFailed="x"), failed, memo={MEMO_SUSPENDED: "-"}), POLICY, T0)
    assert not of_type(held.changes, RetryFailed) and not of_type(held.changes, Remember)
    resumed = decide(observe(make_spec(retryFailed="x"), failed, memo={MEMO_SUSPENDED: "-", MEMO_STARTED_ONCE: "r1"}),
                     POLICY, T0)
    assert of_type(resumed.changes, RetryFailed)


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


def test_a_deployment_that_holds_what_the_pass_would_apply_is_left_alone() -> None:
    """Issue 18: an idle job writes nothing. The Deployment carries the digest of what the
    operator applied; a pass that would apply the same (replicas aside, compared as they are)
    applies nothing. Another spec, or replicas changed behind the operator's back, apply again."""
    done = make_run("done", ended=T0.timestamp())
    memo = {MEMO_STARTED_ONCE: "r1"}
    first = applied(decide(observe(run=done, memo=memo), POLICY, T0)).manifest
    digest = first["metadata"]["annotations"][APPLIED_DIGEST_ANNOTATION]
    assert "annotations" not in first["spec"]["template"]["metadata"]  # the pods never roll for it
    same = DeploymentState(replicas=0, ready=0, controller_uid=JOB.uid, applied=digest)
    idle = decide(observe(run=done, memo=memo, deployment=same), POLICY, T0 + timedelta(seconds=5))
    assert not of_type(idle.report, ApplyDeployment)
    assert idle.status["workers"] == {"desired": 0, "ready": 0}
    scaled_by_hand = decide(observe(run=done, memo=memo, deployment=replace(same, replicas=2)), POLICY, T0)
    assert applied(scaled_by_hand).replicas == 0
    edited = make_spec(workers={"minReplicas": 0, "maxReplicas": 4, "concurrency": 3})
    assert of_type(decide(observe(edited, done, memo=memo, deployment=same), POLICY, T0).report, ApplyDeployment)


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
