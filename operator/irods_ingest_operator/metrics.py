"""Prometheus metrics of the operator: per-job queue, workers, runs and sync times.

Labels are ``namespace`` and ``job`` (one series per SyncJob) and ``outcome``; see
docs/metrics.md.
"""

from __future__ import annotations

import contextlib
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

REGISTRY: Final = CollectorRegistry(auto_describe=True)

QUEUE_DEPTH: Final = Gauge(
    "irods_ingest_queue_depth_tasks", "Tasks queued (ready or waiting for a retry) for the job's current run.",
    ["namespace", "job"], registry=REGISTRY)
IN_FLIGHT: Final = Gauge(
    "irods_ingest_tasks_in_flight", "Tasks claimed by workers and not yet acknowledged.",
    ["namespace", "job"], registry=REGISTRY)
WORKERS_DESIRED: Final = Gauge(
    "irods_ingest_workers_desired", "Worker replicas the operator asked for.", ["namespace", "job"], registry=REGISTRY)
WORKERS_READY: Final = Gauge(
    "irods_ingest_workers_ready", "Worker replicas reported ready by the Deployment.", ["namespace", "job"],
    registry=REGISTRY)
RUN_ACTIVE: Final = Gauge(
    "irods_ingest_run_active", "1 while the job has a run in progress, else 0.", ["namespace", "job"], registry=REGISTRY)
RUNS: Final = Counter(
    "irods_ingest_runs_total", "Runs that ended, by outcome (succeeded, failed).", ["namespace", "job", "outcome"],
    registry=REGISTRY)
RECONCILE_ERRORS: Final = Counter(
    "irods_ingest_reconcile_errors_total", "Reconcile passes that failed (retried by the operator).",
    ["namespace", "job", "error"], registry=REGISTRY)
LAST_SUCCESSFUL_SYNC: Final = Gauge(
    "irods_ingest_last_successful_sync_timestamp_seconds",
    "Unix time at which the job's last successful run ended.", ["namespace", "job"], registry=REGISTRY)


def forget(namespace: str, job: str) -> None:
    """Drop a deleted job's series."""
    for gauge in (QUEUE_DEPTH, IN_FLIGHT, WORKERS_DESIRED, WORKERS_READY, RUN_ACTIVE, LAST_SUCCESSFUL_SYNC):
        with contextlib.suppress(KeyError):  # never reported for this job
            gauge.remove(namespace, job)


def serve(port: int, address: str = "0.0.0.0") -> int:
    server, _thread = start_http_server(port, addr=address, registry=REGISTRY)
    return int(server.server_address[1])
