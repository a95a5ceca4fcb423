"""The reliable queue and run state against a real redis-server."""

from __future__ import annotations

import time

import pytest

from irods_ingest.config import JobConfig
from irods_ingest.store.connection import connect
from irods_ingest.store.jobstore import JobStore, TaskOutcome
from irods_ingest.tasks import FileEntry, Task, TaskKind

pytestmark = pytest.mark.redis


def _config(name: str = "job-a") -> JobConfig:
    return JobConfig(job_name=name, source_path="/data", target_collection="/tempZone/home/rods/x")


@pytest.fixture
def store(redis_url: str) -> JobStore:
    return JobStore(connect(redis_url), "job-a")


def test_start_is_idempotent_and_queues_root_scan(store: JobStore) -> None:
    started, run_id = store.start_run(_config())
    assert started
    again, same = store.start_run(_config())
    assert not again and same == run_id
    status = store.status()
    assert (status.state, status.queued, status.in_flight) == ("running", 1, 0)
    store.register_worker("w1", 10)
    claimed = store.claim("w1", timeout=0)
    assert claimed is not None
    assert claimed[1].kind is TaskKind.SCAN and claimed[1].run == run_id


def test_ack_counts_once_and_completes_run_with_finalize(store: JobStore) -> None:
    _, run_id = store.start_run(_config())
    store.register_worker("w1", 10)
    raw, scan = store.claim("w1", 0)  # type: ignore[misc]
    assert store.status().in_flight == 1
    batch = Task(TaskKind.FILES, run_id, entries=(FileEntry("a", 3, 1), FileEntry("b", 4, 2)))
    outcome = TaskOutcome(enqueue=[batch])
    outcome.count("files_discovered", 2)
    outcome.count("tasks_done")
    assert store.ack("w1", raw, scan, outcome) == "ok"
    # acking the same raw twice changes nothing: it is no longer in the processing list
    assert store.ack("w1", raw, scan, outcome) == "stale"
    raw2, files = store.claim("w1", 0)  # type: ignore[misc]
    done = TaskOutcome(cache_set={"": {"a": "1:3", "b": "2:4"}}, cache_generation="g1")
    done.count("files_synced", 2)
    done.count("tasks_done")
    assert store.ack("w1", raw2, files, done) == "finishing"
    raw3, final = store.claim("w1", 0)  # type: ignore[misc]
    assert final.kind is TaskKind.FINALIZE
    assert store.ack("w1", raw3, final, TaskOutcome(finalize=True)) == "done"
    status = store.status()
    assert status.state == "done" and status.ended is not None
    assert status.counters["files_discovered"] == 2 and status.counters["files_synced"] == 2
    assert status.counters["tasks_done"] == 2
    assert store.cached_entries("g1", "") == {"a": "1:3", "b": "2:4"}
    assert store.history()[0]["state"] == "done"


def test_stale_run_is_fenced(store: JobStore) -> None:
    _, old = store.start_run(_config())
    store.register_worker("w1", 10)
    raw, task = store.claim("w1", 0)  # type: ignore[misc]
    store.start_run(_config(), force=True)
    outcome = TaskOutcome()
    outcome.count("files_synced", 5)
    assert store.ack("w1", raw, task, outcome) == "fenced"
    assert store.status().counters["files_synced"] == 0
    assert store.history()[0]["id"] == old and store.history()[0]["state"] == "stopped"


def test_dead_worker_tasks_are_requeued_then_dead_lettered(store: JobStore) -> None:
    store.start_run(_config())
    store.register_worker("w1", 0.05)
    _raw, _task = store.claim("w1", 0)  # type: ignore[misc]
    deadline = time.monotonic() + 5
    while store.client.exists(store.keys.heartbeat("w1")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.requeue(max_attempts=1) == (1, 0)
    status = store.status()
    assert (status.queued, status.in_flight) == (1, 0)
    store.register_worker("w2", 0.05)
    _raw, task = store.claim("w2", 0)  # type: ignore[misc]
    assert task.attempt == 1
    while store.client.exists(store.keys.heartbeat("w2")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.requeue(max_attempts=1) == (0, 1)
    status = store.status()
    # the run completes (FINALIZE queued) with the task recorded as failed
    assert status.state == "finishing" and status.counters["tasks_failed"] == 1
    assert "worker died" in store.failures()[0]["reason"]


def test_delayed_retry_is_promoted_when_due(store: JobStore) -> None:
    _, run_id = store.start_run(_config())
    store.register_worker("w1", 10)
    raw, task = store.claim("w1", 0)  # type: ignore[misc]
    later = Task(TaskKind.SCAN, run_id, directory="later")
    due_now = Task(TaskKind.SCAN, run_id, directory="now")
    outcome = TaskOutcome(delay=[(time.time() + 3600, later), (time.time() - 1, due_now)])
    assert store.ack("w1", raw, task, outcome) == "ok"
    assert store.promote_due() == 1
    status = store.status()
    assert (status.queued, status.delayed) == (1, 1)
    assert store.claim("w1", 0)[1].directory == "now"  # type: ignore[index]


def test_stop_drops_queue_and_keeps_history(store: JobStore) -> None:
    store.start_run(_config())
    assert store.stop_run()
    status = store.status()
    assert status.state == "stopped" and status.queued == 0
    assert not store.stop_run()


def test_names_that_are_not_utf8_survive_the_queue(store: JobStore) -> None:
    import os

    name = os.fsdecode(b"bad\xff\xfename")
    _, run_id = store.start_run(_config())
    store.register_worker("w1", 10)
    raw, task = store.claim("w1", 0)  # type: ignore[misc]
    batch = Task(TaskKind.FILES, run_id, directory=name, entries=(FileEntry(name, 1, 1700000000123456789),))
    store.ack("w1", raw, task, TaskOutcome(enqueue=[batch]))
    raw, back = store.claim("w1", 0)  # type: ignore[misc]
    assert back.entries[0].name == name and back.directory == name
    assert back.entries[0].mtime_ns == 1700000000123456789


def test_batches_listed_by_name_and_grouped_scans_survive_the_queue(store: JobStore) -> None:
    """A first-sync batch travels as bare names (non-UTF-8 ones too) and comes back as entries
    of unknown size; a grouped scan keeps its directories; a dead worker's batch of names is
    dead-lettered with its file count."""
    import os

    from irods_ingest.listing import encode_names
    from irods_ingest.tasks import UNKNOWN

    odd = os.fsdecode(b"caf\xe9.dat")
    _, run_id = store.start_run(_config())
    store.register_worker("w1", 0.05)
    raw, task = store.claim("w1", 0)  # type: ignore[misc]
    batch = Task(TaskKind.FILES, run_id, directory="d", listed=encode_names(["a.dat", odd, "with space"]))
    group = Task(TaskKind.SCAN, run_id, directory="x", also=("y", os.fsdecode(b"z\xff")))
    assert '"entries":["a.dat","\\u0000b64:' in batch.encode()  # names, not [name, size, mtime, kind]
    assert store.ack("w1", raw, task, TaskOutcome(enqueue=[batch, group])) == "ok"
    _, scan = store.claim("w1", 0)  # type: ignore[misc]
    assert scan.kind is TaskKind.SCAN and (scan.directory, scan.also) == ("x", ("y", os.fsdecode(b"z\xff")))
    raw, files = store.claim("w1", 0)  # type: ignore[misc]
    assert batch.file_count == 3
    assert [e.name for e in files.entries] == ["a.dat", odd, "with space"] and files.file_count == 3
    assert {(e.size, e.mtime_ns, e.kind, e.stated) for e in files.entries} == {(UNKNOWN, UNKNOWN, "regular", False)}
    assert files.encode() == raw.decode()  # a retry or a requeue re-encodes it unchanged
    deadline = time.monotonic() + 5
    while store.client.exists(store.keys.heartbeat("w1")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.requeue(max_attempts=0) == (0, 2)  # both claimed tasks dead-lettered
    by_kind = {f["kind"]: f for f in store.failures()}
    assert by_kind["files"]["files"] == 3 and by_kind["scan"]["files"] == 0
    assert store.status().counters["files_failed"] == 3


def test_the_cache_marker_says_whether_a_generation_has_any_cache(store: JobStore) -> None:
    """First-sync scans read no cache when the generation's marker is absent, so the marker
    must be set by the very ack that writes the first cache entry, and go with its generation."""
    _, run_id = store.start_run(_config())
    store.register_worker("w1", 10)
    assert not store.has_cache("g1")
    raw, task = store.claim("w1", 0)  # type: ignore[misc]
    batch = Task(TaskKind.FILES, run_id, directory="d")
    assert store.ack("w1", raw, task, TaskOutcome(enqueue=[batch], cache_generation="g1")) == "ok"
    assert not store.has_cache("g1")  # no cache entry written yet
    raw, task = store.claim("w1", 0)  # type: ignore[misc]
    outcome = TaskOutcome(cache_set={"d": {"f": "1:1"}}, cache_generation="g1")
    assert store.ack("w1", raw, task, outcome) in ("ok", "finishing")
    assert store.has_cache("g1") and store.cached_entries_of("g1", ["d", "e"]) == [{"f": "1:1"}, {}]
    assert store.drop_other_cache_generations("g2") == 1
    assert not store.has_cache("g1") and store.cached_entries("g1", "d") == {}


def test_a_settings_change_drops_the_old_cache_and_nothing_else_does(store: JobStore) -> None:
    """The pass that drops other generations SCANs the keyspace: it runs when a start changes
    what "synced" means, not at every start."""
    from irods_ingest.config import cache_generation

    config = _config()
    old = cache_generation(config)
    store.start_run(config)
    assert not store.has_cache(old)  # a new job: first-sync scans read no cache
    store.client.hset(store.keys.cache(old, "d"), "f", "1:1")  # as an earlier version wrote it: no marker
    store.client.config_resetstat()
    store.start_run(config, force=True)  # same settings: the cache stays (and is announced), no SCAN at all
    assert store.cached_entries(old, "d") == {"f": "1:1"} and store.has_cache(old)
    assert "cmdstat_scan" not in store.client.info("commandstats")
    changed = config.with_changes(target_collection="/tempZone/home/rods/elsewhere")
    store.start_run(changed, force=True)
    assert store.cached_entries(old, "d") == {} and not store.has_cache(old)
