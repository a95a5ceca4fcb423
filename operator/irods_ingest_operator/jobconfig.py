"""From a SyncJob spec to the engine's JobConfig (pure).

The job's key in Redis is ``<namespace>/<name>``, so two namespaces may hold jobs of the
same name. Secrets are not part of the config: workers get them from their pod.
"""

from __future__ import annotations

from irods_ingest.config import JobConfig, S3Source
from irods_ingest_operator.spec import PathSource, SyncJobSpec


def job_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def to_job_config(spec: SyncJobSpec, *, namespace: str, name: str, max_failure_records: int | None = None) -> JobConfig:
    if isinstance(spec.source, PathSource):
        source_path, s3 = spec.source.path, None
    else:
        # The credentials Secret reaches the worker pods as AWS_* environment (builders.py),
        # never the config in Redis.
        source_path = ""
        s3 = S3Source(
            bucket=spec.source.bucket,
            endpoint=spec.source.endpoint,
            prefix=spec.source.prefix,
            region=spec.source.region,
            insecure=spec.source.insecure,
        )
    config = JobConfig(
        job_name=job_key(namespace, name),
        source_path=source_path,
        s3=s3,
        target_collection=spec.destination.collection,
        resource=spec.destination.resource,
        operation=spec.operation,
        delete_mode=spec.delete_mode,
        exclude_types=tuple(sorted(spec.filter.exclude_types)),
        exclude_names=spec.filter.exclude_names,
        exclude_directories=spec.filter.exclude_directories,
        include_names=spec.filter.include_names,
        files_per_task=spec.workers.files_per_task,
        max_retries=spec.workers.max_retries,
        retry_backoff_seconds=float(spec.workers.retry_backoff_seconds),
        task_timeout_seconds=spec.workers.task_timeout_seconds,
        initial_ingest=spec.initial_ingest,
        ignore_cache=spec.ignore_cache,
        symlinks=spec.symlinks,
        verify_checksum=spec.verify_checksum,
        metadata=tuple((m.attribute, m.value, m.units or "") for m in spec.metadata),
    )
    # The cluster admin's cap on failure records (operator settings); the engine's default otherwise.
    return config if max_failure_records is None else config.with_changes(max_failure_records=max_failure_records)
