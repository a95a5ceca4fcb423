"""The command-line contract, and the control channel of a server in another process.

Both spellings (``python -m irods_ingest test-server`` and ``python -m
irods_ingest_testkit.irods_server``) print one line with the address once ready, serve, and
exit 0 on SIGTERM.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from irods_ingest_testkit.irods_server import ControlClient

pytestmark = pytest.mark.irods

LINE = re.compile(
    r"^irods-test-server listening on (?P<host>[\d.]+):(?P<port>\d+)( control (?P<chost>[\d.]+):(?P<cport>\d+))?$"
)
COMMANDS = {
    "irods-ingest test-server": ["-m", "irods_ingest", "test-server"],
    "module": ["-m", "irods_ingest_testkit.irods_server"],
}


@dataclass
class Served:
    proc: subprocess.Popen[str]
    host: str
    port: int
    control: ControlClient
    data_dir: Path

    def session(self, **overrides: Any) -> Any:
        from irods.session import iRODSSession

        kwargs = {"host": self.host, "port": self.port, "user": "rods", "password": "rods", "zone": "tempZone"}
        return iRODSSession(**{**kwargs, **overrides})

    def terminate(self) -> tuple[int, str]:
        """SIGTERM; the exit status and whatever else the server printed to stdout."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=15)
        return self.proc.returncode, out


@pytest.fixture(params=sorted(COMMANDS))
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, *COMMANDS[request.param], "--port", "0", "--data-dir", str(data_dir), "--control-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().rstrip("\n")  # returns once the server is ready (or has exited)
        match = LINE.match(line)
        if match is None:
            proc.kill()
            _, err = proc.communicate(timeout=15)
            pytest.fail(f"unexpected first line {line!r}; stderr: {err}")
        yield Served(proc, match["host"], int(match["port"]), ControlClient(match["chost"], int(match["cport"])),
                     data_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=15)


def test_comes_up_with_zone_admin_homes_and_resources(served: Served) -> None:
    with served.session() as session:
        assert session.users.get("rods").type == "rodsadmin"
        for path in ("/tempZone/home/rods", "/tempZone/home/public", "/tempZone/trash/home/rods"):
            assert session.collections.get(path).path == path
        demo = session.resources.get("demoResc")
        assert (demo.type, demo.vault_path) == ("unixfilesystem", str(served.data_dir / "vault" / "demoResc"))
        assert session.resources.get("rootResc").type == "passthru"
        assert [r.name for r in session.resources.get("rootResc").children] == ["midResc"]
        assert sorted(r.name for r in session.resources.get("midResc").children) == ["leaf1Resc", "leaf2Resc"]
        with session.data_objects.open("/tempZone/home/rods/cli.txt", "w") as f:
            f.write(b"on disk")
        assert (served.data_dir / "vault" / "demoResc" / "home" / "rods" / "cli.txt").read_bytes() == b"on disk"
    status, rest = served.terminate()
    assert (status, rest) == (0, "")  # exactly one line, and a clean exit on SIGTERM
    assert (served.data_dir / "catalog.sqlite").exists()


def test_control_channel_counts_and_injects_each_fault(served: Served) -> None:
    from irods.exception import CAT_NO_ACCESS_PERMISSION, NetworkException

    control = served.control
    assert control.healthy()
    with served.session() as session:
        session.collections.get("/tempZone/home/rods")  # connect and authenticate first
        control.reset_counts()
        session.collections.create("/tempZone/home/rods/from_cli")
        assert control.api_counts() == {681: 1, 702: 1}

        control.fail_nth(702, nth=2, code=-818000)
        _genquery(session)
        with pytest.raises(CAT_NO_ACCESS_PERMISSION):
            _genquery(session)
        _genquery(session)

        control.drop_connection(api=702)
        with pytest.raises(NetworkException):
            _genquery(session)
        _genquery(session)  # on a new connection

        control.delay_replies(0.3, api=702, times=1)
        started = time.monotonic()
        _genquery(session)
        assert time.monotonic() - started >= 0.3
        control.clear_faults()
        assert control.api_counts()[702] == 7
    assert served.terminate()[0] == 0


def _genquery(session: Any) -> None:
    from irods.models import Collection

    session.query(Collection.name).filter(Collection.name == "/tempZone/home/rods").one()
