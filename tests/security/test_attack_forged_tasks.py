"""Attack: someone holding a worker's Redis credential pushes forged tasks into a job's queue.

The worker credential may write a job's queue (``ii:{job}:queue``) — it must, to enqueue the
tasks a scan finds. The attacker uses that to LPUSH tasks of their own making, with the
current run id so that fencing does not drop them. Every task is now checked against the
job's configuration before anything is done: a task that reaches outside the job's source or
target collection, a DELETE in a job that deletes nothing, or a payload that is not a task at
all is acknowledged as failed with a "rejected task" record, and the worker carries on.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from irods.models import DataObject

from irods_ingest.actions import start_job
from irods_ingest.config import DeleteMode, Operation
from irods_ingest.jobstate import RunStatus
from irods_ingest.store.connection import connect
from irods_ingest.store.keys import JobKeys
from irods_ingest.worker import WorkerOptions, run_worker
from testsupport.accounting import assert_accounted, entries_on_disk
from testsupport.ingest import Ingest

pytestmark = [pytest.mark.redis, pytest.mark.irods]

Forged = dict[str, Any] | str  # a task's fields (id and run are added), or a raw payload


def run_with_forged(ingest: Ingest, forged: list[Forged], **config: Any) -> RunStatus:
    """Start a run, LPUSH the forged payloads into its queue as an attacker would, and let
    ONE worker run the job to its end (one, so that a crashed claim loop shows as a run left
    running instead of a hang)."""
    client = connect(ingest.redis_url)
    start_job(client, ingest.config(**config), None, force=True)
    run_id = ingest.runs.current_run_id()
    for payload in forged:
        raw = payload if isinstance(payload, str) else json.dumps({"id": uuid.uuid4().hex, "run": run_id, "attempt": 0, **payload})
        client.lpush(JobKeys(ingest.job).queue, raw)
    options = WorkerOptions(jobs=[ingest.job], redis_url=ingest.redis_url, concurrency=1, exit_when_idle=True,
                            irods_settings=ingest.settings)
    assert run_worker(options, install_signals=False) == 0
    return ingest.runs.status()


def rejections(ingest: Ingest) -> list[dict[str, Any]]:
    return [f for f in ingest.failures() if f.get("outcome") == "rejected"]


def assert_all_rejected(ingest: Ingest, status: RunStatus, count: int, *, synced: int) -> None:
    rejected = rejections(ingest)
    assert len(rejected) == count, ingest.failures()
    assert all(f["reason"].startswith("rejected task: ") for f in rejected), rejected
    assert status.state == "failed", status
    assert (status.counters["tasks_failed"], status.counters["files_failed"]) == (count, 0), status
    assert status.counters["files_synced"] == synced, status
    assert (status.queued, status.delayed, status.in_flight) == (0, 0, 0)
    assert_accounted(status, ingest.failures(), on_disk=entries_on_disk(ingest.source))


@pytest.fixture
def victim(ingest: Ingest) -> Iterator[str]:
    """A collection beside the job's target (outside it), holding one object."""
    collection = f"{ingest.env.home}/victim-{uuid.uuid4().hex[:8]}"
    ingest.session.collections.create(f"{collection}/inner")
    with ingest.session.data_objects.open(f"{collection}/keep.txt", "w") as handle:
        handle.write(b"keep me")
    yield collection
    if ingest.session.collections.exists(collection):
        ingest.session.collections.remove(collection, recurse=True, force=True)


def assert_intact(ingest: Ingest, collection: str) -> None:
    assert ingest.session.collections.exists(f"{collection}/inner"), f"{collection}/inner was deleted"
    assert ingest.session.data_objects.exists(f"{collection}/keep.txt"), f"{collection}/keep.txt was deleted"


# ---------------------------------------------------------------- DELETE tasks
def test_forged_delete_in_a_job_that_deletes_nothing(ingest: Ingest, victim: str) -> None:
    """Worker credential holder LPUSHes {"kind": "delete", "colls": [<a collection outside the
    target>]} (in the finding: /tempZone/home) into a DoNotDelete job's queue. Before: the
    worker recursively force-deleted that collection. Now: rejected without acting (the job
    deletes nothing), recorded with its reason; the collection is intact, the run fails."""
    ingest.write("a.txt", b"a")
    forged: list[Forged] = [
        {"kind": "delete", "colls": [victim]},
        {"kind": "delete", "colls": [f"{ingest.target}/sub"]},  # even inside the target: the job deletes nothing
        {"kind": "delete", "paths": [f"{victim}/keep.txt"]},
    ]
    status = run_with_forged(ingest, forged, operation=Operation.PUT, delete_mode=DeleteMode.DO_NOT_DELETE)
    assert_intact(ingest, victim)
    assert_all_rejected(ingest, status, 3, synced=1)
    assert all("DoNotDelete" in f["reason"] and f["kind"] == "delete" for f in rejections(ingest))
    assert {f["path"] for f in rejections(ingest)} == {victim, f"{ingest.target}/sub", f"{victim}/keep.txt"}


def test_forged_delete_outside_the_target_in_a_trash_job(ingest: Ingest, victim: str) -> None:
    """Worker credential holder LPUSHes DELETE tasks naming objects and collections outside
    the target (directly, through "..", and the target itself) into a PutSync/Trash job.
    Before: they were trashed/removed. Now: each is rejected, nothing outside the target is
    touched, and the job's own files are synced as usual."""
    ingest.write("a.txt", b"a")
    forged: list[Forged] = [
        {"kind": "delete", "paths": [f"{victim}/keep.txt"]},
        {"kind": "delete", "colls": [victim]},
        {"kind": "delete", "colls": [f"{ingest.target}/../{victim.rsplit('/', 1)[1]}"]},
        {"kind": "delete", "paths": [f"{ingest.target}/../{victim.rsplit('/', 1)[1]}/keep.txt"]},
        {"kind": "delete", "colls": [ingest.target]},
        {"kind": "delete", "colls": [ingest.env.home]},
    ]
    status = run_with_forged(ingest, forged, operation=Operation.PUT_SYNC, delete_mode=DeleteMode.TRASH)
    assert_intact(ingest, victim)
    assert ingest.read("a.txt") == b"a"
    assert_all_rejected(ingest, status, len(forged), synced=1)
    assert all("outside the target collection" in f["reason"] or "is the target collection" in f["reason"]
               for f in rejections(ingest)), rejections(ingest)


# ---------------------------------------------------------------- FILES and SCAN tasks
@pytest.fixture
def secret(ingest: Ingest) -> Iterator[tuple[str, bytes]]:
    """A file beside the source tree (outside it), with a name found nowhere else."""
    name = f"secret-{uuid.uuid4().hex}.txt"
    path = ingest.source.parent / name
    path.write_bytes(b"TOP SECRET")
    yield name, b"TOP SECRET"


def assert_not_in_irods(ingest: Ingest, name: str) -> None:
    found = list(ingest.session.query(DataObject.name).filter(DataObject.name == name))
    assert found == [], f"an object named {name} exists in iRODS"


def test_forged_files_and_scan_tasks_reaching_outside_the_source(ingest: Ingest, secret: tuple[str, bytes]) -> None:
    """Worker credential holder LPUSHes FILES and SCAN tasks whose directory or file names climb
    out of the source (``..``, absolute paths, names with ``/``, a ``..`` hidden in a
    base64 wire name) into a Put job. Before: the worker read and uploaded files from outside
    the source (e.g. FILES {"dir": "..", "entries": [<secret>]} uploaded the secret). Now:
    every such task is rejected before anything is read; the job's own files land."""
    name, _ = secret
    ingest.write("a.txt", b"a")
    ingest.write("a/b", b"inside, but not a name")
    outside = str(ingest.source.parent)
    hidden = "\x00b64:" + base64.b64encode(f"../{name}".encode()).decode()
    forged: list[Forged] = [
        {"kind": "files", "dir": "..", "entries": [name]},
        {"kind": "files", "dir": "../../etc", "entries": ["passwd"]},
        {"kind": "files", "entries": [f"../{name}"]},
        {"kind": "files", "entries": ["a/b"]},
        {"kind": "files", "entries": ["/etc/passwd"]},
        {"kind": "files", "entries": [os.path.join(outside, name)]},
        {"kind": "files", "entries": [hidden]},
        {"kind": "files", "entries": [[f"../{name}", "10", "0", "regular"]]},
        {"kind": "files", "dir": "a/../..", "entries": [name]},
        {"kind": "scan", "dir": outside},
        {"kind": "scan", "dir": ".."},
        {"kind": "scan", "dir": "", "also": ["..", "/etc"]},
        {"kind": "scan", "dir": "", "tok": "continuation"},  # an S3 listing token in a filesystem job
        {"kind": "finalize", "dir": "x"},
    ]
    status = run_with_forged(ingest, forged, operation=Operation.PUT)
    assert_not_in_irods(ingest, name)
    assert_not_in_irods(ingest, "passwd")
    assert set(ingest.objects()) == {"a.txt", "a/b"}
    assert_all_rejected(ingest, status, len(forged), synced=2)


def test_malformed_payloads_are_dead_lettered_and_the_worker_lives_on(ingest: Ingest) -> None:
    """Worker credential holder LPUSHes payloads that are not tasks: not JSON, JSON of the
    wrong shape, an unknown kind, fields of the wrong type. Before: Task.decode raised inside
    the claim loop, the worker thread died with the payload in its processing list, and the
    run never ended. Now: each is acknowledged as a rejected task with the reason, the worker
    goes on, and the run ends (failed) with consistent counters."""
    ingest.write("a.txt", b"a")
    run_id = "{run}"
    forged: list[Forged] = [
        "not json at all",
        "[1, 2, 3]",
        "{}",
        {"kind": "bogus"},
        {"kind": "files", "entries": "abc"},  # a string where a list belongs
        {"kind": "files", "entries": [["x", "not a number", "0", "regular"]]},
        {"kind": "files", "entries": [["x", "1", "0", "fifo"]]},  # a kind the scan never produces
        {"kind": "delete", "paths": "/tempZone/home"},
        {"kind": "scan", "dir": 42},
        json.dumps({"id": {"nested": True}, "kind": "scan", "run": run_id}),
    ]
    status = run_with_forged(ingest, forged, operation=Operation.PUT)
    assert ingest.read("a.txt") == b"a"
    assert_all_rejected(ingest, status, len(forged), synced=1)


def test_a_payload_forged_into_a_dead_workers_processing_list_cannot_stop_the_reaper(ingest: Ingest) -> None:
    """Worker credential holder writes non-task payloads straight into a processing list of a
    worker that is gone (or a worker dies between claiming a forged payload and rejecting it).
    Before: the reaper's script decoded every payload there with cjson and failed on the
    first bad one -- every reap of the job failed from then on, and the dead worker's real
    tasks were never returned. Now: the reaper moves what it cannot decode back to the queue
    as it is, where a worker dead-letters it, and the run ends."""
    ingest.write("a.txt", b"a")
    client = connect(ingest.redis_url)
    start_job(client, ingest.config(operation=Operation.PUT), None, force=True)
    keys = JobKeys(ingest.job)
    run_id = ingest.runs.current_run_id()
    # A "dead" worker: registered as a claimer, no heartbeat, holding garbage and a real task.
    client.sadd(keys.claimers, "ghost")
    real = client.rpop(keys.queue)  # the root scan
    assert real is not None
    client.lpush(keys.processing("ghost"), "not json", json.dumps({"id": "x", "kind": "scan", "run": run_id, "attempt": "many"}), real)
    options = WorkerOptions(jobs=[ingest.job], redis_url=ingest.redis_url, concurrency=1, exit_when_idle=True,
                            irods_settings=ingest.settings)
    assert run_worker(options, install_signals=False) == 0
    status = ingest.runs.status()
    assert ingest.read("a.txt") == b"a"  # the real root scan was returned and ran
    # The undecodable payload is dead-lettered; the scan whose attempt was not a number comes
    # back as attempt 0 (a root scan anyone with the credential could push: it rescans).
    assert status.state == "failed" and len(rejections(ingest)) == 1, ingest.failures()
    assert (status.queued, status.delayed, status.in_flight) == (0, 0, 0)
