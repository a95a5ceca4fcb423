"""The test kit of decide(): a fake clock, specs, runs and observed facts as plain values.

Shared by tests/operator/test_decide*.py: decide() reads no clock and does no I/O, so every
branch is driven from these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from irods_ingest.actions import RunStatus
from irods_ingest_operator.builders.scaling import ScaleRecommendation
from irods_ingest_operator.constants import MEMO_STARTED_ONCE, EventReason, EventType
from irods_ingest_operator.jobconfig import to_job_config
from irods_ingest_operator.reconcile import CredentialFacts, Observed, Policy, decide
from irods_ingest_operator.reconcile.intents import (
    ApplyDeployment,
    Decision,
    ForgetScaleHistory,
    Intent,
    PostEvent,
    RememberScaleHistory,
)
from irods_ingest_operator.refs import DeploymentState, JobRef, RedisEndpoint
from irods_ingest_operator.spec import SyncJobSpec, parse_spec

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
JOB = JobRef("science", "archive", "0b9c3a8e-1111-4222-8333-944455556666")
SHARED_REDIS = RedisEndpoint(url="redis://redis.ingest:6379/0")
POLICY = Policy(
    worker_image="irods-ingest-worker:0.1.0",
    worker_redis=SHARED_REDIS,
    scale_down_window=timedelta(seconds=120),
    credential_rotation=timedelta(days=7),
)
COUNTER_NAMES = (
    "files_discovered", "files_synced", "files_unchanged", "files_skipped", "files_excluded", "files_failed",
    "files_deleted", "collections_deleted", "bytes_discovered", "bytes_synced", "tasks_enqueued", "tasks_done",
    "tasks_failed", "failures_dropped",
)  # fmt: skip
OURS = DeploymentState(replicas=1, ready=1, controller_uid=JOB.uid)
IntentT = TypeVar("IntentT")


@dataclass
class FakeClock:
    """The pass's ``now``: decide() reads no clock, so time is whatever the test says."""

    now: datetime = T0

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def make_spec(**overrides: Any) -> SyncJobSpec:
    raw: dict[str, Any] = {
        "source": {"path": "/data", "volume": {"persistentVolumeClaim": {"claimName": "archive-pvc"}}},
        "destination": {"collection": "/tempZone/home/alice", "connectionSecret": {"name": "irods-conn"}},
        "workers": {"minReplicas": 0, "maxReplicas": 4, "concurrency": 2},
    }
    raw.update(overrides)
    return parse_spec(raw)


def make_run(state: str = "none", run_id: str | None = None, *, queued: int = 0, delayed: int = 0, in_flight: int = 0,
             error: str = "", started: float | None = None, ended: float | None = None, **counters: int) -> RunStatus:
    values = dict.fromkeys(COUNTER_NAMES, 0)
    values.update(counters)
    if run_id is None and state != "none":
        run_id = "r1"
    return RunStatus(job=JOB.key, run_id=run_id, state=state, started=started, ended=ended, counters=values,
                     queued=queued, delayed=delayed, in_flight=in_flight, error=error)


def credential(*, rotated: datetime = T0 - timedelta(days=1), digests: tuple[str, ...] = ("d1",),
               user_exists: bool = True, version: int = 1) -> CredentialFacts:
    return CredentialFacts(version=version, digests=digests, rotated=rotated.timestamp(),
                           tag=f"{version}.{int(rotated.timestamp())}", user_exists=user_exists)


def observe(spec: SyncJobSpec | None = None, run: RunStatus | None = None, **changes: Any) -> Observed:
    """What a pass would have observed: a valid, unsuspended job with no run, by default."""
    spec = spec or make_spec()
    config = to_job_config(spec, namespace=JOB.namespace, name=JOB.name).with_changes(handler_hash="h-new")
    values: dict[str, Any] = {
        "job": JOB, "generation": 2, "created": T0 - timedelta(hours=1), "spec": spec, "config": config,
        "run": run or make_run(), "memo": {}, "deployment": None, "credential": None,
    }
    values.update(changes)
    return Observed(**values)


def of_type(intents: tuple[Intent, ...], kind: type[IntentT]) -> list[IntentT]:
    return [intent for intent in intents if isinstance(intent, kind)]


def events(decision: Decision) -> list[tuple[EventReason, str, EventType]]:
    return [(e.reason, e.message, e.type) for e in of_type(decision.intents, PostEvent)]


def applied(decision: Decision) -> ApplyDeployment:
    [apply] = of_type(decision.report, ApplyDeployment)
    return apply


def condition(decision: Decision, kind: str) -> dict[str, Any]:
    return next(c for c in decision.status["conditions"] if c["type"] == kind)


@dataclass
class Job:
    """A job across passes: what the executor would have remembered, fed to the next decision."""

    clock: FakeClock = field(default_factory=FakeClock)
    history: tuple[ScaleRecommendation, ...] = ()
    replicas: int = 0

    def decide(self, run: RunStatus, spec: SyncJobSpec | None = None) -> int:
        deployment = DeploymentState(self.replicas, self.replicas, JOB.uid)
        decision = decide(observe(spec, run, deployment=deployment, scale_history=self.history, memo={MEMO_STARTED_ONCE: "r1"}),
                          POLICY, self.clock.now)
        for intent in decision.report:
            if isinstance(intent, RememberScaleHistory):
                self.history = intent.history
            elif isinstance(intent, ForgetScaleHistory):
                self.history = ()
        self.replicas = applied(decision).replicas
        return self.replicas
