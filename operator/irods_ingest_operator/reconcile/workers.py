"""Are the workers there? The WorkersReady condition, and the cause when they never get ready (pure).

Workers are wanted when the Deployment asks for replicas. If none is ready, the condition is
False from that moment on (its lastTransitionTime says since when): ``WorkersStarting`` within
the admin's grace period (``Policy.workers_not_ready_after``, 60 s by default), then
``WorkersNotReady`` with the cause read from the Deployment and its pods, which also makes
the job Stalled: its run cannot progress until somebody fixes what the cause names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from irods_ingest_operator.builders.conditions import build_condition
from irods_ingest_operator.builders.text import parse_time, shorten
from irods_ingest_operator.constants import ConditionType, Reason
from irods_ingest_operator.refs import ContainerFacts, DeploymentState, PodFacts

MAX_CAUSE_CHARS: Final = 600
# Waiting reasons that are a normal step of a start, not yet trouble.
_STARTING: Final = frozenset({"ContainerCreating", "PodInitializing"})


@dataclass(frozen=True)
class Trouble:
    cause: str  # "CreateContainerConfigError: secret \"irods-conn\" not found"
    pod: str = ""  # the pod it was read from


@dataclass(frozen=True)
class Workers:
    """The verdict on the workers: the WorkersReady condition and, past the grace period, the trouble."""

    condition: dict[str, Any]
    trouble: Trouble | None = None

    @property
    def message(self) -> str:
        return str(self.condition.get("message", ""))


def assess_workers(deployment: DeploymentState | None, pods: Sequence[PodFacts], *, pods_error: str,
                   previous: Mapping[str, Any] | None, grace: timedelta, generation: int, now: datetime) -> Workers:
    """``previous``: the WorkersReady condition the status holds (its lastTransitionTime is when
    the workers stopped being ready)."""
    def condition(ready: bool, reason: Reason, message: str) -> dict[str, Any]:
        return build_condition(ConditionType.WORKERS_READY, ready, reason=reason, message=message,
                               observed_generation=generation, now=now)

    if deployment is None or deployment.replicas == 0:
        return Workers(condition(True, Reason.NO_WORKERS_NEEDED, "no workers wanted"))
    wanted = deployment.replicas
    if deployment.ready > 0:
        return Workers(condition(True, Reason.WORKERS_READY, f"{deployment.ready}/{wanted} workers ready"))
    since = now
    if previous is not None and previous.get("status") == "False":
        since = parse_time(previous.get("lastTransitionTime")) or now
    if now - since < grace:
        return Workers(condition(False, Reason.WORKERS_STARTING, f"0/{wanted} workers ready: starting"))
    trouble = worker_trouble(deployment, pods, pods_error=pods_error)
    where = f" (pod {trouble.pod})" if trouble.pod else ""
    seconds = int(grace.total_seconds())
    message = f"0/{wanted} workers ready for more than {seconds}s: {trouble.cause}{where}"
    return Workers(condition(False, Reason.WORKERS_NOT_READY, message), trouble)


def worker_trouble(deployment: DeploymentState, pods: Sequence[PodFacts], *, pods_error: str = "") -> Trouble:
    """The most telling reason why no worker is ready: the Deployment's failure to make pods,
    then a container's waiting reason (a crash loop with its last log line), then scheduling."""
    if deployment.failure:
        return Trouble(shorten(deployment.failure, MAX_CAUSE_CHARS))
    for pod in pods:
        for container in pod.containers:
            cause = _container_trouble(container)
            if cause:
                return Trouble(shorten(cause, MAX_CAUSE_CHARS), pod.name)
    for pod in pods:
        if pod.unschedulable:
            return Trouble(shorten(f"Unschedulable: {pod.unschedulable}", MAX_CAUSE_CHARS), pod.name)
    if pods_error:
        return Trouble(shorten(f"the worker pods could not be read: {pods_error}", MAX_CAUSE_CHARS))
    if not pods:
        return Trouble("no worker pod exists (see the Events of the Deployment's ReplicaSet)")
    pod = pods[0]
    starting = next((c.waiting_reason for c in pod.containers if c.waiting_reason), "")
    if starting:
        return Trouble(f"{starting}: still starting (see the pod's Events)", pod.name)
    if not pod.scheduled:
        return Trouble(f"{pod.phase}: not scheduled to a node yet", pod.name)
    return Trouble(f"{pod.phase}: not ready", pod.name)


def _container_trouble(container: ContainerFacts) -> str:
    reason = container.waiting_reason
    if not reason or reason in _STARTING:
        return ""
    if reason == "CrashLoopBackOff":
        return f"CrashLoopBackOff: {_last_words(container)}"
    return f"{reason}: {container.waiting_message}" if container.waiting_message else reason


def _last_words(container: ContainerFacts) -> str:
    """What the dead instance said last: its log's last line, else its termination message's."""
    if container.last_log_line:
        return container.last_log_line
    lines = [line.strip() for line in container.last_message.splitlines() if line.strip()]
    if lines:
        return lines[-1]
    if container.last_exit_code is not None:
        return f"exited with code {container.last_exit_code}" + (f" ({container.last_reason})" if container.last_reason else "")
    return container.waiting_message or "restarting"
