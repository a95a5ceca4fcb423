"""The bundled Redis's ACL, as the chart renders it, on a real redis-server.

The init container's own script writes the auth file from the rendered Secret's values;
a redis-server started with that file admits the operator's password with full access.
Shared mode: the workers' URL logs in as the `worker` user, who can run the engine's queue
but cannot write job configs or handler code (``iic:*``) — what keeps a worker from changing
what a job runs — nor run anything a worker never sends. perJob mode: no `worker` user; the
operator's user makes one per job with ACL SETUSER.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
import redis
from chart.chartkit import FULLNAME, Manifest, one

from irods_ingest.config import JobConfig, Operation
from irods_ingest.jobstate import RunState, StoredJob
from irods_ingest.queue import TaskOutcome, TaskQueue
from irods_ingest.store.keys import WORKER_ACL_RULES, JobKeys
from irods_ingest_testkit.redis_server import RedisServer
from testsupport.helm_fixtures import CHART_DIR

pytestmark = [pytest.mark.helm, pytest.mark.redis]

# What the shared worker user must be refused (each a command a worker never sends).
REFUSED_TO_WORKERS: Final = [
    ("SCAN", "0"), ("KEYS", "*"), ("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("CONFIG", "SET", "maxmemory", "1"),
    ("SUBSCRIBE", "ii:x"), ("PUBLISH", "ii:x", "y"),
    ("FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('x', function() return 1 end)"), ("FUNCTION", "FLUSH"),
    ("SCRIPT", "FLUSH"), ("SELECT", "1"), ("EVAL", "return 1", "0"), ("CLIENT", "LIST"), ("ACL", "LIST"), ("SHUTDOWN",),
    ("SET", JobKeys("team-a/job").job_hash, "x"), ("DEL", JobKeys("team-a/job").job_hash),
]


def _b64(value: str) -> str:
    return base64.b64decode(value).decode()


def _write_auth_conf(manifests: list[Manifest], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Run the rendered init container's script, as the pod would, into tmp_path/auth.conf."""
    secret = one(manifests, "Secret", f"{FULLNAME}-redis")["data"]
    statefulset = one(manifests, "StatefulSet", f"{FULLNAME}-redis")
    (init,) = statefulset["spec"]["template"]["spec"]["initContainers"]
    script = init["command"][-1].replace("/run/redis/", f"{tmp_path}/")
    env = {"PATH": os.environ["PATH"]}
    for item in init["env"]:  # what the kubelet would resolve from the Secret
        env[item["name"]] = _b64(secret[item["valueFrom"]["secretKeyRef"]["key"]])
    subprocess.run(["sh", "-c", script], env=env, check=True)
    return tmp_path / "auth.conf", env


def test_bundled_redis_gives_workers_a_user_that_cannot_write_configs_or_handlers(render: Any, tmp_path: Path) -> None:
    manifests = render("--set", "watchNamespaces={team-a}", "--set", "workers.credentials.mode=shared")
    secret = one(manifests, "Secret", f"{FULLNAME}-redis")["data"]
    auth_conf, env = _write_auth_conf(manifests, tmp_path)
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
        RunState(operator, "team-a/job").start(config)  # the operator's side: config and first task
        operator.set(keys.handler("abc"), b"handler source")
        # the worker's side of a run, through the engine's own queue (its Lua scripts included)
        queue = TaskQueue(worker, "team-a/job")
        queue.heartbeat("w1", ttl=30)
        assert StoredJob(worker, "team-a/job").run_and_config()[1] == config
        claimed = queue.claim("w1", timeout=1)
        assert claimed is not None
        outcome = TaskOutcome()
        outcome.count("tasks_done")
        assert queue.ack("w1", claimed[0], claimed[1], outcome) in ("ok", "finishing")
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
        # nothing a worker never sends: key enumeration, server-side code, other databases,
        # configuration, flushing, channels
        admitted = []
        for command in REFUSED_TO_WORKERS:
            client = redis.Redis(port=server.port, username="worker", password=worker_parts.password, socket_timeout=5)
            try:
                client.execute_command(*command)
            except redis.exceptions.NoPermissionError:
                continue
            except redis.exceptions.TimeoutError:
                pass  # admitted: an admitted SUBSCRIBE waits for messages
            finally:
                client.close()
            admitted.append(" ".join(command[:2]))
        assert admitted == []
        assert operator.get(keys.handler("abc")) == b"handler source"


def test_per_job_mode_leaves_user_management_to_the_operators_user(render: Any, tmp_path: Path) -> None:
    manifests = render("--set", "watchNamespaces={team-a}")
    auth_conf, env = _write_auth_conf(manifests, tmp_path)
    assert auth_conf.read_text().splitlines() == [f'requirepass "{env["REDIS_PASSWORD"]}"']  # no shared user
    operator_url = urlsplit(_b64(one(manifests, "Secret", f"{FULLNAME}-redis")["data"]["redis-url"]))
    with RedisServer(data_dir=tmp_path / "redis", password=operator_url.password,
                     extra_args=["--include", str(auth_conf)]) as server:
        operator = redis.Redis(port=server.port, password=operator_url.password)
        assert operator.execute_command("ACL", "USERS") == [b"default"]
        # the operator's user (the URL the chart gives it) manages a job's user, as perJob needs
        keys = JobKeys("team-a/job")
        operator.execute_command("ACL", "SETUSER", "job-user", "on", ">job-Pass-1", *keys.worker_acl_rules().split())
        assert operator.execute_command("ACL", "GETUSER", "job-user")
        RunState(operator, "team-a/job").start(JobConfig(
            job_name="team-a/job", source_path=str(tmp_path), target_collection="/tempZone/home/rods/x",
            operation=Operation.NO_OP))
        job_user = redis.Redis(port=server.port, username="job-user", password="job-Pass-1")
        assert TaskQueue(job_user, "team-a/job").claim("w1", timeout=1) is not None
        with pytest.raises(redis.exceptions.NoPermissionError):
            job_user.get(JobKeys("team-b/other").run)
        assert operator.execute_command("ACL", "DELUSER", "job-user") == 1


def test_the_deploy_guide_gives_external_redis_admins_the_same_worker_rules() -> None:
    guide = (CHART_DIR.parents[1] / "docs" / "deploy.md").read_text()
    assert f"ACL SETUSER worker on >WORKER_PASSWORD {WORKER_ACL_RULES}\n" in guide
