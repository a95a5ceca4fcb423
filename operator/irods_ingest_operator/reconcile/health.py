"""What the conditions and ``status.phase`` say about a job (pure).

kstatus (Flux, kpt, cli-utils) and Argo CD read Ready / Reconciling / Stalled with
``observedGeneration``; they mean, for a SyncJob:

| the job                                            | Ready            | Reconciling | Stalled | phase      |
|----------------------------------------------------|------------------|-------------|---------|------------|
| a run is active, its workers ready or starting     | False RunInProgress | True     | False   | Running    |
| workers wanted, none ready past the grace period   | False WorkersNotReady | False  | True    | (as is)    |
| idle after a successful run, or waiting for a slot | True             | False       | False   | Succeeded / Waiting |
| idle after a failed run (a wrong password, files that failed) | False RunFailed | False | True | Failed  |
| idle after a run stopped on request                | True             | False       | False   | Stopped    |
| suspended (an active run paused)                   | True Suspended   | False       | False   | Suspended  |
| the spec (or a name it needs) cannot run           | False <refusal>  | False       | True    | Invalid    |

Succeeded / Failed describe the last finished run (a run stopped on request: both False,
reason RunStopped); Suspended is True while ``spec.suspend`` holds (written once the job was
ever suspended, as a batch/v1 Job's); WorkersReady comes from :mod:`.workers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from irods_ingest.actions import RunStatus
from irods_ingest_operator.builders.conditions import (
    Health,
    build_condition,
    health_conditions,
    merge_conditions,
    run_outcome_conditions,
)
from irods_ingest_operator.constants import ConditionType, Phase, Reason
from irods_ingest_operator.reconcile import messages
from irods_ingest_operator.reconcile.observed import Observed
from irods_ingest_operator.reconcile.workers import Workers
from irods_ingest_operator.spec import SyncJobSpec

_OUTCOME_REASONS = {"done": Reason.RUN_SUCCEEDED, "failed": Reason.RUN_FAILED, "stopped": Reason.RUN_STOPPED}
_IDLE_PHASES = {"done": Phase.SUCCEEDED, "failed": Phase.FAILED, "stopped": Phase.STOPPED}


def job_conditions(observed: Observed, spec: SyncJobSpec, run: RunStatus, workers: Workers, pending: str,
                   now: datetime) -> list[dict[str, Any]]:
    """Every condition of a job that can run."""
    generation = observed.generation
    found = list(observed.old_status.get("conditions") or [])
    health, reason, message = _summary(observed, spec, run, workers, pending)
    found = health_conditions(found, health, reason=reason, message=message, observed_generation=generation, now=now)
    found = merge_conditions(found, [workers.condition])
    if spec.suspend or any(c.get("type") == ConditionType.SUSPENDED for c in found):
        suspended = build_condition(
            ConditionType.SUSPENDED, spec.suspend, reason=Reason.SUSPENDED if spec.suspend else Reason.RESUMED,
            message=_paused(run, pending) if spec.suspend else "spec.suspend is false",
            observed_generation=generation, now=now)
        found = merge_conditions(found, [suspended])
    return outcome_conditions(found, observed, run, now)


def stalled_conditions(observed: Observed, reason: Reason, message: str, now: datetime) -> list[dict[str, Any]]:
    """A job whose spec cannot run: Stalled with the refusal; the outcome of a run that went on
    with its stored config (an edit that made the spec invalid never hides it)."""
    found = list(observed.old_status.get("conditions") or [])
    found = health_conditions(found, Health.STALLED, reason=reason, message=message,
                              observed_generation=observed.generation, now=now)
    return outcome_conditions(found, observed, observed.run, now) if observed.run is not None else found


def outcome_conditions(found: list[dict[str, Any]], observed: Observed, run: RunStatus,
                       now: datetime) -> list[dict[str, Any]]:
    """Succeeded / Failed for the last finished run."""
    if run.state not in _OUTCOME_REASONS:
        return found
    reason = _OUTCOME_REASONS[run.state]
    if run.state == "failed" and "event handler" in run.error:
        reason = Reason.HANDLER_ERROR  # the workers found the handler broken (the operator never runs it)
    return run_outcome_conditions(found, succeeded=run.state == "done", stopped=run.state == "stopped", reason=reason,
                                  message=messages.run_message(run, handler_origin_of(observed)),
                                  observed_generation=observed.generation, now=now)


def phase_of(spec: SyncJobSpec, run: RunStatus) -> Phase:
    if spec.suspend:
        return Phase.SUSPENDED
    if run.active:
        return Phase.RUNNING
    return _IDLE_PHASES.get(run.state, Phase.WAITING)


def handler_origin_of(observed: Observed) -> str:
    spec = observed.spec
    if spec is None or spec.handler is None:
        return ""
    return messages.handler_origin(observed.job.namespace, spec.handler.config_map_name, spec.handler.key)


def _summary(observed: Observed, spec: SyncJobSpec, run: RunStatus, workers: Workers,
             pending: str) -> tuple[Health, Reason, str]:
    if spec.suspend:
        return Health.READY, Reason.SUSPENDED, _paused(run, pending)
    if workers.trouble is not None:
        return Health.STALLED, Reason.WORKERS_NOT_READY, workers.message
    if run.active:
        return Health.RECONCILING, Reason.RUN_IN_PROGRESS, messages.run_in_progress(run, pending)
    if run.state == "failed":
        reason = Reason.HANDLER_ERROR if "event handler" in run.error else Reason.RUN_FAILED
        return Health.STALLED, reason, messages.run_message(run, handler_origin_of(observed))
    waiting = Reason.WAITING_FOR_SCHEDULE if spec.schedule else Reason.RECONCILED
    return Health.READY, waiting, messages.ready_message(run)


def _paused(run: RunStatus, pending: str) -> str:
    text = messages.suspended(run)
    return f"{text}; {pending}" if pending and run.active else text


def previous_condition(observed: Observed, kind: ConditionType) -> Mapping[str, Any] | None:
    return next((c for c in observed.old_status.get("conditions") or [] if c.get("type") == kind), None)
