"""confine and the scan's link rules: a filesystem job reads nothing outside its source root (no services)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from irods_ingest.config import JobConfig, Operation, SymlinkPolicy
from irods_ingest.confine import escaping_target, inside, opened_inside, real_root
from irods_ingest.errors import PermanentError, SourceVanished
from irods_ingest.scan import scan_directory


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/src (the source, with a file and a subdirectory) and tmp/outside/secret."""
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "sub" / "real.txt").write_bytes(b"inside")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"secret")
    return tmp_path


def test_inside_compares_whole_components() -> None:
    assert inside("/data", "/data") and inside("/data/a", "/data") and inside("/anything", "/")
    assert not inside("/data2/a", "/data") and not inside("/dat", "/data") and not inside("/", "/data")


def test_escaping_target_resolves_relative_chained_and_broken_links(tree: Path) -> None:
    src = tree / "src"
    os.symlink("../outside/secret", src / "up")
    os.symlink("up", src / "chained")  # inside, to a link that leaves
    os.symlink("sub/real.txt", src / "fine")
    os.symlink("../outside/not-yet", src / "broken-out")
    os.symlink("missing", src / "broken-in")
    root = real_root(str(src))
    assert escaping_target(str(src / "up"), root) == str(tree / "outside" / "secret")
    assert escaping_target(str(src / "chained"), root) == str(tree / "outside" / "secret")
    assert escaping_target(str(src / "broken-out"), root) == str(tree / "outside" / "not-yet")
    assert escaping_target(str(src / "fine"), root) is None
    assert escaping_target(str(src / "broken-in"), root) is None


def test_a_source_given_through_a_link_is_its_real_directory(tree: Path) -> None:
    os.symlink(tree / "src", tree / "alias")
    root = real_root(str(tree / "alias"))
    assert root == str(tree / "src")
    with opened_inside(str(tree / "alias" / "sub" / "real.txt"), root, follow=False) as local, open(local, "rb") as f:
        assert f.read() == b"inside"


def test_opened_inside_reopens_the_file_it_checked_even_once_the_path_is_swapped(tree: Path) -> None:
    src, root = tree / "src", real_root(str(tree / "src"))
    path = src / "sub" / "real.txt"
    with opened_inside(str(path), root, follow=False) as local:
        assert local.startswith("/proc/self/fd/")
        path.unlink()
        os.symlink(tree / "outside" / "secret", path)  # swapped after the check
        results: list[bytes] = []

        def read() -> None:  # as PRC's parallel transfer does: another thread opens the path
            with open(local, "rb") as f:
                results.append(f.read())

        threads = [threading.Thread(target=read) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [b"inside"] * 3


def test_opened_inside_refuses_a_link_unless_following_and_then_only_inside(tree: Path) -> None:
    src, root = tree / "src", real_root(str(tree / "src"))
    os.symlink("sub/real.txt", src / "fine")
    os.symlink(tree / "outside" / "secret", src / "out")
    with pytest.raises(PermanentError, match="replaced by a symbolic link after the scan: not followed"), opened_inside(str(src / "fine"), root, follow=False):
        pass
    with opened_inside(str(src / "fine"), root, follow=True) as local, open(local, "rb") as f:
        assert f.read() == b"inside"
    with pytest.raises(PermanentError, match=r"resolves outside the source root \(.*/outside/secret\)"), opened_inside(str(src / "out"), root, follow=True):
        pass


def test_opened_inside_catches_a_directory_swapped_for_a_link(tree: Path) -> None:
    src, root = tree / "src", real_root(str(tree / "src"))
    (tree / "outside" / "real.txt").write_bytes(b"secret")
    (src / "sub" / "real.txt").unlink()
    (src / "sub").rmdir()
    os.symlink(tree / "outside", src / "sub")  # O_NOFOLLOW guards only the last component
    with pytest.raises(PermanentError, match="resolves outside the source root"), opened_inside(str(src / "sub" / "real.txt"), root, follow=False):
        pass


def test_opened_inside_never_blocks_on_a_fifo_and_refuses_non_files(tree: Path) -> None:
    src, root = tree / "src", real_root(str(tree / "src"))
    os.mkfifo(src / "fifo")
    with pytest.raises(PermanentError, match="is a FIFO now, not a regular file"), opened_inside(str(src / "fifo"), root, follow=False):
        pass
    with pytest.raises(PermanentError, match="is a directory now, not a regular file"), opened_inside(str(src / "sub"), root, follow=False):
        pass
    with pytest.raises(SourceVanished), opened_inside(str(src / "gone"), root, follow=False):
        pass


def test_the_descriptor_is_closed_on_leaving(tree: Path) -> None:
    src, root = tree / "src", real_root(str(tree / "src"))
    with opened_inside(str(src / "sub" / "real.txt"), root, follow=False) as local:
        fd = int(local.rsplit("/", 1)[1])
    with pytest.raises(OSError):
        os.fstat(fd)


# ---------------------------------------------------------------- the scan's classification of links
def _config(source: Path, **changes: object) -> JobConfig:
    return JobConfig(job_name="j", source_path=str(source), target_collection="/z/t").with_changes(**changes)


@pytest.mark.parametrize("operation", [Operation.PUT, Operation.REGISTER_SYNC, Operation.NO_OP])
@pytest.mark.parametrize("policy", [SymlinkPolicy.REGISTER, SymlinkPolicy.FOLLOW])
@pytest.mark.parametrize("stat_files", [False, True])
def test_scan_skips_links_out_of_the_root_whatever_the_policy_and_operation(
    tree: Path, operation: Operation, policy: SymlinkPolicy, stat_files: bool
) -> None:
    src = tree / "src"
    os.symlink(tree / "outside" / "secret", src / "file-out")
    os.symlink(tree / "outside", src / "dir-out")
    os.symlink("sub/real.txt", src / "file-in")
    result = scan_directory(str(src), "", _config(src, operation=operation, symlinks=policy), {}, stat_files=stat_files)
    reasons = {s.name: s.reason for s in result.skipped}
    assert reasons["file-out"] == f"symbolic link points outside the source root ({tree / 'outside' / 'secret'}): not ingested"
    assert reasons["dir-out"] == f"symbolic link points outside the source root ({tree / 'outside'}): not ingested"
    assert not any(s.failed for s in result.skipped)
    assert "file-in" in {e.name for e in result.to_sync}
    assert "dir-out" not in result.subdirectories


def test_scan_counts_an_excluded_escaping_link_as_excluded(tree: Path) -> None:
    src = tree / "src"
    os.symlink(tree / "outside" / "secret", src / "out.lnk")
    result = scan_directory(str(src), "", _config(src, exclude_names=(r".*\.lnk",)), {})
    assert (result.excluded, result.skipped) == (1, [])


def test_follow_descends_a_directory_link_inside_the_root(tree: Path) -> None:
    src = tree / "src"
    os.symlink("sub", src / "again")
    result = scan_directory(str(src), "", _config(src, symlinks=SymlinkPolicy.FOLLOW), {})
    assert sorted(result.subdirectories) == ["again", "sub"]


def test_register_put_skips_a_directory_link_there_is_nothing_to_upload(tree: Path) -> None:
    src = tree / "src"
    os.symlink("sub", src / "again")
    result = scan_directory(str(src), "", _config(src, operation=Operation.PUT), {})
    assert [(s.name, s.reason) for s in result.skipped] == [
        ("again", "symbolic link to a directory: nothing to upload (symlinks: Follow descends it)")
    ]
