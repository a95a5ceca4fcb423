"""The reliable queue (irods_ingest.queue) and run state (irods_ingest.jobstate) against a real redis-server."""

from __future__ import annotations

import time

import pytest

from irods_ingest.config import JobConfig
from irods_ingest.queue import TaskOutcome
from irods_ingest.store.connection import connect
from irods_ingest.tasks import FileEntry, Task, TaskKind
from testsupport.jobparts import JobParts

pytestmark = pytest.mark.redis


def _config(name: str = "job-a") -> JobConfig:
    return JobConfig(job_name=name, source_path="/data", target_collection="/tempZone/home/rods/x")


@pytest.fixture
def job(redis_url: str) -> JobParts:
    return JobParts.of(connect(redis_url), "job-a")


def test_start_is_idempotent_and_queues_root_scan(job: JobParts) -> None:
    started, run_id = job.runs.start(_config())
    assert started
    again, same = job.runs.start(_config())
    assert not again and same == run_id
    status = job.runs.status()
    assert (status.state, status.queued, status.in_flight) == ("running", 1, 0)
    job.queue.heartbeat("w1", 10)
    claimed = job.queue.claim("w1", timeout=0)
    assert claimed is not None
    assert claimed[1].kind is TaskKind.SCAN and claimed[1].run == run_id


def test_ack_counts_once_and_completes_run_with_finalize(job: JobParts) -> None:
    _, run_id = job.runs.start(_config())
    job.queue.heartbeat("w1", 10)
    raw, scan = job.queue.claim("w1", 0)  # type: ignore[misc]
    assert job.runs.status().in_flight == 1
    batch = Task(TaskKind.FILES, run_id, entries=(FileEntry("a", 3, 1), FileEntry("b", 4, 2)))
    outcome = TaskOutcome(enqueue=[batch])
    outcome.count("files_discovered", 2)
    outcome.count("tasks_done")
    assert job.queue.ack("w1", raw, scan, outcome) == "ok"
    # acking the same raw twice changes nothing: it is no longer in the processing list
    assert job.queue.ack("w1", raw, scan, outcome) == "stale"
    raw2, files = job.queue.claim("w1", 0)  # type: ignore[misc]
    done = TaskOutcome(cache_set={"": {"a": "1:3", "b": "2:4"}}, cache_generation="g1")
    done.count("files_synced", 2)
    done.count("tasks_done")
    assert job.queue.ack("w1", raw2, files, done) == "finishing"
    raw3, final = job.queue.claim("w1", 0)  # type: ignore[misc]
    assert final.kind is TaskKind.FINALIZE
    assert job.queue.ack("w1", raw3, final, TaskOutcome(finalize=True)) == "done"
    status = job.runs.status()
    assert status.state == "done" and status.ended is not None
    assert status.counters["files_discovered"] == 2 and status.counters["files_synced"] == 2
    assert status.counters["tasks_done"] == 2
    assert job.cache.entries("g1", [""])[0] == {"a": "1:3", "b": "2:4"}
    assert job.runs.history()[0]["state"] == "done"


def test_stale_run_is_fenced(job: JobParts) -> None:
    _, old = job.runs.start(_config())
    job.queue.heartbeat("w1", 10)
    raw, task = job.queue.claim("w1", 0)  # type: ignore[misc]
    job.runs.start(_config(), force=True)
    outcome = TaskOutcome()
    outcome.count("files_synced", 5)
    assert job.queue.ack("w1", raw, task, outcome) == "fenced"
    assert job.runs.status().counters["files_synced"] == 0
    assert job.runs.history()[0]["id"] == old and job.runs.history()[0]["state"] == "stopped"


def test_dead_worker_tasks_are_requeued_then_dead_lettered(job: JobParts) -> None:
    job.runs.start(_config())
    job.queue.heartbeat("w1", 0.05)
    _raw, _task = job.queue.claim("w1", 0)  # type: ignore[misc]
    deadline = time.monotonic() + 5
    while job.client.exists(job.keys.heartbeat("w1")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.queue.requeue_dead_workers(max_attempts=1) == (1, 0)
    status = job.runs.status()
    assert (status.queued, status.in_flight) == (1, 0)
    job.queue.heartbeat("w2", 0.05)
    _raw, task = job.queue.claim("w2", 0)  # type: ignore[misc]
    assert task.attempt == 1
    while job.client.exists(job.keys.heartbeat("w2")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.queue.requeue_dead_workers(max_attempts=1) == (0, 1)
    status = job.runs.status()
    # the run completes (FINALIZE queued) with the task recorded as failed
    assert status.state == "finishing" and status.counters["tasks_failed"] == 1
    assert "worker died" in job.failures.records()[0]["reason"]


def test_delayed_retry_is_promoted_when_due(job: JobParts) -> None:
    _, run_id = job.runs.start(_config())
    job.queue.heartbeat("w1", 10)
    raw, task = job.queue.claim("w1", 0)  # type: ignore[misc]
    later = Task(TaskKind.SCAN, run_id, directory="later")
    due_now = Task(TaskKind.SCAN, run_id, directory="now")
    outcome = TaskOutcome(delay=[(time.time() + 3600, later), (time.time() - 1, due_now)])
    assert job.queue.ack("w1", raw, task, outcome) == "ok"
    assert job.queue.promote_due() == 1
    status = job.runs.status()
    assert (status.queued, status.delayed) == (1, 1)
    assert job.queue.claim("w1", 0)[1].directory == "now"  # type: ignore[index]


def test_stop_drops_queue_and_keeps_history(job: JobParts) -> None:
    job.runs.start(_config())
    assert job.runs.stop()
    status = job.runs.status()
    assert status.state == "stopped" and status.queued == 0
    assert not job.runs.stop()


def test_names_that_are_not_utf8_survive_the_queue(job: JobParts) -> None:
    import os

    name = os.fsdecode(b"bad\xff\xfename")
    _, run_id = job.runs.start(_config())
    job.queue.heartbeat("w1", 10)
    raw, task = job.queue.claim("w1", 0)  # type: ignore[misc]
    batch = Task(TaskKind.FILES, run_id, directory=name, entries=(FileEntry(name, 1, 1700000000123456789),))
    job.queue.ack("w1", raw, task, TaskOutcome(enqueue=[batch]))
    raw, back = job.queue.claim("w1", 0)  # type: ignore[misc]
    assert back.entries[0].name == name and back.directory == name
    assert back.entries[0].mtime_ns == 1700000000123456789


def test_batches_listed_by_name_and_grouped_scans_survive_the_queue(job: JobParts) -> None:
    """A first-sync batch travels as bare names (non-UTF-8 ones too) and comes back as entries
    of unknown size; a grouped scan keeps its directories; a dead worker's batch of names is
    dead-lettered with its file count."""
    import os

    from irods_ingest.listing import encode_names
    from irods_ingest.tasks import UNKNOWN

    odd = os.fsdecode(b"caf\xe9.dat")
    _, run_id = job.runs.start(_config())
    job.queue.heartbeat("w1", 0.05)
    raw, task = job.queue.claim("w1", 0)  # type: ignore[misc]
    batch = Task(TaskKind.FILES, run_id, directory="d", listed=encode_names(["a.dat", odd, "with space"]))
    group = Task(TaskKind.SCAN, run_id, directory="x", more_directories=("y", os.fsdecode(b"z\xff")))
    assert '"entries":["a.dat","\\u0000b64:' in batch.encode()  # names, not [name, size, mtime, kind]
    assert job.queue.ack("w1", raw, task, TaskOutcome(enqueue=[batch, group])) == "ok"
    _, scan = job.queue.claim("w1", 0)  # type: ignore[misc]
    assert scan.kind is TaskKind.SCAN and (scan.directory, scan.more_directories) == ("x", ("y", os.fsdecode(b"z\xff")))
    raw, files = job.queue.claim("w1", 0)  # type: ignore[misc]
    assert batch.file_count == 3
    assert [e.name for e in files.entries] == ["a.dat", odd, "with space"] and files.file_count == 3
    assert {(e.size, e.mtime_ns, e.kind, e.stated) for e in files.entries} == {(UNKNOWN, UNKNOWN, "regular", False)}
    assert files.encode() == raw.decode()  # a retry or a requeue re-encodes it unchanged
    deadline = time.monotonic() + 5
    while job.client.exists(job.keys.heartbeat("w1")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.queue.requeue_dead_workers(max_attempts=0) == (0, 2)  # both claimed tasks dead-lettered
    by_kind = {f["kind"]: f for f in job.failures.records()}
    assert by_kind["files"]["files"] == 3 and by_kind["scan"]["files"] == 0
    assert job.runs.status().counters["files_failed"] == 3


def test_the_cache_marker_says_whether_a_generation_has_any_cache(job: JobParts) -> None:
    """First-sync scans read no cache when the generation's marker is absent, so the marker
    must be set by the very ack that writes the first cache entry, and go with its generation."""
    _, run_id = job.runs.start(_config())
    job.queue.heartbeat("w1", 10)
    assert not job.cache.exists("g1")
    raw, task = job.queue.claim("w1", 0)  # type: ignore[misc]
    batch = Task(TaskKind.FILES, run_id, directory="d")
    assert job.queue.ack("w1", raw, task, TaskOutcome(enqueue=[batch], cache_generation="g1")) == "ok"
    assert not job.cache.exists("g1")  # no cache entry written yet
    raw, task = job.queue.claim("w1", 0)  # type: ignore[misc]
    outcome = TaskOutcome(cache_set={"d": {"f": "1:1"}}, cache_generation="g1")
    assert job.queue.ack("w1", raw, task, outcome) in ("ok", "finishing")
    assert job.cache.exists("g1") and job.cache.entries("g1", ["d", "e"]) == [{"f": "1:1"}, {}]
    assert job.cache.drop_other_generations("g2") == 1
    assert not job.cache.exists("g1") and job.cache.entries("g1", ["d"])[0] == {}


def test_a_settings_change_drops_the_old_cache_and_nothing_else_does(job: JobParts) -> None:
    """The pass that drops other generations SCANs the keyspace: it runs when a start changes
    what "synced" means, not at every start."""
    from irods_ingest.config import cache_generation

    config = _config()
    old = cache_generation(config)
    job.runs.start(config)
    assert not job.cache.exists(old)  # a new job: first-sync scans read no cache
    job.client.hset(job.keys.cache(old, "d"), "f", "1:1")  # as an earlier version wrote it: no marker
    job.client.config_resetstat()
    job.runs.start(config, force=True)  # same settings: the cache stays (and is announced), no SCAN at all
    assert job.cache.entries(old, ["d"])[0] == {"f": "1:1"} and job.cache.exists(old)
    assert "cmdstat_scan" not in job.client.info("commandstats")
    changed = config.with_changes(target_collection="/tempZone/home/rods/elsewhere")
    job.runs.start(changed, force=True)
    assert job.cache.entries(old, ["d"])[0] == {} and not job.cache.exists(old)


def test_a_shutdown_hands_claimed_tasks_back_without_counting_an_attempt(job: JobParts) -> None:
    job.runs.start(_config())
    job.queue.heartbeat("w1", 10)
    _raw, task = job.queue.claim("w1", 0)  # type: ignore[misc]
    assert job.queue.release_claimed("w1") == 1
    job.queue.stop_heartbeat("w1")
    assert job.queue.requeue_dead_workers(max_attempts=0) == (0, 0)  # nothing left with w1
    status = job.runs.status()
    assert (status.queued, status.in_flight, status.counters["tasks_failed"]) == (1, 0, 0)
    _raw, again = job.queue.claim("w2", 0)  # type: ignore[misc]
    assert again.id == task.id and again.attempt == 0
