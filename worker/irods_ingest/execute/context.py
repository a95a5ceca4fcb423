"""What every part of executing a task shares.

:class:`RunContext` is what the worker hands over for one task: the job's (effective) config
and handler, and how to reach iRODS, the change cache, S3 and the listing book.
:class:`JobContext` is the job as each part of the executor sees it while that task runs:
``meta()`` for the handler, source and logical paths (with the handler's character map),
iRODS catalogs with the call time limit of the file in hand, failure records, and the
decision to retry or to fail.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import posixpath
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from irods_ingest.charmap import translate_path
from irods_ingest.config import DeleteMode, JobConfig, S3Source, cache_generation
from irods_ingest.confine import real_root
from irods_ingest.errors import HandlerError, IngestError, RetryableError
from irods_ingest.failures import FailureRecord, failure_record
from irods_ingest.handlers import Handler
from irods_ingest.irods_io.catalog import IrodsCatalog
from irods_ingest.queue import TaskOutcome
from irods_ingest.s3_io import S3Bucket, open_bucket
from irods_ingest.s3_scan import ListingBook
from irods_ingest.scan import Filters
from irods_ingest.store.keys import JobKeys
from irods_ingest.tasks import Task, TaskKind

# One logger for every part of the executor: its name is in every log line, and the
# handler's hooks are handed this logger too.
log = logging.getLogger("irods_ingest.execute")

UNICODE_ERROR_PREFIX = "irods_UnicodeEncodeError_"
MAX_BACKOFF_SECONDS = 300.0
# A call still unanswered this long after a file's time limit is abandoned (the limit itself
# fires first and names the timeout); never waited longer than PRC's own default of 120 s.
CALL_TIMEOUT_MARGIN_SECONDS = 1.0
MAX_CALL_SECONDS = 120.0


def _not_stopping() -> bool:
    return False


class ChangeCacheReader(Protocol):
    """What execution reads of a job's change cache (irods_ingest.jobstate.ChangeCache; the
    ACK script writes it): entry name -> "<mtime_ns>:<size>" (or an S3 ETag) per directory."""

    def entries(self, generation: str, directories: list[str]) -> list[dict[str, str]]:
        """Whole caches of several directories, in one round trip."""
        ...

    def entries_within(self, generation: str, directories: list[str], limit: int) -> list[dict[str, str] | None]:
        """Whole caches of several directories in one round trip; None for one larger than
        about ``limit`` entries (bounded memory)."""
        ...

    def values(self, generation: str, directory: str, names: list[str]) -> dict[str, str]:
        """The cached values of just ``names`` (bounded, whatever the directory holds)."""
        ...

    def field_names(self, generation: str, directory: str, batch: int = 1000) -> Iterator[list[str]]:
        """Every cached name of ``directory``, a batch at a time."""
        ...

    def exists(self, generation: str) -> bool:
        """False only when no directory can have a cache in ``generation`` (a first sync)."""
        ...


class ListingProgress(Protocol):
    """What the claimed task may commit before its ack (irods_ingest.queue.ClaimedTask): a
    directory listed in pages commits each page, with the record of the names it accounted
    for, while its task stays claimed (execute.scan_pages)."""

    def commit(self, outcome: TaskOutcome, directory: str, record: str = "") -> str:
        """Apply ``outcome`` (counters, new tasks, failures, ``directory``'s stale cache) now:
        ok | stale (the task was reaped) | fenced (its run is over)."""
        ...

    def pages(self, directory: str, start: int = 0) -> Iterator[str]:
        """The page records committed so far for ``directory`` in this run, after the first ``start``."""
        ...


@dataclass
class RunContext:
    job: str
    config: JobConfig
    handler: Handler
    catalog_for: Callable[[tuple[str, str] | None], IrodsCatalog]
    reset_connections: Callable[[], None]
    change_cache: ChangeCacheReader
    bucket_for: Callable[[S3Source], S3Bucket] = open_bucket  # the worker caches one per thread
    listing_book: ListingBook | None = None  # S3 sources: what earlier pages of a prefix saw (the job state)
    stopping: Callable[[], bool] = _not_stopping  # a warm shutdown was asked for: hand back unstarted files
    # The change-cache generation of the job's STORED config (the controller's view); ``config``
    # above may carry the handler's job-wide answers, which must not start a new generation.
    cache_generation: str | None = None
    # The claimed task's early commits (None: everything goes with the ack, and a directory is
    # listed in one piece whatever its size).
    progress: ListingProgress | None = None
    # The worker's Redis URL: meta["config"]["redis"] names its host, port and database (never
    # its user or password).
    redis_url: str = ""
    # When the job's previous run started (None: there was none): a directory changed since
    # then fires coll_modify (the incumbent: changed since it last synced that directory).
    previous_run_started: float | None = None


# The incumbent's queue names (its defaults): ours has one queue per job, so in ``meta`` they
# only say which kind of task ran the hook (``queue_name``).
FILE_QUEUE, PATH_QUEUE, RESTART_QUEUE = "file", "path", "restart"
# The incumbent's defaults for its S3 options, for a filesystem job (it passed them whatever the source).
S3_DEFAULT_ENDPOINT, S3_DEFAULT_REGION, S3_MULTIPART_CHUNKSIZE_MIB = "s3.amazonaws.com", "us-east-1", 8


def redis_location(url: str) -> dict[str, Any]:
    """``{"host", "port", "db"}`` of a Redis URL, as the incumbent's ``meta["config"]["redis"]``:
    never its user or password."""
    try:
        parts = urlsplit(url)
        db = parts.path.strip("/")
        return {"host": parts.hostname, "port": parts.port or 6379, "db": int(db) if db.isdigit() else 0}
    except ValueError:
        return {"host": None, "port": None, "db": None}


def incumbent_job_meta(config: JobConfig, handler_key: str | None, redis_url: str) -> dict[str, Any]:
    """The job-wide keys of the incumbent's ``meta`` (its ``irods_sync start`` arguments), with
    their types, as ours knows them (docs/migration.md#meta-keys). No secret goes in: not the
    Redis password, not S3 keys (the incumbent put ``s3_access_key``/``s3_secret_key`` in
    ``meta`` for S3 jobs; ours never does)."""
    s3 = config.s3
    log_settings = {"filename": None, "when": None, "interval": None, "level": logging.getLevelName(log.getEffectiveLevel())}
    return {
        "root_target_collection": config.target_collection,
        "src_path": config.source_root,
        "config": {
            "log": log_settings,
            "profile": {"filename": None, "when": None, "interval": None, "level": None},
            "redis": redis_location(redis_url),
        },
        "event_handler": config.handler_hash,
        "event_handler_key": handler_key,
        "exclude_file_name": list(config.exclude_names),
        "exclude_directory_name": list(config.exclude_directories),
        "exclude_file_type": [t.value for t in config.exclude_types],
        "file_queue": FILE_QUEUE,
        "path_queue": PATH_QUEUE,
        "restart_queue": RESTART_QUEUE,
        "files_per_task": config.files_per_task,
        "idle_disconnect_seconds": None,
        "ignore_cache": config.ignore_cache,
        "interval": None,
        "synchronous": False,
        "progress": False,
        "profile": False,
        "s3_endpoint_domain": (s3.endpoint if s3 and s3.endpoint else S3_DEFAULT_ENDPOINT),
        "s3_region_name": (s3.region if s3 and s3.region else S3_DEFAULT_REGION),
        "s3_keypair": None,
        "s3_proxy_url": None,
        "s3_secure_connection": not (s3 and s3.insecure),
        "s3_multipart_chunksize_in_mib": S3_MULTIPART_CHUNKSIZE_MIB,
    }


def directory_meta(path: str | None, task: str = "filesystem_sync_dir", queue: str = PATH_QUEUE) -> dict[str, Any]:
    """The incumbent's keys of a directory's ``meta``: its task and queue, and the directory's
    ``mtime``/``ctime`` (floats; ``None`` when ``path`` is None, as for an S3 prefix, or when it
    cannot be stat'ed)."""
    times: dict[str, Any] = {"mtime": None, "ctime": None}
    if path is not None:
        try:
            st = os.lstat(path)
            times = {"mtime": st.st_mtime, "ctime": st.st_ctime}
        except OSError:
            pass
    return {"task": task, "queue_name": queue, **times}


def directory_changed(config: JobConfig, previous_run_started: float | None, meta: dict[str, Any]) -> bool:
    """Whether a directory changed since it was last synced, as the incumbent judged it before
    firing coll_modify: its ``mtime`` or ``ctime`` (``meta``'s) at or after the last sync --
    here the start of the job's previous run -- or no such sync, or ``ignore_cache``."""
    if config.ignore_cache or previous_run_started is None:
        return True
    mtime, ctime = meta.get("mtime"), meta.get("ctime")
    if mtime is None or ctime is None:
        return True
    return bool(mtime >= previous_run_started or ctime >= previous_run_started)


def backoff(config: JobConfig, attempt: int) -> float:
    return float(min(MAX_BACKOFF_SECONDS, config.retry_backoff_seconds * (2 ** max(0, attempt - 1))))


class JobContext:
    """The job while one task runs (made once per task, shared by every part that runs it)."""

    def __init__(self, run_context: RunContext) -> None:
        self.run_context = run_context
        self.name = run_context.job  # namespace/name, as log lines and metadata templates name it
        self.config = run_context.config
        self.handler = run_context.handler
        self.filters = Filters(run_context.config)
        self._charmap = self.handler.character_map() if self.handler.has("character_map") else None
        self.cache_generation = run_context.cache_generation or cache_generation(run_context.config)
        self._bucket: S3Bucket | None = None
        self._call_seconds: float | None = None  # the iRODS reply timeout for the file in hand

    @property
    def bucket(self) -> S3Bucket:
        assert self.config.s3 is not None
        if self._bucket is None:
            self._bucket = self.run_context.bucket_for(self.config.s3)
        return self._bucket

    @functools.cached_property
    def real_source_root(self) -> str:
        """The source directory as the kernel resolves it: links must resolve below it."""
        return real_root(self.config.source_path)

    # ------------------------------------------------------------------ source paths
    def source_path(self, relative: str) -> str:
        if self.config.s3 is not None:
            return self.config.s3.physical_path(relative)
        return os.path.join(self.config.source_path, relative) if relative else self.config.source_path

    def entry_source(self, directory: str, name: str) -> str:
        if self.config.s3 is not None:
            return self.config.s3.physical_path(posixpath.join(directory, name) if directory else name)
        return os.path.join(self.source_path(directory), name)

    # ------------------------------------------------------------------ logical paths
    def logical_name(self, name: str) -> str:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return UNICODE_ERROR_PREFIX + base64.b64encode(os.fsencode(name)).decode()
        return name

    @property
    def maps_names(self) -> bool:
        """Whether the handler's character_map may make a logical name differ from its source name."""
        return self._charmap is not None

    def logical_collection(self, relative_dir: str) -> str:
        if not relative_dir:
            return self.config.target_collection
        parts = [self.logical_name(p) for p in relative_dir.split("/")]
        return self._mapped(posixpath.join(self.config.target_collection, *parts))

    def logical_path(self, relative_dir: str, name: str) -> str:
        return self._mapped(posixpath.join(self.logical_collection(relative_dir), self.logical_name(name)))

    def _mapped(self, logical: str) -> str:
        if self._charmap is None:
            return logical
        # Only the part below the target collection is mapped (the incumbent also mapped
        # the target's own path, renaming e.g. /zone/home/my-coll).
        root = self.config.target_collection
        below = logical[len(root) :]
        return root + translate_path(below, self._charmap) if below else logical

    # ------------------------------------------------------------------ handler and iRODS
    def meta(self, **values: Any) -> dict[str, Any]:
        """A fresh ``meta`` for the handler: ours keys, the incumbent's job-wide keys, then ``values``."""
        base: dict[str, Any] = incumbent_job_meta(self.config, self._handler_key, self.run_context.redis_url)
        base.update({
            "job_name": self.name,
            "root": self.config.source_root,
            "target_root": self.config.target_collection,
            "initial_ingest": self.config.initial_ingest,
        })
        base.update(values)
        return base

    @functools.cached_property
    def _handler_key(self) -> str | None:
        """Where the handler's source is stored (the incumbent's ``event_handler_key``: its Redis key)."""
        digest = self.config.handler_hash
        if not digest:
            return None
        try:
            return JobKeys(self.name).handler(digest)
        except ValueError:
            return None

    def catalog(self, meta: dict[str, Any]) -> IrodsCatalog:
        catalog = self.run_context.catalog_for(self.handler.as_user(meta))
        # Set on every hand-out: sessions outlive the task, and a file's limit must not leak to others.
        catalog.limit_call_time(self._call_seconds or MAX_CALL_SECONDS)
        return catalog

    def limit_calls_to_file_limit(self, limit: float) -> None:
        """Bound every iRODS call handed out from now on by the time limit of the file in hand."""
        # Deadline interrupts only Python code: a socket blocked on a silent server must time
        # out by itself, just after the limit (else the worker waits for the reply, however late).
        self._call_seconds = min(MAX_CALL_SECONDS, limit + CALL_TIMEOUT_MARGIN_SECONDS) if limit > 0 else MAX_CALL_SECONDS

    def delete_mode(self, meta: dict[str, Any]) -> DeleteMode:
        """The effective delete mode for ``meta``: the handler's delete_mode(), else the job's."""
        return self.handler.delete_mode(meta, self.config.delete_mode)

    def time_limit(self, meta: dict[str, Any]) -> float:
        return float(self.handler.timeout(log, meta, self.config.task_timeout_seconds))

    # ------------------------------------------------------------------ failures and retries
    def failure(self, path: str, reason: str, attempts: int, task: Task, tb: str = "") -> FailureRecord:
        return failure_record(path, reason, attempts=attempts, task=task.id, kind=task.kind.value, traceback=tb)

    def max_retries(self, meta: dict[str, Any]) -> int:
        # Asked only once something already failed: a broken max_retries() must not hide that
        # failure, so the job's setting applies and the handler's error is logged by name.
        try:
            return self.handler.max_retries(log, meta, self.config.max_retries)
        except HandlerError as exc:
            log.warning("handler_policy_failed", extra={"job": self.name, "error": str(exc), "using": self.config.max_retries})
            return self.config.max_retries

    def delay(self, meta: dict[str, Any], retry: int) -> float:
        """Seconds before retry number ``retry``: the handler's delay(), else capped exponential backoff."""
        try:
            return self.handler.delay(log, meta, retry, backoff(self.config, retry))
        except HandlerError as exc:  # as max_retries: the retry still happens, the error is logged
            log.warning("handler_policy_failed", extra={"job": self.name, "error": str(exc), "using": backoff(self.config, retry)})
            return backoff(self.config, retry)

    def retry_or_fail(self, task: Task, outcome: TaskOutcome, error: IngestError, files: int) -> TaskOutcome:
        """The whole task failed with ``error``: a delayed retry of it while a retryable error
        has attempts left, else a failure record of each file (or the directory) it held."""
        max_retries = self.max_retries(self.meta(path=self.source_path(task.directory)))
        if isinstance(error, RetryableError) and task.attempt < max_retries:
            due = time.time() + self.delay(self.meta(path=self.source_path(task.directory)), task.attempt + 1)
            outcome.delay.append((due, task.retried()))
            log.warning("task_retry", extra={"job": self.name, "task": task.id, "attempt": task.attempt + 1, "error": str(error)})
            return outcome
        outcome.count("tasks_failed")
        outcome.count("files_failed", files)
        if task.kind is TaskKind.FILES and task.entries:
            # One record per file, by its path: the failures list names every file the task
            # held, and a retry redoes exactly those (a record of the directory would be
            # retried as if the directory were a file).
            for entry in task.entries:
                path = self.entry_source(task.directory, entry.name)
                outcome.failures.append(self.failure(path, str(error), task.attempt + 1, task))
        else:
            outcome.failures.append(self.failure(self.source_path(task.directory), str(error), task.attempt + 1, task))
        if task.kind is TaskKind.SCAN and not task.directory:
            outcome.error = f"the source root could not be processed: {error}"
        return outcome
