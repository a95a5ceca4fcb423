"""The FINALIZE task: queued once nothing of the run is left; runs the handler's post_job and
closes the run (the ack does, seeing ``finalize``)."""

from __future__ import annotations

from irods_ingest.errors import HandlerError
from irods_ingest.execute.context import PATH_QUEUE, JobContext, directory_meta, log
from irods_ingest.queue import TaskOutcome
from irods_ingest.tasks import Task


def finalize_run(job: JobContext, task: Task) -> TaskOutcome:
    outcome = TaskOutcome(finalize=True)
    if job.run_context.listing_book is not None:
        # what a failed or cut-short listing left (an S3 prefix's, a paged directory's)
        job.run_context.listing_book.forget_run_seen(task.run)
    try:
        # The incumbent's post_job got the meta of whichever task finished last; ours, the job's
        # source and target collection and a task of its own (no batch, no times).
        job.handler.job_hook("post_job", log, job.meta(
            path=job.config.source_root, target=job.config.target_collection, chunk={},
            **directory_meta(None, "post_job", PATH_QUEUE)))
    except HandlerError as exc:
        outcome.error = str(exc)
        outcome.failures.append(job.failure("", str(exc), 1, task, exc.traceback_text))
    return outcome
