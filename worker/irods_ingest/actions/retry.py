"""Retrying what failed: a run that redoes exactly the last run's failures, without a rescan."""

from __future__ import annotations

import logging
import os
import stat

from irods_ingest.actions.runs import StartResult
from irods_ingest.config import JobConfig
from irods_ingest.errors import PermanentError
from irods_ingest.failures import FailureRecord
from irods_ingest.jobstate import FailureLog, RunState, StoredJob
from irods_ingest.store.connection import RedisClient
from irods_ingest.tasks import FileEntry, Task, TaskKind

log = logging.getLogger("irods_ingest.actions")


def retry_tasks(config: JobConfig, failures: list[FailureRecord], run_id: str) -> tuple[list[Task], int]:
    """Tasks that redo exactly what failed in the last run (no rescan), and how many files they hold."""
    root = config.source_root
    batches: dict[str, list[FileEntry]] = {}
    scans: set[str] = set()
    deletes: list[str] = []
    delete_collections: list[str] = []
    for record in failures:
        kind, path, outcome = record.get("kind"), str(record.get("path") or ""), record.get("outcome")
        if not path or outcome in ("skipped", "rejected"):  # rejected: a forged or malformed task, never redone
            continue
        if kind == "delete":
            if path.startswith("/"):  # a logical path (a dead-lettered task names its source directory)
                (delete_collections if record.get("collection") else deletes).append(path)
            continue
        relative = os.path.relpath(path, root) if path != root else ""
        if relative.startswith(".."):
            continue  # not under the source: nothing to redo here
        if kind == "scan" and outcome is None:
            scans.add("" if relative == "." else relative)  # a directory that could not be listed
            continue
        directory, name = os.path.split(relative)
        if config.s3 is not None:
            # An S3 object is synced as listed (with its ETag): relist its prefix; the change
            # cache keeps the objects that did sync from being copied again.
            scans.add(directory)
            continue
        try:
            st = os.lstat(path)
            entry = FileEntry(name, st.st_size, st.st_mtime_ns, "link" if stat.S_ISLNK(st.st_mode) else "regular")
        except OSError:
            entry = FileEntry(name, 0, 0)  # gone: the sync records it as vanished
        batches.setdefault(directory, []).append(entry)
    tasks: list[Task] = [Task(TaskKind.SCAN, run_id, directory=d) for d in sorted(scans)]
    files = 0
    for directory, entries in sorted(batches.items()):
        unique = list({e.name: e for e in entries}.values())
        files += len(unique)
        for start in range(0, len(unique), config.files_per_task):
            tasks.append(Task(TaskKind.FILES, run_id, directory=directory, entries=tuple(unique[start : start + config.files_per_task])))
    deletes = sorted(set(deletes))
    for start in range(0, len(deletes), config.files_per_task):
        tasks.append(Task(TaskKind.DELETE, run_id, paths=tuple(deletes[start : start + config.files_per_task])))
    # A vanished collection is listed and deleted anew, a page at a time (a task of its own each).
    tasks += [Task(TaskKind.DELETE, run_id, collections=(c,)) for c in sorted(set(delete_collections))]
    return tasks, files + len(deletes)


def retry_failed(client: RedisClient, job: str, *, force: bool = False, config: JobConfig | None = None) -> StartResult:
    """Start a run that redoes only the last run's failures (files, unlistable directories, deletes).

    ``config``: the run's config, already prepared (its handler stored); without one, the
    stored config (the last run's, with the handler it was left with). A controller passes the
    config it prepared from what the user holds now: a retry run must not start with the old
    handler and get the new one only at the controller's next pass.

    If the last run recorded only some of its failures (more than max_failure_records), the
    records cannot say what else failed: a full run starts instead (its change cache keeps
    the files that did sync from being synced again), and the result says so.
    """
    runs = RunState(client, job)
    stored = StoredJob(client, job).config()
    if stored is None:
        raise PermanentError(f"job {job} does not exist")
    config = config or stored
    status = runs.status()
    if status.active and not force:
        raise PermanentError(f"job {job} has an active run {status.run_id}; retry after it ends (or stop it)")
    dropped = status.counters.get("failures_dropped", 0)
    if dropped:
        note = (
            f"the last run recorded only its first failures: {dropped} more were counted but not recorded "
            f"(max_failure_records {config.max_failure_records}), so a retry of the recorded ones would miss "
            "them; started a full run instead (the change cache keeps files already synced from being redone)"
        )
        log.warning("retry_full_run", extra={"job": job, "failures_dropped": dropped})
        started, run_id = runs.start(config, force=force)
        return StartResult(started, run_id, full_run=True, note=note)
    failures = FailureLog(client, job).records()
    planned, files = retry_tasks(config, failures, "probe")
    if not planned:
        return StartResult(False, "")
    started, run_id = runs.start(
        config, force=force, initial_tasks=lambda rid: retry_tasks(config, failures, rid)[0], known_files=files
    )
    return StartResult(started, run_id)
