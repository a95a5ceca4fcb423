"""Gathering what a pass needs, before anything is decided: the SyncJob, its handler, its
prepared config, its Deployment, its credential, its run and the operator's notes.

Reads only, in the order the facts can stop a pass (an invalid or refused spec, a missing or
broken handler, a name taken by another): after the first such fact, only what a stalled job
needs is read (its run, which goes on, if Redis answers). One write happens here, on purpose:
preparing the config stores the handler module by its content hash (idempotent; nothing uses
it until a run or a UseHandler points at it).

Some facts cost a read only when they can matter: the worker pods while workers are wanted and
none is ready; the config of the active run (to tell which edits wait for the next run); all of
a run's failure records when what its failures ConfigMap shows changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from irods_ingest.actions import JobActions, selects_database
from irods_ingest.errors import ConfigError, IngestError
from irods_ingest_operator.builders.failures import MAX_FAILURES_SHOWN, failures_signature
from irods_ingest_operator.builders.names import worker_deployment_name, worker_selector
from irods_ingest_operator.builders.text import parse_time
from irods_ingest_operator.constants import MEMO_FAILURES_WRITTEN
from irods_ingest_operator.jobconfig import to_job_config
from irods_ingest_operator.kube import KeyNotFound, NotFound
from irods_ingest_operator.reconcile import messages
from irods_ingest_operator.reconcile.context import OperatorContext
from irods_ingest_operator.reconcile.observed import CredentialFacts, Observed
from irods_ingest_operator.refs import DeploymentState, JobRef
from irods_ingest_operator.spec import InvalidSpecError, SyncJobSpec, parse_syncjob

RECENT_FAILURES: Final = 5
HISTORY_FOR_LAST_SYNC: Final = 10


def observe(ctx: OperatorContext, body: Mapping[str, Any]) -> Observed:
    ref = JobRef.from_body(body)
    metadata = body["metadata"]
    observed = Observed(
        job=ref,
        generation=int(metadata.get("generation") or 0),
        created=parse_time(metadata.get("creationTimestamp")),
        old_status=body.get("status") or {},
        scale_history=ctx.memory.scale_history(ref.key),
        posted=ctx.memory.posted(ref.key),
    )
    job = JobActions(ctx.redis, ref.key)
    try:
        spec = parse_syncjob(body)
    except InvalidSpecError as exc:
        return _stalled_facts(ctx, job, observed.with_changes(spec_problems=exc.problems))
    observed = observed.with_changes(spec=spec)
    refused = ctx.admission.problems(spec)
    if refused:
        return _stalled_facts(ctx, job, observed.with_changes(refused=tuple(refused)))
    try:
        handler_source = _handler_source(ctx, ref, spec)
    except NotFound as exc:
        return _stalled_facts(ctx, job, observed.with_changes(handler_missing=_handler_missing(ref, spec, exc)))
    try:
        # The operator never runs handler code (it is the tenant's, and the operator holds
        # rights the tenant does not): syntax only here; the workers apply the handler.
        job_config = to_job_config(spec, namespace=ref.namespace, name=ref.name,
                                   max_failure_records=ctx.max_failure_records)
        config = job.prepare(job_config, handler_source, run_handler=False, handler_origin=_handler_origin(ref, spec))
    except ConfigError as exc:
        return _stalled_facts(ctx, job, observed.with_changes(config_error=exc))
    # Before any run starts: the names this job writes must be free or its own.
    deployment = ctx.kube.deployment_state(ref.namespace, worker_deployment_name(ref.name))
    observed = observed.with_changes(config=config, deployment=deployment)
    if deployment is not None and deployment.controller_uid != ref.uid:
        return _stalled_facts(ctx, job, observed)
    return observed.with_changes(credential=credential_facts(ctx, job), **run_facts(job),
                                 **worker_pod_facts(ctx, ref, deployment))


def run_facts(job: JobActions) -> dict[str, Any]:
    """The run and what the status shows of it; read again after a pass starts a run."""
    run, memo, count = job.status(), job.memo(), job.failure_count()
    changed = bool(run.run_id) and failures_signature(run, count) != memo.get(MEMO_FAILURES_WRITTEN)
    return {
        "run": run,
        "memo": memo,
        "failures": tuple(job.failures(RECENT_FAILURES)),
        "history": tuple(job.history(HISTORY_FOR_LAST_SYNC)),
        "failure_count": count,
        "all_failures": tuple(job.failures(MAX_FAILURES_SHOWN)) if changed else None,
        "running_config": job.stored_config() if run.active else None,
    }


def worker_pod_facts(ctx: OperatorContext, ref: JobRef, deployment: DeploymentState | None) -> dict[str, Any]:
    """The worker pods, while workers are wanted and none is ready (read-only: pods list, pods/log)."""
    if deployment is None or deployment.replicas == 0 or deployment.ready > 0:
        return {}
    try:
        return {"pods": ctx.kube.worker_pods(ref.namespace, worker_selector(ref.name))}
    except IngestError as exc:  # no RBAC for pods, an API hiccup: the cause says so, the pass goes on
        return {"pods_error": str(exc)}


def credential_facts(ctx: OperatorContext, job: JobActions) -> CredentialFacts | None:
    if ctx.per_job_redis_url is None:
        return None
    credentials = job.worker_credentials(select=selects_database(ctx.per_job_redis_url))
    state = credentials.state()
    return CredentialFacts(version=state.version, digests=state.digests, rotated=state.rotated, tag=state.tag,
                           user_exists=credentials.user_exists())


def _stalled_facts(ctx: OperatorContext, job: JobActions, observed: Observed) -> Observed:
    """What a stalled job's pass needs: its run, which may go on with its stored config (if
    Redis answers: a stalled status must not wait for Redis), and its Deployment (to scale it
    to zero once no run is active, and to show its workers meanwhile)."""
    try:
        facts = run_facts(job)
    except IngestError:
        facts = {"run": None}
    deployment = observed.deployment
    if deployment is None:
        ref = observed.job
        deployment = ctx.kube.deployment_state(ref.namespace, worker_deployment_name(ref.name))
    return observed.with_changes(deployment=deployment, **facts)


def _handler_source(ctx: OperatorContext, ref: JobRef, spec: SyncJobSpec) -> str | None:
    if spec.handler is None:
        return None
    return ctx.kube.read_config_map_key(ref.namespace, spec.handler.config_map_name, spec.handler.key)


def _handler_origin(ref: JobRef, spec: SyncJobSpec) -> str:
    if spec.handler is None:
        return "event handler"
    return messages.handler_origin(ref.namespace, spec.handler.config_map_name, spec.handler.key)


def _handler_missing(ref: JobRef, spec: SyncJobSpec, error: NotFound) -> str:
    assert spec.handler is not None, "only a job with a handler reads one"
    name, key = spec.handler.config_map_name, spec.handler.key
    if isinstance(error, KeyNotFound):
        return messages.handler_key_missing(ref.namespace, name, key, error.keys)
    return messages.handler_config_map_missing(ref.namespace, name)
