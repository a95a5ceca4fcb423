"""The executor: performs a decision's intents, in order, through the adapters.

Thin on purpose: each intent is one effect (or two that belong together, such as starting a
run and announcing it). What only the effect can tell (the id of the run that started, the
version of a new credential) comes back as a :class:`Changes` value, which the pass uses to
decide again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from irods_ingest.actions import JobActions, selects_database, url_with_credentials
from irods_ingest.errors import PermanentError, RetryableError
from irods_ingest_operator import metrics
from irods_ingest_operator.builders.events import build_event
from irods_ingest_operator.builders.names import worker_deployment_name
from irods_ingest_operator.builders.secrets import build_worker_redis_secret
from irods_ingest_operator.constants import (
    MEMO_FAILURES_WRITTEN,
    MEMO_REPORTED_RUN,
    MEMO_STARTED_ONCE,
    EventReason,
    EventType,
)
from irods_ingest_operator.kube import NotOurs
from irods_ingest_operator.reconcile import messages
from irods_ingest_operator.reconcile.context import OperatorContext
from irods_ingest_operator.reconcile.intents import (
    AnnounceRunEnd,
    ApplyDeployment,
    DeleteJob,
    ForgetJob,
    ForgetScaleHistory,
    Intent,
    Note,
    PostEvent,
    Remember,
    RememberPosted,
    RememberScaleHistory,
    ReportMetrics,
    RestoreCredential,
    RetryFailed,
    RotateCredential,
    ScaleDeployment,
    StartRun,
    UseHandler,
    WriteFailures,
    WriteStatus,
)
from irods_ingest_operator.reconcile.observed import CredentialFacts
from irods_ingest_operator.reconcile.once import TOPIC_FAILURES_NAME
from irods_ingest_operator.refs import JobRef

log = logging.getLogger("irods_ingest_operator.reconcile")


@dataclass
class Changes:
    """What performing intents changed that a decision depends on."""

    rotated: CredentialFacts | None = None  # the credential's new state
    started: str | None = None  # the id of the run that started
    secret_taken: str | None = None  # the credential Secret's name belongs to another (nothing after it ran)

    @property
    def affects_report(self) -> bool:
        return self.rotated is not None or self.started is not None


class Executor:
    def __init__(self, ctx: OperatorContext, ref: JobRef, now: datetime) -> None:
        self.ctx = ctx
        self.ref = ref
        self.now = now
        self.job = JobActions(ctx.redis, ref.key)
        self.status: Mapping[str, Any] = {}
        self.replicas = 0
        self.deleted_keys = 0
        self._changes = Changes()
        self._perform: dict[type, Callable[[Any], None]] = {
            RotateCredential: self._rotate_credential,
            RestoreCredential: self._restore_credential,
            Remember: lambda intent: self.job.remember(intent.field, intent.value),
            StartRun: self._start_run,
            RetryFailed: self._retry_failed,
            UseHandler: self._use_handler,
            RememberScaleHistory: lambda intent: ctx.memory.remember_scale_history(ref.key, intent.history),
            ForgetScaleHistory: lambda _intent: ctx.memory.forget_scale_history(ref.key),
            ApplyDeployment: self._apply_deployment,
            ScaleDeployment: lambda intent: ctx.kube.scale_deployment_if_exists(
                ref.namespace, worker_deployment_name(ref.name), intent.replicas),
            PostEvent: lambda intent: self.event(intent.reason, intent.message, intent.type),
            RememberPosted: lambda intent: ctx.memory.remember_posted(ref.key, intent.topic, intent.cause),
            WriteFailures: self._write_failures,
            Note: lambda intent: log.info(intent.event, extra=dict(intent.fields)),
            ReportMetrics: self._report_metrics,
            AnnounceRunEnd: self._announce_run_end,
            WriteStatus: self._write_status,
            DeleteJob: self._delete_job,
            ForgetJob: self._forget_job,
        }

    def perform(self, intents: Iterable[Intent]) -> Changes:
        """Perform ``intents`` in order; stop early only when the credential Secret is another's."""
        self._changes = Changes()
        for intent in intents:
            self._perform[type(intent)](intent)
            if self._changes.secret_taken is not None:
                break
        return self._changes

    # ------------------------------------------------------------------ the job
    def _rotate_credential(self, intent: RotateCredential) -> None:
        # The password goes straight into the job's Secret and is never kept (Redis holds its
        # SHA-256 only); it is remembered only once the Secret holds it.
        base = self.ctx.per_job_redis_url
        assert base is not None, "rotations are decided for perJob credentials only"
        credentials = self.job.worker_credentials(select=selects_database(base))
        new = credentials.rotate(intent.at)
        url = url_with_credentials(base, credentials.user, new.password)
        try:
            self.ctx.kube.write_owned_secret(build_worker_redis_secret(self.ref, url=url, version=new.state.tag))
        except NotOurs as exc:
            self._changes.secret_taken = str(exc)
            return
        credentials.commit(new.state)
        if intent.announce:
            self.event(EventReason.CREDENTIAL_ROTATED, messages.credential_rotated(new.state.version))
        state = new.state
        self._changes.rotated = CredentialFacts(version=state.version, digests=state.digests, rotated=state.rotated,
                                                tag=state.tag, user_exists=True)

    def _restore_credential(self, _intent: RestoreCredential) -> None:
        base = self.ctx.per_job_redis_url
        assert base is not None, "restores are decided for perJob credentials only"
        credentials = self.job.worker_credentials(select=selects_database(base))
        credentials.restore(credentials.state())
        log.warning("redis_user_restored", extra={"job": self.ref.key, "user": credentials.user})

    def _start_run(self, intent: StartRun) -> None:
        result = self.job.start(intent.config, force=intent.force)
        if result.started:
            self.job.remember(MEMO_STARTED_ONCE, result.run_id)
            self.event(EventReason.RUN_STARTED, messages.run_started(result.run_id, intent.why))
            if result.adopted is not None:  # files the earlier job synced are not synced again
                self.event(EventReason.CACHE_ADOPTED, f"change cache adopted: {result.adopted.describe()}")
            self._changes.started = result.run_id

    def _retry_failed(self, intent: RetryFailed) -> None:
        # With the config this pass prepared: the handler the ConfigMap holds now, never the
        # one the last run was left with (a retry must not start before its handler is in place).
        result = self.job.retry_failed(config=intent.config)
        if result.started:
            why = f"retryFailed={intent.token}" + (f"; {result.note}" if result.note else "")
            self.event(EventReason.RUN_STARTED, messages.run_started(result.run_id, why))
            self._changes.started = result.run_id
        else:
            self.event(EventReason.RUN_STARTED, messages.nothing_to_retry())

    def _use_handler(self, intent: UseHandler) -> None:
        """A handler edit reaches the active run's workers now (they look handlers up by hash)."""
        if self.job.use_handler(intent.handler_hash):
            self.event(EventReason.HANDLER_UPDATED, intent.message)

    # ------------------------------------------------------------------ workers and report
    def _apply_deployment(self, intent: ApplyDeployment) -> None:
        self.ctx.kube.apply_deployment(intent.manifest)
        self.replicas = intent.replicas

    def _write_failures(self, intent: WriteFailures) -> None:
        """Publish the run's failures; a ConfigMap that cannot be written never stops the pass
        (the status matters more): another's name or a refusal (say, RBAC without configmaps
        create) is said once and tried again when the failures change; a transient error, next pass."""
        try:
            self.ctx.kube.write_owned_config_map(intent.manifest)
        except RetryableError as exc:
            log.warning("failures_not_published", extra={"job": self.ref.key, "error": str(exc)})
            return
        except PermanentError as exc:  # NotOurs included: never adopted
            reason = EventReason.NAME_CONFLICT if isinstance(exc, NotOurs) else EventReason.FAILURES_NOT_PUBLISHED
            message = messages.failures_not_published(str(exc))
            if self.ctx.memory.posted(self.ref.key).get(TOPIC_FAILURES_NAME) != message:
                self.event(reason, message, EventType.WARNING)
                self.ctx.memory.remember_posted(self.ref.key, TOPIC_FAILURES_NAME, message)
        self.job.remember(MEMO_FAILURES_WRITTEN, intent.signature)

    def _report_metrics(self, intent: ReportMetrics) -> None:
        self.replicas = intent.desired  # also when the Deployment needed no apply this pass
        labels = (self.ref.namespace, self.ref.name)
        metrics.QUEUE_DEPTH.labels(*labels).set(intent.queued)
        metrics.IN_FLIGHT.labels(*labels).set(intent.in_flight)
        metrics.WORKERS_DESIRED.labels(*labels).set(intent.desired)
        metrics.WORKERS_READY.labels(*labels).set(intent.ready)
        metrics.RUN_ACTIVE.labels(*labels).set(1 if intent.active else 0)
        if intent.last_sync is not None:
            metrics.LAST_SUCCESSFUL_SYNC.labels(*labels).set(intent.last_sync.timestamp())

    def _announce_run_end(self, intent: AnnounceRunEnd) -> None:
        self.job.remember(MEMO_REPORTED_RUN, intent.run_id)
        metrics.RUNS.labels(self.ref.namespace, self.ref.name, "succeeded" if intent.succeeded else "failed").inc()
        if intent.succeeded:
            self.event(EventReason.RUN_SUCCEEDED, intent.message)
        else:
            self.event(EventReason.RUN_FAILED, intent.message, EventType.WARNING)

    def _write_status(self, intent: WriteStatus) -> None:
        self.status = intent.status  # written by the kopf handler's patch, through the status subresource

    # ------------------------------------------------------------------ deletion
    def _delete_job(self, intent: DeleteJob) -> None:
        self.deleted_keys = self.job.delete(intent.reason, cache_retention=self.ctx.cache_retention_seconds)

    def _forget_job(self, _intent: ForgetJob) -> None:
        self.ctx.memory.forget(self.ref.key)
        metrics.forget(self.ref.namespace, self.ref.name)

    # ------------------------------------------------------------------ events
    def event(self, reason: EventReason, message: str, type: EventType = EventType.NORMAL) -> None:
        try:
            self.ctx.kube.post_event(build_event(self.ref, reason=str(reason), message=message, now=self.now, type=type))
        except PermanentError as exc:  # an Event that cannot be posted must not stop reconciling
            log.warning("event_not_posted", extra={"job": self.ref.key, "reason": str(reason), "error": str(exc)})
        log.info("event", extra={"job": self.ref.key, "reason": str(reason), "event_message": message,
                                 "type": str(type)})
