"""Attacker: another user of the machine where `irods-ingest` runs (a shared login node).

Before: the only way to give a Redis password on the command line was inside --redis-url,
which every local user reads in the process list (ps, /proc/PID/cmdline). Now the URL can
come from a file (--redis-url-file, e.g. a mounted Secret) or the environment, --help says
so, and a password on the command line draws a warning.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from irods_ingest.store.connection import connect
from irods_ingest.store.keys import JobKeys
from irods_ingest_testkit.processes import stop_process, wait_until
from irods_ingest_testkit.redis_server import RedisServer

pytestmark = [pytest.mark.redis]

PASSWORD = "cli-Secret-" + "8841"


def test_a_url_from_a_file_keeps_the_password_out_of_the_process_list(tmp_path: Path) -> None:
    """Tried: read the worker's command line from /proc. Now: no password there."""
    with RedisServer(data_dir=tmp_path / "redis", password=PASSWORD) as server:
        url_file = tmp_path / "redis-url"
        url_file.write_text(server.url + "\n")
        url_file.chmod(0o600)
        worker = subprocess.Popen([sys.executable, "-m", "irods_ingest", "worker", "--job", "team/job",
                                   "--redis-url-file", str(url_file)], stderr=subprocess.PIPE)
        try:
            admin = connect(server.url)
            wait_until(lambda: admin.scard(JobKeys("team/job").claimers) > 0, timeout=30, what="the worker to register")
            cmdline = Path(f"/proc/{worker.pid}/cmdline").read_bytes()
            assert PASSWORD.encode() not in cmdline
        finally:
            stop_process(worker)


def test_a_password_on_the_command_line_is_warned_about(tmp_path: Path) -> None:
    with RedisServer(data_dir=tmp_path / "redis", password=PASSWORD) as server:
        done = subprocess.run([sys.executable, "-m", "irods_ingest", "list", "--redis-url", server.url],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--redis-url carries a password" in done.stderr and "--redis-url-file" in done.stderr
    assert PASSWORD not in done.stderr + done.stdout


def test_help_says_where_a_password_belongs() -> None:
    done = subprocess.run([sys.executable, "-m", "irods_ingest", "worker", "--help"], capture_output=True, text=True, timeout=60)
    assert "--redis-url-file" in done.stdout and "IRODS_INGEST_REDIS_URL" in done.stdout


def test_a_missing_or_empty_url_file_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    for path, needle in ((tmp_path / "missing", "No such file"), (empty, "is empty")):
        done = subprocess.run([sys.executable, "-m", "irods_ingest", "list", "--redis-url-file", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and needle in done.stderr, done.stderr
