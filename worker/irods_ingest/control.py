"""Job control (the Sync Actions Manager): start, stop, list, watch — used by CLI and operator."""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from irods_ingest.config import JobConfig, check
from irods_ingest.errors import ConfigError, ConfigProblem, HandlerError, PermanentError
from irods_ingest.handlers import check_handler_syntax, compile_handler, job_policy
from irods_ingest.store.connection import RedisClient
from irods_ingest.store.jobstore import JobStore, RunStatus, handler_digest, list_jobs
from irods_ingest.tasks import FileEntry, Task, TaskKind

log = logging.getLogger("irods_ingest.control")


@dataclass(frozen=True)
class StartResult:
    started: bool
    run_id: str
    full_run: bool = False  # a retry that had to start a full run (see retry_failed)
    note: str = ""  # why, for the user


def prepare(
    config: JobConfig,
    handler_source: str | None,
    store: JobStore,
    *,
    run_handler: bool = True,
    handler_origin: str = "event handler",
) -> JobConfig:
    """Validate everything before anything runs; store the handler; return the final config.

    ``run_handler`` loads the handler and applies its job-wide answers (operation(),
    delete_mode(), character_map()) here, so that a mistake fails ``start`` at once: right
    for the CLI, whose user owns the handler. The operator passes False and never runs
    tenant code: it checks the module's syntax only, and the workers apply the handler's
    answers (a failure there fails the run, visibly).
    """
    if handler_source is not None:
        digest = handler_digest(handler_source.encode())
        try:
            if run_handler:
                config = job_policy(config, compile_handler(handler_source, digest))
            else:
                check_handler_syntax(handler_source, handler_origin)
        except HandlerError as exc:
            raise ConfigError([ConfigProblem("event_handler", str(exc), "fix the handler module")]) from exc
        config = config.with_changes(handler_hash=store.save_handler(handler_source))
    return check(config)


def start_job(client: RedisClient, config: JobConfig, handler_source: str | None = None, *, force: bool = False) -> StartResult:
    store = JobStore(client, config.job_name)
    final = prepare(config, handler_source, store)
    started, run_id = store.start_run(final, force=force)  # drops a stale change cache too
    return StartResult(started, run_id)


def stop_job(client: RedisClient, job: str) -> bool:
    return JobStore(client, job).stop_run()


def jobs(client: RedisClient) -> list[RunStatus]:
    return [JobStore(client, name).status() for name in list_jobs(client)]


def watch(client: RedisClient, job: str, *, interval: float = 0.5, run_id: str | None = None) -> Iterator[RunStatus]:
    """Yield the job's status every ``interval`` until its run (``run_id`` or current) ends."""
    store = JobStore(client, job)
    while True:
        status = store.status()
        yield status
        if run_id is not None and status.run_id != run_id:
            return
        if not status.active:
            return
        time.sleep(interval)


def retry_tasks(config: JobConfig, failures: list[dict[str, Any]], run_id: str) -> tuple[list[Task], int]:
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


def retry_failed(client: RedisClient, job: str, *, force: bool = False) -> StartResult:
    """Start a run that redoes only the last run's failures (files, unlistable directories, deletes).

    If the last run recorded only some of its failures (more than max_failure_records), the
    records cannot say what else failed: a full run starts instead (its change cache keeps
    the files that did sync from being synced again), and the result says so.
    """
    store = JobStore(client, job)
    config = store.load_config()
    if config is None:
        raise PermanentError(f"job {job} does not exist")
    status = store.status()
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
        started, run_id = store.start_run(config, force=force)
        return StartResult(started, run_id, full_run=True, note=note)
    failures = store.failures()
    planned, files = retry_tasks(config, failures, "probe")
    if not planned:
        return StartResult(False, "")
    started, run_id = store.start_run(
        config, force=force, initial_tasks=lambda rid: retry_tasks(config, failures, rid)[0], known_files=files
    )
    return StartResult(started, run_id)
