"""The CLI with an S3 source, as users run it: spawned workers get the keypair, Redis never does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport.irods_fixtures import IrodsEnv
from testsupport.s3_fixtures import S3Endpoint

pytestmark = [pytest.mark.redis, pytest.mark.irods]


def test_start_s3_source_with_incumbent_options_and_keypair(
    redis_url: str, irods_env: IrodsEnv, irods_session, s3_server: S3Endpoint, s3_bucket: str,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    client = s3_server.client()
    for i in range(12):
        client.put_object(Bucket=s3_bucket, Key=f"in/d{i % 3}/f {i}.txt", Body=f"object {i}".encode())  # type: ignore[attr-defined]
    keypair = tmp_path / "keypair"
    keypair.write_text(f"{s3_server.access_key}\n{s3_server.secret_key}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"IRODS_INGEST_REDIS_URL": redis_url, "IRODS_HOST": irods_env.host, "IRODS_PORT": str(irods_env.port),
            "IRODS_USER_NAME": irods_env.user, "IRODS_ZONE_NAME": irods_env.zone, "IRODS_PASSWORD": irods_env.password}
    target = f"{irods_env.home}/s3cli_{os.getpid()}"
    done = subprocess.run(
        [sys.executable, "-m", "irods_ingest", "start", f"s3://{s3_bucket}/in", target, "--job-name", "s3-cli",
         "--operation", "PutSync", "--s3_endpoint_domain", s3_server.url.removeprefix("http://"),
         "--s3_insecure_connection", "--s3_region_name", s3_server.region, "--s3_keypair", str(keypair),
         "--workers", "2", "--verify-checksum"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "synced 12" in done.stderr
    session = irods_session()
    names = {o.name for _c, _s, objs in session.collections.get(target).walk() for o in objs}
    assert names == {f"f {i}.txt" for i in range(12)}
    session.collections.remove(target, recurse=True, force=True)

    import redis

    stored = b"".join(_contents(redis.Redis.from_url(redis_url), key) for key in redis.Redis.from_url(redis_url).scan_iter("*"))
    assert b"s3-cli" in stored and s3_server.secret_key.encode() not in stored


def _contents(client: object, key: bytes) -> bytes:
    """Every value held under ``key``, whatever its type."""
    kind = client.type(key)  # type: ignore[attr-defined]
    readers = {
        b"string": lambda: [client.get(key)],  # type: ignore[attr-defined]
        b"hash": lambda: [x for kv in client.hgetall(key).items() for x in kv],  # type: ignore[attr-defined]
        b"list": lambda: client.lrange(key, 0, -1),  # type: ignore[attr-defined]
        b"set": lambda: list(client.smembers(key)),  # type: ignore[attr-defined]
        b"zset": lambda: client.zrange(key, 0, -1),  # type: ignore[attr-defined]
    }
    values = readers.get(kind, lambda: [])()
    return key + b"".join(v if isinstance(v, bytes) else str(v).encode() for v in values)
