"""The rules a retained change cache keeps (issue 19, finding 6), against a real redis-server:
expiry, exact settings, scope, one adopter, crashes at every step, bounded batches, workers
kept out. Whole runs are in test_cache_retention.py."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from irods_ingest.actions import JobActions
from irods_ingest.config import JOB_NAME_PATTERN, JobConfig, Operation, cache_generation
from irods_ingest.jobstate import ChangeCache, RetainedCaches, RunState
from irods_ingest.jobstate import hash_copy as hash_copy_module
from irods_ingest.jobstate import retained_caches as retained_module
from irods_ingest.store.acl import JobCredentials, url_with_credentials, without_credentials
from irods_ingest.store.connection import RedisClient, connect
from irods_ingest.store.keys import JobKeys, RetainedCacheKeys, job_scope

pytestmark = [pytest.mark.redis]

TARGET = "/tempZone/home/rods/data"
DIRECTORIES = ("", "a", "a/b", "c")


@pytest.fixture
def client(redis_url: str) -> Iterator[RedisClient]:
    c = connect(redis_url)
    yield c
    c.close()


def _config(job: str, **changes: object) -> JobConfig:
    return JobConfig(job_name=job, source_path="/data/src", target_collection=TARGET,
                     operation=Operation.PUT_SYNC).with_changes(**changes)


def _job_with_cache(client: RedisClient, job: str, entries_per_directory: int = 3, **changes: object) -> JobConfig:
    """A job that ran (its config stored) and whose acks wrote a cache, as the ACK script does."""
    config = _config(job, **changes)
    runs = RunState(client, job)
    runs.start(config)
    runs.stop()
    generation = cache_generation(config)
    for directory in DIRECTORIES:
        client.hset(JobKeys(job).cache(generation, directory),
                    mapping={f"f{i}": f"{1000 + i}:{i}" for i in range(entries_per_directory)})
    ChangeCache(client, job).mark(generation)
    return config


def _cache_of(client: RedisClient, job: str, config: JobConfig) -> dict[str, dict[str, str]]:
    generation = cache_generation(config)
    found = ChangeCache(client, job).entries(generation, DIRECTORIES)
    return {d: e for d, e in zip(DIRECTORIES, found, strict=True) if e}


def _retained_keys(client: RedisClient) -> list[bytes]:
    return list(client.scan_iter(match="iic:{retained~*"))


def test_delete_keeps_the_cache_under_its_scope_and_settings_with_an_expiry(client: RedisClient) -> None:
    config = _job_with_cache(client, "lab/old")
    before = _cache_of(client, "lab/old", config)

    JobActions(client, "lab/old").delete(cache_retention=3600)

    assert not list(client.scan_iter(match="ii:{lab/old}:*")) and not list(client.scan_iter(match="iic:{lab/old}:*"))
    keys = RetainedCacheKeys("lab", cache_generation(config))
    retained = RetainedCaches(client).find("lab/new", config)
    assert retained is not None and (retained.job, retained.directories, retained.entries) == ("lab/old", 4, 12)
    stored = _retained_keys(client)
    assert len(stored) == 1 + len(DIRECTORIES) and keys.meta.encode() in stored
    for key in stored:  # every retained key expires with the retention, copies and meta alike
        assert 3500 < client.ttl(key) <= 3600
    # What the next job adopts is exactly what the old one had.
    opened = RunState(client, "lab/new").open_run(_config("lab/new"))
    assert opened.started and opened.adopted is not None and opened.adopted.from_job == "lab/old"
    assert _cache_of(client, "lab/new", config) == before
    assert client.exists(JobKeys("lab/new").cache_marker(cache_generation(config)))
    assert RunState(client, "lab/new").status().adopted == opened.adopted  # the run status shows it too
    assert _retained_keys(client) == []  # taken: nothing left for another job


def test_an_expired_retention_is_not_adopted(client: RedisClient) -> None:
    config = _job_with_cache(client, "lab/old")
    JobActions(client, "lab/old").delete(cache_retention=1)
    time.sleep(1.2)  # Redis expires every retained key by itself

    assert _retained_keys(client) == []
    assert RunState(client, "lab/new").open_run(_config("lab/new")).adopted is None
    assert _cache_of(client, "lab/new", config) == {}


def test_a_retention_past_its_time_is_not_adopted_even_before_redis_expires_it(client: RedisClient) -> None:
    config = _job_with_cache(client, "lab/old")
    JobActions(client, "lab/old").delete(cache_retention=60)
    caches = RetainedCaches(client)
    retained = caches.find("lab/new", config)
    assert retained is not None
    assert caches.adopt("lab/new", _config("lab/new"), now=retained.expires_at + 1) is None
    assert caches.adopt("lab/new", _config("lab/new"), now=retained.expires_at - 1) is not None


@pytest.mark.parametrize(
    ("new_job", "changes"),
    [
        ("lab/new", {"target_collection": TARGET + "2"}),  # another destination
        ("lab/new", {"source_path": "/data/other"}),
        ("lab/new", {"resource": "otherResc"}),
        ("lab/new", {"operation": Operation.REGISTER_SYNC}),
        ("lab/new", {"handler_hash": "0" * 64}),
        ("lab/new", {"metadata": (("k", "v", ""),)}),
        ("other-namespace/new", {}),  # same settings, another namespace: never across tenants
    ],
)
def test_a_job_whose_settings_or_scope_differ_does_not_adopt(client: RedisClient, new_job: str,
                                                              changes: dict[str, object]) -> None:
    config = _job_with_cache(client, "lab/old")
    JobActions(client, "lab/old").delete()

    opened = RunState(client, new_job).open_run(_config(new_job, **changes))

    assert opened.started and opened.adopted is None
    assert not list(client.scan_iter(match=f"ii:{{{new_job}}}:cache:*"))
    assert RetainedCaches(client).find("lab/any", config) is not None  # still there for a job that matches


def test_settings_the_cache_does_not_depend_on_do_not_stop_adoption(client: RedisClient) -> None:
    _job_with_cache(client, "lab/old")
    JobActions(client, "lab/old").delete()
    new = _config("lab/new", files_per_task=7, max_retries=9, exclude_names=("*.tmp",))
    assert RunState(client, "lab/new").open_run(new).adopted is not None


def test_a_digest_collision_is_not_enough(client: RedisClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The generation is a 48-bit digest; adoption compares the settings themselves."""
    _job_with_cache(client, "lab/old")
    JobActions(client, "lab/old").delete()
    old_generation = cache_generation(_config("lab/old"))
    monkeypatch.setattr(retained_module, "cache_generation", lambda _config: old_generation)
    assert RetainedCaches(client).adopt("lab/new", _config("lab/new", target_collection="/tempZone/x")) is None


def test_of_two_jobs_starting_at_once_only_one_takes_the_retained_cache(client: RedisClient) -> None:
    config = _job_with_cache(client, "lab/old")
    JobActions(client, "lab/old").delete()
    caches = RetainedCaches(client)
    retained = caches.find("lab/first", config)
    assert retained is not None
    keys = RetainedCacheKeys("lab", cache_generation(config))
    claim = client.register_script(retained_module.lua.CLAIM_RETAINED_CACHE)
    assert claim(keys=[keys.meta], args=[retained.version, "lab/first", "1"]) == 1
    assert claim(keys=[keys.meta], args=[retained.version, "lab/second", "1"]) == 0
    assert claim(keys=[keys.meta], args=["another-version", "lab/first", "1"]) == 0
    # lab/first crashed after its claim: it adopts when it starts again; lab/second never does.
    assert caches.adopt("lab/second", _config("lab/second")) is None
    adopted = caches.adopt("lab/first", _config("lab/first"))
    assert adopted is not None and adopted.entries == 12


def test_a_retention_interrupted_before_its_commit_is_never_adopted_and_is_cleaned_up(
    client: RedisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _job_with_cache(client, "lab/old")
    calls = 0
    real_copy = retained_module.copy_hashes

    def crash_after_first_batch(*args: object, **kwargs: object) -> hash_copy_module.Copied:
        nonlocal calls
        calls += 1
        copied = real_copy(*args, **kwargs)  # type: ignore[arg-type]
        raise redis.ConnectionError("the operator lost Redis mid-copy")
        return copied  # pragma: no cover

    monkeypatch.setattr(retained_module, "copy_hashes", crash_after_first_batch)
    with pytest.raises(redis.ConnectionError, match="mid-copy"):
        JobActions(client, "lab/old").delete()
    monkeypatch.undo()
    assert calls == 1
    abandoned = _retained_keys(client)
    assert abandoned and all(client.ttl(k) > 0 for k in abandoned)  # bounded in time even if never retried
    assert RetainedCaches(client).find("lab/new", config) is None  # not committed: nothing to adopt
    assert _cache_of(client, "lab/old", config)  # the job's own cache is intact

    JobActions(client, "lab/old").delete()  # the operator retries the deletion

    retained = RetainedCaches(client).find("lab/new", config)
    assert retained is not None and retained.entries == 12
    left = {k for k in _retained_keys(client) if b":cache:" in k}
    assert left and all(k.decode().startswith(RetainedCacheKeys("lab", retained.generation).cache_prefix(retained.version))
                        for k in left)  # the abandoned copy is gone


def test_a_newer_retention_replaces_the_older_one_entirely(client: RedisClient) -> None:
    config = _job_with_cache(client, "lab/old")
    JobActions(client, "lab/old").delete()
    # lab/new adopts it, drops a directory from its cache (it vanished), and is deleted in turn.
    RunState(client, "lab/new").open_run(_config("lab/new"))
    client.delete(JobKeys("lab/new").cache(cache_generation(config), "c"))
    JobActions(client, "lab/new").delete()

    adopted = RunState(client, "lab/third").open_run(_config("lab/third")).adopted
    assert adopted is not None and adopted.from_job == "lab/new" and adopted.directories == 3
    assert "c" not in _cache_of(client, "lab/third", config)


def test_retention_zero_keeps_nothing(client: RedisClient) -> None:
    _job_with_cache(client, "lab/old")
    JobActions(client, "lab/old").delete(cache_retention=0)
    assert _retained_keys(client) == [] and not list(client.scan_iter(match="ii:{lab/old}:*"))


def test_a_large_cache_moves_in_bounded_batches(client: RedisClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many directories and one directory larger than an HSCAN reply: copied whole, a few keys at a time."""
    config = _config("lab/big")
    RunState(client, "lab/big").start(config)
    generation = cache_generation(config)
    keys = JobKeys("lab/big")
    for d in range(250):
        client.hset(keys.cache(generation, f"d{d}"), mapping={"f": "1:1", "g": "2:2"})
    client.hset(keys.cache(generation, "huge"), mapping={f"f{i}": f"{i}:{i}" for i in range(5000)})
    batches: list[int] = []
    real_copy = hash_copy_module.copy_hashes

    def counting(client_: RedisClient, pairs: list[tuple[bytes, str]], **kwargs: object) -> hash_copy_module.Copied:
        batches.append(len(pairs))
        return real_copy(client_, pairs, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(retained_module, "copy_hashes", counting)
    JobActions(client, "lab/big").delete()
    adopted = RunState(client, "lab/big2").open_run(_config("lab/big2")).adopted

    assert adopted is not None and (adopted.directories, adopted.entries) == (251, 500 + 5000)
    assert max(batches) <= hash_copy_module.KEYS_PER_BATCH and len(batches) >= 2 * 3
    assert client.hlen(JobKeys("lab/big2").cache(generation, "huge")) == 5000


def test_workers_cannot_reach_a_retained_cache(client: RedisClient, redis_url: str) -> None:
    """The per-job ACL user is unchanged: its job's keys only, never the retained key space
    (only the controller retains and adopts)."""
    config = _job_with_cache(client, "lab/old")
    _job_with_cache(client, "lab/new", target_collection="/tempZone/home/rods/elsewhere")
    JobActions(client, "lab/old").delete()
    credentials = JobCredentials(client, "lab/new")
    new = credentials.rotate()
    credentials.commit(new.state)
    worker = redis.Redis.from_url(url_with_credentials(without_credentials(redis_url), credentials.user, new.password))
    keys = RetainedCacheKeys(job_scope("lab/old"), cache_generation(config))
    retained = RetainedCaches(client).find("lab/x", config)
    assert retained is not None
    for call in (lambda: worker.hgetall(keys.meta), lambda: worker.hset(keys.meta, "adopter", "lab/new"),
                 lambda: worker.hgetall(keys.cache(retained.version, "x")), lambda: worker.scan(0)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            call()
    assert JobKeys("lab/new").worker_acl_rules().startswith("resetkeys ~ii:{lab/new}:* %R~iic:{lab/new}:* ")
    worker.close()
    credentials.delete()


def test_the_retained_key_space_can_never_be_a_jobs() -> None:
    for scope in ("a*", "a~b", "a{b}", "a b"):
        with pytest.raises(ValueError):
            RetainedCacheKeys(scope, "abc")
    tag = RetainedCacheKeys("lab", "0123456789ab").tag
    assert not JOB_NAME_PATTERN.match(tag)  # no job can be named like it, so no ACL pattern of a job matches it


# The rules docs/deploy.md gives an external Redis's operator user (as tests/chart holds the chart to).
OPERATOR_ACL_RULES = (
    "resetkeys ~ii:* ~iic:* resetchannels -@all +@keyspace +@read +@write +@transaction +@connection"
    " +evalsha +script|load +script|exists -@dangerous +info +acl|setuser +acl|deluser +acl|getuser"
)


def test_the_operators_documented_redis_user_may_retain_and_adopt(client: RedisClient, redis_url: str) -> None:
    """No new command for the operator's user: the copies use HSCAN/HSET/PEXPIREAT, never RESTORE."""
    config = _job_with_cache(client, "lab/old")
    client.execute_command("ACL", "SETUSER", "cache-operator", "on", ">operator-pw", *OPERATOR_ACL_RULES.split())
    operator = connect(url_with_credentials(without_credentials(redis_url), "cache-operator", "operator-pw"))
    try:
        JobActions(operator, "lab/old").delete()
        adopted = RunState(operator, "lab/new").open_run(_config("lab/new")).adopted
        assert adopted is not None and adopted.entries == 12
        assert _cache_of(client, "lab/new", config) == _cache_of(operator, "lab/new", config)
    finally:
        operator.close()
        client.execute_command("ACL", "DELUSER", "cache-operator")
