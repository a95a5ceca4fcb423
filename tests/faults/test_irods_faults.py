"""Fault suite: the iRODS server drops connections, fails calls, answers late; workers are SIGTERMed.

The faults come from the iRODS test server itself (``faults.py``: fail the Nth call of an API
with an error code, drop the connection on the Nth call, hold replies back), so the worker
meets them exactly as it would meet a flaky network or a busy catalog. Every case ends by
checking the catalog: each source file is in iRODS exactly once (one object, one replica) with
the right size and content, or exactly the expected files are recorded as failed with a reason
naming the path and the iRODS error; the counts are exact and the run has ended. Seeds are in
the test ids (``trial-<seed>``): a failing trial reruns with ``-k trial-<seed>``.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from irods_ingest import metrics
from irods_ingest.actions import retry_failed, start_job
from irods_ingest.config import Operation
from irods_ingest.jobstate import RunStatus
from irods_ingest.store.connection import connect
from irods_ingest.worker import WorkerOptions, run_worker
from irods_ingest_testkit.irods_server import IrodsTestServer
from irods_ingest_testkit.irods_server.api import API_NAMES
from irods_ingest_testkit.irods_server.errors import (
    CAT_NO_ACCESS_PERMISSION,
    LOCKED_DATA_OBJECT_ACCESS,
    SYS_SOCK_READ_ERR,
)
from testsupport.ingest import Ingest

from .test_crashes import make_source, process_env, wait_for, worker

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]

API = {name: number for number, name in API_NAMES.items()}
OPEN = API["DATA_OBJ_OPEN_AN"]  # PRC's put opens (creating) the object, then writes and closes
WRITE = API["DATA_OBJ_WRITE_AN"]
REGISTER = API["PHY_PATH_REG_AN"]
GEN_QUERY = API["GEN_QUERY_AN"]
FAST_RETRIES: dict[str, Any] = {"retry_backoff_seconds": 0.05, "max_retries": 3}

# Each file's pre-create hook leaves a mark (so a test can see a batch is mid-flight, which the
# run's counters, changed only at acknowledgement, cannot show) and is slow while FLAG exists.
MARKING_HOOK = """
import os, time
from irods_capability_automated_ingest.core import Core
MARKS, FLAG = {marks!r}, {flag!r}
class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        with open(MARKS, "a") as handle:
            handle.write(meta["path"] + "\\n")
        if os.path.exists(FLAG):
            time.sleep({delay})
"""


@pytest.fixture
def server(irods_test_server: IrodsTestServer) -> Iterator[IrodsTestServer]:
    """The test server with no faults before and after (it is shared by the whole session)."""
    irods_test_server.clear_faults()
    yield irods_test_server
    irods_test_server.clear_faults()


def calls(server: IrodsTestServer, api: int) -> int:
    return server.api_counts().get(api, 0)


def retries(job: str, kind: str = "files") -> float:
    value = metrics.REGISTRY.get_sample_value("irods_ingest_retries_total", {"job": job, "kind": kind})
    return value or 0.0


def assert_landed(ingest: Ingest, files: dict[str, bytes], missing: frozenset[str] = frozenset()) -> None:
    """Every file except ``missing`` is in iRODS exactly once, complete; ``missing`` are not."""
    found = ingest.objects()  # keyed by relative path: a second object of one path cannot hide
    assert set(found) == set(files) - missing, sorted(set(found) ^ (set(files) - missing))
    for rel, obj in found.items():
        assert len(obj.replicas) == 1, f"{rel} has {len(obj.replicas)} replicas"
        assert obj.replicas[0].status == "1", f"{rel}: replica not good"
        assert obj.size == len(files[rel]), rel
        assert ingest.read(rel) == files[rel], rel


def assert_done(status: RunStatus, files: int, *, synced: int | None = None) -> None:
    assert status.state == "done", status
    c = status.counters
    assert c["files_discovered"] == files, c
    assert c["files_synced"] + c["files_unchanged"] == files and c["files_failed"] == 0, c
    if synced is not None:
        assert c["files_synced"] == synced, c
    assert (status.queued, status.delayed, status.in_flight) == (0, 0, 0)


def only_failure(ingest: Ingest) -> dict[str, Any]:
    failures = ingest.failures()
    assert len(failures) == 1, failures
    failure: dict[str, Any] = failures[0]
    return failure


def relative(ingest: Ingest, path: str) -> str:
    return os.path.relpath(path, ingest.source)


# ------------------------------------------------------------------ 1. a dropped connection


@pytest.mark.parametrize(("operation", "api"), [(Operation.PUT, WRITE), (Operation.PUT, OPEN),
                                                (Operation.REGISTER_SYNC, REGISTER)],
                         ids=["put-write", "put-open", "register"])
def test_connection_dropped_on_the_nth_data_call(operation: Operation, api: int, server: IrodsTestServer,
                                                  ingest: Ingest) -> None:
    files = make_source(ingest.source, random.Random(1), 12)
    server.drop_connection(api=api, nth=3)
    connections = server.faults.connections
    before = retries(ingest.job)
    status = ingest.run(operation=operation, files_per_task=4, **FAST_RETRIES)
    assert not server.faults.active(), "the drop never happened"
    assert server.faults.connections > connections
    assert retries(ingest.job) == before + 1  # exactly the one file was retried, in a new task
    server.clear_faults()
    assert_done(status, len(files), synced=len(files))
    assert_landed(ingest, files)


# ------------------------------------------------------------------ 2. drops at random points


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"trial-{s}") for s in range(6)])
def test_connections_dropped_at_random_points(seed: int, server: IrodsTestServer, ingest: Ingest) -> None:
    rng = random.Random(seed)
    files = make_source(ingest.source, rng, 16)
    operation = Operation.PUT if seed % 2 == 0 else Operation.REGISTER_SYNC
    # A clean run of these 16 files makes at least 127 (register) or 252 (put) calls, of every
    # kind: logins, collection checks and creates, listings, opens, writes, closes, registrations.
    drops = sorted(rng.sample(range(1, 120), 4))
    for nth in drops:
        server.drop_connection(nth=nth)
    status = ingest.run(operation=operation, files_per_task=rng.choice([1, 3, 16]), **FAST_RETRIES)
    assert not server.faults.active(), f"drops {drops}: some never happened"
    server.clear_faults()
    assert_done(status, len(files), synced=len(files))
    assert_landed(ingest, files)


# ------------------------------------------------------------------ 3. transient errors, retried


@pytest.mark.parametrize(("operation", "api", "code"), [(Operation.REGISTER_SYNC, REGISTER, LOCKED_DATA_OBJECT_ACCESS),
                                                        (Operation.PUT, OPEN, SYS_SOCK_READ_ERR)],
                         ids=["register-locked", "put-sock-read"])
def test_retryable_error_on_the_nth_call_is_retried(operation: Operation, api: int, code: int,
                                                    server: IrodsTestServer, ingest: Ingest) -> None:
    files = make_source(ingest.source, random.Random(2), 10)
    server.reset_counts()
    server.fail_nth(api, nth=2, code=code, times=2)  # fewer than the 4 attempts allowed
    before = retries(ingest.job)
    status = ingest.run(operation=operation, files_per_task=5, **FAST_RETRIES)
    assert not server.faults.active()
    assert calls(server, api) == len(files) + 2  # each file once, and the two refused calls
    assert retries(ingest.job) >= before + 1  # visible: irods_ingest_retries_total{kind="files"}
    assert status.counters["tasks_enqueued"] >= 3  # the retries went through the delayed queue
    server.clear_faults()
    assert_done(status, len(files), synced=len(files))
    assert_landed(ingest, files)
    assert ingest.failures() == []


# ------------------------------------------------------------------ 4. permanent failures


@pytest.mark.parametrize(("operation", "api"), [(Operation.REGISTER_SYNC, REGISTER), (Operation.PUT, OPEN)],
                         ids=["register", "put"])
def test_permanent_error_fails_exactly_that_file_and_retry_fixes_it(
    operation: Operation, api: int, server: IrodsTestServer, ingest: Ingest, tmp_path: Path
) -> None:
    files = make_source(ingest.source, random.Random(4), 10)
    server.reset_counts()
    server.fail_nth(api, nth=3, code=CAT_NO_ACCESS_PERMISSION)
    status = ingest.run(operation=operation, files_per_task=3, **FAST_RETRIES)
    server.clear_faults()
    assert calls(server, api) == len(files)  # the refused call was not repeated
    failure = only_failure(ingest)
    victim = relative(ingest, failure["path"])
    assert victim in files
    assert "CAT_NO_ACCESS_PERMISSION" in failure["reason"] and ingest.logical(victim) in failure["reason"], failure
    assert failure["attempts"] == 1
    assert status.state == "failed"
    c = status.counters
    assert (c["files_discovered"], c["files_synced"], c["files_failed"]) == (len(files), len(files) - 1, 1), c
    assert_landed(ingest, files, missing=frozenset({victim}))

    # The operator's way back: `irods-ingest retry JOB` redoes only the failed file.
    env = process_env(ingest.redis_url, ingest.env)
    retry = subprocess.run([sys.executable, "-m", "irods_ingest", "retry", ingest.job, "--workers", "1"],
                           env=env, capture_output=True, timeout=60, check=False)
    assert retry.returncode == 0, retry.stderr.decode()
    assert_done(ingest.runs.status(), 1, synced=1)
    assert_landed(ingest, files)


def test_retryable_error_past_the_attempt_limit_fails_the_file(server: IrodsTestServer, ingest: Ingest) -> None:
    files = make_source(ingest.source, random.Random(5), 8)
    assert_done(ingest.run(operation=Operation.REGISTER_SYNC), len(files))
    ingest.write("late.bin", b"late arrival")
    files["late.bin"] = b"late arrival"
    server.reset_counts()
    # Only the new file registers in the second run: every attempt at it is refused.
    server.fail_nth(REGISTER, nth=1, code=LOCKED_DATA_OBJECT_ACCESS, times=0)  # times=0: every call
    status = ingest.run(operation=Operation.REGISTER_SYNC, retry_backoff_seconds=0.05, max_retries=2)
    server.clear_faults()
    assert calls(server, REGISTER) == 3  # max_retries + 1 attempts, then given up
    failure = only_failure(ingest)
    assert relative(ingest, failure["path"]) == "late.bin"
    assert "LOCKED_DATA_OBJECT_ACCESS" in failure["reason"] and ingest.logical("late.bin") in failure["reason"]
    assert failure["attempts"] == 3
    c = status.counters
    assert status.state == "failed" and (c["files_unchanged"], c["files_failed"], c["files_synced"]) == (8, 1, 0), c
    assert_landed(ingest, files, missing=frozenset({"late.bin"}))

    # Once the fault is gone, a retry run (actions.retry_failed) redoes just that file.
    assert retry_failed(connect(ingest.redis_url), ingest.job).started
    run_worker(WorkerOptions(jobs=[ingest.job], redis_url=ingest.redis_url, exit_when_idle=True,
                             irods_settings=ingest.settings), install_signals=False)
    assert_done(ingest.runs.status(), 1, synced=1)
    assert_landed(ingest, files)


# ------------------------------------------------------------------ 5. listings failing


def test_listing_queries_failing_or_dropped_retry_the_task(server: IrodsTestServer, ingest: Ingest,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    files = make_source(ingest.source, random.Random(6), 12)
    # GenQuery serves the engine's collection checks (scan tasks) and listings (file tasks).
    server.fail_nth(GEN_QUERY, nth=2, code=SYS_SOCK_READ_ERR, times=2)
    server.drop_connection(api=GEN_QUERY, nth=9)
    server.drop_connection(api=GEN_QUERY, nth=14)
    with caplog.at_level(logging.WARNING, logger="irods_ingest.execute"):
        status = ingest.run(operation=Operation.REGISTER_SYNC, files_per_task=2, **FAST_RETRIES)
    assert not server.faults.active()
    server.clear_faults()
    retried = [r for r in caplog.records if r.getMessage() == "task_retry"]
    assert len(retried) >= 3, [r.__dict__.get("error") for r in retried]  # whole tasks were redone
    assert_done(status, len(files), synced=len(files))
    assert_landed(ingest, files)


# ------------------------------------------------------------------ 6. a server answering too late


def test_reply_later_than_the_time_limit_times_the_file_out(server: IrodsTestServer, ingest: Ingest) -> None:
    files = make_source(ingest.source, random.Random(8), 6)
    late = 5.0
    server.delay_replies(late, api=REGISTER, times=1)  # the first registration answers after 5 s
    started = time.monotonic()
    status = ingest.run(operation=Operation.REGISTER_SYNC, task_timeout_seconds=1, workers=1, **FAST_RETRIES)
    took = time.monotonic() - started
    failure = only_failure(ingest)
    victim = relative(ingest, failure["path"])
    assert failure["reason"] == "timed out after 1 s", failure
    assert status.state == "failed"
    c = status.counters
    assert (c["files_synced"], c["files_failed"]) == (len(files) - 1, 1), c
    # The worker gave up on the call at its time limit, not when the server finally answered.
    assert took < late, f"the run took {took:.1f} s: the worker waited for the late reply"
    # The server still carries the late call out: the object appears after all ...
    wait_for("the late registration", lambda: victim in ingest.objects(), timeout=late + 10)
    # ... and the retry finds it there and counts it once, as unchanged.
    assert retry_failed(connect(ingest.redis_url), ingest.job).started
    run_worker(WorkerOptions(jobs=[ingest.job], redis_url=ingest.redis_url, exit_when_idle=True,
                             irods_settings=ingest.settings), install_signals=False)
    assert_done(ingest.runs.status(), 1, synced=0)
    assert_landed(ingest, files)


# ------------------------------------------------------------------ 7. SIGTERM mid-batch


def test_sigterm_mid_batch_requeues_the_rest(server: IrodsTestServer, ingest: Ingest, tmp_path: Path) -> None:
    files = {f"f{i:03}.bin": random.Random(i).randbytes(64 * i) for i in range(60)}
    for rel, data in files.items():
        ingest.write(rel, data)
    marks, flag = tmp_path / "marks", tmp_path / "slow"
    flag.touch()
    hook = MARKING_HOOK.format(marks=str(marks), flag=str(flag), delay=0.25)
    client = connect(ingest.redis_url)
    # One batch of all 60 files: at 0.25 s a file it would outlast the grace period below.
    start_job(client, ingest.config(operation=Operation.PUT, files_per_task=100), hook)
    env = process_env(ingest.redis_url, ingest.env)
    first = worker(env, ingest.job, tmp_path / "first.log")
    try:
        wait_for("the batch to be mid-flight", lambda: marks.exists() and len(marks.read_text().splitlines()) >= 4)
        first.send_signal(signal.SIGTERM)
        # Warm: the file in hand finishes, the other ~55 (14 s of work) go back to the queue.
        assert first.wait(5.0) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    flag.unlink()  # the rest of the batch goes fast
    mid = ingest.runs.status()
    done_by_first = mid.counters["files_synced"]
    assert 4 <= done_by_first < len(files), mid.counters
    assert mid.in_flight == 0 and mid.queued == 1, mid  # the unfinished files, as one task
    assert len(ingest.objects()) == done_by_first  # exactly the acknowledged files are in iRODS
    second = worker(env, ingest.job, tmp_path / "second.log")
    try:
        wait_for("the run to end", lambda: not ingest.runs.status().active, timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    assert_done(ingest.runs.status(), len(files), synced=len(files))
    assert_landed(ingest, files)
    # No file's hook ran twice: nothing was redone.
    assert sorted(marks.read_text().splitlines()) == sorted(str(ingest.source / rel) for rel in files)
