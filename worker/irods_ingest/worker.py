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
from irods_ingest.config import JobConfig, S3Source
from irods_ingest.errors import HandlerError, IngestError, PermanentError, StoreUnavailable
from irods_ingest.execute import RunContext, TaskExecutor
from irods_ingest.handlers import HandlerCache
from irods_ingest.irods_io.catalog import IrodsCatalog
from irods_ingest.irods_io.session import IrodsSettings, open_session
from irods_ingest.s3_io import S3Bucket, open_bucket
from irods_ingest.store.connection import connect
from irods_ingest.store.jobstore import JobStore, TaskOutcome
from irods_ingest.tasks import Task

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

    def __init__(self, options: WorkerOptions, index: int, shutdown: ShutdownState, handlers: dict[str, HandlerCache]) -> None:
        self.options = options
        self.worker_id = f"{options.name}-{index}"
        self.shutdown = shutdown
        self.client = connect(options.redis_url)
        self.stores = {job: JobStore(self.client, job) for job in options.jobs}
        self.handlers = handlers
        self.sessions: dict[tuple[str, str] | None, IrodsCatalog] = {}
        self.buckets: dict[S3Source, S3Bucket] = {}
        self._settings = options.irods_settings
        self._last_reap = 0.0
        self.finished = False
        self.current: tuple[JobStore, bytes] | None = None

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
                moved, dead = store.requeue(max_attempts=max_attempts)
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
            got = store.claim(self.worker_id, 0)
            if got is not None:
                return store, got[0], got[1]
        # Nothing ready: retries that have come due go first (one round trip, only when idle).
        if any(store.promote_due() for store in stores):
            return self.claim_any(block=block)
        if not block:
            return None
        # Still nothing: block briefly on each queue in turn.
        timeout = CLAIM_TIMEOUT_SECONDS / max(1, len(stores))
        for store in stores:
            got = store.claim(self.worker_id, timeout)
            if got is not None:
                return store, got[0], got[1]
            if self.shutdown.warm.is_set():
                break
        return None

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
        try:
            outcome = self.execute(store, config, task)
        except IngestError:
            raise
        except Exception as exc:  # the task boundary: a bug must fail one task, never the worker
            log.exception("task_crashed", extra={"job": store.job, "task": task.id, "kind": task.kind.value})
            outcome = TaskOutcome(finalize=task.kind.value == "finalize", error=f"internal error: {exc!r}")
            outcome.count("tasks_failed")
            outcome.count("files_failed", task.file_count)
            outcome.failures.append(
                {"path": task.directory, "reason": f"internal error: {exc!r}", "attempts": task.attempt + 1,
                 "time": time.time(), "task": task.id, "kind": task.kind.value, "traceback": traceback.format_exc()[-4000:]}
            )
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
        metrics.TASKS.labels(job, kind, "failed" if outcome.counters.get("tasks_failed") else "done").inc()
        if outcome.delay:
            metrics.RETRIES.labels(job, kind).inc(len(outcome.delay))
        metrics.TASK_DURATION.labels(job, kind).observe(seconds)

    def execute(self, store: JobStore, config: JobConfig, task: Task) -> TaskOutcome:
        cache = self.handlers.setdefault(store.job, HandlerCache(store.load_handler))
        try:
            handler = cache.get(config.handler_hash)
        except (HandlerError, PermanentError) as exc:
            # A broken, missing or tampered handler fails this task's files visibly; the
            # worker lives on. (Redis being away is a StoreUnavailable and is retried.)
            outcome = TaskOutcome()
            outcome.count("tasks_failed")
            outcome.count("files_failed", task.file_count)
            outcome.error = str(exc)
            outcome.failures.append(
                {"path": task.directory, "reason": str(exc), "attempts": 1, "time": time.time(), "task": task.id,
                 "kind": task.kind.value, "traceback": getattr(exc, "traceback_text", "")[-4000:]}
            )
            outcome.finalize = task.kind.value == "finalize"
            return outcome
        ctx = RunContext(
            job=store.job,
            config=config,
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

    def requeue_current(self) -> None:
        for store in self.stores.values():
            with contextlib.suppress(IngestError):
                store.requeue(max_attempts=1_000_000, only_worker=self.worker_id, count_attempt=False)


def _heartbeats(threads: list[WorkerThread], shutdown: ShutdownState, timing: Timing) -> None:
    while not shutdown.cold.wait(timing.heartbeat_interval):
        if shutdown.warm.is_set() and all(t.current is None for t in threads):
            return
        for thread in threads:
            try:
                thread.heartbeat()
            except IngestError as exc:  # Redis away: the next beat tries again
                log.warning("heartbeat_failed", extra={"worker": thread.worker_id, "error": str(exc)})


def run_worker(options: WorkerOptions, *, install_signals: bool = True) -> int:
    """Run ``options.concurrency`` worker threads until shutdown (or idle, if asked)."""
    shutdown = ShutdownState()
    handlers: dict[str, HandlerCache] = {}
    if options.metrics_port is not None:
        port = metrics.serve(options.metrics_port)
        log.info("metrics_serving", extra={"port": port})
    threads: list[WorkerThread] = [WorkerThread(options, i, shutdown, handlers) for i in range(options.concurrency)]

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
