"""The second half of a decision: size the workers and show the job (pure).

Desired workers = ceil((queued + delayed + in-flight tasks) / concurrency) within
[minReplicas, maxReplicas], at least one while a run is active. Scale-up is immediate;
scale-down during a run goes only to the highest value recommended within the stabilisation
window (as the HorizontalPodAutoscaler does). When nothing runs, or the job is suspended, the
workers go straight to the floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from irods_ingest.actions import RunStatus
from irods_ingest_operator.builders.conditions import Health, health_conditions, run_outcome_conditions
from irods_ingest_operator.builders.deployment import build_worker_deployment
from irods_ingest_operator.builders.names import job_redis_endpoint
from irods_ingest_operator.builders.scaling import desired_replicas, stabilize_replicas
from irods_ingest_operator.builders.status import build_status
from irods_ingest_operator.constants import MEMO_REPORTED_RUN, EventReason, Reason
from irods_ingest_operator.reconcile import messages
from irods_ingest_operator.reconcile.intents import (
    AnnounceRunEnd,
    ApplyDeployment,
    ForgetScaleHistory,
    Intent,
    PostEvent,
    RememberScaleHistory,
    ReportMetrics,
    WriteStatus,
)
from irods_ingest_operator.reconcile.observed import Observed
from irods_ingest_operator.reconcile.policy import Policy
from irods_ingest_operator.spec import SyncJobSpec, next_fire_time

_OUTCOME_REASONS = {"done": Reason.RUN_SUCCEEDED, "failed": Reason.RUN_FAILED, "stopped": Reason.RUN_STOPPED}


def report(observed: Observed, policy: Policy, now: datetime) -> tuple[Intent, ...]:
    spec, run = observed.spec, observed.run
    assert spec is not None and run is not None, "reported only for a job that can run"
    intents: list[Intent] = []
    replicas = _scale(observed, spec, run, policy, now, intents)
    ready = observed.deployment.ready if observed.deployment else 0
    last_sync = last_successful_sync(run, observed.history)
    intents.append(ReportMetrics(queued=run.queued + run.delayed, in_flight=run.in_flight, desired=replicas,
                                 ready=ready, active=run.active, last_sync=last_sync))
    if _run_end_unannounced(run, observed.memo):
        assert run.run_id is not None
        intents.append(AnnounceRunEnd(run.run_id, succeeded=run.state == "done", message=messages.run_message(run)))
    status = build_status(
        run,
        observed_generation=observed.generation,
        conditions=conditions(observed, spec, run, now),
        desired_replicas=replicas,
        ready_replicas=ready,
        recent_failures=observed.failures,
        last_sync=last_sync,
        next_sync=next_fire_time(spec.schedule, now) if spec.schedule and not spec.suspend else None,
    )
    intents.append(WriteStatus(status))
    return tuple(intents)


def _scale(observed: Observed, spec: SyncJobSpec, run: RunStatus, policy: Policy, now: datetime,
           intents: list[Intent]) -> int:
    wanted = desired_replicas(
        queued=run.queued + run.delayed if run.active else 0,
        in_flight=run.in_flight if run.active else 0,
        concurrency=spec.workers.concurrency,
        min_replicas=spec.workers.min_replicas,
        max_replicas=spec.workers.max_replicas,
        suspended=spec.suspend,
    )
    if run.active and not spec.suspend:
        wanted = max(wanted, 1)  # an active run always has a worker, even between tasks
    current = observed.deployment.replicas if observed.deployment else 0
    if spec.suspend or not run.active:
        # Nothing to do (finished, never started, or suspended): straight to the floor.
        # The stabilisation window only smooths the ups and downs of a running queue.
        replicas = wanted
        intents.append(ForgetScaleHistory())
    else:
        decision = stabilize_replicas(desired=wanted, current=current, history=observed.scale_history, now=now,
                                      window=policy.scale_down_window)
        replicas = decision.replicas
        intents.append(RememberScaleHistory(decision.history))
    if observed.credential is None:
        redis, credential_version = policy.worker_redis, None
    else:
        redis, credential_version = job_redis_endpoint(observed.job.name), observed.credential.tag
    manifest = build_worker_deployment(
        observed.job,
        spec,
        replicas=replicas,
        image_default=policy.worker_image,
        redis=redis,
        service_account_name=policy.worker_service_account,
        pod_policy=policy.pod_policy,
        credential_version=credential_version,
    )
    intents.append(ApplyDeployment(manifest, replicas))
    if current != replicas:
        intents.append(PostEvent(EventReason.SCALED_WORKERS, f"workers scaled from {current} to {replicas}"))
    return replicas


def conditions(observed: Observed, spec: SyncJobSpec, run: RunStatus, now: datetime) -> list[dict[str, Any]]:
    """Ready/Reconciling/Stalled for the job; Succeeded/Failed for its last finished run."""
    generation = observed.generation
    found = list(observed.old_status.get("conditions") or [])
    if spec.suspend:
        found = health_conditions(found, Health.READY, reason=Reason.SUSPENDED,
                                  message="suspended: no runs start and workers are scaled to zero",
                                  observed_generation=generation, now=now)
    elif run.active:
        found = health_conditions(found, Health.RECONCILING, reason=Reason.RUN_IN_PROGRESS,
                                  message=f"run {run.run_id} in progress", observed_generation=generation, now=now)
    else:
        waiting = Reason.WAITING_FOR_SCHEDULE if spec.schedule else Reason.RECONCILED
        found = health_conditions(found, Health.READY, reason=waiting, message=messages.ready_message(run),
                                  observed_generation=generation, now=now)
    if run.state in _OUTCOME_REASONS:
        reason = _OUTCOME_REASONS[run.state]
        if run.state == "failed" and "event handler" in run.error:
            # The workers found the handler broken (the operator never runs it): say so.
            reason = Reason.HANDLER_ERROR
        found = run_outcome_conditions(found, succeeded=run.state == "done", reason=reason,
                                       message=messages.run_message(run), observed_generation=generation, now=now)
    return found


def last_successful_sync(run: RunStatus, history: Sequence[Mapping[str, Any]]) -> datetime | None:
    if run.state == "done" and run.ended:
        return datetime.fromtimestamp(run.ended, UTC)
    for past in history:
        if past.get("state") == "done" and past.get("ended"):
            return datetime.fromtimestamp(float(past["ended"]), UTC)
    return None


def _run_end_unannounced(run: RunStatus, memo: Mapping[str, str]) -> bool:
    """One Event per finished run (remembered in Redis, so a restart does not repeat it)."""
    if run.active or run.run_id is None or run.state not in ("done", "failed"):
        return False
    return memo.get(MEMO_REPORTED_RUN) != run.run_id

