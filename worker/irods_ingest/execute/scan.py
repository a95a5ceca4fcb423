"""The SCAN task of a filesystem source: list directories, make FILES batches, plan deletes.

One task scans its directories and, within the scan budget, their subtrees (breadth first),
reading the change caches of the directories waiting in it ahead, in one round trip. Each
directory gets its collection (inside the handler's collection hooks) and FILES batches of
what changed; what left it is handed to DELETE tasks (:mod:`irods_ingest.execute.plan`,
shared with the S3 scan). A directory of more entries than a page
(``IRODS_INGEST_SCAN_PAGE_ENTRIES``, default 20 000) is listed in pages, each committed as
it is listed, and judged once its whole listing was seen (:mod:`irods_ingest.execute.scan_pages`):
memory per worker and per acknowledgement stays bounded whatever a directory holds.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from irods_ingest.config import Operation
from irods_ingest.errors import HandlerError, IngestError, PermanentError, StoreUnavailable
from irods_ingest.execute.context import JobContext, directory_changed, directory_meta
from irods_ingest.execute.hooks import pre_job
from irods_ingest.execute.plan import (
    Judgement,
    ListingLost,
    enqueue_deletes,
    ensure_collection,
    logical_names,
    plans_deletes,
)
from irods_ingest.execute.scan_pages import account_page, list_paged, resumed_record
from irods_ingest.queue import TaskOutcome
from irods_ingest.scan import CacheLookup, DirectoryPages, DirectoryScan
from irods_ingest.tasks import Task, TaskKind, wire_name

__all__ = ["FilesystemScan", "enqueue_deletes", "ensure_collection", "plans_deletes", "scan_page_entries"]

# How much one SCAN task does before it hands the rest of its subtree back to the queue, in
# groups of SCAN_GROUP_DIRECTORIES: enough directories to spread a task's claim, config read
# and ack over many small ones (a per-directory task cost a first sync more round trips than
# its listing), little enough that other workers get a share of a wide tree early and that
# a crash or a warm shutdown repeats little.
SCAN_BUDGET_DIRECTORIES = 256
SCAN_BUDGET_ENTRIES = 20_000
SCAN_BUDGET_SECONDS = 0.25
SCAN_GROUP_DIRECTORIES = 32
# Entries of one directory per listing page (and per early commit of a judgement). A worker
# setting, not a job's: it bounds the worker's memory and the size of what one step writes.
PAGE_ENTRIES_ENV: Final = "IRODS_INGEST_SCAN_PAGE_ENTRIES"
DEFAULT_PAGE_ENTRIES: Final = SCAN_BUDGET_ENTRIES


def scan_page_entries() -> int:
    """The page size from the worker's environment (``IRODS_INGEST_SCAN_PAGE_ENTRIES``)."""
    value = os.environ.get(PAGE_ENTRIES_ENV, "")
    try:
        entries = int(value) if value else DEFAULT_PAGE_ENTRIES
    except ValueError:
        raise PermanentError(f"{PAGE_ENTRIES_ENV}={value!r} is not a number of entries") from None
    if entries < 1:
        raise PermanentError(f"{PAGE_ENTRIES_ENV} must be at least 1, not {entries}")
    return entries


class _CachePrefetch:
    """The change caches of a scan task's directories, read ahead in one round trip for the
    next directories waiting in the task (not one round trip per directory). A cache of more
    than a page of entries is not read whole (None): it is read a page of names at a time."""

    def __init__(self, job: JobContext, pending: deque[Task], page: int | None) -> None:
        self._ctx = job.run_context
        self._generation = job.cache_generation
        self._skip = job.config.ignore_cache
        self._pending = pending
        self._page = page
        self._fetched: dict[str, dict[str, str] | None] = {}
        self._checked = False

    def take(self, directory: str) -> dict[str, str] | None:
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
            cache = self._ctx.change_cache
            found: list[dict[str, str] | None] = (
                list(cache.entries(self._generation, wanted)) if self._page is None
                else cache.entries_within(self._generation, wanted, self._page)
            )
            self._fetched.update(zip(wanted, found, strict=True))
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
        # Without early commits a directory is listed in one piece, whatever its size.
        self.page = scan_page_entries() if job.run_context.progress is not None else None

    def run(self, task: Task) -> TaskOutcome:
        """Scan the task's directories and, within the scan budget, their subtrees.

        Every directory is handled as if it were its own task (its own counts, failures and
        retries): a task only saves the claim, config read and ack that separate tasks
        would cost per directory. What the budget leaves goes back to the queue in groups,
        so other workers share a wide tree from the first ack on. A redelivered or retried
        task may find its directories' paged listings half done: the groups it hands back
        say so too, so that they resume them by name.
        """
        outcome = TaskOutcome()
        resume = task.redelivered or task.attempt > 0
        pending: deque[Task] = deque([replace(task, more_directories=())])
        pending.extend(Task(TaskKind.SCAN, task.run, directory=d, redelivered=resume) for d in task.more_directories)
        caches = _CachePrefetch(self.job, pending, self.page)
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
            try:
                subdirectories, listed = self._scan_one(current, outcome, caches.take(current.directory))
            except ListingLost:
                return TaskOutcome()  # another worker has the task now, or the run is over: its ack changes nothing
            processed += 1
            entries += listed
            discovered += len(subdirectories)
            pending.extend(Task(TaskKind.SCAN, task.run, directory=sub, redelivered=resume) for sub in subdirectories)
        leftover = [t.directory for t in pending]
        groups = [leftover[i : i + SCAN_GROUP_DIRECTORIES] for i in range(0, len(leftover), SCAN_GROUP_DIRECTORIES)]
        for group in groups:
            outcome.enqueue.append(
                Task(TaskKind.SCAN, task.run, directory=group[0], more_directories=tuple(group[1:]), redelivered=resume)
            )
        # tasks_enqueued counts directory scans, however they are grouped: every directory
        # found here is one; the ack's script counts one per task it pushes.
        if discovered != len(groups):
            outcome.count("tasks_enqueued", discovered - len(groups))
        return outcome

    def _scan_one(self, task: Task, outcome: TaskOutcome, cached: dict[str, str] | None) -> tuple[list[str], int]:
        """Scan one directory into ``outcome``: (subdirectories to scan next, entries listed).
        ``cached``: its change cache, None when it holds more than a page (read per page)."""
        job = self.job
        outcome.count("tasks_done")
        directory = task.directory
        absolute = job.source_path(directory)
        if not directory and not pre_job(job, task, outcome):
            return [], 0
        record = resumed_record(job, task, directory) if task.redelivered or task.attempt > 0 else None
        lookup = self._lookup(directory, cached)
        try:
            if not directory:
                self._check_root()
            pages = DirectoryPages(job.config.source_path, directory, job.config, job.filters,
                                   cached_anything=cached is None or bool(cached), page_entries=self.page)
            try:
                first = pages.next(lookup, record.seen if record is not None else None)
            except BaseException:
                pages.close()
                raise
        except (FileNotFoundError, NotADirectoryError) as exc:
            self._gone(task, outcome, absolute, exc)
            return [], 0
        except PermissionError as exc:
            outcome.count("tasks_failed")
            outcome.failures.append(job.failure(absolute, f"cannot list directory: {exc.strerror}", 1, task))
            return [], 0
        except StoreUnavailable:
            raise
        except IngestError as exc:
            job.retry_or_fail(task, outcome, exc, 0)
            return [], 0
        with pages:
            # A directory with cached files and nothing to sync had its collection when they were
            # synced: without collection hooks to fire, skip the 1-2 existence queries (a rescan).
            settled = first.done and cached != {} and not first.to_sync and not first.listed_batches
            if not (settled and not self._collection_hooks) and not self._ensure(task, outcome, absolute):
                return [], 0
            if not first.done or record is not None:  # (a resumed listing is judged against its records)
                deletes = plans_deletes(job, task, outcome, absolute, job.logical_collection(directory))
                assert self.page is not None
                listed = list_paged(job, task, outcome, pages, first, lookup, record, deletes=deletes,
                                    group=SCAN_GROUP_DIRECTORIES, chunk=self.page)
                return [], listed
        listed = account_page(job, task, outcome, first, absolute)
        self._judge(task, outcome, first, cached, use_cache=pages.use_cache)
        return first.subdirectories, listed

    def _lookup(self, directory: str, cached: dict[str, str] | None) -> CacheLookup:
        if cached is not None:
            return lambda names: cached
        change_cache, generation = self.job.run_context.change_cache, self.job.cache_generation
        return lambda names: change_cache.values(generation, directory, names)

    def _ensure(self, task: Task, outcome: TaskOutcome, absolute: str) -> bool:
        """The directory's collection (False: it failed, and the directory is done with)."""
        job = self.job
        if not self._makes_collections:
            return True
        collection = job.logical_collection(task.directory)
        try:
            meta = job.meta(path=absolute, target=collection, entry_type="dir",
                            **directory_meta(absolute if self._collection_hooks else None))
            changed = directory_changed(job.config, job.run_context.previous_run_started, meta)
            ensure_collection(job, collection, meta, changed=changed)
        except HandlerError as exc:
            outcome.failures.append(job.failure(absolute, str(exc), 1, task, exc.traceback_text))
            outcome.count("tasks_failed")
            if not task.directory:  # nothing below the root can run: the run says why
                outcome.error = f"the source root could not be processed: {exc}"
            return False
        except StoreUnavailable:
            raise
        except IngestError as exc:
            job.retry_or_fail(task, outcome, exc, 0)
            return False
        return True

    def _judge(self, task: Task, outcome: TaskOutcome, result: DirectoryScan, cached: dict[str, str] | None,
               *, use_cache: bool) -> None:
        """Stale cache entries and deletions of a directory listed in one page: against its
        names in memory (a page at most), the cache and the collection read in batches."""
        job = self.job
        directory = task.directory
        collection = job.logical_collection(directory)
        deletes = plans_deletes(job, task, outcome, job.source_path(directory), collection)
        if not use_cache and not deletes:
            return
        judgement = Judgement(job, task, outcome, directory, self.page)
        if use_cache:
            wires = {wire_name(n) for n in result.names_seen}
            fields = [list(cached)] if cached is not None else job.run_context.change_cache.field_names(job.cache_generation, directory)
            judgement.stale_cache(fields, _members(wires))
        if deletes:
            judgement.deletes(collection, _members(logical_names(job, directory, result.names_seen)))
        judgement.finish()

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


def _members(names: set[str]) -> Callable[[list[str]], set[str]]:
    return lambda batch: {n for n in batch if n in names}
