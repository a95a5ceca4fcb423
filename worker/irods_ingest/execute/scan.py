"""The SCAN task of a filesystem source: list directories, make FILES batches, plan deletes.

One task scans its directories and, within the scan budget, their subtrees (breadth first),
reading the change caches of the directories waiting in it ahead, in one round trip. Each
directory gets its collection (inside the handler's collection hooks) and FILES batches of
what changed; what left it is handed to DELETE tasks. The collection and delete planning
here are shared with the S3 scan (:mod:`irods_ingest.execute.scan_s3`).
"""

from __future__ import annotations

import os
import posixpath
import time
from collections import deque
from dataclasses import replace
from typing import Any

from irods_ingest.config import DeleteMode, Operation
from irods_ingest.errors import HandlerError, IngestError
from irods_ingest.execute.context import JobContext
from irods_ingest.execute.hooks import pre_job, with_hooks
from irods_ingest.queue import TaskOutcome
from irods_ingest.scan import scan_directory
from irods_ingest.tasks import Task, TaskKind

# How much one SCAN task does before it hands the rest of its subtree back to the queue, in
# groups of SCAN_GROUP_DIRECTORIES: enough directories to spread a task's claim, config read
# and ack over many small ones (a per-directory task cost a first sync more round trips than
# its listing), little enough that other workers get a share of a wide tree early and that
# a crash or a warm shutdown repeats little.
SCAN_BUDGET_DIRECTORIES = 256
SCAN_BUDGET_ENTRIES = 20_000
SCAN_BUDGET_SECONDS = 0.25
SCAN_GROUP_DIRECTORIES = 32


class _CachePrefetch:
    """The change caches of a scan task's directories, read ahead in one round trip for the
    next directories waiting in the task (not one ``HGETALL`` round trip per directory)."""

    def __init__(self, job: JobContext, pending: deque[Task]) -> None:
        self._ctx = job.run_context
        self._generation = job.cache_generation
        self._skip = job.config.ignore_cache
        self._pending = pending
        self._fetched: dict[str, dict[str, str]] = {}
        self._checked = False

    def take(self, directory: str) -> dict[str, str]:
        if self._skip:
            return {}
        if not self._checked:
            self._checked = True
            if not self._ctx.change_cache.exists(self._generation):
                # A first sync: no directory has a cache, so this task reads none (one EXISTS).
                self._skip = True
                return {}
        if directory not in self._fetched:
            wanted = [directory]
            for task in self._pending:
                if len(wanted) >= SCAN_BUDGET_DIRECTORIES:
                    break
                if task.directory not in self._fetched:
                    wanted.append(task.directory)
            self._fetched.update(zip(wanted, self._ctx.change_cache.entries(self._generation, wanted), strict=True))
        return self._fetched.pop(directory)


class FilesystemScan:
    """One SCAN task of a filesystem source."""

    def __init__(self, job: JobContext) -> None:
        self.job = job
        # Asked once per directory scanned: decided once per task.
        self._collection_hooks = any(
            job.handler.has(h) for h in ("pre_coll_create", "post_coll_create", "pre_coll_modify", "post_coll_modify")
        )
        self._makes_collections = job.config.operation is not Operation.NO_OP or job.handler.has("on_coll_create")

    def run(self, task: Task) -> TaskOutcome:
        """Scan the task's directories and, within the scan budget, their subtrees.

        Every directory is handled as if it were its own task (its own counts, failures and
        retries): a task only saves the claim, config read and ack that separate tasks
        would cost per directory. What the budget leaves goes back to the queue in groups,
        so other workers share a wide tree from the first ack on.
        """
        outcome = TaskOutcome()
        pending: deque[Task] = deque([replace(task, more_directories=())])
        pending.extend(Task(TaskKind.SCAN, task.run, directory=d) for d in task.more_directories)
        caches = _CachePrefetch(self.job, pending)
        started = time.monotonic()
        processed = entries = discovered = 0
        while pending:
            if processed and (
                processed >= SCAN_BUDGET_DIRECTORIES
                or entries >= SCAN_BUDGET_ENTRIES
                or time.monotonic() - started >= SCAN_BUDGET_SECONDS
                or self.job.run_context.stopping()
            ):
                break
            current = pending.popleft()
            subdirectories, listed = self._scan_one(current, outcome, caches.take(current.directory))
            processed += 1
            entries += listed
            discovered += len(subdirectories)
            pending.extend(Task(TaskKind.SCAN, task.run, directory=sub) for sub in subdirectories)
        leftover = [t.directory for t in pending]
        groups = [leftover[i : i + SCAN_GROUP_DIRECTORIES] for i in range(0, len(leftover), SCAN_GROUP_DIRECTORIES)]
        for group in groups:
            outcome.enqueue.append(Task(TaskKind.SCAN, task.run, directory=group[0], more_directories=tuple(group[1:])))
        # tasks_enqueued counts directory scans, however they are grouped: every directory
        # found here is one; the ack's script counts one per task it pushes.
        if discovered != len(groups):
            outcome.count("tasks_enqueued", discovered - len(groups))
        return outcome

    def _scan_one(self, task: Task, outcome: TaskOutcome, cached: dict[str, str]) -> tuple[list[str], int]:
        """Scan one directory into ``outcome``: (subdirectories to scan next, entries listed)."""
        job = self.job
        outcome.count("tasks_done")
        directory = task.directory
        absolute = job.source_path(directory)
        if not directory and not pre_job(job, task, outcome):
            return [], 0
        try:
            if not directory:
                self._check_root()
            result = scan_directory(job.config.source_path, directory, job.config, cached, job.filters, stat_files=False)
        except (FileNotFoundError, NotADirectoryError) as exc:
            self._gone(task, outcome, absolute, exc)
            return [], 0
        except PermissionError as exc:
            outcome.count("tasks_failed")
            outcome.failures.append(job.failure(absolute, f"cannot list directory: {exc.strerror}", 1, task))
            return [], 0
        except IngestError as exc:
            job.retry_or_fail(task, outcome, exc, 0)
            return [], 0

        # A directory with cached files and nothing to sync had its collection when they were
        # synced: without collection hooks to fire, skip the 1-2 existence queries (a rescan).
        settled = bool(cached) and not result.to_sync and not result.listed_batches and not self._collection_hooks
        if not settled and self._makes_collections:
            collection = job.logical_collection(directory)
            try:
                ensure_collection(job, collection, job.meta(path=absolute, target=collection, entry_type="dir"))
            except HandlerError as exc:
                outcome.failures.append(job.failure(absolute, str(exc), 1, task, exc.traceback_text))
                outcome.count("tasks_failed")
                if not directory:  # nothing below the root can run: the run says why
                    outcome.error = f"the source root could not be processed: {exc}"
                return [], 0
            except IngestError as exc:
                job.retry_or_fail(task, outcome, exc, 0)
                return [], 0

        size = job.config.files_per_task
        for start in range(0, len(result.to_sync), size):
            outcome.enqueue.append(Task(TaskKind.FILES, task.run, directory=directory, entries=tuple(result.to_sync[start : start + size])))
        for batch in result.listed_batches:
            outcome.enqueue.append(Task(TaskKind.FILES, task.run, directory=directory, listed=batch))
        found = len(result.to_sync) + result.listed + len(result.unchanged)
        outcome.count("files_discovered", found)
        # Files listed by name have their bytes counted by the task that stats and syncs them.
        outcome.count("bytes_discovered", sum(e.size for e in result.to_sync) + sum(e.size for e in result.unchanged))
        outcome.count("files_unchanged", len(result.unchanged))
        outcome.count("files_excluded", result.excluded)
        for skipped in result.skipped:
            outcome.count("files_failed" if skipped.failed else "files_skipped")
            record = job.failure(os.path.join(absolute, skipped.name), skipped.reason, 1, task)
            record["outcome"] = "failed" if skipped.failed else "skipped"
            outcome.failures.append(record)
        if result.stale_cache:
            outcome.cache_delete[directory] = result.stale_cache
        collection = job.logical_collection(directory)
        if plans_deletes(job, task, outcome, absolute, collection):
            self._plan_deletes(task, outcome, result.names_seen, collection)
        return result.subdirectories, found + len(result.subdirectories) + result.excluded + len(result.skipped)

    def _gone(self, task: Task, outcome: TaskOutcome, absolute: str, exc: OSError) -> TaskOutcome:
        """A directory that cannot be scanned because it is missing or no longer a directory."""
        if task.directory:
            reason = "directory vanished or was replaced during the scan"
        else:
            reason = "source is not a directory" if isinstance(exc, NotADirectoryError) else "source does not exist"
            outcome.error = f"{reason}: {absolute}"
        outcome.count("tasks_failed")
        outcome.failures.append(self.job.failure(absolute, f"{reason}: {exc.strerror}", 1, task))
        return outcome

    def _check_root(self) -> None:
        root = self.job.config.source_path
        if not os.path.isdir(root):
            if os.path.exists(root):
                raise NotADirectoryError(20, "Not a directory", root)
            raise FileNotFoundError(2, "No such directory", root)

    def _plan_deletes(self, task: Task, outcome: TaskOutcome, names_seen: set[str], collection: str) -> None:
        job = self.job
        try:
            listing = job.catalog(job.meta(target=collection)).listing(collection)
        except IngestError as exc:
            outcome.failures.append(job.failure(collection, f"cannot list for deletion: {exc}", 1, task))
            return
        expected = {posixpath.basename(job.logical_path(task.directory, n)) for n in names_seen}
        gone_objects = sorted(n for n in listing.objects if n not in expected)
        gone_colls = sorted(n for n in listing.subcollections if n not in expected)
        enqueue_deletes(job, task, outcome, collection, gone_objects, gone_colls)


# ---------------------------------------------------------------------- shared with the S3 scan
def ensure_collection(job: JobContext, collection: str, meta: dict[str, Any]) -> None:
    catalog = job.catalog(meta)
    handler = job.handler
    # As the incumbent: a directory whose collection exists fires coll_modify, a new one
    # coll_create. The existence query is skipped for NoOp jobs without collection hooks.
    modify_hooks = handler.has("pre_coll_modify") or handler.has("post_coll_modify")
    if job.config.operation is Operation.NO_OP:
        exists = (modify_hooks or handler.has("pre_coll_create") or handler.has("post_coll_create")) and (
            catalog.collection_exists(collection)
        )
        with_hooks(job, "coll_modify" if exists else "coll_create", lambda: None, catalog, meta)
        return
    if catalog.collection_exists(collection):
        if modify_hooks:
            with_hooks(job, "coll_modify", lambda: None, catalog, meta)
        return
    parent = posixpath.dirname(collection)
    if collection != job.config.target_collection and not catalog.collection_exists(parent):
        # A parent scan task creates it first; a missing parent means it was removed meanwhile.
        with_hooks(job, "coll_create", lambda: catalog.create_collection(parent), catalog, meta | {"target": parent})
    with_hooks(job, "coll_create", lambda: catalog.create_collection(collection), catalog, meta)


def plans_deletes(job: JobContext, task: Task, outcome: TaskOutcome, where: str, collection: str) -> bool:
    """Whether what left the source below ``collection`` is to be deleted: its effective
    delete mode (the handler's delete_mode() for it, else the job's) is not DoNotDelete.
    A delete_mode() that raises deletes nothing and says so."""
    if job.config.delete_mode is DeleteMode.DO_NOT_DELETE:
        return False
    try:
        mode = job.delete_mode(job.meta(path=where, target=collection, entry_type="dir"))
    except HandlerError as exc:
        outcome.count("tasks_failed")
        outcome.failures.append(job.failure(where, f"nothing deleted: {exc}", 1, task, exc.traceback_text))
        return False
    return mode is not DeleteMode.DO_NOT_DELETE


def enqueue_deletes(
    job: JobContext, task: Task, outcome: TaskOutcome, collection: str, gone_objects: list[str], gone_colls: list[str]
) -> None:
    """DELETE tasks for what left the source: objects in batches of files_per_task, and
    each vanished collection in a task of its own (it is listed a page at a time)."""
    size = job.config.files_per_task
    for start in range(0, len(gone_objects), size):
        paths = tuple(posixpath.join(collection, n) for n in gone_objects[start : start + size])
        outcome.enqueue.append(Task(TaskKind.DELETE, task.run, directory=task.directory, paths=paths))
    for name in gone_colls:
        outcome.enqueue.append(
            Task(TaskKind.DELETE, task.run, directory=task.directory, collections=(posixpath.join(collection, name),))
        )
