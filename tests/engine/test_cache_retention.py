"""A change cache that survives its job (issue 19, finding 6).

Deleting a job and creating it again under another name (a GitOps rename or re-apply) with the
same source and destination used to sync every file again: the cache died with the job. Now
the deletion keeps it for a while under (scope, generation), and the next job of the same
scope and settings adopts it — through the controller only, never a worker.

Whole runs against the iRODS test server here; the Redis-level rules (expiry, mismatch, claims,
crashes, bounds, ACL) in test_cache_retention_rules.py.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from irods_ingest.actions import JobActions
from irods_ingest.config import Operation, cache_generation
from irods_ingest.jobstate import RetainedCaches
from irods_ingest.store.connection import connect
from irods_ingest.store.keys import JobKeys
from testsupport.ingest import Ingest, hooks_handler, read_hook_log

pytestmark = [pytest.mark.redis, pytest.mark.irods]

FILES = 12


def _tree(ingest: Ingest) -> int:
    total = 0
    for i in range(FILES):
        data = f"file {i}\n".encode() * (i + 1)
        ingest.write(f"{('a/', 'b/deeper/', '')[i % 3]}f{i}.dat", data)
        total += len(data)
    return total


def _catalog_state(ingest: Ingest) -> dict[str, tuple[object, ...]]:
    """Per object: size, checksum and every replica's modify time (an upload changes them)."""
    return {
        path: (obj.size, obj.checksum, tuple((r.number, r.modify_time, r.status) for r in obj.replicas))
        for path, obj in ingest.objects().items()
    }


def test_a_job_recreated_under_another_name_adopts_the_cache_and_writes_nothing(
    ingest: Ingest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Tried (before): run, delete the job, start the same settings as another job. Got: every
    file uploaded again (files_synced == 12). Now: all unchanged, no byte and no hook."""
    total = _tree(ingest)
    hooks = tmp_path / "hooks.log"
    handler = hooks_handler(hooks, operation="PUT_SYNC")
    first = ingest.run(handler=handler)
    assert (first.state, first.counters["files_synced"], first.counters["bytes_synced"]) == ("done", FILES, total)
    before = _catalog_state(ingest)
    assert len(before) == FILES
    hooks.unlink()

    client = connect(ingest.redis_url)
    JobActions(client, ingest.job).delete()
    assert not list(client.scan_iter(match=f"ii:{{{ingest.job}}}:*"))  # the job itself is gone
    renamed = dataclasses.replace(ingest, job=f"{ingest.job}-renamed")
    with caplog.at_level(logging.INFO, logger="irods_ingest.jobstate"):
        second = renamed.run(handler=handler)

    assert second.state == "done", renamed.failures()
    counts = {k: second.counters[k] for k in ("files_unchanged", "files_synced", "bytes_synced", "files_failed")}
    assert counts == {"files_unchanged": FILES, "files_synced": 0, "bytes_synced": 0, "files_failed": 0}
    assert second.adopted is not None and second.adopted.from_job == ingest.job
    assert (second.adopted.entries, second.adopted.directories) == (FILES, 3)
    assert second.adopted.retained_at is not None
    assert _catalog_state(ingest) == before  # no upload, no metadata update
    assert not [e for e in read_hook_log(hooks) if "data_obj" in e]  # no create or modify hook fired
    adopted_lines = [r for r in caplog.records if r.getMessage() == "cache_adopted"]
    assert adopted_lines and adopted_lines[0].__dict__["from_job"] == ingest.job
    # The retained copy was taken, not shared: nothing is left to adopt a second time.
    assert not list(client.scan_iter(match="iic:{retained~*"))

    # The adopted cache is the new job's own from now on: a changed file is synced, the rest not.
    renamed.write("a/f0.dat", b"changed")
    third = renamed.run(handler=handler)
    assert (third.counters["files_synced"], third.counters["files_unchanged"]) == (1, FILES - 1)
    assert third.adopted is None


def test_a_job_created_before_the_old_one_is_deleted_borrows_its_cache(ingest: Ingest) -> None:
    """GitOps tools apply the renamed object, then prune the old one: the new job starts while the
    old one still exists. It gets a copy of the old one's cache; the old one keeps its own."""
    _tree(ingest)
    assert ingest.run(operation=Operation.PUT_SYNC).counters["files_synced"] == FILES
    before = _catalog_state(ingest)
    renamed = dataclasses.replace(ingest, job=f"{ingest.job}-new")

    second = renamed.run(operation=Operation.PUT_SYNC)

    assert (second.counters["files_unchanged"], second.counters["files_synced"]) == (FILES, 0)
    assert second.adopted is not None and second.adopted.from_job == ingest.job and second.adopted.retained_at is None
    assert _catalog_state(ingest) == before
    client = connect(ingest.redis_url)
    generation = cache_generation(ingest.config(operation=Operation.PUT_SYNC))
    assert client.exists(JobKeys(ingest.job).cache_marker(generation))  # the lender's cache is untouched
    # Pruning the old one afterwards retains its cache; the new job, which has one, ignores it.
    JobActions(client, ingest.job).delete()
    third = renamed.run(operation=Operation.PUT_SYNC)
    assert (third.counters["files_unchanged"], third.adopted) == (FILES, None)


def test_a_job_of_another_destination_syncs_everything(ingest: Ingest) -> None:
    """The same source into another collection is another cache: nothing adopted, every file
    uploaded there, and the first job's retained cache left for a job that matches it."""
    _tree(ingest)
    ingest.run(operation=Operation.PUT_SYNC)
    client = connect(ingest.redis_url)
    JobActions(client, ingest.job).delete()
    elsewhere = dataclasses.replace(ingest, job=f"{ingest.job}-elsewhere", target=f"{ingest.target}_other")
    try:
        status = elsewhere.run(operation=Operation.PUT_SYNC)
        assert (status.counters["files_synced"], status.counters["files_unchanged"]) == (FILES, 0)
        assert status.adopted is None
        assert len(elsewhere.objects()) == FILES
        assert RetainedCaches(client).find(ingest.job, ingest.config(operation=Operation.PUT_SYNC)) is not None
    finally:
        if ingest.session.collections.exists(elsewhere.target):
            ingest.session.collections.remove(elsewhere.target, recurse=True, force=True)
