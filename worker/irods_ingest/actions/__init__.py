"""The Sync Actions Manager: start, stop, list, watch and retry jobs.

What the CLI and the operator do to jobs, and the only part of the engine the operator
uses (``JobActions`` per job; the module-level functions for the CLI's one-shot commands).
"""

from irods_ingest.actions.job import JobActions
from irods_ingest.actions.retry import retry_failed, retry_tasks
from irods_ingest.actions.runs import StartResult, jobs, prepare, start_job, stop_job, watch
from irods_ingest.jobstate import DEFAULT_RETENTION_SECONDS as DEFAULT_CACHE_RETENTION_SECONDS
from irods_ingest.jobstate import AdoptedCache, RetainedCache, RunStatus
from irods_ingest.store.acl import selects_database, url_with_credentials, without_credentials
from irods_ingest.store.connection import RedisClient, connect
from irods_ingest.store.urls import redacted

__all__ = [
    "DEFAULT_CACHE_RETENTION_SECONDS",
    "AdoptedCache",
    "JobActions",
    "RedisClient",
    "RetainedCache",
    "RunStatus",
    "StartResult",
    "connect",
    "jobs",
    "prepare",
    "redacted",
    "retry_failed",
    "retry_tasks",
    "selects_database",
    "start_job",
    "stop_job",
    "url_with_credentials",
    "watch",
    "without_credentials",
]
