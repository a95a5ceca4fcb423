"""The incumbent's example handlers for retries, time limits and job hooks, ported as tests.

Their originals count failures in Redis through the incumbent's own helpers; these keep
the same logic with a counter file. They run NoOp jobs, so they need Redis but no iRODS.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from irods_ingest.actions import start_job
from irods_ingest.config import JobConfig
from irods_ingest.irods_io.session import IrodsSettings
from irods_ingest.jobstate import FailureLog, RunState, RunStatus
from irods_ingest.store.connection import connect
from irods_ingest.worker import WorkerOptions, run_worker

pytestmark = pytest.mark.redis

UNUSED_IRODS = IrodsSettings(host="127.0.0.1", port=1, user="nobody", zone="tempZone", password="x")

FAIL_ONCE = '''
import os
from irods_capability_automated_ingest.core import Core
from irods_capability_automated_ingest.utils import Operation

COUNTS = {counts!r}

class event_handler(Core):
{retry_methods}
    @staticmethod
    def operation(session, meta, **options):
        return Operation.NO_OP

    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        marker = os.path.join(COUNTS, os.path.basename(meta["path"]))
        failures = len(open(marker).read()) if os.path.exists(marker) else 0
        with open(marker, "a") as handle:
            handle.write("x")
        if failures == 0:
            raise RuntimeError("no failures")
'''

RETRY_METHODS = '''    @staticmethod
    def max_retries(hdlr_mod, logger, meta):
        return 3

    @staticmethod
    def delay(hdlr_mod, logger, meta, retries):
        return 0
'''

TIMEOUT = '''
import time
from irods_capability_automated_ingest.core import Core
from irods_capability_automated_ingest.utils import Operation

class event_handler(Core):
    @staticmethod
    def operation(session, meta, **options):
        return Operation.NO_OP

    @staticmethod
    def timeout(hdlr_mod, logger, meta):
        return 1

    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        if meta["path"].endswith("slow.txt"):
            time.sleep(2)
'''


def run_job(redis_url: str, source: Path, handler: str, name: str) -> RunStatus:
    client = connect(redis_url)
    config = JobConfig(job_name=name, source_path=str(source), target_collection="/tempZone/home/rods/x", files_per_task=1)
    start_job(client, config, handler)
    options = WorkerOptions(jobs=[name], redis_url=redis_url, concurrency=1, exit_when_idle=True, irods_settings=UNUSED_IRODS)
    assert run_worker(options, install_signals=False) == 0
    return RunState(client, name).status()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    for i in range(10):
        (root / f"f{i}.txt").write_text(str(i))
    return root


def test_retry_example_recovers_every_file(redis_url: str, source: Path, tmp_path: Path) -> None:
    counts = tmp_path / "counts"
    counts.mkdir()
    status = run_job(redis_url, source, FAIL_ONCE.format(counts=str(counts), retry_methods=RETRY_METHODS), "retry")
    assert status.state == "done"
    assert (status.counters["files_synced"], status.counters["files_failed"]) == (10, 0)
    assert sorted(len(p.read_text()) for p in counts.iterdir()) == [2] * 10  # failed once, then succeeded


def test_no_retry_example_fails_every_file_visibly(redis_url: str, source: Path, tmp_path: Path) -> None:
    counts = tmp_path / "counts"
    counts.mkdir()
    status = run_job(redis_url, source, FAIL_ONCE.format(counts=str(counts), retry_methods="    pass\n"), "no-retry")
    assert status.state == "failed"
    assert (status.counters["files_synced"], status.counters["files_failed"]) == (0, 10)
    failures = FailureLog(connect(redis_url), "no-retry").records()
    assert len(failures) == 10 and all("no failures" in f["reason"] and f["traceback"] for f in failures)


def test_timeout_example_fails_only_the_slow_file(redis_url: str, source: Path) -> None:
    (source / "slow.txt").write_text("slow")
    status = run_job(redis_url, source, TIMEOUT, "timeout")
    assert status.state == "failed"
    assert (status.counters["files_synced"], status.counters["files_failed"]) == (10, 1)
    failure = FailureLog(connect(redis_url), "timeout").records()[0]
    assert failure["path"].endswith("slow.txt") and "timed out after 1 s" in failure["reason"]
