"""Hostile and odd sources: each case produces its clear outcome and loses nothing else.

Every case puts an odd entry beside two ordinary files; the ordinary files must always
land, and the odd one must be synced, skipped or failed with the reason stated here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from irods_ingest.config import Operation, SymlinkPolicy
from testsupport.ingest import Ingest

pytestmark = [pytest.mark.redis, pytest.mark.irods]


def run_with_neighbours(ingest: Ingest, make_odd: Callable[[Path], None], handler: str | None = None,
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
        "    def pre_data_obj_create(hdlr_mod, logger, session, meta, **options):\n"
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
        "    def pre_data_obj_create(hdlr_mod, logger, session, meta, **options):\n"
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
    from irods_ingest.testing.processes import free_port

    ingest.write("a.txt", b"a")
    ingest.env = type(ingest.env)(host="127.0.0.1", port=free_port(), user="rods", password="rods", zone="tempZone")
    status = ingest.run(max_retries=1, retry_backoff_seconds=0.1)
    assert status.state == "failed"
    assert "unreachable" in status.error or "connection" in status.error.lower(), status.error
