"""The suite's own redis-server works, restarts with its data (AOF), and missing services fail in CI."""

from __future__ import annotations

import pytest

from irods_ingest.store.connection import connect
from irods_ingest_testkit.redis_server import RedisServer
from testsupport.require import service_unavailable

pytestmark = pytest.mark.redis


def test_round_trip(redis_url: str) -> None:
    client = connect(redis_url)
    assert client.set("smoke", "1") and client.get("smoke") == b"1"


def test_restart_keeps_acknowledged_writes(private_redis: RedisServer) -> None:
    client = connect(private_redis.url)
    client.rpush("kept", "a", "b")
    private_redis.kill()  # a crash, not a clean shutdown
    private_redis.start()
    assert connect(private_redis.url).lrange("kept", 0, -1) == [b"a", b"b"]


def test_missing_service_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"redis-server unavailable: not installed\. Fix: apt"):
        service_unavailable("redis-server", "not installed", "apt-get install redis-server")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        service_unavailable("redis-server", "not installed", "apt-get install redis-server")
