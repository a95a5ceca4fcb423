"""A fresh ``redis-server`` per test session, on a free loopback port.

Fault tests that must stop or restart Redis ask for ``private_redis`` (their own
instance) rather than disturbing the session-wide one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from irods_ingest_testkit.redis_server import RedisServer, RedisServerMissing
from testsupport.require import service_unavailable


def _start(data_dir: Path, **options: object) -> RedisServer:
    try:
        return RedisServer(data_dir=data_dir, **options).start()  # type: ignore[arg-type]
    except RedisServerMissing as exc:
        service_unavailable("redis-server", str(exc), "run `make test` (it installs redis-server)")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = _start(tmp_path_factory.mktemp("redis"))
    yield server
    server.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, with AOF on, that the test may kill and restart."""
    server = _start(tmp_path / "redis", appendonly=True)
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL to a scratch database of the session Redis, flushed before each test."""
    import redis as redis_lib

    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url
