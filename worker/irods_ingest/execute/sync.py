"""The FILES task: sync a batch of files of one directory, each on its own.

The task asks iRODS about its own names once (one bounded query, never a listing of the
whole collection: :mod:`irods_ingest.irods_io.lookup`); then each file, within its time limit, is
prepared (:mod:`irods_ingest.execute.file_work`) and judged against what iRODS holds:
created (uploaded or registered), brought up to date, or left alone. A file's failure is
its own: retryable ones go back as one delayed task of just those files, permanent ones
are recorded with their reason. A warm shutdown hands the files not yet started back.
"""

from __future__ import annotations

import posixpath
import time
from typing import Any

from irods_ingest.config import Operation
from irods_ingest.deadline import Deadline, FileTimeout
from irods_ingest.errors import HandlerError, IngestError, PermanentError, RetryableError
from irods_ingest.execute import upload
from irods_ingest.execute.context import JobContext
from irods_ingest.execute.file_work import FileWork, chunk_meta, prepare
from irods_ingest.execute.hooks import with_hooks
from irods_ingest.execute.metadata import annotate
from irods_ingest.irods_io.catalog import AlreadyExists, CollectionListing, ObjectInfo, Replica
from irods_ingest.irods_io.lookup import children_named
from irods_ingest.queue import TaskOutcome
from irods_ingest.tasks import FileEntry, Task, TaskKind


def _options(**more: Any) -> dict[str, Any]:
    """The keyword options the incumbent passes a data-object hook of a sync (not of NoOp):
    ``allow_redirect=False``, and ``regRepl=""`` when registering a replica. A fresh dict each
    call: a hook may change what it is given."""
    return {"allow_redirect": False, **more}


def sync_files(job: JobContext, task: Task) -> TaskOutcome:
    outcome = TaskOutcome()
    outcome.count("tasks_done")
    collection = job.logical_collection(task.directory)
    listing: CollectionListing | None = None
    if not job.config.initial_ingest and job.config.operation is not Operation.NO_OP:
        # Only this batch's names: bounded whatever the collection holds (irods_io.lookup).
        names = [posixpath.basename(job.logical_path(task.directory, e.name)) for e in task.entries]
        try:
            listing = children_named(job.catalog(job.meta(target=collection)), collection, names)
        except IngestError as exc:
            outcome.counters.pop("tasks_done")
            return job.retry_or_fail(task, outcome, exc, len(task.entries))
    retry_entries: list[FileEntry] = []
    cache: dict[str, str] = {}
    chunk = chunk_meta(job, task.directory, task.entries)  # the incumbent's meta["chunk"]: this batch
    for index, entry in enumerate(task.entries):
        if index and job.run_context.stopping():
            # Warm shutdown mid-batch: the files done so far are acknowledged with this task,
            # the rest go back to the queue as a new task (no attempt counted), so a large
            # batch never outlasts the pod's grace period.
            outcome.enqueue.append(Task(TaskKind.FILES, task.run, directory=task.directory,
                                        entries=task.entries[index:], attempt=task.attempt))
            break
        path = job.entry_source(task.directory, entry.name)
        meta = job.meta(path=path)
        try:
            limit = job.time_limit(meta)
        except HandlerError as exc:  # decided before the file is touched: it fails by name
            outcome.count("files_failed")
            outcome.failures.append(job.failure(path, str(exc), task.attempt + 1, task, exc.traceback_text))
            continue
        job.limit_calls_to_file_limit(limit)
        listed_by_name = not entry.stated
        try:
            with Deadline(limit):
                synced, entry = sync_one(job, task.directory, entry, listing, task.run, chunk)
        except FileTimeout:
            # The interrupted call may have left an iRODS connection mid-message.
            job.run_context.reset_connections()
            outcome.count("files_failed")
            outcome.failures.append(job.failure(path, f"timed out after {limit:g} s", task.attempt + 1, task))
            continue
        except RetryableError as exc:
            if task.attempt < job.max_retries(meta):
                retry_entries.append(entry)
            else:
                outcome.count("files_failed")
                outcome.failures.append(job.failure(path, str(exc), task.attempt + 1, task))
            continue
        except HandlerError as exc:
            # As in the incumbent, a handler that declares max_retries has its failing hooks
            # retried (its example handlers rely on that); otherwise the file fails now.
            if exc.from_hook and job.handler.has("max_retries") and task.attempt < job.max_retries(meta):
                retry_entries.append(entry)
                continue
            outcome.count("files_failed")
            outcome.failures.append(job.failure(path, str(exc), task.attempt + 1, task, exc.traceback_text))
            continue
        except IngestError as exc:
            outcome.count("files_failed")
            outcome.failures.append(job.failure(path, str(exc), task.attempt + 1, task))
            continue
        _count_file(outcome, entry, synced=synced, listed_by_name=listed_by_name)
        cache[entry.cache_field] = entry.cache_value
    if cache:
        outcome.cache_set[task.directory] = cache
    if retry_entries:
        due = time.time() + job.delay(job.meta(path=job.source_path(task.directory)), task.attempt + 1)
        outcome.delay.append((due, task.retried(entries=tuple(retry_entries))))
    return outcome


def _count_file(outcome: TaskOutcome, entry: FileEntry, *, synced: bool, listed_by_name: bool) -> None:
    if synced:
        outcome.count("files_synced")
        outcome.count("bytes_synced", entry.size)
    else:
        outcome.count("files_unchanged")
    if listed_by_name:  # the scan did not stat it: its bytes are known from now on
        outcome.count("bytes_discovered", entry.size)


def sync_one(
    job: JobContext, directory: str, entry: FileEntry, listing: CollectionListing | None, run: str = "",
    chunk: dict[str, Any] | None = None,
) -> tuple[bool, FileEntry]:
    """Sync one file: (whether iRODS changed, the file as synced)."""
    work = prepare(job, directory, entry, chunk)
    work.meta["run"] = run
    return _sync(job, work, listing), work.entry


# ---------------------------------------------------------------------- what one file needs
def _sync(job: JobContext, work: FileWork, listing: CollectionListing | None) -> bool:
    existing: ObjectInfo | None = None
    if listing is not None:
        if work.name in listing.subcollections:
            raise PermanentError(f"cannot sync file {work.source} onto collection {work.target}")
        existing = listing.objects.get(work.name)
    if work.operation is Operation.NO_OP:
        with_hooks(job, "data_obj_create" if existing is None else "data_obj_modify", lambda: None, work.catalog, work.meta)
        return True
    if existing is None:
        try:
            _create(job, work)
        except AlreadyExists:
            # Created meanwhile (a racing worker, or this task's earlier delivery): judge
            # it as an existing object instead of failing.
            existing = work.catalog.object_info(work.target)
            if existing is None:
                raise
        else:
            return True
    if work.operation is Operation.REGISTER_AS_REPLICA_SYNC:
        return _sync_replica(job, work, existing)
    if work.operation is Operation.REGISTER_SYNC:
        return _sync_registered(job, work, existing)
    return _sync_upload(job, work, existing)


def _create(job: JobContext, work: FileWork) -> None:
    catalog, entry = work.catalog, work.entry
    if work.operation.uploads:
        def action() -> None:
            upload.upload(job, work, overwrite=False)
    else:
        # Registering an S3 object writes no bytes: there is nothing of ours to verify,
        # and asking iRODS to checksum it would read the whole object through the resource.
        def action() -> None:
            catalog.register(
                work.physical, work.target, resource=work.resource, size=entry.size, mtime=work.mtime,
                checksum=job.config.verify_checksum and not work.key,
            )
    # As the incumbent: an upload's hooks also get the Operation (its upload_file's argument).
    with_hooks(job, "data_obj_create", action, catalog, work.meta,
               work.operation if work.operation.uploads else None, _options())
    annotate(job, catalog, work.target, work.meta, work.source)


def _update_metadata(job: JobContext, work: FileWork, replica: Replica, replica_number: int | None) -> bool:
    if replica.size == work.entry.size and replica.modify_time == work.mtime:
        return False
    with_hooks(
        job,
        "data_obj_modify",
        lambda: work.catalog.update_replica_metadata(work.target, replica_number, size=work.entry.size, mtime=work.mtime),
        work.catalog,
        work.meta,
        options=_options(),
    )
    return True


def _sync_replica(job: JobContext, work: FileWork, existing: ObjectInfo) -> bool:
    if not work.resource:
        raise PermanentError("RegisterAsReplicaSync needs a resource (set resource or a handler's to_resource)")
    under = existing.replicas_under(work.resource)
    if not under:
        def action() -> None:
            work.catalog.register(
                work.physical, work.target, resource=work.resource, size=work.entry.size, mtime=work.mtime, as_replica=True
            )
        with_hooks(job, "data_obj_create", action, work.catalog, work.meta, options=_options(regRepl=""))
        return True
    matching = [r for r in under if r.path == work.physical]
    if not matching:
        raise PermanentError(f"{work.target} has a replica under {work.resource} but at another path than {work.physical}")
    return _update_metadata(job, work, matching[0], matching[0].number)


def _sync_registered(job: JobContext, work: FileWork, existing: ObjectInfo) -> bool:
    candidates = existing.replicas_under(work.resource) if work.resource else existing.replicas
    matching = [r for r in candidates if r.path == work.physical]
    if not matching:
        raise PermanentError(
            f"{work.target} exists in iRODS but was not registered from {work.physical} (wrong resource or path)"
        )
    return _update_metadata(job, work, matching[0], matching[0].number if work.resource else None)


def _sync_upload(job: JobContext, work: FileWork, existing: ObjectInfo) -> bool:
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
        with_hooks(job, "data_obj_modify", lambda: upload.append(job, work, offset), work.catalog, work.meta,
                   work.operation, _options())
        return True
    # PutSync, or PutAppend onto an object larger than the source (rewritten whole).
    with_hooks(job, "data_obj_modify", lambda: upload.upload(job, work, overwrite=True), work.catalog, work.meta,
               work.operation, _options())
    return True
