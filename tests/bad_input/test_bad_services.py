"""Services that are away or refuse us: one clear line, a non-zero exit, nothing lost.

Redis unreachable or refusing the password: the CLI (``start`` and ``worker``, as separate
processes) prints one line naming the Redis URL with any password masked, exits 1, and
prints no traceback. iRODS refusing the password, unreachable, or going away after the run
started: the run ends ``failed`` (never stuck) with every file accounted for by a counter
and a failure record naming it, and ``irods-ingest retry`` lands them all once iRODS is back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from irods_ingest.config import Operation
from irods_ingest.jobstate import RunStatus
from irods_ingest_testkit.processes import free_port
from irods_ingest_testkit.redis_server import RedisServer
from testsupport.accounting import assert_accounted
from testsupport.ingest import Ingest
from testsupport.irods_fixtures import IrodsEnv
from testsupport.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.redis, pytest.mark.irods]

REDIS_SECRET = "redis-Right-4f2"
IRODS_WRONG = "irods-Wrong-8c1"


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "irods_ingest", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def cli_env(redis_url: str, irods: IrodsEnv, **overrides: str) -> dict[str, str]:
    return {**os.environ, "IRODS_INGEST_REDIS_URL": redis_url, "IRODS_HOST": irods.host, "IRODS_PORT": str(irods.port),
            "IRODS_USER_NAME": irods.user, "IRODS_ZONE_NAME": irods.zone, "IRODS_PASSWORD": irods.password,
            **overrides}


def one_clear_line(result: subprocess.CompletedProcess[str], *secrets: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for secret in secrets:
        assert secret not in result.stderr + result.stdout
    return lines[0]


# ---------------------------------------------------------------- Redis
@pytest.mark.parametrize("command", ["start", "worker"])
def test_redis_unreachable_is_one_line_naming_the_url(irods_env: IrodsEnv, tmp_path: Path, command: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    args = ["start", str(tmp_path), f"{irods_env.home}/x", "--workers", "1"] if command == "start" else ["worker", "--job", "j"]
    line = one_clear_line(cli(*args, "--redis-url", url, env=cli_env(url, irods_env)))
    assert line.startswith(f"irods-ingest {command}: Redis at {url} is unreachable: "), line


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(data_dir=tmp_path / "redis", password=REDIS_SECRET) as server:
        yield server


@pytest.mark.parametrize("password", ["not-the-password", None], ids=["wrong-password", "no-password"])
@pytest.mark.parametrize("command", ["start", "worker"])
def test_wrong_redis_password_is_one_line_that_never_echoes_it(redis_with_password: RedisServer, irods_env: IrodsEnv,
                                                               tmp_path: Path, command: str, password: str | None) -> None:
    url = redis_with_password.url.replace(REDIS_SECRET, password) if password else redis_with_password.url.replace(
        f":{REDIS_SECRET}@", "")
    assert REDIS_SECRET not in url
    args = ["start", str(tmp_path), f"{irods_env.home}/x", "--workers", "1"] if command == "start" else ["worker", "--job", "j"]
    # The URL with its password comes from the environment, where it belongs (on the command line
    # it would draw a warning: every local user can read it there).
    line = one_clear_line(cli(*args, env=cli_env(url, irods_env)), REDIS_SECRET, "not-the-password")
    if password:
        assert "refused the password" in line and "check the password in the Redis URL" in line and ":***@" in line, line
    else:
        assert line.endswith(f"Redis at {url} requires a password (put it in the URL: redis://:PASSWORD@host:port/db)"), line


# ---------------------------------------------------------------- iRODS, from the start
def tree(source: Path) -> set[str]:
    names = {"a.txt", "b.txt", "sub/c.txt", "sub/deeper/d.txt"}
    for name in names:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(name)
    return names


def landed(session: Any, target: str) -> set[str]:
    if not session.collections.exists(target):
        return set()
    return {o.path[len(target) + 1:] for _c, _s, objs in session.collections.get(target).walk() for o in objs}


@pytest.mark.parametrize("problem", ["wrong-password", "unreachable"])
def test_irods_problem_fails_the_run_by_name_and_retry_lands_everything(
    redis_url: str, irods_env: IrodsEnv, irods_session: Callable[..., Any], tmp_path: Path, problem: str
) -> None:
    source, job = tmp_path / "src", f"irods-{problem}"
    names = tree(source)
    target = f"{irods_env.home}/bad_services_{problem}_{os.getpid()}"
    port = free_port()
    broken = {"IRODS_PASSWORD": IRODS_WRONG} if problem == "wrong-password" else {"IRODS_PORT": str(port)}
    run = cli("start", str(source), target, "--job-name", job, "--operation", "Put", "--workers", "1",
              "--max-retries", "1", "--retry-backoff", "0.1", env=cli_env(redis_url, irods_env, **broken))
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    summary = run.stderr.strip().splitlines()[-1]
    assert f"job {job} run " in summary and ": failed" in summary, summary
    if problem == "wrong-password":
        assert "iRODS refused the password (CAT_INVALID_AUTHENTICATION); check IRODS_PASSWORD" in summary, summary
    else:
        assert "connection to iRODS" in summary and f"{irods_env.host}:{port}" in summary, summary
    assert "the source root could not be processed" in summary and target in summary
    assert IRODS_WRONG not in run.stderr + run.stdout
    failures = json.loads(cli("failures", job, "--format", "json", env=cli_env(redis_url, irods_env)).stdout)
    assert [(f["kind"], f["path"]) for f in failures] == [("scan", str(source))]  # the root: nothing below ran
    # Not stuck, nothing lost: with iRODS reachable, retry rescans the root and lands every file.
    retried = cli("retry", job, "--workers", "1", env=cli_env(redis_url, irods_env))
    assert retried.returncode == 0, retried.stderr
    assert landed(irods_session(), target) == names
    irods_session().collections.remove(target, recurse=True, force=True)


# ---------------------------------------------------------------- iRODS going away mid-run
GATED_HANDLER = """
import os, time
from irods_capability_automated_ingest.core import Core
GATE = {gate!r}
class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        deadline = time.monotonic() + 60
        while not os.path.exists(GATE) and time.monotonic() < deadline:
            time.sleep(0.02)
"""


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}: {condition()}")


def test_irods_going_away_mid_run_fails_each_file_by_name_and_retry_lands_them(ingest: Ingest, tmp_path: Path) -> None:
    from irods_ingest.actions import retry_failed
    from irods_ingest.store.connection import connect

    names = tree(ingest.source)
    proxy = TcpProxy((ingest.env.host, ingest.env.port))
    direct = ingest.env
    ingest.env = type(direct)(host="127.0.0.1", port=proxy.port, user=direct.user, password=direct.password,
                              zone=direct.zone)
    gate = tmp_path / "gate"
    result: dict[str, RunStatus] = {}
    runner = threading.Thread(target=lambda: result.update(status=ingest.run(
        handler=GATED_HANDLER.format(gate=str(gate)), operation=Operation.PUT, max_retries=1, retry_backoff_seconds=0.1,
        files_per_task=10, workers=4)))  # 3 file tasks wait at the gate, a 4th thread scans
    runner.start()
    try:
        # (a run that raised leaves `result` empty: the assertions below then say so)
        # Every directory scanned (collections made, files discovered), no file synced yet.
        wait_for("the scan", lambda: ingest.runs.status().counters["files_discovered"] == len(names))
        proxy.sever()
    finally:
        gate.touch()
        runner.join(timeout=120)
    status = result["status"]
    assert status.state == "failed" and not status.active  # ended, not stuck
    failures = ingest.failures()
    assert sorted(os.path.relpath(f["path"], ingest.source) for f in failures) == sorted(names)
    assert all("iRODS" in f["reason"] and f["attempts"] == 2 for f in failures), failures  # retried once, then recorded
    assert status.counters["files_failed"] == len(names) and status.counters["files_synced"] == 0
    assert_accounted(status, failures, on_disk=len(names))
    # iRODS is back (direct, no proxy): retry redoes exactly the failed files, without rescanning
    ingest.env = direct
    client = connect(ingest.redis_url)
    assert retry_failed(client, ingest.job).started
    from irods_ingest.worker import WorkerOptions, run_worker

    assert run_worker(WorkerOptions(jobs=[ingest.job], redis_url=ingest.redis_url, exit_when_idle=True,
                                    irods_settings=ingest.settings), install_signals=False) == 0
    assert ingest.runs.status().state == "done"
    assert set(ingest.objects()) == names
