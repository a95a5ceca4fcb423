"""Delete modes for S3 sources: objects removed from the bucket leave iRODS per the job's
delete mode, judged per prefix over all of its listing pages (moto's server, a real
redis-server and the iRODS test server)."""

from __future__ import annotations

from typing import Any

import pytest

from irods_ingest.config import DeleteMode, Operation, cache_generation
from testsupport.s3_ingest import S3Ingest, tune_transfers

pytestmark = [pytest.mark.redis, pytest.mark.irods]

TREE = {
    "keep.txt": b"keep",
    "gone.txt": b"gone",
    "sub/a.txt": b"a",
    "sub/gone-too.txt": b"b",
    "vanished/x.txt": b"x",
    "vanished/deeper/y.txt": b"y",
}


def trash_of(s3: S3Ingest) -> set[str]:
    """Paths (relative to the target) of the data objects in the user's trash for the target."""
    session = s3.ingest.session
    trash_target = s3.ingest.target.replace(f"/{session.zone}/", f"/{session.zone}/trash/", 1)
    if not session.collections.exists(trash_target):
        return set()
    found: set[str] = set()
    for _coll, _subs, objects in session.collections.get(trash_target).walk():
        found |= {obj.path[len(trash_target) + 1 :] for obj in objects}
    return found


def seen_keys(s3: S3Ingest) -> list[Any]:
    return list(s3.ingest.runs.client.scan_iter(match=f"ii:{{{s3.ingest.job}}}:seen:*"))


@pytest.mark.parametrize(
    ("operation", "mode"),
    [(Operation.REGISTER_SYNC, DeleteMode.UNREGISTER), (Operation.PUT_SYNC, DeleteMode.TRASH),
     (Operation.PUT_SYNC, DeleteMode.NO_TRASH)],
    ids=["unregister", "trash", "no-trash"],
)
def test_objects_removed_from_the_bucket_leave_irods_per_delete_mode(
    s3_ingest: S3Ingest, operation: Operation, mode: DeleteMode
) -> None:
    for rel, data in TREE.items():
        s3_ingest.put(rel, data)
    first = s3_ingest.run(operation=operation, delete_mode=mode)
    assert first.state == "done", s3_ingest.ingest.failures()
    assert set(s3_ingest.ingest.objects()) == set(TREE)
    assert first.counters["files_deleted"] == 0

    for rel in ("gone.txt", "sub/gone-too.txt", "vanished/x.txt", "vanished/deeper/y.txt"):
        s3_ingest.delete(rel)
    second = s3_ingest.run(operation=operation, delete_mode=mode)
    assert second.state == "done", s3_ingest.ingest.failures()
    assert set(s3_ingest.ingest.objects()) == {"keep.txt", "sub/a.txt"}
    # the four objects, those of "vanished/" too (each per the delete mode); then the two
    # emptied collections "vanished/deeper" and "vanished"
    assert second.counters["files_deleted"] == 4
    assert second.counters["collections_deleted"] == 2
    session = s3_ingest.ingest.session
    assert not session.collections.exists(s3_ingest.ingest.logical("vanished"))
    assert s3_ingest.ingest.objects()["keep.txt"].size == 4
    trashed = trash_of(s3_ingest)
    removed = {"gone.txt", "sub/gone-too.txt", "vanished/x.txt", "vanished/deeper/y.txt"}
    if mode is DeleteMode.TRASH:
        assert removed <= trashed
    else:
        assert not trashed & removed
    if mode is DeleteMode.UNREGISTER:  # registered from the bucket: the bucket is never touched by iRODS
        assert s3_ingest.client.head_object(Bucket=s3_ingest.bucket, Key="data/keep.txt")["ContentLength"] == 4


def test_multi_page_prefix_deletes_only_what_left_it_and_prunes_its_cache(
    s3_ingest: S3Ingest, monkeypatch: pytest.MonkeyPatch
) -> None:
    tune_transfers(monkeypatch, page_size=3)  # 14 objects: five listing pages of one prefix
    names = [f"many/k{i:02d}" for i in range(14)]
    for name in names:
        s3_ingest.put(name, name.encode())
    settings: dict[str, Any] = {"operation": Operation.PUT_SYNC, "delete_mode": DeleteMode.NO_TRASH}
    first = s3_ingest.run(**settings)
    assert first.state == "done", s3_ingest.ingest.failures()
    assert first.counters["files_synced"] == 14
    # root "data/" + five pages of "many/" = 6 SCAN tasks, each page with a FILES task
    assert first.counters["tasks_done"] == 6 + 5

    gone = {names[1], names[7], names[13]}  # on the first, a middle and the last page
    for name in gone:
        s3_ingest.delete(name)
    second = s3_ingest.run(**settings)
    assert second.state == "done", s3_ingest.ingest.failures()
    assert set(s3_ingest.ingest.objects()) == set(names) - gone  # nothing of the other pages
    assert second.counters["files_deleted"] == 3
    assert second.counters["files_unchanged"] == 11

    config = s3_ingest.ingest.config(source_path="", s3=s3_ingest.source, **settings)
    cache = s3_ingest.ingest.cache.entries(cache_generation(config), ["many"])[0]
    assert set(cache) == {n.split("/")[1] for n in names} - {n.split("/")[1] for n in gone}
    assert seen_keys(s3_ingest) == []  # the listing book of every prefix is gone with the run


def test_do_not_delete_keeps_irods_but_still_prunes_the_cache(s3_ingest: S3Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    tune_transfers(monkeypatch, page_size=2)
    for i in range(5):
        s3_ingest.put(f"d/o{i}", b"o")
    assert s3_ingest.run(operation=Operation.PUT_SYNC).state == "done"
    s3_ingest.delete("d/o0")
    s3_ingest.delete("d/o4")
    status = s3_ingest.run(operation=Operation.PUT_SYNC)
    assert status.state == "done", s3_ingest.ingest.failures()
    assert status.counters["files_deleted"] == 0
    assert len(s3_ingest.ingest.objects()) == 5  # DoNotDelete: iRODS keeps them
    config = s3_ingest.ingest.config(source_path="", s3=s3_ingest.source, operation=Operation.PUT_SYNC)
    assert set(s3_ingest.ingest.cache.entries(cache_generation(config), ["d"])[0]) == {"o1", "o2", "o3"}

    s3_ingest.put("d/o0", b"o")  # back again: synced again (its cache entry was dropped), not taken as unchanged
    again = s3_ingest.run(operation=Operation.PUT_SYNC)
    assert again.counters["files_synced"] == 1 and again.counters["files_unchanged"] == 3


def test_excluded_objects_are_not_deleted(s3_ingest: S3Ingest) -> None:
    s3_ingest.put("a.txt", b"a")
    s3_ingest.put("b.tmp", b"b")
    s3_ingest.put("skip/c.txt", b"c")
    settings: dict[str, Any] = {"operation": Operation.PUT_SYNC, "delete_mode": DeleteMode.NO_TRASH}
    assert s3_ingest.run(**settings).state == "done"
    status = s3_ingest.run(exclude_names=(r".*\.tmp",), exclude_directories=("skip",), **settings)
    assert status.state == "done", s3_ingest.ingest.failures()
    assert status.counters["files_deleted"] == 0
    assert set(s3_ingest.ingest.objects()) == {"a.txt", "b.tmp", "skip/c.txt"}


def test_an_empty_source_listing_deletes_nothing_and_fails_the_run(s3_ingest: S3Ingest) -> None:
    s3_ingest.put("a.txt", b"a")
    s3_ingest.put("s/b.txt", b"b")
    settings: dict[str, Any] = {"operation": Operation.REGISTER_SYNC, "delete_mode": DeleteMode.UNREGISTER}
    assert s3_ingest.run(**settings).state == "done"
    s3_ingest.prefix = "dta"  # a mistyped prefix lists nothing, exactly like an emptied bucket
    status = s3_ingest.run(**settings)
    assert status.state == "failed"
    assert "lists no objects" in status.error and "nothing was deleted" in status.error
    assert status.counters["files_deleted"] == 0
    assert set(s3_ingest.ingest.objects()) == {"a.txt", "s/b.txt"}
