"""One job, as a controller sees it: its state, and every action that changes it.

The operator reaches the engine through this class only (import-linter holds it to that):
it reads a job's run status, history, failure records and its own notes, prepares and
starts runs, stops them, retries what failed, hands a new handler to an active run, keeps
the workers' Redis credential, and removes the job. How any of that lives in Redis is the
business of the layers below.
"""

from __future__ import annotations

from typing import Any

from irods_ingest.actions.retry import retry_failed
from irods_ingest.actions.runs import StartResult, prepare
from irods_ingest.config import JobConfig
from irods_ingest.failures import FailureRecord
from irods_ingest.jobstate import (
    DEFAULT_RETENTION_SECONDS,
    FailureLog,
    HandlerSources,
    RetainedCache,
    RetainedCaches,
    RunState,
    RunStatus,
    StoredJob,
)
from irods_ingest.store.acl import JobCredentials
from irods_ingest.store.connection import RedisClient, translated_errors
from irods_ingest.store.keys import HISTORY_LIMIT, JobKeys


class JobActions:
    def __init__(self, client: RedisClient, job: str) -> None:
        self.job = job
        self._client = client
        self._stored = StoredJob(client, job)
        self._runs = RunState(client, job)

    # ------------------------------------------------------------------ state
    def status(self) -> RunStatus:
        return self._runs.status()

    def history(self, limit: int = HISTORY_LIMIT) -> list[dict[str, Any]]:
        """Summaries of finished runs, newest first."""
        return self._runs.history(limit)

    def failures(self, limit: int | None = None) -> list[FailureRecord]:
        """The current (or last) run's failure records, newest first."""
        return FailureLog(self._client, self.job).records(limit)

    def failure_count(self) -> int:
        """How many failure records the current (or last) run holds (one round trip)."""
        with translated_errors():
            return int(self._client.llen(JobKeys(self.job).failures))

    def stored_config(self) -> JobConfig | None:
        return self._stored.config()

    def memo(self) -> dict[str, str]:
        """The controller's own notes about this job (``op:*`` fields)."""
        return self._stored.memo()

    def remember(self, name: str, value: str) -> None:
        self._stored.set_memo(name, value)

    # ------------------------------------------------------------------ runs
    def prepare(
        self,
        config: JobConfig,
        handler_source: str | None,
        *,
        run_handler: bool = True,
        handler_origin: str = "event handler",
    ) -> JobConfig:
        """Validate ``config`` and store the handler (see :func:`irods_ingest.actions.runs.prepare`)."""
        sources = HandlerSources(self._client, self.job)
        return prepare(config, handler_source, sources, run_handler=run_handler, handler_origin=handler_origin)

    def start(self, config: JobConfig, *, force: bool = False) -> StartResult:
        """Start a run of a prepared config; with an active run and not ``force``, nothing changes.
        A job starting with settings it has no change cache of adopts a retained one of its
        scope and settings (``StartResult.adopted``, and the run status's ``adopted``)."""
        opened = self._runs.open_run(config, force=force)
        return StartResult(opened.started, opened.run_id, adopted=opened.adopted)

    def stop(self, reason: str = "stopped by request") -> bool:
        return self._runs.stop(reason)

    def retry_failed(self, *, force: bool = False, config: JobConfig | None = None) -> StartResult:
        """Start a run that redoes the last run's failures, with ``config`` (a prepared one: a
        controller passes the config it prepared now, so the run starts with the handler the
        user holds now) or, without one, the stored config."""
        return retry_failed(self._client, self.job, force=force, config=config)

    def use_handler(self, handler_hash: str | None) -> bool:
        """Point the active run at another (already stored) handler: its workers look handlers
        up by hash and switch within a task. Returns whether anything changed."""
        current = self._stored.config()
        if current is None or current.handler_hash == handler_hash:
            return False
        self._stored.save_config(current.with_changes(handler_hash=handler_hash))
        return True

    # ------------------------------------------------------------------ the workers' credential
    def worker_credentials(self, *, select: bool = False) -> JobCredentials:
        """The job's own Redis user for its workers (``select``: they use a database other than 0)."""
        return JobCredentials(self._client, self.job, select=select)

    # ------------------------------------------------------------------ removal
    def delete(self, reason: str = "the job was deleted", *, cache_retention: float = DEFAULT_RETENTION_SECONDS) -> int:
        """Stop the run, remove the workers' Redis user, keep the change cache for
        ``cache_retention`` seconds (0: not at all; see :meth:`retain_cache`), then remove every
        key of the job. Returns the number of keys deleted. Safe to repeat after a failure:
        the cache is copied again until the job's keys are gone."""
        self._runs.stop(reason)
        self.worker_credentials().delete()  # its workers write nothing more (the stop fenced their acks, too)
        self.retain_cache(cache_retention)
        return self._stored.delete()

    def retain_cache(self, seconds: float = DEFAULT_RETENTION_SECONDS) -> RetainedCache | None:
        """Keep a copy of the job's change cache (of its stored settings) for ``seconds``, for the
        next job of the same scope and settings to adopt; None when there is none to keep."""
        config = self._stored.config()
        if config is None or seconds <= 0:
            return None
        return RetainedCaches(self._client).retain(self.job, config, seconds=seconds)
