"""The bundled Redis's ACL, as the chart renders it, on a real redis-server.

The init container's own script writes the auth file from the rendered Secret's values;
a redis-server started with that file admits the operator's password with full access and
the workers' URL as the `worker` user, who can run the engine's queue but cannot write job
configs or handler code (``iic:*``) — what keeps a worker from changing what a job runs.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from chart.chartkit import FULLNAME, one

from irods_ingest.config import JobConfig, Operation
from irods_ingest.store.jobstore import JobStore, TaskOutcome
from irods_ingest.store.keys import WORKER_ACL_RULES, JobKeys
from irods_ingest.testing.redis_server import RedisServer

pytestmark = [pytest.mark.helm, pytest.mark.redis]


def _b64(value: str) -> str:
    return base64.b64decode(value).decode()


def test_bundled_redis_gives_workers_a_user_that_cannot_write_configs_or_handlers(render: Any, tmp_path: Path) -> None:
    manifests = render("--set", "watchNamespaces={team-a}")
    secret = one(manifests, "Secret", f"{FULLNAME}-redis")["data"]
    statefulset = one(manifests, "StatefulSet", f"{FULLNAME}-redis")
    (init,) = statefulset["spec"]["template"]["spec"]["initContainers"]
    script = init["command"][-1].replace("/run/redis/", f"{tmp_path}/")
    env = {"PATH": os.environ["PATH"], "REDIS_PASSWORD": _b64(secret["redis-password"]),
           "WORKER_PASSWORD": _b64(secret["worker-password"])}
    subprocess.run(["sh", "-c", script], env=env, check=True)
    auth_conf = tmp_path / "auth.conf"
    assert auth_conf.read_text().splitlines()[1] == f"user worker on >{env['WORKER_PASSWORD']} {WORKER_ACL_RULES}"

    workers_secret = [m for m in manifests if m["kind"] == "Secret" and m["metadata"]["namespace"] == "team-a"]
    (worker_url,) = [_b64(v) for m in workers_secret for v in m["data"].values()]

    operator_url, worker_parts = urlsplit(_b64(secret["redis-url"])), urlsplit(worker_url)
    with RedisServer(data_dir=tmp_path / "redis", password=operator_url.password,
                     extra_args=["--include", str(auth_conf)]) as server:
        # the rendered URLs, pointed at this server instead of the in-cluster Service
        operator = redis.Redis(port=server.port, username=operator_url.username or None, password=operator_url.password)
        worker = redis.Redis(port=server.port, username=worker_parts.username, password=worker_parts.password)
        assert worker_parts.username == "worker"
        keys = JobKeys("team-a/job")
        config = JobConfig(job_name="team-a/job", source_path=str(tmp_path), target_collection="/tempZone/home/rods/x",
                           operation=Operation.NO_OP)
        JobStore(operator, "team-a/job").start_run(config)  # the operator's side: config and first task
        operator.set(keys.handler("abc"), b"handler source")
        # the worker's side of a run, through the engine's own store (its Lua scripts included)
        store = JobStore(worker, "team-a/job")
        store.heartbeat("w1", ttl=30)
        assert store.run_and_config()[1] == config
        claimed = store.claim("w1", timeout=1)
        assert claimed is not None
        outcome = TaskOutcome()
        outcome.count("tasks_done")
        assert store.ack("w1", claimed[0], claimed[1], outcome) in ("ok", "finishing")
        assert worker.get(keys.handler("abc")) == b"handler source"
        # ...but cannot change what any job runs, nor administer the server
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker.set(keys.handler("abc"), b"import os")
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker.hset(keys.job_hash, "config", '{"operation": "put"}')
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker.execute_command("ACL", "SETUSER", "worker", "~*")
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=server.port, password="wrong").ping()
