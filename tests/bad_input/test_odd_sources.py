"""Hostile and odd sources: each case produces its clear outcome and loses nothing else.

Every case puts an odd entry beside two ordinary files; the ordinary files must always
land, and the odd one must be synced, skipped or failed with the reason stated here.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from irods_ingest.actions import start_job
from irods_ingest.config import Operation, SymlinkPolicy
from irods_ingest.jobstate import RunStatus
from irods_ingest.store.connection import connect
from testsupport.accounting import assert_accounted, entries_on_disk
from testsupport.ingest import Ingest

pytestmark = [pytest.mark.redis, pytest.mark.irods]


def run_with_neighbours(ingest: Ingest, make_odd: Callable[[Path], object], handler: str | None = None,
                        **config: Any) -> Any:
    ingest.write("ok1.txt", b"one")
    ingest.write("sub/ok2.txt", b"two")
    make_odd(ingest.source)
    status = ingest.run(handler=handler, **{"operation": Operation.PUT, **config})
    objects = ingest.objects()
    assert {"ok1.txt", "sub/ok2.txt"} <= set(objects), "an ordinary file was lost"
    assert ingest.read("ok1.txt") == b"one"
    return status


def reasons(ingest: Ingest) -> dict[str, str]:
    return {os.path.basename(f["path"]): f["reason"] for f in ingest.failures()}


def test_name_with_newline_and_tab(ingest: Ingest) -> None:
    status = run_with_neighbours(ingest, lambda src: (src / "two\nlines\t.txt").write_bytes(b"n"))
    assert status.counters["files_synced"] == 3 and status.counters["files_failed"] == 0
    assert "two\nlines\t.txt" in ingest.objects()


def test_name_with_control_character(ingest: Ingest) -> None:
    # iRODS sends such names raw inside XML; the engine parses replies tolerantly (QUASI_XML)
    status = run_with_neighbours(ingest, lambda src: (src / "bell\x07.txt").write_bytes(b"c"))
    assert (status.counters["files_synced"], status.counters["files_failed"]) == (3, 0)
    assert "bell\x07.txt" in ingest.objects()


def test_longest_name_and_very_deep_path(ingest: Ingest) -> None:
    def make(src: Path) -> None:
        (src / ("n" * 255)).write_bytes(b"long name")
        deep = src.joinpath(*["d" * 50] * 25)  # ~1,275 characters below the source root
        deep.mkdir(parents=True)
        (deep / "deep.txt").write_bytes(b"deep")

    status = run_with_neighbours(ingest, make)
    assert ("n" * 255) in ingest.objects()
    # iRODS limits logical paths (MAX_NAME_LEN 1088): the deep file is synced or fails by name, never vanishes
    deep_ok = any(name.endswith("deep.txt") for name in ingest.objects())
    deep_failed = any(f["path"].endswith(("deep.txt", "d" * 50)) for f in ingest.failures())
    assert deep_ok or deep_failed
    assert status.counters["files_discovered"] + status.counters["files_failed"] >= 3


def test_unreadable_file_is_synced_by_root_or_failed_by_name(ingest: Ingest) -> None:
    def make(src: Path) -> None:
        locked = src / "locked.bin"
        locked.write_bytes(b"x")
        locked.chmod(0)

    status = run_with_neighbours(ingest, make)
    if os.geteuid() == 0:
        assert "locked.bin" in ingest.objects()  # root reads 0000 files: never skipped
    else:
        assert "permission denied" in reasons(ingest)["locked.bin"]
        assert status.counters["files_failed"] == 1


def test_device_file_is_skipped_with_a_reason(ingest: Ingest) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    status = run_with_neighbours(ingest, lambda src: os.mknod(src / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3)))
    assert status.counters["files_skipped"] == 1 and "character" in reasons(ingest)["null"]
    assert "null" not in ingest.objects()


def test_looping_symlink(ingest: Ingest) -> None:
    status = run_with_neighbours(ingest, lambda src: os.symlink("loop", src / "loop"), symlinks=SymlinkPolicy.FOLLOW)
    assert status.counters["files_skipped"] == 1 and "loop" in reasons(ingest)
    assert status.state == "done"


def test_file_deleted_between_scan_and_sync(ingest: Ingest) -> None:
    # ok1's hook deletes "victim.txt", which the same batch syncs next
    handler = (
        "import os\nfrom irods_capability_automated_ingest.core import Core\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n"
        "    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):\n"
        "        victim = os.path.join(os.path.dirname(meta['path']), 'zz-victim.txt')\n"
        "        if meta['path'].endswith('ok1.txt') and os.path.exists(victim):\n"
        "            os.unlink(victim)\n"
    )
    status = run_with_neighbours(ingest, lambda src: (src / "zz-victim.txt").write_bytes(b"v"), handler=handler,
                                 files_per_task=10)
    assert "vanished" in reasons(ingest)["zz-victim.txt"]
    assert status.counters["files_failed"] == 1 and "zz-victim.txt" not in ingest.objects()


def test_file_truncated_between_scan_and_sync(ingest: Ingest) -> None:
    handler = (
        "import os\nfrom irods_capability_automated_ingest.core import Core\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n"
        "    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):\n"
        "        if meta['path'].endswith('ok1.txt'):\n"
        "            open(os.path.join(os.path.dirname(meta['path']), 'zz-shrinks.txt'), 'wb').write(b'ab')\n"
    )
    status = run_with_neighbours(ingest, lambda src: (src / "zz-shrinks.txt").write_bytes(b"x" * 10_000),
                                 handler=handler, files_per_task=10)
    assert status.counters["files_failed"] == 0
    assert ingest.read("zz-shrinks.txt") == b"ab"  # synced as it is now, not as it was scanned
    assert ingest.objects()["zz-shrinks.txt"].size == 2


def test_directory_replaced_by_a_file_mid_scan(ingest: Ingest) -> None:
    # when x's collection is created, x/y (not yet scanned) becomes a file
    handler = (
        "import os, shutil\nfrom irods_capability_automated_ingest.core import Core\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n"
        "    def pre_coll_create(hdlr_mod, logger, session, meta, **options):\n"
        "        if meta['target'].endswith('/x'):\n"
        "            y = os.path.join(meta['path'], 'y')\n"
        "            shutil.rmtree(y)\n"
        "            open(y, 'w').write('now a file')\n"
    )

    def make(src: Path) -> None:
        (src / "x" / "y").mkdir(parents=True)
        (src / "x" / "y" / "inner.txt").write_bytes(b"i")

    status = run_with_neighbours(ingest, make, handler=handler)
    assert "replaced" in reasons(ingest)["y"]
    assert status.counters["tasks_failed"] == 1 and status.state == "failed"


def test_irods_unreachable_fails_the_run_clearly(ingest: Ingest) -> None:
    from irods_ingest_testkit.processes import free_port

    ingest.write("a.txt", b"a")
    ingest.env = type(ingest.env)(host="127.0.0.1", port=free_port(), user="rods", password="rods", zone="tempZone")
    status = ingest.run(max_retries=1, retry_backoff_seconds=0.1)
    assert status.state == "failed"
    assert "unreachable" in status.error or "connection" in status.error.lower(), status.error


# ---------------------------------------------------------------- special files
def test_fifo_is_skipped_never_opened(ingest: Ingest) -> None:
    # Opening a FIFO blocks until a writer comes: the scan must not even try.
    status = run_with_neighbours(ingest, lambda src: os.mkfifo(src / "pipe"))
    assert reasons(ingest) == {"pipe": "pipe file is not ingested (exclude type 'pipe' to silence this)"}
    assert (status.counters["files_synced"], status.counters["files_skipped"]) == (2, 1) and status.state == "done"
    assert_accounted(status, ingest.failures(), on_disk=entries_on_disk(ingest.source))


@pytest.fixture
def bound_socket(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    sockets: list[socket.socket] = []

    def make(src: Path) -> None:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(src / "sock"))
        sockets.append(sock)

    yield make
    for sock in sockets:
        sock.close()


@pytest.mark.parametrize("operation", [Operation.PUT, Operation.REGISTER_SYNC], ids=lambda o: o.value)
def test_socket_is_skipped_by_uploads_and_registered_by_register(ingest: Ingest, operation: Operation,
                                                                 bound_socket: Callable[[Path], None]) -> None:
    status = run_with_neighbours(ingest, bound_socket, operation=operation)
    if operation.uploads:  # nothing to read from a socket
        assert reasons(ingest) == {"sock": "socket file is not ingested (exclude type 'socket' to silence this)"}
        assert "sock" not in ingest.objects() and status.counters["files_skipped"] == 1
    else:  # the incumbent registers the socket itself, marked by an AVU
        avus = {m.name: m.value for m in ingest.objects()["sock"].metadata.items()}
        assert avus["socket_target"] == "socket" and status.counters["files_synced"] == 3
    assert_accounted(status, ingest.failures(), on_disk=entries_on_disk(ingest.source))


def test_block_device_is_skipped_with_a_reason(ingest: Ingest) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    status = run_with_neighbours(ingest, lambda src: os.mknod(src / "loopdev", stat.S_IFBLK | 0o600, os.makedev(7, 0)))
    assert reasons(ingest) == {"loopdev": "block file is not ingested (exclude type 'block' to silence this)"}
    assert status.counters["files_skipped"] == 1 and "loopdev" not in ingest.objects()


def test_owner_only_file_is_synced(ingest: Ingest) -> None:
    def make(src: Path) -> None:
        (src / "private.bin").write_bytes(b"p")
        (src / "private.bin").chmod(0o600)

    status = run_with_neighbours(ingest, make)
    assert ingest.read("private.bin") == b"p" and status.counters["files_failed"] == 0


# ---------------------------------------------------------------- unreadable entries
def drop_dac_override() -> list[str]:
    """A command prefix that runs a process without the power to read what its mode forbids.

    Root reads 0000 files and lists 0000 directories (CAP_DAC_OVERRIDE), and CI runs as root:
    the worker runs as a separate process with those capabilities removed from its bounding
    set, which is what a worker running as an ordinary user sees.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    prefix = [setpriv or "setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if setpriv is None or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("needs setpriv (util-linux) and CAP_SETPCAP to run a worker without CAP_DAC_OVERRIDE")
    return prefix


def run_in_restricted_worker(ingest: Ingest, **config: Any) -> RunStatus:
    start_job(connect(ingest.redis_url), ingest.config(**{"operation": Operation.PUT, **config}), force=True)
    env = {**os.environ, "IRODS_INGEST_REDIS_URL": ingest.redis_url, "IRODS_HOST": ingest.env.host,
           "IRODS_PORT": str(ingest.env.port), "IRODS_USER_NAME": ingest.env.user, "IRODS_ZONE_NAME": ingest.env.zone,
           "IRODS_PASSWORD": ingest.env.password}
    worker = subprocess.run([*drop_dac_override(), sys.executable, "-m", "irods_ingest", "worker", "--job", ingest.job,
                             "--exit-when-idle"], env=env, capture_output=True, text=True, timeout=120)
    assert worker.returncode == 0, worker.stderr
    status: RunStatus = ingest.runs.status()
    return status


def test_unreadable_file_fails_by_name_for_a_worker_that_cannot_read_it(ingest: Ingest) -> None:
    ingest.write("ok1.txt", b"one")
    ingest.write("sub/ok2.txt", b"two")
    ingest.write("locked.bin", b"secret").chmod(0)
    status = run_in_restricted_worker(ingest)
    assert reasons(ingest) == {"locked.bin": "permission denied: the worker cannot read this file"}
    assert ingest.failures()[0]["outcome"] == "failed" and status.counters["files_failed"] == 1
    assert set(ingest.objects()) == {"ok1.txt", "sub/ok2.txt"} and status.state == "failed"
    assert_accounted(status, ingest.failures(), on_disk=3)


def test_unreadable_directory_fails_by_name_and_its_siblings_land(ingest: Ingest) -> None:
    ingest.write("ok1.txt", b"one")
    ingest.write("sub/ok2.txt", b"two")
    ingest.write("closed/hidden.txt", b"h")
    (ingest.source / "closed").chmod(0)
    try:
        status = run_in_restricted_worker(ingest)
    finally:
        (ingest.source / "closed").chmod(0o755)  # so that the tree can be removed
    [failure] = ingest.failures()
    assert (failure["path"], failure["reason"], failure["kind"]) == (
        str(ingest.source / "closed"), "cannot list directory: Permission denied", "scan")
    assert set(ingest.objects()) == {"ok1.txt", "sub/ok2.txt"}
    assert (status.state, status.counters["tasks_failed"], status.counters["files_synced"]) == ("failed", 1, 2)


# ---------------------------------------------------------------- symbolic links
# (policy, operation) -> what a broken link ("dangling" -> "missing") becomes
BROKEN_LINK = [
    (SymlinkPolicy.REGISTER, Operation.PUT, "skipped", "broken symbolic link: nothing to upload"),
    (SymlinkPolicy.REGISTER, Operation.REGISTER_SYNC, "registered", ""),
    (SymlinkPolicy.FOLLOW, Operation.PUT, "skipped", "broken symbolic link"),
    (SymlinkPolicy.SKIP, Operation.PUT, "skipped", "symbolic link skipped (symlinks: Skip)"),
]


@pytest.mark.parametrize(("policy", "operation", "outcome", "reason"), BROKEN_LINK,
                         ids=[f"{p.value}-{o.value}" for p, o, _, _ in BROKEN_LINK])
def test_broken_symlink_under_each_policy(ingest: Ingest, policy: SymlinkPolicy, operation: Operation, outcome: str,
                                          reason: str) -> None:
    status = run_with_neighbours(ingest, lambda src: os.symlink("missing", src / "dangling"), symlinks=policy,
                                 operation=operation)
    if outcome == "skipped":
        assert reasons(ingest) == {"dangling": reason} and status.counters["files_skipped"] == 1
        assert "dangling" not in ingest.objects() and status.state == "done"
    else:  # Register registers the link itself (its lstat), pointing at where it points
        avus = {m.name: m.value for m in ingest.objects()["dangling"].metadata.items()}
        assert avus["link_target"] == str(ingest.source / "missing") and status.counters["files_failed"] == 0
    assert_accounted(status, ingest.failures(), on_disk=entries_on_disk(ingest.source))


LOOPING_LINK = [
    (SymlinkPolicy.REGISTER, "broken symbolic link: nothing to upload"),  # a loop leads nowhere to read
    (SymlinkPolicy.SKIP, "symbolic link skipped (symlinks: Skip)"),
]


@pytest.mark.parametrize(("policy", "reason"), LOOPING_LINK, ids=[p.value for p, _ in LOOPING_LINK])
def test_looping_symlink_under_the_other_policies(ingest: Ingest, policy: SymlinkPolicy, reason: str) -> None:
    status = run_with_neighbours(ingest, lambda src: os.symlink("loop", src / "loop"), symlinks=policy)
    assert reasons(ingest) == {"loop": reason} and status.state == "done"


def test_symlink_to_an_ancestor_is_not_followed_forever(ingest: Ingest) -> None:
    status = run_with_neighbours(ingest, lambda src: os.symlink("..", src / "sub" / "up"), symlinks=SymlinkPolicy.FOLLOW)
    assert reasons(ingest) == {"up": "symbolic link loop: sub/up points to its own ancestor"}
    assert len(ingest.objects()) == 2 and status.state == "done"


# ---------------------------------------------------------------- names and shapes
def test_name_that_is_not_utf8_lands_under_a_reversible_name(ingest: Ingest) -> None:
    raw = b"caf\xe9.txt"  # Latin-1, not UTF-8
    status = run_with_neighbours(ingest, lambda src: (src / os.fsdecode(raw)).write_bytes(b"latin"))
    [mangled] = [name for name in ingest.objects() if name.startswith("irods_UnicodeEncodeError_")]
    avus = {m.name: m.value for m in ingest.objects()[mangled].metadata.items()}
    original = base64.b64decode(avus["irods::automated_ingest::UnicodeEncodeError"])
    assert original == os.fsencode(ingest.source) + b"/" + raw  # the exact source path, recoverable
    assert ingest.read(mangled) == b"latin" and status.counters["files_synced"] == 3


def test_names_that_look_like_dot_dot_stay_inside_the_target(ingest: Ingest) -> None:
    def make(src: Path) -> None:
        for name in ("...", "..hidden", "a..b", ".. x"):
            (src / name).write_bytes(name.encode())
        (src / "dots...").mkdir()
        (src / "dots..." / "...").write_bytes(b"inner")

    status = run_with_neighbours(ingest, make)
    assert {"...", "..hidden", "a..b", ".. x", "dots.../..."} <= set(ingest.objects())
    assert ingest.read("...") == b"..." and ingest.read("dots.../...") == b"inner"
    assert status.counters["files_synced"] == 7 and status.counters["files_failed"] == 0


def test_empty_source_completes_with_nothing_to_do(ingest: Ingest) -> None:
    status = ingest.run(operation=Operation.PUT)
    assert status.state == "done" and status.error == ""
    assert all(status.counters[k] == 0 for k in ("files_discovered", "files_synced", "files_failed", "files_skipped"))
    assert ingest.session.collections.exists(ingest.target) and ingest.objects() == {}
