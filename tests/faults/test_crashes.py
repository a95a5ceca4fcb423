"""Fault suite: processes killed and Redis restarted mid-run; nothing lost, nothing doubled.

Every case ends by checking the catalog itself: each source file is in iRODS exactly once
(one data object, one replica) with the right size and content, the counts are exact and
the run is done. Seeds are in the test ids (``trial-<seed>``): a failing trial reruns with
``-k trial-<seed>``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from irods_ingest.actions import start_job
from irods_ingest.config import JobConfig, Operation
from irods_ingest.jobstate import RunState, RunStatus
from irods_ingest.store.connection import connect
from irods_ingest_testkit.redis_server import RedisServer
from testsupport.irods_fixtures import IrodsEnv

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]

TRIALS = 20
SLOW_HOOK = """
import time
from irods_capability_automated_ingest.core import Core
class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        time.sleep({delay})
"""


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def make_source(root: Path, rng: random.Random, count: int) -> dict[str, bytes]:
    files = {}
    for i in range(count):
        rel = f"d{i % 4}/sub{i % 3}/file{i}.bin"
        data = rng.randbytes(rng.choice([0, 10, 4096, 100_000]))
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        files[rel] = data
    return files


def worker(env: dict[str, str], job: str, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "irods_ingest", "worker", "--job", job, "--concurrency", "2"],
                            env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def process_env(redis_url: str, irods_env: IrodsEnv) -> dict[str, str]:
    return {**os.environ, "IRODS_INGEST_REDIS_URL": redis_url, "IRODS_INGEST_HEARTBEAT_TTL": "1",
            "IRODS_HOST": irods_env.host, "IRODS_PORT": str(irods_env.port), "IRODS_USER_NAME": irods_env.user,
            "IRODS_ZONE_NAME": irods_env.zone, "IRODS_PASSWORD": irods_env.password}


def assert_exactly_once(session: Any, target: str, files: dict[str, bytes], status: RunStatus) -> None:
    assert status.state == "done", status
    found: dict[str, Any] = {}
    for _coll, _subs, objects in session.collections.get(target).walk():
        for obj in objects:
            rel = obj.path[len(target) + 1 :]
            assert rel not in found, f"{rel} twice"
            found[rel] = obj
    assert set(found) == set(files)
    for rel, obj in found.items():
        assert len(obj.replicas) == 1, f"{rel} has {len(obj.replicas)} replicas"
        assert obj.size == len(files[rel]), rel
    sample = sorted(files)[:: max(1, len(files) // 5)]
    for rel in sample:
        with session.data_objects.open(f"{target}/{rel}", "r") as handle:
            assert handle.read() == files[rel], rel
    c = status.counters
    assert c["files_discovered"] == len(files)
    assert c["files_synced"] + c["files_unchanged"] == len(files) and c["files_failed"] == 0, c
    assert (status.queued, status.delayed, status.in_flight) == (0, 0, 0)


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"trial-{s}") for s in range(TRIALS)])
def test_worker_sigkilled_at_a_random_point(seed: int, redis_url: str, irods_env: IrodsEnv, irods_session: Any,
                                            tmp_path: Path) -> None:
    rng = random.Random(seed)
    files = make_source(tmp_path / "src", rng, 24)
    job, target = f"kill-{seed}", f"{irods_env.home}/kill_{os.getpid()}_{seed}"
    client = connect(redis_url)
    config = JobConfig(job_name=job, source_path=str(tmp_path / "src"), target_collection=target,
                       operation=Operation.PUT, files_per_task=rng.choice([1, 3, 5]))
    start_job(client, config, SLOW_HOOK.format(delay=0.03))
    runs = RunState(client, job)
    env = process_env(redis_url, irods_env)
    workers = [worker(env, job, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        kill_after = rng.randint(0, len(files) - 2)
        wait_for("progress", lambda: runs.status().counters["files_synced"] >= kill_after or not runs.status().active)
        victim = workers.pop(rng.randrange(2))
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        workers.append(worker(env, job, tmp_path / "replacement.log"))
        wait_for("the run to end", lambda: not runs.status().active)
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(30)
    session = irods_session()
    assert_exactly_once(session, target, files, runs.status())
    session.collections.remove(target, recurse=True, force=True)


def test_redis_restarted_mid_run(private_redis: RedisServer, irods_env: IrodsEnv, irods_session: Any,
                                 tmp_path: Path) -> None:
    files = make_source(tmp_path / "src", random.Random(7), 40)
    target = f"{irods_env.home}/redis_restart_{os.getpid()}"
    config = JobConfig(job_name="restart", source_path=str(tmp_path / "src"), target_collection=target,
                       operation=Operation.PUT, files_per_task=4)
    start_job(connect(private_redis.url), config, SLOW_HOOK.format(delay=0.05))
    env = process_env(private_redis.url, irods_env)
    workers = [worker(env, "restart", tmp_path / f"w{i}.log") for i in range(2)]
    try:
        wait_for("progress", lambda: RunState(connect(private_redis.url), "restart").status().counters["files_synced"] >= 8)
        private_redis.kill()  # a crash: AOF (appendfsync always) holds every acknowledged write
        time.sleep(1.0)  # an outage, not a synchronisation: workers must ride it out
        private_redis.start()
        runs = RunState(connect(private_redis.url), "restart")
        wait_for("the run to end", lambda: not runs.status().active)
        for process in workers:
            assert process.poll() is None, "a worker gave up during the Redis outage"
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(30)
    session = irods_session()
    assert_exactly_once(session, target, files, runs.status())
    session.collections.remove(target, recurse=True, force=True)
