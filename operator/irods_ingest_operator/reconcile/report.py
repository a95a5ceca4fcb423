"""The second half of a decision: size the workers and show the job (pure).

Desired workers = ceil((queued + delayed + in-flight tasks) / concurrency) within
[minReplicas, maxReplicas], at least one while a run is active. Scale-up is immediate;
scale-down during a run goes only to the highest value recommended within the stabilisation
window (as the HorizontalPodAutoscaler does). When nothing runs, or the job is suspended (an
active run is then paused: its tasks wait in Redis), the workers go straight to the floor.

What the job shows: its conditions and phase (:mod:`.health`), the run's counts and times,
the workers' readiness (:mod:`.workers`), edits waiting for the next run (:mod:`.edits`), the
run's failures in its ConfigMap, and one Event per cause (:mod:`.once`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from irods_ingest.actions import RunStatus
from irods_ingest_operator.builders.deployment import (
    applied_digest,
    build_worker_deployment,
    with_applied_digest,
)
from irods_ingest_operator.builders.failures import build_failures_config_map, failures_signature
from irods_ingest_operator.builders.names import job_redis_endpoint
from irods_ingest_operator.builders.scaling import desired_replicas, stabilize_replicas
from irods_ingest_operator.builders.status import build_status
from irods_ingest_operator.constants import (
    MEMO_FAILURES_WRITTEN,
    MEMO_REPORTED_RUN,
    ConditionType,
    EventReason,
    EventType,
)
from irods_ingest_operator.reconcile import messages
from irods_ingest_operator.reconcile.edits import pending_changes, pending_text
from irods_ingest_operator.reconcile.health import (
    handler_origin_of,
    job_conditions,
    phase_of,
    previous_condition,
)
from irods_ingest_operator.reconcile.intents import (
    AnnounceRunEnd,
    ApplyDeployment,
    ForgetScaleHistory,
    Intent,
    PostEvent,
    RememberScaleHistory,
    ReportMetrics,
    WriteFailures,
    WriteStatus,
)
from irods_ingest_operator.reconcile.observed import Observed
from irods_ingest_operator.reconcile.once import TOPIC_PENDING, TOPIC_WORKERS, cleared, post_once
from irods_ingest_operator.reconcile.policy import Policy
from irods_ingest_operator.reconcile.workers import assess_workers
from irods_ingest_operator.spec import SyncJobSpec, next_fire_time


def report(observed: Observed, policy: Policy, now: datetime) -> tuple[Intent, ...]:
    spec, run = observed.spec, observed.run
    assert spec is not None and run is not None, "reported only for a job that can run"
    intents: list[Intent] = []
    replicas = _scale(observed, spec, run, policy, now, intents)
    ready = observed.deployment.ready if observed.deployment else 0
    last_sync = last_successful_sync(run, observed.history)
    intents.append(ReportMetrics(queued=run.queued + run.delayed, in_flight=run.in_flight, desired=replicas,
                                 ready=ready, active=run.active, last_sync=last_sync))
    intents += run_end_and_failures(observed, run)
    # A suspended job wants no workers: none can be missing (the Deployment read may still ask for some).
    deployment = None if spec.suspend else observed.deployment
    workers = assess_workers(deployment, observed.pods, pods_error=observed.pods_error,
                             previous=previous_condition(observed, ConditionType.WORKERS_READY),
                             grace=policy.workers_not_ready_after, generation=observed.generation, now=now)
    if workers.trouble is not None:
        intents += post_once(observed, TOPIC_WORKERS, workers.trouble.cause,
                             PostEvent(EventReason.WORKERS_NOT_READY, workers.message, EventType.WARNING),
                             shown=_shown(observed, ConditionType.WORKERS_READY))
    else:
        intents += cleared(observed, TOPIC_WORKERS)
    pending = pending_text(pending_changes(observed.running_config, observed.config)) if run.active else ""
    if pending:
        message = f"run {run.run_id} goes on as it started; {pending}"
        intents += post_once(observed, TOPIC_PENDING, pending, PostEvent(EventReason.SPEC_CHANGE_PENDING, message),
                             shown=_shown(observed, ConditionType.RECONCILING) + _shown(observed, ConditionType.SUSPENDED))
    else:
        intents += cleared(observed, TOPIC_PENDING)
    status = build_status(
        run,
        observed_generation=observed.generation,
        conditions=job_conditions(observed, spec, run, workers, pending, now),
        desired_replicas=replicas,
        ready_replicas=ready,
        recent_failures=observed.failures,
        last_sync=last_sync,
        next_sync=next_fire_time(spec.schedule, now) if spec.schedule and not spec.suspend else None,
    )
    status["phase"] = str(phase_of(spec, run))
    intents.append(WriteStatus(status))
    return tuple(intents)


def run_end_and_failures(observed: Observed, run: RunStatus) -> tuple[Intent, ...]:
    """What a run reports besides the status, whether or not the spec is valid now: its end
    (one Event per run) and its failures ConfigMap (written when they or its state change)."""
    intents: list[Intent] = []
    if _run_end_unannounced(run, observed.memo):
        assert run.run_id is not None
        intents.append(AnnounceRunEnd(run.run_id, succeeded=run.state == "done",
                                      message=messages.run_message(run, handler_origin_of(observed))))
    signature = failures_signature(run, observed.failure_count)
    if run.run_id and observed.all_failures is not None and signature != observed.memo.get(MEMO_FAILURES_WRITTEN):
        manifest = build_failures_config_map(observed.job, run, observed.all_failures, observed.failure_count)
        intents.append(WriteFailures(manifest, signature))
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
    manifest = with_applied_digest(build_worker_deployment(
        observed.job,
        spec,
        replicas=replicas,
        image_default=policy.worker_image,
        redis=redis,
        service_account_name=policy.worker_service_account,
        pod_policy=policy.pod_policy,
        credential_version=credential_version,
    ))
    # Applied only when it would change something: a new Deployment, another digest (the spec,
    # the credential version, the admin's settings), other replicas. An idle job writes nothing.
    # A hand edit of the Deployment's template is undone at its job's next change, not each pass.
    deployment = observed.deployment
    if deployment is None or deployment.applied != applied_digest(manifest) or deployment.replicas != replicas:
        intents.append(ApplyDeployment(manifest, replicas))
    if current != replicas:
        intents.append(PostEvent(EventReason.SCALED_WORKERS, f"workers scaled from {current} to {replicas}"))
    return replicas


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


def _shown(observed: Observed, kind: ConditionType) -> str:
    """The message of the ``kind`` condition in the status read this pass (a restart's evidence)."""
    return str((previous_condition(observed, kind) or {}).get("message", ""))
