"""One job's engine components bound to it, for tests that drive the queue and the job state
by hand (as a worker and a controller would)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from irods_ingest.jobstate import ChangeCache, FailureLog, HandlerSources, ListingBook, RunState, StoredJob
from irods_ingest.queue import TaskQueue
from irods_ingest.store.connection import RedisClient
from irods_ingest.store.keys import JobKeys


@dataclass(frozen=True)
class JobParts:
    client: RedisClient
    keys: JobKeys
    stored: StoredJob
    handler_sources: HandlerSources
    runs: RunState
    failures: FailureLog
    queue: TaskQueue
    cache: ChangeCache
    book: ListingBook

    @classmethod
    def of(cls, client: RedisClient, job: str, *, redact: Callable[[str], str] | None = None) -> JobParts:
        return cls(
            client=client,
            keys=JobKeys(job),
            stored=StoredJob(client, job),
            handler_sources=HandlerSources(client, job),
            runs=RunState(client, job),
            failures=FailureLog(client, job),
            queue=TaskQueue(client, job, redact=redact),
            cache=ChangeCache(client, job),
            book=ListingBook(client, job),
        )
