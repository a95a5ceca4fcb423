"""The reconcile decision: what one pass does about a SyncJob, given what it observed.

Pure: no I/O, no clock (``now`` is an argument), no kubernetes, no Redis. Run semantics
(documented for users in docs/operator.md):

- no schedule: one run, when the job is created (or first becomes valid and unsuspended);
- schedule: a run at each cron slot; a slot that arrives while a run is active is skipped (like
  a CronJob with ``concurrencyPolicy: Forbid``); after downtime only the latest missed slot fires;
- a new ``runNow`` value starts a run at once, replacing an active one;
- a new ``retryFailed`` value redoes the last run's failures, once no run is active;
- ``suspend: true`` stops the active run and scales workers to zero;
- spec changes apply from the next run; handler changes reach the active run's workers at once.

The workers and the status are decided in :mod:`.report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from irods_ingest_operator.builders.conditions import Health, health_conditions
from irods_ingest_operator.builders.names import worker_deployment_name
from irods_ingest_operator.builders.text import parse_time
from irods_ingest_operator.constants import (
    MEMO_RETRY_FAILED,
    MEMO_RUN_NOW,
    MEMO_SCHEDULE_SLOT,
    MEMO_STARTED_ONCE,
    EventReason,
    EventType,
    Reason,
)
from irods_ingest_operator.reconcile import messages
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
    StopRun,
    UseHandler,
    WriteStatus,
)
from irods_ingest_operator.reconcile.observed import Observed
from irods_ingest_operator.reconcile.policy import Policy
from irods_ingest_operator.reconcile.report import report
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
    return Decision(changes=changes, report=report(observed, policy, now))


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
        if any(problem.field == "event_handler" for problem in observed.config_error.problems):
            return Refusal(Reason.HANDLER_ERROR, str(observed.config_error), EventReason.HANDLER_ERROR)
        return Refusal(Reason.INVALID_SPEC, str(observed.config_error), EventReason.INVALID_SPEC)
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
    """Stalled, with the reason and every problem; one Event per new message. Workers of an
    active run keep going on its stored (valid) config; none start anew."""
    old_conditions = list(observed.old_status.get("conditions") or [])
    previous = next((c for c in old_conditions if c.get("type") == "Stalled"), None)
    changes: list[Intent] = []
    if not previous or previous.get("status") != "True" or previous.get("message") != refusal.message:
        changes.append(PostEvent(refusal.event, refusal.message, EventType.WARNING))
    conditions = health_conditions(old_conditions, Health.STALLED, reason=refusal.reason, message=refusal.message,
                                   observed_generation=observed.generation, now=now)
    report: list[Intent] = []
    run, deployment = observed.run, observed.deployment
    if (run is None or not run.active) and deployment is not None and deployment.controller_uid == observed.job.uid:
        report.append(ScaleDeployment(0))  # never another's Deployment
    report.append(WriteStatus({"observedGeneration": observed.generation, "conditions": conditions}))
    return Decision(changes=tuple(changes), report=tuple(report))


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
    """Start, stop or retry a run, by the spec and the operator's notes; with an active run and
    nothing started, hand the run the current handler."""
    spec, run, config = observed.spec, observed.run, observed.config
    assert spec is not None and run is not None and config is not None, "decided only for a job that can run"
    if observed.started_run is not None:
        return ()  # a pass starts at most one run
    changes = _run_trigger(observed, now)
    starts = any(isinstance(intent, StartRun | RetryFailed) for intent in changes)
    if run.active and not starts:
        changes += (UseHandler(config.handler_hash, f"event handler updated for run {run.run_id}"),)
    return changes


def _run_trigger(observed: Observed, now: datetime) -> tuple[Intent, ...]:
    spec, run, config, memo = observed.spec, observed.run, observed.config, observed.memo
    assert spec is not None and run is not None and config is not None
    if spec.suspend:
        if run.active:
            return (StopRun("suspended", EventReason.SUSPENDED, f"run {run.run_id} stopped: the SyncJob is suspended"),)
        return ()
    if spec.run_now and spec.run_now != memo.get(MEMO_RUN_NOW):
        return (Remember(MEMO_RUN_NOW, spec.run_now), StartRun(config, force=True, why=f"runNow={spec.run_now}"))
    if spec.retry_failed and spec.retry_failed != memo.get(MEMO_RETRY_FAILED):
        if run.active:
            return ()  # acted on once the active run has ended
        return (Remember(MEMO_RETRY_FAILED, spec.retry_failed), RetryFailed(spec.retry_failed))
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
