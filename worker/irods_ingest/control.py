"""Job control (the Sync Actions Manager): start, stop, list, watch — used by CLI and operator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from irods_ingest.config import JobConfig, cache_generation, check
from irods_ingest.errors import ConfigError, ConfigProblem, HandlerError
from irods_ingest.handlers import compile_handler, to_delete_mode
from irods_ingest.store.connection import RedisClient
from irods_ingest.store.jobstore import JobStore, RunStatus, list_jobs


@dataclass(frozen=True)
class StartResult:
    started: bool
    run_id: str


def prepare(config: JobConfig, handler_source: str | None, store: JobStore) -> JobConfig:
    """Validate everything before anything runs; store the handler; return the final config."""
    if handler_source is not None:
        import hashlib

        digest = hashlib.sha256(handler_source.encode()).hexdigest()[:32]
        try:
            handler = compile_handler(handler_source, digest)
            charmap = handler.character_map()
            if charmap is not None:
                for key, value in charmap.items():
                    if (isinstance(key, str) and len(key) > 1) or (isinstance(value, str) and len(value) > 1):
                        raise HandlerError("character_map() must map single characters to single characters")
            operation = handler.operation(None, {"job_name": config.job_name}, config.operation)
            delete_mode = (
                to_delete_mode(handler.cls.delete_mode({"job_name": config.job_name}), "delete_mode()")  # type: ignore[union-attr]
                if handler.has("delete_mode")
                else config.delete_mode
            )
        except HandlerError as exc:
            raise ConfigError([ConfigProblem("event_handler", str(exc), "fix the handler module")]) from exc
        config = config.with_changes(operation=operation, delete_mode=delete_mode, handler_hash=store.save_handler(handler_source))
    return check(config)


def start_job(client: RedisClient, config: JobConfig, handler_source: str | None = None, *, force: bool = False) -> StartResult:
    store = JobStore(client, config.job_name)
    final = prepare(config, handler_source, store)
    started, run_id = store.start_run(final, force=force)
    if started:
        # Settings that change what "synced" means make the old change cache meaningless.
        store.drop_other_cache_generations(cache_generation(final))
    return StartResult(started, run_id)


def stop_job(client: RedisClient, job: str) -> bool:
    return JobStore(client, job).stop_run()


def jobs(client: RedisClient) -> list[RunStatus]:
    return [JobStore(client, name).status() for name in list_jobs(client)]


def watch(client: RedisClient, job: str, *, interval: float = 0.5, run_id: str | None = None) -> Iterator[RunStatus]:
    """Yield the job's status every ``interval`` until its run (``run_id`` or current) ends."""
    store = JobStore(client, job)
    while True:
        status = store.status()
        yield status
        if run_id is not None and status.run_id != run_id:
            return
        if not status.active:
            return
        time.sleep(interval)
