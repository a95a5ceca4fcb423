"""Collections and AVU metadata through python-irodsclient."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.irods


def test_create_with_parents_exists_and_subcollections(admin: Any, coll: str) -> None:
    created = admin.collections.create(f"{coll}/a/b/c")
    assert created.path == f"{coll}/a/b/c"
    assert created.owner_name == admin.username
    assert admin.collections.exists(f"{coll}/a/b")
    assert not admin.collections.exists(f"{coll}/nope")
    assert [c.path for c in admin.collections.get(coll).subcollections] == [f"{coll}/a"]


def test_create_without_recursion_needs_parent(admin: Any, coll: str) -> None:
    from irods.exception import CAT_UNKNOWN_COLLECTION, CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME

    with pytest.raises(CAT_UNKNOWN_COLLECTION):
        admin.collections.create(f"{coll}/x/y", recurse=False)
    admin.collections.create(f"{coll}/x", recurse=False)
    with pytest.raises(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME):
        admin.collections.create(f"{coll}/x", recurse=False)
    admin.collections.create(f"{coll}/x")  # -p semantics: an existing collection is fine


def test_rename_moves_subtree_and_objects(admin: Any, coll: str) -> None:
    inner = admin.collections.create(f"{coll}/src/inner")
    with admin.data_objects.open(f"{coll}/src/inner/f.txt", "w") as f:
        f.write(b"payload")
    data_id = admin.data_objects.get(f"{coll}/src/inner/f.txt").id
    admin.collections.move(f"{coll}/src", f"{coll}/dst")
    assert not admin.collections.exists(f"{coll}/src")
    moved = admin.collections.get(f"{coll}/dst/inner")
    assert (moved.id, [c.path for c in admin.collections.get(f"{coll}/dst").subcollections]) == (
        inner.id, [f"{coll}/dst/inner"])
    obj = admin.data_objects.get(f"{coll}/dst/inner/f.txt")
    assert (obj.id, obj.collection.path) == (data_id, f"{coll}/dst/inner")
    with obj.open("r") as f:
        assert f.read() == b"payload"


def test_remove_not_empty_recursive_trash_and_unregister(admin: Any, coll: str, irods_env: Any) -> None:
    from irods.exception import CAT_COLLECTION_NOT_EMPTY

    admin.collections.create(f"{coll}/full/sub")
    with admin.data_objects.open(f"{coll}/full/sub/f.txt", "w") as f:
        f.write(b"x")
    with pytest.raises(CAT_COLLECTION_NOT_EMPTY):
        admin.collections.remove(f"{coll}/full", recurse=False)
    admin.collections.remove(f"{coll}/full")
    assert not admin.collections.exists(f"{coll}/full")
    rel = coll[len(f"/{irods_env.zone}/home/") :]
    trashed = f"/{irods_env.zone}/trash/home/{rel}/full"
    assert admin.data_objects.exists(f"{trashed}/sub/f.txt")
    admin.collections.remove(f"/{irods_env.zone}/trash/home/{rel}", recurse=True, force=True)
    admin.collections.create(f"{coll}/unreg")
    with admin.data_objects.open(f"{coll}/unreg/g.txt", "w") as f:
        f.write(b"kept")
    phys = admin.data_objects.get(f"{coll}/unreg/g.txt").replicas[0].path
    admin.collections.unregister(f"{coll}/unreg")
    assert not admin.collections.exists(f"{coll}/unreg")
    if not irods_env.real:
        with open(phys, "rb") as fh:
            assert fh.read() == b"kept"


def test_removing_an_empty_collection_without_recursion_bypasses_the_trash(admin: Any, coll: str, irods_env: Any) -> None:
    """rsRmColl without RECURSIVE_OPR__KW calls _rsRmColl -> svrUnregColl: the empty
    collection's catalog entry goes, trash or no trash; only a recursive removal moves a
    collection into the trash (rsMvCollToTrash)."""
    from irods.exception import CAT_COLLECTION_NOT_EMPTY

    rel = coll[len(f"/{irods_env.zone}/home/{irods_env.user}/") :]
    trash = f"/{irods_env.zone}/trash/home/{irods_env.user}/{rel}"
    admin.collections.create(f"{coll}/empty")
    admin.collections.create(f"{coll}/unreg")
    admin.collections.create(f"{coll}/kept/inner")
    admin.collections.remove(f"{coll}/empty", recurse=False, force=False)
    admin.collections.unregister(f"{coll}/unreg", recurse=False)
    with pytest.raises(CAT_COLLECTION_NOT_EMPTY):
        admin.collections.remove(f"{coll}/kept", recurse=False, force=False)
    assert not admin.collections.exists(f"{coll}/empty") and not admin.collections.exists(f"{coll}/unreg")
    assert admin.collections.exists(f"{coll}/kept/inner")
    assert not admin.collections.exists(f"{trash}/empty") and not admin.collections.exists(f"{trash}/unreg")
    admin.collections.remove(f"{coll}/kept")  # recursive: into the trash, as before
    assert admin.collections.exists(f"{trash}/kept/inner")
    admin.collections.remove(trash, recurse=True, force=True)


def test_trash_paths_follow_rs_mk_trash_path(admin: Any, coll: str, irods_env: Any) -> None:
    """``/zone/trash/home/<client user>/`` + the path below the zone, without ``home/`` and
    without the client's own ``<user>/`` after it (another user's home keeps its name)."""
    zone, user = irods_env.zone, irods_env.user
    public = f"/{zone}/home/public/trash_path_{coll.rsplit('/', 1)[1]}"
    admin.collections.create(public)
    try:
        for logical in (f"{coll}/own.txt", f"{public}/other.txt"):
            with admin.data_objects.open(logical, "w") as f:
                f.write(b"t")
            admin.data_objects.unlink(logical)
        own = f"/{zone}/trash/home/{user}/{coll[len(f'/{zone}/home/{user}/') :]}/own.txt"
        other = f"/{zone}/trash/home/{user}/{public[len(f'/{zone}/home/') :]}/other.txt"
        assert admin.data_objects.exists(own) and admin.data_objects.exists(other)
    finally:
        admin.collections.remove(public, recurse=True, force=True)
        for trashed in (f"/{zone}/trash/home/{user}/{coll[len(f'/{zone}/home/{user}/') :]}",
                        f"/{zone}/trash/home/{user}/public"):
            if admin.collections.exists(trashed):
                admin.collections.remove(trashed, recurse=True, force=True)


def test_avus_on_objects_and_collections(admin: Any, coll: str) -> None:
    from irods.exception import CAT_SUCCESS_BUT_WITH_NO_INFO, CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME
    from irods.meta import iRODSMeta

    obj = admin.data_objects.create(f"{coll}/meta.txt")
    obj.metadata.add("run", "42", "s")
    obj.metadata.add("kind", "raw")
    with pytest.raises(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME):
        obj.metadata.add("kind", "raw")
    assert sorted((m.name, m.value, m.units) for m in admin.data_objects.get(obj.path).metadata.items()) == [
        ("kind", "raw", None),
        ("run", "42", "s"),
    ]
    obj.metadata.set("run", "43")
    assert [(m.value, m.units) for m in admin.data_objects.get(obj.path).metadata.get_all("run")] == [("43", None)]
    obj.metadata.remove("kind", "raw")
    with pytest.raises(CAT_SUCCESS_BUT_WITH_NO_INFO):
        obj.metadata.remove("kind", "raw")
    c = admin.collections.get(coll)
    c.metadata.add(iRODSMeta("project", "p1"))
    assert [(m.name, m.value) for m in admin.collections.get(coll).metadata.items()] == [("project", "p1")]


def test_atomic_metadata_operations(admin: Any, coll: str) -> None:
    from irods.meta import AVUOperation, iRODSMeta

    obj = admin.data_objects.create(f"{coll}/atomic.txt")
    obj.metadata.add("old", "1")
    obj.metadata.apply_atomic_operations(
        AVUOperation(operation="remove", avu=iRODSMeta("old", "1")),
        AVUOperation(operation="add", avu=iRODSMeta("new", "2", "u")),
        AVUOperation(operation="add", avu=iRODSMeta("new", "3")),
    )
    assert sorted((m.name, m.value, m.units) for m in admin.data_objects.get(obj.path).metadata.items()) == [
        ("new", "2", "u"),
        ("new", "3", None),
    ]


def test_query_by_metadata(admin: Any, coll: str) -> None:
    from irods.column import Like
    from irods.models import Collection, DataObject, DataObjectMeta

    for i in range(3):
        admin.data_objects.create(f"{coll}/q{i}.txt").metadata.add("batch", f"b{i % 2}")
    rows = admin.query(DataObject.name, DataObjectMeta.value).filter(
        Collection.name == coll, DataObjectMeta.name == "batch", Like(DataObjectMeta.value, "b0%")
    )
    assert sorted((r[DataObject.name], r[DataObjectMeta.value]) for r in rows) == [
        ("q0.txt", "b0"), ("q2.txt", "b0")
    ]
