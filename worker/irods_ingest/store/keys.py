"""The Redis key schema: every key the engine uses, in one place.

All keys of a job carry the job name as a Redis Cluster hash tag (``{job}``), so one
job's keys live on one node (its Lua scripts touch several of them) while different
jobs spread over a cluster. ``ii:`` prefixes everything workers write, so the engine can
share a database with other users.

What decides what a worker runs — the job's config and its event-handler code — lives
under a separate prefix, ``iic:`` ("control"), which only the controller (operator or
CLI) writes and workers only read. A Redis ACL can then make that a rule rather than a
habit: give workers their own user, e.g.
``ACL SETUSER worker on >PASSWORD`` followed by :data:`WORKER_ACL_RULES`,
and a compromised or buggy worker cannot change another job's handler or its own
(tests/security/test_redis_acl.py). Workers also check that a handler's content matches
the hash it is stored under.

Global
  ii:jobs                         SET    names of known jobs (for ``list``)

Per job ``J`` (hash tag ``{J}``)
  iic:{J}:job                     HASH   config (JSON), run (current run id); fields "op:*" are the
                                         operator's notes (last runNow acted on, last schedule slot...)
  ii:{J}:run                      HASH   state of the current/last run: id, state, started, ended, outcome,
                                         counters (files_*, bytes_*, tasks_*), error
  ii:{J}:queue                    LIST   ready tasks (JSON); LPUSH to enqueue, claimed from the right
  ii:{J}:delayed                  ZSET   tasks waiting for a retry, scored by the time they are due
  ii:{J}:claimers                 SET    worker ids that may hold tasks in a processing list
  ii:{J}:processing:{W}           LIST   tasks claimed by worker W (BLMOVE target), removed on ack
  ii:{J}:heartbeat:{W}            STRING worker W's liveness; expires (TTL) when W dies
  ii:{J}:failures                 LIST   per-file/per-task failures of the current run (JSON), newest first;
                                         the ACK/REQUEUE scripts keep the run's first max_failure_records
                                         and count the rest in the run's failures_dropped
  ii:{J}:history                  LIST   summaries of finished runs (JSON), newest first, capped
  iic:{J}:handler:{H}             STRING event-handler source with content hash H
  ii:{J}:cache:{G}:{D}            HASH   change-detection cache for source directory with digest D:
                                         entry name -> "<mtime_ns>:<size>". G is the cache generation,
                                         a digest of the settings that decide what "synced" means
                                         (source, target, operation, resource, handler...): a job whose
                                         settings change starts a new generation and the old one is dropped
  ii:{J}:cached:{G}               STRING "1": a directory may have a change cache in generation G. Set by
                                         the ack that writes G's first cache entries (in the same script)
                                         and by a start with the last run's settings, so its absence
                                         proves there is nothing to compare: first-sync scans then read
                                         no cache at all. Dropped with its generation
  ii:{J}:seen:{R}:{D}             SET    S3 sources: names the listing pages of run R saw so far in the
                                         multi-page prefix with digest D (object names, iRODS names and
                                         subprefix names); a paged source directory's names (below). The prefix's last page compares the iRODS
                                         collection and the change cache against it (deletes, stale cache)
                                         and removes it; a TTL (SEEN_TTL_SECONDS, renewed per page) and the
                                         run's FINALIZE task remove what a stopped or failed listing left
  ii:{J}:seen:{R}:{D}:pages       HASH   a source directory of more entries than one scan page (D its digest),
                                         listed in pages by one SCAN task: "n" -> pages committed so far,
                                         "<i>" -> the entry names page i accounted for (a JSON array of wire
                                         names), written by the PROGRESS script together with that page's
                                         tasks and counts. A redelivered listing skips what they name; at the
                                         directory's end they fill ii:{J}:seen:{R}:{D} (deletes, stale cache).
                                         Listed in seen-index; removed by the directory's final ack, else by
                                         FINALIZE or the TTL
  ii:{J}:seen-index:{R}           SET    the seen-set keys of run R, added with each set (same transaction)
                                         and removed with it: FINALIZE forgets a run's sets by name, never
                                         by SCAN (a worker touches only its own job's keys, by name)
  ii:{J}:joins                    HASH   deleting a vanished collection C: "n:C" -> DELETE tasks of C's
                                         contents not yet acknowledged, "t:C" -> the task that removes C
                                         once they are (pushed by the ack that counts "n:C" down to 0).
                                         Emptied by the runs' start, stop and FINALIZE

Retained change caches (no job's hash tag: ``T`` = ``retained~{scope}~{G}``, see
:class:`RetainedCacheKeys`; ``~`` never occurs in a job name, so no job's keys or ACL
pattern can match them). Written and read by the controller only (operator or CLI), never
by a worker: the per-job ACL users cannot reach them
  iic:{T}:meta                    HASH   the retained cache of generation G of a deleted job of the scope:
                                         version V (the committed copy), job, generation, settings (JSON,
                                         compared exactly before adoption), retained, expires, directories,
                                         entries; adopter/adopted once a starting job claimed it. Expires
                                         (PEXPIREAT) with the retention
  iic:{T}:cache:{V}:{D}           HASH   copy V of ii:{J}:cache:{G}:{D}; every key is born with the
                                         retention's expiry, so an uncommitted or abandoned copy is
                                         bounded in time

Bounded by design: a finished run's queue/delayed/processing lists are empty by
definition; ``failures`` is cleared when the next run starts; ``history`` is capped at
HISTORY_LIMIT entries; the cache holds one short field per synced file (≈ 40 B).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

PREFIX: Final = "ii"
CONTROL_PREFIX: Final = "iic"  # written by the controller only; read-only for workers
# The commands a worker sends, and nothing else (its Lua scripts run their redis.call()s
# under the same user, so those count too). No SCAN/KEYS (key names of other jobs), no
# FUNCTION, SCRIPT FLUSH/KILL, CONFIG, pub/sub or SELECT (unless the URL names a database:
# see worker_acl_rules). tests/security/test_attack_redis_credentials.py holds workers to it.
WORKER_COMMANDS: Final = (
    # connection
    "ping", "hello",  # (redis-py's CLIENT SETINFO is refused and ignored: Redis 7.0 lacks it)
    # claiming, heartbeats, bookkeeping
    "blmove", "lmove", "llen", "lrange", "zcard", "smembers", "sadd", "srem", "sismember", "smismember",
    "get", "set", "del", "unlink", "exists", "expire", "pexpire",
    "hget", "hgetall", "hmget", "hset", "hscan", "hincrby",
    "multi", "exec", "discard",
    # the queue's Lua scripts (EVALSHA; SCRIPT LOAD when Redis does not know a script yet)
    "evalsha", "script|load", "script|exists",
    "lpush", "rpush", "lrem", "ltrim", "rpop", "zadd", "zrem", "zrangebyscore", "hdel",
)  # fmt: skip


def worker_acl_rules(key_pattern: str, control_pattern: str, *, select: bool = False) -> str:
    """ACL rules (after the user's passwords) for workers: read-write ``key_pattern``,
    read-only ``control_pattern``, no channels, exactly :data:`WORKER_COMMANDS`."""
    commands = " ".join(f"+{c}" for c in (*WORKER_COMMANDS, *(("select",) if select else ())))
    return f"resetkeys ~{key_pattern} %R~{control_pattern} resetchannels -@all {commands}"


# The rules of a shared workers' user (every job; the chart's `shared` credential mode):
# everything under ii:*, read-only under iic:*. A holder can disturb every job's queue, so
# the default is a user per job (JobKeys.worker_acl_rules).
WORKER_ACL_RULES: Final = worker_acl_rules(f"{PREFIX}:*", f"{CONTROL_PREFIX}:*")
JOBS_INDEX: Final = f"{PREFIX}:jobs"
HISTORY_LIMIT: Final = 50
SEEN_TTL_SECONDS: Final = 7 * 24 * 3600


def job_scope(job: str) -> str:
    """The scope a job shares caches in: its name up to the last ``/`` (a SyncJob's
    namespace; "" for a CLI job named without one). Caches never cross scopes."""
    return job.rpartition("/")[0]


def directory_digest(relative_dir: str) -> str:
    """A short stable digest of a source directory path (keeps cache key names bounded)."""
    return hashlib.blake2b(relative_dir.encode("utf-8", "surrogateescape"), digest_size=10).hexdigest()


@dataclass(frozen=True)
class JobKeys:
    """Key names of one job."""

    job: str

    def __post_init__(self) -> None:
        if "{" in self.job or "}" in self.job:
            raise ValueError(f"job name {self.job!r} must not contain braces (they delimit the hash tag)")

    @property
    def _base(self) -> str:
        return f"{PREFIX}:{{{self.job}}}"

    @property
    def _control_base(self) -> str:
        return f"{CONTROL_PREFIX}:{{{self.job}}}"

    @property
    def job_hash(self) -> str:
        return f"{self._control_base}:job"

    @property
    def run(self) -> str:
        return f"{self._base}:run"

    @property
    def queue(self) -> str:
        return f"{self._base}:queue"

    @property
    def delayed(self) -> str:
        return f"{self._base}:delayed"

    @property
    def claimers(self) -> str:
        return f"{self._base}:claimers"

    @property
    def processing_prefix(self) -> str:
        return f"{self._base}:processing:"

    def processing(self, worker_id: str) -> str:
        return f"{self.processing_prefix}{worker_id}"

    @property
    def heartbeat_prefix(self) -> str:
        return f"{self._base}:heartbeat:"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.heartbeat_prefix}{worker_id}"

    @property
    def failures(self) -> str:
        return f"{self._base}:failures"

    @property
    def history(self) -> str:
        return f"{self._base}:history"

    def handler(self, content_hash: str) -> str:
        return f"{self._control_base}:handler:{content_hash}"

    @property
    def cache_prefix(self) -> str:
        return f"{self._base}:cache:"

    def cache(self, generation: str, relative_dir: str) -> str:
        return f"{self.cache_prefix}{generation}:{directory_digest(relative_dir)}"

    def cache_of_digest(self, generation: str, digest: str) -> str:
        """The cache key of the directory whose digest is ``digest`` (a copy names no directory)."""
        return f"{self.cache_prefix}{generation}:{digest}"

    def cache_pattern(self, generation: str) -> str:
        """SCAN pattern of every directory's cache in ``generation`` (the controller's, never a worker's)."""
        return f"{self.cache_prefix}{generation}:*"

    @property
    def cache_marker_prefix(self) -> str:
        return f"{self._base}:cached:"

    def cache_marker(self, generation: str) -> str:
        return f"{self.cache_marker_prefix}{generation}"

    def seen_prefix(self, run_id: str) -> str:
        return f"{self._base}:seen:{run_id}:"

    def seen(self, run_id: str, relative_dir: str) -> str:
        return f"{self.seen_prefix(run_id)}{directory_digest(relative_dir)}"

    def seen_pages(self, run_id: str, relative_dir: str) -> str:
        """The committed pages of a directory listed in several pages (under the seen prefix,
        so that FINALIZE's clean-up of a run's sets removes them too)."""
        return f"{self.seen(run_id, relative_dir)}:pages"

    def seen_index(self, run_id: str) -> str:
        return f"{self._base}:seen-index:{run_id}"

    @property
    def joins(self) -> str:
        return f"{self._base}:joins"

    def worker_acl_rules(self, *, select: bool = False) -> str:
        """ACL rules of this job's own workers' user: its keys only (see :func:`worker_acl_rules`)."""
        if any(c in self.job for c in "*?[]\\ "):
            # ACL key patterns are globs: a job named "a*" would reach the keys of every "a..." job.
            raise ValueError(f"job name {self.job!r} holds glob or space characters; it cannot have a credential of its own")
        return worker_acl_rules(f"{self._base}:*", f"{self._control_base}:*", select=select)

    def all_patterns(self) -> list[str]:
        """SCAN patterns covering every key of this job (for deletion)."""
        return [f"{self._base}:*", f"{self._control_base}:*"]


# Separates a retained cache's scope and generation in its hash tag. Never part of a job name
# (config.JOB_NAME_PATTERN), so a retained cache's tag is never a job's.
RETAINED_TAG_SEPARATOR: Final = "~"


@dataclass(frozen=True)
class RetainedCacheKeys:
    """Key names of the retained change cache of one scope and cache generation: what a
    deleted job left for the next job of the same settings (:mod:`irods_ingest.jobstate.retained_caches`).

    One hash tag of their own: in a Redis Cluster they live on one node, but (mostly) not the
    job's, so they move key by key, never inside one script."""

    scope: str
    generation: str

    def __post_init__(self) -> None:
        for part in (self.scope, self.generation):
            if any(c in part for c in "{}*?[]\\ " + RETAINED_TAG_SEPARATOR):
                raise ValueError(f"{part!r} cannot be part of a retained cache's hash tag")

    @property
    def tag(self) -> str:
        return f"retained{RETAINED_TAG_SEPARATOR}{self.scope}{RETAINED_TAG_SEPARATOR}{self.generation}"

    @property
    def _base(self) -> str:
        return f"{CONTROL_PREFIX}:{{{self.tag}}}"

    @property
    def meta(self) -> str:
        return f"{self._base}:meta"

    def cache_prefix(self, version: str) -> str:
        return f"{self._base}:cache:{version}:"

    def cache(self, version: str, digest: str) -> str:
        return f"{self.cache_prefix(version)}{digest}"

    @property
    def every_cache_pattern(self) -> str:
        """SCAN pattern of the cache keys of every version (the committed one and abandoned ones)."""
        return f"{self._base}:cache:*"
