"""Reconciling one SyncJob: validate, mirror the handler, decide runs, scale workers, report.

One idempotent pass, run on create/update/resume and on a short timer. Every decision
reads the run state from Redis (the source of truth for runs), so a restarted operator
resumes without starting a duplicate run. What the operator must remember between passes
(the last ``runNow`` token acted on, the last schedule slot fired, the last run whose end
was announced) lives in the job's Redis hash too, never in the SyncJob's spec.

Run semantics (documented for users in docs/operator.md):
- no schedule: one run, when the job is created (or first becomes valid and unsuspended);
- schedule: a run at each cron slot; a slot that arrives while a run is active is skipped
  (like a CronJob with ``concurrencyPolicy: Forbid``); ``nextSyncTime`` shows the next slot;
- a new ``runNow`` value starts a run at once, replacing an active one;
- ``suspend: true`` stops the active run and scales workers to zero;
- spec changes apply from the next run; handler changes reach running workers at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from irods_ingest.actions import JobActions, RedisClient, RunStatus, selects_database, url_with_credentials
from irods_ingest.config import JobConfig
from irods_ingest.errors import ConfigError, IngestError, PermanentError
from irods_ingest_operator import metrics
from irods_ingest_operator.admission import AdmissionPolicy, WorkerPodPolicy
from irods_ingest_operator.builders import (
    DEFAULT_SCALE_DOWN_WINDOW,
    Health,
    JobRef,
    RedisEndpoint,
    ScaleRecommendation,
    build_event,
    build_worker_deployment,
    build_worker_redis_secret,
    desired_replicas,
    failure_summary,
    format_time,
    health_conditions,
    job_redis_endpoint,
    progress_text,
    run_outcome_conditions,
    stabilize_replicas,
    worker_deployment_name,
)
from irods_ingest_operator.constants import EventReason, EventType, Reason
from irods_ingest_operator.jobconfig import to_job_config
from irods_ingest_operator.kube import DeploymentState, KubeAdapter, NotFound, NotOurs
from irods_ingest_operator.spec import (
    InvalidSpecError,
    SyncJobSpec,
    next_fire_time,
    parse_syncjob,
    summarize_problems,
)

log = logging.getLogger("irods_ingest_operator.reconcile")

RECENT_FAILURES = 5
# Operator memory in the job's Redis hash (see irods_ingest.store.keys).
MEMO_RUN_NOW = "op:run_now"
MEMO_SCHEDULE_SLOT = "op:schedule_slot"
MEMO_REPORTED_RUN = "op:reported_run"
MEMO_STARTED_ONCE = "op:started_once"
MEMO_RETRY_FAILED = "op:retry_failed"


@dataclass(frozen=True)
class OperatorContext:
    redis: RedisClient
    kube: KubeAdapter
    worker_image: str
    worker_redis: RedisEndpoint  # shared credentials only
    scale_down_window: timedelta = DEFAULT_SCALE_DOWN_WINDOW
    worker_service_account: str | None = None
    # perJob: each job's workers get their own Redis user (see irods_ingest.store.acl) on this
    # URL (without credentials); None: every job's workers use worker_redis.
    per_job_redis_url: str | None = None
    credential_rotation: timedelta | None = None
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    pod_policy: WorkerPodPolicy = field(default_factory=WorkerPodPolicy)
    max_failure_records: int = 1000


@dataclass
class Outcome:
    """What one pass decided: the status to write and the events to post (already posted)."""

    status: dict[str, Any] = field(default_factory=dict)
    desired_replicas: int = 0
    started_run: str | None = None


# Scale-down stabilisation history per job, per operator process (a restart starts afresh,
# which stabilize_replicas treats conservatively).
_scale_history: dict[str, tuple[ScaleRecommendation, ...]] = {}


class Reconciler:
    def __init__(self, ctx: OperatorContext, body: Mapping[str, Any], now: datetime | None = None) -> None:
        self.ctx = ctx
        self.body = body
        self.now = now or datetime.now(UTC)
        self.ref = JobRef.from_body(body)
        self.generation = int(body["metadata"].get("generation") or 0)
        self.old_status: Mapping[str, Any] = body.get("status") or {}
        self.job = JobActions(ctx.redis, self.ref.key)

    # ------------------------------------------------------------------ entry point
    def reconcile(self) -> Outcome:
        try:
            spec = parse_syncjob(self.body)
        except InvalidSpecError as exc:
            return self.stalled(Reason.INVALID_SPEC, summarize_problems(exc.problems), EventReason.INVALID_SPEC)
        refused = self.ctx.admission.problems(spec)
        if refused:
            return self.stalled(Reason.NOT_ALLOWED, summarize_problems(refused), EventReason.INVALID_SPEC)
        try:
            handler_source = self.handler_source(spec)
        except NotFound as exc:
            return self.stalled(Reason.HANDLER_NOT_FOUND, str(exc), EventReason.HANDLER_ERROR)
        origin = (
            f"event handler (ConfigMap {self.ref.namespace}/{spec.handler.config_map_name}, key {spec.handler.key!r})"
            if spec.handler is not None else "event handler"
        )
        try:
            # The operator never runs handler code (it is the tenant's, and the operator holds
            # rights the tenant does not): syntax only here; the workers apply the handler.
            job_config = to_job_config(spec, namespace=self.ref.namespace, name=self.ref.name,
                                       max_failure_records=self.ctx.max_failure_records)
            config = self.job.prepare(job_config, handler_source, run_handler=False, handler_origin=origin)
        except ConfigError as exc:
            reason = Reason.HANDLER_ERROR if any(p.field == "event_handler" for p in exc.problems) else Reason.INVALID_SPEC
            event = EventReason.HANDLER_ERROR if reason is Reason.HANDLER_ERROR else EventReason.INVALID_SPEC
            return self.stalled(reason, str(exc), event)

        try:
            # Before any run starts: the names this job writes must be free or ours.
            current = self.owned_deployment()
            redis, credential_version = self.worker_redis()
        except NotOurs as exc:
            return self.stalled(Reason.NAME_CONFLICT, str(exc), EventReason.INVALID_SPEC)
        run = self.job.status()
        started = self.decide_run(spec, config, run)
        if started is None and run.active:
            self.mirror_handler(config, run)
        run = self.job.status() if started else run
        replicas = self.scale(spec, run, current, redis, credential_version)
        outcome = Outcome(status=self.status(spec, run, replicas), desired_replicas=replicas, started_run=started)
        self.announce_run_end(run)
        return outcome

    # ------------------------------------------------------------------ pieces
    def handler_source(self, spec: SyncJobSpec) -> str | None:
        if spec.handler is None:
            return None
        return self.ctx.kube.read_config_map_key(self.ref.namespace, spec.handler.config_map_name, spec.handler.key)

    def mirror_handler(self, config: JobConfig, run: RunStatus) -> None:
        """A handler edit reaches the active run's workers now (they look handlers up by hash)."""
        if self.job.use_handler(config.handler_hash):
            self.event(EventReason.HANDLER_UPDATED, f"event handler updated for run {run.run_id}")

    def decide_run(self, spec: SyncJobSpec, config: JobConfig, run: RunStatus) -> str | None:
        memo = self.job.memo()
        if spec.suspend:
            if run.active and self.job.stop("suspended"):
                self.event(EventReason.SUSPENDED, f"run {run.run_id} stopped: the SyncJob is suspended")
            return None
        if spec.run_now and spec.run_now != memo.get(MEMO_RUN_NOW):
            self.job.remember(MEMO_RUN_NOW, spec.run_now)
            return self.start(config, force=True, why=f"runNow={spec.run_now}")
        if spec.retry_failed and spec.retry_failed != memo.get(MEMO_RETRY_FAILED):
            if run.active:
                return None  # acted on once the active run has ended
            self.job.remember(MEMO_RETRY_FAILED, spec.retry_failed)
            result = self.job.retry_failed()
            if result.started:
                self.event(EventReason.RUN_STARTED, f"run {result.run_id} started (retryFailed={spec.retry_failed})")
                return result.run_id
            self.event(EventReason.RUN_STARTED, "retryFailed: the last run has nothing to retry")
            return None
        if spec.schedule:
            slot = self.due_slot(spec.schedule, memo.get(MEMO_SCHEDULE_SLOT))
            if slot is not None:
                self.job.remember(MEMO_SCHEDULE_SLOT, slot.isoformat())
                if run.active:
                    log.info("schedule_slot_skipped", extra={"job": self.ref.key, "slot": slot.isoformat()})
                    return None
                return self.start(config, force=False, why=f"schedule {spec.schedule}")
            return None
        if not memo.get(MEMO_STARTED_ONCE) and run.state == "none":
            return self.start(config, force=False, why="created")
        return None

    def due_slot(self, schedule: str, last_slot: str | None) -> datetime | None:
        """The latest schedule slot at or before now that has not fired yet (missed ones collapse)."""
        created = _parse_time(self.body["metadata"].get("creationTimestamp")) or self.now
        after = _parse_time(last_slot) or created
        slot = next_fire_time(schedule, after)
        if slot > self.now:
            return None
        while True:  # after downtime, fire once for the latest missed slot, not for each
            following = next_fire_time(schedule, slot)
            if following > self.now:
                return slot
            slot = following

    def start(self, config: JobConfig, *, force: bool, why: str) -> str | None:
        result = self.job.start(config, force=force)
        started, run_id = result.started, result.run_id
        if started:
            self.job.remember(MEMO_STARTED_ONCE, run_id)
            self.event(EventReason.RUN_STARTED, f"run {run_id} started ({why})")
            return run_id
        return None

    def worker_redis(self) -> tuple[RedisEndpoint, str | None]:
        """How this job's workers reach Redis, and the credential's version (perJob mode).

        perJob: the job's own ACL user, made on first use and rotated every
        ``credential_rotation``; the password goes straight into the job's Secret and is
        never kept (Redis holds its SHA-256 only). A user Redis lost (restarted without an
        aclfile) is recreated from the kept digests, so running workers keep working.
        """
        base = self.ctx.per_job_redis_url
        if base is None:
            return self.ctx.worker_redis, None
        credentials = self.job.worker_credentials(select=selects_database(base))
        state = credentials.state()
        rotation = self.ctx.credential_rotation
        now = self.now.timestamp()
        if not state.digests or (rotation is not None and now - state.rotated >= rotation.total_seconds()):
            new = credentials.rotate(now)
            url = url_with_credentials(base, credentials.user, new.password)
            self.ctx.kube.write_owned_secret(build_worker_redis_secret(self.ref, url=url, version=new.state.tag))
            credentials.commit(new.state)
            if state.digests:
                self.event(EventReason.CREDENTIAL_ROTATED,
                           f"workers' Redis credential rotated (version {new.state.version}); pods roll onto it")
            state = new.state
        elif not credentials.user_exists():
            credentials.restore(state)
            log.warning("redis_user_restored", extra={"job": self.ref.key, "user": credentials.user})
        return job_redis_endpoint(self.ref.name), state.tag

    def owned_deployment(self) -> DeploymentState | None:
        """The job's worker Deployment as it is now; :class:`NotOurs` if that name is taken by
        a Deployment this SyncJob does not control (applying would take it over)."""
        name = worker_deployment_name(self.ref.name)
        current = self.ctx.kube.deployment_state(self.ref.namespace, name)
        if current is not None and current.controller_uid != self.ref.uid:
            raise NotOurs(f"Deployment {self.ref.namespace}/{name} already exists and is not this SyncJob's workers; "
                          "rename the SyncJob (or remove that Deployment)")
        return current

    def scale(
        self,
        spec: SyncJobSpec,
        run: RunStatus,
        current: DeploymentState | None,
        redis: RedisEndpoint,
        credential_version: str | None,
    ) -> int:
        queued = run.queued + run.delayed if run.active else 0
        in_flight = run.in_flight if run.active else 0
        wanted = desired_replicas(
            queued=queued,
            in_flight=in_flight,
            concurrency=spec.workers.concurrency,
            min_replicas=spec.workers.min_replicas,
            max_replicas=spec.workers.max_replicas,
            suspended=spec.suspend,
        )
        if run.active and not spec.suspend:
            wanted = max(wanted, 1)  # an active run always has a worker, even between tasks
        current_replicas = current.replicas if current else 0
        if spec.suspend or not run.active:
            # Nothing to do (finished, never started, or suspended): straight to the floor.
            # The stabilisation window only smooths the ups and downs of a running queue.
            replicas = wanted
            _scale_history.pop(self.ref.key, None)
        else:
            decision = stabilize_replicas(
                desired=wanted,
                current=current_replicas,
                history=_scale_history.get(self.ref.key, ()),
                now=self.now,
                window=self.ctx.scale_down_window,
            )
            _scale_history[self.ref.key] = decision.history
            replicas = decision.replicas
        manifest = build_worker_deployment(
            self.ref,
            spec,
            replicas=replicas,
            image_default=self.ctx.worker_image,
            redis=redis,
            service_account_name=self.ctx.worker_service_account,
            pod_policy=self.ctx.pod_policy,
            credential_version=credential_version,
        )
        self.ctx.kube.apply_deployment(manifest)
        if (current.replicas if current else 0) != replicas:
            before = current.replicas if current else 0
            self.event(EventReason.SCALED_WORKERS, f"workers scaled from {before} to {replicas}")
        return replicas

    # ------------------------------------------------------------------ status
    def status(self, spec: SyncJobSpec, run: RunStatus, replicas: int) -> dict[str, Any]:
        c = run.counters
        conditions = list(self.old_status.get("conditions") or [])
        if spec.suspend:
            conditions = health_conditions(conditions, Health.READY, reason=Reason.SUSPENDED,
                                           message="suspended: no runs start and workers are scaled to zero",
                                           observed_generation=self.generation, now=self.now)
        elif run.active:
            conditions = health_conditions(conditions, Health.RECONCILING, reason=Reason.RUN_IN_PROGRESS,
                                           message=f"run {run.run_id} in progress",
                                           observed_generation=self.generation, now=self.now)
        else:
            waiting = Reason.WAITING_FOR_SCHEDULE if spec.schedule else Reason.RECONCILED
            conditions = health_conditions(conditions, Health.READY, reason=waiting, message=_ready_message(run),
                                           observed_generation=self.generation, now=self.now)
        if run.state in ("done", "failed", "stopped"):
            succeeded = run.state == "done"
            reason = {"done": Reason.RUN_SUCCEEDED, "failed": Reason.RUN_FAILED, "stopped": Reason.RUN_STOPPED}[run.state]
            if run.state == "failed" and "event handler" in run.error:
                # The workers found the handler broken (the operator never runs it): say so.
                reason = Reason.HANDLER_ERROR
            conditions = run_outcome_conditions(conditions, succeeded=succeeded, reason=reason,
                                                message=_run_message(run), observed_generation=self.generation,
                                                now=self.now)
        deployment = self.ctx.kube.deployment_state(self.ref.namespace, worker_deployment_name(self.ref.name))
        labels = (self.ref.namespace, self.ref.name)
        metrics.QUEUE_DEPTH.labels(*labels).set(run.queued + run.delayed)
        metrics.IN_FLIGHT.labels(*labels).set(run.in_flight)
        metrics.WORKERS_DESIRED.labels(*labels).set(replicas)
        metrics.WORKERS_READY.labels(*labels).set(deployment.ready if deployment else 0)
        metrics.RUN_ACTIVE.labels(*labels).set(1 if run.active else 0)
        status: dict[str, Any] = {
            "observedGeneration": self.generation,
            "conditions": conditions,
            "files": {
                "discovered": c["files_discovered"],
                "synced": c["files_synced"],
                "unchanged": c["files_unchanged"],
                "skipped": c["files_skipped"],
                "excluded": c["files_excluded"],
                "failed": c["files_failed"],
                "deleted": c["files_deleted"],
            },
            "bytes": {"discovered": c["bytes_discovered"], "synced": c["bytes_synced"]},
            "collections": {"deleted": c.get("collections_deleted", 0)},
            "tasks": {
                "queued": run.queued + run.delayed,
                "inFlight": run.in_flight,
                "done": c["tasks_done"],
                "failed": c["tasks_failed"],
            },
            "workers": {"desired": replicas, "ready": deployment.ready if deployment else 0},
            # Worker-written records: each checked and cut to size before it reaches the status.
            "recentFailures": [failure_summary(f) for f in self.job.failures(RECENT_FAILURES)],
        }
        if c.get("failures_dropped"):
            status["failuresNotRecorded"] = c["failures_dropped"]
        if run.run_id:
            status["run"] = {"id": run.run_id}
            if run.started:
                status["run"]["startTime"] = format_time(datetime.fromtimestamp(run.started, UTC))
            if run.ended and not run.active:
                status["run"]["completionTime"] = format_time(datetime.fromtimestamp(run.ended, UTC))
                status["run"]["outcome"] = {"done": "Succeeded", "failed": "Failed"}.get(run.state, "Stopped")
        last_sync = self.last_successful_sync(run)
        if last_sync is not None:
            status["lastSyncTime"] = format_time(last_sync)
            metrics.LAST_SUCCESSFUL_SYNC.labels(*labels).set(last_sync.timestamp())
        if spec.schedule and not spec.suspend:
            status["nextSyncTime"] = format_time(next_fire_time(spec.schedule, self.now))
        processed = c["files_synced"] + c["files_unchanged"] + c["files_failed"]
        progress = progress_text(discovered=c["files_discovered"], processed=processed, running=run.active)
        if progress is not None:
            status["progress"] = progress
        return status

    def last_successful_sync(self, run: RunStatus) -> datetime | None:
        if run.state == "done" and run.ended:
            return datetime.fromtimestamp(run.ended, UTC)
        for past in self.job.history(10):
            if past.get("state") == "done" and past.get("ended"):
                return datetime.fromtimestamp(float(past["ended"]), UTC)
        return None

    def announce_run_end(self, run: RunStatus) -> None:
        """One Event per finished run (remembered in Redis, so a restart does not repeat it)."""
        if run.active or run.run_id is None or run.state not in ("done", "failed"):
            return
        if self.job.memo().get(MEMO_REPORTED_RUN) == run.run_id:
            return
        self.job.remember(MEMO_REPORTED_RUN, run.run_id)
        metrics.RUNS.labels(self.ref.namespace, self.ref.name, "succeeded" if run.state == "done" else "failed").inc()
        if run.state == "done":
            self.event(EventReason.RUN_SUCCEEDED, _run_message(run))
        else:
            self.event(EventReason.RUN_FAILED, _run_message(run), EventType.WARNING)

    # ------------------------------------------------------------------ stalled
    def stalled(self, reason: Reason, message: str, event: EventReason) -> Outcome:
        previous = next((c for c in self.old_status.get("conditions") or [] if c.get("type") == "Stalled"), None)
        if not previous or previous.get("status") != "True" or previous.get("message") != message:
            self.event(event, message, EventType.WARNING)
        conditions = health_conditions(list(self.old_status.get("conditions") or []), Health.STALLED, reason=reason,
                                       message=message, observed_generation=self.generation, now=self.now)
        # Workers of an active run keep going on its stored (valid) config; none start anew.
        try:
            run = self.job.status()
        except IngestError:
            run = None
        if run is None or not run.active:
            name = worker_deployment_name(self.ref.name)
            current = self.ctx.kube.deployment_state(self.ref.namespace, name)
            if current is not None and current.controller_uid == self.ref.uid:  # never another's Deployment
                self.ctx.kube.scale_deployment_if_exists(self.ref.namespace, name, 0)
        return Outcome(status={"observedGeneration": self.generation, "conditions": conditions})

    def event(self, reason: EventReason, message: str, type: EventType = EventType.NORMAL) -> None:
        try:
            self.ctx.kube.post_event(build_event(self.ref, reason=str(reason), message=message, now=self.now, type=type))
        except PermanentError as exc:  # an Event that cannot be posted must not stop reconciling
            log.warning("event_not_posted", extra={"job": self.ref.key, "reason": str(reason), "error": str(exc)})
        log.info("event", extra={"job": self.ref.key, "reason": str(reason), "event_message": message})


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _ready_message(run: RunStatus) -> str:
    if run.state == "none":
        return "waiting for the first run"
    return f"last run {run.run_id} {run.state}"


def _run_message(run: RunStatus) -> str:
    c = run.counters
    text = (
        f"run {run.run_id} {run.state}: {c['files_synced']} synced, {c['files_unchanged']} unchanged, "
        f"{c['files_failed']} failed, {c['files_skipped']} skipped of {c['files_discovered']} discovered"
    )
    if c["tasks_failed"]:
        text += f"; {c['tasks_failed']} tasks failed (see recentFailures)"
    return f"{text}; {run.error}" if run.error else text


def cleanup(ctx: OperatorContext, namespace: str, name: str) -> int:
    """On deletion: stop the run, remove the workers' Redis user and every Redis key of the job
    (the Deployment and the credential Secret are garbage-collected)."""
    deleted = JobActions(ctx.redis, f"{namespace}/{name}").delete("the SyncJob was deleted")
    _scale_history.pop(f"{namespace}/{name}", None)
    metrics.forget(namespace, name)
    return deleted
