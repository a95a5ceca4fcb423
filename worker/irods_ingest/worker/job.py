"""One job as a worker thread reaches it: the engine's components, bound to the job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from irods_ingest.config import DEFAULT_MAX_FAILURE_RECORDS
from irods_ingest.jobstate import ChangeCache, HandlerSources, ListingBook, RunState, StoredJob
from irods_ingest.queue import TaskQueue
from irods_ingest.store.connection import RedisClient


@dataclass(frozen=True)
class WorkerJob:
    """One job as a worker thread reaches it: the engine's components, bound to the job."""

    name: str
    stored: StoredJob
    handler_sources: HandlerSources
    runs: RunState
    queue: TaskQueue
    cache: ChangeCache
    book: ListingBook

    @classmethod
    def open(cls, client: RedisClient, name: str, redact: Callable[[str], str]) -> WorkerJob:
        cache = ChangeCache(client, name)
        return cls(
            name=name,
            stored=StoredJob(client, name),
            handler_sources=HandlerSources(client, name),
            runs=RunState(client, name),
            queue=TaskQueue(client, name, redact=redact),
            cache=cache,
            book=ListingBook(client, name),
        )

    @property
    def max_failure_records(self) -> int:
        """The job's failure-record cap, from the config last read (before every task)."""
        config = self.stored.last_read_config
        return config.max_failure_records if config is not None else DEFAULT_MAX_FAILURE_RECORDS
