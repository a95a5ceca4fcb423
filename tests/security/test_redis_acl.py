"""Workers under a Redis ACL user that may read but never write what decides what they run.

The job's config and handler code live under ``iic:`` (see irods_ingest.store.keys);
workers get ``%R~iic:*``. A whole job runs under that user, and the user is refused
when it tries to change the handler or the config. Workers also refuse handler code
whose content does not match the hash it is stored under.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from irods_ingest.actions import start_job
from irods_ingest.config import JobConfig, Operation
from irods_ingest.store.connection import connect
from irods_ingest.store.keys import WORKER_ACL_RULES
from irods_ingest.worker import WorkerOptions, run_worker
from irods_ingest_testkit.redis_server import RedisServer
from testsupport.irods_fixtures import IrodsEnv
from testsupport.jobparts import JobParts

pytestmark = [pytest.mark.redis, pytest.mark.irods]

WORKER_ACL = f"on >worker-Pass-1 {WORKER_ACL_RULES}"
HANDLER = """
from irods_capability_automated_ingest.core import Core
class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        meta.setdefault("seen", True)
"""


def _worker_url(server: RedisServer) -> str:
    return server.url.replace("redis://", "redis://worker:worker-Pass-1@", 1)


def _run_worker(url: str, job: str, irods_env: IrodsEnv) -> None:
    from irods_ingest.irods_io.session import IrodsSettings

    settings = IrodsSettings(host=irods_env.host, port=irods_env.port, user=irods_env.user,
                             zone=irods_env.zone, password=irods_env.password)
    run_worker(WorkerOptions(jobs=[job], redis_url=url, exit_when_idle=True, irods_settings=settings),
               install_signals=False)


def test_a_job_runs_under_the_worker_acl_which_cannot_touch_handler_or_config(
    tmp_path: Path, irods_env: IrodsEnv, irods_session: Any
) -> None:
    (tmp_path / "src" / "d").mkdir(parents=True)
    for i in range(5):
        (tmp_path / "src" / "d" / f"f{i}.txt").write_text(f"file {i}")
    target = f"{irods_env.home}/acl_job_{tmp_path.name}"
    with RedisServer(data_dir=tmp_path / "redis") as server:
        admin = connect(server.url)
        admin.execute_command("ACL", "SETUSER", "worker", *WORKER_ACL.split())
        start_job(admin, JobConfig(job_name="acl", source_path=str(tmp_path / "src"), target_collection=target,
                                   operation=Operation.PUT), HANDLER)
        job = JobParts.of(admin, "acl")
        config = job.stored.config()
        assert config is not None and config.handler_hash

        _run_worker(_worker_url(server), "acl", irods_env)

        status = job.runs.status()
        assert status.state == "done", job.failures.records()
        assert status.counters["files_synced"] == 5
        # the worker's user reads the control keys but cannot write them
        worker_client = redis.Redis.from_url(_worker_url(server))
        assert worker_client.get(job.keys.handler(config.handler_hash)) is not None
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker_client.set(job.keys.handler(config.handler_hash), b"import os; os.system('evil')")
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker_client.hset(job.keys.job_hash, "config", "{}")
        worker_client.close()
    assert len(list(irods_session().collections.get(f"{target}/d").data_objects)) == 5
    irods_session().collections.remove(target, recurse=True, force=True)


def test_a_handler_changed_behind_the_controllers_back_is_refused(tmp_path: Path, irods_env: IrodsEnv) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    with RedisServer(data_dir=tmp_path / "redis") as server:
        admin = connect(server.url)
        start_job(admin, JobConfig(job_name="tamper", source_path=str(tmp_path / "src"),
                                   target_collection=f"{irods_env.home}/tamper_{tmp_path.name}",
                                   operation=Operation.NO_OP), HANDLER)
        job = JobParts.of(admin, "tamper")
        config = job.stored.config()
        assert config is not None and config.handler_hash
        admin.set(job.keys.handler(config.handler_hash), HANDLER + "\nimport os\n")

        _run_worker(server.url, "tamper", irods_env)

        status = job.runs.status()
        assert status.state == "failed"
        reasons = " ".join(f["reason"] for f in job.failures.records())
        assert "does not match its content hash" in reasons, reasons
        assert status.counters["files_synced"] == 0
