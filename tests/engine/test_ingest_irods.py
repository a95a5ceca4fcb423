"""Acceptance: whole jobs against a real redis-server and the iRODS test server (or a real iRODS).

Covers the incumbent's own cases (register / put / sync / append / replica with plain,
root and non-root resources; updates; hooks; exclusions; names; invalid targets) and the
cases it never tested.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from irods_ingest.config import DeleteMode, Operation
from irods_ingest_testkit.irods_server import DEFAULT_RESOURCE, LEAF_RESOURCES, MID_RESOURCE, ROOT_RESOURCE
from testsupport.ingest import Ingest, hooks_handler, read_hook_log

pytestmark = [pytest.mark.redis, pytest.mark.irods]


def tree(ingest: Ingest, count: int = 12) -> dict[str, bytes]:
    files = {}
    for i in range(count):
        rel = f"{'sub/' if i % 3 == 0 else ''}{'deep/er/' if i % 4 == 0 else ''}f{i}.txt"
        files[rel] = f"content of file {i}\n".encode() * (i + 1)
        ingest.write(rel, files[rel])
    return files


def assert_counts(status, **expected: int) -> None:  # type: ignore[no-untyped-def]
    actual = {k: status.counters[k] for k in expected}
    assert actual == expected, (status, actual)


# ---------------------------------------------------------------- register
def test_register_sync_registers_in_place_and_syncs_updates(ingest: Ingest) -> None:
    files = tree(ingest)
    status = ingest.run()
    assert status.state == "done", ingest.failures()
    assert_counts(status, files_discovered=12, files_synced=12, files_failed=0)
    objects = ingest.objects()
    assert set(objects) == set(files)
    for rel, data in files.items():
        obj = objects[rel]
        assert obj.size == len(data)
        assert obj.replicas[0].path == str(ingest.source / rel)  # registered in place, not copied
        assert obj.replicas[0].resource_name == DEFAULT_RESOURCE
        assert ingest.read(rel) == data
        assert int(obj.modify_time.timestamp()) == int((ingest.source / rel).stat().st_mtime)

    # unchanged re-scan: nothing to do, found through the change cache
    again = ingest.run()
    assert_counts(again, files_unchanged=12, files_synced=0)

    # an update: the size and mtime in the catalog follow the file
    ingest.write("f1.txt", b"grown " * 100)
    os.utime(ingest.source / "f1.txt", (1_700_000_000, 1_700_000_000))
    updated = ingest.run()
    assert_counts(updated, files_synced=1, files_unchanged=11)
    obj = ingest.session.data_objects.get(ingest.logical("f1.txt"))
    assert obj.size == 600 and int(obj.modify_time.timestamp()) == 1_700_000_000


def test_register_to_root_resource_of_a_hierarchy(ingest: Ingest) -> None:
    tree(ingest, 4)
    status = ingest.run(resource=ROOT_RESOURCE)
    assert status.state == "done", ingest.failures()
    for obj in ingest.objects().values():
        assert obj.replicas[0].resource_name in LEAF_RESOURCES
        assert obj.replicas[0].resc_hier.startswith(f"{ROOT_RESOURCE};{MID_RESOURCE};")


@pytest.mark.parametrize("resource", [MID_RESOURCE, LEAF_RESOURCES[0], "noSuchResc"])
def test_non_root_or_unknown_resource_fails_every_file_cleanly(ingest: Ingest, resource: str) -> None:
    tree(ingest, 3)
    status = ingest.run(resource=resource)
    assert status.state == "failed"
    assert_counts(status, files_failed=3, files_synced=0)
    reasons = {f["reason"] for f in ingest.failures()}
    assert all("iRODS error" in r for r in reasons), reasons
    assert ingest.objects() == {}


def test_register_as_replica_adds_a_second_replica(ingest: Ingest) -> None:
    files = tree(ingest, 5)
    assert ingest.run(operation=Operation.PUT).state == "done"
    status = ingest.run(operation=Operation.REGISTER_AS_REPLICA_SYNC, resource=ROOT_RESOURCE)
    assert status.state == "done", ingest.failures()
    assert_counts(status, files_synced=5)
    for rel, obj in ingest.objects().items():
        assert len(obj.replicas) == 2
        registered = [r for r in obj.replicas if r.resc_hier.startswith(ROOT_RESOURCE)]
        assert registered[0].path == str(ingest.source / rel)
        assert obj.size == len(files[rel])
    # a second run with nothing changed does not add more
    assert_counts(ingest.run(operation=Operation.REGISTER_AS_REPLICA_SYNC, resource=ROOT_RESOURCE), files_unchanged=5)


# ---------------------------------------------------------------- uploads
def test_put_uploads_bytes_and_never_overwrites(ingest: Ingest) -> None:
    files = tree(ingest, 6)
    status = ingest.run(operation=Operation.PUT, resource=ROOT_RESOURCE)
    assert status.state == "done", ingest.failures()
    assert_counts(status, files_synced=6, bytes_synced=sum(len(d) for d in files.values()))
    for rel, data in files.items():
        assert ingest.read(rel) == data
        replica = ingest.objects()[rel].replicas[0]
        assert replica.path != str(ingest.source / rel)  # a copy in the vault
    ingest.write("f1.txt", b"changed")
    status = ingest.run(operation=Operation.PUT)
    assert_counts(status, files_unchanged=6)  # Put leaves existing objects alone
    assert ingest.read("f1.txt") == files["f1.txt"]


def test_put_sync_overwrites_changed_files(ingest: Ingest) -> None:
    tree(ingest, 4)
    assert ingest.run(operation=Operation.PUT_SYNC).state == "done"
    ingest.write("f2.txt", b"rewritten")
    status = ingest.run(operation=Operation.PUT_SYNC)
    assert_counts(status, files_synced=1, files_unchanged=3)
    assert ingest.read("f2.txt") == b"rewritten"


def test_put_append_appends_only_the_new_bytes(ingest: Ingest) -> None:
    ingest.write("log.txt", b"line 1\n")
    assert ingest.run(operation=Operation.PUT_APPEND).state == "done"
    with (ingest.source / "log.txt").open("ab") as handle:
        handle.write(b"line 2\nline 3\n")
    status = ingest.run(operation=Operation.PUT_APPEND)
    assert_counts(status, files_synced=1)
    assert ingest.read("log.txt") == b"line 1\nline 2\nline 3\n"


def test_files_per_task_one_and_many_workers(ingest: Ingest) -> None:
    files = tree(ingest, 20)
    status = ingest.run(operation=Operation.PUT, files_per_task=1, workers=4)
    assert status.state == "done", ingest.failures()
    assert_counts(status, files_synced=20, files_failed=0)
    assert set(ingest.objects()) == set(files)


def test_initial_ingest_skips_existence_checks(ingest: Ingest) -> None:
    files = tree(ingest, 5)
    status = ingest.run(initial_ingest=True)
    assert status.state == "done"
    assert set(ingest.objects()) == set(files)


# ---------------------------------------------------------------- delete modes
@pytest.mark.parametrize(
    ("operation", "mode"),
    [(Operation.REGISTER_SYNC, DeleteMode.UNREGISTER), (Operation.PUT_SYNC, DeleteMode.TRASH), (Operation.PUT_SYNC, DeleteMode.NO_TRASH)],
)
def test_delete_modes_remove_what_left_the_source(ingest: Ingest, operation: Operation, mode: DeleteMode) -> None:
    tree(ingest, 6)
    ingest.write("gone/dir/x.txt", b"x")
    assert ingest.run(operation=operation, delete_mode=mode).state == "done"
    removed = ingest.source / "f2.txt"
    removed.unlink()
    for path in sorted((ingest.source / "gone").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (ingest.source / "gone").rmdir()
    status = ingest.run(operation=operation, delete_mode=mode)
    assert status.state == "done", ingest.failures()
    # f2.txt and gone/dir/x.txt, each deleted per the mode; then gone/dir and gone, emptied
    assert status.counters["files_deleted"] == 2
    assert status.counters["collections_deleted"] == 2
    assert "f2.txt" not in ingest.objects()
    assert not ingest.session.collections.exists(ingest.logical("gone"))
    # iRODS moves an unlinked object to the same path under /<zone>/trash
    trashed = ingest.logical("f2.txt").replace(f"/{ingest.env.zone}/home/", f"/{ingest.env.zone}/trash/home/", 1)
    assert ingest.session.data_objects.exists(trashed) == (mode is DeleteMode.TRASH)
    trashed_too = ingest.logical("gone/dir/x.txt").replace(f"/{ingest.env.zone}/home/", f"/{ingest.env.zone}/trash/home/", 1)
    assert ingest.session.data_objects.exists(trashed_too) == (mode is DeleteMode.TRASH)
    if mode is DeleteMode.UNREGISTER:
        assert not removed.exists()  # (it was removed from the source by the test itself)


def test_delete_never_touches_excluded_entries(ingest: Ingest) -> None:
    tree(ingest, 4)
    ingest.write("keep.tmp", b"t")
    assert ingest.run(operation=Operation.PUT_SYNC, delete_mode=DeleteMode.NO_TRASH).state == "done"
    status = ingest.run(operation=Operation.PUT_SYNC, delete_mode=DeleteMode.NO_TRASH, exclude_names=(r".*\.tmp",))
    assert status.counters["files_deleted"] == 0
    assert "keep.tmp" in ingest.objects()


# ---------------------------------------------------------------- filters and odd entries
def test_exclusions_and_special_files(ingest: Ingest) -> None:
    ingest.write("a.txt", b"a")
    ingest.write("b.tmp", b"b")
    ingest.write("cache/c.txt", b"c")
    ingest.write("private.txt", b"p").chmod(0o600)
    os.mkfifo(ingest.source / "fifo")
    os.symlink("missing-target", ingest.source / "broken")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(ingest.source / "sock"))
    try:
        status = ingest.run(operation=Operation.PUT, exclude_names=(r".*\.tmp",), exclude_directories=("cache",))
    finally:
        sock.close()
    assert status.state == "done", ingest.failures()
    assert set(ingest.objects()) == {"a.txt", "private.txt"}
    assert_counts(status, files_synced=2, files_excluded=1, files_skipped=3)
    reasons = {Path(f["path"]).name: f["reason"] for f in ingest.failures()}
    assert "pipe" in reasons["fifo"] and "broken" in reasons["broken"] and "socket" in reasons["sock"]


def test_unicode_and_undecodable_names(ingest: Ingest) -> None:
    ingest.write("ünïcødé €.txt", b"u")
    raw = os.fsdecode(b"latin\xe9.txt")
    (ingest.source / raw).write_bytes(b"l")
    status = ingest.run(operation=Operation.PUT)
    assert status.state == "done", ingest.failures()
    objects = ingest.objects()
    assert "ünïcødé €.txt" in objects
    mangled = [name for name in objects if name.startswith("irods_UnicodeEncodeError_")]
    assert len(mangled) == 1
    avus = {m.name: m.value for m in objects[mangled[0]].metadata.items()}
    assert os.fsdecode(__import__("base64").b64decode(avus["irods::automated_ingest::UnicodeEncodeError"])).endswith(raw)


def test_character_map_handler_renames_with_provenance(ingest: Ingest) -> None:
    ingest.write("dir one/file#1", b"x")
    handler = (
        "import re\nfrom irods_capability_automated_ingest.core import Core\n"
        "from irods_capability_automated_ingest.utils import Operation\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n    def character_map():\n        return {re.compile('[^a-zA-Z0-9]'): '_'}\n"
        "    @staticmethod\n    def operation(session, meta, **options):\n        return Operation.PUT\n"
    )
    status = ingest.run(handler=handler)
    assert status.state == "done", ingest.failures()
    assert set(ingest.objects()) == {"dir_one_Uc/file_1_5h"}
    avus = {m.name for m in ingest.objects()["dir_one_Uc/file_1_5h"].metadata.items()}
    assert "irods::automated_ingest::character_map" in avus


# ---------------------------------------------------------------- handlers
def test_hooks_fire_once_per_event_and_job_hooks_once(ingest: Ingest, tmp_path: Path) -> None:
    tree(ingest, 6)
    log = tmp_path / "hooks.log"
    status = ingest.run(handler=hooks_handler(log, operation="PUT_SYNC"))
    assert status.state == "done", ingest.failures()
    events = read_hook_log(log)
    assert events.count("pre_job") == 1 and events.count("post_job") == 1
    assert events.count("pre_data_obj_create") == 6 and events.count("post_data_obj_create") == 6
    collections = {"", "sub", "deep", "deep/er", "sub/deep", "sub/deep/er"} & {
        str(p.relative_to(ingest.source)) if p != ingest.source else "" for p in [ingest.source, *ingest.source.rglob("*")] if p.is_dir()
    }
    assert events.count("post_coll_create") == len(collections)
    assert events.count("pre_coll_modify") == 0
    ingest.write("f1.txt", b"modified!")
    log.unlink()
    assert ingest.run(handler=hooks_handler(log, operation="PUT_SYNC")).state == "done"
    events = read_hook_log(log)
    assert events.count("pre_data_obj_modify") == 1 and events.count("post_data_obj_create") == 0
    # As the incumbent: coll_modify only for a directory that changed since it was last synced
    # (rewriting a file in place changes no directory).
    assert events.count("pre_coll_modify") == 0 == events.count("post_coll_modify")
    assert events.count("pre_coll_create") == 0
    ingest.write("sub/new.txt", b"new")  # sub changed: its collection, and only it, fires coll_modify
    log.unlink()
    assert ingest.run(handler=hooks_handler(log, operation="PUT_SYNC")).state == "done"
    events = read_hook_log(log)
    assert events.count("post_data_obj_create") == 1 and events.count("pre_coll_create") == 0
    assert events.count("pre_coll_modify") == 1 == events.count("post_coll_modify")


def test_job_hooks_get_the_event_handler_class_as_the_incumbent_passed_it(ingest: Ingest, tmp_path: Path) -> None:
    """The incumbent calls ``module.pre_job(module, logger, meta)`` with its get_module(), which
    is the ``event_handler`` class (the data-object and collection hooks get the module)."""
    tree(ingest, 1)
    log = tmp_path / "first-arguments.log"
    handler = (
        "from irods_capability_automated_ingest.core import Core\n"
        f"LOG = {str(log)!r}\n"
        "def _note(hook, first):\n"
        "    with open(LOG, 'a') as handle:\n"
        "        handle.write(f'{hook} {type(first).__name__} {getattr(first, \"__name__\", \"\")}\\n')\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n"
        "    def pre_job(hdlr_mod, logger, meta):\n"
        "        _note('pre_job', hdlr_mod)\n"
        "    @staticmethod\n"
        "    def post_job(hdlr_mod, logger, meta):\n"
        "        _note('post_job', hdlr_mod)\n"
        "    @staticmethod\n"
        "    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):\n"
        "        _note('pre_data_obj_create', hdlr_mod)\n"
    )
    assert ingest.run(handler=handler).state == "done", ingest.failures()
    lines = sorted(log.read_text().splitlines())
    assert [line.split(" ", 2)[:2] for line in lines] == [["post_job", "type"], ["pre_data_obj_create", "module"],
                                                          ["pre_job", "type"]]
    assert lines[0].endswith(" event_handler") and lines[2].endswith(" event_handler")


def test_hook_raising_fails_only_its_file_with_traceback(ingest: Ingest) -> None:
    tree(ingest, 5)
    handler = (
        "from irods_capability_automated_ingest.core import Core\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n"
        "    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):\n"
        "        if meta['target'].endswith('/f2.txt'):\n"
        "            raise ValueError('refusing f2')\n"
    )
    status = ingest.run(handler=handler)
    assert status.state == "failed"
    assert_counts(status, files_synced=4, files_failed=1)
    failure = next(f for f in ingest.failures() if f["path"].endswith("f2.txt"))
    assert "refusing f2" in failure["reason"] and "pre_data_obj_create" in failure["traceback"]
    assert "f2.txt" not in ingest.objects() and len(ingest.objects()) == 4


def test_as_user_acts_as_the_named_user(ingest: Ingest, irods_session) -> None:  # type: ignore[no-untyped-def]
    from irods.exception import UserDoesNotExist

    admin = irods_session()
    try:
        admin.users.get("alice")
    except UserDoesNotExist:
        admin.users.create("alice", "rodsuser")
    ingest.target = f"/{ingest.env.zone}/home/alice/ingest_{ingest.job}"
    ingest.write("a.txt", b"a")
    handler = (
        "from irods_capability_automated_ingest.core import Core\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n    def as_user(meta, **options):\n        return 'tempZone', 'alice'\n"
    )
    status = ingest.run(handler=handler, operation=Operation.PUT)
    assert status.state == "done", ingest.failures()
    obj = admin.data_objects.get(f"{ingest.target}/a.txt")
    assert obj.owner_name == "alice"
    assert admin.collections.get(ingest.target).owner_name == "alice"


def test_target_path_registers_another_physical_path(ingest: Ingest, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    ingest.write("a.txt", b"abc")
    (mirror / "a.txt").write_bytes(b"abc")
    handler = (
        "import os\nfrom irods_capability_automated_ingest.core import Core\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n    def target_path(session, meta, **options):\n"
        f"        return os.path.join({str(mirror)!r}, os.path.basename(meta['path']))\n"
    )
    status = ingest.run(handler=handler)
    assert status.state == "done", ingest.failures()
    assert ingest.objects()["a.txt"].replicas[0].path == str(mirror / "a.txt")


# ---------------------------------------------------------------- bad targets
@pytest.mark.parametrize("collection", ["/invalidZone/home/rods/x", "/tempZoneMore/home/rods/x", "/tempZ/home/rods/x"])
def test_foreign_or_invalid_zone_fails_cleanly(ingest: Ingest, collection: str) -> None:
    tree(ingest, 2)
    ingest.target = collection
    status = ingest.run()
    assert status.state == "failed"
    assert ingest.failures() and all("iRODS error" in f["reason"] for f in ingest.failures())


def test_source_that_does_not_exist_fails_the_run(ingest: Ingest) -> None:
    ingest.source = ingest.source / "missing"
    status = ingest.run()
    assert status.state == "failed" and "does not exist" in status.error


def test_empty_source_completes(ingest: Ingest) -> None:
    status = ingest.run()
    assert status.state == "done"
    assert_counts(status, files_discovered=0, files_synced=0)
    assert ingest.session.collections.exists(ingest.target)


def test_declarative_metadata_templates(ingest: Ingest) -> None:
    ingest.write("sub/a.txt", b"a")
    status = ingest.run(operation=Operation.PUT, metadata=(("ingest_job", "{job}", ""), ("source", "{relativePath}", "path")))
    assert status.state == "done", ingest.failures()
    avus = {m.name: (m.value, m.units) for m in ingest.objects()["sub/a.txt"].metadata.items()}
    assert avus["ingest_job"][0] == ingest.job
    assert avus["source"] == ("sub/a.txt", "path")
