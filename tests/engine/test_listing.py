"""The first-sync listing: the native extension and the pure-Python listing give the same
batches, byte for byte, and both round-trip through Task.decode to the names on disk."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from irods_ingest import listing
from irods_ingest.tasks import Task, TaskKind
from testsupport.unprivileged import as_unprivileged, world_dir

# Every escape json.dumps makes, a multi-byte and an astral character, and bytes that are
# not UTF-8 at all (invalid lead, truncated sequence, overlong form, an encoded surrogate).
AWKWARD = [
    b"plain.dat", b"with space", b'quote"d', b"back\\slash", b"tab\there", b"new\nline", b"cr\rx", b"bell\x07",
    b"del\x7f", b"form\x0cfeed", b"bs\x08", b"caf\xc3\xa9", b"\xe2\x82\xac-euro", b"emoji-\xf0\x9f\x98\x80",
    b"latin1-\xe9", b"trunc-\xe2\x82", b"overlong-\xc0\xaf", b"surrogate-\xed\xa0\x80", b"max-\xf4\x8f\xbf\xbf",
    b"past-max-\xf4\x90\x80\x80", b"x" * 255,
]


def _implementations() -> list[listing.ListByName]:
    found = [listing.list_by_name_python]
    if listing.native_list_by_name is not None:
        found.append(listing.native_list_by_name)
    return found


def test_the_native_listing_is_built_where_ci_runs() -> None:
    # The install builds it whenever a C compiler is present, which CI's set-up guarantees;
    # elsewhere the pure-Python listing stands in with the same results.
    if os.environ.get("CI"):
        assert listing.NATIVE, "irods_ingest._listing was not built: is gcc installed?"


@pytest.mark.parametrize("batch", [1, 3, 50])
def test_both_listings_give_the_same_batches_for_awkward_names(tmp_path: Path, batch: int) -> None:
    root = os.fsencode(tmp_path)
    for name in AWKWARD:
        with open(os.path.join(root, name), "wb") as handle:
            handle.write(b"x")
    (tmp_path / "sub").mkdir()
    os.symlink("plain.dat", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        results = [impl(str(tmp_path), batch, False) for impl in _implementations()]
    finally:
        sock.close()
    python_result = results[0]
    batches, files, directories, others, unreadable = python_result
    assert files == len(AWKWARD) and unreadable == [] and directories == ["sub"]
    assert sorted(others) == ["fifo", "link", "sock"]
    assert all(len(json.loads(b)) <= batch for b in batches)
    for other in results[1:]:
        # directory order is the same readdir order for both
        assert other == python_result
    # what travels decodes back to exactly the names on disk
    decoded = [
        os.fsencode(entry.name)
        for text in batches
        for entry in Task.decode(Task(TaskKind.FILES, "r", listed=text).encode()).entries
    ]
    assert sorted(decoded) == sorted(AWKWARD)


def test_unreadable_files_are_reported_not_listed() -> None:
    with world_dir() as root:
        (root / "ok").write_bytes(b"x")
        (root / "locked").write_bytes(b"x")
        (root / "locked").chmod(0o000)
        for impl in _implementations():
            listed = as_unprivileged(lambda impl=impl: impl(str(root), 10, True))  # type: ignore[misc]
            assert listed == (['["ok"]'], 1, [], [], ["locked"])
            # without the check (registering: iRODS reads the file, not the worker) it is listed
            assert as_unprivileged(lambda impl=impl: impl(str(root), 10, False))[1] == 2  # type: ignore[misc]


def test_a_directory_that_cannot_be_listed_raises_as_os_scandir(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    for impl in _implementations():
        with pytest.raises(FileNotFoundError):
            impl(str(tmp_path / "missing"), 10, False)
        with pytest.raises(NotADirectoryError):
            impl(str(tmp_path / "file"), 10, False)
        with pytest.raises(ValueError, match="batch"):
            impl(str(tmp_path), 0, False)
        assert impl(str(tmp_path), 10, False) == (['["file"]'], 1, [], [], [])


def test_an_empty_directory_and_a_large_one(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    big = tmp_path / "big"
    big.mkdir()
    for i in range(2_345):
        (big / f"f{i:05d}.dat").touch()
    for impl in _implementations():
        assert impl(str(tmp_path / "empty"), 50, False) == ([], 0, [], [], [])
        batches, files, _, _, _ = impl(str(big), 50, False)
        assert files == 2_345 and len(batches) == 47
        assert sorted(n for b in batches for n in json.loads(b)) == [f"f{i:05d}.dat" for i in range(2_345)]


def _listers() -> list[type]:
    found: list[type] = [listing.ListerPython]
    if listing.native_lister is not None:
        found.append(listing.native_lister)  # type: ignore[arg-type]
    return found


@pytest.mark.parametrize("lister", _listers(), ids=lambda k: k.__module__)
@pytest.mark.parametrize("page", [1, 7, 1000])
def test_a_lister_pages_through_every_entry_exactly_once(tmp_path: Path, lister: type, page: int) -> None:
    """One open stream, read a page at a time: the pages hold every entry once, in batches
    encoded exactly as the whole listing encodes them, and ``done`` comes with the end."""
    root = os.fsencode(tmp_path)
    for name in AWKWARD:
        with open(os.path.join(root, name), "wb") as handle:
            handle.write(b"x")
    for i in range(40):
        (tmp_path / f"n{i:03d}").write_bytes(b"")
    for i in range(3):
        (tmp_path / f"dir{i}").mkdir()
    os.symlink("plain.dat", tmp_path / "link")
    whole = listing.list_by_name_python(str(tmp_path), 5, False)
    reader = lister(str(tmp_path), 5, False)
    files: list[str] = []
    directories: list[str] = []
    others: list[str] = []
    pages = 0
    while True:
        batches, count, dirs, other, unreadable, done = reader.page(page)
        pages += 1
        names = [n for b in batches for n in json.loads(b)]
        assert count == len(names) and unreadable == []
        assert len(names) + len(dirs) + len(other) <= page
        assert [listing.encode_names([Task.decode(f'{{"id":"x","kind":"files","run":"r","entries":{b}}}').entries[i].name
                                      for i in range(len(json.loads(b)))]) for b in batches] == batches
        files += names
        directories += dirs
        others += other
        if done:
            break
    reader.close()
    reader.close()  # idempotent
    assert sorted(files) == sorted(n for b in whole[0] for n in json.loads(b))
    assert len(files) == len(set(files)) == len(AWKWARD) + 40
    assert sorted(directories) == ["dir0", "dir1", "dir2"] and others == ["link"]
    assert pages >= (len(AWKWARD) + 44) // page
    with pytest.raises(ValueError):
        reader.page(1)


@pytest.mark.parametrize("lister", _listers(), ids=lambda k: k.__module__)
def test_a_lister_of_a_missing_directory_raises_at_once(tmp_path: Path, lister: type) -> None:
    with pytest.raises(FileNotFoundError):
        lister(str(tmp_path / "nope"), 5, False)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        lister(str(tmp_path / "file"), 5, False)
