"""The DELETE task: what left the source, deleted from iRODS per its effective delete mode.

The scans plan these tasks (:func:`irods_ingest.execute.scan.enqueue_deletes`); how the
three task shapes work together, and how they count, is :func:`delete_vanished`'s story.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import replace
from typing import Any

from irods_ingest.config import DeleteMode, delete_mode_compatible, normalize_collection
from irods_ingest.errors import HandlerError, IngestError, PermanentError, RetryableError
from irods_ingest.execute.context import FILE_QUEUE, PATH_QUEUE, JobContext, directory_meta, log
from irods_ingest.execute.hooks import with_hooks
from irods_ingest.irods_io.bulk import collection_page, existing_objects
from irods_ingest.irods_io.catalog import Missing
from irods_ingest.queue import TaskOutcome
from irods_ingest.tasks import Task, TaskKind

# Deleting a vanished collection: one task lists a page of it and fans out at most this many
# tasks (object batches of files_per_task, then one per subcollection), plus the next page's;
# a page names at most PURGE_PAGE_OBJECTS objects (unless files_per_task is larger).
PURGE_FANOUT = 20
PURGE_PAGE_OBJECTS = 10_000


def delete_vanished(job: JobContext, task: Task) -> TaskOutcome:
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
        _delete_objects(job, task, outcome)
    elif task.remove:
        for collection in task.collections:
            _remove_emptied(job, task, outcome, collection)
    else:
        for collection in task.collections:
            _delete_collection_page(job, task, outcome, collection)
    return outcome


def _count_gone(job: JobContext, task: Task, outcome: TaskOutcome, counter: str, path: str) -> None:
    """``path`` was already gone: counted only by a redelivered task (see :func:`delete_vanished`)."""
    if task.redelivered:
        outcome.count(counter)
    log.info("delete_already_gone", extra={"job": job.name, "task": task.id, "path": path,
                                           "counted": task.redelivered})


def _below_target(job: JobContext, path: str) -> None:
    target = normalize_collection(job.config.target_collection)
    if not normalize_collection(path).startswith(target.rstrip("/") + "/"):
        raise PermanentError(f"{path} is not below the target collection {target}: never deleted")


def _retried_later(job: JobContext, task: Task, outcome: TaskOutcome, retried: Task, meta: dict[str, Any]) -> bool:
    """Queue ``retried`` (what is left of ``task``) as a delayed retry if attempts remain.
    It is marked redelivered: the failed attempt may have taken effect uncounted."""
    if task.attempt >= job.max_retries(meta):
        return False
    due = time.time() + job.delay(meta, task.attempt + 1)
    outcome.delay.append((due, replace(retried, attempt=task.attempt + 1, redelivered=True)))
    return True


def _collection_failed(job: JobContext, task: Task, outcome: TaskOutcome, collection: str, exc: IngestError) -> None:
    # No file counter covers a collection: count the task as failed, or the run would end
    # "done" with this failure only in the list.
    outcome.count("tasks_failed")
    record = job.failure(collection, f"delete failed: {exc}", task.attempt + 1, task,
                         getattr(exc, "traceback_text", ""))
    record["collection"] = True  # so that a retry deletes a collection, not an object
    outcome.failures.append(record)


# ---------------------------------------------------------------------- data objects
def _delete_objects(job: JobContext, task: Task, outcome: TaskOutcome) -> None:
    retry: list[str] = []
    by_collection: dict[str, list[str]] = {}
    for path in task.paths:
        by_collection.setdefault(posixpath.dirname(path), []).append(path)
    for collection, paths in by_collection.items():
        present: set[str] | None = None
        try:  # one query for the batch: no hooks for an object that is already gone
            present = existing_objects(job.catalog(job.meta(target=collection)), collection,
                                       [posixpath.basename(p) for p in paths])
        except RetryableError:
            retry += paths
            continue
        except PermanentError:
            present = None  # (e.g. a name GenQuery cannot quote): each delete tells
        for path in paths:
            if present is not None and posixpath.basename(path) not in present:
                _count_gone(job, task, outcome, "files_deleted", path)
                continue
            try:
                if _delete_object(job, path, _object_meta(job, task, path)):
                    outcome.count("files_deleted")
            except Missing:
                _count_gone(job, task, outcome, "files_deleted", path)
            except RetryableError:
                retry.append(path)
            except HandlerError as exc:
                outcome.count("files_failed")
                outcome.failures.append(job.failure(path, str(exc), task.attempt + 1, task, exc.traceback_text))
            except IngestError as exc:
                outcome.count("files_failed")
                outcome.failures.append(job.failure(path, f"delete failed: {exc}", task.attempt + 1, task))
    if retry and _retried_later(job, task, outcome, replace(task, paths=tuple(retry)), job.meta(target=retry[0])):
        return  # the retry counts the join down when it is done
    for path in retry:
        outcome.count("files_failed")
        outcome.failures.append(job.failure(path, "delete failed: iRODS unreachable (retries exhausted)",
                                            task.attempt + 1, task))
    outcome.join_done = task.after


def _object_meta(job: JobContext, task: Task, path: str) -> dict[str, Any]:
    """``meta`` values for deleting the object ``path``, as the incumbent sets them: ``path`` is
    the source directory whose scan found it gone (with that directory's ``mtime``/``ctime``),
    or, inside a vanished collection, that collection's logical path (also its
    ``target_collection`` and ``delete_empty_parent_collection``); ``data_objects_to_delete``
    is the task's batch."""
    if task.after:
        collection = posixpath.dirname(path)
        values = directory_meta(None, "delete_data_object", FILE_QUEUE) | {
            "path": collection, "target_collection": collection, "delete_empty_parent_collection": collection}
    else:
        source = job.source_path(task.directory)
        values = directory_meta(source if job.config.s3 is None else None, "delete_data_object", FILE_QUEUE)
        values["path"] = source
    values["data_objects_to_delete"] = list(task.paths)
    return values


def _collection_meta(job: JobContext, collection: str) -> dict[str, Any]:
    """``meta`` for a vanished collection (``path``: its logical path, as the incumbent's)."""
    return job.meta(**directory_meta(None, "delete_collection", PATH_QUEUE), target=collection, path=collection,
                    target_collection=collection, delete_empty_parent_collection=collection, data_objects_to_delete=[])


def _delete_object(job: JobContext, path: str, values: dict[str, Any]) -> bool:
    """Delete one data object per its effective delete mode; False if that is DoNotDelete."""
    meta = job.meta(**values, target=path)
    mode = job.delete_mode(meta)
    if mode is DeleteMode.DO_NOT_DELETE:
        return False
    if not delete_mode_compatible(job.config.operation, mode):
        # e.g. Trash in a RegisterSync job would delete the registered files themselves
        raise PermanentError(
            f"handler delete_mode() {mode.value} is incompatible with operation {job.config.operation.value}: not deleted"
        )
    _below_target(job, path)
    catalog = job.catalog(meta)

    def action() -> None:
        if mode is DeleteMode.UNREGISTER:
            catalog.unregister(path)
        else:
            catalog.unlink(path, force=mode is DeleteMode.NO_TRASH)  # Trash: into the trash

    with_hooks(job, "data_obj_delete", action, catalog, meta)
    return True


# ---------------------------------------------------------------------- vanished collections
def _delete_collection_page(job: JobContext, task: Task, outcome: TaskOutcome, collection: str) -> None:
    """List one page of a vanished collection and fan out its deletion (see :func:`delete_vanished`)."""
    first_page = not task.cursor
    meta = _collection_meta(job, collection)
    try:
        if job.delete_mode(meta) is DeleteMode.DO_NOT_DELETE:
            outcome.join_done = task.after  # nothing deleted here: whoever waits goes on
            return
        _below_target(job, collection)
        catalog = job.catalog(meta)
        per_task = job.config.files_per_task
        page = min(per_task * PURGE_FANOUT, max(per_task, PURGE_PAGE_OBJECTS))
        objects, _, cursor = collection_page(catalog, collection, task.cursor, objects=page, subcollections=0)
        room = PURGE_FANOUT - -(-len(objects) // per_task)
        subcollections: list[str] = []
        if cursor.startswith("c:") and room > 0:  # the objects are listed: go on with subcollections
            _, subcollections, cursor = collection_page(catalog, collection, cursor, objects=1, subcollections=room)
    except RetryableError as exc:
        if not _retried_later(job, task, outcome, task, meta):
            _collection_failed(job, task, outcome, collection, exc)
            outcome.join_done = task.after
        return
    except IngestError as exc:
        _collection_failed(job, task, outcome, collection, exc)
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
        _remove_emptied(job, task, outcome, collection, known_empty=True)


def _remove_emptied(job: JobContext, task: Task, outcome: TaskOutcome, collection: str, *, known_empty: bool = False) -> None:
    """Remove a vanished collection whose contents were handled, if it is empty."""
    meta = _collection_meta(job, collection)
    try:
        mode = job.delete_mode(meta)
        if mode is not DeleteMode.DO_NOT_DELETE:
            _below_target(job, collection)
            catalog = job.catalog(meta)
            if not known_empty:
                objects, subcollections, _ = collection_page(catalog, collection, "", objects=1, subcollections=1)
                known_empty = not objects and not subcollections
            if known_empty:
                with_hooks(
                    job,
                    "coll_delete",
                    lambda: catalog.remove_empty_collection(collection, unregister=mode is DeleteMode.UNREGISTER),
                    catalog,
                    meta,
                )
                outcome.count("collections_deleted")
            else:
                # What is left failed to delete (recorded by its task) or is kept by the handler.
                log.info("collection_kept_not_empty", extra={"job": job.name, "collection": collection})
    except Missing:
        _count_gone(job, task, outcome, "collections_deleted", collection)
    except RetryableError as exc:
        if _retried_later(job, task, outcome, task, meta):
            return
        _collection_failed(job, task, outcome, collection, exc)
    except IngestError as exc:
        _collection_failed(job, task, outcome, collection, exc)
    outcome.join_done = task.after
