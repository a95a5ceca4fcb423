"""No credential ever lands in logs, Redis, task payloads or failure records.

A job runs as a user with a distinctive iRODS password against a Redis with a distinctive
password, with DEBUG logs captured from every process, including a run with a wrong iRODS
password (error paths are where secrets leak). Then every log line and every Redis value
is searched for both secrets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from irods_ingest.store.connection import connect
from irods_ingest_testkit.redis_server import RedisServer
from testsupport.irods_fixtures import IrodsEnv

pytestmark = [pytest.mark.redis, pytest.mark.irods]

IRODS_SECRET = "irods-Secr3t-77q"
REDIS_SECRET = "redis-Pa55-zz91"


@pytest.fixture
def secret_user(irods_session, irods_env: IrodsEnv) -> str:  # type: ignore[no-untyped-def]
    from irods.exception import UserDoesNotExist

    admin = irods_session()
    try:
        admin.users.get("tester")
    except UserDoesNotExist:
        admin.users.create("tester", "rodsuser")
    admin.users.modify("tester", "password", IRODS_SECRET)
    return "tester"


def all_redis_values(url: str) -> list[bytes]:
    client = connect(url)
    values: list[bytes] = []
    for key in client.scan_iter(count=1000):
        values.append(key)
        kind = client.type(key).decode()
        if kind == "string":
            values.append(client.get(key) or b"")
        elif kind == "hash":
            values.extend(b for pair in client.hgetall(key).items() for b in pair)
        elif kind == "list":
            values.extend(client.lrange(key, 0, -1))
        elif kind == "set":
            values.extend(client.smembers(key))
        elif kind == "zset":
            values.extend(member for member, _ in client.zrange(key, 0, -1, withscores=True))
    return values


def test_secrets_never_leave_their_place(irods_env: IrodsEnv, secret_user: str, irods_session: Any,
                                         tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(5):
        (source / f"f{i}").write_text(str(i))
    logs: list[str] = []
    with RedisServer(data_dir=tmp_path / "redis", password=REDIS_SECRET) as redis_server:
        base = {**os.environ, "IRODS_INGEST_REDIS_URL": redis_server.url, "IRODS_HOST": irods_env.host,
                "IRODS_PORT": str(irods_env.port), "IRODS_USER_NAME": secret_user, "IRODS_ZONE_NAME": irods_env.zone}

        def run(*args: str, password: str) -> subprocess.CompletedProcess[str]:
            env = {**base, "IRODS_PASSWORD": password}
            result = subprocess.run([sys.executable, "-m", "irods_ingest", *args, "--log-level", "DEBUG"],
                                    env=env, capture_output=True, text=True, timeout=120)
            logs.extend([result.stdout, result.stderr])
            return result

        target = f"/{irods_env.zone}/home/{secret_user}/secrets"
        ok = run("start", str(source), target, "--job-name", "secret", "--operation", "Put", "--workers", "1",
                 password=IRODS_SECRET)
        assert ok.returncode == 0, ok.stderr
        bad = run("start", str(source), target + "2", "--job-name", "secret2", "--workers", "1",
                  password="wrong-" + IRODS_SECRET[::-1])
        assert bad.returncode == 1  # refused, and the failure is recorded...
        assert "refused the password" in "".join(f.decode() for f in all_redis_values(redis_server.url)
                                                   if b"reason" in f)
        # ...and a wrong Redis password fails in one line without echoing it
        wrong_redis = subprocess.run([sys.executable, "-m", "irods_ingest", "list", "--redis-url",
                                      redis_server.url.replace(REDIS_SECRET, "not-" + REDIS_SECRET[:4])],
                                     capture_output=True, text=True, timeout=60)
        logs.extend([wrong_redis.stdout, wrong_redis.stderr])
        assert wrong_redis.returncode == 1 and "password" in wrong_redis.stderr
        stored = all_redis_values(redis_server.url)
    text = "\n".join(logs)
    assert '"level": "debug"' in text  # DEBUG logs were really captured
    for secret in (IRODS_SECRET, REDIS_SECRET, IRODS_SECRET[::-1]):
        assert secret not in text, f"{secret} leaked into logs"
        assert not any(secret.encode() in value for value in stored), f"{secret} leaked into Redis"
