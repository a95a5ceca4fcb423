"""A source directory of more entries than one scan page, listed in pages by one SCAN task.

A directory of any size costs one listing of it, with memory for one page. Why every entry
is accounted for exactly once (docs/architecture.md, "Directories of any size"):

1. **One stream.** The task reads the directory through ONE open directory stream
   (:class:`irods_ingest.scan.DirectoryPages`), a page at a time; readdir returns each entry
   that exists throughout the stream exactly once, whatever order the filesystem keeps and
   however the pages fall. (A continuation that re-opened the directory could not resume
   in it: readdir order is not stable across opens, and re-reading the directory per page
   would cost N²/page.) An entry created or removed while the stream is open may or may not
   be returned -- never twice: one that is missed is found by the next run, as any file
   created after a scan; one that vanishes after it was returned is reported by the FILES
   task that finds it gone.
2. **One step per page.** Each page's FILES batches, subdirectory scans, counts and failure
   records are committed together with the record of the names it accounted for (the
   PROGRESS script: ``ii:{J}:seen:{R}:{D}:pages``), while the task stays claimed. A commit
   is refused once the task was handed to another worker or the run is over: a page either
   counts with its record or not at all.
3. **A redelivery resumes by name.** A task that was redelivered (a dead worker, a shutdown)
   or retried lists the directory again from the start and drops, before anything is
   classified or counted, every name the committed records hold (filled into the listing
   book's set, ``ii:{J}:seen:{R}:{D}``). Order does not matter, only names do.
4. **Judged once, at the end.** Stale change-cache entries and what left the directory
   (DELETE tasks) are judged only after the last page, against every name the pages
   recorded (the listing book, as an S3 prefix of several pages), compared a batch at a
   time (``HSCAN`` of the cache, GenQuery pages of the collection): bounded memory. The
   directory's final acknowledgement removes its records.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import replace
from typing import TYPE_CHECKING

from irods_ingest.execute.context import JobContext
from irods_ingest.execute.plan import Judgement, commit_early
from irods_ingest.queue import TaskOutcome
from irods_ingest.tasks import Task, TaskKind, from_wire_name, new_task_id

if TYPE_CHECKING:
    from irods_ingest.scan import CacheLookup, DirectoryPages, DirectoryScan

# A logical (iRODS) name in the listing book, where it differs from the wire name: prefixed
# so that it can never be taken for a source entry's name (no file name holds a NUL).
LOGICAL_MARK = "\x00L:"
_FILL_CHUNK = 10_000


class PagedRecord:
    """The committed page records of one directory in this run, and the book they fill."""

    def __init__(self, job: JobContext, task: Task, directory: str) -> None:
        assert job.run_context.progress is not None and job.run_context.listing_book is not None
        self.job = job
        self.run = task.run
        self.directory = directory
        self._progress = job.run_context.progress
        self._book = job.run_context.listing_book
        self.filled = 0  # pages whose names are in the book
        self._mapped = False  # some logical name differs from its wire name

    def fill(self) -> int:
        """Add the names of the pages not yet in the book; returns the pages committed so far."""
        for record in self._progress.pages(self.directory, self.filled):
            wires: list[str] = json.loads(record)
            for start in range(0, len(wires), _FILL_CHUNK):
                chunk = wires[start : start + _FILL_CHUNK]
                self._book.remember_seen(self.run, self.directory, [*chunk, *self._logical(chunk)])
            self.filled += 1
        return self.filled

    def _logical(self, wires: list[str]) -> list[str]:
        job, extra = self.job, []
        for wire in wires:
            raw = from_wire_name(wire)
            if raw != wire or job.maps_names:
                logical = posixpath.basename(job.logical_path(self.directory, raw))
                if logical != wire:
                    extra.append(LOGICAL_MARK + logical)
        self._mapped = self._mapped or bool(extra)
        return extra

    def seen(self, wires: list[str]) -> set[str]:
        """Which of ``wires`` (entry names as they travel; cache fields) the records hold."""
        return self._book.seen_among(self.run, self.directory, wires)

    def present_objects(self, names: list[str]) -> set[str]:
        """Which iRODS names the records account for (by wire or by logical name)."""
        found = self.seen(names)
        if self._mapped:
            marked = self.seen([LOGICAL_MARK + n for n in names])
            found |= {n for n in names if LOGICAL_MARK + n in marked}
        return found


def resumed_record(job: JobContext, task: Task, directory: str) -> PagedRecord | None:
    """For a redelivered or retried task: the records of an interrupted paged listing of
    ``directory`` in this run, filled into the book (None if there are none)."""
    if job.run_context.progress is None or job.run_context.listing_book is None:
        return None
    record = PagedRecord(job, task, directory)
    return record if record.fill() else None


def account_page(job: JobContext, task: Task, outcome: TaskOutcome, result: DirectoryScan, absolute: str) -> int:
    """The FILES batches, counts and failure records of one classified page (its
    subdirectories are the caller's); returns how many entries it held."""
    directory = task.directory
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
        record = job.failure(posixpath.join(absolute, skipped.name), skipped.reason, 1, task)
        record["outcome"] = "failed" if skipped.failed else "skipped"
        outcome.failures.append(record)
    return found + len(result.subdirectories) + result.excluded + len(result.skipped)


def list_paged(
    job: JobContext,
    task: Task,
    outcome: TaskOutcome,
    pages: DirectoryPages,
    first: DirectoryScan,
    lookup: CacheLookup,
    record: PagedRecord | None,
    *,
    deletes: bool,
    group: int,
    chunk: int,
) -> int:
    """List the rest of a directory whose first page did not end it (see the module's
    description), then judge it. Returns the entries listed."""
    directory = task.directory
    absolute = job.source_path(directory)
    resumed = record is not None
    record = record or PagedRecord(job, task, directory)
    page, entries = first, 0
    while True:
        page_outcome = TaskOutcome()
        entries += account_page(job, task, page_outcome, page, absolute)
        subdirectories = page.subdirectories
        for start in range(0, len(subdirectories), group):
            together = subdirectories[start : start + group]
            page_outcome.enqueue.append(Task(TaskKind.SCAN, task.run, directory=together[0], more_directories=tuple(together[1:])))
            page_outcome.count("tasks_enqueued", len(together) - 1)  # one per directory, however grouped
        commit_early(job, page_outcome, directory, page.record())
        if page.done:
            break
        if job.run_context.stopping():
            # Warm shutdown: the rest of the directory goes back to the queue, to be resumed
            # by name; this delivery's scan of it counts neither done nor enqueued.
            outcome.enqueue.append(replace(task, more_directories=(), redelivered=True, id=new_task_id()))
            outcome.count("tasks_enqueued", -1)
            outcome.count("tasks_done", -1)
            return entries
        try:
            page = pages.next(lookup, record.seen if resumed else None)
        except OSError as exc:  # the directory broke off mid-listing: nothing is judged on a part of it
            outcome.count("tasks_failed")
            outcome.failures.append(job.failure(absolute, f"listing broke off: {exc.strerror or exc}", task.attempt + 1, task))
            outcome.seen_done.append(directory)
            return entries
    _judge(job, task, outcome, record, pages.use_cache, deletes, chunk)
    outcome.seen_done.append(directory)
    return entries


def _judge(job: JobContext, task: Task, outcome: TaskOutcome, record: PagedRecord, cache: bool, deletes: bool, chunk: int) -> None:
    if not cache and not deletes:
        return
    record.fill()
    directory = task.directory
    judgement = Judgement(job, task, outcome, directory, chunk)
    if cache:
        fields = job.run_context.change_cache.field_names(job.cache_generation, directory)
        judgement.stale_cache(fields, record.seen)
    if deletes:
        judgement.deletes(job.logical_collection(directory), record.present_objects)
    judgement.finish()
