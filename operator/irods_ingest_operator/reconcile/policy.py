"""The cluster admin's settings that a reconcile decision follows (pure data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from irods_ingest_operator.admission import WorkerPodPolicy
from irods_ingest_operator.builders.scaling import DEFAULT_SCALE_DOWN_WINDOW
from irods_ingest_operator.refs import RedisEndpoint

DEFAULT_WORKERS_NOT_READY_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class Policy:
    """The cluster admin's settings that a decision follows (pure data)."""

    worker_image: str
    worker_redis: RedisEndpoint  # shared credentials only (perJob: each job's own Secret)
    scale_down_window: timedelta = DEFAULT_SCALE_DOWN_WINDOW
    worker_service_account: str | None = None
    credential_rotation: timedelta | None = None  # perJob: None never rotates
    pod_policy: WorkerPodPolicy = field(default_factory=WorkerPodPolicy)
    # Workers wanted and none ready for this long: the job is Stalled (WorkersNotReady) with the cause.
    workers_not_ready_after: timedelta = DEFAULT_WORKERS_NOT_READY_AFTER
