"""Whole runs through the real queue and worker, with NoOp jobs (no iRODS needed).

NoOp syncs call no iRODS API, so these tests exercise scanning, batching, acks,
counting, finalize, warm shutdown and dead-worker recovery on a real redis-server alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from irods_ingest.actions import start_job
from irods_ingest.config import JobConfig, Operation
from irods_ingest.irods_io.session import IrodsSettings
from irods_ingest.jobstate import FailureLog, RunState, RunStatus
from irods_ingest.store.connection import connect
from irods_ingest.worker import Timing, WorkerOptions, run_worker

pytestmark = pytest.mark.redis

UNUSED_IRODS = IrodsSettings(host="127.0.0.1", port=1, user="nobody", zone="tempZone", password="x")


def make_tree(root: Path, dirs: int, files_per_dir: int) -> int:
    count = 0
    for d in range(dirs):
        directory = root / f"d{d % 5}" / f"sub{d}"
        directory.mkdir(parents=True, exist_ok=True)
        for f in range(files_per_dir):
            (directory / f"f{f}.dat").write_bytes(b"x" * (f + 1))
            count += 1
    return count


def noop_config(name: str, root: Path, **changes: object) -> JobConfig:
    return JobConfig(job_name=name, source_path=str(root), target_collection="/tempZone/home/rods/n", operation=Operation.NO_OP).with_changes(**changes)


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_counts_every_file_once_and_finishes(redis_url: str, tmp_path: Path) -> None:
    total = make_tree(tmp_path / "src", dirs=12, files_per_dir=9)
    client = connect(redis_url)
    start_job(client, noop_config("noop", tmp_path / "src", files_per_task=4))
    assert run_worker(WorkerOptions(jobs=["noop"], redis_url=redis_url, concurrency=3, exit_when_idle=True, irods_settings=UNUSED_IRODS), install_signals=False) == 0
    status = RunState(client, "noop").status()
    assert status.state == "done", status
    c = status.counters
    assert (c["files_discovered"], c["files_synced"], c["files_failed"]) == (total, total, 0)
    assert c["bytes_discovered"] == 12 * sum(range(1, 10))
    # scans: root + 5 + 12 directories; batches: ceil(9/4)=3 per leaf directory; + finalize
    assert c["tasks_done"] == 18 + 12 * 3
    assert c["tasks_enqueued"] == 18 + 12 * 3 + 1
    assert (status.queued, status.delayed, status.in_flight) == (0, 0, 0)

    # a second run finds everything unchanged through the per-directory cache
    start_job(client, noop_config("noop", tmp_path / "src", files_per_task=4))
    run_worker(WorkerOptions(jobs=["noop"], redis_url=redis_url, concurrency=2, exit_when_idle=True, irods_settings=UNUSED_IRODS), install_signals=False)
    again = RunState(client, "noop").status()
    assert (again.state, again.counters["files_unchanged"], again.counters["files_synced"]) == ("done", total, 0)


def test_scan_tasks_cover_many_directories_and_hand_back_groups(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan task lists up to its budget of directories and returns the rest of its subtree
    to the queue in groups; the counters still count every directory scan once, and nothing
    is listed twice or missed."""
    from irods_ingest.execute import scan
    from irods_ingest.metrics import REGISTRY

    monkeypatch.setattr(scan, "SCAN_BUDGET_DIRECTORIES", 4)
    monkeypatch.setattr(scan, "SCAN_GROUP_DIRECTORIES", 3)
    root = tmp_path / "src"
    size = 0
    for top in range(30):
        for sub in range(2):
            directory = root / f"t{top:02d}" / f"s{sub}"
            directory.mkdir(parents=True)
            for f in range(3):
                (directory / f"f{f}").write_bytes(b"y" * (top + f))
                size += top + f
    directories, files = 1 + 30 + 60, 30 * 2 * 3

    def scan_tasks() -> float:
        return REGISTRY.get_sample_value("irods_ingest_tasks_total", {"job": "wide", "kind": "scan", "result": "done"}) or 0.0

    client = connect(redis_url)
    for attempt in ("first", "rescan"):
        claimed_before = scan_tasks()
        start_job(client, noop_config("wide", root, files_per_task=5))
        assert run_worker(WorkerOptions(jobs=["wide"], redis_url=redis_url, concurrency=2, exit_when_idle=True,
                                        irods_settings=UNUSED_IRODS), install_signals=False) == 0
        status = RunState(client, "wide").status()
        c = status.counters
        assert status.state == "done", (status, FailureLog(client, "wide").records())
        assert c["files_discovered"] == files and c["files_failed"] == 0
        batches = 60 if attempt == "first" else 0  # a rescan finds everything unchanged: no batches
        assert c["tasks_done"] == directories + batches
        assert c["tasks_enqueued"] == directories + batches + 1  # + finalize
        claimed = scan_tasks() - claimed_before
        # the root task scans 4 directories and hands back groups of 3: far fewer claims than directories
        assert 1 < claimed <= directories / 3, claimed
        if attempt == "first":
            # listed by name, then stat'ed by the batch that synced them: every byte counted once
            assert (c["files_synced"], c["bytes_discovered"]) == (files, size)
        else:
            assert (c["files_unchanged"], c["files_synced"], c["bytes_discovered"]) == (files, 0, size)


def _worker_process(redis_url: str, job: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "IRODS_INGEST_REDIS_URL": redis_url, "IRODS_INGEST_HEARTBEAT_TTL": "1", "IRODS_HOST": "127.0.0.1", "IRODS_PORT": "1",
           "IRODS_USER_NAME": "x", "IRODS_ZONE_NAME": "tempZone", "IRODS_PASSWORD": "x"}
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "irods_ingest", "worker", "--job", job, "--exit-when-idle", "--log-level", "INFO"],
        env=env, stdout=handle, stderr=handle, stdin=subprocess.DEVNULL,
    )


SLOW_HANDLER = """
import time
from irods_capability_automated_ingest.core import Core
class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        time.sleep(0.02)
"""


def test_sigkilled_worker_loses_nothing(redis_url: str, tmp_path: Path) -> None:
    total = make_tree(tmp_path / "src", dirs=6, files_per_dir=20)
    client = connect(redis_url)
    start_job(client, noop_config("kill", tmp_path / "src", files_per_task=5), SLOW_HANDLER)
    runs = RunState(client, "kill")
    victim = _worker_process(redis_url, "kill", tmp_path / "victim.log")
    wait_for(lambda: runs.status().counters["files_synced"] >= 10, what="the victim to make progress")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert runs.status().in_flight >= 0
    # A survivor requeues the victim's tasks once its heartbeat expires (1 s in this test).
    assert run_worker(WorkerOptions(jobs=["kill"], redis_url=redis_url, concurrency=2, exit_when_idle=True,
                                    irods_settings=UNUSED_IRODS, timing=Timing(heartbeat_ttl=1.0)),
                      install_signals=False) == 0
    status = runs.status()
    assert status.state == "done", (status, FailureLog(client, "kill").records())
    assert status.counters["files_synced"] == total
    assert status.counters["files_discovered"] == total


def test_sigterm_is_a_warm_shutdown(redis_url: str, tmp_path: Path) -> None:
    total = make_tree(tmp_path / "src", dirs=4, files_per_dir=25)
    client = connect(redis_url)
    start_job(client, noop_config("term", tmp_path / "src", files_per_task=25), SLOW_HANDLER)
    runs = RunState(client, "term")
    worker = _worker_process(redis_url, "term", tmp_path / "term.log")
    wait_for(lambda: runs.status().counters["files_synced"] >= 25, what="a first batch")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0  # it finishes the file in hand, requeues the rest of its batch, exits
    mid: RunStatus = runs.status()
    assert mid.in_flight == 0  # nothing left claimed by the departed worker
    assert mid.counters["files_synced"] < total and mid.queued >= 1  # the unfinished files wait in the queue
    run_worker(WorkerOptions(jobs=["term"], redis_url=redis_url, concurrency=1, exit_when_idle=True, irods_settings=UNUSED_IRODS), install_signals=False)
    final = runs.status()
    assert final.state == "done" and final.counters["files_synced"] == total


def test_departed_workers_leave_no_bookkeeping(redis_url: str, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", dirs=2, files_per_dir=3)
    client = connect(redis_url)
    start_job(client, noop_config("tidy", tmp_path / "src"))
    run_worker(WorkerOptions(jobs=["tidy"], redis_url=redis_url, concurrency=3, exit_when_idle=True, irods_settings=UNUSED_IRODS), install_signals=False)
    runs = RunState(client, "tidy")
    assert runs.status().state == "done"
    keys = {k.decode() for p in ("ii", "iic") for k in client.scan_iter(match=f"{p}:{{tidy}}:*")}
    # what stays is the job, its last run, history and the change cache; no per-worker keys
    assert not any(":processing:" in k or ":heartbeat:" in k for k in keys), keys
    assert client.scard(runs.keys.claimers) == 0
    assert {k.rsplit(":", 1)[-1] for k in keys if ":cache:" not in k and ":cached:" not in k} == {"job", "run", "history"}
