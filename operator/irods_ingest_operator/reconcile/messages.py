"""The words of conditions and Events (pure).

An error names the spec field first, then the object (a ConfigMap and its key, a Secret), then
the fix in parentheses, as :class:`~irods_ingest_operator.spec.SpecProblem` does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from irods_ingest.actions import RunStatus
from irods_ingest.errors import ConfigError

HANDLER_FIELD = "spec.handler.configMapRef"
_HANDLER_BY_HASH = re.compile(r"<event handler [0-9a-f]{8,128}>")  # as workers compile it (handlers.loader)

# The engine's JobConfig fields, as a SyncJob author knows them.
_SPEC_FIELDS = {
    "source_path": "spec.source.path",
    "target_collection": "spec.destination.collection",
    "resource": "spec.destination.resource",
    "operation": "spec.operation",
    "delete_mode": "spec.deleteMode",
    "exclude_names": "spec.filter.excludeNames",
    "exclude_directories": "spec.filter.excludeDirectories",
    "include_names": "spec.filter.includeNames",
    "files_per_task": "spec.workers.filesPerTask",
    "max_retries": "spec.workers.maxRetries",
    "retry_backoff_seconds": "spec.workers.retryBackoffSeconds",
    "task_timeout_seconds": "spec.workers.taskTimeoutSeconds",
    "metadata": "spec.metadata",
}


def ready_message(run: RunStatus) -> str:
    if run.state == "none":
        return "waiting for the first run"
    return f"last run {run.run_id} {run.state}"


def handler_origin(namespace: str, config_map: str, key: str) -> str:
    """How the handler is named in every message: the operator hands this to the engine too."""
    return f"event handler (ConfigMap {namespace}/{config_map}, key {key!r})"


def run_message(run: RunStatus, handler_origin: str = "") -> str:
    """The run's outcome; a worker's error naming the handler by its hash names its ConfigMap instead."""
    c = run.counters
    text = (
        f"run {run.run_id} {run.state}: {c['files_synced']} synced, {c['files_unchanged']} unchanged, "
        f"{c['files_failed']} failed, {c['files_skipped']} skipped of {c['files_discovered']} discovered"
    )
    if c["tasks_failed"]:
        text += f"; {c['tasks_failed']} tasks failed (see recentFailures)"
    error = run.error
    if error and handler_origin:
        error = _HANDLER_BY_HASH.sub(handler_origin, error)
    return f"{text}; {error}" if error else text


def run_in_progress(run: RunStatus, pending: str) -> str:
    text = f"run {run.run_id} in progress"
    return f"{text}; {pending}" if pending else text


def run_started(run_id: str, why: str) -> str:
    return f"run {run_id} started ({why})"


def nothing_to_retry() -> str:
    return "retryFailed: the last run has nothing to retry"


# --- Suspension -------------------------------------------------------------------------------
def suspended(run: RunStatus) -> str:
    """The Suspended Event and condition: what waits."""
    if run.active:
        waiting = run.queued + run.delayed + run.in_flight
        return (f"run {run.run_id} paused: workers scaled to zero, its {waiting} tasks wait in Redis; "
                "set spec.suspend to false to continue it")
    return "suspended: no run starts and workers are scaled to zero until spec.suspend is false"


def resumed(run: RunStatus, run_now: str | None) -> str:
    if run_now:
        paused = f", replacing paused run {run.run_id}" if run.active else ""
        return f"resumed: runNow={run_now} starts a run{paused}"
    if run.active:
        return f"resumed: run {run.run_id} continues where it was"
    return "resumed: runs start again"


# --- Refusals ---------------------------------------------------------------------------------
def handler_config_map_missing(namespace: str, name: str) -> str:
    return f"{HANDLER_FIELD}: ConfigMap {namespace}/{name} not found (create it, or fix the name)"


def handler_key_missing(namespace: str, name: str, key: str, keys: Sequence[str]) -> str:
    has = f"it has {', '.join(repr(k) for k in keys)}" if keys else "it has no keys"
    return (f"{HANDLER_FIELD}.key: ConfigMap {namespace}/{name} has no key {key!r}; {has} "
            f"(add the key, or set {HANDLER_FIELD}.key to one of them)")


def config_refused(error: ConfigError) -> str:
    """The engine's refusal of the prepared config, in the spec's words (a handler's problem
    names its ConfigMap and key already: the operator hands them to the engine as its origin)."""
    parts = []
    for problem in error.problems:
        if problem.field == "event_handler":
            parts.append(f"{HANDLER_FIELD}: {problem.message} (fix the module in that ConfigMap)")
            continue
        field = _SPEC_FIELDS.get(problem.field, problem.field)
        parts.append(f"{field}: {problem.message}" + (f" ({problem.fix})" if problem.fix else ""))
    return "; ".join(parts)


def deployment_taken(namespace: str, name: str) -> str:
    return (
        f"Deployment {namespace}/{name} already exists and is not this SyncJob's workers; "
        "rename the SyncJob (or remove that Deployment)"
    )


# --- The rest ---------------------------------------------------------------------------------
def credential_rotated(version: int) -> str:
    return f"workers' Redis credential rotated (version {version}); pods roll onto it"


def cleanup_incomplete(job: str, attempts: int, error: str) -> str:
    return f"Redis state of {job} was not removed after {attempts} attempts: {error}"


def failures_not_published(error: str) -> str:
    """The failures ConfigMap could not be written: another's of that name, or a refusal."""
    return f"the run's failures are not published: {error}"
