"""Scanning classifies every entry; special files never block; nothing is silently dropped."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from irods_ingest.config import FileType, JobConfig, Operation, SymlinkPolicy
from irods_ingest.scan import DirectoryPages, scan_directory
from irods_ingest.tasks import FileEntry
from testsupport.unprivileged import as_unprivileged, world_dir


def _config(root: Path, **changes: object) -> JobConfig:
    return JobConfig(job_name="j", source_path=str(root), target_collection="/tempZone/home/rods/t").with_changes(**changes)


def _names(entries: list[FileEntry]) -> set[str]:
    return {e.name for e in entries}


def test_regular_files_dirs_and_cache(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"abc")
    (tmp_path / "b.txt").write_bytes(b"defg")
    (tmp_path / "sub").mkdir()
    b = FileEntry("b.txt", 4, (tmp_path / "b.txt").stat().st_mtime_ns)
    result = scan_directory(str(tmp_path), "", _config(tmp_path), {b.cache_field: b.cache_value, "gone.txt": "1:1"})
    assert _names(result.to_sync) == {"a.txt"}
    assert _names(result.unchanged) == {"b.txt"}
    assert result.subdirectories == ["sub"]
    assert result.stale_cache == ["gone.txt"]
    ignoring = scan_directory(str(tmp_path), "", _config(tmp_path, ignore_cache=True), {b.cache_field: b.cache_value})
    assert _names(ignoring.to_sync) == {"a.txt", "b.txt"}


def test_fifo_socket_and_unreadable_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    private = tmp_path / "private"
    private.write_bytes(b"secret")
    private.chmod(0o600)
    locked = tmp_path / "locked"
    locked.write_bytes(b"x")
    locked.chmod(0o000)
    try:
        register = scan_directory(str(tmp_path), "", _config(tmp_path), {})
        # registering: 0600 and 0000 files are registered (iRODS reads them, not us);
        # the socket is registered as the incumbent does; the FIFO is skipped with a reason
        assert _names(register.to_sync) == {"private", "locked", "sock"}
        assert [(s.name, s.failed) for s in register.skipped] == [("pipe", False)]
        assert "pipe" in register.skipped[0].reason
        put = scan_directory(str(tmp_path), "", _config(tmp_path, operation=Operation.PUT), {})
        skipped = {s.name: s for s in put.skipped}
        assert set(skipped) >= {"pipe", "sock"}
        assert "private" in _names(put.to_sync)  # 0600 owned by us: readable, never skipped
        if os.geteuid() != 0:  # root reads 0000 files too
            assert skipped["locked"].failed and "permission denied" in skipped["locked"].reason
    finally:
        sock.close()
        locked.chmod(0o600)


def test_symlink_policies_broken_and_looping_links(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_bytes(b"12345")
    (tmp_path / "dir").mkdir()
    os.symlink("real.txt", tmp_path / "link.txt")
    os.symlink("missing", tmp_path / "broken")
    os.symlink("..", tmp_path / "dir" / "up")
    reg = scan_directory(str(tmp_path), "", _config(tmp_path), {})
    kinds = {e.name: e.kind for e in reg.to_sync}
    assert kinds == {"real.txt": "regular", "link.txt": "link", "broken": "link"}
    follow = scan_directory(str(tmp_path), "", _config(tmp_path, symlinks=SymlinkPolicy.FOLLOW), {})
    assert {e.name: (e.kind, e.size) for e in follow.to_sync} == {"real.txt": ("regular", 5), "link.txt": ("regular", 5)}
    assert [s.reason for s in follow.skipped] == ["broken symbolic link"]
    loop = scan_directory(str(tmp_path), "dir", _config(tmp_path, symlinks=SymlinkPolicy.FOLLOW), {})
    assert loop.subdirectories == [] and "loop" in loop.skipped[0].reason
    skip = scan_directory(str(tmp_path), "", _config(tmp_path, symlinks=SymlinkPolicy.SKIP), {})
    assert _names(skip.to_sync) == {"real.txt"} and len(skip.skipped) == 2


def test_exclusions_by_type_name_directory_and_include(tmp_path: Path) -> None:
    for name in ("keep.dat", "drop.tmp", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "cache").mkdir()
    (tmp_path / "data").mkdir()
    config = _config(tmp_path, exclude_names=(r".*\.tmp",), exclude_directories=("cache",))
    result = scan_directory(str(tmp_path), "", config, {})
    assert _names(result.to_sync) == {"keep.dat", "notes.txt"}
    assert result.excluded == 1 and result.subdirectories == ["data"]
    assert {"drop.tmp", "cache"} <= result.names_seen  # excluded entries are protected from deletion
    only_dat = scan_directory(str(tmp_path), "", _config(tmp_path, include_names=(r".*\.dat",)), {})
    assert _names(only_dat.to_sync) == {"keep.dat"} and only_dat.excluded == 2
    no_regular = scan_directory(str(tmp_path), "", _config(tmp_path, exclude_types=(FileType.REGULAR,)), {})
    assert no_regular.to_sync == [] and no_regular.excluded == 3


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_directory(str(tmp_path), "nope", _config(tmp_path), {})
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        scan_directory(str(tmp_path), "file", _config(tmp_path), {})


def test_names_that_are_not_utf8(tmp_path: Path) -> None:
    raw = os.fsdecode(b"caf\xe9.txt")
    (tmp_path / raw).write_bytes(b"latin-1 name")
    result = scan_directory(str(tmp_path), "", _config(tmp_path), {})
    assert _names(result.to_sync) == {raw}
    assert result.to_sync[0].cache_field.startswith("\x00b64:")


def test_first_sync_lists_regular_files_by_name_without_stat(tmp_path: Path) -> None:
    """With nothing cached to compare, regular files are listed by name (the FILES task stats
    them); everything else is classified exactly as with a stat, and filters still apply."""
    (tmp_path / "a.dat").write_bytes(b"abc")
    (tmp_path / "b.tmp").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    os.symlink("a.dat", tmp_path / "link")
    os.mkfifo(tmp_path / "pipe")
    config = _config(tmp_path, exclude_names=(r".*\.tmp",))
    first = scan_directory(str(tmp_path), "", config, {}, stat_files=False)
    assert (first.listed, first.listed_batches, first.excluded) == (1, ['["a.dat"]'], 1)
    assert [(e.name, e.kind, e.size) for e in first.to_sync] == [("link", "link", len("a.dat"))]  # links: lstat'ed
    assert first.subdirectories == ["sub"] and [s.name for s in first.skipped] == ["pipe"]
    assert first.names_seen == {"a.dat", "b.tmp", "sub", "link", "pipe"}
    with_stat = scan_directory(str(tmp_path), "", config, {}, stat_files=True)
    assert with_stat.listed == 0 and _names(with_stat.to_sync) == {"a.dat", "link"}

    # a directory with a cache is compared file by file: that needs the stat
    a = FileEntry("a.dat", 3, (tmp_path / "a.dat").stat().st_mtime_ns)
    rescan = scan_directory(str(tmp_path), "", config, {a.cache_field: a.cache_value}, stat_files=False)
    assert rescan.listed == 0 and _names(rescan.unchanged) == {"a.dat"} and _names(rescan.to_sync) == {"link"}
    # ... unless the job ignores the cache: then nothing is compared and nothing needs a stat
    ignoring = scan_directory(str(tmp_path), "", _config(tmp_path, ignore_cache=True), {a.cache_field: a.cache_value}, stat_files=False)
    assert ignoring.listed == 2 and sorted(json.loads(ignoring.listed_batches[0])) == ["a.dat", "b.tmp"]


def test_first_sync_upload_skips_unreadable_files_by_name() -> None:
    with world_dir() as root:
        (root / "ok").write_bytes(b"x")
        (root / "locked").write_bytes(b"x")
        (root / "locked").chmod(0o000)
        put = as_unprivileged(lambda: scan_directory(str(root), "", _config(root, operation=Operation.PUT), {}, stat_files=False))
        assert put.listed_batches == ['["ok"]']
        assert [(s.name, s.failed, "permission denied" in s.reason) for s in put.skipped] == [("locked", True, True)]
        # the stat'ing path (a directory with a cache, or the plan command) reports it alike
        stated = as_unprivileged(lambda: scan_directory(str(root), "", _config(root, operation=Operation.PUT), {}))
        assert _names(stated.to_sync) == {"ok"} and [(s.name, s.failed) for s in stated.skipped] == [("locked", True)]


@pytest.mark.parametrize("cached_anything", [False, True], ids=["by-name", "stat"])
def test_directory_pages_cover_every_entry_once_and_skip_what_was_seen(tmp_path: Path, cached_anything: bool) -> None:
    """A directory read a page at a time: pages hold every entry once; ``seen`` drops names an
    earlier delivery accounted for before anything is counted; each page's record names
    what it accounted for; the cache lookup is asked only about the page's names."""
    for i in range(23):
        (tmp_path / f"f{i:02d}.dat").write_bytes(b"x" * i)
    (tmp_path / "sub").mkdir()
    config = _config(tmp_path)
    asked: list[list[str]] = []

    def lookup(names: list[str]) -> dict[str, str]:
        asked.append(names)
        return {}

    def collect(seen: set[str]) -> tuple[list[str], list[str], list[str], int]:
        files, subdirectories, records, count = [], [], [], 0
        with DirectoryPages(str(tmp_path), "", config, cached_anything=cached_anything, page_entries=5) as pages:
            while True:
                page = pages.next(lookup, (lambda names: {n for n in names if n in seen}) if seen else None)
                count += 1
                files += [e.name for e in page.to_sync] + [n for b in page.listed_batches for n in json.loads(b)]
                subdirectories += page.subdirectories
                records += json.loads(page.record())
                if page.done:
                    return files, subdirectories, records, count
    files, subdirectories, records, count = collect(set())
    assert sorted(files) == [f"f{i:02d}.dat" for i in range(23)] and subdirectories == ["sub"]
    assert sorted(records) == sorted([*files, "sub"]) and count == 5  # 24 entries, 5 a page
    assert all(len(names) <= 5 for names in asked) and (bool(asked) == cached_anything)
    again, _, records_again, _ = collect(set(records[:10]))
    assert sorted(again) == sorted(set(files) - set(records[:10]))
    assert sorted(records_again) == sorted(set(records) - set(records[:10]))
