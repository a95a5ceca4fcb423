"""The SyncJob's status body, its texts, and the merge patch that writes it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from irods_ingest.actions import RunStatus
from irods_ingest_operator.builders.text import format_time, shorten
from irods_ingest_operator.constants import RunOutcome

MAX_FAILURE_PATH_CHARS: Final = 1024
MAX_FAILURE_REASON_CHARS: Final = 512
_OUTCOMES: Final = {"done": RunOutcome.SUCCEEDED, "failed": RunOutcome.FAILED}


def build_status(
    run: RunStatus,
    *,
    observed_generation: int,
    conditions: list[dict[str, Any]],
    desired_replicas: int,
    ready_replicas: int,
    recent_failures: Sequence[Mapping[str, Any]],
    last_sync: datetime | None,
    next_sync: datetime | None,
) -> dict[str, Any]:
    """status of a valid SyncJob: its run's counts and times, its workers, its latest failures."""
    c = run.counters
    status: dict[str, Any] = {
        "observedGeneration": observed_generation,
        "conditions": conditions,
        "files": {
            "discovered": c["files_discovered"],
            "synced": c["files_synced"],
            "unchanged": c["files_unchanged"],
            "skipped": c["files_skipped"],
            "excluded": c["files_excluded"],
            "failed": c["files_failed"],
            "deleted": c["files_deleted"],
        },
        "bytes": {"discovered": c["bytes_discovered"], "synced": c["bytes_synced"]},
        "collections": {"deleted": c.get("collections_deleted", 0)},
        "tasks": {
            "queued": run.queued + run.delayed,
            "inFlight": run.in_flight,
            "done": c["tasks_done"],
            "failed": c["tasks_failed"],
        },
        "workers": {"desired": desired_replicas, "ready": ready_replicas},
        # Worker-written records: each checked and cut to size before it reaches the status.
        "recentFailures": [failure_summary(f) for f in recent_failures],
    }
    if c.get("failures_dropped"):
        status["failuresNotRecorded"] = c["failures_dropped"]
    if run.run_id:
        status["run"] = {"id": run.run_id}
        if run.started:
            status["run"]["startTime"] = format_time(datetime.fromtimestamp(run.started, UTC))
        if run.ended and not run.active:
            status["run"]["completionTime"] = format_time(datetime.fromtimestamp(run.ended, UTC))
            status["run"]["outcome"] = str(_OUTCOMES.get(run.state, RunOutcome.STOPPED))
    if last_sync is not None:
        status["lastSyncTime"] = format_time(last_sync)
    if next_sync is not None:
        status["nextSyncTime"] = format_time(next_sync)
    processed = c["files_synced"] + c["files_unchanged"] + c["files_failed"]
    progress = progress_text(discovered=c["files_discovered"], processed=processed, running=run.active)
    if progress is not None:
        status["progress"] = progress
    return status


def failure_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """One ``recentFailures`` entry from a failure record that a worker wrote: every field
    checked and cut to size, since anyone holding a worker's Redis credential can write
    records, and the status must stay small and valid whatever they wrote."""
    attempts = record.get("attempts", 1)
    moment = record.get("time", 0)
    try:
        attempts = min(max(int(attempts), 0), 1_000_000)
    except (TypeError, ValueError, OverflowError):
        attempts = 0
    try:
        when = datetime.fromtimestamp(min(max(float(moment), 0.0), 253402300799.0), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        when = datetime.fromtimestamp(0, UTC)
    return {
        "path": shorten(str(record.get("path") or "(run)"), MAX_FAILURE_PATH_CHARS),
        "reason": shorten(str(record.get("reason") or "unknown"), MAX_FAILURE_REASON_CHARS),
        "attempts": attempts,
        "time": format_time(when),
    }


def progress_text(*, discovered: int, processed: int, running: bool) -> str | None:
    """The printer column: files processed of files discovered so far ("+" while still running).

    None when there is nothing to show: leave status.progress out then (see build_condition on "").
    """
    if discovered <= 0:
        return "scanning" if running else None
    percent = min(100, processed * 100 // discovered)
    more = "+" if running else ""
    return f"{processed}/{discovered}{more} files ({percent}%)"


def merge_patch_for(old: Any, new: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` into ``new``, holding only what differs: fields we no
    longer report become None (removed), at every depth, since a merge patch merges nested
    objects; fields that hold the same value are left out. Empty when nothing changed, so an
    idle job's pass writes nothing (a patch that changes nothing is still a write request)."""
    patch: dict[str, Any] = {}
    previous_fields = old if isinstance(old, dict) else {}
    for key, value in new.items():
        previous = previous_fields.get(key)
        if isinstance(value, dict) and isinstance(previous, dict):
            nested = merge_patch_for(previous, value)
            if nested:
                patch[key] = nested
        elif key not in previous_fields or previous != value:
            patch[key] = value
    for key, value in previous_fields.items():
        if key not in new and value is not None:
            patch[key] = None
    return patch
