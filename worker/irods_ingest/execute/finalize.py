"""The FINALIZE task: queued once nothing of the run is left; runs the handler's post_job and
closes the run (the ack does, seeing ``finalize``)."""

from __future__ import annotations

from irods_ingest.errors import HandlerError
from irods_ingest.execute.context import JobContext, log
from irods_ingest.queue import TaskOutcome
from irods_ingest.tasks import Task


def finalize_run(job: JobContext, task: Task) -> TaskOutcome:
    outcome = TaskOutcome(finalize=True)
    if job.run_context.listing_book is not None:
        # what a failed or cut-short listing left (an S3 prefix's, a paged directory's)
        job.run_context.listing_book.forget_run_seen(task.run)
    try:
        job.handler.job_hook("post_job", log, job.meta())
    except HandlerError as exc:
        outcome.error = str(exc)
        outcome.failures.append(job.failure("", str(exc), 1, task, exc.traceback_text))
    return outcome
