"""Two jobs racing over the same tree into the same collection: no duplicates, no deadlock, no failures."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest

from irods_ingest.actions import start_job
from irods_ingest.config import JobConfig, Operation
from irods_ingest.jobstate import FailureLog, RunState
from irods_ingest.store.connection import connect
from testsupport.irods_fixtures import IrodsEnv

from .test_crashes import make_source, process_env, wait_for, worker

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]


@pytest.mark.parametrize("operation", [Operation.PUT, Operation.REGISTER_SYNC])
def test_two_jobs_race_over_one_tree(operation: Operation, redis_url: str, irods_env: IrodsEnv, irods_session: Any,
                                     tmp_path: Path) -> None:
    files = make_source(tmp_path / "src", random.Random(3), 40)
    target = f"{irods_env.home}/race_{operation.value}_{os.getpid()}"
    client = connect(redis_url)
    jobs = [f"race-{operation.value}-{i}" for i in range(2)]
    for job in jobs:
        start_job(client, JobConfig(job_name=job, source_path=str(tmp_path / "src"), target_collection=target,
                                    operation=operation, files_per_task=2, retry_backoff_seconds=0.2))
    env = process_env(redis_url, irods_env)
    workers = [worker(env, job, tmp_path / f"{job}-{i}.log") for job in jobs for i in range(2)]
    try:
        wait_for("both runs to end", lambda: all(not RunState(client, job).status().active for job in jobs), timeout=120)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(30)
    session = irods_session()
    seen: dict[str, int] = {}
    for _coll, _subs, objects in session.collections.get(target).walk():
        for obj in objects:
            rel = obj.path[len(target) + 1 :]
            seen[rel] = seen.get(rel, 0) + 1
            assert len(obj.replicas) == 1 and obj.size == len(files[rel])
    assert seen == dict.fromkeys(files, 1)
    for job in jobs:
        status = RunState(client, job).status()
        assert status.state == "done", (job, FailureLog(client, job).records()[:3])
        c = status.counters
        assert c["files_synced"] + c["files_unchanged"] == len(files) and c["files_failed"] == 0
    # between them, each file was created exactly once
    assert sum(RunState(client, job).status().counters["files_synced"] for job in jobs) >= len(files)
    session.collections.remove(target, recurse=True, force=True)
