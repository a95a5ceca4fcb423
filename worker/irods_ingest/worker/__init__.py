"""The worker process: claim tasks of one or more jobs, execute, ack atomically.

Each of ``concurrency`` threads has its own worker id (its own processing list and
heartbeat), its own iRODS sessions (reused across tasks) and a compiled-handler cache
shared per process. SIGTERM asks for a warm shutdown: every thread finishes the task in
hand (of a file batch: the file in hand; the rest is requeued) and stops claiming; a
second signal is cold: unfinished tasks are returned to the queue at once (without
counting an attempt) and the process exits.

- ``options``: :class:`WorkerOptions`, :class:`Timing`, :class:`ShutdownState`, the
  worker's redactor;
- ``job``: :class:`WorkerJob`, one job's engine components as a thread reaches them;
- ``thread``: :class:`WorkerThread`, one claim / execute / ack loop;
- ``process``: :func:`run_worker`, the threads, their heartbeats and the signals.
"""

from irods_ingest.worker.job import WorkerJob
from irods_ingest.worker.options import (
    HEARTBEAT_TTL_ENV,
    ShutdownState,
    Timing,
    WorkerOptions,
    worker_redactor,
)
from irods_ingest.worker.process import run_worker
from irods_ingest.worker.thread import WorkerThread

__all__ = [
    "HEARTBEAT_TTL_ENV",
    "ShutdownState",
    "Timing",
    "WorkerJob",
    "WorkerOptions",
    "WorkerThread",
    "run_worker",
    "worker_redactor",
]
