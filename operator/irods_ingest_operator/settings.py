"""Operator configuration: read once, at startup, from ``IRODS_INGEST_OPERATOR_*`` variables."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from irods_ingest.actions import DEFAULT_CACHE_RETENTION_SECONDS, without_credentials
from irods_ingest.errors import ConfigError, ConfigProblem
from irods_ingest_operator.admission import (
    DEFAULT_ALLOWED_VOLUME_TYPES,
    DEFAULT_WORKER_RESOURCES,
    AdmissionPolicy,
    WorkerPodPolicy,
    check_resources,
    image_repository,
    parse_list,
    valid_quantity,
)
from irods_ingest_operator.refs import RedisEndpoint, SecretKeyRef

PREFIX = "IRODS_INGEST_OPERATOR_"
DEFAULT_CREDENTIAL_ROTATION = timedelta(days=7)
DEFAULT_MAX_FAILURE_RECORDS = 1000


class WorkerCredentials(StrEnum):
    PER_JOB = "perJob"  # a Redis ACL user per SyncJob, made and rotated by the operator
    SHARED = "shared"  # one workers' user for every job, from WORKER_REDIS_SECRET / WORKER_REDIS_URL


@dataclass(frozen=True)
class OperatorSettings:
    # Namespaces to watch; empty = the whole cluster.                      NAMESPACES=a,b
    namespaces: tuple[str, ...] = ()
    # The operator's own Redis URL (may hold a password: it never leaves the operator pod).
    # REDIS_URL, falling back to the engine's IRODS_INGEST_REDIS_URL.
    redis_url: str = "redis://127.0.0.1:6379/0"
    # What workers use to reach Redis: a URL without password (WORKER_REDIS_URL), or a Secret
    # key holding the URL (WORKER_REDIS_SECRET=name/key). Defaults to redis_url if it has no password.
    worker_redis: RedisEndpoint = field(default_factory=lambda: RedisEndpoint(url="redis://127.0.0.1:6379/0"))
    # Image for worker pods when a SyncJob names none.                     WORKER_IMAGE
    worker_image: str = "irods-ingest-worker:0.1.0"
    # Service account for worker pods (none: the namespace default).       WORKER_SERVICE_ACCOUNT
    worker_service_account: str | None = None
    # Seconds between reconcile passes of a SyncJob (status, scaling).     RECONCILE_INTERVAL
    reconcile_interval: float = 5.0
    # Scale-down stabilisation window in seconds.                         SCALE_DOWN_WINDOW
    scale_down_window: timedelta = timedelta(seconds=120)
    # Seconds that workers may be wanted with none ready before the SyncJob is Stalled with
    # reason WorkersNotReady and the cause read from the pods.         WORKERS_NOT_READY_AFTER
    workers_not_ready_after: timedelta = timedelta(seconds=60)
    # Port of the Prometheus /metrics endpoint ("" disables).              METRICS_PORT
    metrics_port: int | None = 9101
    # Liveness endpoint ("" disables).                                     LIVENESS_ENDPOINT
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    # Deleting a SyncJob while Redis is down: attempts, and the first delay
    # (doubling) before the deletion proceeds without cleanup.           CLEANUP_ATTEMPTS, CLEANUP_BACKOFF
    cleanup_attempts: int = 5
    cleanup_backoff: float = 2.0
    # Log level and format (json | text).                                  LOG_LEVEL, LOG_FORMAT
    log_level: str = "INFO"
    log_format: str = "json"
    # perJob (default): each SyncJob's workers get a Redis user of their own, reaching only
    # that job's keys; the operator makes it (ACL SETUSER: its own Redis user needs the ACL
    # commands), hands it over in the Secret "<job>-worker-redis" and rotates it. shared: one
    # workers' URL for every job (worker_redis above).                    WORKER_CREDENTIALS
    worker_credentials: WorkerCredentials = WorkerCredentials.PER_JOB
    # perJob: the URL workers use, without credentials (scheme, host, port, db, TLS options);
    # defaults to the operator's URL without its credentials.            WORKER_REDIS_URL
    worker_redis_base_url: str = "redis://127.0.0.1:6379/0"
    # perJob: seconds between rotations of a job's credential (0: never).  CREDENTIAL_ROTATION
    credential_rotation: timedelta | None = DEFAULT_CREDENTIAL_ROTATION
    # What SyncJob authors may ask for: volume kinds of spec.source.volume, and image
    # repositories of spec.workers.image (exact, prefix*, or *; default: the worker image's).
    #                                               ALLOWED_VOLUME_TYPES, ALLOWED_IMAGES
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    # Fixed for every worker pod: WORKER_UID, WORKER_GID, WORKER_FS_GROUP (unset by default),
    # WORKER_TMP_SIZE (size limit of /tmp), WORKER_RESOURCES (JSON; a SyncJob overrides per key).
    pod_policy: WorkerPodPolicy = field(default_factory=WorkerPodPolicy)
    # Failure records kept per run (the rest are counted).               MAX_FAILURE_RECORDS
    max_failure_records: int = DEFAULT_MAX_FAILURE_RECORDS
    # Seconds a deleted SyncJob's change cache is kept for a new SyncJob of the same namespace
    # and settings to adopt (a GitOps rename re-uploads nothing); 0 keeps none.  CACHE_RETENTION
    cache_retention: timedelta = timedelta(seconds=DEFAULT_CACHE_RETENTION_SECONDS)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        env = _Env(dict(os.environ if environ is None else environ))
        get = env.get
        redis_url = get("REDIS_URL") or env.environ.get("IRODS_INGEST_REDIS_URL", "") or cls.redis_url
        credentials = env.choice("WORKER_CREDENTIALS", WorkerCredentials, WorkerCredentials.PER_JOB)
        base_url = get("WORKER_REDIS_URL") or without_credentials(redis_url)
        if credentials is WorkerCredentials.PER_JOB and without_credentials(base_url) != base_url:
            env.problem("WORKER_REDIS_URL", "carries credentials", "give the URL without user and password: each job gets its own")
        worker_redis = _worker_redis(env, credentials, base_url, redis_url)
        rotation = env.number("CREDENTIAL_ROTATION", DEFAULT_CREDENTIAL_ROTATION.total_seconds(), minimum=0.0,
                              fix="give seconds >= 0 (0 never rotates)")
        worker_image = get("WORKER_IMAGE") or cls.worker_image
        admission = AdmissionPolicy(
            allowed_volume_types=frozenset(parse_list(get("ALLOWED_VOLUME_TYPES", ",".join(DEFAULT_ALLOWED_VOLUME_TYPES)))),
            allowed_images=parse_list(get("ALLOWED_IMAGES")) or (image_repository(worker_image),),
        )
        metrics_port: int | None = None
        if get("METRICS_PORT", "9101"):
            metrics_port = env.integer("METRICS_PORT", 9101, 0, 65535)
        log_format = get("LOG_FORMAT", "json").lower()
        if log_format not in ("json", "text"):
            env.problem("LOG_FORMAT", f"{log_format!r} is unknown", "use json or text")
        settings = cls(
            namespaces=parse_list(get("NAMESPACES")),
            redis_url=redis_url,
            worker_redis=worker_redis or RedisEndpoint(url=without_credentials(base_url)),
            worker_image=worker_image,
            worker_service_account=get("WORKER_SERVICE_ACCOUNT") or None,
            reconcile_interval=env.number("RECONCILE_INTERVAL", 5.0),
            scale_down_window=timedelta(seconds=env.number("SCALE_DOWN_WINDOW", 120.0)),
            workers_not_ready_after=timedelta(seconds=env.number("WORKERS_NOT_READY_AFTER", 60.0)),
            liveness_endpoint=get("LIVENESS_ENDPOINT", cls.liveness_endpoint),
            cleanup_attempts=env.integer("CLEANUP_ATTEMPTS", 5, 1, 1000),
            metrics_port=metrics_port,
            cleanup_backoff=env.number("CLEANUP_BACKOFF", 2.0),
            log_level=get("LOG_LEVEL", "INFO"),
            log_format=log_format,
            worker_credentials=credentials,
            worker_redis_base_url=base_url,
            credential_rotation=timedelta(seconds=rotation) if rotation else None,
            admission=admission,
            pod_policy=_pod_policy(env),
            max_failure_records=env.integer("MAX_FAILURE_RECORDS", DEFAULT_MAX_FAILURE_RECORDS, 1, 100_000),
            cache_retention=timedelta(seconds=env.number("CACHE_RETENTION", DEFAULT_CACHE_RETENTION_SECONDS, minimum=0.0,
                                                         fix="give seconds >= 0 (0 keeps no cache)")),
        )
        if env.problems:
            raise ConfigError(env.problems)
        return settings


class _Env:
    """Reads ``IRODS_INGEST_OPERATOR_*`` values, collecting every problem (with the variable and a fix)."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.environ = environ
        self.problems: list[ConfigProblem] = []

    def get(self, name: str, default: str = "") -> str:
        return self.environ.get(PREFIX + name, default).strip()

    def problem(self, name: str, message: str, fix: str) -> None:
        self.problems.append(ConfigProblem(PREFIX + name, message, fix))

    def number(self, name: str, default: float, *, minimum: float | None = None, fix: str = "give a positive number of seconds") -> float:
        text = self.get(name, str(default))
        try:
            value = float(text)
            if (minimum is None and value <= 0) or (minimum is not None and value < minimum):
                raise ValueError
        except ValueError:
            self.problem(name, f"{text!r} is out of range", fix)
            return default
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        text = self.get(name, str(default))
        try:
            value = int(text)
            if not low <= value <= high:
                raise ValueError
        except ValueError:
            self.problem(name, f"{text!r} is not an integer in {low}..{high}", "fix it")
            return default
        return value

    def choice(self, name: str, kind: type[WorkerCredentials], default: WorkerCredentials) -> WorkerCredentials:
        text = self.get(name, default.value)
        try:
            return kind(text)
        except ValueError:
            self.problem(name, f"{text!r} is unknown", f"use one of {', '.join(m.value for m in kind)}")
            return default


def _worker_redis(env: _Env, credentials: WorkerCredentials, base_url: str, redis_url: str) -> RedisEndpoint | None:
    if credentials is WorkerCredentials.PER_JOB:
        return None  # each Deployment names its own job's Secret
    secret = env.get("WORKER_REDIS_SECRET")
    try:
        if secret:
            name, sep, key = secret.replace(":", "/").partition("/")
            if not sep or not name or not key:
                raise ValueError(f"{PREFIX}WORKER_REDIS_SECRET={secret!r}: use NAME/KEY")
            return RedisEndpoint(url_secret=SecretKeyRef(name, key))
        return RedisEndpoint(url=env.get("WORKER_REDIS_URL") or redis_url)
    except ValueError as exc:
        env.problem("WORKER_REDIS_URL", str(exc), f"put the URL in a Secret and set {PREFIX}WORKER_REDIS_SECRET=name/key")
        return None


def _pod_policy(env: _Env) -> WorkerPodPolicy:
    ids: dict[str, int | None] = {}
    for name, default in (("WORKER_UID", "10001"), ("WORKER_GID", "10001"), ("WORKER_FS_GROUP", "")):
        text = env.get(name, default)
        ids[name] = None
        if text:
            try:
                if not 0 < int(text) < 2**31:
                    raise ValueError
                ids[name] = int(text)
            except ValueError:
                env.problem(name, f"{text!r} is not a non-zero id", "use a positive integer (root is never allowed)")
    tmp_size = env.get("WORKER_TMP_SIZE", "1Gi")
    if not valid_quantity(tmp_size):
        env.problem("WORKER_TMP_SIZE", f"{tmp_size!r} is not a quantity", "e.g. 1Gi")
    resources: Mapping[str, Mapping[str, str]] = DEFAULT_WORKER_RESOURCES
    if env.get("WORKER_RESOURCES"):
        try:
            parsed = json.loads(env.get("WORKER_RESOURCES"))
            if not isinstance(parsed, dict):
                raise ValueError("not a JSON object")
            bad = check_resources(parsed)
            if bad:
                raise ValueError("; ".join(bad))
            resources = parsed
        except ValueError as exc:
            env.problem("WORKER_RESOURCES", f"invalid: {exc}",
                        'use JSON such as {"requests": {"cpu": "100m"}, "limits": {"memory": "2Gi"}}')
    return WorkerPodPolicy(
        run_as_user=ids["WORKER_UID"] or 10001,
        run_as_group=ids["WORKER_GID"] or 10001,
        fs_group=ids["WORKER_FS_GROUP"],
        tmp_size=tmp_size,
        default_resources=resources,
    )
