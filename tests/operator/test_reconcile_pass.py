"""One reconcile pass end to end on a real Redis, with a recording stand-in for the Kubernetes API.

What decide() cannot show alone: the pass performs changes, then decides again from what they
changed (a run started, a credential rotated, a Secret found to be another's), and the
operator's memory is kept per job and pruned on deletion.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from irods_ingest.actions import JobActions, connect
from irods_ingest.errors import PermanentError
from irods_ingest_operator.builders import merge_patch_for
from irods_ingest_operator.constants import (
    APPLIED_DIGEST_ANNOTATION,
    CREDENTIAL_VERSION_ANNOTATION,
    MEMO_STARTED_ONCE,
)
from irods_ingest_operator.kube import KubeAdapter, NotFound, NotOurs
from irods_ingest_operator.reconcile import OperatorContext, OperatorMemory, Policy, cleanup, reconcile
from irods_ingest_operator.refs import DeploymentState, JobRef, PodFacts, RedisEndpoint
from testsupport.call_counts import RedisCommandCounter

pytestmark = [pytest.mark.redis]

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
UID = "0b9c3a8e-1111-4222-8333-944455556666"
HANDLER = "class event_handler:\n    pass\n"


class RecordingKube(KubeAdapter):
    """The kube adapter's interface, in memory: what was applied, written, scaled and posted."""

    def __init__(self) -> None:
        self.deployments: dict[str, Mapping[str, Any]] = {}
        self.secrets: dict[str, Mapping[str, Any]] = {}
        self.config_maps: dict[tuple[str, str], dict[str, str]] = {}
        self.events: list[Mapping[str, Any]] = []
        self.foreign_secrets: set[str] = set()
        self.owned_config_maps: dict[str, Mapping[str, Any]] = {}
        self.foreign_config_maps: set[str] = set()
        self.config_maps_forbidden = False
        self.config_map_writes = 0
        self.applies = 0

    def apply_deployment(self, manifest: Mapping[str, Any]) -> None:
        self.applies += 1
        self.deployments[manifest["metadata"]["name"]] = manifest

    def write_owned_secret(self, manifest: Mapping[str, Any]) -> None:
        name = manifest["metadata"]["name"]
        if name in self.foreign_secrets:
            raise NotOurs(f"Secret {manifest['metadata']['namespace']}/{name} already exists and is not ours")
        self.secrets[name] = manifest

    def write_owned_config_map(self, manifest: Mapping[str, Any]) -> None:
        name = manifest["metadata"]["name"]
        self.config_map_writes += 1
        if name in self.foreign_config_maps:
            raise NotOurs(f"ConfigMap {manifest['metadata']['namespace']}/{name} already exists and is not ours")
        if self.config_maps_forbidden:
            raise PermanentError(f"writing ConfigMap science/{name}: HTTP 403 Forbidden")
        self.owned_config_maps[name] = manifest

    def worker_pods(self, namespace: str, selector: Mapping[str, str]) -> tuple[PodFacts, ...]:
        return ()

    def deployment_state(self, namespace: str, name: str) -> DeploymentState | None:
        manifest = self.deployments.get(name)
        if manifest is None:
            return None
        owners = manifest["metadata"].get("ownerReferences") or [{}]
        replicas = int(manifest["spec"]["replicas"])
        applied = (manifest["metadata"].get("annotations") or {}).get(APPLIED_DIGEST_ANNOTATION, "")
        return DeploymentState(replicas=replicas, ready=replicas, controller_uid=owners[0].get("uid"), applied=applied)

    def scale_deployment_if_exists(self, namespace: str, name: str, replicas: int) -> None:
        if name in self.deployments:
            manifest = dict(self.deployments[name])
            manifest["spec"] = {**manifest["spec"], "replicas": replicas}
            self.deployments[name] = manifest

    def read_config_map_key(self, namespace: str, name: str, key: str) -> str:
        data = self.config_maps.get((namespace, name))
        if data is None or key not in data:
            raise NotFound(f"ConfigMap {namespace}/{name} has no key {key!r}")
        return data[key]

    def post_event(self, event: Mapping[str, Any]) -> None:
        self.events.append(event)

    def reasons(self) -> list[str]:
        return [event["reason"] for event in self.events]


@pytest.fixture
def kube() -> RecordingKube:
    return RecordingKube()


def context(redis_url: str, kube: RecordingKube, *, per_job: bool = False) -> OperatorContext:
    policy = Policy(worker_image="irods-ingest-worker:0.1.0", worker_redis=RedisEndpoint(url=redis_url),
                    credential_rotation=timedelta(days=7))
    return OperatorContext(redis=connect(redis_url), kube=kube, policy=policy, memory=OperatorMemory(),
                           per_job_redis_url=redis_url if per_job else None)


def body(name: str = "archive", *, status: Mapping[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "science", "uid": UID, "generation": 1,
                     "creationTimestamp": "2024-05-01T11:00:00Z"},
        "spec": {
            "source": {"path": "/data"},
            "destination": {"collection": "/tempZone/home/alice", "connectionSecret": {"name": "irods-conn"}},
            **spec,
        },
        "status": dict(status or {}),
    }


def test_a_pass_that_starts_a_run_reports_and_sizes_for_that_run(redis_url: str, kube: RecordingKube) -> None:
    ctx = context(redis_url, kube)
    outcome = reconcile(ctx, body(), T0)
    job = JobActions(ctx.redis, "science/archive")
    assert outcome.started_run == job.status().run_id is not None
    assert job.memo()[MEMO_STARTED_ONCE] == outcome.started_run
    # decided again after the start: the new run's status and a worker for it, in the same pass
    assert outcome.status["run"]["id"] == outcome.started_run
    assert outcome.desired_replicas == 1 and kube.deployments["archive-worker"]["spec"]["replicas"] == 1
    assert [c["status"] for c in outcome.status["conditions"] if c["type"] == "Reconciling"] == ["True"]
    assert kube.reasons() == ["RunStarted", "ScaledWorkers"]
    assert ctx.memory.scale_history("science/archive")  # the window remembers the run's recommendation

    again = reconcile(ctx, body(status=outcome.status), T0 + timedelta(seconds=5))
    assert again.started_run is None and again.status["run"]["id"] == outcome.started_run
    assert kube.reasons() == ["RunStarted", "ScaledWorkers"]  # no second run, no Event repeated


def test_a_handler_edit_reaches_the_active_run(redis_url: str, kube: RecordingKube) -> None:
    ctx = context(redis_url, kube)
    kube.config_maps["science", "handler"] = {"handler.py": HANDLER}
    job_body = body(handler={"configMapRef": {"name": "handler"}})
    job = JobActions(ctx.redis, "science/archive")
    first = reconcile(ctx, job_body, T0)
    before = job.stored_config()
    kube.config_maps["science", "handler"] = {"handler.py": HANDLER + "# v2\n"}
    reconcile(ctx, job_body, T0 + timedelta(seconds=5))
    after = job.stored_config()
    assert before is not None and after is not None and before.handler_hash != after.handler_hash
    assert kube.reasons().count("HandlerUpdated") == 1
    assert job.status().run_id == first.started_run  # the run goes on: handed the handler, not restarted


def test_the_first_credential_is_handed_over_and_versions_the_pods(redis_url: str, kube: RecordingKube) -> None:
    ctx = context(redis_url, kube, per_job=True)
    reconcile(ctx, body(), T0)
    secret = kube.secrets["archive-worker-redis"]
    version = secret["metadata"]["annotations"][CREDENTIAL_VERSION_ANNOTATION]
    template = kube.deployments["archive-worker"]["spec"]["template"]
    assert template["metadata"]["annotations"][CREDENTIAL_VERSION_ANNOTATION] == version  # decided again after it
    assert base64.b64decode(secret["data"]["url"]).decode().startswith("redis://ii-job%3Ascience%2Farchive:")
    assert "CredentialRotated" not in kube.reasons()  # the first one is no rotation
    # Due a week later: rotated, announced, the pods roll onto the new version.
    reconcile(ctx, body(), T0 + timedelta(days=7))
    rotated = kube.secrets["archive-worker-redis"]["metadata"]["annotations"][CREDENTIAL_VERSION_ANNOTATION]
    assert rotated != version and "CredentialRotated" in kube.reasons()
    template = kube.deployments["archive-worker"]["spec"]["template"]
    assert template["metadata"]["annotations"][CREDENTIAL_VERSION_ANNOTATION] == rotated


def test_a_credential_secret_of_another_stalls_the_job_before_any_run(redis_url: str, kube: RecordingKube) -> None:
    ctx = context(redis_url, kube, per_job=True)
    kube.foreign_secrets.add("archive-worker-redis")
    outcome = reconcile(ctx, body(), T0)
    stalled = next(c for c in outcome.status["conditions"] if c["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "NameConflict")
    assert JobActions(ctx.redis, "science/archive").status().state == "none"  # nothing ran
    assert "archive-worker" not in kube.deployments and kube.reasons() == ["InvalidSpec"]
    reconcile(ctx, body(status=outcome.status), T0 + timedelta(seconds=5))
    assert kube.reasons() == ["InvalidSpec"]  # found again by writing, but no news


def test_memory_is_kept_per_job_and_pruned_on_deletion(redis_url: str, kube: RecordingKube) -> None:
    ctx = context(redis_url, kube)
    reconcile(ctx, body("one"), T0)
    reconcile(ctx, body("two"), T0)
    with ctx.memory.lock("science/one"):
        pass
    assert ctx.memory.jobs() == {"science/one", "science/two"}
    assert cleanup(ctx, JobRef("science", "one", UID)) > 0
    assert ctx.memory.jobs() == {"science/two"}
    assert JobActions(ctx.redis, "science/one").status().state == "none"


def test_a_lock_per_job() -> None:
    memory = OperatorMemory()
    assert memory.lock("a/x") is memory.lock("a/x") and memory.lock("a/x") is not memory.lock("a/y")
    memory.forget("a/x")
    assert memory.jobs() == {"a/y"}


def test_a_retry_run_starts_with_the_handler_the_configmap_holds_now(redis_url: str, kube: RecordingKube) -> None:
    """Finding 7, proved at the pass: the run that retryFailed starts already points at the
    handler read in that same pass (before: the last run's, until the next pass handed over)."""
    ctx = context(redis_url, kube)
    kube.config_maps["science", "handler"] = {"handler.py": HANDLER}
    job = JobActions(ctx.redis, "science/archive")
    first = reconcile(ctx, body(handler={"configMapRef": {"name": "handler"}}), T0)
    job.stop("test: the first run ends")  # (with no failure record a retry has nothing to redo: fake one)
    ctx.redis.lpush("ii:{science/archive}:failures", '{"path": "/data/a", "reason": "x", "kind": "files"}')
    old_hash = job.stored_config().handler_hash  # type: ignore[union-attr]
    kube.config_maps["science", "handler"] = {"handler.py": HANDLER + "# fixed\n"}
    retry = reconcile(ctx, body(handler={"configMapRef": {"name": "handler"}}, retryFailed="now"), T0 + timedelta(seconds=5))
    assert retry.started_run is not None and retry.started_run != first.started_run
    stored = job.stored_config()
    assert stored is not None and stored.handler_hash != old_hash, "the retry run started with the old handler"
    assert "HandlerUpdated" not in kube.reasons()  # nothing to hand over later: it started with it


def test_suspend_keeps_the_run_and_resume_continues_it(redis_url: str, kube: RecordingKube) -> None:
    ctx = context(redis_url, kube)
    first = reconcile(ctx, body(), T0)
    runs = JobActions(ctx.redis, "science/archive")
    queued = runs.status().queued
    paused = reconcile(ctx, body(status=first.status, suspend=True), T0 + timedelta(seconds=5))
    assert runs.status().run_id == first.started_run and runs.status().state == "running"
    assert runs.status().queued == queued  # its tasks wait
    assert paused.desired_replicas == 0 and paused.status["phase"] == "Suspended"
    again = reconcile(ctx, body(status=paused.status, suspend=True), T0 + timedelta(seconds=10))
    resumed = reconcile(ctx, body(status=again.status), T0 + timedelta(seconds=15))
    assert resumed.started_run is None and runs.status().run_id == first.started_run
    assert resumed.desired_replicas == 1 and resumed.status["phase"] == "Running"
    assert kube.reasons().count("Suspended") == 1 and kube.reasons().count("Resumed") == 1


def test_an_idle_pass_writes_nothing(redis_url: str, kube: RecordingKube) -> None:
    """Issue 18: once a job is settled, a pass writes nothing: no Deployment apply, an empty status
    patch, no Event, and no Redis write (the handler is stored once, not at each pass)."""
    ctx = context(redis_url, kube, per_job=True)
    kube.config_maps["science", "handler"] = {"handler.py": HANDLER}
    job_body = body(suspend=True, schedule="0 0 1 1 *", handler={"configMapRef": {"name": "handler"}})
    first = reconcile(ctx, job_body, T0)
    settled = reconcile(ctx, body(status=first.status, **job_body["spec"]), T0 + timedelta(seconds=5))
    applies, events = kube.applies, len(kube.events)
    counter = RedisCommandCounter(redis.Redis.from_url(redis_url))
    counter.mark()
    idle = reconcile(ctx, body(status=settled.status, **job_body["spec"]), T0 + timedelta(seconds=10))
    delta = counter.delta()
    assert merge_patch_for(settled.status, dict(idle.status)) == {}
    assert (kube.applies, len(kube.events)) == (applies, events)
    assert counter.writes(delta) == {}, delta
    assert delta.get("hgetall"), "the pass read the job"


def test_racing_passes_on_a_new_invalid_job_post_one_event(redis_url: str, kube: RecordingKube) -> None:
    """Finding 5: the create handler and the first timer tick both see the body without status."""
    ctx = context(redis_url, kube)
    invalid = body(operation="Put", deleteMode="Trash")
    for _ in range(3):
        reconcile(ctx, invalid, T0)  # the same stale body: no status written in between
    assert kube.reasons() == ["InvalidSpec"]


def test_the_failures_configmap_is_written_once_per_change_and_never_adopted(redis_url: str,
                                                                             kube: RecordingKube) -> None:
    ctx = context(redis_url, kube)
    first = reconcile(ctx, body(), T0)
    writes = kube.config_map_writes
    assert kube.owned_config_maps["archive-failures"]["data"]["state"] == "running" and writes == 1
    reconcile(ctx, body(status=first.status), T0 + timedelta(seconds=5))
    assert kube.config_map_writes == writes  # nothing changed: not written again
    kube.foreign_config_maps.add("other-failures")
    for second in range(2):
        reconcile(ctx, body("other"), T0 + timedelta(seconds=second))
    assert "other-failures" not in kube.owned_config_maps
    assert kube.reasons().count("NameConflict") == 1


def test_a_failures_configmap_that_cannot_be_written_never_stops_the_status(redis_url: str,
                                                                          kube: RecordingKube) -> None:
    """An operator upgraded without its chart's RBAC (no configmaps create): said once, status written."""
    ctx = context(redis_url, kube)
    kube.config_maps_forbidden = True
    first = reconcile(ctx, body(), T0)
    again = reconcile(ctx, body(status=first.status), T0 + timedelta(seconds=5))
    assert first.status["phase"] == again.status["phase"] == "Running"
    assert kube.reasons().count("FailuresNotPublished") == 1
