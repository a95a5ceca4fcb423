"""The handler's hooks around what the engine does.

An action (create a collection, upload, delete, ...) runs inside the handler's
``on_<event>`` wrapper, which calls its ``pre_<event>``/``post_<event>`` hooks around it as
the incumbent does. An engine error raised by the action travels through the handler's code
unchanged, so that it is judged as an engine error (retryable or permanent), never blamed on
the handler; anything the handler's own code raises is a :class:`HandlerError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from irods_ingest.errors import HandlerError, IngestError
from irods_ingest.execute.context import JobContext, log
from irods_ingest.irods_io.catalog import IrodsCatalog
from irods_ingest.queue import TaskOutcome
from irods_ingest.tasks import Task


class _EngineFailure(Exception):
    """Wraps an engine error raised inside a user's hook wrapper so it is not blamed on the handler."""

    _from_engine = True

    def __init__(self, error: IngestError) -> None:
        super().__init__(str(error))
        self.error = error


def with_hooks(job: JobContext, event: str, action: Callable[[], None], catalog: IrodsCatalog, meta: dict[str, Any]) -> None:
    """Run ``action`` inside the handler's ``on_<event>`` wrapper (its pre/post hooks)."""

    def body(*_: Any, **__: Any) -> None:
        try:
            action()
        except IngestError as exc:
            raise _EngineFailure(exc) from exc

    try:
        job.handler.around(event, body, log, catalog.session, meta)
    except _EngineFailure as wrapped:
        raise wrapped.error from None


def pre_job(job: JobContext, task: Task, outcome: TaskOutcome) -> bool:
    """Run the handler's pre_job (in the root scan task); False fails the run."""
    try:
        job.handler.job_hook("pre_job", log, job.meta())
    except HandlerError as exc:
        outcome.count("tasks_failed")
        outcome.error = f"pre_job failed: {exc}"
        outcome.failures.append(job.failure(job.config.source_root, outcome.error, 1, task, exc.traceback_text))
        return False
    return True
