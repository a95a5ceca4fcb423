"""Redis over TLS (rediss://, a private test CA) with AUTH: the engine connects, runs and verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from irods_ingest.errors import IngestError
from irods_ingest.store.connection import connect
from irods_ingest_testkit.redis_server import RedisServer

pytestmark = pytest.mark.redis


def test_tls_with_password(tmp_path: Path) -> None:
    with RedisServer(data_dir=tmp_path / "redis", tls=True, password="tls-Pass-1") as server:
        assert server.url.startswith("rediss://")
        client = connect(server.url)
        client.set("over-tls", "yes")
        assert client.get("over-tls") == b"yes"
        # the certificate is really checked: a URL without the CA fails, in one clear error
        untrusted = server.url.split("?", 1)[0]
        with pytest.raises(IngestError, match="unreachable"):
            connect(untrusted)
        # and plain redis:// is refused by a TLS-only server
        with pytest.raises(IngestError):
            connect(untrusted.replace("rediss://", "redis://"))


@pytest.mark.irods
def test_a_job_runs_over_tls(tmp_path: Path, irods_env, irods_session) -> None:  # type: ignore[no-untyped-def]
    from irods_ingest.actions import start_job
    from irods_ingest.config import JobConfig, Operation
    from irods_ingest.irods_io.session import IrodsSettings
    from irods_ingest.jobstate import RunState
    from irods_ingest.worker import WorkerOptions, run_worker

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("over tls")
    target = f"{irods_env.home}/tls_job"
    with RedisServer(data_dir=tmp_path / "redis", tls=True, password="tls-Pass-1") as server:
        client = connect(server.url)
        start_job(client, JobConfig(job_name="tls", source_path=str(tmp_path / "src"), target_collection=target,
                                    operation=Operation.PUT))
        settings = IrodsSettings(host=irods_env.host, port=irods_env.port, user=irods_env.user,
                                 zone=irods_env.zone, password=irods_env.password)
        run_worker(WorkerOptions(jobs=["tls"], redis_url=server.url, exit_when_idle=True, irods_settings=settings),
                   install_signals=False)
        assert RunState(client, "tls").status().counters["files_synced"] == 1
    irods_session().collections.remove(target, recurse=True, force=True)
