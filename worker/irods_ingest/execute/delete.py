"""Executing tasks: scan a directory, sync a batch of files, delete, finalize.

``TaskExecutor.run(task) -> TaskOutcome`` never raises for a file's problem: each file's
result is counted and failures are recorded with their reason, so one bad file never
fails its neighbours. A whole-task retryable error (iRODS unreachable) comes back as a
delayed retry of the task; only store errors escape (the worker then leaves the task to
be redelivered).
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import posixpath
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from irods_ingest.charmap import translate_path
from irods_ingest.checksums import StreamVerifier
from irods_ingest.config import (
    DeleteMode,
    JobConfig,
    Operation,
    S3Source,
    SymlinkPolicy,
    cache_generation,
    delete_mode_compatible,
    normalize_collection,
)
from irods_ingest.confine import escape_reason, escaping_target, opened_inside, real_root
from irods_ingest.deadline import Deadline, FileTimeout
from irods_ingest.errors import (
    HandlerError,
    IngestError,
    PermanentError,
    RetryableError,
    SourceVanished,
    StoreUnavailable,
)
from irods_ingest.failures import FailureRecord, failure_record
from irods_ingest.handlers import Handler
from irods_ingest.irods_io.bulk import (
    ParallelWrite,
    child_names,
    collection_page,
    existing_objects,
    supports_parallel_write,
)
from irods_ingest.irods_io.catalog import (
    AlreadyExists,
    CollectionListing,
    IrodsCatalog,
    Missing,
    ObjectInfo,
    Replica,
)
from irods_ingest.s3_io import S3Bucket, open_bucket
from irods_ingest.s3_scan import ListingBook, classify_page, list_prefix
from irods_ingest.s3_transfer import copy_parts, plan_parts
from irods_ingest.scan import Filters, scan_directory
from irods_ingest.store.jobstore import TaskOutcome
from irods_ingest.tasks import FileEntry, Task, TaskKind

log = logging.getLogger("irods_ingest.execute")

UNICODE_ERROR_PREFIX = "irods_UnicodeEncodeError_"
MAX_BACKOFF_SECONDS = 300.0
# A call still unanswered this long after a file's time limit is abandoned (the limit itself
# fires first and names the timeout); never waited longer than PRC's own default of 120 s.
CALL_TIMEOUT_MARGIN_SECONDS = 1.0
MAX_CALL_SECONDS = 120.0
# How much one SCAN task does before it hands the rest of its subtree back to the queue, in
# groups of SCAN_GROUP_DIRECTORIES: enough directories to spread a task's claim, config read
# and ack over many small ones (a per-directory task cost a first sync more round trips than
# its listing), little enough that other workers get a share of a wide tree early and that
# a crash or a warm shutdown repeats little.
SCAN_BUDGET_DIRECTORIES = 256
SCAN_BUDGET_ENTRIES = 20_000
SCAN_BUDGET_SECONDS = 0.25
SCAN_GROUP_DIRECTORIES = 32
# Deleting a vanished collection: one task lists a page of it and fans out at most this many
# tasks (object batches of files_per_task, then one per subcollection), plus the next page's;
# a page names at most PURGE_PAGE_OBJECTS objects (unless files_per_task is larger).
PURGE_FANOUT = 20
PURGE_PAGE_OBJECTS = 10_000


def _not_stopping() -> bool:
    return False


class _EngineFailure(Exception):
    """Wraps an engine error raised inside a user's hook wrapper so it is not blamed on the handler."""

    _from_engine = True

    def __init__(self, error: IngestError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class FileWork:
    """Everything decided about one file before iRODS is touched."""

    entry: FileEntry
    source: str
    target: str
    meta: dict[str, Any]
    operation: Operation
    catalog: IrodsCatalog
    resource: str | None
    physical: str
    key: str = ""  # S3 sources: the object key

    @property
    def name(self) -> str:
        return posixpath.basename(self.target)

    @property
    def mtime(self) -> int:
        return int(self.entry.mtime_ns // 1_000_000_000)


@dataclass
class RunContext:
    job: str
    config: JobConfig
    handler: Handler
    catalog_for: Callable[[tuple[str, str] | None], IrodsCatalog]
    reset_connections: Callable[[], None]
    cached_entries: Callable[[str, str], dict[str, str]]  # (generation, directory) -> cache
    # S3 sources: (generation, directory, names) -> the cache values of just those names
    cached_values: Callable[[str, str, list[str]], dict[str, str]] | None = None
    bucket_for: Callable[[S3Source], S3Bucket] = open_bucket  # the worker caches one per thread
    listing_book: ListingBook | None = None  # S3 sources: what earlier pages of a prefix saw (the job store)
    stopping: Callable[[], bool] = _not_stopping  # a warm shutdown was asked for: hand back unstarted files
    # (generation, directories) -> their caches, in one round trip (else cached_entries per directory)
    cached_many: Callable[[str, list[str]], list[dict[str, str]]] | None = None
    # generation -> whether any directory may have a cache in it (None: assume so)
    has_cache: Callable[[str], bool] | None = None
    # The change-cache generation of the job's STORED config (the controller's view); ``config``
    # above may carry the handler's job-wide answers, which must not start a new generation.
    cache_generation: str | None = None


class _CachePrefetch:
    """The change caches of a scan task's directories, read ahead in one round trip for the
    next directories waiting in the task (not one ``HGETALL`` round trip per directory)."""

    def __init__(self, executor: TaskExecutor, pending: deque[Task]) -> None:
        self._ctx = executor.ctx
        self._generation = executor.cache_generation
        self._skip = executor.config.ignore_cache
        self._pending = pending
        self._fetched: dict[str, dict[str, str]] = {}
        self._checked = False

    def take(self, directory: str) -> dict[str, str]:
        if self._skip:
            return {}
        if not self._checked:
            self._checked = True
            if self._ctx.has_cache is not None and not self._ctx.has_cache(self._generation):
                # A first sync: no directory has a cache, so this task reads none (one EXISTS).
                self._skip = True
                return {}
        if directory not in self._fetched:
            if self._ctx.cached_many is None:
                return self._ctx.cached_entries(self._generation, directory)
            wanted = [directory]
            for task in self._pending:
                if len(wanted) >= SCAN_BUDGET_DIRECTORIES:
                    break
                if task.directory not in self._fetched:
                    wanted.append(task.directory)
            self._fetched.update(zip(wanted, self._ctx.cached_many(self._generation, wanted), strict=True))
        return self._fetched.pop(directory)


def _count_file(outcome: TaskOutcome, entry: FileEntry, *, synced: bool, listed_by_name: bool) -> None:
    if synced:
        outcome.count("files_synced")
        outcome.count("bytes_synced", entry.size)
    else:
        outcome.count("files_unchanged")
    if listed_by_name:  # the scan did not stat it: its bytes are known from now on
        outcome.count("bytes_discovered", entry.size)


def backoff(config: JobConfig, attempt: int) -> float:
    return float(min(MAX_BACKOFF_SECONDS, config.retry_backoff_seconds * (2 ** max(0, attempt - 1))))


class TaskExecutor:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.handler = ctx.handler
        self.filters = Filters(ctx.config)
        self._charmap = ctx.handler.character_map() if ctx.handler.has("character_map") else None
        self.cache_generation = ctx.cache_generation or cache_generation(ctx.config)
        self._bucket: S3Bucket | None = None
        self._call_seconds: float | None = None  # the iRODS reply timeout for the file in hand
        # Asked once per directory scanned: decided once per task.
        self._collection_hooks = any(
            self.handler.has(h) for h in ("pre_coll_create", "post_coll_create", "pre_coll_modify", "post_coll_modify")
        )
        self._makes_collections = ctx.config.operation is not Operation.NO_OP or self.handler.has("on_coll_create")

    @property
    def bucket(self) -> S3Bucket:
        assert self.config.s3 is not None
        if self._bucket is None:
            self._bucket = self.ctx.bucket_for(self.config.s3)
        return self._bucket

    # ------------------------------------------------------------------ paths
    def source_path(self, relative: str) -> str:
        if self.config.s3 is not None:
            return self.config.s3.physical_path(relative)
        return os.path.join(self.config.source_path, relative) if relative else self.config.source_path

    def logical_name(self, name: str) -> str:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return UNICODE_ERROR_PREFIX + base64.b64encode(os.fsencode(name)).decode()
        return name

    def logical_collection(self, relative_dir: str) -> str:
        if not relative_dir:
            return self.config.target_collection
        parts = [self.logical_name(p) for p in relative_dir.split("/")]
        return self._mapped(posixpath.join(self.config.target_collection, *parts))

    def logical_path(self, relative_dir: str, name: str) -> str:
        return self._mapped(posixpath.join(self.logical_collection(relative_dir), self.logical_name(name)))

    def _mapped(self, logical: str) -> str:
        if self._charmap is None:
            return logical
        # Only the part below the target collection is mapped (the incumbent also mapped
        # the target's own path, renaming e.g. /zone/home/my-coll).
        root = self.config.target_collection
        below = logical[len(root) :]
        return root + translate_path(below, self._charmap) if below else logical

    def meta(self, **values: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "job_name": self.ctx.job,
            "root": self.config.source_root,
            "target_root": self.config.target_collection,
            "initial_ingest": self.config.initial_ingest,
        }
        base.update(values)
        return base

    def catalog(self, meta: dict[str, Any]) -> IrodsCatalog:
        catalog = self.ctx.catalog_for(self.handler.as_user(meta))
        # Set on every hand-out: sessions outlive the task, and a file's limit must not leak to others.
        catalog.limit_call_time(self._call_seconds or MAX_CALL_SECONDS)
        return catalog

    # ------------------------------------------------------------------ dispatch
    def run(self, task: Task) -> TaskOutcome:
        if task.kind is TaskKind.SCAN:
            outcome = self.scan(task) if self.config.s3 is None else self.scan_s3(task, self.config.s3)
        elif task.kind is TaskKind.FILES:
            outcome = self.sync_files(task)
        elif task.kind is TaskKind.DELETE:
            outcome = self.delete(task)
        else:
            outcome = self.finalize(task)
        outcome.cache_generation = self.cache_generation
        return outcome

    def _retry_or_fail(self, task: Task, outcome: TaskOutcome, error: IngestError, files: int) -> TaskOutcome:
        max_retries = self._max_retries(self.meta(path=self.source_path(task.directory)))
        if isinstance(error, RetryableError) and task.attempt < max_retries:
            due = time.time() + self._delay(self.meta(path=self.source_path(task.directory)), task.attempt + 1)
            outcome.delay.append((due, task.retried()))
            log.warning("task_retry", extra={"job": self.ctx.job, "task": task.id, "attempt": task.attempt + 1, "error": str(error)})
            return outcome
        outcome.count("tasks_failed")
        outcome.count("files_failed", files)
        if task.kind is TaskKind.FILES and task.entries:
            # One record per file, by its path: the failures list names every file the task
            # held, and a retry redoes exactly those (a record of the directory would be
            # retried as if the directory were a file).
            for entry in task.entries:
                path = self._entry_source(task.directory, entry.name)
                outcome.failures.append(self._failure(path, str(error), task.attempt + 1, task))
        else:
            outcome.failures.append(self._failure(self.source_path(task.directory), str(error), task.attempt + 1, task))
        if task.kind is TaskKind.SCAN and not task.directory:
            outcome.error = f"the source root could not be processed: {error}"
        return outcome

    def _max_retries(self, meta: dict[str, Any]) -> int:
        # Asked only once something already failed: a broken max_retries() must not hide that
        # failure, so the job's setting applies and the handler's error is logged by name.
        try:
            return self.handler.max_retries(log, meta, self.config.max_retries)
        except HandlerError as exc:
            log.warning("handler_policy_failed", extra={"job": self.ctx.job, "error": str(exc), "using": self.config.max_retries})
            return self.config.max_retries

    def _failure(self, path: str, reason: str, attempts: int, task: Task, tb: str = "") -> FailureRecord:
        return failure_record(path, reason, attempts=attempts, task=task.id, kind=task.kind.value, traceback=tb)

    # ------------------------------------------------------------------ scan
    def scan(self, task: Task) -> TaskOutcome:
        """Scan the task's directories and, within the scan budget, their subtrees.

        Every directory is handled as if it were its own task (its own counts, failures and
        retries): a task only saves the claim, config read and ack that separate tasks
        would cost per directory. What the budget leaves goes back to the queue in groups,
        so other workers share a wide tree from the first ack on.
        """
        outcome = TaskOutcome()
        pending: deque[Task] = deque([replace(task, also=())])
        pending.extend(Task(TaskKind.SCAN, task.run, directory=d) for d in task.also)
        caches = _CachePrefetch(self, pending)
        started = time.monotonic()
        processed = entries = discovered = 0
        while pending:
            if processed and (
                processed >= SCAN_BUDGET_DIRECTORIES
                or entries >= SCAN_BUDGET_ENTRIES
                or time.monotonic() - started >= SCAN_BUDGET_SECONDS
                or self.ctx.stopping()
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
            outcome.enqueue.append(Task(TaskKind.SCAN, task.run, directory=group[0], also=tuple(group[1:])))
        # tasks_enqueued counts directory scans, however they are grouped: every directory
        # found here is one; the ack's script counts one per task it pushes.
        if discovered != len(groups):
            outcome.count("tasks_enqueued", discovered - len(groups))
        return outcome

    def _scan_one(self, task: Task, outcome: TaskOutcome, cached: dict[str, str]) -> tuple[list[str], int]:
        """Scan one directory into ``outcome``: (subdirectories to scan next, entries listed)."""
        outcome.count("tasks_done")
        directory = task.directory
        absolute = self.source_path(directory)
        if not directory and not self._pre_job(task, outcome):
            return [], 0
        try:
            if not directory:
                self._check_root()
            result = scan_directory(self.config.source_path, directory, self.config, cached, self.filters, stat_files=False)
        except (FileNotFoundError, NotADirectoryError) as exc:
            self._gone(task, outcome, absolute, exc)
            return [], 0
        except PermissionError as exc:
            outcome.count("tasks_failed")
            outcome.failures.append(self._failure(absolute, f"cannot list directory: {exc.strerror}", 1, task))
            return [], 0
        except IngestError as exc:
            self._retry_or_fail(task, outcome, exc, 0)
            return [], 0

        # A directory with cached files and nothing to sync had its collection when they were
        # synced: without collection hooks to fire, skip the 1-2 existence queries (a rescan).
        settled = bool(cached) and not result.to_sync and not result.listed_batches and not self._collection_hooks
        if not settled and self._makes_collections:
            collection = self.logical_collection(directory)
            try:
                self._ensure_collection(collection, self.meta(path=absolute, target=collection, entry_type="dir"))
            except HandlerError as exc:
                outcome.failures.append(self._failure(absolute, str(exc), 1, task, exc.traceback_text))
                outcome.count("tasks_failed")
                if not directory:  # nothing below the root can run: the run says why
                    outcome.error = f"the source root could not be processed: {exc}"
                return [], 0
            except IngestError as exc:
                self._retry_or_fail(task, outcome, exc, 0)
                return [], 0

        size = self.config.files_per_task
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
            record = self._failure(os.path.join(absolute, skipped.name), skipped.reason, 1, task)
            record["outcome"] = "failed" if skipped.failed else "skipped"
            outcome.failures.append(record)
        if result.stale_cache:
            outcome.cache_delete[directory] = result.stale_cache
        collection = self.logical_collection(directory)
        if self._plans_deletes(task, outcome, absolute, collection):
            self._plan_deletes(task, outcome, result.names_seen, collection)
        return result.subdirectories, found + len(result.subdirectories) + result.excluded + len(result.skipped)

    def scan_s3(self, task: Task, source: S3Source) -> TaskOutcome:
        """List one page of one prefix: child scans per common prefix, a continuation scan
        if the page is truncated, and file batches of the objects that changed."""
        outcome = TaskOutcome()
        outcome.count("tasks_done")
        directory = task.directory
        first_page = not task.token
        where = self.source_path(directory)
        collection = self.logical_collection(directory)
        if not directory and first_page and not self._pre_job(task, outcome):
            return outcome
        try:
            page = self.bucket.list_page(list_prefix(source, directory), task.token)
        except IngestError as exc:
            return self._retry_or_fail(task, outcome, exc, 0)
        if first_page and (self.config.operation is not Operation.NO_OP or self.handler.has("on_coll_create")):
            try:
                self._ensure_collection(collection, self.meta(path=where, target=collection, entry_type="dir"))
            except HandlerError as exc:
                outcome.failures.append(self._failure(where, str(exc), 1, task, exc.traceback_text))
                outcome.count("tasks_failed")
                return outcome
            except IngestError as exc:
                return self._retry_or_fail(task, outcome, exc, 0)
        result = classify_page(page, source, directory, self.filters)
        cached: dict[str, str] = {}
        if not self.config.ignore_cache and result.candidates:
            names = [e.cache_field for e in result.candidates]
            if self.ctx.cached_values is not None:
                cached = self.ctx.cached_values(self.cache_generation, directory, names)
            else:
                cached = self.ctx.cached_entries(self.cache_generation, directory)
        to_sync = [e for e in result.candidates if cached.get(e.cache_field) != e.cache_value]
        unchanged = len(result.candidates) - len(to_sync)
        for sub in result.subdirectories:
            outcome.enqueue.append(Task(TaskKind.SCAN, task.run, directory=sub))
        if page.next_token:
            outcome.enqueue.append(Task(TaskKind.SCAN, task.run, directory=directory, token=page.next_token))
        size = self.config.files_per_task
        for start in range(0, len(to_sync), size):
            outcome.enqueue.append(Task(TaskKind.FILES, task.run, directory=directory, entries=tuple(to_sync[start : start + size])))
        outcome.count("files_discovered", len(result.candidates))
        outcome.count("bytes_discovered", sum(e.size for e in result.candidates))
        outcome.count("files_unchanged", unchanged)
        outcome.count("files_excluded", result.excluded)
        for skipped in result.skipped:
            outcome.count("files_skipped")
            record = self._failure(posixpath.join(where, skipped.name), skipped.reason, 1, task)
            record["outcome"] = "skipped"
            outcome.failures.append(record)
        if page.next_token:
            self._remember_s3_page(task, result.names_seen)
        else:
            self._finish_s3_prefix(task, outcome, result.names_seen, collection)
        return outcome

    def _s3_seen_names(self, directory: str, names: set[str]) -> set[str]:
        """Names as the change cache and as iRODS call them (they differ under a character_map)."""
        return {FileEntry(n, 0, 0).cache_field for n in names} | {
            posixpath.basename(self.logical_path(directory, n)) for n in names
        }

    def _remember_s3_page(self, task: Task, names: set[str]) -> None:
        # Before this task's ack enqueues the next page, so the last page finds every earlier
        # page's names (a redelivered page adds the same names again: idempotent).
        if self.ctx.listing_book is not None:
            self.ctx.listing_book.remember_seen(task.run, task.directory, self._s3_seen_names(task.directory, names))

    def _finish_s3_prefix(self, task: Task, outcome: TaskOutcome, names: set[str], collection: str) -> None:
        """After a prefix's last page: drop the change cache of objects that left the bucket
        and, with a delete mode, plan DELETE tasks for what iRODS holds of them. A prefix of
        several pages is judged against every page's names (the listing book), never against
        this page alone; if the book is gone (an earlier delivery of this page finished it, or
        it expired) nothing is deleted: a missed deletion is made up by the next run, a wrong
        one could not be undone."""
        book = self.ctx.listing_book
        seen = self._s3_seen_names(task.directory, names)
        several_pages = bool(task.token)
        if several_pages and (book is None or not book.seen_started(task.run, task.directory)):
            log.warning("s3_prefix_not_judged", extra={"job": self.ctx.job, "task": task.id, "dir": task.directory})
            return

        def present(batch: list[str]) -> set[str]:
            here = {n for n in batch if n in seen}
            if several_pages and book is not None:
                here |= book.seen_among(task.run, task.directory, [n for n in batch if n not in here])
            return here

        if book is not None:
            stale: list[str] = []
            for fields in book.cache_fields(self.cache_generation, task.directory):
                kept = present(fields)
                stale += [f for f in fields if f not in kept]
            if stale:
                outcome.cache_delete[task.directory] = stale
        if self._plans_deletes(task, outcome, self.source_path(task.directory), collection):
            self._plan_s3_deletes(task, outcome, collection, present, nothing_listed=not names and not several_pages)
        if several_pages and book is not None:
            book.forget_seen(task.run, task.directory)

    def _plan_s3_deletes(
        self, task: Task, outcome: TaskOutcome, collection: str, present: Callable[[list[str]], set[str]], *, nothing_listed: bool
    ) -> None:
        gone_objects: list[str] = []
        gone_colls: list[str] = []
        try:
            for objects, subcollections in child_names(self.catalog(self.meta(target=collection)), collection):
                here = present(objects + subcollections)
                gone_objects += [n for n in objects if n not in here]
                gone_colls += [n for n in subcollections if n not in here]
        except StoreUnavailable:
            raise
        except IngestError as exc:
            outcome.failures.append(self._failure(collection, f"cannot list for deletion: {exc}", 1, task))
            return
        if nothing_listed and not task.directory and (gone_objects or gone_colls):
            # An empty listing of the whole source looks exactly like a mistyped prefix or an
            # emptied bucket: deleting everything synced is refused, loudly.
            outcome.count("tasks_failed")
            outcome.error = (
                f"the S3 source {self.config.source_root} lists no objects: nothing was deleted from {collection} "
                f"(check s3.bucket and s3.prefix; if the source really is empty, remove the collection by hand)"
            )
            outcome.failures.append(self._failure(self.config.source_root, outcome.error, 1, task))
            return
        self._enqueue_deletes(task, outcome, collection, gone_objects, gone_colls)

    def _pre_job(self, task: Task, outcome: TaskOutcome) -> bool:
        """Run the handler's pre_job (in the root scan task); False fails the run."""
        try:
            self.handler.job_hook("pre_job", log, self.meta())
        except HandlerError as exc:
            outcome.count("tasks_failed")
            outcome.error = f"pre_job failed: {exc}"
            outcome.failures.append(self._failure(self.config.source_root, outcome.error, 1, task, exc.traceback_text))
            return False
        return True

    def _gone(self, task: Task, outcome: TaskOutcome, absolute: str, exc: OSError) -> TaskOutcome:
        """A directory that cannot be scanned because it is missing or no longer a directory."""
        if task.directory:
            reason = "directory vanished or was replaced during the scan"
        else:
            reason = "source is not a directory" if isinstance(exc, NotADirectoryError) else "source does not exist"
            outcome.error = f"{reason}: {absolute}"
        outcome.count("tasks_failed")
        outcome.failures.append(self._failure(absolute, f"{reason}: {exc.strerror}", 1, task))
        return outcome

    def _check_root(self) -> None:
        root = self.config.source_path
        if not os.path.isdir(root):
            if os.path.exists(root):
                raise NotADirectoryError(20, "Not a directory", root)
            raise FileNotFoundError(2, "No such directory", root)

    def _ensure_collection(self, collection: str, meta: dict[str, Any]) -> None:
        catalog = self.catalog(meta)
        # As the incumbent: a directory whose collection exists fires coll_modify, a new one
        # coll_create. The existence query is skipped for NoOp jobs without collection hooks.
        modify_hooks = self.handler.has("pre_coll_modify") or self.handler.has("post_coll_modify")
        if self.config.operation is Operation.NO_OP:
            exists = (modify_hooks or self.handler.has("pre_coll_create") or self.handler.has("post_coll_create")) and (
                catalog.collection_exists(collection)
            )
            self._with_hooks("coll_modify" if exists else "coll_create", lambda: None, catalog, meta)
            return
        if catalog.collection_exists(collection):
            if modify_hooks:
                self._with_hooks("coll_modify", lambda: None, catalog, meta)
            return
        parent = posixpath.dirname(collection)
        if collection != self.config.target_collection and not catalog.collection_exists(parent):
            # A parent scan task creates it first; a missing parent means it was removed meanwhile.
            self._with_hooks("coll_create", lambda: catalog.create_collection(parent), catalog, meta | {"target": parent})
        self._with_hooks("coll_create", lambda: catalog.create_collection(collection), catalog, meta)

    def _with_hooks(self, event: str, action: Callable[[], None], catalog: IrodsCatalog, meta: dict[str, Any]) -> None:
        def body(*_: Any, **__: Any) -> None:
            try:
                action()
            except IngestError as exc:
                raise _EngineFailure(exc) from exc

        try:
            self.handler.around(event, body, log, catalog.session, meta)
        except _EngineFailure as wrapped:
            raise wrapped.error from None

    def _plans_deletes(self, task: Task, outcome: TaskOutcome, where: str, collection: str) -> bool:
        """Whether what left the source below ``collection`` is to be deleted: its effective
        delete mode (the handler's delete_mode() for it, else the job's) is not DoNotDelete.
        A delete_mode() that raises deletes nothing and says so."""
        if self.config.delete_mode is DeleteMode.DO_NOT_DELETE:
            return False
        try:
            mode = self._delete_mode(self.meta(path=where, target=collection, entry_type="dir"))
        except HandlerError as exc:
            outcome.count("tasks_failed")
            outcome.failures.append(self._failure(where, f"nothing deleted: {exc}", 1, task, exc.traceback_text))
            return False
        return mode is not DeleteMode.DO_NOT_DELETE

    def _plan_deletes(self, task: Task, outcome: TaskOutcome, names_seen: set[str], collection: str) -> None:
        try:
            listing = self.catalog(self.meta(target=collection)).listing(collection)
        except IngestError as exc:
            outcome.failures.append(self._failure(collection, f"cannot list for deletion: {exc}", 1, task))
            return
        expected = {posixpath.basename(self.logical_path(task.directory, n)) for n in names_seen}
        gone_objects = sorted(n for n in listing.objects if n not in expected)
        gone_colls = sorted(n for n in listing.subcollections if n not in expected)
        self._enqueue_deletes(task, outcome, collection, gone_objects, gone_colls)

    def _enqueue_deletes(
        self, task: Task, outcome: TaskOutcome, collection: str, gone_objects: list[str], gone_colls: list[str]
    ) -> None:
        """DELETE tasks for what left the source: objects in batches of files_per_task, and
        each vanished collection in a task of its own (it is listed a page at a time)."""
        size = self.config.files_per_task
        for start in range(0, len(gone_objects), size):
            paths = tuple(posixpath.join(collection, n) for n in gone_objects[start : start + size])
            outcome.enqueue.append(Task(TaskKind.DELETE, task.run, directory=task.directory, paths=paths))
        for name in gone_colls:
            outcome.enqueue.append(
                Task(TaskKind.DELETE, task.run, directory=task.directory, collections=(posixpath.join(collection, name),))
            )

    # ------------------------------------------------------------------ files
    def sync_files(self, task: Task) -> TaskOutcome:
        outcome = TaskOutcome()
        outcome.count("tasks_done")
        collection = self.logical_collection(task.directory)
        listing: CollectionListing | None = None
        if not self.config.initial_ingest and self.config.operation is not Operation.NO_OP:
            try:
                listing = self.catalog(self.meta(target=collection)).listing(collection, with_subcollections=True)
            except IngestError as exc:
                outcome.counters.pop("tasks_done")
                return self._retry_or_fail(task, outcome, exc, len(task.entries))
        retry_entries: list[FileEntry] = []
        cache: dict[str, str] = {}
        for index, entry in enumerate(task.entries):
            if index and self.ctx.stopping():
                # Warm shutdown mid-batch: the files done so far are acknowledged with this task,
                # the rest go back to the queue as a new task (no attempt counted), so a large
                # batch never outlasts the pod's grace period.
                outcome.enqueue.append(Task(TaskKind.FILES, task.run, directory=task.directory,
                                            entries=task.entries[index:], attempt=task.attempt))
                break
            path = self._entry_source(task.directory, entry.name)
            meta = self.meta(path=path)
            try:
                limit = self._time_limit(meta)
            except HandlerError as exc:  # decided before the file is touched: it fails by name
                outcome.count("files_failed")
                outcome.failures.append(self._failure(path, str(exc), task.attempt + 1, task, exc.traceback_text))
                continue
            # Deadline interrupts only Python code: a socket blocked on a silent server must time
            # out by itself, just after the limit (else the worker waits for the reply, however late).
            self._call_seconds = min(MAX_CALL_SECONDS, limit + CALL_TIMEOUT_MARGIN_SECONDS) if limit > 0 else MAX_CALL_SECONDS
            listed_by_name = not entry.stated
            try:
                with Deadline(limit):
                    synced, entry = self.sync_one(task.directory, entry, listing, task.run)
            except FileTimeout:
                # The interrupted call may have left an iRODS connection mid-message.
                self.ctx.reset_connections()
                outcome.count("files_failed")
                outcome.failures.append(self._failure(path, f"timed out after {limit:g} s", task.attempt + 1, task))
                continue
            except RetryableError as exc:
                if task.attempt < self._max_retries(meta):
                    retry_entries.append(entry)
                else:
                    outcome.count("files_failed")
                    outcome.failures.append(self._failure(path, str(exc), task.attempt + 1, task))
                continue
            except HandlerError as exc:
                # As in the incumbent, a handler that declares max_retries has its failing hooks
                # retried (its example handlers rely on that); otherwise the file fails now.
                if exc.from_hook and self.handler.has("max_retries") and task.attempt < self._max_retries(meta):
                    retry_entries.append(entry)
                    continue
                outcome.count("files_failed")
                outcome.failures.append(self._failure(path, str(exc), task.attempt + 1, task, exc.traceback_text))
                continue
            except IngestError as exc:
                outcome.count("files_failed")
                outcome.failures.append(self._failure(path, str(exc), task.attempt + 1, task))
                continue
            _count_file(outcome, entry, synced=synced, listed_by_name=listed_by_name)
            cache[entry.cache_field] = entry.cache_value
        if cache:
            outcome.cache_set[task.directory] = cache
        if retry_entries:
            due = time.time() + self._delay(self.meta(path=self.source_path(task.directory)), task.attempt + 1)
            outcome.delay.append((due, task.retried(entries=tuple(retry_entries))))
        return outcome

    def _time_limit(self, meta: dict[str, Any]) -> float:
        return float(self.handler.timeout(log, meta, self.config.task_timeout_seconds))

    def _delay(self, meta: dict[str, Any], retry: int) -> float:
        """Seconds before retry number ``retry``: the handler's delay(), else capped exponential backoff."""
        try:
            return self.handler.delay(log, meta, retry, backoff(self.config, retry))
        except HandlerError as exc:  # as _max_retries: the retry still happens, the error is logged
            log.warning("handler_policy_failed", extra={"job": self.ctx.job, "error": str(exc), "using": backoff(self.config, retry)})
            return backoff(self.config, retry)

    def sync_one(
        self, directory: str, entry: FileEntry, listing: CollectionListing | None, run: str = ""
    ) -> tuple[bool, FileEntry]:
        """Sync one file: (whether iRODS changed, the file as synced)."""
        work = self._prepare(directory, entry)
        work.meta["run"] = run
        return self._sync(work, listing), work.entry

    def _sync(self, work: FileWork, listing: CollectionListing | None) -> bool:
        existing: ObjectInfo | None = None
        if listing is not None:
            if work.name in listing.subcollections:
                raise PermanentError(f"cannot sync file {work.source} onto collection {work.target}")
            existing = listing.objects.get(work.name)
        if work.operation is Operation.NO_OP:
            self._with_hooks("data_obj_create" if existing is None else "data_obj_modify", lambda: None, work.catalog, work.meta)
            return True
        if existing is None:
            try:
                self._create(work)
            except AlreadyExists:
                # Created meanwhile (a racing worker, or this task's earlier delivery): judge
                # it as an existing object instead of failing.
                existing = work.catalog.object_info(work.target)
                if existing is None:
                    raise
            else:
                return True
        if work.operation is Operation.REGISTER_AS_REPLICA_SYNC:
            return self._sync_replica(work, existing)
        if work.operation is Operation.REGISTER_SYNC:
            return self._sync_registered(work, existing)
        return self._sync_upload(work, existing)

    def _entry_source(self, directory: str, name: str) -> str:
        if self.config.s3 is not None:
            return self.config.s3.physical_path(posixpath.join(directory, name) if directory else name)
        return os.path.join(self.source_path(directory), name)

    def _prepare(self, directory: str, scanned: FileEntry) -> FileWork:
        source = self._entry_source(directory, scanned.name)
        # An S3 object is synced as listed (size, time, ETag): no stat, and a GET that finds
        # other bytes fails verification instead of passing unnoticed.
        entry = scanned if self.config.s3 is not None else self._restat(source, scanned)
        target = self.logical_path(directory, entry.name)
        meta = self.meta(
            path=source,
            target=target,
            entry_type="file",
            size=entry.size,
            mtime=entry.mtime_ns / 1e9,
            is_link=entry.kind == "link",
            is_socket=entry.kind == "socket",
        )
        if target != posixpath.join(self.logical_collection(directory), entry.name):
            renamed_by = "UnicodeEncodeError" if posixpath.basename(target).startswith(UNICODE_ERROR_PREFIX) else "character_map"
            meta["b64_path_str"] = base64.b64encode(os.fsencode(source)).decode()
            meta["b64_reason"] = renamed_by
        operation = self.handler.operation(None, meta, self.config.operation)
        if not delete_mode_compatible(operation, self.handler.delete_mode(meta, self.config.delete_mode)):
            raise PermanentError(f"handler operation {operation.value} is incompatible with the job's delete mode")
        catalog = self.catalog(meta)
        return FileWork(
            entry=entry,
            source=source,
            target=target,
            meta=meta,
            operation=operation,
            catalog=catalog,
            resource=self.handler.to_resource(catalog.session, meta, self.config.resource),
            physical=self.handler.target_path(catalog.session, meta) or source,
            key=self.config.s3.key(posixpath.join(directory, entry.name) if directory else entry.name) if self.config.s3 else "",
        )

    @functools.cached_property
    def real_source_root(self) -> str:
        """The source directory as the kernel resolves it: links must resolve below it."""
        return real_root(self.config.source_path)

    def _restat(self, source: str, scanned: FileEntry) -> FileEntry:
        """The file as it is now: it may have changed, or gone, since the scan listed it.

        Links are judged again (a data producer may have planted or re-pointed one since the
        scan): a regular file that became a link fails unless links are followed (Follow),
        and a link that now resolves outside the source root fails. One ``lstat`` as before;
        ``realpath`` only for links.
        """
        kind = scanned.kind
        try:
            st = os.lstat(source)
            if stat.S_ISLNK(st.st_mode):
                if kind != "link" and self.config.symlinks is not SymlinkPolicy.FOLLOW:
                    raise PermanentError(f"{source} was replaced by a symbolic link after the scan: not followed")
                escaped = escaping_target(source, self.real_source_root)
                if escaped is not None:
                    raise PermanentError(f"{source}: {escape_reason(escaped)}")
                if kind != "link":
                    st = os.stat(source)  # Follow: the file the link points to
            elif kind == "link" and stat.S_ISREG(st.st_mode):
                kind = "regular"  # the link was replaced by a file: sync the file (no link_target AVU)
            if kind == "regular" and not stat.S_ISREG(st.st_mode):
                raise PermanentError(f"{source} is not a regular file any more (replaced after the scan): not synced")
        except FileNotFoundError as exc:
            raise SourceVanished(f"source file vanished before it was synced: {source}") from exc
        except OSError as exc:
            raise PermanentError(f"cannot stat {source}: {exc.strerror}") from exc
        if (st.st_size, st.st_mtime_ns, kind) == (scanned.size, scanned.mtime_ns, scanned.kind):
            return scanned
        return FileEntry(scanned.name, st.st_size, st.st_mtime_ns, kind)

    @contextmanager
    def _opened(self, work: FileWork) -> Iterator[str]:
        """The path to upload ``work``'s bytes from: the file opened by us and checked to be a
        regular file inside the source root (``/proc/self/fd/N``, see :mod:`irods_ingest.confine`).
        Links are followed only where the scan confined them (symlinks: Register or Follow)."""
        follow = work.entry.kind == "link" or self.config.symlinks is SymlinkPolicy.FOLLOW
        with opened_inside(work.source, self.real_source_root, follow=follow) as local:
            yield local

    def _create(self, work: FileWork) -> None:
        catalog, entry = work.catalog, work.entry
        if work.operation.uploads and work.key:
            def action() -> None:
                self._stream_from_s3(work, overwrite=False)
        elif work.operation.uploads:
            def action() -> None:
                with self._opened(work) as local:
                    catalog.put(local, work.target, resource=work.resource, overwrite=False, checksum=self.config.verify_checksum)
        else:
            # Registering an S3 object writes no bytes: there is nothing of ours to verify,
            # and asking iRODS to checksum it would read the whole object through the resource.
            def action() -> None:
                catalog.register(
                    work.physical, work.target, resource=work.resource, size=entry.size, mtime=work.mtime,
                    checksum=self.config.verify_checksum and not work.key,
                )
        self._with_hooks("data_obj_create", action, catalog, work.meta)
        self._annotate(catalog, work.target, work.meta, work.source)

    def _update_metadata(self, work: FileWork, replica: Replica, replica_number: int | None) -> bool:
        if replica.size == work.entry.size and replica.modify_time == work.mtime:
            return False
        self._with_hooks(
            "data_obj_modify",
            lambda: work.catalog.update_replica_metadata(work.target, replica_number, size=work.entry.size, mtime=work.mtime),
            work.catalog,
            work.meta,
        )
        return True

    def _sync_replica(self, work: FileWork, existing: ObjectInfo) -> bool:
        if not work.resource:
            raise PermanentError("RegisterAsReplicaSync needs a resource (set resource or a handler's to_resource)")
        under = existing.replicas_under(work.resource)
        if not under:
            def action() -> None:
                work.catalog.register(
                    work.physical, work.target, resource=work.resource, size=work.entry.size, mtime=work.mtime, as_replica=True
                )
            self._with_hooks("data_obj_create", action, work.catalog, work.meta)
            return True
        matching = [r for r in under if r.path == work.physical]
        if not matching:
            raise PermanentError(f"{work.target} has a replica under {work.resource} but at another path than {work.physical}")
        return self._update_metadata(work, matching[0], matching[0].number)

    def _sync_registered(self, work: FileWork, existing: ObjectInfo) -> bool:
        candidates = existing.replicas_under(work.resource) if work.resource else existing.replicas
        matching = [r for r in candidates if r.path == work.physical]
        if not matching:
            raise PermanentError(
                f"{work.target} exists in iRODS but was not registered from {work.physical} (wrong resource or path)"
            )
        return self._update_metadata(work, matching[0], matching[0].number if work.resource else None)

    def _sync_upload(self, work: FileWork, existing: ObjectInfo) -> bool:
        interrupted = not existing.has_good_replica
        if work.operation is Operation.PUT and not interrupted:
            return False  # Put never touches an object that is already there
        # An object with no good replica is an upload that never finished (a worker killed
        # mid-transfer leaves it intermediate or stale, often empty): it is rewritten whole,
        # whatever the operation, or the file would count as done with its bytes missing.
        if work.operation is Operation.PUT_APPEND and not interrupted and existing.size <= work.entry.size:
            if existing.size == work.entry.size:
                return False
            offset = existing.size

            def append() -> None:
                if work.key:
                    self._stream_from_s3(work, overwrite=True, offset=offset)
                else:
                    with self._opened(work) as local:
                        work.catalog.append(local, work.target, from_offset=offset, resource=work.resource)

            self._with_hooks("data_obj_modify", append, work.catalog, work.meta)
            return True
        # PutSync, or PutAppend onto an object larger than the source (rewritten whole).
        def rewrite() -> None:
            if work.key:
                self._stream_from_s3(work, overwrite=True)
            else:
                with self._opened(work) as local:
                    work.catalog.put(local, work.target, resource=work.resource, overwrite=True, checksum=self.config.verify_checksum)

        self._with_hooks("data_obj_modify", rewrite, work.catalog, work.meta)
        return True

    def _stream_from_s3(self, work: FileWork, *, overwrite: bool, offset: int | None = None) -> None:
        """Stream an S3 object (from ``offset``) into iRODS, one chunk in memory at a time.

        With verifyChecksum the bytes are hashed as they pass (the bytes already in iRODS
        first, for an append) and judged against the listed ETag and iRODS' own checksum;
        a mismatch fails the file (a copy this call created is removed again).
        """
        verifier = StreamVerifier(work.entry.etag, work.entry.size) if self.config.verify_checksum else None
        if verifier is not None and offset:
            for chunk in work.catalog.read_stream(work.target, length=offset):
                verifier.update(chunk)

        transfer = self.bucket.transfer
        if work.entry.size - (offset or 0) >= transfer.parallel_threshold and supports_parallel_write(work.catalog):
            self._parts_from_s3(work, overwrite=overwrite, offset=offset, verifier=verifier)
        else:
            def chunks() -> Iterator[bytes]:
                for chunk in self.bucket.read(work.key, offset or 0, work.entry.size):
                    if verifier is not None:
                        verifier.update(chunk)
                    yield chunk

            work.catalog.write_stream(chunks(), work.target, resource=work.resource, overwrite=overwrite, offset=offset)
        if verifier is None:
            return
        problem = verifier.etag_problem() or verifier.irods_problem(work.catalog.checksum(work.target))
        if problem:
            if not overwrite:
                work.catalog.discard(work.target)  # else a later Put would keep the bad copy as done
            raise PermanentError(f"{work.source}: {problem}")

    def _parts_from_s3(self, work: FileWork, *, overwrite: bool, offset: int | None, verifier: StreamVerifier | None) -> None:
        """A large object as ranged GETs in parallel, each written at its offset through its
        own iRODS handle on the same replica (memory: parts in flight x part size)."""
        transfer = self.bucket.transfer
        parts = plan_parts(offset or 0, work.entry.size, transfer.part_bytes)
        with ParallelWrite(
            work.catalog, work.target, size=work.entry.size, resource=work.resource, overwrite=overwrite,
            append=offset is not None, handles=min(transfer.parts_in_flight, len(parts)),
        ) as writer:
            copy_parts(
                parts,
                lambda part: self.bucket.read(work.key, part.offset, part.end, if_match=work.entry.etag),
                writer,
                parts_in_flight=transfer.parts_in_flight,
                hasher=verifier,
                where=work.source,
            )

    def _annotate(self, catalog: IrodsCatalog, target: str, meta: dict[str, Any], source: str) -> None:
        """The provenance AVUs the incumbent writes for renamed names, sockets and links."""
        if meta.get("b64_path_str"):
            catalog.add_metadata(
                target,
                f"irods::automated_ingest::{meta['b64_reason']}",
                meta["b64_path_str"],
                "python3.base64.b64encode(full_path_of_source_file)",
            )
        if meta.get("is_socket"):
            catalog.add_metadata(target, "socket_target", "socket", "automated_ingest")
        elif meta.get("is_link"):
            link = os.path.join(os.path.dirname(source), os.readlink(source))
            catalog.add_metadata(target, "link_target", link, "automated_ingest")
        if self.config.metadata:
            context = self.template_context(meta)
            for attribute, value, units in self.config.metadata:
                catalog.add_metadata(target, attribute.format_map(context), value.format_map(context), units)

    def template_context(self, meta: dict[str, Any]) -> dict[str, str]:
        """The fields a declarative metadata template may use (the SyncJob CRD documents them)."""
        namespace, _, name = self.ctx.job.rpartition("/")
        source = str(meta.get("path") or "")
        return {
            "job": name,
            "namespace": namespace,
            "run": str(meta.get("run", "")),
            "path": source,
            "relativePath": os.path.relpath(source, self.config.source_root) if source else "",
            "name": os.path.basename(source),
            "logicalPath": str(meta.get("target", "")),
            "collection": self.config.target_collection,
            "size": str(meta.get("size", "")),
            "mtime": str(int(meta.get("mtime") or 0)),
        }

    # ------------------------------------------------------------------ delete
    def delete(self, task: Task) -> TaskOutcome:
        """Apply the effective delete mode to what left the source (three task shapes).

        - ``paths``: data objects, each deleted per its effective delete mode (the handler's
          ``delete_mode(meta)`` for it, else the job's: unregister; unlink into the trash;
          unlink with force) inside its data_obj_delete hooks, and counted in files_deleted.
        - ``collections`` (one): a vanished collection, listed a page at a time (``cursor``:
          GenQuery resumed by name). A page fans out DELETE tasks of at most files_per_task
          of its objects, one task per subcollection (a vanished collection in turn) and the
          task listing the next page: no task lists or acknowledges more than a page,
          whatever the collection holds. Nothing is listed or deleted under a collection whose
          effective delete mode is DoNotDelete.
        - ``remove``: the collection's contents were handled: it is removed if it is empty
          (never recursively, never forced; Unregister mode unregisters it) inside its
          coll_delete hooks, and counted in collections_deleted. The job's target collection
          is never removed (nor anything outside it).

        Bottom-up removal, as a join in Redis (store.keys: ``joins``) rather than the
        incumbent's "the last child task removes the empty parent": the ack of a collection's
        first page records how many tasks it enqueued (``join_open``) with the task that
        removes the collection; later pages add theirs (``join_add``); every one of them
        counts down at its own ack (``join_done``, the task's ``after``), a subcollection's
        only once its removal task is done. Acks apply exactly once per task (atomically with
        the queue), so under at-least-once delivery and concurrent workers the removal task
        is queued exactly once, after every object task and subcollection removal of the
        collection: an emptied collection is never left behind, and it has one removal task
        to count it. (The incumbent's scheme makes every finishing child check and remove the
        parent under a lock: two children can both remove, or a crash after the last child's
        deletions leaves the parent for ever.) A removal task re-checks emptiness with one
        row per query (bounded), so a collection that still holds something -- an object
        whose deletion failed or that the handler keeps -- is kept.

        Counting under redelivery: an object (or collection) already gone when a task gets
        to it is counted only if the task is ``redelivered`` -- the REQUEUE script's mark on a
        dead worker's task, or a retry of failed deletions. Such a task's earlier delivery
        may have deleted it, and its count cannot have landed: only an ack counts, an acked
        task is never delivered again, and a task taken from a dead worker's processing list
        can no longer be acked by that worker (its ack is "stale"). A first delivery finding
        something gone counts nothing (another task, or a person, removed it). The price: a
        redelivered task also counts an object someone else removed meanwhile. Nothing gone
        ever fails a file.
        """
        outcome = TaskOutcome()
        outcome.count("tasks_done")
        if task.paths:
            self._delete_objects(task, outcome)
        elif task.remove:
            for collection in task.collections:
                self._remove_emptied(task, outcome, collection)
        else:
            for collection in task.collections:
                self._delete_collection_page(task, outcome, collection)
        return outcome

    def _delete_mode(self, meta: dict[str, Any]) -> DeleteMode:
        """The effective delete mode for ``meta``: the handler's delete_mode(), else the job's."""
        return self.handler.delete_mode(meta, self.config.delete_mode)

    def _count_gone(self, task: Task, outcome: TaskOutcome, counter: str, path: str) -> None:
        """``path`` was already gone: counted only by a redelivered task (see :meth:`delete`)."""
        if task.redelivered:
            outcome.count(counter)
        log.info("delete_already_gone", extra={"job": self.ctx.job, "task": task.id, "path": path,
                                               "counted": task.redelivered})

    def _below_target(self, path: str) -> None:
        target = normalize_collection(self.config.target_collection)
        if not normalize_collection(path).startswith(target.rstrip("/") + "/"):
            raise PermanentError(f"{path} is not below the target collection {target}: never deleted")

    def _retried_later(self, task: Task, outcome: TaskOutcome, retried: Task, meta: dict[str, Any]) -> bool:
        """Queue ``retried`` (what is left of ``task``) as a delayed retry if attempts remain.
        It is marked redelivered: the failed attempt may have taken effect uncounted."""
        if task.attempt >= self._max_retries(meta):
            return False
        due = time.time() + self._delay(meta, task.attempt + 1)
        outcome.delay.append((due, replace(retried, attempt=task.attempt + 1, redelivered=True)))
        return True

    def _collection_failed(self, task: Task, outcome: TaskOutcome, collection: str, exc: IngestError) -> None:
        # No file counter covers a collection: count the task as failed, or the run would end
        # "done" with this failure only in the list.
        outcome.count("tasks_failed")
        record = self._failure(collection, f"delete failed: {exc}", task.attempt + 1, task,
                               getattr(exc, "traceback_text", ""))
        record["collection"] = True  # so that a retry deletes a collection, not an object
        outcome.failures.append(record)

    def _delete_objects(self, task: Task, outcome: TaskOutcome) -> None:
        retry: list[str] = []
        by_collection: dict[str, list[str]] = {}
        for path in task.paths:
            by_collection.setdefault(posixpath.dirname(path), []).append(path)
        for collection, paths in by_collection.items():
            present: set[str] | None = None
            try:  # one query for the batch: no hooks for an object that is already gone
                present = existing_objects(self.catalog(self.meta(target=collection)), collection,
                                           [posixpath.basename(p) for p in paths])
            except RetryableError:
                retry += paths
                continue
            except PermanentError:
                present = None  # (e.g. a name GenQuery cannot quote): each delete tells
            for path in paths:
                if present is not None and posixpath.basename(path) not in present:
                    self._count_gone(task, outcome, "files_deleted", path)
                    continue
                try:
                    if self._delete_object(path):
                        outcome.count("files_deleted")
                except Missing:
                    self._count_gone(task, outcome, "files_deleted", path)
                except RetryableError:
                    retry.append(path)
                except HandlerError as exc:
                    outcome.count("files_failed")
                    outcome.failures.append(self._failure(path, str(exc), task.attempt + 1, task, exc.traceback_text))
                except IngestError as exc:
                    outcome.count("files_failed")
                    outcome.failures.append(self._failure(path, f"delete failed: {exc}", task.attempt + 1, task))
        if retry and self._retried_later(task, outcome, replace(task, paths=tuple(retry)), self.meta(target=retry[0])):
            return  # the retry counts the join down when it is done
        for path in retry:
            outcome.count("files_failed")
            outcome.failures.append(self._failure(path, "delete failed: iRODS unreachable (retries exhausted)",
                                                  task.attempt + 1, task))
        outcome.join_done = task.after

    def _delete_object(self, path: str) -> bool:
        """Delete one data object per its effective delete mode; False if that is DoNotDelete."""
        meta = self.meta(target=path, path=None)
        mode = self._delete_mode(meta)
        if mode is DeleteMode.DO_NOT_DELETE:
            return False
        if not delete_mode_compatible(self.config.operation, mode):
            # e.g. Trash in a RegisterSync job would delete the registered files themselves
            raise PermanentError(
                f"handler delete_mode() {mode.value} is incompatible with operation {self.config.operation.value}: not deleted"
            )
        self._below_target(path)
        catalog = self.catalog(meta)

        def action() -> None:
            if mode is DeleteMode.UNREGISTER:
                catalog.unregister(path)
            else:
                catalog.unlink(path, force=mode is DeleteMode.NO_TRASH)  # Trash: into the trash

        self._with_hooks("data_obj_delete", action, catalog, meta)
        return True

    def _delete_collection_page(self, task: Task, outcome: TaskOutcome, collection: str) -> None:
        """List one page of a vanished collection and fan out its deletion (see :meth:`delete`)."""
        first_page = not task.cursor
        meta = self.meta(target=collection, path=None)
        try:
            if self._delete_mode(meta) is DeleteMode.DO_NOT_DELETE:
                outcome.join_done = task.after  # nothing deleted here: whoever waits goes on
                return
            self._below_target(collection)
            catalog = self.catalog(meta)
            per_task = self.config.files_per_task
            page = min(per_task * PURGE_FANOUT, max(per_task, PURGE_PAGE_OBJECTS))
            objects, _, cursor = collection_page(catalog, collection, task.cursor, objects=page, subcollections=0)
            room = PURGE_FANOUT - -(-len(objects) // per_task)
            subcollections: list[str] = []
            if cursor.startswith("c:") and room > 0:  # the objects are listed: go on with subcollections
                _, subcollections, cursor = collection_page(catalog, collection, cursor, objects=1, subcollections=room)
        except RetryableError as exc:
            if not self._retried_later(task, outcome, task, meta):
                self._collection_failed(task, outcome, collection, exc)
                outcome.join_done = task.after
            return
        except IngestError as exc:
            self._collection_failed(task, outcome, collection, exc)
            outcome.join_done = task.after
            return
        children = [
            Task(TaskKind.DELETE, task.run, directory=task.directory, after=collection,
                 paths=tuple(posixpath.join(collection, n) for n in objects[start : start + per_task]))
            for start in range(0, len(objects), per_task)
        ]
        children += [
            Task(TaskKind.DELETE, task.run, directory=task.directory, after=collection,
                 collections=(posixpath.join(collection, name),))
            for name in subcollections
        ]
        if cursor:
            children.append(Task(TaskKind.DELETE, task.run, directory=task.directory, after=collection,
                                 collections=(collection,), cursor=cursor))
        outcome.enqueue += children
        if not first_page:
            if children:
                outcome.join_add[collection] = outcome.join_add.get(collection, 0) + len(children)
            outcome.join_done = task.after  # this page of the collection is done
        elif children:
            # Removed once every task just enqueued (and those they enqueue) is acknowledged; the
            # removal counts down what this task's ``after`` waits for.
            removal = Task(TaskKind.DELETE, task.run, directory=task.directory, collections=(collection,),
                           remove=True, after=task.after)
            outcome.join_open.append((collection, len(children), removal))
        else:
            self._remove_emptied(task, outcome, collection, known_empty=True)

    def _remove_emptied(self, task: Task, outcome: TaskOutcome, collection: str, *, known_empty: bool = False) -> None:
        """Remove a vanished collection whose contents were handled, if it is empty."""
        meta = self.meta(target=collection, path=None)
        try:
            mode = self._delete_mode(meta)
            if mode is not DeleteMode.DO_NOT_DELETE:
                self._below_target(collection)
                catalog = self.catalog(meta)
                if not known_empty:
                    objects, subcollections, _ = collection_page(catalog, collection, "", objects=1, subcollections=1)
                    known_empty = not objects and not subcollections
                if known_empty:
                    self._with_hooks(
                        "coll_delete",
                        lambda: catalog.remove_empty_collection(collection, unregister=mode is DeleteMode.UNREGISTER),
                        catalog,
                        meta,
                    )
                    outcome.count("collections_deleted")
                else:
                    # What is left failed to delete (recorded by its task) or is kept by the handler.
                    log.info("collection_kept_not_empty", extra={"job": self.ctx.job, "collection": collection})
        except Missing:
            self._count_gone(task, outcome, "collections_deleted", collection)
        except RetryableError as exc:
            if self._retried_later(task, outcome, task, meta):
                return
            self._collection_failed(task, outcome, collection, exc)
        except IngestError as exc:
            self._collection_failed(task, outcome, collection, exc)
        outcome.join_done = task.after

    # ------------------------------------------------------------------ finalize
    def finalize(self, task: Task) -> TaskOutcome:
        outcome = TaskOutcome(finalize=True)
        if self.config.s3 is not None and self.ctx.listing_book is not None:
            self.ctx.listing_book.forget_run_seen(task.run)  # what a failed or cut-short listing left
        try:
            self.handler.job_hook("post_job", log, self.meta())
        except HandlerError as exc:
            outcome.error = str(exc)
            outcome.failures.append(self._failure("", str(exc), 1, task, exc.traceback_text))
        return outcome
