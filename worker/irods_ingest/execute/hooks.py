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

from irods_ingest.config import Operation
from irods_ingest.errors import HandlerError, IngestError
from irods_ingest.execute.context import JobContext, log
from irods_ingest.handlers import incumbent_operation
from irods_ingest.irods_io.catalog import IrodsCatalog
from irods_ingest.queue import TaskOutcome
from irods_ingest.tasks import Task


class _EngineFailure(Exception):
    """Wraps an engine error raised inside a user's hook wrapper so it is not blamed on the handler."""

    _from_engine = True

    def __init__(self, error: IngestError) -> None:
        super().__init__(str(error))
        self.error = error


# The incumbent calls the delete hooks with (hdlr_mod, session, meta): no logger.
NO_LOGGER_EVENTS = frozenset({"data_obj_delete", "coll_delete"})


def with_hooks(
    job: JobContext,
    event: str,
    action: Callable[[], None],
    catalog: IrodsCatalog,
    meta: dict[str, Any],
    operation: Operation | None = None,
    options: dict[str, Any] | None = None,
) -> None:
    """Run ``action`` inside the handler's ``on_<event>`` wrapper (its pre/post hooks), which get
    the incumbent's arguments for ``event``: ``(hdlr_mod, logger, session, meta)``;
    ``(hdlr_mod, session, meta)`` for the delete events; and, given ``operation`` (an upload's
    Put, PutSync or PutAppend), ``(hdlr_mod, logger, session, meta, op)`` with ``op`` the
    handler's own ``utils.Operation`` member; ``options`` are the keyword options the incumbent
    passed along (e.g. ``allow_redirect``)."""

    def body(*_: Any, **__: Any) -> None:
        try:
            action()
        except IngestError as exc:
            raise _EngineFailure(exc) from exc

    args: tuple[Any, ...]
    if event in NO_LOGGER_EVENTS:
        args = (catalog.session, meta)
    else:
        args = (log, catalog.session, meta)
        if operation is not None:
            args += (incumbent_operation(operation),)
    try:
        job.handler.around(event, body, *args, **(options or {}))
    except _EngineFailure as wrapped:
        raise wrapped.error from None


def pre_job(job: JobContext, task: Task, outcome: TaskOutcome) -> bool:
    """Run the handler's pre_job (in the root scan task); False fails the run."""
    try:
        # as the incumbent's: the job's source and target collection as path and target
        job.handler.job_hook("pre_job", log, job.meta(path=job.config.source_root, target=job.config.target_collection))
    except HandlerError as exc:
        outcome.count("tasks_failed")
        outcome.error = f"pre_job failed: {exc}"
        outcome.failures.append(job.failure(job.config.source_root, outcome.error, 1, task, exc.traceback_text))
        return False
    return True
