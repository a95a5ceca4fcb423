"""Attacker: whoever holds one job's worker Redis credential (a compromised worker pod, a
tenant reading their own namespace's Secret, a handler printing its environment).

Before: one `worker` ACL user served every job. It could write any job's ``ii:*`` keys and
read every job's config and handler: pushing ``{"kind":"delete","colls":["/tempZone/home"]}``
into another job's queue made that job's worker force-delete /tempZone/home. It could also
SCAN the keyspace, run FUNCTION, SCRIPT FLUSH, SELECT and pub/sub.

Now: each job's workers get a user of their own (irods_ingest.store.acl), whose keys are that
job's only (read-only for its config and handler) and whose commands are the engine's own.
These tests hold real redis-server ACLs to that, with a whole job run under such a user.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from irods_ingest.actions import start_job
from irods_ingest.config import JobConfig, Operation
from irods_ingest.jobstate import FailureLog, RunState, StoredJob
from irods_ingest.store.acl import JobCredentials, url_with_credentials, without_credentials
from irods_ingest.store.connection import connect
from irods_ingest.store.keys import JobKeys
from irods_ingest.worker import WorkerOptions, run_worker
from irods_ingest_testkit.redis_server import RedisServer
from testsupport.ingest import Ingest

pytestmark = [pytest.mark.redis]

ADMIN_PASSWORD = "admin-Pw-4711"


@dataclass
class TwoJobs:
    server: RedisServer
    admin: redis.Redis
    own: str  # the attacker's job
    other: str  # a job of somebody else
    own_url: str  # the attacker's job's worker credential, as the operator hands it over

    def as_worker(self) -> redis.Redis:
        return redis.Redis.from_url(self.own_url)


@pytest.fixture
def two_jobs(tmp_path: Path) -> Iterator[TwoJobs]:
    with RedisServer(data_dir=tmp_path / "redis", password=ADMIN_PASSWORD) as server:
        admin = connect(server.url)
        for job in ("team-a/own", "team-b/other"):
            config = JobConfig(job_name=job, source_path=str(tmp_path), target_collection=f"/tempZone/home/rods/{job.split('/')[1]}",
                               operation=Operation.NO_OP)
            start_job(admin, config, "class event_handler:\n    pass\n")
        credentials = JobCredentials(admin, "team-a/own")
        new = credentials.rotate()
        credentials.commit(new.state)
        url = url_with_credentials(without_credentials(server.url), credentials.user, new.password)
        yield TwoJobs(server, admin, "team-a/own", "team-b/other", url)


def _refused(call: object) -> None:
    assert callable(call)
    with pytest.raises(redis.exceptions.NoPermissionError):
        call()


def test_a_worker_credential_cannot_push_tasks_into_another_jobs_queue(two_jobs: TwoJobs) -> None:
    """Tried: LPUSH a recursive delete of /tempZone/home into another job's queue. Got before:
    accepted, and that job's worker force-deleted /tempZone/home. Now: NOPERM."""
    worker = two_jobs.as_worker()
    other = JobKeys(two_jobs.other)
    forged = json.dumps({"id": "x", "kind": "delete", "run": "r", "attempt": 0, "colls": ["/tempZone/home"]})
    _refused(lambda: worker.lpush(other.queue, forged))
    _refused(lambda: worker.hset(other.run, "state", "done"))
    _refused(lambda: worker.delete(other.failures))
    assert two_jobs.admin.llen(other.queue) == 1  # just its own root scan


def test_a_worker_credential_cannot_read_another_jobs_config_or_handler(two_jobs: TwoJobs) -> None:
    """Tried: read the other job's config (source, target) and handler code. Got before: both.
    Now: NOPERM."""
    worker = two_jobs.as_worker()
    other = JobKeys(two_jobs.other)
    config = StoredJob(two_jobs.admin, two_jobs.other).config()
    assert config is not None and config.handler_hash
    _refused(lambda: worker.hget(other.job_hash, "config"))
    _refused(lambda: worker.get(other.handler(config.handler_hash)))
    _refused(lambda: worker.hgetall(other.cache(config.handler_hash[:12], "")))


def test_a_worker_credential_cannot_change_what_its_own_job_runs(two_jobs: TwoJobs) -> None:
    """Tried: rewrite its own job's config (e.g. the target collection) or handler code.
    Now: it may read them (workers must) but not write them."""
    worker = two_jobs.as_worker()
    own = JobKeys(two_jobs.own)
    config = StoredJob(two_jobs.admin, two_jobs.own).config()
    assert config is not None and config.handler_hash
    assert worker.hget(own.job_hash, "config") is not None
    _refused(lambda: worker.hset(own.job_hash, "config", "{}"))
    _refused(lambda: worker.set(own.handler(config.handler_hash), b"import os; os.system('rm -rf /')"))


@pytest.mark.parametrize("command", [
    ("SCAN", "0"), ("KEYS", "*"), ("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "SET", "maxmemory", "1"),
    ("CONFIG", "GET", "requirepass"), ("FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('f', function() return 1 end)"),
    ("FUNCTION", "FLUSH"), ("SCRIPT", "FLUSH"), ("SCRIPT", "KILL"), ("SELECT", "1"), ("PUBLISH", "c", "m"),
    ("SUBSCRIBE", "c"), ("PSUBSCRIBE", "*"), ("ACL", "SETUSER", "evil", "on", ">x", "+@all", "~*"), ("ACL", "LIST"),
    ("INFO",), ("MONITOR",), ("CLIENT", "LIST"), ("CLIENT", "KILL", "TYPE", "normal"), ("SHUTDOWN",),
    ("EVAL", "return 1", "0"), ("MIGRATE", "127.0.0.1", "1", "k", "0", "1"), ("SLAVEOF", "NO", "ONE"), ("BGSAVE",),
])
def test_a_worker_credential_cannot_administer_or_survey_redis(two_jobs: TwoJobs, command: tuple[str, ...]) -> None:
    """Tried: list the keyspace (other jobs' names and key layout), administer Redis, switch
    databases, use pub/sub, run ad-hoc Lua. Got before: all of it but @admin/@dangerous.
    Now: NOPERM for each."""
    worker = two_jobs.as_worker()
    _refused(lambda: worker.execute_command(*command))
    worker.close()


def test_a_loaded_script_still_runs_under_the_credentials_key_rules(two_jobs: TwoJobs) -> None:
    """Tried: SCRIPT LOAD (allowed: the engine needs it) a script that writes another job's
    queue, then EVALSHA it naming that key. Now: the script's redis.call is refused."""
    worker = two_jobs.as_worker()
    sha = worker.script_load("return redis.call('LPUSH', KEYS[1], ARGV[1])")
    with pytest.raises(redis.exceptions.ResponseError, match=r"(?i)no permissions|noperm"):
        worker.evalsha(sha, 1, JobKeys(two_jobs.other).queue, "forged")


def test_rotation_keeps_the_previous_password_and_drops_the_one_before(two_jobs: TwoJobs) -> None:
    """Workers started with the previous credential keep working while pods roll onto the new
    one; two rotations later, the old password is refused."""
    credentials = JobCredentials(two_jobs.admin, two_jobs.own)
    base = without_credentials(two_jobs.server.url)
    urls = [two_jobs.own_url]
    for _ in range(2):
        new = credentials.rotate()
        credentials.commit(new.state)
        urls.append(url_with_credentials(base, credentials.user, new.password))
    assert redis.Redis.from_url(urls[2]).ping() and redis.Redis.from_url(urls[1]).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(urls[0]).ping()
    state = credentials.state()
    assert state.version == 3 and len(state.digests) == 2
    # The job's state never holds a password, only digests.
    stored = two_jobs.admin.hgetall(JobKeys(two_jobs.own).job_hash)
    assert not any(urlsplit(u).password.encode() in value for u in urls for value in stored.values())  # type: ignore[union-attr]


def test_a_user_redis_forgot_is_restored_and_a_deleted_job_loses_its_user(two_jobs: TwoJobs) -> None:
    """ACL users live in memory: after a Redis restart without an aclfile the user is gone
    (simulated with ACL DELUSER). The operator restores it from the kept digests, so running
    workers keep their credential; deleting the job removes the user for good."""
    credentials = JobCredentials(two_jobs.admin, two_jobs.own)
    two_jobs.admin.execute_command("ACL", "DELUSER", credentials.user)
    assert not credentials.user_exists()
    credentials.restore(credentials.state())
    assert redis.Redis.from_url(two_jobs.own_url).ping()
    credentials.delete()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(two_jobs.own_url).ping()


@pytest.mark.irods
def test_a_whole_job_runs_under_its_own_credential(ingest: Ingest, tmp_path: Path) -> None:
    """The engine needs nothing beyond the per-job rules: a run with a handler, retries and
    a delete mode, completes under them (a NOPERM anywhere would fail it)."""
    for i in range(12):
        ingest.write(f"d{i % 3}/f{i}.txt", f"file {i}")
    with RedisServer(data_dir=tmp_path / "redis", password=ADMIN_PASSWORD) as server:
        admin = connect(server.url)
        handler = ("class event_handler:\n    @staticmethod\n    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):\n"
                   "        pass\n")
        start_job(admin, ingest.config(operation=Operation.PUT_SYNC, files_per_task=4), handler)
        credentials = JobCredentials(admin, ingest.job)
        new = credentials.rotate()
        credentials.commit(new.state)
        url = url_with_credentials(without_credentials(server.url), credentials.user, new.password)
        assert run_worker(WorkerOptions(jobs=[ingest.job], redis_url=url, concurrency=2, exit_when_idle=True,
                                        irods_settings=ingest.settings), install_signals=False) == 0
        status = RunState(admin, ingest.job).status()
        assert status.state == "done", FailureLog(admin, ingest.job).records()
        assert status.counters["files_synced"] == 12


def test_forged_failure_records_reach_the_status_checked_and_cut_to_size(two_jobs: TwoJobs) -> None:
    """Tried: write failure records of one's own into the job's failures list (the
    credential may: workers write them) -- not JSON, not an object, a 1 MB path, attempts
    and times that are not numbers. Got before: the operator's status pass raised on the
    first bad record (no status at all), or copied a megabyte into the SyncJob. Now: every
    record comes out as a valid, bounded recentFailures entry."""
    from irods_ingest_operator.builders import failure_summary

    worker = two_jobs.as_worker()
    failures = JobKeys(two_jobs.own).failures
    forged = [b"\xff\xfe not json", b"[1, 2, 3]", b'"a string"',
              json.dumps({"path": "/x" * 500_000, "reason": "r" * 100_000, "attempts": "many", "time": "soon"}).encode(),
              json.dumps({"path": None, "attempts": 1e308, "time": 1e300}).encode()]
    for record in forged:
        worker.lpush(failures, record)
    entries = [failure_summary(r) for r in FailureLog(two_jobs.admin, two_jobs.own).records(10)]
    assert len(entries) == len(forged)
    for entry in entries:
        assert set(entry) == {"path", "reason", "attempts", "time"}
        assert len(entry["path"]) <= 1024 and len(entry["reason"]) <= 512
        assert isinstance(entry["attempts"], int) and 0 <= entry["attempts"] <= 1_000_000
        assert entry["time"].endswith("Z")
    assert sum(e["reason"] == "(unreadable failure record)" for e in entries) == 3
