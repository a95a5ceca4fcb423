"""The dispatcher: one :class:`TaskExecutor` per claimed task hands it to the part that
executes its kind, and stamps the outcome with the change-cache generation it worked on."""

from __future__ import annotations

from irods_ingest.execute.context import JobContext, RunContext
from irods_ingest.execute.delete import delete_vanished
from irods_ingest.execute.finalize import finalize_run
from irods_ingest.execute.scan import FilesystemScan
from irods_ingest.execute.scan_s3 import scan_page
from irods_ingest.execute.sync import sync_files
from irods_ingest.queue import TaskOutcome
from irods_ingest.tasks import Task, TaskKind


class TaskExecutor:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.job = JobContext(ctx)

    def run(self, task: Task) -> TaskOutcome:
        job = self.job
        if task.kind is TaskKind.SCAN:
            outcome = FilesystemScan(job).run(task) if job.config.s3 is None else scan_page(job, task, job.config.s3)
        elif task.kind is TaskKind.FILES:
            outcome = sync_files(job, task)
        elif task.kind is TaskKind.DELETE:
            outcome = delete_vanished(job, task)
        else:
            outcome = finalize_run(job, task)
        outcome.cache_generation = job.cache_generation
        return outcome
