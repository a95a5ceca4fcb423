"""Prometheus metrics of the worker (the operator's live in irods_ingest_operator.metrics).

Base units, ``_total`` counters, low-cardinality labels only: ``job`` (one per job),
``operation``, ``result``, ``kind`` (task kind) and ``call`` (an iRODS operation name) —
never a path. Each metric is documented in docs/metrics.md; the suite scrapes them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REGISTRY: Final = CollectorRegistry(auto_describe=True)

FILES: Final = Counter(
    "irods_ingest_files_total",
    "Files processed by workers, by outcome (synced, unchanged, skipped, excluded, failed, deleted).",
    ["job", "operation", "result"],
    registry=REGISTRY,
)
BYTES: Final = Counter(
    "irods_ingest_bytes_total",
    "Bytes of files processed by workers, by outcome (synced, discovered).",
    ["job", "operation", "result"],
    registry=REGISTRY,
)
TASKS: Final = Counter(
    "irods_ingest_tasks_total",
    "Tasks finished by workers, by kind (scan, files, delete, finalize) and result (done, failed, retried, dropped, rejected).",
    ["job", "kind", "result"],
    registry=REGISTRY,
)
TASK_DURATION: Final = Histogram(
    "irods_ingest_task_duration_seconds",
    "Time to execute one task and acknowledge it.",
    ["job", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
IRODS_CALL_DURATION: Final = Histogram(
    "irods_ingest_irods_call_duration_seconds",
    "Latency of iRODS operations issued by workers, by operation (listing, register, put, ...).",
    ["call"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
    registry=REGISTRY,
)
IRODS_CALL_ERRORS: Final = Counter(
    "irods_ingest_irods_call_errors_total",
    "iRODS operations that failed, by operation and class (retryable, permanent).",
    ["call", "error"],
    registry=REGISTRY,
)
RETRIES: Final = Counter(
    "irods_ingest_retries_total",
    "Files or tasks scheduled for another attempt after a transient failure.",
    ["job", "kind"],
    registry=REGISTRY,
)
CLAIM_WAIT: Final = Histogram(
    "irods_ingest_claim_wait_seconds",
    "Time a worker waited on the queue before it claimed a task.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
    registry=REGISTRY,
)

COUNTER_RESULTS: Final = {
    "files_synced": "synced",
    "files_unchanged": "unchanged",
    "files_skipped": "skipped",
    "files_excluded": "excluded",
    "files_failed": "failed",
    "files_deleted": "deleted",
}


def record_outcome(job: str, operation: str, counters: dict[str, int]) -> None:
    for counter, result in COUNTER_RESULTS.items():
        if counters.get(counter):
            FILES.labels(job, operation, result).inc(counters[counter])
    if counters.get("bytes_synced"):
        BYTES.labels(job, operation, "synced").inc(counters["bytes_synced"])
    if counters.get("bytes_discovered"):
        BYTES.labels(job, operation, "discovered").inc(counters["bytes_discovered"])


@contextmanager
def irods_call(call: str) -> Iterator[None]:
    """Time one iRODS operation; count its failure by class."""
    from irods_ingest.errors import RetryableError

    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        IRODS_CALL_ERRORS.labels(call, "retryable" if isinstance(exc, RetryableError) else "permanent").inc()
        raise
    finally:
        IRODS_CALL_DURATION.labels(call).observe(time.perf_counter() - started)


def serve(port: int, address: str = "0.0.0.0") -> int:
    """Expose /metrics on ``port`` (0 = a free port); returns the port."""
    server, _thread = start_http_server(port, addr=address, registry=REGISTRY)
    return int(server.server_address[1])
