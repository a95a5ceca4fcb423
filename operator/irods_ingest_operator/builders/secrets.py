"""The Secret holding a job's worker Redis URL (perJob credentials)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from irods_ingest_operator.builders.names import worker_labels, worker_redis_secret_name
from irods_ingest_operator.constants import CREDENTIAL_VERSION_ANNOTATION, WORKER_REDIS_SECRET_KEY
from irods_ingest_operator.refs import JobRef, as_job_ref


def build_worker_redis_secret(job: JobRef | Mapping[str, Any], *, url: str, version: str) -> dict[str, Any]:
    """The Secret holding a job's worker Redis URL (with the job's own user and password), for
    server-side apply. Owned by the SyncJob, so the garbage collector removes it with the job."""
    ref = as_job_ref(job)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": worker_redis_secret_name(ref.name),
            "namespace": ref.namespace,
            "labels": worker_labels(ref.name),
            "annotations": {CREDENTIAL_VERSION_ANNOTATION: version},
            "ownerReferences": [ref.owner_reference()],
        },
        "type": "Opaque",
        "data": {WORKER_REDIS_SECRET_KEY: base64.b64encode(url.encode()).decode()},
    }
