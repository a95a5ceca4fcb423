"""A job's runs: start and stop (each one Lua script), status, counters and history.

A run has an id, a fencing token: a task names its run, and an ack of a task whose run is
no longer current changes nothing. States: running -> finishing (its FINALIZE task is
queued) -> done | failed, or stopped (by request, or replaced by a new run). The counters
change only in the queue's ACK and REQUEUE scripts, atomically with a task's ack; queued,
delayed and in-flight tasks are derived from the queue's keys, never stored.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

from irods_ingest.config import JobConfig, cache_generation
from irods_ingest.errors import PermanentError
from irods_ingest.jobstate import lua
from irods_ingest.jobstate.change_cache import ChangeCache
from irods_ingest.jobstate.retained_caches import AdoptedCache, RetainedCaches
from irods_ingest.store.connection import RedisClient, reply_text, translated_errors
from irods_ingest.store.keys import HISTORY_LIMIT, JOBS_INDEX, JobKeys
from irods_ingest.tasks import Task, TaskKind

COUNTERS: Final = (
    "files_discovered",
    "files_synced",
    "files_unchanged",
    "files_skipped",
    "files_excluded",
    "files_failed",
    "files_deleted",
    "collections_deleted",  # emptied collections removed after their source directory vanished
    "bytes_discovered",
    "bytes_synced",
    "tasks_enqueued",
    "tasks_done",
    "tasks_failed",
    "failures_dropped",  # failure records not stored (beyond the job's max_failure_records)
)
ACTIVE_STATES: Final = frozenset({"running", "finishing"})


def new_run_id() -> str:
    """Sortable by start time, unique across hosts: the run's fencing token."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class RunStatus:
    job: str
    run_id: str | None
    state: str  # none | running | finishing | done | failed | stopped
    started: float | None
    ended: float | None
    counters: dict[str, int]
    queued: int
    delayed: int
    in_flight: int
    error: str
    adopted: AdoptedCache | None = None  # the change cache this run's start took over from another job

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "run": self.run_id,
            "state": self.state,
            "started": self.started,
            "ended": self.ended,
            "queued": self.queued,
            "delayed": self.delayed,
            "in_flight": self.in_flight,
            "error": self.error,
            **self.counters,
            **({"adopted_cache": asdict(self.adopted)} if self.adopted is not None else {}),
        }


@dataclass(frozen=True)
class OpenedRun:
    """What starting a run did: whether it started, its id, and the change cache it adopted."""

    started: bool
    run_id: str
    adopted: AdoptedCache | None = None


class RunState:
    """One job's runs."""

    def __init__(self, client: RedisClient, job: str) -> None:
        self.client = client
        self.job = job
        self.keys = JobKeys(job)
        self._cache = ChangeCache(client, job)
        self._start = client.register_script(lua.START_RUN)
        self._stop = client.register_script(lua.STOP_RUN)

    def start(
        self,
        config: JobConfig,
        *,
        force: bool = False,
        run_id: str | None = None,
        initial_tasks: Callable[[str], list[Task]] | None = None,
        known_files: int = 0,
    ) -> tuple[bool, str]:
        """Start a run with ``config`` (stored with it). Returns (started, run id).

        A full run starts from the root scan task; a retry run from ``initial_tasks(run_id)``
        (with ``known_files`` counted as discovered). With an active run and ``force``
        false, nothing changes and (False, active id) comes back: starting is idempotent
        for a caller that retries. :meth:`open_run` tells the adopted cache too.
        """
        opened = self.open_run(config, force=force, run_id=run_id, initial_tasks=initial_tasks, known_files=known_files)
        return opened.started, opened.run_id

    def open_run(
        self,
        config: JobConfig,
        *,
        force: bool = False,
        run_id: str | None = None,
        initial_tasks: Callable[[str], list[Task]] | None = None,
        known_files: int = 0,
    ) -> OpenedRun:
        """:meth:`start`, saying which change cache the job adopted, if any: a job that starts
        with settings it has no cache of takes a retained one of its scope and settings (or a
        live job's), see :mod:`irods_ingest.jobstate.retained_caches`."""
        run_id = run_id or new_run_id()
        previous_generation = self._stored_cache_generation()
        generation = cache_generation(config)
        adopted: AdoptedCache | None = None
        if previous_generation == generation:
            # Same settings as the last run: its caches may exist (written by a version before
            # the marker, too), and saying so before any scan asks is always safe.
            self._cache.mark(generation)
        elif not self._cache.exists(generation) and (force or not self._active()):
            adopted = RetainedCaches(self.client).adopt(self.job, config)
        tasks = initial_tasks(run_id) if initial_tasks else [Task(kind=TaskKind.SCAN, run=run_id, directory="")]
        if not tasks:
            raise ValueError("a run needs at least one task")
        with translated_errors():
            status, rid = self._start(
                keys=[
                    self.keys.job_hash,
                    self.keys.run,
                    self.keys.queue,
                    self.keys.delayed,
                    self.keys.failures,
                    self.keys.history,
                    JOBS_INDEX,
                    self.keys.joins,
                ],
                args=[
                    run_id,
                    f"{time.time():.3f}",
                    json.dumps([t.encode() for t in tasks]),
                    json.dumps(config.to_dict()),
                    "1" if force else "0",
                    self.job,
                    known_files,
                    "retry" if initial_tasks else "full",
                    adopted.to_json() if adopted is not None else "",
                ],
            )
        started = reply_text(status) == "started"
        if started and previous_generation not in ("", generation):
            # Settings that change what "synced" means make the old change cache meaningless.
            # Only then: the pass SCANs the keyspace, which a shared Redis makes large.
            self._cache.drop_other_generations(generation)
        return OpenedRun(started, reply_text(rid), adopted if started else None)

    def _active(self) -> bool:
        with translated_errors():
            return reply_text(self.client.hget(self.keys.run, "state")) in ACTIVE_STATES

    def _stored_cache_generation(self) -> str | None:
        """The cache generation of the stored config: "" for a new job, None if unreadable."""
        with translated_errors():
            raw = self.client.hget(self.keys.job_hash, "config")
        if not raw:
            return ""
        try:
            return cache_generation(JobConfig.from_dict(json.loads(raw)))
        except (ValueError, TypeError, KeyError, PermanentError):  # ConfigError: written by another version
            return None

    def stop(self, reason: str = "stopped by request") -> bool:
        """Stop the active run (its queued and delayed tasks are dropped, late acks fenced).
        Returns whether a run was active."""
        with translated_errors():
            status, _ = self._stop(
                keys=[self.keys.run, self.keys.queue, self.keys.delayed, self.keys.history, self.keys.joins],
                args=[f"{time.time():.3f}", reason],
            )
        return reply_text(status) == "stopped"

    def current_run_id(self) -> str | None:
        with translated_errors():
            raw = self.client.hget(self.keys.run, "id")
        return reply_text(raw) or None

    def status(self) -> RunStatus:
        """The current (or last) run's state and counters, with the queue's depth."""
        with translated_errors():
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(self.keys.run)
            pipe.llen(self.keys.queue)
            pipe.zcard(self.keys.delayed)
            pipe.smembers(self.keys.claimers)
            run, queued, delayed, claimers = pipe.execute()
            in_flight = 0
            if claimers:
                pipe = self.client.pipeline(transaction=False)
                for worker in claimers:
                    pipe.llen(self.keys.processing(reply_text(worker)))
                in_flight = sum(pipe.execute())
        fields = {reply_text(k): reply_text(v) for k, v in run.items()}
        return RunStatus(
            job=self.job,
            run_id=fields.get("id") or None,
            state=fields.get("state", "none"),
            started=float(fields["started"]) if fields.get("started") else None,
            ended=float(fields["ended"]) if fields.get("ended") else None,
            counters={name: int(fields.get(name, 0) or 0) for name in COUNTERS},
            queued=int(queued),
            delayed=int(delayed),
            in_flight=in_flight,
            error=fields.get("error", ""),
            adopted=AdoptedCache.from_json(fields["adopted_cache"]) if fields.get("adopted_cache") else None,
        )

    def history(self, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
        """Summaries of finished runs, newest first."""
        with translated_errors():
            raw = self.client.lrange(self.keys.history, 0, limit - 1)
        return [json.loads(item) for item in raw]
