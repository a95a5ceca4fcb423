"""Operator configuration: read once, at startup, from ``IRODS_INGEST_OPERATOR_*`` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from irods_ingest.errors import ConfigError, ConfigProblem
from irods_ingest_operator.builders import RedisEndpoint, SecretKeyRef

PREFIX = "IRODS_INGEST_OPERATOR_"


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

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        env = dict(os.environ if environ is None else environ)

        def get(name: str, default: str = "") -> str:
            return env.get(PREFIX + name, default).strip()

        problems: list[ConfigProblem] = []
        redis_url = get("REDIS_URL") or env.get("IRODS_INGEST_REDIS_URL", "") or cls.redis_url
        worker_redis: RedisEndpoint | None = None
        secret = get("WORKER_REDIS_SECRET")
        try:
            if secret:
                name, sep, key = secret.replace(":", "/").partition("/")
                if not sep or not name or not key:
                    raise ValueError(f"{PREFIX}WORKER_REDIS_SECRET={secret!r}: use NAME/KEY")
                worker_redis = RedisEndpoint(url_secret=SecretKeyRef(name, key))
            else:
                worker_redis = RedisEndpoint(url=get("WORKER_REDIS_URL") or redis_url)
        except ValueError as exc:
            problems.append(ConfigProblem(PREFIX + "WORKER_REDIS_URL", str(exc),
                                          f"put the URL in a Secret and set {PREFIX}WORKER_REDIS_SECRET=name/key"))
        numbers: dict[str, float] = {}
        for name, default in (("RECONCILE_INTERVAL", "5"), ("SCALE_DOWN_WINDOW", "120"), ("CLEANUP_BACKOFF", "2")):
            try:
                numbers[name] = float(get(name, default))
                if numbers[name] <= 0:
                    raise ValueError
            except ValueError:
                problems.append(ConfigProblem(PREFIX + name, f"{get(name)!r} is not a positive number of seconds", "fix it"))
        try:
            cleanup_attempts = int(get("CLEANUP_ATTEMPTS", "5"))
            if cleanup_attempts < 1:
                raise ValueError
        except ValueError:
            cleanup_attempts = 5
            problems.append(ConfigProblem(PREFIX + "CLEANUP_ATTEMPTS", f"{get('CLEANUP_ATTEMPTS')!r} is not a positive integer", "fix it"))
        metrics_port: int | None = None
        if get("METRICS_PORT", "9101"):
            try:
                metrics_port = int(get("METRICS_PORT", "9101"))
            except ValueError:
                problems.append(ConfigProblem(PREFIX + "METRICS_PORT", f"{get('METRICS_PORT')!r} is not a port", "fix it"))
        log_format = get("LOG_FORMAT", "json").lower()
        if log_format not in ("json", "text"):
            problems.append(ConfigProblem(PREFIX + "LOG_FORMAT", f"{log_format!r} is unknown", "use json or text"))
        if problems or worker_redis is None:
            raise ConfigError(problems)
        return cls(
            namespaces=tuple(n.strip() for n in get("NAMESPACES").split(",") if n.strip()),
            redis_url=redis_url,
            worker_redis=worker_redis,
            worker_image=get("WORKER_IMAGE") or cls.worker_image,
            worker_service_account=get("WORKER_SERVICE_ACCOUNT") or None,
            reconcile_interval=numbers["RECONCILE_INTERVAL"],
            scale_down_window=timedelta(seconds=numbers["SCALE_DOWN_WINDOW"]),
            liveness_endpoint=get("LIVENESS_ENDPOINT", cls.liveness_endpoint),
            cleanup_attempts=cleanup_attempts,
            metrics_port=metrics_port,
            cleanup_backoff=numbers["CLEANUP_BACKOFF"],
            log_level=get("LOG_LEVEL", "INFO"),
            log_format=log_format,
        )
