"""Connection-level behaviour: versions, both authentication flows, negotiation, robustness,
counters and faults. Most of it needs the test server itself (skips against a real iRODS)."""

from __future__ import annotations

import errno
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from irods_ingest_testkit.irods_server import IrodsTestServer
from testsupport.irods_fixtures import IrodsEnv

pytestmark = pytest.mark.irods


@pytest.fixture(params=["4.3.4", "5.0.2"])
def versioned_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IrodsTestServer]:
    with IrodsTestServer(tmp_path / "srv", server_version=request.param) as server:
        yield server


def session_for(server: IrodsTestServer, **overrides: Any) -> Any:
    from irods.session import iRODSSession

    kwargs = {"host": server.host, "port": server.port, "user": "rods", "password": "rods", "zone": "tempZone"}
    return iRODSSession(**{**kwargs, **overrides})


def test_reported_version_changes_client_behaviour(versioned_server: IrodsTestServer) -> None:
    session = session_for(versioned_server)
    try:
        expected = tuple(int(p) for p in versioned_server.server_version.split("."))
        assert session.server_version == expected
        with session.data_objects.open("/tempZone/home/rods/v.txt", "w") as f:
            f.write(b"v")
        versioned_server.reset_counts()
        replica = session.data_objects.get("/tempZone/home/rods/v.txt").replicas[0]
        assert (replica.number, replica.status, replica.size) == (0, "1", 1)
        assert versioned_server.api_counts() == {702: 2}  # the parent collection, then the replicas
        # 5.0 adds D_ACCESS_TIME (424) to the replica query; PRC then fills access_time
        assert hasattr(replica, "access_time") == (expected >= (5,))
        if expected >= (5,):
            from irods.models import DataObject

            row = session.query(DataObject.access_time).filter(DataObject.name == "v.txt").one()
            assert row[DataObject.access_time] == replica.access_time
        # the version also picks the authentication flow: JSON from 4.3 on
        versioned_server.reset_counts()
        with session_for(versioned_server) as fresh:
            fresh.collections.get("/tempZone/home/rods")
        assert versioned_server.api_counts() == {110000: 2, 702: 1}
    finally:
        session.cleanup()


def test_wrong_password_json_flow(irods_session: Callable[..., Any], irods_env: IrodsEnv) -> None:
    from irods.exception import CAT_INVALID_AUTHENTICATION

    with pytest.raises(CAT_INVALID_AUTHENTICATION):
        irods_session(password="wrong").collections.get(irods_env.home)


def test_legacy_flow_forced_and_by_old_server(irods_session: Callable[..., Any], irods_env: IrodsEnv,
                                              tmp_path: Path) -> None:
    import irods.client_configuration as cfg
    from irods.exception import CAT_INVALID_AUTHENTICATION

    saved = cfg.legacy_auth.force_legacy_auth
    cfg.legacy_auth.force_legacy_auth = True
    try:
        assert irods_session().collections.get(irods_env.home).path == irods_env.home
        with pytest.raises(CAT_INVALID_AUTHENTICATION):
            irods_session(password="wrong").collections.get(irods_env.home)
    finally:
        cfg.legacy_auth.force_legacy_auth = saved
    with IrodsTestServer(tmp_path / "old", server_version="4.2.12") as old:
        session = session_for(old)
        try:
            assert session.collections.get("/tempZone/home/rods").name == "rods"
            assert old.api_counts() == {703: 1, 704: 1, 702: 1}  # challenge/response, no JSON flow
            with pytest.raises(CAT_INVALID_AUTHENTICATION):
                session_for(old, password="nope").collections.get("/tempZone/home/rods")
        finally:
            session.cleanup()


def test_negotiation_refused_cleanly(irods_test_server: IrodsTestServer, irods_session: Callable[..., Any],
                                     irods_env: IrodsEnv) -> None:
    from irods.exception import NetworkException

    tcp = irods_session(client_server_negotiation="request_server_negotiation",
                              client_server_policy="CS_NEG_REFUSE")
    assert tcp.collections.get(irods_env.home).path == irods_env.home
    require = irods_session(client_server_negotiation="request_server_negotiation",
                            client_server_policy="CS_NEG_REQUIRE")
    with pytest.raises(NetworkException, match="negotiation failure"):
        require.collections.get(irods_env.home)


def test_malformed_packets_and_abrupt_disconnects_end_only_that_connection(
    irods_test_server: IrodsTestServer, admin: Any, irods_env: IrodsEnv
) -> None:
    address = (irods_test_server.host, irods_test_server.port)
    for garbage in (b"\x00\x00\x00\x05hello", b"\xff\xff\xff\xff", struct.pack(">i", 20) + b"<MsgHeader_PI><type>",
                    b"GET / HTTP/1.0\r\n\r\n"):
        _send_and_wait_for_close(address, garbage)  # a server that kept it open would time out here
    assert admin.collections.get(irods_env.home).path == irods_env.home
    # a client that vanishes in the middle of a write leaves a stale replica, nothing else
    path = f"{irods_env.home}/abandoned.txt"
    handle = admin.data_objects.open(path, "w")
    handle.write(b"partial")
    handle.flush()
    sock = handle.raw.conn.socket
    client_address = sock.getsockname()
    sock.close()
    assert irods_test_server.wait_disconnected(client_address, timeout=10)
    assert [(r.number, r.status) for r in admin.data_objects.get(path).replicas] == [(0, "0")]
    admin.data_objects.unlink(path, force=True)


def _send_and_wait_for_close(address: tuple[str, int], data: bytes) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:  # the server has already reset the connection
                raise
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            pass  # closed with a reset rather than a FIN: ended all the same


def test_counters_count_round_trips(irods_test_server: IrodsTestServer, admin: Any, irods_env: IrodsEnv) -> None:
    admin.collections.get(irods_env.home)  # connect and authenticate first
    irods_test_server.reset_counts()
    admin.collections.create(f"{irods_env.home}/counted")
    assert irods_test_server.api_counts() == {681: 1, 702: 1}
    admin.collections.remove(f"{irods_env.home}/counted", force=True)


def test_fault_fail_nth_call(irods_test_server: IrodsTestServer, admin: Any, irods_env: IrodsEnv) -> None:
    from irods.exception import SYS_RESC_DOES_NOT_EXIST

    irods_test_server.fail_nth(681, nth=2, code=-78000)
    try:
        admin.collections.create(f"{irods_env.home}/f1")
        with pytest.raises(SYS_RESC_DOES_NOT_EXIST):
            admin.collections.create(f"{irods_env.home}/f2")
        admin.collections.create(f"{irods_env.home}/f3")
        assert not admin.collections.exists(f"{irods_env.home}/f2")
    finally:
        irods_test_server.clear_faults()
        for name in ("f1", "f3"):
            admin.collections.remove(f"{irods_env.home}/{name}", force=True)


def test_fault_drop_connection(irods_test_server: IrodsTestServer, admin: Any, irods_env: IrodsEnv) -> None:
    from irods.exception import NetworkException

    admin.collections.get(irods_env.home)
    irods_test_server.drop_connection(api=702)
    try:
        with pytest.raises(NetworkException):
            admin.collections.get(irods_env.home)
        assert admin.collections.get(irods_env.home).path == irods_env.home  # a new connection works
    finally:
        irods_test_server.clear_faults()


def test_fault_delay_replies(irods_test_server: IrodsTestServer, admin: Any, irods_env: IrodsEnv) -> None:
    admin.collections.get(irods_env.home)
    irods_test_server.delay_replies(0.3, api=702, times=1)
    try:
        assert [f.kind for f in irods_test_server.faults.active()] == ["delay"]
        started = time.monotonic()
        admin.collections.get(irods_env.home)
        assert time.monotonic() - started >= 0.3
        assert irods_test_server.faults.active() == []  # times=1: spent, later replies are not held back
    finally:
        irods_test_server.clear_faults()


def test_paging_across_pooled_connections_needs_the_right_agent(
    irods_test_server: IrodsTestServer, admin: Any, coll: str
) -> None:
    """A real agent keeps GenQuery statements per connection; so does the test server."""
    from irods.exception import CAT_GET_ROW_ERR
    from irods.models import Collection

    for i in range(501):
        admin.collections.create(f"{coll}/p{i:03d}", recurse=False)
    query = admin.query(Collection.name).filter(Collection.parent_name == coll)
    first = query.execute()
    assert first.continue_index > 0
    with admin.pool.get_connection() as holder, admin.pool.get_connection():
        assert holder is not None  # two busy connections: the next page goes out on a third
        with pytest.raises(CAT_GET_ROW_ERR):
            query.continue_index(first.continue_index).execute()


def test_stop_leaves_no_threads_behind(tmp_path: Path) -> None:
    import threading

    before = set(threading.enumerate())
    server = IrodsTestServer(tmp_path / "threads", control_port=0).start()
    session = session_for(server)
    session.collections.get("/tempZone/home/rods")  # an open, pooled connection
    server.stop()
    session.cleanup()
    leftovers = [t.name for t in set(threading.enumerate()) - before
                 if t.name.startswith(("irods-agent", "irods-test", "irods-control"))]
    assert leftovers == []


def test_truncate(admin: Any, coll: str) -> None:
    path = f"{coll}/trunc.txt"
    with admin.data_objects.open(path, "w") as f:
        f.write(b"0123456789")
    admin.data_objects.truncate(path, 4)
    obj = admin.data_objects.get(path)
    assert obj.size == 4
    with obj.open("r") as f:
        assert f.read() == b"0123"
