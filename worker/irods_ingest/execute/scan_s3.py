"""The SCAN task of an S3 source: one page of one prefix, and its delete planning.

A page becomes child SCAN tasks (one per common prefix), a continuation SCAN task if it is
truncated, and FILES batches of the objects that changed. A prefix is judged for deletions
only by its last page, against the names every page of it saw (the listing book).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from irods_ingest.config import Operation, S3Source
from irods_ingest.errors import HandlerError, IngestError, StoreUnavailable
from irods_ingest.execute.context import JobContext, directory_meta, log
from irods_ingest.execute.hooks import pre_job
from irods_ingest.execute.plan import Judgement, ensure_collection, plans_deletes
from irods_ingest.execute.scan import scan_page_entries
from irods_ingest.irods_io.bulk import child_names
from irods_ingest.queue import TaskOutcome
from irods_ingest.s3_scan import classify_page, list_prefix
from irods_ingest.tasks import FileEntry, Task, TaskKind


def scan_page(job: JobContext, task: Task, source: S3Source) -> TaskOutcome:
    """List one page of one prefix: child scans per common prefix, a continuation scan
    if the page is truncated, and file batches of the objects that changed."""
    outcome = TaskOutcome()
    outcome.count("tasks_done")
    directory = task.directory
    first_page = not task.token
    where = job.source_path(directory)
    collection = job.logical_collection(directory)
    if not directory and first_page and not pre_job(job, task, outcome):
        return outcome
    try:
        page = job.bucket.list_page(list_prefix(source, directory), task.token)
    except IngestError as exc:
        return job.retry_or_fail(task, outcome, exc, 0)
    if first_page and (job.config.operation is not Operation.NO_OP or job.handler.has("on_coll_create")):
        try:
            ensure_collection(job, collection, job.meta(path=where, target=collection, entry_type="dir", **directory_meta(None)))
        except HandlerError as exc:
            outcome.failures.append(job.failure(where, str(exc), 1, task, exc.traceback_text))
            outcome.count("tasks_failed")
            return outcome
        except IngestError as exc:
            return job.retry_or_fail(task, outcome, exc, 0)
    result = classify_page(page, source, directory, job.filters)
    cached: dict[str, str] = {}
    if not job.config.ignore_cache and result.candidates:
        names = [e.cache_field for e in result.candidates]
        cached = job.run_context.change_cache.values(job.cache_generation, directory, names)
    to_sync = [e for e in result.candidates if cached.get(e.cache_field) != e.cache_value]
    unchanged = len(result.candidates) - len(to_sync)
    for sub in result.subdirectories:
        outcome.enqueue.append(Task(TaskKind.SCAN, task.run, directory=sub))
    if page.next_token:
        outcome.enqueue.append(Task(TaskKind.SCAN, task.run, directory=directory, token=page.next_token))
    size = job.config.files_per_task
    for start in range(0, len(to_sync), size):
        outcome.enqueue.append(Task(TaskKind.FILES, task.run, directory=directory, entries=tuple(to_sync[start : start + size])))
    outcome.count("files_discovered", len(result.candidates))
    outcome.count("bytes_discovered", sum(e.size for e in result.candidates))
    outcome.count("files_unchanged", unchanged)
    outcome.count("files_excluded", result.excluded)
    for skipped in result.skipped:
        outcome.count("files_skipped")
        record = job.failure(posixpath.join(where, skipped.name), skipped.reason, 1, task)
        record["outcome"] = "skipped"
        outcome.failures.append(record)
    if page.next_token:
        _remember_page(job, task, result.names_seen)
    else:
        _finish_prefix(job, task, outcome, result.names_seen, collection)
    return outcome


def _seen_names(job: JobContext, directory: str, names: set[str]) -> set[str]:
    """Names as the change cache and as iRODS call them (they differ under a character_map)."""
    return {FileEntry(n, 0, 0).cache_field for n in names} | {
        posixpath.basename(job.logical_path(directory, n)) for n in names
    }


def _remember_page(job: JobContext, task: Task, names: set[str]) -> None:
    # Before this task's ack enqueues the next page, so the last page finds every earlier
    # page's names (a redelivered page adds the same names again: idempotent).
    if job.run_context.listing_book is not None:
        job.run_context.listing_book.remember_seen(task.run, task.directory, _seen_names(job, task.directory, names))


def _finish_prefix(job: JobContext, task: Task, outcome: TaskOutcome, names: set[str], collection: str) -> None:
    """After a prefix's last page: drop the change cache of objects that left the bucket
    and, with a delete mode, plan DELETE tasks for what iRODS holds of them. A prefix of
    several pages is judged against every page's names (the listing book), never against
    this page alone; if the book is gone (an earlier delivery of this page finished it, or
    it expired) nothing is deleted: a missed deletion is made up by the next run, a wrong
    one could not be undone."""
    book = job.run_context.listing_book
    seen = _seen_names(job, task.directory, names)
    several_pages = bool(task.token)
    if several_pages and (book is None or not book.seen_started(task.run, task.directory)):
        log.warning("s3_prefix_not_judged", extra={"job": job.name, "task": task.id, "dir": task.directory})
        return

    def present(batch: list[str]) -> set[str]:
        here = {n for n in batch if n in seen}
        if several_pages and book is not None:
            here |= book.seen_among(task.run, task.directory, [n for n in batch if n not in here])
        return here

    judgement = Judgement(job, task, outcome, task.directory, scan_page_entries())
    if book is not None:
        judgement.stale_cache(job.run_context.change_cache.field_names(job.cache_generation, task.directory), present)
    if plans_deletes(job, task, outcome, job.source_path(task.directory), collection):
        _plan_deletes(job, task, outcome, collection, present, judgement, nothing_listed=not names and not several_pages)
    judgement.finish()
    if several_pages and book is not None:
        book.forget_seen(task.run, task.directory)


def _plan_deletes(
    job: JobContext,
    task: Task,
    outcome: TaskOutcome,
    collection: str,
    present: Callable[[list[str]], set[str]],
    judgement: Judgement,
    *,
    nothing_listed: bool,
) -> None:
    if nothing_listed and not task.directory:
        # An empty listing of the whole source looks exactly like a mistyped prefix or an
        # emptied bucket: deleting everything synced is refused, loudly.
        try:
            objects, subcollections = next(iter(child_names(job.catalog(job.meta(target=collection)), collection, 1)), ([], []))
        except StoreUnavailable:
            raise
        except IngestError as exc:
            outcome.failures.append(job.failure(collection, f"cannot list for deletion: {exc}", 1, task))
            return
        if objects or subcollections:
            outcome.count("tasks_failed")
            outcome.error = (
                f"the S3 source {job.config.source_root} lists no objects: nothing was deleted from {collection} "
                f"(check s3.bucket and s3.prefix; if the source really is empty, remove the collection by hand)"
            )
            outcome.failures.append(job.failure(job.config.source_root, outcome.error, 1, task))
        return
    judgement.deletes(collection, present)
