"""Data objects through python-irodsclient: put/get, replicas, checksums, register, trash, trim."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.irods


def sha2(data: bytes) -> str:
    return "sha2:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def write_file(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_put_single_buffer_reads_back_exactly(admin: Any, coll: str, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    admin.data_objects.put(write_file(tmp_path / "f.bin", data), f"{coll}/f.bin")
    obj = admin.data_objects.get(f"{coll}/f.bin")
    assert obj.size == len(data)
    vault = admin.resources.get("demoResc").vault_path  # files go to <vault>/<path below /zone>
    assert [(r.number, r.status, r.resource_name, r.resc_hier, r.path) for r in obj.replicas] == [
        (0, "1", "demoResc", "demoResc", f"{vault}/{coll.split('/', 2)[2]}/f.bin")
    ]
    assert obj.replicas[0].checksum in ("", None)
    with obj.open("r") as f:
        assert f.read() == data
    assert obj.chksum() == sha2(data)
    assert admin.data_objects.get(f"{coll}/f.bin").checksum == sha2(data)


def test_put_into_collection_uses_file_name_and_refuses_overwrite(admin: Any, coll: str, tmp_path: Path) -> None:
    import irods.keywords as kw
    from irods.exception import OVERWRITE_WITHOUT_FORCE_FLAG

    src = write_file(tmp_path / "name.txt", b"one")
    admin.data_objects.put(src, coll + "/")
    assert admin.data_objects.get(f"{coll}/name.txt").size == 3
    with pytest.raises(OVERWRITE_WITHOUT_FORCE_FLAG):  # PRC 3 forces by default; force=False checks
        admin.data_objects.put(src, f"{coll}/name.txt", **{kw.FORCE_FLAG_KW: False})
    write_file(tmp_path / "name.txt", b"second")
    admin.data_objects.put(src, f"{coll}/name.txt")
    with admin.data_objects.open(f"{coll}/name.txt", "r") as f:
        assert f.read() == b"second"


def test_put_with_checksum_and_metadata_keywords(admin: Any, coll: str, tmp_path: Path) -> None:
    import irods.keywords as kw

    data = b"checksum me"
    admin.data_objects.put(write_file(tmp_path / "c.txt", data), f"{coll}/c.txt", **{kw.REG_CHKSUM_KW: ""})
    obj = admin.data_objects.get(f"{coll}/c.txt")
    assert obj.replicas[0].checksum == sha2(data)


def test_parallel_put_and_get_above_32_mib(admin: Any, coll: str, tmp_path: Path, irods_server: Any) -> None:
    data = os.urandom(40 * 1024 * 1024 + 123)
    src = write_file(tmp_path / "big.bin", data)
    if irods_server is not None:
        irods_server.reset_counts()
    admin.data_objects.put(src, f"{coll}/big.bin", num_threads=2)
    obj = admin.data_objects.get(f"{coll}/big.bin")
    assert obj.size == len(data)
    assert [r.status for r in obj.replicas] == ["1"]
    if irods_server is not None:
        counts = irods_server.api_counts()
        assert counts.get(20000, 0) >= 1  # GET_FILE_DESCRIPTOR_INFO: the replica token
        assert counts.get(20004, 0) >= 1  # REPLICA_CLOSE from the extra thread
        assert hashlib.sha256(Path(obj.replicas[0].path).read_bytes()).digest() == hashlib.sha256(data).digest()
    out = tmp_path / "big.out"
    admin.data_objects.get(f"{coll}/big.bin", str(out), num_threads=2)
    assert out.read_bytes() == data


def test_append_and_seek(admin: Any, coll: str) -> None:
    path = f"{coll}/append.txt"
    with admin.data_objects.open(path, "w") as f:
        f.write(b"hello")
    with admin.data_objects.open(path, "a") as f:
        f.write(b" world")
    with admin.data_objects.open(path, "r+") as f:
        f.seek(6)
        assert f.read(5) == b"world"
    assert admin.data_objects.get(path).size == 11


def test_create_then_write_updates_size_and_mtime(admin: Any, coll: str) -> None:
    obj = admin.data_objects.create(f"{coll}/created.txt")
    assert obj.size == 0
    assert obj.replicas[0].status == "1"
    with obj.open("w") as f:
        f.write(b"abc")
    again = admin.data_objects.get(obj.path)
    assert again.size == 3
    assert again.modify_time >= obj.modify_time


def test_write_to_second_resource_makes_first_replica_stale(admin: Any, coll: str, hierarchy: Any) -> None:
    import irods.keywords as kw

    path = f"{coll}/two.txt"
    with admin.data_objects.open(path, "w", **{kw.DEST_RESC_NAME_KW: "demoResc"}) as f:
        f.write(b"first")
    with admin.data_objects.open(path, "a", **{kw.DEST_RESC_NAME_KW: "rootResc"}) as f:
        f.write(b"z")
    obj = admin.data_objects.get(path)
    statuses = {r.resc_hier.split(";")[0]: r.status for r in obj.replicas}
    assert statuses == {"demoResc": "0", "rootResc": "1"}
    assert [r.number for r in obj.replicas] == [0, 1]
    leaf = obj.replicas[1].resc_hier.split(";")
    assert leaf[:2] == ["rootResc", "midResc"] and leaf[2] in ("leaf1Resc", "leaf2Resc")
    assert obj.replicas[1].resource_name == leaf[2]


def test_put_to_hierarchy_root_and_errors_for_child_or_unknown(admin: Any, coll: str, tmp_path: Path,
                                                              hierarchy: Any) -> None:
    import irods.keywords as kw
    from irods.exception import DIRECT_CHILD_ACCESS, SYS_RESC_DOES_NOT_EXIST

    src = write_file(tmp_path / "h.txt", b"hier")
    admin.data_objects.put(src, f"{coll}/h.txt", **{kw.DEST_RESC_NAME_KW: "rootResc"})
    replica = admin.data_objects.get(f"{coll}/h.txt").replicas[0]
    assert replica.resc_hier in ("rootResc;midResc;leaf1Resc", "rootResc;midResc;leaf2Resc")
    for child in ("leaf1Resc", "midResc"):  # a leaf, and a non-leaf that is not a root
        with pytest.raises(DIRECT_CHILD_ACCESS):
            admin.data_objects.put(src, f"{coll}/child.txt", **{kw.DEST_RESC_NAME_KW: child})
    with pytest.raises(SYS_RESC_DOES_NOT_EXIST):
        admin.data_objects.put(src, f"{coll}/nope.txt", **{kw.DEST_RESC_NAME_KW: "noSuchResc"})
    assert not admin.data_objects.exists(f"{coll}/child.txt")
    assert not admin.data_objects.exists(f"{coll}/nope.txt")


def test_full_hierarchy_keyword_picks_the_leaf_and_a_partial_one_is_refused(admin: Any, coll: str,
                                                                           hierarchy: Any) -> None:
    import irods.keywords as kw
    from irods.exception import HIERARCHY_ERROR

    path = f"{coll}/leaf2.txt"
    with admin.data_objects.open(path, "w", **{kw.RESC_HIER_STR_KW: "rootResc;midResc;leaf2Resc"}) as f:
        f.write(b"leaf two")
    replica = admin.data_objects.get(path).replicas[0]
    assert (replica.resource_name, replica.resc_hier) == ("leaf2Resc", "rootResc;midResc;leaf2Resc")
    with pytest.raises(HIERARCHY_ERROR):
        admin.data_objects.open(f"{coll}/partial.txt", "w", **{kw.RESC_HIER_STR_KW: "rootResc;leaf1Resc"})


def test_register_in_place_and_as_replica(admin: Any, coll: str, tmp_path: Path, hierarchy: Any) -> None:
    data = b"registered bytes"
    src = write_file(tmp_path / "reg.txt", data)
    os.utime(src, (1_700_000_000, 1_700_000_000))
    path = f"{coll}/reg.txt"
    admin.data_objects.register(src, path, regChksum="")
    obj = admin.data_objects.get(path)
    assert (obj.size, obj.replicas[0].path, obj.replicas[0].status) == (len(data), src, "1")
    assert obj.replicas[0].checksum == sha2(data)
    assert int(obj.modify_time.timestamp()) == 1_700_000_000
    copy = write_file(tmp_path / "copy.txt", data)
    admin.data_objects.register(copy, path, rescName="rootResc", regRepl="")
    obj = admin.data_objects.get(path)
    assert [(r.number, r.status, r.path) for r in obj.replicas] == [(0, "1", src), (1, "1", copy)]
    assert obj.replicas[1].resc_hier.startswith("rootResc;midResc;")


def test_register_with_size_and_mtime_and_refuse_duplicate(admin: Any, coll: str, tmp_path: Path) -> None:
    from irods.exception import OVERWRITE_WITHOUT_FORCE_FLAG

    src = write_file(tmp_path / "s3like.txt", b"x")
    admin.data_objects.register(src, f"{coll}/s.txt", dataSize="12345", dataModify="1600000000")
    obj = admin.data_objects.get(f"{coll}/s.txt")
    assert obj.size == 12345
    assert int(obj.modify_time.timestamp()) == 1_600_000_000
    with pytest.raises(OVERWRITE_WITHOUT_FORCE_FLAG):
        admin.data_objects.register(src, f"{coll}/s.txt")


def test_unlink_moves_to_trash_and_force_deletes(admin: Any, coll: str, irods_env: Any, tmp_path: Path) -> None:
    path = f"{coll}/gone.txt"
    with admin.data_objects.open(path, "w") as f:
        f.write(b"trash me")
    admin.data_objects.unlink(path)
    assert not admin.data_objects.exists(path)
    rel = path[len(f"/{irods_env.zone}/home/") :]
    trashed = f"/{irods_env.zone}/trash/home/{rel}"
    obj = admin.data_objects.get(trashed)
    with obj.open("r") as f:
        assert f.read() == b"trash me"
    # a second object of the same name gets a suffixed trash name
    with admin.data_objects.open(path, "w") as f:
        f.write(b"again")
    admin.data_objects.unlink(path)
    names = [o.name for o in admin.collections.get(trashed.rsplit("/", 1)[0]).data_objects]
    assert "gone.txt" in names and any(n.startswith("gone.txt.") for n in names)
    admin.data_objects.unlink(trashed, force=True)
    assert not admin.data_objects.exists(trashed)
    forced = f"{coll}/forced.txt"
    src = write_file(tmp_path / "forced.txt", b"f")
    admin.data_objects.put(src, forced)
    phys = admin.data_objects.get(forced).replicas[0].path
    admin.data_objects.unlink(forced, force=True)
    assert not admin.data_objects.exists(forced)
    if not irods_env.real:
        assert not os.path.exists(phys)
    admin.collections.remove(f"/{irods_env.zone}/trash/home/{rel.rsplit('/', 1)[0]}", recurse=True, force=True)


def test_unregister_keeps_file_and_trim_removes_one_replica(admin: Any, coll: str, tmp_path: Path,
                                                           hierarchy: Any) -> None:
    src = write_file(tmp_path / "u.txt", b"keep")
    path = f"{coll}/u.txt"
    admin.data_objects.register(src, path)
    admin.data_objects.register(write_file(tmp_path / "u2.txt", b"keep"), path, rescName="rootResc", regRepl="")
    admin.data_objects.unregister(path, replNum="1")
    assert [r.number for r in admin.data_objects.get(path).replicas] == [0]
    assert os.path.exists(tmp_path / "u2.txt")
    admin.data_objects.unregister(path)
    assert not admin.data_objects.exists(path)
    assert os.path.exists(src)
    put = f"{coll}/t.txt"
    admin.data_objects.put(src, put)
    admin.data_objects.replicate(put, "rootResc")
    obj = admin.data_objects.get(put)
    assert [(r.number, r.status) for r in obj.replicas] == [(0, "1"), (1, "1")]
    phys = obj.replicas[1].path
    admin.data_objects.trim(put, replNum="1")
    assert [r.number for r in admin.data_objects.get(put).replicas] == [0]
    assert not os.path.exists(phys)


def test_rename_and_copy(admin: Any, coll: str) -> None:
    with admin.data_objects.open(f"{coll}/a.txt", "w") as f:
        f.write(b"move")
    admin.collections.create(f"{coll}/sub")
    admin.data_objects.move(f"{coll}/a.txt", f"{coll}/sub")
    assert admin.data_objects.exists(f"{coll}/sub/a.txt") and not admin.data_objects.exists(f"{coll}/a.txt")
    admin.data_objects.copy(f"{coll}/sub/a.txt", f"{coll}/b.txt")
    with admin.data_objects.open(f"{coll}/b.txt", "r") as f:
        assert f.read() == b"move"


def test_mod_data_obj_meta_and_touch(admin: Any, coll: str) -> None:
    path = f"{coll}/m.txt"
    with admin.data_objects.open(path, "w") as f:
        f.write(b"abc")
    admin.data_objects.modDataObjMeta({"objPath": path}, {"dataModify": "1500000000", "dataSize": "3"})
    assert int(admin.data_objects.get(path).modify_time.timestamp()) == 1_500_000_000
    admin.data_objects.touch(path, seconds_since_epoch=1_600_000_000)
    assert int(admin.data_objects.get(path).modify_time.timestamp()) == 1_600_000_000


def test_errors_for_missing_parent_and_name_clashes(admin: Any, coll: str, tmp_path: Path) -> None:
    from irods.exception import (
        CAT_NAME_EXISTS_AS_COLLECTION,
        CAT_NAME_EXISTS_AS_DATAOBJ,
        CAT_UNKNOWN_COLLECTION,
    )

    src = write_file(tmp_path / "e.txt", b"e")
    with pytest.raises(CAT_UNKNOWN_COLLECTION):
        admin.data_objects.put(src, f"{coll}/missing/e.txt")
    admin.data_objects.put(src, f"{coll}/e.txt")
    with pytest.raises(CAT_NAME_EXISTS_AS_DATAOBJ):
        admin.collections.create(f"{coll}/e.txt")
    admin.collections.create(f"{coll}/dir")
    with pytest.raises(CAT_NAME_EXISTS_AS_COLLECTION):
        admin.data_objects.register(src, f"{coll}/dir")
