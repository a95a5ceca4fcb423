"""Deleting what left the source: the job's delete mode, object by object, with the handler's say.

Security issue 14, finding 5. A directory that vanished from the source used to be removed
in one recursive, forced call: in Trash mode its objects bypassed the trash (and the run
said "deleted 0"), and a handler whose ``delete_mode()`` said DoNotDelete was asked only
for single objects, never for the collections holding them. Each test below states who
could exploit that, what they did, what they got before and what holds now.

Everything runs whole jobs against a real redis-server and the iRODS test server (or a
real iRODS); the trash is read back with python-irodsclient.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from irods_ingest.actions import start_job
from irods_ingest.config import DeleteMode, Operation
from irods_ingest.jobstate import HandlerSources, RunState
from irods_ingest.queue import TaskOutcome, TaskQueue
from irods_ingest.store.connection import connect
from irods_ingest.tasks import Task, TaskKind
from irods_ingest.worker import ShutdownState, WorkerOptions, WorkerThread
from testsupport.ingest import Ingest

pytestmark = [pytest.mark.redis, pytest.mark.irods]

# The tree that leaves the source: objects at three depths, and the collections holding them.
VANISHING = ("gone.txt", "dir/a.txt", "dir/b.txt", "dir/sub/c.txt", "dir/sub/deeper/d.txt")
VANISHED_OBJECTS = len(VANISHING)
VANISHED_COLLECTIONS = ("dir", "dir/sub", "dir/sub/deeper")
EVENTS = ("pre_data_obj_delete", "post_data_obj_delete", "pre_coll_delete", "post_coll_delete")


def recording_handler(log: Path, operation: str, delete_mode: str = "") -> str:
    """A handler recording each delete hook with its target (one JSON line per call);
    ``delete_mode`` is the body of an optional ``delete_mode(meta)``."""
    hooks = "".join(
        f"    @staticmethod\n    def {event}(hdlr_mod, session, meta, **options):\n"  # the incumbent's: no logger
        f"        _record({event!r}, meta.get('target'))\n"
        for event in EVENTS
    )
    policy = f"    @staticmethod\n    def delete_mode(meta):\n{delete_mode}" if delete_mode else ""
    return (
        "import json\n"
        "from irods_capability_automated_ingest.core import Core\n"
        "from irods_capability_automated_ingest.utils import DeleteMode, Operation\n"
        f"LOG = {str(log)!r}\n"
        "def _record(event, target):\n"
        "    with open(LOG, 'a') as handle:\n"
        "        handle.write(json.dumps([event, target]) + '\\n')\n"
        "class event_handler(Core):\n"
        f"    @staticmethod\n    def operation(session, meta, **options):\n        return Operation.{operation}\n"
        + policy
        + hooks
    )


def recorded(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()]  # type: ignore[misc]


def trash_root(ingest: Ingest) -> str:
    """Where iRODS puts the target's objects when they are trashed (rsMkTrashPath, own home)."""
    zone = ingest.env.zone
    return ingest.target.replace(f"/{zone}/", f"/{zone}/trash/", 1)


def trashed(ingest: Ingest) -> dict[str, bytes]:
    """The data objects in the trash for the target, by path relative to it, with their bytes."""
    root = trash_root(ingest)
    if not ingest.session.collections.exists(root):
        return {}
    found: dict[str, bytes] = {}
    for _coll, _subs, objects in ingest.session.collections.get(root).walk():
        for obj in objects:
            with obj.open("r") as handle:
                found[obj.path[len(root) + 1 :]] = handle.read()
    return found


@pytest.fixture
def trash_cleanup(ingest: Ingest) -> Any:
    yield
    root = trash_root(ingest)
    if ingest.session.collections.exists(root):
        ingest.session.collections.remove(root, recurse=True, force=True)


def write_tree(ingest: Ingest) -> None:
    ingest.write("keep.txt", b"kept")
    ingest.write("dir2/keep-too.txt", b"kept too")
    for relative in VANISHING:
        ingest.write(relative, f"bytes of {relative}".encode())


def remove_vanishing(ingest: Ingest) -> None:
    (ingest.source / "gone.txt").unlink()
    shutil.rmtree(ingest.source / "dir")


def assert_vanished_collections_gone(ingest: Ingest) -> None:
    for relative in VANISHED_COLLECTIONS:
        assert not ingest.session.collections.exists(ingest.logical(relative)), relative
    assert ingest.session.collections.exists(ingest.target)  # the target itself is never removed
    assert set(ingest.objects()) == {"keep.txt", "dir2/keep-too.txt"}


def test_trash_mode_puts_every_object_of_a_vanished_directory_into_the_trash(
    ingest: Ingest, tmp_path: Path, trash_cleanup: Any
) -> None:
    """Attacker: a data producer (or anyone who can remove a directory from the source).
    Tried: removed a directory with files and a nested subdirectory from the source of a
    PutSync job in Trash mode. Before: the collection went with ``collections.remove(recurse,
    force)``: every object in it was deleted for good, bypassing the trash, no per-object
    delete hook fired and the run reported ``deleted 0``. Now: every object goes through the
    job's per-object delete (unlink without force: into the trash), once, with its hooks;
    the emptied collections are removed bottom-up (non-recursive, with coll_delete hooks)
    and counted in ``collections_deleted``."""
    write_tree(ingest)
    log = tmp_path / "hooks.log"
    handler = recording_handler(log, "PUT_SYNC")
    first = ingest.run(handler=handler, delete_mode=DeleteMode.TRASH)
    assert first.state == "done", ingest.failures()
    remove_vanishing(ingest)

    second = ingest.run(handler=handler, delete_mode=DeleteMode.TRASH)

    assert second.state == "done", ingest.failures()
    assert second.counters["files_deleted"] == VANISHED_OBJECTS
    assert second.counters["collections_deleted"] == len(VANISHED_COLLECTIONS)
    assert_vanished_collections_gone(ingest)
    assert trashed(ingest) == {relative: f"bytes of {relative}".encode() for relative in VANISHING}
    calls = Counter(recorded(log))
    for relative in VANISHING:
        for event in ("pre_data_obj_delete", "post_data_obj_delete"):
            assert calls[(event, ingest.logical(relative))] == 1, (event, relative, calls)
    for relative in VANISHED_COLLECTIONS:
        for event in ("pre_coll_delete", "post_coll_delete"):
            assert calls[(event, ingest.logical(relative))] == 1, (event, relative, calls)
    assert sum(calls.values()) == 2 * (VANISHED_OBJECTS + len(VANISHED_COLLECTIONS))


def test_no_trash_mode_deletes_the_objects_for_good(ingest: Ingest, tmp_path: Path, trash_cleanup: Any) -> None:
    """Attacker: a data producer. Tried: removed a directory tree from a NoTrash job's
    source. Before: the objects went (recursively, forced) but were never counted and no
    delete hook fired. Now: each object is unlinked with force (not in the trash), counted
    in ``files_deleted``; its collections are removed and counted."""
    write_tree(ingest)
    log = tmp_path / "hooks.log"
    handler = recording_handler(log, "PUT_SYNC")
    assert ingest.run(handler=handler, delete_mode=DeleteMode.NO_TRASH).state == "done"
    remove_vanishing(ingest)

    status = ingest.run(handler=handler, delete_mode=DeleteMode.NO_TRASH)

    assert status.state == "done", ingest.failures()
    assert status.counters["files_deleted"] == VANISHED_OBJECTS
    assert status.counters["collections_deleted"] == len(VANISHED_COLLECTIONS)
    assert_vanished_collections_gone(ingest)
    assert trashed(ingest) == {}
    assert Counter(event for event, _ in recorded(log))["post_data_obj_delete"] == VANISHED_OBJECTS


def test_unregister_mode_keeps_the_physical_files(ingest: Ingest, tmp_path: Path) -> None:
    """Attacker: a data producer. Tried: removed a directory from a RegisterSync job in
    Unregister mode whose handler registers a mirror of the source (``target_path``).
    Before: the collection was unregistered recursively, uncounted and without hooks. Now:
    each object is unregistered (its physical file stays), counted; the collections are
    unregistered bottom-up and counted."""
    write_tree(ingest)
    mirror = tmp_path / "mirror"
    shutil.copytree(ingest.source, mirror)
    log = tmp_path / "hooks.log"
    handler = recording_handler(log, "REGISTER_SYNC") + (
        "    @staticmethod\n"
        "    def target_path(session, meta, **options):\n"
        f"        return meta['path'].replace({str(ingest.source)!r}, {str(mirror)!r}, 1)\n"
    )
    assert ingest.run(handler=handler, delete_mode=DeleteMode.UNREGISTER).state == "done", ingest.failures()
    assert ingest.objects()["dir/a.txt"].replicas[0].path == str(mirror / "dir" / "a.txt")
    remove_vanishing(ingest)

    status = ingest.run(handler=handler, delete_mode=DeleteMode.UNREGISTER)

    assert status.state == "done", ingest.failures()
    assert status.counters["files_deleted"] == VANISHED_OBJECTS
    assert status.counters["collections_deleted"] == len(VANISHED_COLLECTIONS)
    assert_vanished_collections_gone(ingest)
    for relative in VANISHING:  # unregistered, never deleted: the physical files stay
        assert (mirror / relative).read_bytes() == f"bytes of {relative}".encode()


PROTECTING = (
    "        target = meta.get('target') or ''\n"
    "        if '/dir' in target or target.endswith('/gone.txt'):\n"
    "            return DeleteMode.DO_NOT_DELETE\n"
    "        return DeleteMode.TRASH\n"
)


@pytest.mark.parametrize("policy", ["per-path", "always"])
def test_a_handler_saying_do_not_delete_keeps_objects_and_collections(
    ingest: Ingest, tmp_path: Path, trash_cleanup: Any, policy: str
) -> None:
    """Attacker: none -- the handler author is the victim; a data producer removes a
    directory. Tried: a Trash job whose handler's ``delete_mode(meta)`` answers DoNotDelete
    for the paths it protects (per path; or always, with a job config that still says
    Trash, as an operator that does not evaluate the handler stores it). Before: the
    protected collection was removed recursively anyway (only single objects asked the
    handler), and objects the handler kept were still counted as deleted. Now: the
    effective delete mode (the handler's, else the job's) decides planning and execution:
    nothing it protects is deleted, neither objects nor collections, and nothing is counted."""
    write_tree(ingest)
    log = tmp_path / "hooks.log"
    body = PROTECTING if policy == "per-path" else "        return DeleteMode.DO_NOT_DELETE\n"
    handler = recording_handler(log, "PUT_SYNC", delete_mode=body)
    assert ingest.run(handler=handler, delete_mode=DeleteMode.TRASH).state == "done"
    before = set(ingest.objects())
    remove_vanishing(ingest)

    client = connect(ingest.redis_url)
    runs = RunState(client, ingest.job)
    if policy == "per-path":
        start_job(client, ingest.config(delete_mode=DeleteMode.TRASH), handler, force=True)
    else:  # the stored config says Trash although the handler says DoNotDelete
        digest = HandlerSources(client, ingest.job).save(handler)
        runs.start(ingest.config(delete_mode=DeleteMode.TRASH, handler_hash=digest), force=True)
    from irods_ingest.worker import run_worker

    run_worker(WorkerOptions(jobs=[ingest.job], redis_url=ingest.redis_url, concurrency=2, exit_when_idle=True,
                             irods_settings=ingest.settings), install_signals=False)
    status = runs.status()

    assert status.state == "done", ingest.failures()
    assert status.counters["files_deleted"] == 0
    assert status.counters["collections_deleted"] == 0
    assert set(ingest.objects()) == before
    for relative in VANISHED_COLLECTIONS:
        assert ingest.session.collections.exists(ingest.logical(relative))
    assert trashed(ingest) == {}
    assert [event for event, _ in recorded(log)] == []


def _run_with_every_delete_task_executed_twice(ingest: Ingest, handler: str | None, **changes: Any) -> Counter[str]:
    """Run the job on one worker thread that executes every DELETE task once without
    acknowledging it (as a worker killed after the work but before its ack) and then hands
    it back as a dead worker's task (the reaper's REQUEUE), so that each is redelivered."""
    client = connect(ingest.redis_url)
    start_job(client, ingest.config(**changes), handler, force=True)
    options = WorkerOptions(jobs=[ingest.job], redis_url=ingest.redis_url, irods_settings=ingest.settings)
    thread = WorkerThread(options, 0, ShutdownState(), {})
    job = thread.jobs[ingest.job]
    job.queue.heartbeat(thread.worker_id, 60)
    first_deliveries: set[str] = set()
    shapes: Counter[str] = Counter()
    deadline = time.monotonic() + 120
    try:
        while job.runs.status().active:
            assert time.monotonic() < deadline, job.runs.status()
            claimed = thread.claim_any(block=False)
            if claimed is None:
                time.sleep(0.02)
                continue
            claimed_job, raw, task = claimed
            if task.kind is TaskKind.DELETE and task.id not in first_deliveries:
                first_deliveries.add(task.id)
                shapes["paths" if task.paths else "collections"] += 1
                _, config = job.stored.run_and_config()
                assert config is not None
                thread.execute(job, config, task)  # the work is done; the ack never comes
                job.queue.stop_heartbeat(thread.worker_id)  # the worker dies: the reaper hands its task back
                assert job.queue.requeue_dead_workers(max_attempts=100) == (1, 0)
                job.queue.heartbeat(thread.worker_id, 60)  # the same thread claims on, as a new worker would
                continue
            thread.process(claimed_job, raw, task)
    finally:
        thread.close()
    return shapes


def test_a_redelivered_delete_task_counts_each_object_and_collection_once(
    ingest: Ingest, tmp_path: Path, trash_cleanup: Any
) -> None:
    """Attacker: none -- the fault is a worker dying between the work and the ack (OOM
    kill, node loss). Tried: every DELETE task (object batches and collection removals) was
    executed, its worker died before the ack, and it was redelivered. Before: the second
    delivery found the objects gone and failed each of them ("does not exist"), and the
    counts of the first delivery were lost. Now: a redelivered task knows its first
    delivery's counts never landed (the ack that counts is the one that removes the task
    from the processing list, and only a task still there is redelivered): an object or
    collection already gone is counted then, never failed, so each is counted exactly once."""
    write_tree(ingest)
    log = tmp_path / "hooks.log"
    handler = recording_handler(log, "PUT_SYNC")
    assert ingest.run(handler=handler, delete_mode=DeleteMode.TRASH).state == "done"
    remove_vanishing(ingest)

    shapes = _run_with_every_delete_task_executed_twice(ingest, handler, delete_mode=DeleteMode.TRASH)
    status = ingest.runs.status()

    assert shapes["paths"] >= 2 and shapes["collections"] >= 1, shapes
    assert status.state == "done", ingest.failures()
    assert status.counters["files_failed"] == 0
    assert status.counters["files_deleted"] == VANISHED_OBJECTS
    assert status.counters["collections_deleted"] == len(VANISHED_COLLECTIONS)
    assert_vanished_collections_gone(ingest)
    assert set(trashed(ingest)) == set(VANISHING)


def test_a_large_vanished_collection_is_deleted_in_bounded_tasks(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker: a data producer. Tried: removed a directory of 500 files (a million, in
    production) from an Unregister job's source. Before: one DELETE task removed the whole
    collection in a single recursive call, and no object was counted. Now: the vanished
    collection is listed a page at a time (GenQuery, resumed by name), each page fans out
    DELETE tasks of at most files_per_task objects, so no task and no ack holds more than a
    page however large the collection; every object is counted once and the collection is
    removed once it is empty."""
    from irods_ingest.execute import delete

    monkeypatch.setattr(delete, "PURGE_FANOUT", 3)  # pages of 3 x 50 = 150 objects
    files_per_task = 50
    page = 3 * files_per_task
    ingest.write("keep.txt", b"k")
    for i in range(500):
        ingest.write(f"big/f{i:03d}.txt", b"x")
    ingest.write("big/inner/last.txt", b"y")
    settings: dict[str, Any] = {
        "operation": Operation.REGISTER_SYNC, "delete_mode": DeleteMode.UNREGISTER, "files_per_task": files_per_task,
    }
    assert ingest.run(**settings).state == "done", ingest.failures()
    shutil.rmtree(ingest.source / "big")

    acks: list[tuple[Task, TaskOutcome]] = []
    lock = threading.Lock()
    original_ack = TaskQueue.ack

    def recording_ack(self: TaskQueue, worker_id: str, raw: bytes, task: Task, outcome: TaskOutcome, **options: int) -> str:
        with lock:
            acks.append((task, outcome))
        return original_ack(self, worker_id, raw, task, outcome, **options)

    monkeypatch.setattr(TaskQueue, "ack", recording_ack)
    status = ingest.run(**settings)

    assert status.state == "done", ingest.failures()
    assert status.counters["files_deleted"] == 501
    assert status.counters["collections_deleted"] == 2
    assert set(ingest.objects()) == {"keep.txt"}
    assert not ingest.session.collections.exists(ingest.logical("big"))
    deletes = [task for task, _ in acks if task.kind is TaskKind.DELETE]
    assert deletes and max(len(task.paths) for task in deletes) <= files_per_task
    for task, outcome in acks:
        planned = sum(len(t.paths) for t in outcome.enqueue if t.kind is TaskKind.DELETE)
        assert planned <= page, planned
        if task.kind is TaskKind.DELETE:  # a page's batches and subcollections (3 tasks), a continuation
            assert len(outcome.enqueue) <= 3 + 1, outcome.enqueue
    pages_of_big = [task for task in deletes if task.collections == (ingest.logical("big"),)]
    assert len(pages_of_big) >= 4  # 500 objects in pages of 150, then the removal
