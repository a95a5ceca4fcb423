"""Flat directories against the iRODS test server: no per-directory quadratic cost.

A FILES task asks iRODS about its own names only (one bounded GenQuery per batch, never a
listing of the whole collection), names GenQuery cannot quote in a list are asked about one
by one, and a directory listed in pages is judged for deletions against every page's names.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from irods_ingest.config import DeleteMode, Operation
from irods_ingest.irods_io.catalog import IrodsCatalog
from irods_ingest.irods_io.lookup import children_named
from irods_ingest_testkit.irods_server import IrodsTestServer
from testsupport.ingest import Ingest

pytestmark = [pytest.mark.redis, pytest.mark.irods]

GEN_QUERY = 702


def flat(directory: Path, count: int, prefix: str = "f") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (directory / f"{prefix}{i:05d}.dat").write_bytes(b"x" * (i % 7))


def test_a_files_task_queries_only_its_own_names(ingest: Ingest, irods_test_server: IrodsTestServer) -> None:
    """GenQueries per batch do not grow with the directory: 2 per batch on a first sync (its
    names as objects, the names that are none as collections), 1 when they all exist."""
    per_batch = {}
    for count in (300, 1_500):
        ingest.source = ingest.source.parent / f"src{count}"
        flat(ingest.source, count)
        irods_test_server.reset_counts()
        status = ingest.run(operation=Operation.REGISTER_SYNC, files_per_task=50, target_collection=f"{ingest.target}/{count}")
        assert status.state == "done" and status.counters["files_synced"] == count, status
        per_batch[count] = irods_test_server.api_counts().get(GEN_QUERY, 0) / (count / 50)
        irods_test_server.reset_counts()
        again = ingest.run(operation=Operation.REGISTER_SYNC, files_per_task=50, ignore_cache=True,
                           target_collection=f"{ingest.target}/{count}")
        assert again.counters["files_unchanged"] == count and again.counters["files_failed"] == 0, again
        assert irods_test_server.api_counts().get(GEN_QUERY, 0) <= count / 50 + 4  # one per batch + the directory's
    # A whole-collection listing per batch made this grow with the directory (its pages of rows)
    assert per_batch[1_500] <= 2.2 and per_batch[300] <= 2.4, per_batch


def test_names_genquery_cannot_quote_in_a_list_are_asked_about_alone(ingest: Ingest) -> None:
    flat(ingest.source, 120)
    for name in ("it's.dat", "a'b'c.dat", "quote'd dir.dat", "plain.dat"):
        ingest.write(name, b"q")
    ingest.session.collections.create(f"{ingest.target}/quote'd dir.dat")  # a collection where a file wants to go
    first = ingest.run(operation=Operation.REGISTER_SYNC, files_per_task=50)
    assert first.counters["files_synced"] == 123 and first.counters["files_failed"] == 1, first
    reasons = {Path(f["path"]).name: f["reason"] for f in ingest.failures()}
    assert "onto collection" in reasons["quote'd dir.dat"]
    objects = ingest.objects()
    assert {"it's.dat", "a'b'c.dat", "plain.dat"} <= set(objects)
    # every existing object, quoted or not, is found again by its batch's lookup
    again = ingest.run(operation=Operation.REGISTER_SYNC, files_per_task=50, ignore_cache=True)
    assert (again.counters["files_unchanged"], again.counters["files_synced"]) == (123, 0), again


def test_children_named_returns_only_the_names_asked_about(ingest: Ingest) -> None:
    session = ingest.session
    collection = f"{ingest.target}/lookup"
    session.collections.create(f"{collection}/sub one")
    session.collections.create(f"{collection}/sub'q")
    for name in ("a.dat", "b.dat", "it's.dat", "other.dat"):
        session.data_objects.create(f"{collection}/{name}")
    catalog = IrodsCatalog(session)
    found = children_named(catalog, collection, ["a.dat", "it's.dat", "sub one", "sub'q", "missing.dat", "a.dat"])
    assert set(found.objects) == {"a.dat", "it's.dat"}
    assert found.subcollections == {"sub one", "sub'q"}
    assert all(len(info.replicas) == 1 and info.replicas[0].path for info in found.objects.values())
    assert catalog.object_info(f"{collection}/it's.dat") is not None
    assert catalog.object_info(f"{collection}/nope.dat") is None


def test_a_paged_directory_deletes_exactly_what_left_it(ingest: Ingest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRODS_INGEST_SCAN_PAGE_ENTRIES", "400")
    flat(ingest.source, 2_000)
    ingest.write("gone/x.dat", b"x")
    ingest.write("kept/y.dat", b"y")
    settings = {"operation": Operation.REGISTER_SYNC, "delete_mode": DeleteMode.UNREGISTER, "files_per_task": 50}
    first = ingest.run(**settings)
    assert first.state == "done" and first.counters["files_synced"] == 2_002, (first, ingest.failures()[:3])
    removed = [f"f{i:05d}.dat" for i in range(7, 2_000, 45)]
    for name in removed:
        (ingest.source / name).unlink()
    (ingest.source / "gone" / "x.dat").unlink()
    (ingest.source / "gone").rmdir()
    flat(ingest.source, 25, prefix="new")
    status = ingest.run(**settings)
    assert status.state == "done", (status, ingest.failures()[:3])
    c = status.counters
    assert (c["files_deleted"], c["collections_deleted"]) == (len(removed) + 1, 1), c
    assert (c["files_synced"], c["files_unchanged"]) == (25, 2_000 - len(removed) + 1), c
    expected = {p.relative_to(ingest.source).as_posix() for p in ingest.source.rglob("*") if p.is_file()}
    assert set(ingest.objects()) == expected
    assert os.path.exists(ingest.source / "kept" / "y.dat")
