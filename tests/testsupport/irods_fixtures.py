"""Fixtures for iRODS: the protocol test server per session, or a real iRODS when configured.

Set ``IRODS_TEST_HOST`` (and optionally ``IRODS_TEST_PORT``, ``IRODS_TEST_USER``,
``IRODS_TEST_PASSWORD``, ``IRODS_TEST_ZONE``) to run the suite against a real iRODS; the
user must be a rodsadmin. Tests that need the test server's counters or fault injection ask
for ``irods_test_server``, which skips in that mode.

* ``irods_env``: the connection settings (:class:`IrodsEnv`);
* ``irods_session``: a factory ``irods_session(**overrides) -> iRODSSession``; every session
  it made is cleaned up at the end of the test;
* ``irods_server``: the session's :class:`IrodsTestServer`, or ``None`` against a real iRODS;
* ``irods_test_server``: the test server itself (skips against a real iRODS);
* ``irods_latency``: ``irods_latency(ms)`` adds ``ms`` to every API reply of the test server
  for the rest of the test (reset afterwards; skips against a real iRODS).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from irods_ingest_testkit.irods_server import ADMIN_PASSWORD, ADMIN_USER, ZONE, IrodsTestServer

REAL_IRODS_HOST_VAR = "IRODS_TEST_HOST"


@dataclass(frozen=True)
class IrodsEnv:
    host: str
    port: int
    user: str
    password: str
    zone: str
    real: bool = False

    @property
    def home(self) -> str:
        return f"/{self.zone}/home/{self.user}"

    def session_kwargs(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password,
                "zone": self.zone}


def real_irods_env() -> IrodsEnv | None:
    host = os.environ.get(REAL_IRODS_HOST_VAR)
    if not host:
        return None
    return IrodsEnv(
        host=host,
        port=int(os.environ.get("IRODS_TEST_PORT", "1247")),
        user=os.environ.get("IRODS_TEST_USER", ADMIN_USER),
        password=os.environ.get("IRODS_TEST_PASSWORD", ADMIN_PASSWORD),
        zone=os.environ.get("IRODS_TEST_ZONE", ZONE),
        real=True,
    )


@pytest.fixture(scope="session")
def irods_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrodsTestServer | None]:
    if real_irods_env() is not None:
        yield None
        return
    server = IrodsTestServer(tmp_path_factory.mktemp("irods-server")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def irods_test_server(irods_server: IrodsTestServer | None) -> IrodsTestServer:
    if irods_server is None:
        pytest.skip("needs the iRODS test server (counters/faults); running against a real iRODS")
    return irods_server


@pytest.fixture
def irods_latency(irods_test_server: IrodsTestServer) -> Iterator[Callable[[float], None]]:
    yield irods_test_server.set_latency_ms
    irods_test_server.set_latency_ms(0)


@pytest.fixture(scope="session")
def irods_env(irods_server: IrodsTestServer | None) -> IrodsEnv:
    real = real_irods_env()
    if real is not None:
        return real
    assert irods_server is not None
    return IrodsEnv(host=irods_server.host, port=irods_server.port, user=ADMIN_USER, password=ADMIN_PASSWORD,
                    zone=ZONE)


@pytest.fixture
def irods_session(irods_env: IrodsEnv) -> Iterator[Callable[..., Any]]:
    """A factory of iRODSSession objects (keyword overrides go to iRODSSession); all cleaned up."""
    from irods.session import iRODSSession

    sessions: list[Any] = []

    def make(**overrides: Any) -> Any:
        kwargs = {**irods_env.session_kwargs(), **overrides}
        session = iRODSSession(**kwargs)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.cleanup()


def env_for(env: IrodsEnv, **changes: Any) -> IrodsEnv:
    return replace(env, **changes)
