"""Starting, stopping, listing and following runs (the Sync Actions Manager's core)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from irods_ingest.config import JobConfig, check
from irods_ingest.errors import ConfigError, ConfigProblem, HandlerError
from irods_ingest.handlers import check_handler_syntax, compile_handler, job_policy
from irods_ingest.jobstate import AdoptedCache, HandlerSources, RunState, RunStatus, handler_digest, list_jobs
from irods_ingest.store.connection import RedisClient


@dataclass(frozen=True)
class StartResult:
    started: bool
    run_id: str
    full_run: bool = False  # a retry that had to start a full run (see retry_failed)
    note: str = ""  # why, for the user
    # The change cache the job took over (a retained one of a deleted job of the same scope
    # and settings, or a live one's): files it lists as synced are not synced again.
    adopted: AdoptedCache | None = None


def prepare(
    config: JobConfig,
    handler_source: str | None,
    handler_sources: HandlerSources,
    *,
    run_handler: bool = True,
    handler_origin: str = "event handler",
) -> JobConfig:
    """Validate everything before anything runs; store the handler; return the final config.

    ``run_handler`` loads the handler and applies its job-wide answers (operation(),
    delete_mode(), character_map()) here, so that a mistake fails ``start`` at once: right
    for the CLI, whose user owns the handler. The operator passes False and never runs
    tenant code: it checks the module's syntax only, and the workers apply the handler's
    answers (a failure there fails the run, visibly).
    """
    if handler_source is not None:
        digest = handler_digest(handler_source.encode())
        try:
            if run_handler:
                config = job_policy(config, compile_handler(handler_source, digest))
            else:
                check_handler_syntax(handler_source, handler_origin)
        except HandlerError as exc:
            raise ConfigError([ConfigProblem("event_handler", str(exc), "fix the handler module")]) from exc
        config = config.with_changes(handler_hash=handler_sources.save(handler_source))
    return check(config)


def start_job(client: RedisClient, config: JobConfig, handler_source: str | None = None, *, force: bool = False) -> StartResult:
    final = prepare(config, handler_source, HandlerSources(client, config.job_name))
    # Drops a stale change cache too, and adopts a retained one when the job has none.
    opened = RunState(client, config.job_name).open_run(final, force=force)
    return StartResult(opened.started, opened.run_id, adopted=opened.adopted)


def stop_job(client: RedisClient, job: str) -> bool:
    return RunState(client, job).stop()


def jobs(client: RedisClient) -> list[RunStatus]:
    return [RunState(client, name).status() for name in list_jobs(client)]


def watch(client: RedisClient, job: str, *, interval: float = 0.5, run_id: str | None = None) -> Iterator[RunStatus]:
    """Yield the job's status every ``interval`` until its run (``run_id`` or current) ends."""
    runs = RunState(client, job)
    while True:
        status = runs.status()
        yield status
        if run_id is not None and status.run_id != run_id:
            return
        if not status.active:
            return
        time.sleep(interval)
