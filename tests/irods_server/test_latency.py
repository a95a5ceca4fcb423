"""The test server's reply latency: every API reply waits, as a real catalog's does.

Set by ``--latency-ms`` (a server in another process), ``IrodsTestServer(latency_ms=...)``,
``set_latency_ms`` or the control channel's ``/latency``; each connection waits on its own
thread, so concurrent connections overlap their waits.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from irods_ingest_testkit.irods_server import ControlClient, IrodsTestServer

pytestmark = pytest.mark.irods


def _session(server: IrodsTestServer) -> Any:
    from irods.session import iRODSSession

    return iRODSSession(host=server.host, port=server.port, user="rods", password="rods", zone="tempZone")


def _timed_queries(session: Any, count: int) -> float:
    from irods.models import Collection

    started = time.monotonic()
    for _ in range(count):
        list(session.query(Collection.name).filter(Collection.name == "/tempZone/home/rods"))
    return time.monotonic() - started


def test_every_reply_waits_and_connections_wait_side_by_side(tmp_path: Path) -> None:
    with IrodsTestServer(tmp_path / "data", latency_ms=40) as server:
        assert server.latency_ms == 40
        sessions = [_session(server) for _ in range(4)]
        try:
            for session in sessions:
                _timed_queries(session, 1)  # connect and authenticate first
            assert _timed_queries(sessions[0], 5) >= 5 * 0.040
            # four connections, five queries each: the waits overlap (about 5 x 40 ms, not 20 x)
            threads = [threading.Thread(target=_timed_queries, args=(s, 5)) for s in sessions]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert time.monotonic() - started < 20 * 0.040
            server.set_latency_ms(0)
            assert _timed_queries(sessions[0], 5) < 5 * 0.040
            server.clear_faults()  # not a fault: latency stays until it is set again
        finally:
            for session in sessions:
                session.cleanup()


def test_latency_is_not_negative_or_absurd(tmp_path: Path) -> None:
    server = IrodsTestServer(tmp_path / "data")
    with pytest.raises(ValueError, match="latency"):
        server.set_latency_ms(-1)
    with pytest.raises(ValueError, match="latency"):
        server.set_latency_ms(120_000)


def test_command_line_flag_and_control_channel(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "irods_ingest", "test-server", "--port", "0", "--data-dir", str(tmp_path / "d"),
         "--control-port", "0", "--latency-ms", "25"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on ([\d.]+):(\d+) control [\d.]+:(\d+)", line)
        assert match, line
        control = ControlClient(match.group(1), int(match.group(3)))
        assert control.latency_ms() == 25
        control.set_latency_ms(2)
        assert control.latency_ms() == 2
        control.set_latency_ms(0)
        assert control.latency_ms() == 0
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_the_fixture_sets_it_for_one_test(irods_latency: Any, irods_test_server: IrodsTestServer) -> None:
    irods_latency(3)
    assert irods_test_server.latency_ms == 3
