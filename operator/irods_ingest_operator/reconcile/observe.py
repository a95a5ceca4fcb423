"""Gathering what a pass needs, before anything is decided: the SyncJob, its handler, its
prepared config, its Deployment, its credential, its run and the operator's notes.

Reads only, in the order the facts can stop a pass (an invalid or refused spec, a missing or
broken handler, a name taken by another): after the first such fact, only what a stalled job
needs is read. One write happens here, on purpose: preparing the config stores the handler
module by its content hash (idempotent; nothing uses it until a run or a UseHandler points at it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from irods_ingest.actions import JobActions, selects_database
from irods_ingest.errors import ConfigError, IngestError
from irods_ingest_operator.builders.names import worker_deployment_name
from irods_ingest_operator.builders.text import parse_time
from irods_ingest_operator.jobconfig import to_job_config
from irods_ingest_operator.kube import NotFound
from irods_ingest_operator.reconcile.context import OperatorContext
from irods_ingest_operator.reconcile.observed import CredentialFacts, Observed
from irods_ingest_operator.refs import JobRef
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
        return _stalled_facts(ctx, job, observed.with_changes(handler_missing=str(exc)))
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
    return observed.with_changes(credential=credential_facts(ctx, job), **run_facts(job))


def run_facts(job: JobActions) -> dict[str, Any]:
    """The run and what the status shows of it; read again after a pass starts a run."""
    return {
        "run": job.status(),
        "memo": job.memo(),
        "failures": tuple(job.failures(RECENT_FAILURES)),
        "history": tuple(job.history(HISTORY_FOR_LAST_SYNC)),
    }


def credential_facts(ctx: OperatorContext, job: JobActions) -> CredentialFacts | None:
    if ctx.per_job_redis_url is None:
        return None
    credentials = job.worker_credentials(select=selects_database(ctx.per_job_redis_url))
    state = credentials.state()
    return CredentialFacts(version=state.version, digests=state.digests, rotated=state.rotated, tag=state.tag,
                           user_exists=credentials.user_exists())


def _stalled_facts(ctx: OperatorContext, job: JobActions, observed: Observed) -> Observed:
    """What a stalled job's pass needs: whether a run is active (if Redis answers: a stalled
    status must not wait for Redis), and, when none is, the Deployment to scale to zero."""
    try:
        run = job.status()
    except IngestError:
        run = None
    deployment = observed.deployment
    if deployment is None and (run is None or not run.active):
        ref = observed.job
        deployment = ctx.kube.deployment_state(ref.namespace, worker_deployment_name(ref.name))
    return observed.with_changes(run=run, deployment=deployment)


def _handler_source(ctx: OperatorContext, ref: JobRef, spec: SyncJobSpec) -> str | None:
    if spec.handler is None:
        return None
    return ctx.kube.read_config_map_key(ref.namespace, spec.handler.config_map_name, spec.handler.key)


def _handler_origin(ref: JobRef, spec: SyncJobSpec) -> str:
    if spec.handler is None:
        return "event handler"
    return f"event handler (ConfigMap {ref.namespace}/{spec.handler.config_map_name}, key {spec.handler.key!r})"
