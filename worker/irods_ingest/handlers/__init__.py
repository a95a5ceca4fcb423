"""The Custom Event Handler Configurator: the incumbent's handler-module API, loaded by content hash.

A handler is Python source defining ``class event_handler(Core)`` exactly as for
``irods_capability_automated_ingest`` (its imports of ``.core`` / ``.utils`` resolve to
:mod:`irods_ingest.handlers.compat`), stored in Redis by content hash (irods_ingest.jobstate)
and compiled once per hash by each worker (:mod:`~irods_ingest.handlers.loader`).
:mod:`~irods_ingest.handlers.handler` gives typed, checked access to its optional parts and
hooks; :mod:`~irods_ingest.handlers.policy` applies its job-wide answers. Failures are never
silent: a syntax error or an exception in a hook becomes a HandlerError carrying the
traceback, which fails that file (or the run, for ``pre_job``) visibly.
"""

from irods_ingest.handlers.compat import (
    COMPAT_PACKAGE,
    CompatDeleteMode,
    CompatOperation,
    Core,
    incumbent_operation,
    install_compat_modules,
    to_delete_mode,
    to_operation,
)
from irods_ingest.handlers.handler import NO_HANDLER, Handler, NoHandler
from irods_ingest.handlers.loader import (
    MAX_HANDLER_SOURCE_BYTES,
    HandlerCache,
    check_handler_syntax,
    compile_handler,
)
from irods_ingest.handlers.policy import checked_job_policy, job_policy

__all__ = [
    "COMPAT_PACKAGE",
    "MAX_HANDLER_SOURCE_BYTES",
    "NO_HANDLER",
    "CompatDeleteMode",
    "CompatOperation",
    "Core",
    "Handler",
    "HandlerCache",
    "NoHandler",
    "check_handler_syntax",
    "checked_job_policy",
    "compile_handler",
    "incumbent_operation",
    "install_compat_modules",
    "job_policy",
    "to_delete_mode",
    "to_operation",
]
