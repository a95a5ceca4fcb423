"""A run served by worker processes on this machine: spawn them, follow the run, reap them.

The one sequence behind ``irods-ingest start --workers N``, ``retry --workers N``, ``watch``
and the test kit's ``demo``: N ``irods-ingest worker --exit-when-idle`` processes serve the
job, the run is followed until it ends (each status read handed to a :class:`Progress`), the
workers are reaped, and the job's status read after that is returned. With no workers the
run is only followed (workers elsewhere serve it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from irods_ingest.actions.job import JobActions
from irods_ingest.actions.runs import watch
from irods_ingest.jobstate import RunStatus
from irods_ingest.store.connection import RedisClient

POLL_INTERVAL_SECONDS: Final = 0.25
# How long workers get to exit on their own once the run has ended (they exit when idle).
REAP_GRACE_SECONDS: Final = 30.0


@dataclass(frozen=True)
class LocalWorkers:
    """``count`` worker processes for one job, started with this interpreter."""

    count: int
    redis_url: str | None = None  # handed over in the environment, never on the command line
    log_level: str = "WARNING"
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment (e.g. S3 credentials)


class Progress(Protocol):
    """Shows a run to a user while it is followed."""

    def update(self, status: RunStatus) -> None:
        """Every status read, the last one included."""

    def finish(self, status: RunStatus) -> None:
        """The last status read again, once the run has ended (or was replaced by another)."""


def spawn_workers(job: str, workers: LocalWorkers) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "irods_ingest", "worker", "--job", job, "--exit-when-idle",
               "--log-level", workers.log_level]
    env = dict(os.environ) | dict(workers.env)
    if workers.redis_url:
        env["IRODS_INGEST_REDIS_URL"] = workers.redis_url
    return [subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL) for _ in range(workers.count)]


def reap_workers(processes: Sequence[subprocess.Popen[bytes]], grace: float = REAP_GRACE_SECONDS) -> None:
    """Wait up to ``grace`` seconds for the workers to exit, then terminate (and kill) the rest."""
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def follow(client: RedisClient, job: str, run_id: str | None, progress: Progress | None = None) -> RunStatus:
    """Read the job's status until its run (``run_id``, or the current one) ends; return the last."""
    last: RunStatus | None = None
    for status in watch(client, job, interval=POLL_INTERVAL_SECONDS, run_id=run_id):
        last = status
        if progress is not None:
            progress.update(status)
    assert last is not None  # watch yields at least once
    if progress is not None:
        progress.finish(last)
    return last


def run_with_local_workers(
    client: RedisClient,
    job: str,
    run_id: str | None,
    workers: LocalWorkers,
    progress: Progress | None = None,
) -> RunStatus:
    """Serve the run with ``workers`` (none when ``workers.count`` is 0), follow it to its end,
    reap the workers and return the job's final status."""
    processes = spawn_workers(job, workers) if workers.count > 0 else []
    try:
        follow(client, job, run_id, progress)
    finally:
        reap_workers(processes)
    return JobActions(client, job).status()
