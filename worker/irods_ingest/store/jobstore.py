"""Job and run state, and the reliable task queue, for one job in Redis.

``JobStore`` is the only place that knows how a job lives in Redis (with ``keys`` and
``lua``). Everything it returns is plain typed data; everything it raises is from the
engine's error taxonomy.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from irods_ingest.config import DEFAULT_MAX_FAILURE_RECORDS, JobConfig, cache_generation
from irods_ingest.errors import PermanentError
from irods_ingest.failures import FailureRecord, read_failure_record
from irods_ingest.store import lua
from irods_ingest.store.connection import translated_errors
from irods_ingest.store.keys import HISTORY_LIMIT, JOBS_INDEX, SEEN_TTL_SECONDS, JobKeys
from irods_ingest.tasks import Task, TaskKind

COUNTERS = (
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
_COUNTER_NAMES = frozenset(COUNTERS)
ACTIVE_STATES = frozenset({"running", "finishing"})
# What one failure record may hold, in bytes of its JSON (as it is stored): a reason, a
# traceback (its end: where it was raised), and any other text field (a path).
MAX_REASON_BYTES = 2048
MAX_TRACEBACK_BYTES = 4000
MAX_RECORD_FIELD_BYTES = 4096
_CLIPPED = "[...]"


def clipped(text: str, limit: int, *, keep_end: bool = False) -> str:
    """``text`` in at most ``limit`` bytes once JSON-escaped (ASCII-only, as records are
    stored), cut at its end (or, ``keep_end``, at its start) with a marker."""
    if len(json.dumps(text)) - 2 <= limit:
        return text
    budget = max(0, limit - len(_CLIPPED))
    chars = min(len(text), budget)
    while True:
        part = text[len(text) - chars :] if keep_end else text[:chars]
        size = len(json.dumps(part)) - 2
        if size <= budget:
            return _CLIPPED + part if keep_end else part + _CLIPPED
        chars = max(0, min(chars - 1, chars * budget // size))


def new_run_id() -> str:
    """Sortable by start time, unique across hosts: the run's fencing token."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


@dataclass
class TaskOutcome:
    """Everything one processed task changes, applied atomically with its ack."""

    counters: dict[str, int] = field(default_factory=dict)
    enqueue: list[Task] = field(default_factory=list)
    delay: list[tuple[float, Task]] = field(default_factory=list)
    failures: list[FailureRecord] = field(default_factory=list)
    cache_set: dict[str, dict[str, str]] = field(default_factory=dict)  # directory -> name -> value
    cache_delete: dict[str, list[str]] = field(default_factory=dict)  # directory -> names
    finalize: bool = False
    error: str = ""
    cache_generation: str = ""
    # Deleting a vanished collection (keys.py, ``joins``): collections whose removal now waits
    # for this many of the enqueued tasks, with the task that removes them once they are done;
    # more tasks to wait for; the collection one of whose tasks this was ("" for none).
    join_open: list[tuple[str, int, Task]] = field(default_factory=list)
    join_add: dict[str, int] = field(default_factory=dict)
    join_done: str = ""

    def count(self, name: str, delta: int = 1) -> None:
        if name not in _COUNTER_NAMES:
            raise ValueError(f"unknown counter {name}")
        self.counters[name] = self.counters.get(name, 0) + delta


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
        }


def handler_digest(source: bytes) -> str:
    """The content hash a handler is stored under."""
    return hashlib.sha256(source).hexdigest()[:32]


def _str(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


# Failure-record fields that identify things rather than describe them.
_NOT_REDACTED = frozenset({"path", "task", "kind", "outcome"})


def list_jobs(client: redis.Redis) -> list[str]:
    with translated_errors():
        return sorted(_str(name) for name in client.smembers(JOBS_INDEX))


class JobStore:
    def __init__(self, client: redis.Redis, job: str, *, redact: Callable[[str], str] | None = None) -> None:
        self.client = client
        self.job = job
        self.keys = JobKeys(job)
        # A worker's secrets out of every failure record and run error before they reach
        # Redis (irods_ingest.redact); None for the controller, which writes no user text.
        self._redact = redact
        self._start = client.register_script(lua.START_RUN)
        self._stop = client.register_script(lua.STOP_RUN)
        self._promote = client.register_script(lua.PROMOTE_DUE)
        self._ack = client.register_script(lua.ACK)
        self._requeue = client.register_script(lua.REQUEUE)
        self._config_raw: bytes | str | None = None  # run_and_config's parse cache
        self._config: JobConfig | None = None

    # ----------------------------------------------------------------- configuration
    def save_handler(self, source: str) -> str:
        """Store handler source by content hash (idempotent); returns the hash."""
        digest = handler_digest(source.encode())
        with translated_errors():
            self.client.set(self.keys.handler(digest), source.encode())
        return digest

    def load_handler(self, digest: str) -> str:
        with translated_errors():
            raw = self.client.get(self.keys.handler(digest))
        if raw is None:
            raise PermanentError(f"job {self.job}: event handler {digest} is missing from Redis")
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        if handler_digest(data) != digest:
            # Only the controller writes handler keys; content that does not match its name
            # was changed behind its back, and running it would run code nobody reviewed.
            raise PermanentError(
                f"job {self.job}: event handler {digest} in Redis does not match its content hash "
                "(modified outside the operator/CLI); re-apply the job to restore it"
            )
        return _str(raw)

    def load_config(self) -> JobConfig | None:
        with translated_errors():
            raw = self.client.hget(self.keys.job_hash, "config")
        return JobConfig.from_dict(json.loads(raw)) if raw else None

    def save_config(self, config: JobConfig) -> None:
        """Replace the stored config (the operator uses it to hand a new handler to a running run)."""
        with translated_errors():
            self.client.hset(self.keys.job_hash, "config", json.dumps(config.to_dict()))

    def memo(self) -> dict[str, str]:
        """The controller's own notes about this job (fields prefixed ``op:`` in the job hash)."""
        with translated_errors():
            raw = self.client.hgetall(self.keys.job_hash)
        return {_str(k): _str(v) for k, v in raw.items() if _str(k).startswith("op:")}

    def set_memo(self, name: str, value: str) -> None:
        if not name.startswith("op:"):
            raise ValueError("memo fields start with 'op:'")
        with translated_errors():
            self.client.hset(self.keys.job_hash, name, value)

    def run_and_config(self) -> tuple[str | None, JobConfig | None]:
        """The current run id and the stored config in one round trip (a worker reads both
        before every task). The config is parsed again only when its JSON changed."""
        with translated_errors():
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(self.keys.run, "id")
            pipe.hget(self.keys.job_hash, "config")
            run_id, raw = pipe.execute()
        if raw is None:
            return _str(run_id) or None, None
        if raw != self._config_raw:
            self._config = JobConfig.from_dict(json.loads(raw))
            self._config_raw = raw
        return _str(run_id) or None, self._config

    def current_run_id(self) -> str | None:
        with translated_errors():
            raw = self.client.hget(self.keys.run, "id")
        return _str(raw) or None

    # ----------------------------------------------------------------- runs
    def start_run(
        self,
        config: JobConfig,
        *,
        force: bool = False,
        run_id: str | None = None,
        initial_tasks: Callable[[str], list[Task]] | None = None,
        known_files: int = 0,
    ) -> tuple[bool, str]:
        """Start a run. Returns (started, run id).

        A full run starts from the root scan task; a retry run from ``initial_tasks(run_id)``
        (with ``known_files`` counted as discovered). With an active run and ``force``
        false, nothing changes and (False, active id) comes back: starting is idempotent
        for a caller that retries.
        """
        run_id = run_id or new_run_id()
        previous_generation = self._stored_cache_generation()
        generation = cache_generation(config)
        if previous_generation == generation:
            # Same settings as the last run: its caches may exist (written by a version before
            # the marker, too). The marker is only a hint that caches may exist, so saying so
            # before any scan asks is always safe; only its absence promises anything.
            with translated_errors():
                self.client.set(self.keys.cache_marker(generation), "1")
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
                ],
            )
        started = _str(status) == "started"
        if started and previous_generation not in ("", generation):
            # Settings that change what "synced" means make the old change cache meaningless.
            # Only then: the pass SCANs the keyspace, which a shared Redis makes large.
            self.drop_other_cache_generations(generation)
        return started, _str(rid)

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

    def stop_run(self, reason: str = "stopped by request") -> bool:
        with translated_errors():
            status, _ = self._stop(
                keys=[self.keys.run, self.keys.queue, self.keys.delayed, self.keys.history, self.keys.joins],
                args=[f"{time.time():.3f}", reason],
            )
        return _str(status) == "stopped"

    def status(self) -> RunStatus:
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
                    pipe.llen(self.keys.processing(_str(worker)))
                in_flight = sum(pipe.execute())
        fields = {_str(k): _str(v) for k, v in run.items()}
        counters = {name: int(fields.get(name, 0) or 0) for name in COUNTERS}
        return RunStatus(
            job=self.job,
            run_id=fields.get("id") or None,
            state=fields.get("state", "none"),
            started=float(fields["started"]) if fields.get("started") else None,
            ended=float(fields["ended"]) if fields.get("ended") else None,
            counters=counters,
            queued=int(queued),
            delayed=int(delayed),
            in_flight=in_flight,
            error=fields.get("error", ""),
        )

    def history(self, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
        with translated_errors():
            raw = self.client.lrange(self.keys.history, 0, limit - 1)
        return [json.loads(item) for item in raw]

    def failures(self, limit: int | None = None) -> list[FailureRecord]:
        """The run's failure records, newest first. Workers write them (and anyone holding a
        worker's credential could write anything): a record that is not a JSON object comes
        back as one saying so, never as an exception in the reader."""
        end = -1 if limit is None else limit - 1
        with translated_errors():
            raw = self.client.lrange(self.keys.failures, 0, end)
        return [read_failure_record(item) for item in raw]

    # ----------------------------------------------------------------- queue
    def register_worker(self, worker_id: str, ttl: float) -> None:
        """Announce a worker (before it claims) and start its heartbeat."""
        with translated_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.set(self.keys.heartbeat(worker_id), "1", px=int(ttl * 1000))
            pipe.sadd(self.keys.claimers, worker_id)
            pipe.execute()

    def heartbeat(self, worker_id: str, ttl: float) -> None:
        with translated_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.set(self.keys.heartbeat(worker_id), "1", px=int(ttl * 1000))
            pipe.sadd(self.keys.claimers, worker_id)
            pipe.execute()

    def promote_due(self, now: float | None = None, limit: int = 1000) -> int:
        with translated_errors():
            return int(self._promote(keys=[self.keys.delayed, self.keys.queue], args=[now or time.time(), limit]))

    def claim(self, worker_id: str, timeout: float) -> tuple[bytes, Task] | None:
        """Move the oldest ready task into this worker's processing list (blocking up to ``timeout``)."""
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

    def _finalize_raw(self, run_id: str) -> str:
        return Task(kind=TaskKind.FINALIZE, run=run_id).encode()

    def ack(self, worker_id: str, raw: bytes, task: Task, outcome: TaskOutcome) -> str:
        """Remove ``raw`` from the processing list and apply ``outcome`` atomically.

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
        # Directory scans are claimed before file batches (see lua.ACK).
        enqueue = [t.encode() for t in outcome.enqueue if t.kind is not TaskKind.SCAN]
        enqueue_first = [t.encode() for t in outcome.enqueue if t.kind is TaskKind.SCAN]
        payload = {
            "counters": outcome.counters or {"tasks_done": 0},
            "delay": [[due, t.encode()] for due, t in outcome.delay],
            "failures": [json.dumps(self._fit(f), ensure_ascii=True) for f in outcome.failures],
            "max_failures": self._max_failure_records(),
            "cache": cache_ops,
            "finalize": outcome.finalize,
            "error": clipped(self._redacted(outcome.error), MAX_REASON_BYTES),
            "join_open": [[c, n, t.encode()] for c, n, t in outcome.join_open],
            "join_add": [[c, n] for c, n in outcome.join_add.items() if n],
            "join_done": outcome.join_done,
        }
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
                ],
                args=[
                    raw,
                    task.run,
                    json.dumps(payload, ensure_ascii=True),
                    self.keys.processing_prefix,
                    self._finalize_raw(task.run),
                    f"{time.time():.3f}",
                    len(enqueue),
                    len(enqueue_first),
                    *enqueue,
                    *enqueue_first,
                ],
            )
        return _str(result)

    def _redacted(self, text: str) -> str:
        return self._redact(text) if self._redact is not None and text else text

    def _fit(self, record: FailureRecord) -> dict[str, Any]:
        """A failure record as it may be stored: secrets redacted, then every text capped
        (redacting first: a cut must never leave the start of a secret behind)."""
        fitted: dict[str, Any] = {}
        for name, value in record.items():
            if isinstance(value, str):
                # Free text only: a path names a file (a retry redoes it by that name), and a
                # file named like a password is no leak of it.
                if name not in _NOT_REDACTED:
                    value = self._redacted(value)
                if name == "traceback":
                    value = clipped(value, MAX_TRACEBACK_BYTES, keep_end=True)
                else:
                    value = clipped(value, MAX_REASON_BYTES if name == "reason" else MAX_RECORD_FIELD_BYTES)
            fitted[name] = value
        return fitted

    def _max_failure_records(self) -> int:
        """The run's failure-record cap: from the config this store last read (a worker reads
        it before every task, with ``run_and_config``), else the default."""
        return self._config.max_failure_records if self._config is not None else DEFAULT_MAX_FAILURE_RECORDS

    def requeue(
        self, *, max_attempts: int, only_worker: str = "", count_attempt: bool = True, max_failure_records: int | None = None
    ) -> tuple[int, int]:
        """Return dead workers' tasks (or one worker's, on warm shutdown) to the queue."""
        run_id = self.current_run_id() or ""
        cap = max_failure_records if max_failure_records is not None else self._max_failure_records()
        with translated_errors():
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
                    self._finalize_raw(run_id),
                    cap,
                ],
            )
        return int(moved), int(dead)

    def unregister_worker(self, worker_id: str) -> None:
        with translated_errors():
            self.client.delete(self.keys.heartbeat(worker_id))

    # ----------------------------------------------------------------- change cache
    def cached_entries(self, generation: str, directory: str) -> dict[str, str]:
        with translated_errors():
            raw = self.client.hgetall(self.keys.cache(generation, directory))
        return {_str(k): _str(v) for k, v in raw.items()}

    def has_cache(self, generation: str) -> bool:
        """Whether any directory may have a change cache in ``generation`` (False: none has)."""
        with translated_errors():
            return bool(self.client.exists(self.keys.cache_marker(generation)))

    def cached_entries_of(self, generation: str, directories: list[str]) -> list[dict[str, str]]:
        """The caches of several directories in one round trip (a scan task's next directories)."""
        with translated_errors():
            pipe = self.client.pipeline(transaction=False)
            for directory in directories:
                pipe.hgetall(self.keys.cache(generation, directory))
            replies = pipe.execute()
        return [{_str(k): _str(v) for k, v in raw.items()} for raw in replies]

    def cached_values(self, generation: str, directory: str, names: list[str]) -> dict[str, str]:
        """The change-cache values of just ``names`` (an S3 listing page: bounded, whatever the prefix holds)."""
        if not names:
            return {}
        with translated_errors():
            raw = self.client.hmget(self.keys.cache(generation, directory), names)
        return {name: _str(value) for name, value in zip(names, raw, strict=True) if value is not None}

    def drop_other_cache_generations(self, keep: str) -> int:
        """Delete change-cache keys (and markers) of every generation but ``keep`` (after a
        settings change). Returns the number of cache keys deleted."""
        keep_prefix = f"{self.keys.cache_prefix}{keep}:".encode()
        keep_marker = self.keys.cache_marker(keep).encode()
        marker_prefix = self.keys.cache_marker_prefix.encode()
        deleted = 0
        with translated_errors():
            batch: list[bytes] = []
            # One pass over "cache:*" and "cached:*" (COUNT 1000: a shared Redis may hold millions of keys)
            for key in self.client.scan_iter(match=f"{self.keys.cache_prefix[:-1]}*", count=1000):
                if key.startswith(marker_prefix):
                    if key != keep_marker:
                        self.client.unlink(key)
                    continue
                if not key.startswith(keep_prefix):
                    batch.append(key)
                if len(batch) >= 500:
                    deleted += int(self.client.unlink(*batch))
                    batch = []
            if batch:
                deleted += int(self.client.unlink(*batch))
        return deleted

    def cache_fields(self, generation: str, directory: str, batch: int = 1000) -> Iterator[list[str]]:
        """The change-cache field names of ``directory`` in batches (HSCAN: bounded memory)."""
        key = self.keys.cache(generation, directory)
        cursor: int = 0
        while True:
            with translated_errors():
                cursor, found = self.client.hscan(key, cursor, count=batch)
            names = [_str(name) for name in found]
            if names:
                yield names
            if not cursor:
                return

    # ----------------------------------------------------------------- S3 listing bookkeeping
    def remember_seen(self, run_id: str, directory: str, names: Iterable[str]) -> None:
        """Add one listing page's names to what run ``run_id`` saw of ``directory`` (idempotent).

        The set's key goes into the run's index in the same transaction, so that the end of
        the run finds every set by name (:meth:`forget_run_seen`), never by SCAN."""
        key = self.keys.seen(run_id, directory)
        index = self.keys.seen_index(run_id)
        members = list(names)
        with translated_errors():
            pipe = self.client.pipeline(transaction=True)
            # An empty page still marks the prefix as being listed (the last page checks that).
            pipe.sadd(key, "", *members)
            pipe.expire(key, SEEN_TTL_SECONDS)
            pipe.sadd(index, key)
            pipe.expire(index, SEEN_TTL_SECONDS)
            pipe.execute()

    def seen_started(self, run_id: str, directory: str) -> bool:
        """Whether earlier pages of ``directory`` recorded their names (and nobody finished it yet)."""
        with translated_errors():
            return bool(self.client.exists(self.keys.seen(run_id, directory)))

    def seen_among(self, run_id: str, directory: str, names: list[str]) -> set[str]:
        """Which of ``names`` earlier pages of ``directory`` saw."""
        if not names:
            return set()
        with translated_errors():
            flags = self.client.smismember(self.keys.seen(run_id, directory), names)
        return {name for name, flag in zip(names, flags, strict=True) if flag}

    def forget_seen(self, run_id: str, directory: str) -> None:
        key = self.keys.seen(run_id, directory)
        with translated_errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.unlink(key)
            pipe.srem(self.keys.seen_index(run_id), key)
            pipe.execute()

    def forget_run_seen(self, run_id: str) -> int:
        """Remove every listing bookkeeping set of run ``run_id`` (at its end), and its index.

        By name, from the index: a worker never SCANs (its Redis user may reach only its own
        job's keys). Only names of this run's sets are deleted, whatever the index holds.
        Returns the number of sets deleted."""
        index = self.keys.seen_index(run_id)
        prefix = self.keys.seen_prefix(run_id)
        with translated_errors():
            members = [_str(m) for m in self.client.smembers(index)]
            own = [m for m in members if m.startswith(prefix) and len(m) > len(prefix)]
            deleted = 0
            for start in range(0, len(own), 500):
                deleted += int(self.client.unlink(*own[start : start + 500]))
            self.client.unlink(index)
        return deleted

    # ----------------------------------------------------------------- removal
    def delete_job(self) -> int:
        """Remove every key of the job (stop first). Returns the number of keys deleted."""
        deleted = 0
        with translated_errors():
            for pattern in self.keys.all_patterns():
                batch: list[bytes] = []
                for key in self.client.scan_iter(match=pattern, count=1000):
                    batch.append(key)
                    if len(batch) >= 500:
                        deleted += int(self.client.delete(*batch))
                        batch = []
                if batch:
                    deleted += int(self.client.delete(*batch))
            self.client.srem(JOBS_INDEX, self.job)
        return deleted


def jobs_with_state(client: redis.Redis, names: Iterable[str]) -> list[RunStatus]:
    return [JobStore(client, name).status() for name in names]
