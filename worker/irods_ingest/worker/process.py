"""Running a worker process: its threads, their heartbeats, the signals that stop them."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from irods_ingest import metrics
from irods_ingest.errors import IngestError, StoreUnavailable
from irods_ingest.handlers import HandlerCache
from irods_ingest.worker.options import ShutdownState, Timing, WorkerOptions, worker_redactor
from irods_ingest.worker.thread import WorkerThread

log = logging.getLogger("irods_ingest.worker")


def _heartbeats(threads: list[WorkerThread], shutdown: ShutdownState, timing: Timing) -> None:
    while not shutdown.cold.wait(timing.heartbeat_interval):
        if shutdown.warm.is_set() and all(t.current is None for t in threads):
            return
        for thread in threads:
            try:
                thread.heartbeat()
            except IngestError as exc:  # Redis away: the next beat tries again
                log.warning("heartbeat_failed", extra={"worker": thread.worker_id, "error": str(exc)})


def run_worker(options: WorkerOptions, *, install_signals: bool = True) -> int:
    """Run ``options.concurrency`` worker threads until shutdown (or idle, if asked)."""
    shutdown = ShutdownState()
    handlers: dict[str, HandlerCache] = {}
    if options.metrics_port is not None:
        port = metrics.serve(options.metrics_port)
        log.info("metrics_serving", extra={"port": port})
    redactor = worker_redactor(options)  # once per process: the secrets do not change
    threads: list[WorkerThread] = [
        WorkerThread(options, i, shutdown, handlers, redactor) for i in range(options.concurrency)
    ]

    if install_signals:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            shutdown.request()
            log.warning("shutdown_requested", extra={"signal": signum, "cold": shutdown.cold.is_set()})
            if shutdown.cold.is_set():
                for thread in threads:
                    thread.requeue_current()
                os._exit(1)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def wrapper() -> None:
            try:
                target()
            except StoreUnavailable as exc:  # Redis gone past the adapter's retries: stop this thread
                errors.append(exc)
                log.error("worker_thread_stopped", extra={"error": str(exc)})
                shutdown.warm.set()

        return wrapper

    runners = [threading.Thread(target=guarded(t.run), name=t.worker_id, daemon=True) for t in threads]
    for runner in runners:
        runner.start()
    # Heartbeats come from their own thread, so that a long task never looks like a dead worker.
    heartbeat = threading.Thread(target=_heartbeats, args=(threads, shutdown, options.timing), name="heartbeat", daemon=True)
    heartbeat.start()
    try:
        while any(r.is_alive() for r in runners):
            for runner in runners:
                runner.join(timeout=0.5)
    finally:
        # Every runner has ended: stop the heartbeat thread before unregistering, or (when
        # run_worker is called in a long-lived process) it would beat for this worker forever.
        shutdown.cold.set()
        heartbeat.join(timeout=options.timing.heartbeat_interval + 5)
        for thread in threads:
            thread.close()
    return 1 if errors else 0
