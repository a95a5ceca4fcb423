"""A job as stored: its config, the controller's notes about it, and its removal.

The config lives in the job's control hash (``iic:{job}:job``, see
:mod:`irods_ingest.store.keys`), which only the controller (operator or CLI) writes; a
worker reads it, with the current run id, before every task.
"""

from __future__ import annotations

import json

from irods_ingest.config import JobConfig
from irods_ingest.store.connection import RedisClient, reply_text, translated_errors
from irods_ingest.store.keys import JOBS_INDEX, JobKeys

MEMO_PREFIX = "op:"


def list_jobs(client: RedisClient) -> list[str]:
    """The names of every job that ever started a run, sorted."""
    with translated_errors():
        return sorted(reply_text(name) for name in client.smembers(JOBS_INDEX))


class StoredJob:
    """One job's stored config and the controller's memo."""

    def __init__(self, client: RedisClient, job: str) -> None:
        self.client = client
        self.job = job
        self.keys = JobKeys(job)
        self._config_raw: bytes | str | None = None  # run_and_config's parse cache
        self._config: JobConfig | None = None

    def config(self) -> JobConfig | None:
        """The stored config (None: the job never started)."""
        with translated_errors():
            raw = self.client.hget(self.keys.job_hash, "config")
        return JobConfig.from_dict(json.loads(raw)) if raw else None

    def save_config(self, config: JobConfig) -> None:
        """Replace the stored config (the operator uses it to hand a new handler to a running run)."""
        with translated_errors():
            self.client.hset(self.keys.job_hash, "config", json.dumps(config.to_dict()))

    def run_and_config(self) -> tuple[str | None, JobConfig | None]:
        """The current run id and the stored config in one round trip (a worker reads both
        before every task). The config is parsed again only when its JSON changed, so the
        same object comes back while it is unchanged."""
        with translated_errors():
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(self.keys.run, "id")
            pipe.hget(self.keys.job_hash, "config")
            run_id, raw = pipe.execute()
        if raw is None:
            return reply_text(run_id) or None, None
        if raw != self._config_raw:
            self._config = JobConfig.from_dict(json.loads(raw))
            self._config_raw = raw
        return reply_text(run_id) or None, self._config

    @property
    def last_read_config(self) -> JobConfig | None:
        """The config as :meth:`run_and_config` last read it (no round trip; None before)."""
        return self._config

    def memo(self) -> dict[str, str]:
        """The controller's own notes about this job (fields prefixed ``op:`` in the job hash)."""
        with translated_errors():
            raw = self.client.hgetall(self.keys.job_hash)
        return {reply_text(k): reply_text(v) for k, v in raw.items() if reply_text(k).startswith(MEMO_PREFIX)}

    def set_memo(self, name: str, value: str) -> None:
        if not name.startswith(MEMO_PREFIX):
            raise ValueError(f"memo fields start with {MEMO_PREFIX!r}")
        with translated_errors():
            self.client.hset(self.keys.job_hash, name, value)

    def delete(self) -> int:
        """Remove every key of the job (stop its run first). Returns the number of keys deleted."""
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
