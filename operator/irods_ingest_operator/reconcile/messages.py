"""The words of conditions and Events (pure)."""

from __future__ import annotations

from irods_ingest.actions import RunStatus


def ready_message(run: RunStatus) -> str:
    if run.state == "none":
        return "waiting for the first run"
    return f"last run {run.run_id} {run.state}"


def run_message(run: RunStatus) -> str:
    c = run.counters
    text = (
        f"run {run.run_id} {run.state}: {c['files_synced']} synced, {c['files_unchanged']} unchanged, "
        f"{c['files_failed']} failed, {c['files_skipped']} skipped of {c['files_discovered']} discovered"
    )
    if c["tasks_failed"]:
        text += f"; {c['tasks_failed']} tasks failed (see recentFailures)"
    return f"{text}; {run.error}" if run.error else text


def run_started(run_id: str, why: str) -> str:
    return f"run {run_id} started ({why})"


def nothing_to_retry() -> str:
    return "retryFailed: the last run has nothing to retry"


def credential_rotated(version: int) -> str:
    return f"workers' Redis credential rotated (version {version}); pods roll onto it"


def deployment_taken(namespace: str, name: str) -> str:
    return (
        f"Deployment {namespace}/{name} already exists and is not this SyncJob's workers; "
        "rename the SyncJob (or remove that Deployment)"
    )


def cleanup_incomplete(job: str, attempts: int, error: str) -> str:
    return f"Redis state of {job} was not removed after {attempts} attempts: {error}"
