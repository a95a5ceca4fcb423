"""Attack: a data producer uses symbolic links to make the worker ingest files from outside the source.

The attacker controls the source tree (they write the data the job ingests) but nothing else.
Whatever links they plant, or swap in between the scan and the sync, the bytes that land in
iRODS (uploaded, or registered for iRODS to serve) come from inside the source root only;
everything else is skipped or failed by name, with a reason, and the run finishes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from irods.models import DataObject

from irods_ingest.actions import start_job
from irods_ingest.config import DeleteMode, Operation, SymlinkPolicy
from irods_ingest.jobstate import RunStatus
from irods_ingest.store.connection import connect
from irods_ingest.store.keys import JobKeys
from irods_ingest.tasks import Task, TaskKind
from irods_ingest.worker import ShutdownState, WorkerOptions, WorkerThread, run_worker
from irods_ingest_testkit.irods_server import ROOT_RESOURCE
from testsupport.accounting import assert_accounted, entries_on_disk
from testsupport.ingest import Ingest

pytestmark = [pytest.mark.redis, pytest.mark.irods]

UPLOADS = [Operation.PUT, Operation.PUT_SYNC, Operation.PUT_APPEND]
REGISTERS = [Operation.REGISTER_SYNC, Operation.REGISTER_AS_REPLICA_SYNC]


def escape_reason(target: Path | str) -> str:
    return f"symbolic link points outside the source root ({os.path.realpath(target)}): not ingested"


class Secret:
    """A file outside the source tree, with bytes and a name found nowhere else."""

    def __init__(self, ingest: Ingest) -> None:
        self.token = uuid.uuid4().hex
        self.data = f"TOP-SECRET {self.token}\n".encode()
        self.directory = ingest.source.parent / f"outside-{self.token}"
        self.directory.mkdir()
        self.name = f"secret-{self.token}.txt"
        self.path = self.directory / self.name
        self.path.write_bytes(self.data)
        self.ingest = ingest

    def assert_not_in_irods(self) -> None:
        """Neither the secret's bytes under the target, nor any object of its name in the zone."""
        for relative in self.ingest.objects():
            assert self.token.encode() not in self.ingest.read(relative), f"the secret leaked into {relative}"
        found = list(self.ingest.session.query(DataObject.name).filter(DataObject.name == self.name))
        assert found == [], f"an object named {self.name} exists in iRODS"


def run(ingest: Ingest, **config: Any) -> RunStatus:
    status = ingest.run(**{"operation": Operation.PUT, **config})
    assert status.state in ("done", "failed")
    return status


def failure_of(ingest: Ingest, path: Path) -> dict[str, Any]:
    [record] = [f for f in ingest.failures() if f["path"] == str(path)]
    return record


def with_neighbour(ingest: Ingest) -> None:
    ingest.write("ok.txt", b"ordinary")


# ---------------------------------------------------------------- links planted before the scan
@pytest.mark.parametrize("operation", UPLOADS, ids=[o.value for o in UPLOADS])
def test_upload_does_not_follow_a_link_out_of_the_source(ingest: Ingest, operation: Operation) -> None:
    """Data producer plants ``leak -> <outside>/secret.txt``. Before: with the default symlink
    policy (Register) every upload operation followed the link and the secret's bytes landed
    in iRODS as ``leak``. Now: the link is skipped with a reason naming where it points, and
    the neighbours are uploaded as usual."""
    secret = Secret(ingest)
    with_neighbour(ingest)
    os.symlink(secret.path, ingest.source / "leak")
    status = run(ingest, operation=operation, delete_mode=DeleteMode.DO_NOT_DELETE)
    secret.assert_not_in_irods()
    assert set(ingest.objects()) == {"ok.txt"}
    record = failure_of(ingest, ingest.source / "leak")
    assert (record["reason"], record["outcome"]) == (escape_reason(secret.path), "skipped")
    assert (status.state, status.counters["files_skipped"], status.counters["files_synced"]) == ("done", 1, 1)
    assert_accounted(status, ingest.failures(), on_disk=entries_on_disk(ingest.source))


def test_relative_link_climbing_out_of_the_source_is_not_followed(ingest: Ingest) -> None:
    """Data producer plants ``sub/up -> ../../outside/secret.txt`` (relative, through ``..``).
    Before: uploaded. Now: skipped like an absolute link out."""
    secret = Secret(ingest)
    (ingest.source / "sub").mkdir()
    os.symlink(os.path.relpath(secret.path, ingest.source / "sub"), ingest.source / "sub" / "up")
    status = run(ingest)
    secret.assert_not_in_irods()
    assert failure_of(ingest, ingest.source / "sub" / "up")["reason"] == escape_reason(secret.path)
    assert status.counters["files_skipped"] == 1


def test_link_to_the_workers_own_environment_is_not_uploaded(ingest: Ingest) -> None:
    """Data producer plants ``env -> /proc/self/environ``. Before: the worker uploaded its own
    environment (with IRODS_PASSWORD and friends) as ``env``. Now: skipped, nothing uploaded."""
    with_neighbour(ingest)
    os.symlink("/proc/self/environ", ingest.source / "env")
    status = run(ingest)
    assert set(ingest.objects()) == {"ok.txt"}
    record = failure_of(ingest, ingest.source / "env")
    assert record["outcome"] == "skipped"
    assert record["reason"].startswith("symbolic link points outside the source root (/proc/")
    assert status.counters["files_skipped"] == 1


@pytest.mark.parametrize("operation", REGISTERS, ids=[o.value for o in REGISTERS])
def test_register_does_not_register_a_link_out_of_the_source(ingest: Ingest, operation: Operation) -> None:
    """Data producer plants ``leak -> <outside>/secret.txt`` in a RegisterSync job. Before: the
    link was registered in place and iRODS served the secret's bytes to anyone who could read
    the collection. Now: not registered (a deliberate difference from the incumbent), skipped."""
    secret = Secret(ingest)
    with_neighbour(ingest)
    os.symlink(secret.path, ingest.source / "leak")
    resource = ROOT_RESOURCE if operation is Operation.REGISTER_AS_REPLICA_SYNC else None
    status = ingest.run(operation=operation, resource=resource)
    secret.assert_not_in_irods()
    assert "leak" not in ingest.objects() and "ok.txt" in ingest.objects()
    record = failure_of(ingest, ingest.source / "leak")
    assert (record["reason"], record["outcome"]) == (escape_reason(secret.path), "skipped")
    assert status.counters["files_skipped"] == 1


def test_register_keeps_links_inside_the_source(ingest: Ingest) -> None:
    """No regression: a RegisterSync link to a file inside the source is registered as the
    link itself, with its link_target AVU, as before."""
    ingest.write("data/real.txt", b"inside")
    os.symlink("data/real.txt", ingest.source / "alias")
    status = ingest.run(operation=Operation.REGISTER_SYNC)
    assert status.state == "done", ingest.failures()
    avus = {m.name: m.value for m in ingest.objects()["alias"].metadata.items()}
    assert avus["link_target"] == str(ingest.source / "data/real.txt")


def test_put_still_uploads_a_link_inside_the_source(ingest: Ingest) -> None:
    """No regression: under Register with Put, a link to a file INSIDE the source is uploaded
    (the target's bytes, with the link_target AVU)."""
    ingest.write("data/real.txt", b"inside bytes")
    os.symlink("data/real.txt", ingest.source / "alias")
    os.symlink(ingest.source / "data", ingest.source / "dirlink")  # a directory link is not a file to upload
    status = run(ingest)
    assert status.state == "done", ingest.failures()
    assert ingest.read("alias") == b"inside bytes" and ingest.read("data/real.txt") == b"inside bytes"
    avus = {m.name: m.value for m in ingest.objects()["alias"].metadata.items()}
    assert avus["link_target"] == str(ingest.source / "data/real.txt")


def test_follow_does_not_descend_a_directory_link_out_of_the_source(ingest: Ingest) -> None:
    """Data producer plants ``mnt -> <outside>/`` under the Follow policy. Before: the worker
    descended into it and uploaded everything there. Now: not descended, recorded skipped."""
    secret = Secret(ingest)
    with_neighbour(ingest)
    os.symlink(secret.directory, ingest.source / "mnt")
    status = run(ingest, symlinks=SymlinkPolicy.FOLLOW)
    secret.assert_not_in_irods()
    assert set(ingest.objects()) == {"ok.txt"}
    record = failure_of(ingest, ingest.source / "mnt")
    assert (record["reason"], record["outcome"]) == (escape_reason(secret.directory), "skipped")
    assert (status.state, status.counters["files_skipped"]) == ("done", 1)


def test_follow_does_not_follow_a_file_link_out_of_the_source(ingest: Ingest) -> None:
    """Data producer plants ``leak -> <outside>/secret.txt`` under Follow. Before: uploaded.
    Now: skipped with the reason."""
    secret = Secret(ingest)
    os.symlink(secret.path, ingest.source / "leak")
    status = run(ingest, symlinks=SymlinkPolicy.FOLLOW)
    secret.assert_not_in_irods()
    assert failure_of(ingest, ingest.source / "leak")["reason"] == escape_reason(secret.path)
    assert status.counters["files_skipped"] == 1


def test_follow_syncs_links_inside_the_source(ingest: Ingest) -> None:
    """No regression: Follow syncs what a file link inside the source points to, and descends
    a directory link inside the source."""
    ingest.write("data/real.txt", b"followed")
    os.symlink("data/real.txt", ingest.source / "alias")
    (ingest.source / "elsewhere").mkdir()
    os.symlink("../data", ingest.source / "elsewhere" / "again")
    status = run(ingest, symlinks=SymlinkPolicy.FOLLOW)
    assert status.state == "done", ingest.failures()
    assert ingest.read("alias") == b"followed"
    assert ingest.read("elsewhere/again/real.txt") == b"followed"


# ---------------------------------------------------------------- swapped in between scan and sync
def scan_then(ingest: Ingest, between: Callable[[], object], **config: Any) -> RunStatus:
    """Run every SCAN task of a run (nothing else), call ``between``, then let workers finish."""
    client = connect(ingest.redis_url)
    start_job(client, ingest.config(**{"operation": Operation.PUT, **config}), None, force=True)
    options = WorkerOptions(jobs=[ingest.job], redis_url=ingest.redis_url, concurrency=1, exit_when_idle=True,
                            irods_settings=ingest.settings)
    queue = JobKeys(ingest.job).queue
    thread = WorkerThread(options, 0, ShutdownState(), {})
    try:
        thread.heartbeat()
        while (head := client.lindex(queue, -1)) is not None and Task.decode(head).kind is TaskKind.SCAN:
            claimed = thread.next_task()
            assert claimed is not None
            thread.process(*claimed)
    finally:
        thread.close()
    assert client.llen(queue) > 0, "the scan queued no FILES task"
    between()
    assert run_worker(options, install_signals=False) == 0
    return ingest.runs.status()


@pytest.mark.parametrize("operation", UPLOADS, ids=[o.value for o in UPLOADS])
def test_file_swapped_for_a_link_after_the_scan_is_not_followed(ingest: Ingest, operation: Operation) -> None:
    """Data producer lets the scan list a regular file ``victim.txt``, then replaces it with a
    link to the secret before the FILES task runs (TOCTOU). Before: the upload opened the path
    and followed the link: the secret landed in iRODS as ``victim.txt``. Now: the file fails
    by name with a clear reason; nothing of the secret is uploaded."""
    secret = Secret(ingest)
    with_neighbour(ingest)
    victim = ingest.write("victim.txt", b"harmless")

    def swap() -> None:
        victim.unlink()
        os.symlink(secret.path, victim)

    status = scan_then(ingest, swap, operation=operation)
    secret.assert_not_in_irods()
    record = failure_of(ingest, victim)
    assert "symbolic link" in record["reason"] and record["kind"] == "files", record
    assert (status.state, status.counters["files_failed"], status.counters["files_synced"]) == ("failed", 1, 1)
    assert_accounted(status, ingest.failures())


def test_directory_swapped_for_a_link_after_the_scan_is_not_followed(ingest: Ingest) -> None:
    """Data producer lets the scan list ``sub/`` with a file named like the secret, then replaces
    ``sub`` itself with a link to the outside directory. Opening ``sub/<name>`` without following
    the LAST component alone would still read the secret. Before: uploaded. Now: the opened file
    is checked to lie inside the source root; the file fails with a clear reason."""
    secret = Secret(ingest)
    ingest.write(f"sub/{secret.name}", b"harmless")

    def swap() -> None:
        (ingest.source / "sub" / secret.name).unlink()
        (ingest.source / "sub").rmdir()
        os.symlink(secret.directory, ingest.source / "sub")

    status = scan_then(ingest, swap)
    secret.assert_not_in_irods()
    record = failure_of(ingest, ingest.source / "sub" / secret.name)
    assert "outside the source root" in record["reason"], record
    assert status.counters["files_failed"] == 1


def test_file_swapped_for_a_fifo_after_the_scan_does_not_block_the_worker(ingest: Ingest) -> None:
    """Data producer replaces a listed file with a FIFO nobody writes to. Before: the upload's
    open() blocked the worker forever. Now: the file fails at once ("not a regular file")."""
    with_neighbour(ingest)
    victim = ingest.write("victim.txt", b"harmless")

    def swap() -> None:
        victim.unlink()
        os.mkfifo(victim)

    status = scan_then(ingest, swap)
    record = failure_of(ingest, victim)
    assert "not a regular file" in record["reason"], record
    assert (status.counters["files_failed"], status.counters["files_synced"]) == (1, 1)


def test_a_file_above_the_parallel_threshold_uploads_whole_through_the_checked_descriptor(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No regression: uploads read ``/proc/self/fd/N`` of the file the worker opened and
    checked; python-irodsclient's parallel put (files over 32 MiB) reopens that path from each
    of its threads and must get the same file, whole."""
    from irods.manager.data_object_manager import DataObjectManager

    parallel_sources: list[str] = []
    parallel_put = DataObjectManager.parallel_put

    def spy(self: Any, local_path: str, *args: Any, **kwargs: Any) -> Any:
        parallel_sources.append(local_path)
        return parallel_put(self, local_path, *args, **kwargs)

    monkeypatch.setattr(DataObjectManager, "parallel_put", spy)
    data = os.urandom(1 << 20) * 33 + b"tail"  # just above PRC's single-threaded limit
    ingest.write("big.bin", data)
    status = run(ingest, operation=Operation.PUT_SYNC)
    assert [p.rsplit("/", 1)[0] for p in parallel_sources] == ["/proc/self/fd"]
    assert status.state == "done", ingest.failures()
    assert ingest.objects()["big.bin"].size == len(data) and ingest.read("big.bin") == data
