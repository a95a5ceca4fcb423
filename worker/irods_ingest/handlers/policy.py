"""A handler's job-wide answers: operation(), delete_mode(), character_map().

These run handler code, so only where handler code may run: in a worker, or in the CLI of
the user who owns the handler -- never in the operator.
"""

from __future__ import annotations

from irods_ingest.config import JobConfig, delete_mode_compatible
from irods_ingest.errors import HandlerError
from irods_ingest.handlers.handler import Handler


def job_policy(config: JobConfig, handler: Handler) -> JobConfig:
    """``config`` with the handler's job-wide answers applied (operation(), delete_mode()),
    after checking its character_map(). Runs handler code: only where handler code may run
    (a worker, or the CLI of the user who owns the handler). Raises :class:`HandlerError`."""
    charmap = handler.character_map()
    if charmap is not None:
        for key, value in charmap.items():
            if (isinstance(key, str) and len(key) > 1) or (isinstance(value, str) and len(value) > 1):
                raise HandlerError("character_map() must map single characters to single characters")
    meta = {"job_name": config.job_name}
    operation = handler.operation(None, meta, config.operation)
    delete_mode = handler.delete_mode(meta, config.delete_mode)
    if operation is config.operation and delete_mode is config.delete_mode:
        return config
    return config.with_changes(operation=operation, delete_mode=delete_mode)


def checked_job_policy(config: JobConfig, handler: Handler) -> JobConfig:
    """:func:`job_policy`, also refusing an operation the delete mode does not allow (the
    incumbent's matrix), as a worker must before it acts on a handler's answers."""
    effective = job_policy(config, handler)
    if not delete_mode_compatible(effective.operation, effective.delete_mode):
        raise HandlerError(
            f"event handler: operation {effective.operation.value} and delete mode {effective.delete_mode.value} "
            "are incompatible (fix the handler's operation() or delete_mode(), or the job's deleteMode)"
        )
    return effective
