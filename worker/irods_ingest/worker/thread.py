"""One claim / execute / ack loop with its own worker id."""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import Callable
from typing import TypeVar

from irods_ingest import metrics
from irods_ingest.config import DeleteMode, JobConfig, S3Source, cache_generation
from irods_ingest.errors import HandlerError, IngestError, PermanentError, StoreUnavailable
from irods_ingest.execute import RunContext, TaskExecutor
from irods_ingest.failures import failure_record
from irods_ingest.handlers import Handler, HandlerCache, checked_job_policy
from irods_ingest.irods_io.catalog import IrodsCatalog
from irods_ingest.irods_io.session import IrodsSettings, open_session
from irods_ingest.queue import TaskOutcome
from irods_ingest.redact import Redactor
from irods_ingest.s3_io import S3Bucket, open_bucket
from irods_ingest.store.connection import connect, resolve_url
from irods_ingest.task_checks import REJECTED_PREFIX, task_problem
from irods_ingest.tasks import MalformedTask, Task, TaskKind
from irods_ingest.worker.job import WorkerJob
from irods_ingest.worker.options import ShutdownState, WorkerOptions, worker_redactor

log = logging.getLogger("irods_ingest.worker")
T = TypeVar("T")

CLAIM_TIMEOUT_SECONDS = 1.0
MAX_STORE_BACKOFF_SECONDS = 5.0


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
        self.jobs = {name: WorkerJob.open(self.client, name, redact) for name in options.jobs}
        self.handlers = handlers
        self.sessions: dict[tuple[str, str] | None, IrodsCatalog] = {}
        self.buckets: dict[S3Source, S3Bucket] = {}
        self._settings = options.irods_settings
        self._last_reap = 0.0
        self.finished = False
        self.current: tuple[WorkerJob, bytes] | None = None
        # job -> ((id of the stored config, handler digest), effective config); the stored
        # config object is reused by StoredJob.run_and_config until its JSON changes
        self._policies: dict[str, tuple[tuple[int, str], JobConfig]] = {}
        self._previous_runs: dict[str, tuple[str, float | None]] = {}  # job -> (run, previous run's start)

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
        for job in self.jobs.values():
            with contextlib.suppress(IngestError):
                job.queue.stop_heartbeat(self.worker_id)
        self.client.close()

    # ---------------------------------------------------------------- loop
    def heartbeat(self) -> None:
        for job in self.jobs.values():
            job.queue.heartbeat(self.worker_id, self.options.timing.heartbeat_ttl)

    def housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_reap >= self.options.timing.reap_interval:
            for job in self.jobs.values():
                config = job.stored.config()
                moved, dead = job.queue.requeue_dead_workers(
                    max_attempts=(config.max_retries if config else 3) + 1,
                    max_failure_records=config.max_failure_records if config else job.max_failure_records,
                )
                if moved or dead:
                    log.warning("requeued_dead_workers_tasks", extra={"job": job.name, "moved": moved, "dead_lettered": dead})
                job.queue.promote_due()
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
            job, raw, task = claimed
            self.current = (job, raw)
            try:
                self.process(job, raw, task)
            finally:
                self.current = None

    def next_task(self) -> tuple[WorkerJob, bytes, Task] | None:
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

    def claim_any(self, *, block: bool) -> tuple[WorkerJob, bytes, Task] | None:
        jobs = list(self.jobs.values())
        for job in jobs:
            claimed = self.claim_from(job, 0)
            if claimed is not None:
                return claimed
        # Nothing ready: retries that have come due go first (one round trip, only when idle).
        if any(job.queue.promote_due() for job in jobs):
            return self.claim_any(block=block)
        if not block:
            return None
        # Still nothing: block briefly on each queue in turn.
        timeout = CLAIM_TIMEOUT_SECONDS / max(1, len(jobs))
        for job in jobs:
            claimed = self.claim_from(job, timeout)
            if claimed is not None:
                return claimed
            if self.shutdown.warm.is_set():
                break
        return None

    def claim_from(self, job: WorkerJob, timeout: float) -> tuple[WorkerJob, bytes, Task] | None:
        """One claim from ``job``'s queue; a payload that is not a task is rejected here (None)."""
        try:
            got = job.queue.claim(self.worker_id, timeout)
        except MalformedTask as exc:
            self.reject_malformed(job, exc)
            return None
        return None if got is None else (job, got[0], got[1])

    def reject_malformed(self, job: WorkerJob, malformed: MalformedTask) -> None:
        """Acknowledge a payload that is not a task as a rejected task of the job's current run
        (anyone with a worker's Redis credential can push one): recorded, never executed."""
        reason = REJECTED_PREFIX + str(malformed)
        log.warning("task_rejected", extra={"job": job.name, "task": malformed.task_id, "reason": reason})
        outcome = _rejected("unknown", malformed.task_id, "", reason, 1, payload=malformed.excerpt)

        def ack() -> str:
            # The ack fences by run only: the payload counts against the run it was queued in.
            stand_in = Task(TaskKind.SCAN, job.runs.current_run_id() or "", id=malformed.task_id)
            return job.queue.ack(self.worker_id, malformed.raw, stand_in, outcome,
                                 max_failure_records=job.max_failure_records)

        if self.with_store_retries(ack) not in (None, "stale", "fenced"):
            metrics.TASKS.labels(job.name, "unknown", "rejected").inc()

    def rejection(self, job: WorkerJob, config: JobConfig, task: Task) -> TaskOutcome | None:
        """The outcome of a task that must not run for its job (see ``task_checks``), else None."""
        delete_mode = self.effective_delete_mode(job, config) if task.kind is TaskKind.DELETE else config.delete_mode
        problem = task_problem(task, config, delete_mode)
        if problem is None:
            return None
        reason = REJECTED_PREFIX + problem
        log.warning("task_rejected", extra={"job": job.name, "task": task.id, "kind": task.kind.value, "reason": reason})
        path = next(iter((*task.paths, *task.collections)), "") if task.kind is TaskKind.DELETE else task.directory
        return _rejected(task.kind.value, task.id, path, reason, task.attempt + 1)

    def effective_delete_mode(self, job: WorkerJob, config: JobConfig) -> DeleteMode:
        """The delete mode ``execute`` applies (the handler's job-wide answer included)."""
        try:
            handler = self.handler_cache(job).get(config.handler_hash)
            return self.effective_config(job.name, config, handler).delete_mode
        except (HandlerError, PermanentError):
            return config.delete_mode  # a handler that cannot load fails the task in execute(), visibly

    def handler_cache(self, job: WorkerJob) -> HandlerCache:
        """The job's compiled handlers (shared by the process's threads)."""
        return self.handlers.setdefault(job.name, HandlerCache(job.handler_sources.load))

    def all_idle(self) -> bool:
        return not any(job.runs.status().active for job in self.jobs.values())

    def process(self, job: WorkerJob, raw: bytes, task: Task) -> None:
        started = time.monotonic()
        run_id, config = job.stored.run_and_config()  # one round trip for both
        if task.run != run_id or config is None:
            job.queue.ack(self.worker_id, raw, task, TaskOutcome())  # fenced: dropped without effect
            return
        rejected = self.rejection(job, config, task)  # before anything is done: the queue is not trusted
        try:
            outcome = rejected if rejected is not None else self.execute(job, config, task, raw)
        except IngestError:
            raise
        except Exception as exc:  # the task boundary: a bug must fail one task, never the worker
            log.exception("task_crashed", extra={"job": job.name, "task": task.id, "kind": task.kind.value})
            outcome = TaskOutcome(finalize=task.kind.value == "finalize", error=f"internal error: {exc!r}")
            outcome.count("tasks_failed")
            outcome.count("files_failed", task.file_count)
            outcome.failures.append(failure_record(task.directory, f"internal error: {exc!r}", attempts=task.attempt + 1,
                                                   task=task.id, kind=task.kind.value, traceback=traceback.format_exc()))
        # The ack is safe to repeat: if an earlier attempt ran but its reply was lost, the
        # repeat finds the task gone from the processing list and changes nothing.
        acked = self.with_store_retries(
            lambda: job.queue.ack(self.worker_id, raw, task, outcome, max_failure_records=config.max_failure_records)
        )
        if acked is None:
            return  # shutting down with Redis away: the task stays claimed and is requeued later
        result = acked
        self.count(job.name, config, task, outcome, result, time.monotonic() - started)
        log.info(
            "task_done",
            extra={
                "job": job.name,
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

    def execute(self, job: WorkerJob, config: JobConfig, task: Task, raw: bytes = b"") -> TaskOutcome:
        try:
            handler = self.handler_cache(job).get(config.handler_hash)
            effective = self.effective_config(job.name, config, handler)
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
            job=job.name,
            config=effective,
            cache_generation=cache_generation(config),  # of the stored config, as the controller computes it
            handler=handler,
            catalog_for=self.catalog_for,
            reset_connections=self.reset_connections,
            change_cache=job.cache,
            bucket_for=self.bucket_for,
            listing_book=job.book,
            stopping=self.shutdown.warm.is_set,
            # a directory listed in pages commits each page while the task stays claimed
            progress=job.queue.claimed(self.worker_id, raw, task, max_failure_records=config.max_failure_records)
            if raw else None,
            redis_url=resolve_url(self.options.redis_url),  # meta["config"]["redis"]: host, port, db only
            previous_run_started=self.previous_run_started(job, task.run) if handler.has_coll_modify_hooks else None,
        )
        return TaskExecutor(ctx).run(task)

    def previous_run_started(self, job: WorkerJob, run: str) -> float | None:
        """When the run before ``run`` started (its history entry), read once per run."""
        cached = self._previous_runs.get(job.name)
        if cached is not None and cached[0] == run:
            return cached[1]
        started: float | None = None
        for entry in job.runs.history(limit=3):
            if entry.get("id") != run and entry.get("started"):
                try:
                    started = float(entry["started"])
                except (TypeError, ValueError):
                    started = None
                break
        self._previous_runs[job.name] = (run, started)
        return started

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
        """Hand this thread's claimed tasks back to the queue (a shutdown: no attempt counted)."""
        for job in self.jobs.values():
            with contextlib.suppress(IngestError):
                job.queue.release_claimed(self.worker_id)


def _rejected(kind: str, task_id: str, path: str, reason: str, attempts: int, payload: str = "") -> TaskOutcome:
    """A rejected task's outcome: one failed task, one record, nothing else (no file counted:
    a forged task's files were never discovered)."""
    outcome = TaskOutcome()
    outcome.count("tasks_failed")
    outcome.failures.append(failure_record(path, reason, attempts=attempts, task=task_id, kind=kind, outcome="rejected",
                                           payload=payload))
    return outcome
