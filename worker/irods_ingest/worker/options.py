"""What a worker process is told (options, timing), how it is told to stop, and what it keeps secret."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from irods_ingest.irods_io.session import IrodsSettings
from irods_ingest.redact import Redactor, url_user, worker_secrets
from irods_ingest.store.connection import resolve_url

HEARTBEAT_TTL_SECONDS = 15.0
HEARTBEAT_TTL_ENV = "IRODS_INGEST_HEARTBEAT_TTL"


@dataclass(frozen=True)
class Timing:
    """How fast a dead worker is noticed: its heartbeat expires after ``heartbeat_ttl``."""

    heartbeat_ttl: float = HEARTBEAT_TTL_SECONDS

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_ttl / 5

    @property
    def reap_interval(self) -> float:
        return self.heartbeat_ttl / 3

    @classmethod
    def from_environment(cls) -> Timing:
        value = os.environ.get(HEARTBEAT_TTL_ENV)
        return cls(heartbeat_ttl=float(value)) if value else cls()


@dataclass
class WorkerOptions:
    jobs: Sequence[str]
    redis_url: str | None = None
    concurrency: int = 1
    exit_when_idle: bool = False  # stop once every job's current run has ended
    metrics_port: int | None = None  # serve Prometheus metrics on this port (0 = any free port)
    timing: Timing = field(default_factory=Timing.from_environment)
    irods_settings: IrodsSettings | None = None
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")


class ShutdownState:
    def __init__(self) -> None:
        self.warm = threading.Event()
        self.cold = threading.Event()

    def request(self) -> None:
        if self.warm.is_set():
            self.cold.set()
        self.warm.set()


def worker_redactor(options: WorkerOptions) -> Redactor:
    """The secrets this worker knows, to be kept out of what it writes to Redis (names that
    are public anyway -- the iRODS user and zone, the Redis user -- are never masked)."""
    settings = options.irods_settings
    redis_url = resolve_url(options.redis_url)
    public = [os.environ.get("IRODS_USER_NAME", ""), os.environ.get("IRODS_ZONE_NAME", ""), url_user(redis_url)]
    if settings is not None:
        public += [settings.user or "", settings.zone or ""]
    secrets = worker_secrets(os.environ, redis_url=redis_url, irods_password=settings.password if settings else "")
    return Redactor(secrets, public=[name for name in public if name])
