"""Change caches that outlive their job: kept for a while after the job is deleted, and adopted
by the next job of the same scope and settings.

A SyncJob deleted and created again (a GitOps rename, a re-apply) with the same source and
destination would otherwise sync every file again, since its cache lived under its name. The
incumbent keys its cache by path and target; here a cache stays a job's own while the job
exists (under its hash tag, reachable by its workers' ACL user alone), and only the controller
(operator or CLI) hands it on — never a worker:

- **retain** (when the job is deleted): the job's cache of its current generation is copied to
  the key space of (scope, generation) (:class:`~irods_ingest.store.keys.RetainedCacheKeys`),
  each copy born with the retention's expiry; the meta hash, written last in one MULTI, commits
  the copy. :meth:`irods_ingest.actions.JobActions.delete` removes the job's keys only after
  that. A crash before the commit leaves the job's keys intact and an uncommitted copy that
  expires; the deletion, retried, copies again. Older copies are removed after a commit.
- **adopt** (when a job starts with settings it has no cache of): the retained cache of the
  same scope and generation whose recorded settings equal the job's (exactly:
  :func:`~irods_ingest.config.cache_settings`, not only their digest) and that has not expired
  is claimed (a one-key script: of two jobs starting at once, one takes it; the same job may
  claim again after a crash), copied into the job's own keys, marked, then removed. Failing
  that, a live job of the same scope and settings lends a copy of its cache: a rename whose
  new object was created before the old one was deleted, as GitOps tools apply and then prune.

The scope is the job name up to its last ``/`` (a SyncJob's namespace): a cache, which names
the tenant's files, never crosses it. Keys move one by one (:mod:`.hash_copy`), in bounded
batches, so a cache of a million directories takes bounded memory and no script spans two
hash tags (Redis Cluster).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final

from irods_ingest.config import JobConfig, cache_generation, cache_settings
from irods_ingest.errors import PermanentError
from irods_ingest.jobstate import lua
from irods_ingest.jobstate.change_cache import ChangeCache
from irods_ingest.jobstate.hash_copy import KEYS_PER_BATCH, Copied, copy_hashes
from irods_ingest.store.connection import RedisClient, reply_text, translated_errors
from irods_ingest.store.keys import JOBS_INDEX, JobKeys, RetainedCacheKeys, job_scope

DEFAULT_RETENTION_SECONDS: Final = 7 * 24 * 3600
SCAN_COUNT: Final = 1000

log = logging.getLogger("irods_ingest.jobstate")


@dataclass(frozen=True)
class AdoptedCache:
    """The change cache a starting job took over (shown in its run status and start result)."""

    from_job: str
    directories: int
    entries: int
    retained_at: float | None = None  # when its job was deleted; None: lent by a live job

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AdoptedCache | None:
        try:
            data = json.loads(text)
            return cls(str(data["from_job"]), int(data["directories"]), int(data["entries"]),
                       None if data.get("retained_at") is None else float(data["retained_at"]))
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        what = f"the change cache of {self.from_job} ({self.entries} entries in {self.directories} directories)"
        if self.retained_at is None:
            return f"{what}, copied from that job"
        return f"{what}, retained since it was deleted at {_iso(self.retained_at)}"


@dataclass(frozen=True)
class RetainedCache:
    """A committed retained cache, as its meta hash describes it."""

    job: str
    generation: str
    version: str
    settings: Any
    directories: int
    entries: int
    retained_at: float
    expires_at: float
    adopter: str = ""


class RetainedCaches:
    """Retaining and adopting change caches (the controller's steps; see the module doc)."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._claim = client.register_script(lua.CLAIM_RETAINED_CACHE)

    # ------------------------------------------------------------------ retain
    def retain(self, job: str, config: JobConfig, *, seconds: float = DEFAULT_RETENTION_SECONDS,
               now: float | None = None) -> RetainedCache | None:
        """Copy ``job``'s cache of ``config``'s generation to the retained key space for
        ``seconds``; None when there is nothing to keep (or ``seconds`` <= 0)."""
        keys = _retained_keys(job, config)
        if keys is None or seconds <= 0:
            return None
        now = time.time() if now is None else now
        version = f"{int(now)}-{uuid.uuid4().hex[:8]}"
        expire_at_ms = int((now + seconds) * 1000)
        copied = Copied()
        for batch in self._scan(JobKeys(job).cache_pattern(keys.generation)):
            self._add(copied, copy_hashes(self.client, [(key, keys.cache(version, _digest(key))) for key in batch],
                                          expire_at_ms=expire_at_ms))
        if not copied.keys:
            return None
        retained = RetainedCache(job=job, generation=keys.generation, version=version, settings=_json_form(cache_settings(config)),
                                 directories=copied.keys, entries=copied.entries, retained_at=now,
                                 expires_at=now + seconds)
        meta: dict[Any, Any] = {"version": version, "job": job, "generation": keys.generation, "settings": json.dumps(retained.settings),
                "directories": copied.keys, "entries": copied.entries, "retained": f"{now:.3f}",
                "expires": f"{now + seconds:.3f}"}
        with translated_errors():
            commit = self.client.pipeline(transaction=True)  # one key: the commit point
            commit.delete(keys.meta)
            commit.hset(keys.meta, mapping=meta)
            commit.pexpireat(keys.meta, expire_at_ms)
            commit.execute()
        self._unlink_copies(keys, keep=version)
        log.info("cache_retained", extra={"job": job, "directories": copied.keys, "entries": copied.entries,
                                          "expires": _iso(now + seconds)})
        return retained

    def find(self, job: str, config: JobConfig) -> RetainedCache | None:
        """The committed retained cache that ``job`` with ``config`` would look for (expired or not)."""
        keys = _retained_keys(job, config)
        if keys is None:
            return None
        with translated_errors():
            raw = self.client.hgetall(keys.meta)
        fields = {reply_text(k): reply_text(v) for k, v in raw.items()}
        try:
            return RetainedCache(job=fields["job"], generation=fields["generation"], version=fields["version"],
                                 settings=json.loads(fields["settings"]), directories=int(fields["directories"]),
                                 entries=int(fields["entries"]), retained_at=float(fields["retained"]),
                                 expires_at=float(fields["expires"]), adopter=fields.get("adopter", ""))
        except (KeyError, ValueError):
            return None  # absent, or not committed by this version

    # ------------------------------------------------------------------ adopt
    def adopt(self, job: str, config: JobConfig, *, now: float | None = None) -> AdoptedCache | None:
        """Give ``job`` (which has no cache of ``config``'s generation) the retained cache of its
        scope and settings, else a copy of a live job's of the same; mark it. None: nothing found."""
        keys = _retained_keys(job, config)
        if keys is None:
            return None
        now = time.time() if now is None else now
        adopted = self._adopt_retained(job, config, keys, now) or self._copy_live_job(job, config, keys.generation)
        if adopted is not None:
            log.info("cache_adopted", extra={"job": job, "from_job": adopted.from_job, "directories": adopted.directories,
                                             "entries": adopted.entries, "retained": adopted.retained_at is not None})
        return adopted

    def _adopt_retained(self, job: str, config: JobConfig, keys: RetainedCacheKeys, now: float) -> AdoptedCache | None:
        found = self.find(job, config)
        if found is None or found.generation != keys.generation or found.settings != _json_form(cache_settings(config)):
            return None
        if found.expires_at <= now or (found.adopter and found.adopter != job):
            return None
        with translated_errors():
            claimed = self._claim(keys=[keys.meta], args=[found.version, job, f"{now:.3f}"])
        if not claimed:
            return None
        copied = self._copy_into(job, keys.generation, keys.cache_prefix(found.version) + "*")
        if copied.keys:
            ChangeCache(self.client, job).mark(keys.generation)
        with translated_errors():  # taken: the meta first (no one else may claim it), then the copies
            self.client.delete(keys.meta)
        self._unlink_copies(keys, keep=None)
        if not copied.keys:
            return None  # expired meanwhile
        return AdoptedCache(found.job, copied.keys, copied.entries, found.retained_at)

    def _copy_live_job(self, job: str, config: JobConfig, generation: str) -> AdoptedCache | None:
        lender = self._live_job_with_settings(job, config, generation)
        if lender is None:
            return None
        copied = self._copy_into(job, generation, JobKeys(lender).cache_pattern(generation))
        if not copied.keys:
            return None
        ChangeCache(self.client, job).mark(generation)
        return AdoptedCache(lender, copied.keys, copied.entries, None)

    def _live_job_with_settings(self, job: str, config: JobConfig, generation: str) -> str | None:
        """Another job of ``job``'s scope whose stored settings equal ``config``'s and that has a cache."""
        scope, wanted = job_scope(job), _json_form(cache_settings(config))
        with translated_errors():
            names = sorted(n for n in (reply_text(r) for r in self.client.sscan_iter(JOBS_INDEX, count=SCAN_COUNT))
                           if n != job and job_scope(n) == scope)
        for start in range(0, len(names), KEYS_PER_BATCH):
            batch = names[start : start + KEYS_PER_BATCH]
            with translated_errors():
                pipe = self.client.pipeline(transaction=False)
                for name in batch:
                    pipe.hget(JobKeys(name).job_hash, "config")
                    pipe.exists(JobKeys(name).cache_marker(generation))
                replies = pipe.execute()
            for name, raw, marked in zip(batch, replies[::2], replies[1::2], strict=True):
                if raw and marked and _stored_settings(raw) == wanted:
                    return name
        return None

    # ------------------------------------------------------------------ helpers
    def _copy_into(self, job: str, generation: str, source_pattern: str) -> Copied:
        keys = JobKeys(job)
        copied = Copied()
        for batch in self._scan(source_pattern):
            self._add(copied, copy_hashes(self.client, [(key, keys.cache_of_digest(generation, _digest(key)))
                                                        for key in batch]))
        return copied

    def _scan(self, pattern: str) -> Iterator[list[bytes]]:
        """The keys matching ``pattern``, in batches (SCAN: the controller's, never a worker's)."""
        batch: list[bytes] = []
        with translated_errors():
            for key in self.client.scan_iter(match=pattern, count=SCAN_COUNT):
                batch.append(key)
                if len(batch) >= KEYS_PER_BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _unlink_copies(self, keys: RetainedCacheKeys, *, keep: str | None) -> None:
        """Remove the copies of every version but ``keep`` (all of them with None)."""
        kept = keys.cache_prefix(keep).encode() if keep is not None else None
        for batch in self._scan(keys.every_cache_pattern):
            doomed = [key for key in batch if kept is None or not key.startswith(kept)]
            if doomed:
                with translated_errors():
                    self.client.unlink(*doomed)

    @staticmethod
    def _add(total: Copied, more: Copied) -> None:
        total.keys += more.keys
        total.entries += more.entries


def _retained_keys(job: str, config: JobConfig) -> RetainedCacheKeys | None:
    try:
        return RetainedCacheKeys(job_scope(job), cache_generation(config))
    except ValueError:  # a scope no hash tag can carry (only a CLI job name could hold one)
        return None


def _digest(key: bytes) -> str:
    """The directory digest that ends a cache key."""
    return key.rsplit(b":", 1)[1].decode()


def _json_form(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _stored_settings(raw: bytes | str) -> Any:
    try:
        return _json_form(cache_settings(JobConfig.from_dict(json.loads(raw))))
    except (ValueError, TypeError, KeyError, PermanentError):  # written by another version
        return None


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
