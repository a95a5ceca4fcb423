"""The reconcile decision: what one pass does about a SyncJob, given what it observed.

Pure: no I/O, no clock (``now`` is an argument), no kubernetes, no Redis. Run semantics
(documented for users in docs/operator.md):

- no schedule: one run, when the job is created (or first becomes valid and unsuspended);
- schedule: a run at each cron slot; a slot that arrives while a run is active is skipped (like
  a CronJob with ``concurrencyPolicy: Forbid``); after downtime only the latest missed slot fires;
- a new ``runNow`` value starts a run at once, replacing an active one;
- a new ``retryFailed`` value redoes the last run's failures, once no run is active;
- ``suspend: true`` pauses: workers to zero, the active run kept (its tasks wait in Redis);
  ``suspend: false`` resumes it where it was. While suspended no run starts: schedule slots
  pass (skipped, not made up at resume), a new ``runNow`` or ``retryFailed`` waits for the
  resume (then ``runNow`` replaces the paused run);
- spec changes apply from the next run (:mod:`.edits`); handler changes reach the active
  run's workers at once; every run starts with the config this pass prepared, so with the
  handler the ConfigMap holds now.

The workers and the status are decided in :mod:`.report`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from irods_ingest_operator.builders.names import worker_deployment_name
from irods_ingest_operator.builders.status import build_status
from irods_ingest_operator.builders.text import parse_time
from irods_ingest_operator.constants import (
    MEMO_RETRY_FAILED,
    MEMO_RUN_NOW,
    MEMO_SCHEDULE_SLOT,
    MEMO_STARTED_ONCE,
    MEMO_SUSPENDED,
    EventReason,
    EventType,
    Phase,
    Reason,
)
from irods_ingest_operator.reconcile import messages
from irods_ingest_operator.reconcile.health import stalled_conditions
from irods_ingest_operator.reconcile.intents import (
    Decision,
    DeleteJob,
    ForgetJob,
    Intent,
    Note,
    PostEvent,
    Remember,
    RestoreCredential,
    RetryFailed,
    RotateCredential,
    ScaleDeployment,
    StartRun,
    UseHandler,
    WriteStatus,
)
from irods_ingest_operator.reconcile.observed import Observed
from irods_ingest_operator.reconcile.once import TOPIC_REFUSAL, cleared, post_once
from irods_ingest_operator.reconcile.policy import Policy
from irods_ingest_operator.reconcile.report import last_successful_sync, report, run_end_and_failures
from irods_ingest_operator.spec import next_fire_time, summarize_problems

MAX_CLEANUP_DELAY_SECONDS = 30.0


@dataclass(frozen=True)
class Refusal:
    """Why the job cannot run as it is: the Stalled condition's reason and message, and the Event."""

    reason: Reason
    message: str
    event: EventReason


def decide(observed: Observed, policy: Policy, now: datetime) -> Decision:
    refusal = refusal_of(observed)
    if refusal is not None:
        return stalled(observed, refusal, now)
    changes = (*credential_changes(observed, policy, now), *run_changes(observed, now))
    # The refusal is forgotten in the report: a credential Secret found to be another's (by the
    # changes) makes the pass decide again as stalled, and must not look like news each pass.
    return Decision(changes=changes, report=(*cleared(observed, TOPIC_REFUSAL), *report(observed, policy, now)))


# --- Refusals ---------------------------------------------------------------------------------
def refusal_of(observed: Observed) -> Refusal | None:
    """The first reason the job cannot run, in the order a pass finds them."""
    if observed.spec is None:
        return Refusal(Reason.INVALID_SPEC, summarize_problems(observed.spec_problems), EventReason.INVALID_SPEC)
    if observed.refused:
        return Refusal(Reason.NOT_ALLOWED, summarize_problems(observed.refused), EventReason.INVALID_SPEC)
    if observed.handler_missing is not None:
        return Refusal(Reason.HANDLER_NOT_FOUND, observed.handler_missing, EventReason.HANDLER_ERROR)
    if observed.config_error is not None:
        message = messages.config_refused(observed.config_error)
        if any(problem.field == "event_handler" for problem in observed.config_error.problems):
            return Refusal(Reason.HANDLER_ERROR, message, EventReason.HANDLER_ERROR)
        return Refusal(Reason.INVALID_SPEC, message, EventReason.INVALID_SPEC)
    job = observed.job
    if observed.deployment is not None and observed.deployment.controller_uid != job.uid:
        # Applying would take over somebody else's Deployment (and, through our owner
        # reference, have it deleted with the SyncJob).
        message = messages.deployment_taken(job.namespace, worker_deployment_name(job.name))
        return Refusal(Reason.NAME_CONFLICT, message, EventReason.INVALID_SPEC)
    if observed.secret_conflict is not None:
        return Refusal(Reason.NAME_CONFLICT, observed.secret_conflict, EventReason.INVALID_SPEC)
    return None


def stalled(observed: Observed, refusal: Refusal, now: datetime) -> Decision:
    """Stalled, with the reason and every problem; one Event per cause. Workers of an active
    run keep going on its stored (valid) config, none start anew; and the run keeps reporting
    (progress, counts, its end, its failures) until it ends: an edit never hides it."""
    previous: Mapping[str, Any] = next(
        (c for c in observed.old_status.get("conditions") or [] if c.get("type") == "Stalled"), {})
    shown = str(previous.get("message", "")) if previous.get("status") == "True" else ""
    changes = post_once(observed, TOPIC_REFUSAL, refusal.message,
                        PostEvent(refusal.event, refusal.message, EventType.WARNING), shown=shown)
    conditions = stalled_conditions(observed, refusal.reason, refusal.message, now)
    report: list[Intent] = []
    run, deployment = observed.run, observed.deployment
    ours = deployment is not None and deployment.controller_uid == observed.job.uid
    if (run is None or not run.active) and deployment is not None and ours and deployment.replicas != 0:
        report.append(ScaleDeployment(0))  # never another's Deployment; none when it is at zero already
    status: dict[str, object] = {"observedGeneration": observed.generation, "conditions": conditions}
    if run is not None and run.run_id:
        report += run_end_and_failures(observed, run)
        replicas, ready = (deployment.replicas, deployment.ready) if deployment is not None and ours else (0, 0)
        status = build_status(run, observed_generation=observed.generation, conditions=conditions,
                              desired_replicas=replicas if run.active else 0, ready_replicas=ready,
                              recent_failures=observed.failures, last_sync=last_successful_sync(run, observed.history),
                              next_sync=None)
    status["phase"] = str(Phase.INVALID)
    report.append(WriteStatus(status))
    return Decision(changes=changes, report=tuple(report))


# --- The workers' Redis credential ------------------------------------------------------------
def credential_changes(observed: Observed, policy: Policy, now: datetime) -> tuple[Intent, ...]:
    """perJob: made on first use and rotated every ``credential_rotation``; a user Redis lost
    (restarted without an aclfile) is recreated from the kept digests."""
    credential = observed.credential
    if credential is None:
        return ()
    rotation = policy.credential_rotation
    age = now.timestamp() - credential.rotated
    if not credential.digests or (rotation is not None and age >= rotation.total_seconds()):
        return (RotateCredential(at=now.timestamp(), announce=bool(credential.digests)),)
    if not credential.user_exists:
        return (RestoreCredential(),)
    return ()


# --- Runs -------------------------------------------------------------------------------------
def run_changes(observed: Observed, now: datetime) -> tuple[Intent, ...]:
    """Pause or resume, start or retry a run, by the spec and the operator's notes; with an
    active run and nothing started, hand the run the current handler."""
    spec, run, config = observed.spec, observed.run, observed.config
    assert spec is not None and run is not None and config is not None, "decided only for a job that can run"
    if observed.started_run is not None:
        return ()  # a pass starts at most one run
    changes = (*suspension_changes(observed), *_run_trigger(observed, now))
    starts = any(isinstance(intent, StartRun | RetryFailed) for intent in changes)
    if run.active and not starts:
        changes += (UseHandler(config.handler_hash, f"event handler updated for run {run.run_id}"),)
    return changes


def suspension_changes(observed: Observed) -> tuple[Intent, ...]:
    """The Suspended and Resumed Events, once each way (the operator's note in Redis says which
    way it went last, so neither a racing pass nor a restart repeats them)."""
    spec, run, memo = observed.spec, observed.run, observed.memo
    assert spec is not None and run is not None
    paused = memo.get(MEMO_SUSPENDED, "")
    if spec.suspend and not paused:
        return (Remember(MEMO_SUSPENDED, run.run_id if run.active and run.run_id else "-"),
                PostEvent(EventReason.SUSPENDED, messages.suspended(run)))
    if not spec.suspend and paused:
        run_now = spec.run_now if spec.run_now and spec.run_now != memo.get(MEMO_RUN_NOW) else None
        return (Remember(MEMO_SUSPENDED, ""), PostEvent(EventReason.RESUMED, messages.resumed(run, run_now)))
    return ()


def _run_trigger(observed: Observed, now: datetime) -> tuple[Intent, ...]:
    spec, run, config, memo = observed.spec, observed.run, observed.config, observed.memo
    assert spec is not None and run is not None and config is not None
    if spec.suspend:
        # Nothing starts. A slot that passes is skipped (remembered, so the resume does not
        # make it up); runNow and retryFailed wait, unremembered, for the resume.
        slot = due_slot(spec.schedule, memo.get(MEMO_SCHEDULE_SLOT), created=observed.created or now, now=now) \
            if spec.schedule else None
        if slot is None:
            return ()
        return (Remember(MEMO_SCHEDULE_SLOT, slot.isoformat()),
                Note("schedule_slot_skipped", {"job": observed.job.key, "slot": slot.isoformat(), "why": "suspended"}))
    if spec.run_now and spec.run_now != memo.get(MEMO_RUN_NOW):
        return (Remember(MEMO_RUN_NOW, spec.run_now), StartRun(config, force=True, why=f"runNow={spec.run_now}"))
    if spec.retry_failed and spec.retry_failed != memo.get(MEMO_RETRY_FAILED):
        if run.active:
            return ()  # acted on once the active run has ended
        return (Remember(MEMO_RETRY_FAILED, spec.retry_failed), RetryFailed(spec.retry_failed, config))
    if spec.schedule:
        slot = due_slot(spec.schedule, memo.get(MEMO_SCHEDULE_SLOT), created=observed.created or now, now=now)
        if slot is None:
            return ()
        remember = Remember(MEMO_SCHEDULE_SLOT, slot.isoformat())
        if run.active:
            return (remember, Note("schedule_slot_skipped", {"job": observed.job.key, "slot": slot.isoformat()}))
        return (remember, StartRun(config, force=False, why=f"schedule {spec.schedule}"))
    if not memo.get(MEMO_STARTED_ONCE) and run.state == "none":
        return (StartRun(config, force=False, why="created"),)
    return ()


def due_slot(schedule: str, last_slot: str | None, *, created: datetime, now: datetime) -> datetime | None:
    """The latest schedule slot at or before now that has not fired yet (missed ones collapse)."""
    after = parse_time(last_slot) or created
    slot = next_fire_time(schedule, after)
    if slot > now:
        return None
    while True:  # after downtime, fire once for the latest missed slot, not for each
        following = next_fire_time(schedule, slot)
        if following > now:
            return slot
        slot = following


# --- Deletion ---------------------------------------------------------------------------------
def decide_deletion() -> tuple[Intent, ...]:
    """On deletion (the finalizer): the Deployment and the credential Secret are garbage-collected
    (owner references); Redis state and the operator's memory of the job are removed here."""
    return (DeleteJob("the SyncJob was deleted"), ForgetJob())


@dataclass(frozen=True)
class CleanupRetry:
    delay: float


@dataclass(frozen=True)
class CleanupGiveUp:
    """Never hang a deletion on Redis: proceed, and say what was left behind."""

    event: PostEvent


def decide_cleanup_failure(*, job: str, retry: int, attempts: int, backoff: float, error: str) -> CleanupRetry | CleanupGiveUp:
    """After a cleanup failed (Redis unreachable): retry with a doubling delay, ``attempts`` times in all."""
    if retry + 1 < attempts:
        return CleanupRetry(delay=min(MAX_CLEANUP_DELAY_SECONDS, backoff * 2**retry))
    return CleanupGiveUp(PostEvent(EventReason.CLEANUP_INCOMPLETE, messages.cleanup_incomplete(job, retry, error),
                                   EventType.WARNING))
