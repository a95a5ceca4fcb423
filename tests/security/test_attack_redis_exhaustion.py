"""Redis cannot be exhausted, nor read for secrets, through what workers write to it.

Security issue 14, finding 6, and the workers' Redis hygiene. Failure records were pushed
without a cap (each may carry a 4 KB traceback) and a retry loaded them all; an
``OOM command not allowed`` reply failed the worker; a handler's exception text (which may
quote ``os.environ``) went into Redis as it was; and the S3 listing bookkeeping SCANned
the whole keyspace at the end of every run. Each test states who could exploit it, what
they did, what they got before and what holds now.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from irods.keywords import ADMIN_KW

from irods_ingest.actions import retry_failed, start_job
from irods_ingest.config import JobConfig, Operation
from irods_ingest.jobstate import FailureLog, ListingBook, RunState
from irods_ingest.store.connection import connect
from irods_ingest.store.keys import JobKeys
from irods_ingest.worker import WorkerOptions, run_worker
from irods_ingest_testkit.redis_server import RedisServer
from testsupport.ingest import Ingest

pytestmark = [pytest.mark.redis, pytest.mark.irods]

FAILING_HANDLER = """
from irods_capability_automated_ingest.core import Core
class event_handler(Core):
    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        raise RuntimeError("refused " + meta["path"] + " " + "x" * 100_000)
"""


def _workers(ingest: Ingest, url: str | None = None, concurrency: int = 4) -> int:
    options = WorkerOptions(jobs=[ingest.job], redis_url=url or ingest.redis_url, concurrency=concurrency,
                            exit_when_idle=True, irods_settings=ingest.settings)
    return run_worker(options, install_signals=False)


def test_a_failure_flood_keeps_the_first_records_and_counts_the_rest(ingest: Ingest) -> None:
    """Attacker: a data producer, or a handler author. Tried: 3000 files that all fail,
    each with a 100 KB exception message (and its traceback). Before: 3000 records went into
    ``ii:{job}:failures`` uncapped (reasons whole), and ``retry`` loaded them all. Now: the
    ACK script keeps the first ``max_failure_records`` (100) records of the run and counts the
    rest in ``failures_dropped``; reasons are capped at 2 KB and tracebacks at 4 KB; a retry
    after a truncated list starts a full run instead of redoing only the recorded files."""
    for i in range(3000):
        ingest.write(f"d{i // 500}/f{i:04d}.txt", b"")
    status = ingest.run(handler=FAILING_HANDLER, workers=4, operation=Operation.PUT_SYNC, max_failure_records=100,
                        files_per_task=100)

    assert status.state == "failed"
    assert status.counters["files_failed"] == 3000
    assert status.counters["failures_dropped"] == 2900
    client = ingest.runs.client
    key = JobKeys(ingest.job).failures
    assert client.llen(key) == 100
    for raw in client.lrange(key, 0, -1):
        assert len(raw) <= 2048 + 4096 + 1024, len(raw)  # reason, traceback, the rest of the record
    record = ingest.failures()[0]
    assert record["reason"].startswith("event handler pre_data_obj_create() raised RuntimeError: refused ")
    assert len(record["reason"]) <= 2048 and len(record["traceback"]) <= 4000

    result = retry_failed(client, ingest.job)

    assert result.started and result.full_run
    assert "2900" in result.note and "full run" in result.note
    assert client.hget(JobKeys(ingest.job).run, "kind") == b"full"
    assert ingest.runs.stop()


def test_a_retry_without_dropped_records_redoes_only_the_recorded_files(ingest: Ingest) -> None:
    """The fallback is only for a truncated list: with every failure recorded, a retry still
    redoes exactly the failed files (no rescan)."""
    for i in range(5):
        ingest.write(f"f{i}.txt", b"")
    status = ingest.run(handler=FAILING_HANDLER, operation=Operation.PUT_SYNC, max_failure_records=100)
    assert status.counters["files_failed"] == 5 and status.counters["failures_dropped"] == 0
    result = retry_failed(ingest.runs.client, ingest.job)
    assert result.started and not result.full_run
    assert ingest.runs.client.hget(JobKeys(ingest.job).run, "kind") == b"retry"
    assert ingest.runs.stop()


def _values(client: redis.Redis) -> Iterator[bytes]:
    """Every value stored in Redis (every member, field and element), for a secret search."""
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            yield client.get(key) or b""
        elif kind == b"list":
            yield from client.lrange(key, 0, -1)
        elif kind == b"hash":
            for name, value in client.hgetall(key).items():
                yield name
                yield value
        elif kind == b"set":
            yield from client.smembers(key)
        elif kind == b"zset":
            yield from client.zrange(key, 0, -1)


@contextmanager
def _removed(ingest: Ingest) -> Iterator[None]:
    try:
        yield
    finally:
        if ingest.session.collections.exists(ingest.target):  # another user's: as an administrator
            ingest.session.collections.remove(ingest.target, recurse=True, force=True, **{ADMIN_KW: ""})


def _as_own_user(ingest: Ingest, user: str, password: str) -> Ingest:
    """The same job run as an iRODS user of its own (made now), into a target in its home."""
    from dataclasses import replace

    from irods.exception import UserDoesNotExist

    try:
        ingest.session.users.get(user)
    except UserDoesNotExist:
        ingest.session.users.create(user, "rodsuser")
    ingest.session.users.modify(user, "password", password)
    env = replace(ingest.env, user=user, password=password)
    return replace(ingest, env=env, target=f"{env.home}/{ingest.target.rsplit('/', 1)[1]}")


def test_a_handler_cannot_leak_the_workers_secrets_into_redis(
    ingest: Ingest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker: a handler author (who can read anyone's failure records, or who wants a
    worker's credentials in a place a reader of Redis can see). Tried: hooks that raise with
    ``os.environ``, with the iRODS password taken from the session, and post_job raising
    with the Redis URL. Before: the messages (and tracebacks) went into the failures list and
    the run's error as they were. Now: every failure record and run error passes the worker's
    redactor before it reaches Redis: the iRODS password, AWS_SECRET_ACCESS_KEY and the Redis
    password read "***" wherever they appear."""
    redis_password = "redis-Secret-4711"
    aws_secret = "aws/Secret+Key=9876"
    ingest = _as_own_user(ingest, "redactee", "irods-Secret-2468")  # the suite's password is "rods": everywhere
    monkeypatch.setenv("IRODS_PASSWORD", ingest.env.password)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
    with RedisServer(data_dir=tmp_path / "redis", password=redis_password) as server, _removed(ingest):
        monkeypatch.setenv("IRODS_INGEST_REDIS_URL", server.url)
        handler = (
            "import os\n"
            "from irods_capability_automated_ingest.core import Core\n"
            "class event_handler(Core):\n"
            "    @staticmethod\n"
            "    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):\n"
            "        if meta['path'].endswith('env.txt'):\n"
            "            raise RuntimeError(f'environment: {dict(os.environ)}')\n"
            "        raise RuntimeError('password: ' + session.pool.account.password)\n"
            "    @staticmethod\n"
            "    def post_job(hdlr_mod, logger, meta):\n"
            "        raise RuntimeError('redis: ' + os.environ['IRODS_INGEST_REDIS_URL'])\n"
        )
        ingest.write("env.txt", b"e")
        ingest.write("session.txt", b"s")
        client = connect(server.url)
        start_job(client, ingest.config(operation=Operation.PUT_SYNC), handler, force=True)
        assert _workers(ingest, server.url, concurrency=1) == 0
        status = RunState(client, ingest.job).status()
        assert status.state == "failed" and status.counters["files_failed"] == 2
        failures = FailureLog(client, ingest.job).records()
        assert len(failures) == 3, failures  # two files, and post_job
        assert "***" in status.error
        stored = b"\n".join(_values(client))
        for secret in (ingest.env.password, aws_secret, redis_password):
            assert secret.encode() not in stored, secret
        assert b"***" in stored


def test_a_worker_survives_an_out_of_memory_redis_and_finishes_once_memory_is_freed(
    ingest: Ingest, tmp_path: Path
) -> None:
    """Attacker: anyone who can fill the workers' Redis (another job's runaway data, a
    tenant sharing the instance), up to ``maxmemory`` with ``noeviction``. Tried: a run
    started, then Redis filled until it answers ``OOM command not allowed``. Before: that
    reply was a "refused command" (permanent): the worker's threads died and the run
    stalled. Now: it is StoreUnavailable (retryable): workers back off and retry, lose
    nothing, and complete the run once memory is freed."""
    for i in range(20):
        ingest.write(f"f{i:02d}.txt", f"file {i}")
    with RedisServer(data_dir=tmp_path / "redis", extra_args=["--maxmemory-policy", "noeviction"]) as server:
        admin = redis.Redis.from_url(server.url)
        start_job(admin, ingest.config(operation=Operation.PUT_SYNC, files_per_task=5), force=True)
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", used + 2 * 1024 * 1024)
        junk = 0
        with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
            while True:
                admin.set(f"junk:{junk}", b"j" * 65536)
                junk += 1
        result: list[int] = []
        worker = threading.Thread(target=lambda: result.append(_workers(ingest, server.url, concurrency=2)))
        worker.start()
        time.sleep(3)
        assert worker.is_alive(), result  # backing off, not dead
        assert RunState(admin, ingest.job).status().state == "running"

        admin.delete(*[f"junk:{i}" for i in range(junk)])
        worker.join(timeout=120)
        assert not worker.is_alive() and result == [0]
        status = RunState(admin, ingest.job).status()
        assert status.state == "done", FailureLog(admin, ingest.job).records()
        assert status.counters["files_synced"] == 20 and status.counters["files_failed"] == 0
        assert set(ingest.objects()) == {f"f{i:02d}.txt" for i in range(20)}


# ---------------------------------------------------------------------------- no SCAN
NO_SCAN_ACL = "on >scanless-Pass-1 ~* &* +@all -scan -keys"


def _scanless_url(server: RedisServer) -> str:
    return server.url.replace("redis://", "redis://scanless:scanless-Pass-1@", 1)


def test_the_listing_book_is_indexed_not_scanned(tmp_path: Path) -> None:
    """Attacker: none -- the worker's own Redis user, which per-job ACLs restrict to its
    job's keys by name. Tried: the bookkeeping of an S3 run (seen sets of multi-page
    prefixes, one left by a listing that never finished) and its removal at FINALIZE, as a
    user that may not SCAN or KEYS. Before: ``forget_run_seen`` SCANned the keyspace for
    ``seen:{run}:*`` (refused: NOPERM). Now: every seen set is listed in a per-run index
    written with it; forgetting a run reads the index by name, touches only its own job's
    keys, and deletes the index too."""
    with RedisServer(data_dir=tmp_path / "redis") as server:
        admin = connect(server.url)
        admin.execute_command("ACL", "SETUSER", "scanless", *NO_SCAN_ACL.split())
        worker = connect(_scanless_url(server))
        with pytest.raises(redis.exceptions.NoPermissionError):
            worker.scan(0)
        book = ListingBook(worker, "ns/job")
        book.remember_seen("run-1", "a", ["x", "y"])
        book.remember_seen("run-1", "b", ["z"])
        book.remember_seen("run-2", "a", ["other run"])
        book.forget_seen("run-1", "a")  # a prefix whose last page finished it
        admin.set("ii:{other}:seen:run-1:abc", "another job's key")
        assert book.seen_started("run-1", "b")

        assert book.forget_run_seen("run-1") == 1

        assert not book.seen_started("run-1", "b")
        assert book.seen_started("run-2", "a")
        assert admin.get("ii:{other}:seen:run-1:abc") == b"another job's key"
        keys = {k.decode() for k in admin.scan_iter("ii:{ns/job}:*")}
        assert all("run-1" not in k for k in keys), keys


@pytest.mark.usefixtures("s3_bucket")
def test_an_s3_job_runs_under_a_user_that_may_not_scan(
    ingest: Ingest, s3_server: Any, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker: none -- as above, a whole S3 run (multi-page prefixes, deletions, FINALIZE)
    under a Redis user without SCAN/KEYS. Before: FINALIZE's SCAN was refused and the worker
    thread died with the run unfinished. Now: the run completes and leaves no seen set."""
    from irods_ingest.config import DeleteMode
    from testsupport.s3_ingest import S3Ingest, tune_transfers

    for name, value in s3_server.environ.items():
        monkeypatch.setenv(name, value)
    s3 = S3Ingest(ingest=ingest, endpoint=s3_server, bucket=s3_bucket, client=s3_server.client())
    tune_transfers(monkeypatch, page_size=2)
    for i in range(5):
        s3.put(f"many/k{i}", b"k")
    s3.put("top.txt", b"t")
    with RedisServer(data_dir=tmp_path / "redis") as server:
        admin = connect(server.url)
        admin.execute_command("ACL", "SETUSER", "scanless", *NO_SCAN_ACL.split())
        config: JobConfig = ingest.config(source_path="", s3=s3.source, operation=Operation.PUT_SYNC,
                                          delete_mode=DeleteMode.NO_TRASH)
        for round_ in range(2):
            start_job(admin, config, force=True)
            assert _workers(ingest, _scanless_url(server), concurrency=2) == 0
            status = RunState(admin, ingest.job).status()
            assert status.state == "done", FailureLog(admin, ingest.job).records()
            if round_ == 0:
                s3.delete("many/k3")
        assert status.counters["files_deleted"] == 1
        assert [k for k in admin.scan_iter(f"ii:{{{ingest.job}}}:seen*")] == []


# ---------------------------------------------------------------------------- the pieces, alone
def test_the_redactor_masks_every_spelling_of_a_secret_and_nothing_public() -> None:
    from irods_ingest.redact import Redactor, worker_secrets

    secret = 'p@ss:w/rd"x'
    redact = Redactor([secret, "abc", "rods"], public=["rods"])
    for spelling in (secret, repr(secret)[1:-1], 'p@ss:w/rd\\"x', "p%40ss%3Aw%2Frd%22x"):
        assert redact(f"before {spelling} after") == "before *** after", spelling
    assert redact("abc rods") == "abc rods"  # too short to be a secret; the user name is public
    # A short secret is masked where it stands alone, not inside a longer word or path part.
    short = Redactor(["hunter2"])
    assert short("IRODS_PASSWORD='hunter2', x=hunter2") == "IRODS_PASSWORD='***', x=***"
    assert short("/data/hunter22/file, xhunter2") == "/data/hunter22/file, xhunter2"
    assert Redactor(["a-long-secret-value"])("id=xxa-long-secret-valuexx") == "id=xx***xx"
    found = worker_secrets({"IRODS_PASSWORD": "irods-pw", "AWS_SECRET_ACCESS_KEY": "aws-key", "HOME": "/root"},
                           redis_url="redis://worker:r%40dis-pw@host:6379/0", irods_password="settings-pw")
    assert {"irods-pw", "aws-key", "r@dis-pw", "r%40dis-pw", "settings-pw"} <= set(found) and "/root" not in found


def test_out_of_memory_replies_are_retryable() -> None:
    from irods_ingest.errors import StoreUnavailable
    from irods_ingest.store.connection import translated_errors

    for error in (
        redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        redis.exceptions.ResponseError("Command # 2 (SADD k v) of pipeline caused error: OOM command not allowed "
                                       "when used memory > 'maxmemory'."),
    ):
        with pytest.raises(StoreUnavailable, match="out of memory"), translated_errors():
            raise error


@pytest.mark.parametrize("value", [0, 100_001])
def test_max_failure_records_is_validated(value: int) -> None:
    from irods_ingest.config import validate

    config = JobConfig(job_name="j", source_path="/src", target_collection="/tempZone/x", max_failure_records=value)
    problems = validate(config)
    assert [p.field for p in problems] == ["max_failure_records"]
    assert "1..100000" in problems[0].fix


def test_the_cli_sets_max_failure_records() -> None:
    from irods_ingest.cli import build_parser, config_from_args

    args = build_parser().parse_args(["start", "/src", "/tempZone/home/rods/x", "--max-failure-records", "250"])
    assert config_from_args(args).max_failure_records == 250
    assert config_from_args(build_parser().parse_args(["start", "/src", "/tempZone/home/rods/x"])).max_failure_records == 1000
