"""The Sync Job State Manager: everything a job keeps in Redis besides its task queue.

| class | module | what |
|---|---|---|
| :class:`StoredJob` | ``stored_job`` | the job's config, the controller's memo (``op:*``), removing the job |
| :class:`HandlerSources` | ``handler_sources`` | event-handler source by content hash |
| :class:`RunState` | ``runs`` | runs: start / stop (Lua: ``lua.START_RUN``, ``lua.STOP_RUN``), status, counters, history |
| :class:`FailureLog` | ``failure_log`` | the run's failure records (and how one is fitted for storage) |
| :class:`ChangeCache` | ``change_cache`` | per directory, what each synced entry looked like |
| :class:`ListingBook` | ``listing_book`` | S3: what the pages of a multi-page prefix saw |
| :class:`RetainedCaches` | ``retained_caches`` | change caches kept after their job's deletion, adopted by the next job of its scope and settings |

Each is bound to one job (``Class(client, job)``), returns plain typed data and raises the
engine's error taxonomy only (Redis errors translated by
:func:`irods_ingest.store.connection.translated_errors`). The task queue, whose ack changes
the counters, failure records and caches atomically, is :mod:`irods_ingest.queue`; the key
schema is :mod:`irods_ingest.store.keys`.
"""

from irods_ingest.jobstate.change_cache import ChangeCache
from irods_ingest.jobstate.failure_log import FailureLog
from irods_ingest.jobstate.handler_sources import HandlerSources, handler_digest
from irods_ingest.jobstate.listing_book import ListingBook
from irods_ingest.jobstate.retained_caches import (
    DEFAULT_RETENTION_SECONDS,
    AdoptedCache,
    RetainedCache,
    RetainedCaches,
)
from irods_ingest.jobstate.runs import ACTIVE_STATES, COUNTERS, OpenedRun, RunState, RunStatus
from irods_ingest.jobstate.stored_job import StoredJob, list_jobs

__all__ = [
    "ACTIVE_STATES",
    "COUNTERS",
    "DEFAULT_RETENTION_SECONDS",
    "AdoptedCache",
    "ChangeCache",
    "FailureLog",
    "HandlerSources",
    "ListingBook",
    "OpenedRun",
    "RetainedCache",
    "RetainedCaches",
    "RunState",
    "RunStatus",
    "StoredJob",
    "handler_digest",
    "list_jobs",
]
