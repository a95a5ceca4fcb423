"""One reconcile pass of a SyncJob: observe, decide, execute.

Idempotent; run on create/update/resume and on a short timer. Every decision reads the run
state from Redis (the source of truth for runs), so a restarted operator resumes without
starting a duplicate run. What the operator must remember between passes lives in the job's
Redis hash too (constants.MEMO_*), never in the SyncJob's spec.

A pass performs its decision's changes, then its report. When a change alters what the report
must show (a run started, the credential rotated), the pass updates its facts (reading the run
again after a start) and decides again; that decision's report is performed. When the credential
Secret turns out to be another's (which only writing it can tell), the pass decides again as a
stalled job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from irods_ingest_operator.reconcile.context import OperatorContext
from irods_ingest_operator.reconcile.decide import decide, decide_deletion
from irods_ingest_operator.reconcile.execute import Executor
from irods_ingest_operator.reconcile.observe import observe, run_facts
from irods_ingest_operator.refs import JobRef


@dataclass
class Outcome:
    """What one pass did: the status to write (the kopf handler patches it), the workers asked for,
    the run it started."""

    status: Mapping[str, Any] = field(default_factory=dict)
    desired_replicas: int = 0
    started_run: str | None = None


def reconcile(ctx: OperatorContext, body: Mapping[str, Any], now: datetime | None = None) -> Outcome:
    now = now or datetime.now(UTC)
    observed = observe(ctx, body)
    executor = Executor(ctx, observed.job, now)
    decision = decide(observed, ctx.policy, now)
    changes = executor.perform(decision.changes)
    if changes.secret_taken is not None:
        decision = decide(observed.with_changes(secret_conflict=changes.secret_taken), ctx.policy, now)
        executor.perform(decision.intents)
        return Outcome(status=executor.status)
    if changes.affects_report:
        if changes.rotated is not None:
            observed = observed.with_changes(credential=changes.rotated)
        if changes.started is not None:
            observed = observed.with_changes(started_run=changes.started, **run_facts(executor.job))
        decision = decide(observed, ctx.policy, now)
    executor.perform(decision.report)
    return Outcome(status=executor.status, desired_replicas=executor.replicas, started_run=changes.started)


def cleanup(ctx: OperatorContext, ref: JobRef) -> int:
    """On deletion: stop the run, remove the workers' Redis user and every Redis key of the job,
    forget the job (the Deployment and the credential Secret are garbage-collected). Returns
    the number of Redis keys removed."""
    executor = Executor(ctx, ref, datetime.now(UTC))
    executor.perform(decide_deletion())
    return executor.deleted_keys
