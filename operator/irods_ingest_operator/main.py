"""kopf wiring only: registrations, settings and the ``irods-ingest-operator`` entry point.

Handlers delegate to :mod:`irods_ingest_operator.reconcile`; engine and adapter errors are
turned into kopf's vocabulary here and nowhere else. Handlers are plain functions, which
kopf runs in threads, so the synchronous Redis and Kubernetes clients never block its loop.

High availability: one replica (the chart uses the Recreate strategy). kopf runs in
standalone mode (no peering objects); two replicas would reconcile the same SyncJobs
twice, which is safe (every step is idempotent) but wasteful.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

import kopf

from irods_ingest import logs
from irods_ingest.actions import connect
from irods_ingest.errors import ConfigError, IngestError, PermanentError, RetryableError
from irods_ingest_operator import __version__, metrics
from irods_ingest_operator.builders.status import merge_patch_for
from irods_ingest_operator.constants import FINALIZER, GROUP, KOPF_ANNOTATION_PREFIX, PLURAL, VERSION
from irods_ingest_operator.kube import KubeAdapter, load_api_client
from irods_ingest_operator.reconcile import (
    CleanupRetry,
    OperatorContext,
    OperatorMemory,
    Policy,
    cleanup,
    decide_cleanup_failure,
    reconcile,
)
from irods_ingest_operator.refs import JobRef
from irods_ingest_operator.settings import OperatorSettings, WorkerCredentials

log = logging.getLogger("irods_ingest_operator")


def _apply_status(patch: kopf.Patch, old: Any, new: Any) -> None:
    # Only what changed; nothing at all when nothing did (kopf sends any non-empty patch).
    changes = merge_patch_for(dict(old or {}), dict(new))
    if changes:
        patch.setdefault("status", {}).update(changes)


def build_registry(settings: OperatorSettings, ctx: OperatorContext) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    # A registry of our own gets none of kopf's default login handlers: use the official
    # client's (in-cluster service account, else $KUBECONFIG), as the kube adapter does.
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    def on_change(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **_: Any) -> None:
        key = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
        with ctx.memory.lock(key):  # the timer and the change handlers of one job must not interleave
            try:
                outcome = reconcile(ctx, body)
            except RetryableError as exc:
                metrics.RECONCILE_ERRORS.labels(*key.split("/", 1), "retryable").inc()
                raise kopf.TemporaryError(str(exc), delay=10) from exc
            except PermanentError as exc:
                metrics.RECONCILE_ERRORS.labels(*key.split("/", 1), "permanent").inc()
                raise kopf.PermanentError(str(exc)) from exc
        _apply_status(patch, body.get("status"), outcome.status)

    for decorator in (kopf.on.create, kopf.on.update, kopf.on.resume):
        decorator(GROUP, VERSION, PLURAL, registry=registry, id="reconcile")(on_change)

    @kopf.timer(GROUP, VERSION, PLURAL, registry=registry, interval=settings.reconcile_interval, id="refresh")
    def refresh(body: kopf.Body, patch: kopf.Patch, logger: kopf.Logger, **kwargs: Any) -> None:
        try:
            on_change(body=body, patch=patch, logger=logger, **kwargs)
        except kopf.TemporaryError as exc:
            logger.warning(f"refresh failed, retrying next interval: {exc}")

    attempts = settings.cleanup_attempts

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, id="cleanup", retries=attempts + 1)
    def on_delete(body: kopf.Body, retry: int, logger: kopf.Logger, **_: Any) -> None:
        ref = JobRef.from_body(body)
        try:
            deleted = cleanup(ctx, ref)
            logger.info(f"removed {deleted} Redis keys of {ref.key}")
        except IngestError as exc:
            verdict = decide_cleanup_failure(job=ref.key, retry=retry, attempts=attempts,
                                             backoff=settings.cleanup_backoff, error=str(exc))
            if isinstance(verdict, CleanupRetry):
                raise kopf.TemporaryError(f"cleaning up Redis: {exc}", delay=verdict.delay) from exc
            ctx.memory.forget(ref.key)
            event = verdict.event
            kopf.event(body, type=str(event.type), reason=str(event.reason), message=event.message)

    return registry


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    kopf_config = kopf.OperatorSettings()
    kopf_config.persistence.finalizer = FINALIZER
    kopf_config.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_ANNOTATION_PREFIX)
    kopf_config.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_ANNOTATION_PREFIX)
    kopf_config.posting.level = logging.WARNING  # kopf's own handler-failure Events only
    kopf_config.watching.server_timeout = 300
    kopf_config.watching.client_timeout = 330
    kopf_config.execution.max_workers = 8
    return kopf_config


def build_context(settings: OperatorSettings) -> OperatorContext:
    policy = Policy(
        worker_image=settings.worker_image,
        worker_redis=settings.worker_redis,
        scale_down_window=settings.scale_down_window,
        worker_service_account=settings.worker_service_account,
        credential_rotation=settings.credential_rotation,
        pod_policy=settings.pod_policy,
        workers_not_ready_after=settings.workers_not_ready_after,
    )
    return OperatorContext(
        redis=connect(settings.redis_url),
        kube=KubeAdapter(load_api_client()),
        policy=policy,
        memory=OperatorMemory(),  # this process's memory of its jobs; pruned as they are deleted
        per_job_redis_url=(
            settings.worker_redis_base_url if settings.worker_credentials is WorkerCredentials.PER_JOB else None
        ),
        admission=settings.admission,
        max_failure_records=settings.max_failure_records,
        cache_retention_seconds=settings.cache_retention.total_seconds(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="irods-ingest-operator",
        description="The SyncJob operator. Configured by IRODS_INGEST_OPERATOR_* variables (see settings.py); "
        "Kubernetes credentials from the pod's service account or $KUBECONFIG.",
    )
    parser.add_argument("--version", action="version", version=f"irods-ingest-operator {__version__}")
    parser.add_argument("--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)")
    parser.add_argument("--all-namespaces", "-A", action="store_true", help="watch the whole cluster")
    args = parser.parse_args(argv)
    try:
        settings = OperatorSettings.from_environment()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"irods-ingest-operator: invalid {problem}")
        return 2
    logs.configure(settings.log_level, json_format=settings.log_format == "json", object_field="job")
    namespaces = tuple(args.namespace) or settings.namespaces
    try:
        ctx = build_context(settings)
    except IngestError as exc:
        print(f"irods-ingest-operator: {exc}")
        return 1
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port)
    kopf.run(
        registry=build_registry(settings, ctx),
        settings=kopf_settings(settings),
        standalone=True,
        clusterwide=args.all_namespaces or not namespaces,
        namespaces=namespaces,
        liveness_endpoint=settings.liveness_endpoint or None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
