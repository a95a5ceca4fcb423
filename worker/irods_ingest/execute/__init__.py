"""Executing tasks: scan a directory, sync a batch of files, delete, finalize.

``TaskExecutor.run(task) -> TaskOutcome`` never raises for a file's problem: each file's
result is counted and failures are recorded with their reason, so one bad file never
fails its neighbours. A whole-task retryable error (iRODS unreachable) comes back as a
delayed retry of the task; only store errors escape (the worker then leaves the task to
be redelivered).

One module per task kind, around what they share:

- ``executor``: :class:`TaskExecutor`, the dispatcher by task kind;
- ``context``: :class:`RunContext` (what the worker hands over) and ``JobContext`` (the
  job while a task runs: meta, paths, catalogs, failure records, retry decisions);
- ``scan`` / ``scan_s3``: SCAN tasks of a filesystem / an S3 source, and what they plan
  (collections, FILES batches, DELETE tasks);
- ``sync``: FILES tasks, file by file (``file_work`` prepares a file, ``upload`` writes its
  bytes, ``metadata`` adds its AVUs);
- ``delete``: DELETE tasks; ``finalize``: the FINALIZE task;
- ``hooks``: an action inside the handler's ``on_<event>`` wrapper, and ``pre_job``.
"""

from irods_ingest.execute.context import RunContext
from irods_ingest.execute.executor import TaskExecutor

__all__ = ["RunContext", "TaskExecutor"]
