"""What every reconcile pass works with: the adapters, the admin's policy, the operator's memory."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from irods_ingest.actions import DEFAULT_CACHE_RETENTION_SECONDS, RedisClient
from irods_ingest_operator.admission import AdmissionPolicy
from irods_ingest_operator.builders.scaling import ScaleRecommendation
from irods_ingest_operator.kube import KubeAdapter
from irods_ingest_operator.reconcile.policy import Policy


class OperatorMemory:
    """What the running operator keeps between passes, in this process only.

    - the scale-down stabilisation history of each job (the window's memory). A restarted
      operator starts afresh, which :func:`~irods_ingest_operator.builders.scaling.stabilize_replicas`
      treats conservatively (the current replica count holds for a window);
    - a lock per job: the timer and the change handlers of one SyncJob may fire together, and
      their passes must not interleave;
    - the cause of the last Event posted per topic (a refusal, worker trouble, a pending edit):
      an Event is posted once per cause. Racing passes (kopf's create handler and its first
      timer tick both start before the first status is written) each read a body whose status
      does not show the cause yet, so the status alone cannot tell them it was posted; after a
      restart, the status does (see :func:`~irods_ingest_operator.reconcile.once.post_once`).

    Both are pruned when the SyncJob is deleted (:meth:`forget`). Everything that must survive
    a restart lives in Redis instead (the memo, see constants.MEMO_*).
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._scale_history: dict[str, tuple[ScaleRecommendation, ...]] = {}
        self._posted: dict[str, dict[str, str]] = {}

    def lock(self, job: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(job, threading.Lock())

    def scale_history(self, job: str) -> tuple[ScaleRecommendation, ...]:
        return self._scale_history.get(job, ())

    def remember_scale_history(self, job: str, history: tuple[ScaleRecommendation, ...]) -> None:
        self._scale_history[job] = history

    def forget_scale_history(self, job: str) -> None:
        self._scale_history.pop(job, None)

    def posted(self, job: str) -> dict[str, str]:
        """The cause of the last Event posted per topic ("" once the cause went away)."""
        with self._guard:
            return dict(self._posted.get(job, {}))

    def remember_posted(self, job: str, topic: str, cause: str) -> None:
        with self._guard:
            self._posted.setdefault(job, {})[topic] = cause

    def forget(self, job: str) -> None:
        """The SyncJob is gone: drop everything kept for it."""
        with self._guard:
            self._locks.pop(job, None)
            self._scale_history.pop(job, None)
            self._posted.pop(job, None)

    def jobs(self) -> set[str]:
        """The jobs anything is kept for (for tests and diagnostics)."""
        with self._guard:
            return set(self._locks) | set(self._scale_history) | set(self._posted)


@dataclass(frozen=True)
class OperatorContext:
    """Made once, in main: the adapters, the admin's policy and the operator's memory."""

    redis: RedisClient
    kube: KubeAdapter
    policy: Policy
    memory: OperatorMemory = field(default_factory=OperatorMemory)
    # perJob: each job's workers get their own Redis user (see irods_ingest.store.acl) on this
    # URL (without credentials); None: every job's workers use policy.worker_redis.
    per_job_redis_url: str | None = None
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    max_failure_records: int = 1000
    # How long a deleted job's change cache is kept for a job of the same source, destination
    # and settings to adopt (a GitOps rename re-creates the job): seconds, 0 = not at all.
    cache_retention_seconds: float = DEFAULT_CACHE_RETENTION_SECONDS
