"""The worker process: claim tasks of one or more jobs, execute, ack atomically.

Each of ``concurrency`` threads has its own worker id (its own processing list and
heartbeat), its own iRODS sessions (reused across tasks) and a compiled-handler cache
shared per process. SIGTERM asks for a warm shutdown: every thread finishes the task in
hand (of a file batch: the file in hand; the rest is requeued) and stops claiming; a second signal is cold: unfinished tasks are returned to the
queue at once (without counting an attempt) and the process exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TypeVar

from irods_ingest import metrics
from irods_ingest.config import DeleteMode, JobConfig, S3Source, cache_generation
from irods_ingest.errors import HandlerError, IngestError, PermanentError, StoreUnavailable
from irods_ingest.execute import RunContext, TaskExecutor
from irods_ingest.failures import failure_record
from irods_ingest.handlers import Handler, HandlerCache, checked_job_policy
from irods_ingest.irods_io.catalog import IrodsCatalog
from irods_ingest.irods_io.session import IrodsSettings, open_session
from irods_ingest.redact import Redactor, url_user, worker_secrets
from irods_ingest.s3_io import S3Bucket, open_bucket
from irods_ingest.store.connection import connect, resolve_url
from irods_ingest.store.jobstore import JobStore, TaskOutcome
from irods_ingest.task_checks import REJECTED_PREFIX, task_problem
from irods_ingest.tasks import MalformedTask, Task, TaskKind

log = logging.getLogger("irods_ingest.worker")
T = TypeVar("T")

HEARTBEAT_TTL_SECONDS = 15.0
CLAIM_TIMEOUT_SECONDS = 1.0
MAX_STORE_BACKOFF_SECONDS = 5.0
HEARTBEAT_TTL_ENV = "IRODS_INGEST_HEARTBEAT_TTL"


@dataclass(frozen=True)
class Timing:
    """How fast a dead worker is noticed: its heartbeat expires after ``heartbeat_ttl``."""

    heartbeat_ttl: float = HEARTBEAT_TTL_SECONDS

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_ttl / 5

    @property
    def reap_interval(self) -> float:
        return self.heartbeat_ttl / 3

    @classmethod
    def from_environment(cls) -> Timing:
        value = os.environ.get(HEARTBEAT_TTL_ENV)
        return cls(heartbeat_ttl=float(value)) if value else cls()


@dataclass
class WorkerOptions:
    jobs: Sequence[str]
    redis_url: str | None = None
    concurrency: int = 1
    exit_when_idle: bool = False  # stop once every job's current run has ended
    metrics_port: int | None = None  # serve Prometheus metrics on this port (0 = any free port)
    timing: Timing = field(default_factory=Timing.from_environment)
    irods_settings: IrodsSettings | None = None
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")


class ShutdownState:
    def __init__(self) -> None:
        self.warm = threading.Event()
        self.cold = threading.Event()

    def request(self) -> None:
        if self.warm.is_set():
            self.cold.set()
        self.warm.set()


class WorkerThread:
    """One claim/execute/ack loop with its own worker id."""

    def __init__(
        self, options: WorkerOptions, index: int, shutdown: ShutdownState, handlers: dict[str, HandlerCache],
        redactor: Redactor | None = None,
    ) -> None:
        self.options = options
        self.worker_id = f"{options.name}-{index}"
        self.shutdown = shutdown
        self.client = connect(options.redis_url)
        # Every failure record and run error this thread writes passes the worker's redactor.
        redact = redactor if redactor is not None else worker_redactor(options)
        self.stores = {job: JobStore(self.client, job, redact=redact) for job in options.jobs}
        self.handlers = handlers
        self.sessions: dict[tuple[str, str] | None, IrodsCatalog] = {}
        self.buckets: dict[S3Source, S3Bucket] = {}
        self._settings = options.irods_settings
        self._last_reap = 0.0
        self.finished = False
        self.current: tuple[JobStore, bytes] | None = None
        # job -> ((id of the stored config, handler digest), effective config); the stored
        # config object is reused by JobStore.run_and_config until its JSON changes
        self._policies: dict[str, tuple[tuple[int, str], JobConfig]] = {}

    # ---------------------------------------------------------------- iRODS sessions
    def catalog_for(self, client_user: tuple[str, str] | None) -> IrodsCatalog:
        catalog = self.sessions.get(client_user)
        if catalog is None:
            if self._settings is None:
                self._settings = IrodsSettings.from_environment()
            catalog = IrodsCatalog(open_session(self._settings, client_user=client_user))
            self.sessions[client_user] = catalog
        return catalog

    def bucket_for(self, source: S3Source) -> S3Bucket:
        """This thread's client for an S3 source (credentials from the environment, read once)."""
        bucket = self.buckets.get(source)
        if bucket is None:
            bucket = self.buckets[source] = open_bucket(source)
        return bucket

    def reset_connections(self) -> None:
        """Drop this thread's iRODS sessions (after an interrupted call); new ones open on demand."""
        for catalog in self.sessions.values():
            with contextlib.suppress(Exception):  # a broken connection may fail to close cleanly
                catalog.close()
        self.sessions.clear()

    def close(self) -> None:
        """Leave cleanly: anything still claimed goes back to the queue, and this worker's
        heartbeat and claimer entry are removed (so bookkeeping never accumulates)."""
        self.reset_connections()
        self.requeue_current()
        for store in self.stores.values():
            with contextlib.suppress(IngestError):
                store.unregister_worker(self.worker_id)
        self.client.close()

    # ---------------------------------------------------------------- loop
    def heartbeat(self) -> None:
        for store in self.stores.values():
            store.heartbeat(self.worker_id, self.options.timing.heartbeat_ttl)

    def housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_reap >= self.options.timing.reap_interval:
            for store in self.stores.values():
                config = store.load_config()
                max_attempts = (config.max_retries if config else 3) + 1
                moved, dead = store.requeue(
                    max_attempts=max_attempts, max_failure_records=config.max_failure_records if config else None
                )
                if moved or dead:
                    log.warning("requeued_dead_workers_tasks", extra={"job": store.job, "moved": moved, "dead_lettered": dead})
                store.promote_due()
            self._last_reap = now

    def run(self) -> None:
        self.with_store_retries(lambda: self.heartbeat())
        while not self.shutdown.warm.is_set():
            waited = time.perf_counter()
            claimed = self.with_store_retries(self.next_task)
            if self.finished:
                return
            if claimed is None:
                continue
            metrics.CLAIM_WAIT.observe(time.perf_counter() - waited)
            store, raw, task = claimed
            self.current = (store, raw)
            try:
                self.process(store, raw, task)
            finally:
                self.current = None

    def next_task(self) -> tuple[JobStore, bytes, Task] | None:
        """A claimed task, or None (then ``finished`` tells an exit-when-idle worker to leave)."""
        self.housekeeping()
        claimed = self.claim_any(block=False)
        if claimed is None:
            if self.options.exit_when_idle and self.all_idle():
                self.finished = True
                return None
            claimed = self.claim_any(block=True)
        return claimed

    def with_store_retries(self, step: Callable[[], T]) -> T | None:
        """Run ``step``; while Redis is unreachable, back off (capped) and try again.

        A worker never gives up on Redis by itself: once Redis is back (with AOF, holding
        every acknowledged write) it carries on. Shutdown ends the waiting.
        """
        delay = 0.1
        while True:
            try:
                return step()
            except StoreUnavailable as exc:
                log.warning("redis_unavailable", extra={"worker": self.worker_id, "retry_in": delay, "error": str(exc)})
                if self.shutdown.cold.wait(delay) or (self.shutdown.warm.is_set() and self.current is None):
                    return None
                delay = min(MAX_STORE_BACKOFF_SECONDS, delay * 2)

    def claim_any(self, *, block: bool) -> tuple[JobStore, bytes, Task] | None:
        stores = list(self.stores.values())
        for store in stores:
            claimed = self.claim_from(store, 0)
            if claimed is not None:
                return claimed
        # Nothing ready: retries that have come due go first (one round trip, only when idle).
        if any(store.promote_due() for store in stores):
            return self.claim_any(block=block)
        if not block:
            return None
        # Still nothing: block briefly on each queue in turn.
        timeout = CLAIM_TIMEOUT_SECONDS / max(1, len(stores))
        for store in stores:
            claimed = self.claim_from(store, timeout)
            if claimed is not None:
                return claimed
            if self.shutdown.warm.is_set():
                break
        return None

    def claim_from(self, store: JobStore, timeout: float) -> tuple[JobStore, bytes, Task] | None:
        """One claim from ``store``; a payload that is not a task is rejected here (None)."""
        try:
            got = store.claim(self.worker_id, timeout)
        except MalformedTask as exc:
            self.reject_malformed(store, exc)
            return None
        return None if got is None else (store, got[0], got[1])

    def reject_malformed(self, store: JobStore, malformed: MalformedTask) -> None:
        """Acknowledge a payload that is not a task as a rejected task of the job's current run
        (anyone with a worker's Redis credential can push one): recorded, never executed."""
        reason = REJECTED_PREFIX + str(malformed)
        log.warning("task_rejected", extra={"job": store.job, "task": malformed.task_id, "reason": reason})
        outcome = _rejected("unknown", malformed.task_id, "", reason, 1, payload=malformed.excerpt)

        def ack() -> str:
            # The ack fences by run only: the payload counts against the run it was queued in.
            stand_in = Task(TaskKind.SCAN, store.current_run_id() or "", id=malformed.task_id)
            return store.ack(self.worker_id, malformed.raw, stand_in, outcome)

        if self.with_store_retries(ack) not in (None, "stale", "fenced"):
            metrics.TASKS.labels(store.job, "unknown", "rejected").inc()

    def rejection(self, store: JobStore, config: JobConfig, task: Task) -> TaskOutcome | None:
        """The outcome of a task that must not run for its job (see ``task_checks``), else None."""
        delete_mode = self.effective_delete_mode(store, config) if task.kind is TaskKind.DELETE else config.delete_mode
        problem = task_problem(task, config, delete_mode)
        if problem is None:
            return None
        reason = REJECTED_PREFIX + problem
        log.warning("task_rejected", extra={"job": store.job, "task": task.id, "kind": task.kind.value, "reason": reason})
        path = next(iter((*task.paths, *task.collections)), "") if task.kind is TaskKind.DELETE else task.directory
        return _rejected(task.kind.value, task.id, path, reason, task.attempt + 1)

    def effective_delete_mode(self, store: JobStore, config: JobConfig) -> DeleteMode:
        """The delete mode ``execute`` applies (the handler's job-wide answer included)."""
        try:
            handler = self.handlers.setdefault(store.job, HandlerCache(store.load_handler)).get(config.handler_hash)
            return self.effective_config(store.job, config, handler).delete_mode
        except (HandlerError, PermanentError):
            return config.delete_mode  # a handler that cannot load fails the task in execute(), visibly

    def all_idle(self) -> bool:
        for store in self.stores.values():
            status = store.status()
            if status.active:
                return False
        return True

    def process(self, store: JobStore, raw: bytes, task: Task) -> None:
        started = time.monotonic()
        run_id, config = store.run_and_config()  # one round trip for both
        if task.run != run_id:
            store.ack(self.worker_id, raw, task, TaskOutcome())  # fenced: dropped without effect
            return
        if config is None:
            store.ack(self.worker_id, raw, task, TaskOutcome())
            return
        rejected = self.rejection(store, config, task)  # before anything is done: the queue is not trusted
        try:
            outcome = rejected if rejected is not None else self.execute(store, config, task)
        except IngestError:
            raise
        except Exception as exc:  # the task boundary: a bug must fail one task, never the worker
            log.exception("task_crashed", extra={"job": store.job, "task": task.id, "kind": task.kind.value})
            outcome = TaskOutcome(finalize=task.kind.value == "finalize", error=f"internal error: {exc!r}")
            outcome.count("tasks_failed")
            outcome.count("files_failed", task.file_count)
            outcome.failures.append(failure_record(task.directory, f"internal error: {exc!r}", attempts=task.attempt + 1,
                                                   task=task.id, kind=task.kind.value, traceback=traceback.format_exc()))
        # The ack is safe to repeat: if an earlier attempt ran but its reply was lost, the
        # repeat finds the task gone from the processing list and changes nothing.
        acked = self.with_store_retries(lambda: store.ack(self.worker_id, raw, task, outcome))
        if acked is None:
            return  # shutting down with Redis away: the task stays claimed and is requeued later
        result = acked
        self.count(store.job, config, task, outcome, result, time.monotonic() - started)
        log.info(
            "task_done",
            extra={
                "job": store.job,
                "run": task.run,
                "task": task.id,
                "kind": task.kind.value,
                "dir": task.directory,
                "files": task.file_count,
                "result": result,
                "seconds": round(time.monotonic() - started, 4),
            },
        )

    @staticmethod
    def count(job: str, config: JobConfig, task: Task, outcome: TaskOutcome, result: str, seconds: float) -> None:
        """Metrics for an acknowledged task (a stale or fenced ack changed nothing, so counts nothing)."""
        kind = task.kind.value
        if result in ("stale", "fenced"):
            metrics.TASKS.labels(job, kind, "dropped").inc()
            return
        metrics.record_outcome(job, config.operation.value, outcome.counters)
        if outcome.failures and outcome.failures[0].get("outcome") == "rejected":
            metrics.TASKS.labels(job, kind, "rejected").inc()
            return
        metrics.TASKS.labels(job, kind, "failed" if outcome.counters.get("tasks_failed") else "done").inc()
        if outcome.delay:
            metrics.RETRIES.labels(job, kind).inc(len(outcome.delay))
        metrics.TASK_DURATION.labels(job, kind).observe(seconds)

    def execute(self, store: JobStore, config: JobConfig, task: Task) -> TaskOutcome:
        cache = self.handlers.setdefault(store.job, HandlerCache(store.load_handler))
        try:
            handler = cache.get(config.handler_hash)
            effective = self.effective_config(store.job, config, handler)
        except (HandlerError, PermanentError) as exc:
            # A broken, missing or tampered handler fails this task's files visibly; the
            # worker lives on. (Redis being away is a StoreUnavailable and is retried.)
            outcome = TaskOutcome()
            outcome.count("tasks_failed")
            outcome.count("files_failed", task.file_count)
            outcome.error = str(exc)
            outcome.failures.append(failure_record(task.directory, str(exc), attempts=1, task=task.id, kind=task.kind.value,
                                                   traceback=getattr(exc, "traceback_text", "")))
            outcome.finalize = task.kind.value == "finalize"
            return outcome
        ctx = RunContext(
            job=store.job,
            config=effective,
            cache_generation=cache_generation(config),  # of the stored config, as the controller computes it
            handler=handler,
            catalog_for=self.catalog_for,
            reset_connections=self.reset_connections,
            cached_entries=store.cached_entries,
            cached_values=store.cached_values,
            cached_many=store.cached_entries_of,
            has_cache=store.has_cache,
            bucket_for=self.bucket_for,
            listing_book=store,
            stopping=self.shutdown.warm.is_set,
        )
        return TaskExecutor(ctx).run(task)

    def effective_config(self, job: str, config: JobConfig, handler: Handler) -> JobConfig:
        """The job's config with its handler's job-wide answers (operation(), delete_mode(),
        character_map()) applied and checked: decided here, in the worker, because the
        controller (the operator) never runs handler code. Kept per stored config and handler."""
        key = (id(config), handler.digest)
        cached = self._policies.get(job)
        if cached is not None and cached[0] == key:
            return cached[1]
        effective = checked_job_policy(config, handler)
        self._policies[job] = (key, effective)
        return effective

    def requeue_current(self) -> None:
        for store in self.stores.values():
            with contextlib.suppress(IngestError):
                store.requeue(max_attempts=1_000_000, only_worker=self.worker_id, count_attempt=False)


def _rejected(kind: str, task_id: str, path: str, reason: str, attempts: int, payload: str = "") -> TaskOutcome:
    """A rejected task's outcome: one failed task, one record, nothing else (no file counted:
    a forged task's files were never discovered)."""
    outcome = TaskOutcome()
    outcome.count("tasks_failed")
    outcome.failures.append(failure_record(path, reason, attempts=attempts, task=task_id, kind=kind, outcome="rejected",
                                           payload=payload))
    return outcome


def _heartbeats(threads: list[WorkerThread], shutdown: ShutdownState, timing: Timing) -> None:
    while not shutdown.cold.wait(timing.heartbeat_interval):
        if shutdown.warm.is_set() and all(t.current is None for t in threads):
            return
        for thread in threads:
            try:
                thread.heartbeat()
            except IngestError as exc:  # Redis away: the next beat tries again
                log.warning("heartbeat_failed", extra={"worker": thread.worker_id, "error": str(exc)})


def worker_redactor(options: WorkerOptions) -> Redactor:
    """The secrets this worker knows, to be kept out of what it writes to Redis (names that
    are public anyway -- the iRODS user and zone, the Redis user -- are never masked)."""
    settings = options.irods_settings
    redis_url = resolve_url(options.redis_url)
    public = [os.environ.get("IRODS_USER_NAME", ""), os.environ.get("IRODS_ZONE_NAME", ""), url_user(redis_url)]
    if settings is not None:
        public += [settings.user or "", settings.zone or ""]
    secrets = worker_secrets(os.environ, redis_url=redis_url, irods_password=settings.password if settings else "")
    return Redactor(secrets, public=[name for name in public if name])


def run_worker(options: WorkerOptions, *, install_signals: bool = True) -> int:
    """Run ``options.concurrency`` worker threads until shutdown (or idle, if asked)."""
    shutdown = ShutdownState()
    handlers: dict[str, HandlerCache] = {}
    if options.metrics_port is not None:
        port = metrics.serve(options.metrics_port)
        log.info("metrics_serving", extra={"port": port})
    redactor = worker_redactor(options)  # once per process: the secrets do not change
    threads: list[WorkerThread] = [
        WorkerThread(options, i, shutdown, handlers, redactor) for i in range(options.concurrency)
    ]

    if install_signals:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            shutdown.request()
            log.warning("shutdown_requested", extra={"signal": signum, "cold": shutdown.cold.is_set()})
            if shutdown.cold.is_set():
                for thread in threads:
                    thread.requeue_current()
                os._exit(1)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def wrapper() -> None:
            try:
                target()
            except StoreUnavailable as exc:  # Redis gone past the adapter's retries: stop this thread
                errors.append(exc)
                log.error("worker_thread_stopped", extra={"error": str(exc)})
                shutdown.warm.set()

        return wrapper

    runners = [threading.Thread(target=guarded(t.run), name=t.worker_id, daemon=True) for t in threads]
    for runner in runners:
        runner.start()
    # Heartbeats come from their own thread, so that a long task never looks like a dead worker.
    heartbeat = threading.Thread(target=_heartbeats, args=(threads, shutdown, options.timing), name="heartbeat", daemon=True)
    heartbeat.start()
    try:
        while any(r.is_alive() for r in runners):
            for runner in runners:
                runner.join(timeout=0.5)
    finally:
        # Every runner has ended: stop the heartbeat thread before unregistering, or (when
        # run_worker is called in a long-lived process) it would beat for this worker forever.
        shutdown.cold.set()
        heartbeat.join(timeout=options.timing.heartbeat_interval + 5)
        for thread in threads:
            thread.close()
    return 1 if errors else 0
