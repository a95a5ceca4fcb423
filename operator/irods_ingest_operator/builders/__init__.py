"""Pure builders for every Kubernetes object the operator writes, and the pure scaling arithmetic.

Data in, dicts out: no API calls, no clock reads (``now`` is always an argument), no kubernetes
import. The adapter that applies these objects owns every side effect.

- :mod:`.names`: names and labels of a job's worker objects;
- :mod:`.deployment`: the worker Deployment;
- :mod:`.secrets`: the Secret with the workers' Redis URL (perJob credentials);
- :mod:`.events`: Events about a SyncJob;
- :mod:`.conditions`: status conditions, merged and set in consistent groups;
- :mod:`.scaling`: replicas from the queue, and the scale-down stabilisation window;
- :mod:`.status`: the status body, its texts, and the merge patch that writes it;
- :mod:`.text`: times and bounded strings as the API server stores them.

The references they take (:class:`~irods_ingest_operator.refs.JobRef`, ``RedisEndpoint``,
``SecretKeyRef``) live in :mod:`irods_ingest_operator.refs`.
"""

from irods_ingest_operator.builders.conditions import (
    Health,
    build_condition,
    health_conditions,
    merge_conditions,
    run_outcome_conditions,
)
from irods_ingest_operator.builders.deployment import (
    DEFAULT_TERMINATION_GRACE_SECONDS,
    S3_TRANSFER_ENV,
    build_worker_deployment,
)
from irods_ingest_operator.builders.events import MAX_EVENT_MESSAGE_LENGTH, build_event
from irods_ingest_operator.builders.names import (
    job_redis_endpoint,
    worker_deployment_name,
    worker_labels,
    worker_redis_secret_name,
    worker_selector,
)
from irods_ingest_operator.builders.scaling import (
    DEFAULT_SCALE_DOWN_WINDOW,
    ScaleDecision,
    ScaleRecommendation,
    desired_replicas,
    stabilize_replicas,
)
from irods_ingest_operator.builders.secrets import build_worker_redis_secret
from irods_ingest_operator.builders.status import (
    MAX_FAILURE_PATH_CHARS,
    MAX_FAILURE_REASON_CHARS,
    build_status,
    failure_summary,
    merge_patch_for,
    progress_text,
)
from irods_ingest_operator.builders.text import format_micro_time, format_time, shorten

__all__ = [
    "DEFAULT_SCALE_DOWN_WINDOW",
    "DEFAULT_TERMINATION_GRACE_SECONDS",
    "MAX_EVENT_MESSAGE_LENGTH",
    "MAX_FAILURE_PATH_CHARS",
    "MAX_FAILURE_REASON_CHARS",
    "S3_TRANSFER_ENV",
    "Health",
    "ScaleDecision",
    "ScaleRecommendation",
    "build_condition",
    "build_event",
    "build_status",
    "build_worker_deployment",
    "build_worker_redis_secret",
    "desired_replicas",
    "failure_summary",
    "format_micro_time",
    "format_time",
    "health_conditions",
    "job_redis_endpoint",
    "merge_conditions",
    "merge_patch_for",
    "progress_text",
    "run_outcome_conditions",
    "shorten",
    "stabilize_replicas",
    "worker_deployment_name",
    "worker_labels",
    "worker_redis_secret_name",
    "worker_selector",
]
