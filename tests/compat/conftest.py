"""The compatibility suite's services and its summary.

One private redis-server (the rest of the suite flushes the shared one between tests, which
would drop the celery workers' queue bindings), the session's iRODS test server, and the
incumbent's celery worker, started ONCE: it serves every job of every case. One process
(``-c 1``), as the incumbent's own tests start it: with more, its directory task and the file
tasks that create the same collections race, and whether the root's hook is coll_create or
coll_modify changes from run to run. The summary
(cases, identical, allowed differences, known gaps, failed) is printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from irods_ingest_testkit.incumbent import incumbent_venv
from irods_ingest_testkit.redis_server import RedisServer, RedisServerMissing
from testsupport.compat import Services
from testsupport.irods_fixtures import IrodsEnv
from testsupport.require import service_unavailable

CELERY_READY_TIMEOUT = 120.0


@pytest.fixture(scope="session")
def compat_services(tmp_path_factory: pytest.TempPathFactory, irods_env: IrodsEnv) -> Iterator[Services]:
    from irods.session import iRODSSession

    scratch = tmp_path_factory.mktemp("compat")
    try:
        redis_server = RedisServer(data_dir=scratch / "redis").start()
    except RedisServerMissing as exc:
        service_unavailable("redis-server", str(exc), "run `make test` (it installs redis-server)")
    try:
        incumbent = incumbent_venv()
    except (OSError, subprocess.CalledProcessError) as exc:
        redis_server.close()
        detail = exc.stderr.decode(errors="replace")[-500:] if isinstance(exc, subprocess.CalledProcessError) and exc.stderr else exc
        service_unavailable("the incumbent's virtualenv", f"cannot be created: {detail}",
                            "let pip reach the package index once (the virtualenv is cached in "
                            "~/.cache/irods-ingest-operator/bench)")
    trace_dir = scratch / "traces"
    trace_dir.mkdir()
    services = Services(scratch=scratch, redis_url=redis_server.url, irods=irods_env, incumbent=incumbent,
                        trace_dir=trace_dir,
                        session_factory=lambda: iRODSSession(**irods_env.session_kwargs()))
    log = scratch / "incumbent-celery.log"
    with log.open("ab") as handle:
        celery = subprocess.Popen(
            [str(services.incumbent / "bin" / "celery"), "-A", "irods_capability_automated_ingest", "worker", "-c", "1",
             "-Q", "restart,path,file", "-n", f"compat{os.getpid()}@%h", "--loglevel", "INFO", "--without-mingle",
             "--without-gossip"],
            env=services.environ(), stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        _await(lambda: b" ready." in log.read_bytes(), CELERY_READY_TIMEOUT, celery, log)
        yield services
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(celery.pid, signal.SIGTERM)
        try:
            celery.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(celery.pid, signal.SIGKILL)
            celery.wait(5)
        redis_server.close()
        # the incumbent's workers write each job's handler to /tmp/event_handler<job><uuid>.py
        for leftover in Path("/tmp").glob(f"event_handlercompat{os.getpid()}c*.py"):
            leftover.unlink(missing_ok=True)


def _await(ready: Callable[[], bool], timeout: float, process: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"the incumbent's celery workers exited ({process.returncode}): {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the incumbent's celery workers were not ready in {timeout:.0f}s: {log}")
        time.sleep(0.1)


# ---------------------------------------------------------------------------- the summary
_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/compat/test_differential.py::test_case" not in report.nodeid.replace(os.sep, "/"):
        return
    status = dict(report.user_properties).get("compat")
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if hasattr(report, "wasxfail"):
            _OUTCOMES[report.nodeid] = "known gap (xfail)" if report.outcome == "skipped" else "FAILED (xfail passed)"
        elif report.outcome == "passed":
            _OUTCOMES[report.nodeid] = str(status or "identical")
        elif report.outcome == "failed":
            _OUTCOMES[report.nodeid] = "failed"
        else:
            _OUTCOMES[report.nodeid] = "skipped"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _OUTCOMES:
        return
    counts = {name: sum(1 for v in _OUTCOMES.values() if v == name)
              for name in ("identical", "allowed", "known gap (xfail)", "failed", "skipped")}
    unexpected_pass = sum(1 for v in _OUTCOMES.values() if v.startswith("FAILED"))
    terminalreporter.section("compatibility suite (tests/compat)")
    terminalreporter.line(
        f"cases: {len(_OUTCOMES)}, identical: {counts['identical']}, allowed differences: {counts['allowed']}, "
        f"known gaps (xfail): {counts['known gap (xfail)']}, failed: {counts['failed'] + unexpected_pass}"
        + (f", skipped: {counts['skipped']}" if counts["skipped"] else ""))
    for nodeid, outcome in sorted(_OUTCOMES.items()):
        terminalreporter.line(f"  {outcome:18} {nodeid.rsplit('::', 1)[-1]}")
