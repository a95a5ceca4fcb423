"""One job's reliable task queue: claim, ack with the outcome, retries, heartbeats, requeue.

A worker claims with ``BLMOVE`` from the job's queue into its own processing list and
acknowledges with the ACK script, which removes the task from that list and applies its
whole outcome in the same step (counters, new and delayed tasks, failure records, change
cache, joins). Workers heartbeat into a key with a TTL; any live worker returns the tasks
of a worker whose heartbeat expired to the queue (REQUEUE), and dead-letters a task whose
workers died too often. Retries wait in the delayed set until they are due (PROMOTE_DUE).
Key names: :mod:`irods_ingest.store.keys`; scripts: :mod:`irods_ingest.queue.lua`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from irods_ingest.config import DEFAULT_MAX_FAILURE_RECORDS
from irods_ingest.jobstate.failure_log import Redact, fit_error, fit_record
from irods_ingest.queue import lua
from irods_ingest.queue.outcome import TaskOutcome
from irods_ingest.store.connection import RedisClient, reply_text, translated_errors
from irods_ingest.store.keys import SEEN_TTL_SECONDS, JobKeys
from irods_ingest.tasks import Task, TaskKind

# A shutdown hands its tasks back without counting an attempt: none is ever dead-lettered.
_NEVER = 1_000_000


class TaskQueue:
    """One job's task queue, as a worker uses it.

    ``redact`` takes a worker's secrets out of every failure record and run error before
    they reach Redis (``irods_ingest.redact``); None where nothing user-written is acked.
    """

    def __init__(self, client: RedisClient, job: str, *, redact: Redact | None = None) -> None:
        self.client = client
        self.job = job
        self.keys = JobKeys(job)
        self._redact = redact
        self._promote = client.register_script(lua.PROMOTE_DUE)
        self._ack = client.register_script(lua.ACK)
        self._progress = client.register_script(lua.PROGRESS)
        self._requeue = client.register_script(lua.REQUEUE)

    # ----------------------------------------------------------------- liveness
    def heartbeat(self, worker_id: str, ttl: float) -> None:
        """Announce ``worker_id`` (before it claims) and renew its liveness for ``ttl`` seconds."""
        with translated_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.set(self.keys.heartbeat(worker_id), "1", px=int(ttl * 1000))
            pipe.sadd(self.keys.claimers, worker_id)
            pipe.execute()

    def stop_heartbeat(self, worker_id: str) -> None:
        """The worker is leaving (after :meth:`release_claimed`): it stops looking alive now."""
        with translated_errors():
            self.client.delete(self.keys.heartbeat(worker_id))

    # ----------------------------------------------------------------- claim and ack
    def claim(self, worker_id: str, timeout: float) -> tuple[bytes, Task] | None:
        """Move the oldest ready task into this worker's processing list (blocking up to
        ``timeout``): its payload as claimed, and the task it holds (a payload that holds
        none raises :class:`irods_ingest.tasks.MalformedTask`, carrying the payload)."""
        with translated_errors():
            if timeout > 0:
                # redis-py types the timeout as int; Redis itself accepts fractional seconds.
                raw = self.client.blmove(self.keys.queue, self.keys.processing(worker_id), timeout, "RIGHT", "LEFT")  # type: ignore[arg-type]
            else:
                raw = self.client.lmove(self.keys.queue, self.keys.processing(worker_id), "RIGHT", "LEFT")
        if raw is None:
            return None
        raw_bytes = raw if isinstance(raw, bytes) else raw.encode()
        return raw_bytes, Task.decode(raw_bytes)

    def ack(
        self,
        worker_id: str,
        raw: bytes,
        task: Task,
        outcome: TaskOutcome,
        *,
        max_failure_records: int = DEFAULT_MAX_FAILURE_RECORDS,
    ) -> str:
        """Remove ``raw`` from the processing list and apply ``outcome`` atomically, keeping
        at most ``max_failure_records`` (the job's setting) failure records for the run.

        Returns ok | finishing (the run just completed) | done/failed (FINALIZE closed the
        run) | stale (the reaper had requeued it) | fenced (its run is over).
        """
        directories = sorted(set(outcome.cache_set) | set(outcome.cache_delete))
        if directories and not outcome.cache_generation:
            raise ValueError("a TaskOutcome with cache updates must name its cache generation")
        cache_keys = [self.keys.cache(outcome.cache_generation, d) for d in directories]
        cache_ops: list[list[Any]] = []
        for index, directory in enumerate(directories):
            for name, value in outcome.cache_set.get(directory, {}).items():
                cache_ops.append([index + 1, name, value])
            for name in outcome.cache_delete.get(directory, []):
                cache_ops.append([index + 1, name, False])
        enqueue, enqueue_first = _split(outcome)
        seen_keys: list[str] = []
        if outcome.seen_done:
            seen_keys = [self.keys.seen_index(task.run)]
            for directory in outcome.seen_done:
                seen_keys += [self.keys.seen(task.run, directory), self.keys.seen_pages(task.run, directory)]
        payload = {
            "counters": outcome.counters or {"tasks_done": 0},
            "delay": [[due, t.encode()] for due, t in outcome.delay],
            "failures": [json.dumps(fit_record(f, self._redact), ensure_ascii=True) for f in outcome.failures],
            "max_failures": max_failure_records,
            "cache": cache_ops,
            "finalize": outcome.finalize,
            "error": fit_error(outcome.error, self._redact),
            "join_open": [[c, n, t.encode()] for c, n, t in outcome.join_open],
            "join_add": [[c, n] for c, n in outcome.join_add.items() if n],
            "join_done": outcome.join_done,
        }
        if seen_keys:
            payload["seen_drop"] = 9 + len(cache_keys) + 1
        with translated_errors():
            result = self._ack(
                keys=[
                    self.keys.run,
                    self.keys.queue,
                    self.keys.delayed,
                    self.keys.processing(worker_id),
                    self.keys.failures,
                    self.keys.claimers,
                    self.keys.history,
                    self.keys.cache_marker(outcome.cache_generation or "-"),
                    self.keys.joins,
                    *cache_keys,
                    *seen_keys,
                ],
                args=[
                    raw,
                    task.run,
                    json.dumps(payload, ensure_ascii=True),
                    self.keys.processing_prefix,
                    _finalize_raw(task.run),
                    f"{time.time():.3f}",
                    len(enqueue),
                    len(enqueue_first),
                    *enqueue,
                    *enqueue_first,
                ],
            )
        return reply_text(result)

    # ----------------------------------------------------------------- a directory listed in pages
    def progress(
        self,
        worker_id: str,
        raw: bytes,
        task: Task,
        outcome: TaskOutcome,
        *,
        directory: str,
        record: str = "",
        max_failure_records: int = DEFAULT_MAX_FAILURE_RECORDS,
    ) -> str:
        """Apply part of a task's outcome while ``raw`` stays claimed (lua.PROGRESS): counters,
        new tasks, failure records and stale cache entries of ``directory``, with ``record``
        (the names a listing page accounted for, a JSON array; "" for none) appended to the
        directory's pages. Returns ok | stale | fenced."""
        stale = outcome.cache_delete.get(directory, [])
        if outcome.delay or outcome.cache_set or set(outcome.cache_delete) - {directory} or outcome.join_open \
                or outcome.join_add or outcome.join_done or outcome.seen_done or outcome.finalize or outcome.error:
            raise ValueError("progress commits counters, new tasks, failure records and one directory's stale cache only")
        if stale and not outcome.cache_generation:
            raise ValueError("a TaskOutcome with cache updates must name its cache generation")
        enqueue, enqueue_first = _split(outcome)
        payload = {
            "counters": outcome.counters or {"tasks_done": 0},
            "failures": [json.dumps(fit_record(f, self._redact), ensure_ascii=True) for f in outcome.failures],
            "max_failures": max_failure_records,
            "cache_delete": stale,
        }
        with translated_errors():
            result = self._progress(
                keys=[self.keys.run, self.keys.queue, self.keys.processing(worker_id), self.keys.failures,
                      self.keys.seen_pages(task.run, directory), self.keys.seen_index(task.run),
                      self.keys.cache(outcome.cache_generation or "-", directory)],
                args=[raw, task.run, json.dumps(payload, ensure_ascii=True), record, SEEN_TTL_SECONDS,
                      len(enqueue), len(enqueue_first), *enqueue, *enqueue_first],
            )
        return reply_text(result)

    def claimed(self, worker_id: str, raw: bytes, task: Task, *, max_failure_records: int) -> ClaimedTask:
        """The task ``raw`` as claimed by ``worker_id``: what its execution may commit early."""
        return ClaimedTask(self, worker_id, raw, task, max_failure_records)

    def listed_pages(self, run_id: str, directory: str, start: int = 0) -> Iterator[str]:
        """The page records committed so far for ``directory`` in run ``run_id`` after the first
        ``start``, one at a time (each at most a page of names: bounded memory)."""
        key = self.keys.seen_pages(run_id, directory)
        with translated_errors():
            count = int(self.client.hget(key, "n") or 0)
        for page in range(start + 1, count + 1):
            with translated_errors():
                record = self.client.hget(key, str(page))
            if record is not None:
                yield reply_text(record)

    # ----------------------------------------------------------------- retries and requeues
    def promote_due(self, now: float | None = None, limit: int = 1000) -> int:
        """Move delayed retries that are due into the queue; returns how many."""
        with translated_errors():
            return int(self._promote(keys=[self.keys.delayed, self.keys.queue], args=[now or time.time(), limit]))

    def requeue_dead_workers(
        self, *, max_attempts: int, max_failure_records: int = DEFAULT_MAX_FAILURE_RECORDS
    ) -> tuple[int, int]:
        """Return the claimed tasks of every worker whose heartbeat expired to the queue, each
        with one attempt more; a task past ``max_attempts`` is dead-lettered instead (a failure
        record, its files failed). Returns (requeued, dead-lettered)."""
        return self._run_requeue(max_attempts=max_attempts, only_worker="", count_attempt=True, cap=max_failure_records)

    def release_claimed(self, worker_id: str) -> int:
        """Return this worker's claimed tasks to the queue at once, without counting an
        attempt (a shutdown). Returns how many."""
        moved, _ = self._run_requeue(
            max_attempts=_NEVER, only_worker=worker_id, count_attempt=False, cap=DEFAULT_MAX_FAILURE_RECORDS
        )
        return moved

    def _run_requeue(self, *, max_attempts: int, only_worker: str, count_attempt: bool, cap: int) -> tuple[int, int]:
        with translated_errors():
            run_id = reply_text(self.client.hget(self.keys.run, "id"))
            moved, dead = self._requeue(
                keys=[self.keys.run, self.keys.queue, self.keys.delayed, self.keys.claimers, self.keys.failures,
                      self.keys.joins],
                args=[
                    self.keys.processing_prefix,
                    self.keys.heartbeat_prefix,
                    max_attempts,
                    f"{time.time():.3f}",
                    only_worker,
                    "1" if count_attempt else "0",
                    _finalize_raw(run_id),
                    cap,
                ],
            )
        return int(moved), int(dead)


def _finalize_raw(run_id: str) -> str:
    """The FINALIZE task a script queues when it sees the run complete."""
    return Task(kind=TaskKind.FINALIZE, run=run_id).encode()


def _split(outcome: TaskOutcome) -> tuple[list[str], list[str]]:
    """New tasks as they are pushed: file batches and deletions to the far end, directory
    scans to the claim end (discovery runs ahead: see lua.ACK)."""
    enqueue = [t.encode() for t in outcome.enqueue if t.kind is not TaskKind.SCAN]
    enqueue_first = [t.encode() for t in outcome.enqueue if t.kind is TaskKind.SCAN]
    return enqueue, enqueue_first


class ClaimedTask:
    """One claimed task's early commits (a directory listed in pages: execute.scan_pages)."""

    def __init__(self, queue: TaskQueue, worker_id: str, raw: bytes, task: Task, max_failure_records: int) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.raw = raw
        self.task = task
        self.max_failure_records = max_failure_records

    def commit(self, outcome: TaskOutcome, directory: str, record: str = "") -> str:
        return self.queue.progress(self.worker_id, self.raw, self.task, outcome, directory=directory, record=record,
                                   max_failure_records=self.max_failure_records)

    def pages(self, directory: str, start: int = 0) -> Iterator[str]:
        return self.queue.listed_pages(self.task.run, directory, start)
