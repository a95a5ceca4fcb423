"""What a scan plans for a directory, shared by the filesystem and the S3 scans.

- :func:`ensure_collection`: the directory's collection, inside the handler's collection hooks;
- :func:`plans_deletes`: whether what left the directory is to be deleted (its effective
  delete mode);
- :class:`Judgement`: what left the source, judged against the names the listing saw (a
  set in memory for a directory of one page; the listing book in Redis for a directory of
  several pages or an S3 prefix): stale change-cache entries, and DELETE tasks for the
  collection's children (read in GenQuery pages as it goes, never whole). Both are bounded
  per acknowledgement: a judgement larger than a page is committed in chunks while the task
  stays claimed;
- :func:`enqueue_deletes`: DELETE tasks for what left the source.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from typing import Any

from irods_ingest.config import DeleteMode, Operation
from irods_ingest.errors import HandlerError, IngestError, StoreUnavailable
from irods_ingest.execute.context import JobContext
from irods_ingest.execute.hooks import with_hooks
from irods_ingest.irods_io.bulk import child_names
from irods_ingest.queue import TaskOutcome
from irods_ingest.tasks import Task, TaskKind

# Names -> those among them that the listing saw (cache fields and iRODS names alike).
Present = Callable[[list[str]], set[str]]


class ListingLost(Exception):
    """An early commit was refused: the task was handed to another worker (stale) or its run
    is over (fenced). Whatever this delivery still does can never be applied."""


def ensure_collection(job: JobContext, collection: str, meta: dict[str, Any], *, changed: bool = True) -> None:
    """The directory's collection: created (coll_create hooks) if missing. As the incumbent, a
    directory whose collection exists fires coll_modify only if it ``changed`` since it was
    last synced (see :func:`directory_changed`). The existence query is skipped for NoOp jobs
    without collection hooks."""
    catalog = job.catalog(meta)
    handler = job.handler
    modify_hooks = handler.has_coll_modify_hooks
    if job.config.operation is Operation.NO_OP:
        exists = (modify_hooks or handler.has("pre_coll_create") or handler.has("post_coll_create")) and (
            catalog.collection_exists(collection)
        )
        if not (exists and not changed):
            with_hooks(job, "coll_modify" if exists else "coll_create", lambda: None, catalog, meta)
        return
    modify_hooks = modify_hooks and changed
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


def logical_names(job: JobContext, directory: str, names: Iterable[str]) -> set[str]:
    """Raw entry names as iRODS calls them (they differ under a character_map and for names
    that are not UTF-8)."""
    return {posixpath.basename(job.logical_path(directory, name)) for name in names}


class Judgement:
    """What left one directory (or prefix), judged once its whole listing was seen.

    ``present`` answers which of some names the listing saw. Stale cache entries and DELETE
    tasks gather in ``outcome``; past ``chunk`` of them they are committed early through the
    claimed task (``RunContext.progress``), so no acknowledgement carries more than a chunk.
    (A redelivery after such a commit judges again: stale entries are deleted idempotently,
    and a DELETE task queued twice deletes once and counts once, as a first delivery that
    finds an object gone counts nothing.)
    """

    def __init__(self, job: JobContext, task: Task, outcome: TaskOutcome, directory: str, chunk: int | None) -> None:
        self.job = job
        self.task = task
        self.outcome = outcome
        self.directory = directory
        self.chunk = chunk if job.run_context.progress is not None else None
        self._pending = TaskOutcome(cache_generation=job.cache_generation)
        self._size = 0

    def stale_cache(self, batches: Iterable[list[str]], present: Present) -> None:
        """Drop the cache entries (fields: wire names) the listing did not see."""
        for fields in batches:
            kept = present(fields)
            stale = [f for f in fields if f not in kept]
            if stale:
                self._pending.cache_delete.setdefault(self.directory, []).extend(stale)
                self._grew(len(stale))

    def deletes(self, collection: str, present: Present) -> None:
        """DELETE tasks for the children of ``collection`` the listing did not see."""
        job = self.job
        try:
            for objects, subcollections in child_names(job.catalog(job.meta(target=collection)), collection):
                here = present(objects + subcollections)
                gone_objects = [n for n in objects if n not in here]
                gone_colls = [n for n in subcollections if n not in here]
                enqueue_deletes(job, self.task, self._pending, collection, gone_objects, gone_colls)
                self._grew(len(gone_objects) + len(gone_colls))
        except StoreUnavailable:
            raise
        except IngestError as exc:
            self.outcome.failures.append(job.failure(collection, f"cannot list for deletion: {exc}", 1, self.task))

    def _grew(self, items: int) -> None:
        self._size += items
        if self.chunk is not None and self._size >= self.chunk:
            commit_early(self.job, self._pending, self.directory)
            self._pending = TaskOutcome(cache_generation=self.job.cache_generation)
            self._size = 0

    def finish(self) -> None:
        """What is left goes with the task's acknowledgement."""
        self.outcome.enqueue += self._pending.enqueue
        for directory, fields in self._pending.cache_delete.items():
            self.outcome.cache_delete.setdefault(directory, []).extend(fields)


def commit_early(job: JobContext, outcome: TaskOutcome, directory: str, record: str = "") -> None:
    """Apply ``outcome`` now, while the task stays claimed; :class:`ListingLost` if refused."""
    progress = job.run_context.progress
    assert progress is not None
    outcome.cache_generation = job.cache_generation
    result = progress.commit(outcome, directory, record)
    if result != "ok":
        raise ListingLost(result)
