"""Which spec edits apply when (pure).

- at once: ``workers.image``, ``imagePullPolicy``, ``minReplicas``, ``maxReplicas``,
  ``concurrency`` and ``resources`` (the Deployment), ``suspend``, ``runNow``, ``retryFailed``,
  ``schedule``, and the event handler (its ConfigMap's content, or which ConfigMap: handed to the
  active run's workers);
- from the next run: everything the run's tasks were planned with (its stored config):
  source, destination, operation, deleteMode, filter, metadata, the engine's ``workers``
  settings (``filesPerTask``, ``maxRetries``, ``retryBackoffSeconds``, ``taskTimeoutSeconds``),
  ``initialIngest``, ``ignoreCache``, ``symlinks`` and ``verifyChecksum``.

While a run is active, the difference between its config and the one the spec makes now is
what waits for the next run; the status and an Event say so, field by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from irods_ingest.config import JobConfig

# JobConfig field (its to_dict key) -> the spec field a user edits.
NEXT_RUN_FIELDS: Final[Mapping[str, str]] = MappingProxyType({
    "source_path": "spec.source.path",
    "s3": "spec.source.s3",
    "target_collection": "spec.destination.collection",
    "resource": "spec.destination.resource",
    "operation": "spec.operation",
    "delete_mode": "spec.deleteMode",
    "exclude_types": "spec.filter.excludeTypes",
    "exclude_names": "spec.filter.excludeNames",
    "exclude_directories": "spec.filter.excludeDirectories",
    "include_names": "spec.filter.includeNames",
    "metadata": "spec.metadata",
    "files_per_task": "spec.workers.filesPerTask",
    "max_retries": "spec.workers.maxRetries",
    "retry_backoff_seconds": "spec.workers.retryBackoffSeconds",
    "task_timeout_seconds": "spec.workers.taskTimeoutSeconds",
    "initial_ingest": "spec.initialIngest",
    "ignore_cache": "spec.ignoreCache",
    "symlinks": "spec.symlinks",
    "verify_checksum": "spec.verifyChecksum",
})


def pending_changes(running: JobConfig | None, current: JobConfig | None) -> tuple[str, ...]:
    """The spec fields whose edits wait for the next run (none without an active run's config)."""
    if running is None or current is None:
        return ()
    was, now = running.to_dict(), current.to_dict()
    return tuple(field for key, field in NEXT_RUN_FIELDS.items() if was.get(key) != now.get(key))


def pending_text(fields: tuple[str, ...]) -> str:
    """``spec.destination.collection changed: applies from the next run`` (one sentence for all)."""
    if not fields:
        return ""
    verb = "changed: applies" if len(fields) == 1 else "changed: apply"
    return f"{', '.join(fields)} {verb} from the next run"
