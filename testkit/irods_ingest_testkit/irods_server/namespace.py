"""Collections and data objects in the catalog: create, rename, remove, trash, trim, register,
replicate, copy, checksum, touch and the data-object catalog update.

Behaviour follows the server's API implementations; where a rule is copied it names its
source (``rsMkTrashPath``, ``rsDataObjUnlink``, ``rsPhyPathReg``, ``rsDataObjTrim``...).
A physical file is deleted by a forced removal even when it was registered from outside a
vault (as iRODS does: only *unregister* keeps files); files in a vault follow their object
when it is renamed or moved to the trash (``syncDataObjPhyPath``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

from irods_ingest_testkit.irods_server.auth import Identity
from irods_ingest_testkit.irods_server.catalog import (
    DELETE_OBJECT,
    GOOD_REPLICA,
    MODIFY_OBJECT,
    OWN,
    READ_OBJECT,
    STALE_REPLICA,
    Catalog,
    Collection,
    Replica,
    normalize_path,
    now_ts,
    split_path,
)
from irods_ingest_testkit.irods_server.data import (
    KW_ADMIN,
    KW_DATA_TYPE,
    KW_DEST_RESC_NAME,
    KW_FORCE,
    KW_REG_CHKSUM,
    KW_REPL_NUM,
    KW_RESC_NAME,
    KW_VERIFY_CHKSUM,
    DataService,
    sha256_checksum,
)
from irods_ingest_testkit.irods_server.errors import (
    CAT_COLLECTION_NOT_EMPTY,
    CAT_NAME_EXISTS_AS_COLLECTION,
    CAT_NAME_EXISTS_AS_DATAOBJ,
    CAT_NO_ACCESS_PERMISSION,
    CAT_NO_CHECKSUM_FOR_REPLICA,
    CAT_NO_ROWS_FOUND,
    CAT_UNKNOWN_COLLECTION,
    CAT_UNKNOWN_FILE,
    CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME,
    LOCKED_DATA_OBJECT_ACCESS,
    OBJ_PATH_DOES_NOT_EXIST,
    OVERWRITE_WITHOUT_FORCE_FLAG,
    SAME_SRC_DEST_PATHS_ERR,
    SYS_COPY_ALREADY_IN_RESC,
    SYS_INVALID_FILE_PATH,
    SYS_INVALID_INPUT_PARAM,
    SYS_INVALID_ZONE_NAME,
    SYS_NO_PATH_PERMISSION,
    SYS_REPLICA_DOES_NOT_EXIST,
    SYS_REPLICA_INACCESSIBLE,
    UNIX_FILE_STAT_ERR,
    UNIX_FILE_TRUNCATE_ERR,
    USER_CHKSUM_MISMATCH,
    USER_INCOMPATIBLE_PARAMS,
    USER_INPUT_PATH_ERR,
    IrodsError,
)
from irods_ingest_testkit.irods_server.packs import CollInp, DataObjInp, KeyVal

UNREG_OPR = 26  # dataObjInpOut.h
RENAME_DATA_OBJ = 11
RENAME_COLL = 12
DEFAULT_MIN_COPIES = 2  # DEF_MIN_COPY_CNT


class Namespace:
    def __init__(self, catalog: Catalog, data: DataService) -> None:
        self.catalog = catalog
        self.data = data

    # ------------------------------------------------------------ helpers

    def _check_zone(self, path: str, code: int = SYS_INVALID_ZONE_NAME) -> str:
        """An absolute path in this zone (4.3 servers refuse relative paths with SYS_INVALID_FILE_PATH)."""
        path = normalize_path(path)
        if not path.startswith("/"):
            raise IrodsError(SYS_INVALID_FILE_PATH if code == SYS_INVALID_ZONE_NAME else code,
                             f"{path} is not an absolute path")
        if path.split("/")[1:2] != [self.catalog.zone]:
            raise IrodsError(code, f"{path} is not in zone {self.catalog.zone}")
        return path

    def _require(self, who: Identity, object_id: int, level: int, what: str, options: KeyVal) -> None:
        if KW_ADMIN in options and who.client.is_admin:
            return
        if self.catalog.access_level(who.client, object_id) < level:
            raise IrodsError(CAT_NO_ACCESS_PERMISSION, f"{who.client.name} lacks permission on {what}")

    def _object(self, path: str) -> list[Replica]:
        replicas = self.catalog.replicas(path)
        if not replicas:
            raise IrodsError(CAT_NO_ROWS_FOUND, f"data object {path} does not exist")
        return replicas

    def _not_locked(self, data_id: int, path: str) -> None:
        if data_id in self.data.open_replicas.writers:
            raise IrodsError(LOCKED_DATA_OBJECT_ACCESS, f"{path} is open for write")

    def _ensure_collections(self, path: str, owner: str) -> Collection:
        """Create ``path`` and missing ancestors (as the trash and ``-p`` creation do)."""
        parts = path.split("/")
        for i in range(2, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if self.catalog.collection(prefix) is None:
                if self.catalog.replicas(prefix):
                    raise IrodsError(CAT_NAME_EXISTS_AS_DATAOBJ, f"{prefix} is a data object")
                self.catalog.make_collection(prefix, owner)
        return self.catalog.collection_or_raise(path)

    def trash_path(self, who: Identity, path: str) -> str:
        """``rsMkTrashPath``: ``/zone/trash/home/<client user>/<rest>``, where ``<rest>`` is the
        path below the zone without a leading ``home/`` and, after it, without the client's own
        ``<user>/`` (or ``<user>#...``) segment; a user of another zone is ``user#zone``."""
        zone, name = self.catalog.zone, who.client.name
        rest = path[len(f"/{zone}/") :]
        if rest.startswith("home/"):
            rest = rest[len("home/") :]
            if rest.startswith(name) and rest[len(name) : len(name) + 1] in ("/", "#") and "/" in rest:
                rest = rest.split("/", 1)[1]
        return f"/{zone}/trash/home/{self.catalog.home_name(name, who.client.zone)}/{rest}"

    def _free_name(self, path: str) -> str:
        """Append ``.<random>`` while the name is taken (``appendRandomToPath``)."""
        candidate = path
        while self.catalog.collection(candidate) is not None or self.catalog.replicas(candidate):
            candidate = f"{path}.{self.data.rng.randrange(10**9, 10**10)}"
        return candidate

    def _move_vault_file(self, replica: Replica, old_logical: str, new_logical: str) -> None:
        resc = self.catalog.resource_by_id(replica.resc_id)
        if resc is None or replica.path != self.catalog.vault_path(resc, old_logical):
            return
        new_phys = self.catalog.vault_path(resc, new_logical)
        if os.path.exists(new_phys) or not os.path.exists(replica.path):
            return
        Path(new_phys).parent.mkdir(parents=True, exist_ok=True)
        os.replace(replica.path, new_phys)
        self.catalog.update_replica(replica.data_id, replica.repl_num, data_path=new_phys)

    @staticmethod
    def _unlink_file(phys: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(phys)

    # ------------------------------------------------------------ collections

    def create_collection(self, who: Identity, inp: CollInp) -> None:
        path = self._check_zone(inp.coll_name)
        recursive = "recursiveOpr" in inp.options
        with self.catalog.lock:
            if self.catalog.collection(path) is not None:
                if recursive:
                    return
                raise IrodsError(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, f"{path} already exists")
            if self.catalog.replicas(path):
                raise IrodsError(CAT_NAME_EXISTS_AS_DATAOBJ, f"{path} is a data object")
            parent_path, _ = split_path(path)
            existing = parent_path
            while self.catalog.collection(existing) is None:
                if not recursive:
                    raise IrodsError(CAT_UNKNOWN_COLLECTION, f"collection {parent_path} does not exist")
                if self.catalog.replicas(existing):
                    raise IrodsError(CAT_NAME_EXISTS_AS_DATAOBJ, f"{existing} is a data object")
                existing, _ = split_path(existing)
            self._require(who, self.catalog.collection_or_raise(existing).id, MODIFY_OBJECT, existing, inp.options)
            self._ensure_collections(path, who.client.name)

    def remove_collection(self, who: Identity, inp: CollInp) -> None:
        path = self._check_zone(inp.coll_name)
        options = inp.options
        unregister = inp.opr_type == UNREG_OPR or options.get("oprType") == str(UNREG_OPR)
        force = KW_FORCE in options or path.startswith(f"/{self.catalog.zone}/trash/")
        with self.catalog.lock:
            top = self.catalog.collection(path)
            if top is None:
                raise IrodsError(CAT_UNKNOWN_COLLECTION, f"collection {path} does not exist")
            zone = self.catalog.zone
            if path in ("/", f"/{zone}", f"/{zone}/home", f"/{zone}/trash", f"/{zone}/trash/home"):
                raise IrodsError(SYS_INVALID_INPUT_PARAM, f"cannot remove the system collection {path}")
            if "recursiveOpr" not in options and not self.catalog.is_collection_empty(top):
                raise IrodsError(CAT_COLLECTION_NOT_EMPTY, f"collection {path} is not empty")
            self._require(who, top.id, DELETE_OBJECT, path, options)
            colls = self.catalog.subtree(path)
            data_ids = [d for c in colls for d in self.catalog.data_ids_in(c.id)]
            for data_id in data_ids:
                self._not_locked(data_id, path)
                self._require(who, data_id, DELETE_OBJECT, path, options)
            # Only a recursive removal goes to the trash (_rsRmCollRecur -> rsMvCollToTrash);
            # without RECURSIVE_OPR__KW rsRmColl calls _rsRmColl -> svrUnregColl, which drops the
            # (empty) collection's catalog entry, trash or no trash, forced or not.
            if not unregister and not force and "recursiveOpr" in options:
                self._collection_to_trash(who, path, colls)
                return
            with self.catalog.transaction():
                for data_id in data_ids:
                    for replica in self.catalog.replicas_by_id(data_id):
                        if not unregister:
                            self._unlink_file(replica.path)
                    self.catalog.x("DELETE FROM R_DATA_MAIN WHERE data_id=?", (data_id,))
                for coll in reversed(colls):
                    self.catalog.x("DELETE FROM R_COLL_MAIN WHERE coll_id=?", (coll.id,))
                self.catalog.delete_object_rows([c.id for c in colls] + data_ids)

    def _collection_to_trash(self, who: Identity, path: str, colls: list[Collection]) -> None:
        target = self.trash_path(who, path)
        parent, _ = split_path(target)
        with self.catalog.transaction():
            self._ensure_collections(parent, who.client.name)
            target = self._free_name(target)
            self._rename_collection_rows(path, target, colls)

    def _rename_collection_rows(self, old: str, new: str, colls: list[Collection]) -> None:
        for coll in colls:
            name = new + coll.name[len(old) :]
            parent = split_path(name)[0]
            self.catalog.x(
                "UPDATE R_COLL_MAIN SET coll_name=?, parent_coll_name=?, modify_ts=? WHERE coll_id=?",
                (name, parent, now_ts(), coll.id),
            )
        for coll in colls:
            new_coll = new + coll.name[len(old) :]
            for data_id in self.catalog.data_ids_in(coll.id):
                for replica in self.catalog.replicas_by_id(data_id):
                    self._move_vault_file(replica, f"{coll.name}/{replica.name}", f"{new_coll}/{replica.name}")

    # ------------------------------------------------------------ rename (DATA_OBJ_RENAME_AN)

    def rename(self, who: Identity, src: DataObjInp, dest: DataObjInp) -> None:
        old, new = self._check_zone(src.obj_path), self._check_zone(dest.obj_path)
        if old == new:
            raise IrodsError(SAME_SRC_DEST_PATHS_ERR, "source and destination are the same")
        with self.catalog.lock, self.catalog.transaction():
            if self.catalog.collection(new) is not None:
                raise IrodsError(CAT_NAME_EXISTS_AS_COLLECTION, f"{new} is a collection")
            if self.catalog.replicas(new):
                raise IrodsError(CAT_NAME_EXISTS_AS_DATAOBJ, f"{new} is a data object")
            new_parent_path, new_name = split_path(new)
            new_parent = self.catalog.collection(new_parent_path)
            if new_parent is None:
                raise IrodsError(CAT_UNKNOWN_COLLECTION, f"collection {new_parent_path} does not exist")
            self._require(who, new_parent.id, MODIFY_OBJECT, new_parent_path, dest.options)
            coll = self.catalog.collection(old)
            if src.opr_type == RENAME_COLL or (coll is not None and src.opr_type != RENAME_DATA_OBJ):
                if coll is None:
                    raise IrodsError(CAT_UNKNOWN_COLLECTION, f"collection {old} does not exist")
                if new.startswith(old + "/"):
                    raise IrodsError(SYS_INVALID_INPUT_PARAM, "cannot move a collection into itself")
                self._require(who, coll.id, MODIFY_OBJECT, old, src.options)
                self._rename_collection_rows(old, new, self.catalog.subtree(old))
                return
            replicas = self.catalog.replicas(old)
            if not replicas:
                raise IrodsError(CAT_UNKNOWN_FILE, f"data object {old} does not exist")
            self._not_locked(replicas[0].data_id, old)
            self._require(who, replicas[0].data_id, MODIFY_OBJECT, old, src.options)
            self.catalog.x(
                "UPDATE R_DATA_MAIN SET coll_id=?, data_name=? WHERE data_id=?",
                (new_parent.id, new_name, replicas[0].data_id),
            )
            for replica in replicas:
                self._move_vault_file(replica, old, new)

    # ------------------------------------------------------------ unlink, trim

    def unlink(self, who: Identity, inp: DataObjInp) -> None:
        path = self._check_zone(inp.obj_path)
        options = inp.options
        unregister = inp.opr_type == UNREG_OPR or options.get("oprType") == str(UNREG_OPR)
        force = KW_FORCE in options or path.startswith(f"/{self.catalog.zone}/trash/")
        with self.catalog.lock:
            replicas = self._object(path)
            data_id = replicas[0].data_id
            self._not_locked(data_id, path)
            self._require(who, data_id, DELETE_OBJECT, path, options)
            if not unregister and not force:
                target = self.trash_path(who, path)
                parent_path, _ = split_path(target)
                with self.catalog.transaction():
                    parent = self._ensure_collections(parent_path, who.client.name)
                    target = self._free_name(target)
                    self.catalog.x("UPDATE R_DATA_MAIN SET coll_id=?, data_name=? WHERE data_id=?",
                                   (parent.id, split_path(target)[1], data_id))
                    for replica in replicas:
                        self._move_vault_file(replica, path, target)
                return
            with self.catalog.transaction():
                if not unregister:
                    for replica in replicas:
                        self._unlink_file(replica.path)
                self.catalog.x("DELETE FROM R_DATA_MAIN WHERE data_id=?", (data_id,))
                self.catalog.delete_object_rows([data_id])

    def trim(self, who: Identity, inp: DataObjInp) -> int:
        """``rsDataObjTrim``: a named replica, or stale ones then good ones above ``copies``."""
        path = self._check_zone(inp.obj_path)
        options = inp.options
        unregister = inp.opr_type == UNREG_OPR or options.get("oprType") == str(UNREG_OPR)
        with self.catalog.lock:
            replicas = self._object(path)
            data_id = replicas[0].data_id
            self._not_locked(data_id, path)
            self._require(who, data_id, DELETE_OBJECT, path, options)
            if KW_REPL_NUM in options or KW_RESC_NAME in options:
                if KW_REPL_NUM in options:
                    victims = [r for r in replicas if str(r.repl_num) == options[KW_REPL_NUM].strip()]
                else:
                    name = options[KW_RESC_NAME]
                    victims = [r for r in replicas if self.catalog.root_of(r.resc_id) == name
                               or self.catalog.hierarchy(r.resc_id).split(";")[-1] == name]
                if not victims:
                    raise IrodsError(SYS_REPLICA_DOES_NOT_EXIST, f"no such replica of {path}")
                survivors = [r for r in replicas if r not in victims]
                if not any(r.status == GOOD_REPLICA for r in survivors) and any(
                        r.status == GOOD_REPLICA for r in victims):
                    raise IrodsError(USER_INCOMPATIBLE_PARAMS, "cannot trim the last good replica")
            else:
                keep = int(options.get("copies", DEFAULT_MIN_COPIES) or DEFAULT_MIN_COPIES)
                victims = [r for r in replicas if r.status == STALE_REPLICA]
                good = [r for r in replicas if r.status == GOOD_REPLICA]
                victims += good[: max(0, len(good) - keep)]
                if len(victims) >= len(replicas):
                    victims = victims[: len(replicas) - 1]
            with self.catalog.transaction():
                for replica in victims:
                    if not unregister:
                        self._unlink_file(replica.path)
                    self.catalog.x("DELETE FROM R_DATA_MAIN WHERE data_id=? AND data_repl_num=?",
                                   (replica.data_id, replica.repl_num))
            return len(victims)

    # ------------------------------------------------------------ register (PHY_PATH_REG_AN)

    def register(self, who: Identity, inp: DataObjInp) -> None:
        path = self._check_zone(inp.obj_path)
        options = inp.options
        phys = options.get("filePath", "")
        if not phys.startswith("/"):
            raise IrodsError(SYS_INVALID_FILE_PATH, f"filePath {phys!r} is not absolute")
        if not who.client.is_admin and any(
                self.catalog.in_vault(r, phys) for r in self._all_storage_resources()):
            raise IrodsError(SYS_NO_PATH_PERMISSION, f"{phys} is inside a resource vault")
        with self.catalog.lock:
            if "collection" in options:
                self._register_directory(who, path, phys, options)
                return
            self._register_file(who, path, phys, options)

    def _all_storage_resources(self) -> list[Any]:
        rows = self.catalog.q("SELECT resc_name FROM R_RESC_MAIN")
        found = [self.catalog.resource(r[0]) for r in rows]
        return [r for r in found if r is not None and r.is_storage]

    def _register_directory(self, who: Identity, path: str, phys: str, options: KeyVal) -> None:
        if not os.path.isdir(phys):
            raise IrodsError(UNIX_FILE_STAT_ERR - 20, f"{phys} is not a directory")  # ENOTDIR
        file_options = {k: v for k, v in options.items() if k not in ("collection", "filePath")}
        self.create_collection(who, CollInp(path, 0, {"recursiveOpr": ""}))
        for root, dirs, files in os.walk(phys):
            dirs.sort()
            rel = os.path.relpath(root, phys)
            coll = path if rel == "." else f"{path}/{rel}"
            self.create_collection(who, CollInp(coll, 0, {"recursiveOpr": ""}))
            for name in sorted(files):
                self._register_file(who, f"{coll}/{name}", os.path.join(root, name), file_options)

    def _register_file(self, who: Identity, path: str, phys: str, options: KeyVal) -> None:
        if self.catalog.collection(path) is not None:
            raise IrodsError(CAT_NAME_EXISTS_AS_COLLECTION, f"{path} is a collection")
        parent_path, name = split_path(path)
        parent = self.catalog.collection(parent_path)
        if parent is None:
            raise IrodsError(CAT_UNKNOWN_COLLECTION, f"collection {parent_path} does not exist")
        existing = self.catalog.replicas(path)
        as_replica = "regRepl" in options
        if existing and not as_replica:
            raise IrodsError(OVERWRITE_WITHOUT_FORCE_FLAG, f"{path} already exists")
        if as_replica and not existing:
            raise IrodsError(CAT_UNKNOWN_FILE, f"{path} does not exist; cannot register a replica")
        if "dataSize" in options:
            size = int(options["dataSize"])
            mtime = int(options.get("dataModify") or 0) or None
        else:
            try:
                st = os.stat(phys)
            except OSError as exc:
                raise IrodsError(UNIX_FILE_STAT_ERR - (exc.errno or 0), f"cannot stat {phys}") from exc
            if os.path.isdir(phys):
                raise IrodsError(UNIX_FILE_STAT_ERR - 21, f"{phys} is a directory")  # EISDIR
            size = st.st_size
            mtime = int(options.get("dataModify") or 0) or int(st.st_mtime)
        leaf = self.data.leaf_for_new_replica(options)
        if any(r.resc_id == leaf.id for r in existing):
            raise IrodsError(SYS_COPY_ALREADY_IN_RESC, f"{path} already has a replica on {leaf.name}")
        checksum = ""
        if KW_REG_CHKSUM in options or KW_VERIFY_CHKSUM in options:
            checksum = sha256_checksum(phys)
        with self.catalog.transaction():
            if existing:
                self._require(who, existing[0].data_id, MODIFY_OBJECT, path, options)
                data_id, repl_num = existing[0].data_id, max(r.repl_num for r in existing) + 1
            else:
                self._require(who, parent.id, MODIFY_OBJECT, parent_path, options)
                data_id, repl_num = self.catalog.next_id(), 0
            self.catalog.insert_replica(
                data_id=data_id, coll_id=parent.id, name=name, repl_num=repl_num, size=size, resc_id=leaf.id,
                phys=phys, owner=who.client, status=GOOD_REPLICA, checksum=checksum,
                data_type=options.get(KW_DATA_TYPE, "generic"), mtime=f"{mtime:011d}" if mtime else None,
            )
            if not existing:
                self.catalog.inherit_access(data_id, parent)
                self.catalog.set_access(data_id, who.client.id, OWN)

    # ------------------------------------------------------------ checksum (DATA_OBJ_CHKSUM_AN)

    def checksum(self, who: Identity, inp: DataObjInp) -> str:
        """``rsDataObjChksum``: report (or compute) one replica's checksum, or verify replicas.

        With ``verifyChksum`` a replica without a checksum is a warning, returned as the JSON
        list 4.2.11+ servers put in ``myStr``; a replica whose file does not match fails.
        """
        path = self._check_zone(inp.obj_path)
        options = inp.options
        with self.catalog.lock:
            replicas = self._object(path)
            self._require(who, replicas[0].data_id, READ_OBJECT, path, options)
            targeted = KW_REPL_NUM in options or KW_RESC_NAME in options
            chosen = self.data.matching(replicas, options) if targeted else replicas
            if not chosen:
                raise IrodsError(SYS_REPLICA_DOES_NOT_EXIST, f"no such replica of {path}")
            if KW_VERIFY_CHKSUM in options:
                return self._verify(chosen)
            if "ChksumAll" not in options:
                good = [r for r in chosen if r.status == GOOD_REPLICA]
                chosen = (good or chosen)[:1]
            result = ""
            for replica in chosen:
                if replica.checksum and "forceChksum" not in options:
                    result = result or replica.checksum
                    continue
                value = sha256_checksum(replica.path)
                self.catalog.update_replica(replica.data_id, replica.repl_num, data_checksum=value)
                result = result or value
            return result

    def _verify(self, replicas: list[Replica]) -> str:
        warnings: list[dict[str, object]] = []
        for replica in replicas:
            if not replica.checksum:
                warnings.append({
                    "error_code": CAT_NO_CHECKSUM_FOR_REPLICA,
                    "message": f"WARNING: No checksum available for replica [{replica.repl_num}].",
                })
            elif sha256_checksum(replica.path) != replica.checksum:
                raise IrodsError(USER_CHKSUM_MISMATCH, f"replica {replica.repl_num} does not match its checksum")
        if warnings:
            return json.dumps(warnings)
        return next((r.checksum for r in replicas if r.checksum), "")

    # ------------------------------------------------------------ replicate, copy

    def replicate(self, who: Identity, inp: DataObjInp) -> None:
        path = self._check_zone(inp.obj_path)
        options = inp.options
        with self.catalog.lock:
            replicas = self._object(path)
            self._not_locked(replicas[0].data_id, path)
            self._require(who, replicas[0].data_id, READ_OBJECT, path, options)
            good = [r for r in replicas if r.status == GOOD_REPLICA]
            if KW_RESC_NAME in options:
                good = [r for r in good if self.catalog.root_of(r.resc_id) == options[KW_RESC_NAME]]
            if not good:
                raise IrodsError(SYS_REPLICA_DOES_NOT_EXIST, f"{path} has no good replica to copy from")
            source = good[0]
            if "all" in options:  # ALL_KW: bring every stale replica up to date (irepl -a)
                for replica in replicas:
                    if replica.status != GOOD_REPLICA:
                        shutil.copyfile(source.path, replica.path)
                        self.catalog.update_replica(
                            replica.data_id, replica.repl_num, data_is_dirty=GOOD_REPLICA, data_size=source.size,
                            data_checksum=source.checksum, modify_ts=now_ts())
                return
            dest_opts = {k: v for k, v in options.items() if k != KW_RESC_NAME}
            if KW_DEST_RESC_NAME not in dest_opts and "defRescName" not in dest_opts:
                dest_opts["defRescName"] = "demoResc"
            _, root = self.data.requested_target(dest_opts)
            targets = [r for r in replicas if root is not None and self.catalog.root_of(r.resc_id) == root.name]
            if targets:
                target = targets[0]
                if target.status == GOOD_REPLICA:
                    if "updateRepl" in options or root is None:
                        return
                    raise IrodsError(SYS_COPY_ALREADY_IN_RESC, f"{path} already has a good replica there")
                shutil.copyfile(source.path, target.path)
                self.catalog.update_replica(target.data_id, target.repl_num, data_is_dirty=GOOD_REPLICA,
                                            data_size=source.size, data_checksum=source.checksum, modify_ts=now_ts())
                return
            leaf = self.data.leaf_for_new_replica(dest_opts)
            if any(r.resc_id == leaf.id for r in replicas):
                return
            phys = self.catalog.vault_path(leaf, path)
            Path(phys).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source.path, phys)
            self.catalog.insert_replica(
                data_id=source.data_id, coll_id=source.coll_id, name=source.name,
                repl_num=max(r.repl_num for r in replicas) + 1, size=source.size, resc_id=leaf.id, phys=phys,
                owner=self.catalog.user(source.owner) or who.client, status=GOOD_REPLICA, checksum=source.checksum,
                data_type=source.data_type, mtime=source.modify_ts, create_ts=source.create_ts,
            )

    def copy(self, who: Identity, src: DataObjInp, dest: DataObjInp) -> None:
        # rsDataObjCopy refuses relative and foreign paths with USER_INPUT_PATH_ERR (irods/irods#4796).
        old = self._check_zone(src.obj_path, USER_INPUT_PATH_ERR)
        new = self._check_zone(dest.obj_path, USER_INPUT_PATH_ERR)
        if old == new:
            raise IrodsError(SAME_SRC_DEST_PATHS_ERR, "source and destination are the same")
        with self.catalog.lock:
            replicas = self._object(old)
            self._require(who, replicas[0].data_id, READ_OBJECT, old, src.options)
            good = [r for r in replicas if r.status == GOOD_REPLICA] or replicas
            if self.catalog.replicas(new) and KW_FORCE not in dest.options:
                raise IrodsError(OVERWRITE_WITHOUT_FORCE_FLAG, f"{new} exists")
            inp = DataObjInp(new, open_flags=1 | 64 | 512, options={**dest.options, KW_FORCE: ""})
            desc = self.data.open(who, inp)
            with open(good[0].path, "rb") as source:
                shutil.copyfileobj(source, desc.file)
            self.data.close(who, desc, finalize=True, close_options={})

    # ------------------------------------------------------------ truncate (DATA_OBJ_TRUNCATE_AN)

    def truncate(self, who: Identity, inp: DataObjInp) -> None:
        """Truncate the chosen (good) replica to ``dataSize``; the object's other good replicas go stale."""
        path = self._check_zone(inp.obj_path)
        if inp.data_size < 0:
            raise IrodsError(SYS_INVALID_INPUT_PARAM, "negative size")
        with self.catalog.lock:
            replicas = self._object(path)
            self._not_locked(replicas[0].data_id, path)
            self._require(who, replicas[0].data_id, MODIFY_OBJECT, path, inp.options)
            candidates = self.data.matching(replicas, inp.options)
            good = [r for r in candidates if r.status == GOOD_REPLICA]
            if not good:
                raise IrodsError(SYS_REPLICA_DOES_NOT_EXIST, f"no good replica of {path} to truncate")
            target = good[0]
            os.truncate(target.path, inp.data_size)
            with self.catalog.transaction():
                for replica in replicas:
                    if replica.repl_num != target.repl_num and replica.status == GOOD_REPLICA:
                        self.catalog.update_replica(replica.data_id, replica.repl_num, data_is_dirty=STALE_REPLICA)
                self.catalog.update_replica(target.data_id, target.repl_num, data_size=inp.data_size,
                                            data_checksum="", modify_ts=now_ts())

    def replica_truncate(self, who: Identity, inp: DataObjInp) -> dict[str, object]:
        """REPLICA_TRUNCATE_AN (4.3.3+): one replica, reported (and failing) as JSON."""
        path = self._check_zone(inp.obj_path)
        with self.catalog.lock:
            replicas = self.catalog.replicas(path)
            if not replicas:
                raise IrodsError(OBJ_PATH_DOES_NOT_EXIST, f"{path} does not exist")
            self._require(who, replicas[0].data_id, MODIFY_OBJECT, path, inp.options)
            candidates = [r for r in self.data.matching(replicas, inp.options) if r.status == GOOD_REPLICA]
            if not candidates:
                raise IrodsError(SYS_REPLICA_INACCESSIBLE, f"no good replica of {path} there")
            target = candidates[0]
            if inp.data_size < 0:
                raise IrodsError(UNIX_FILE_TRUNCATE_ERR - errno.EINVAL, "invalid size")
            self.truncate(who, DataObjInp(path, data_size=inp.data_size,
                                          options={KW_REPL_NUM: str(target.repl_num)}))
            return {"replica_number": target.repl_num, "resource_hierarchy": self.catalog.hierarchy(target.resc_id),
                    "message": ""}

    # ------------------------------------------------------------ catalog updates

    def mod_data_obj_meta(self, who: Identity, path: str, repl_num: int, resc_hier: str, resc_name: str,
                          reg_param: KeyVal) -> None:
        path = self._check_zone(path)
        with self.catalog.lock:
            replicas = self._object(path)
            self._require(who, replicas[0].data_id, MODIFY_OBJECT, path, reg_param)
            if "all" in reg_param:
                targets = replicas
            elif resc_hier:
                leaf = self.catalog.leaf_for_hierarchy(resc_hier)
                targets = [r for r in replicas if r.resc_id == leaf.id]
            elif resc_name:
                targets = [r for r in replicas if self.catalog.root_of(r.resc_id) == resc_name]
            else:
                targets = [r for r in replicas if r.repl_num == repl_num]
            if not targets:
                raise IrodsError(SYS_REPLICA_DOES_NOT_EXIST, f"no such replica of {path}")
            mapping = {"dataSize": "data_size", "dataModify": "modify_ts", "dataCreate": "create_ts",
                       "chksum": "data_checksum", "replStatus": "data_is_dirty", "dataType": "data_type_name",
                       "dataComments": "r_comment", "dataExpiry": "data_expiry_ts", "dataMode": "data_mode",
                       "filePath": "data_path", "dataVersion": "data_version", "dataStatus": "data_status"}
            fields: dict[str, object] = {}
            for key, value in reg_param.items():
                column = mapping.get(key)
                if column is None:
                    continue
                if column in ("data_size", "data_is_dirty"):
                    fields[column] = int(value)
                elif column in ("modify_ts", "create_ts") and value.isdigit():
                    fields[column] = f"{int(value):011d}"
                else:
                    fields[column] = value
            with self.catalog.transaction():
                for replica in targets:
                    self.catalog.update_replica(replica.data_id, replica.repl_num, **fields)

    def touch(self, who: Identity, request: dict[str, Any]) -> None:
        path = self._check_zone(str(request.get("logical_path", "")))
        options = request.get("options") or {}
        if not isinstance(options, dict):
            raise IrodsError(SYS_INVALID_INPUT_PARAM, "touch options must be an object")
        mtime = options.get("seconds_since_epoch")
        reference = options.get("reference")
        with self.catalog.lock:
            if reference:
                ref_coll = self.catalog.collection(str(reference))
                ref_repl = self.catalog.replicas(str(reference))
                if ref_coll is None and not ref_repl:
                    raise IrodsError(OBJ_PATH_DOES_NOT_EXIST, f"{reference} does not exist")
                stamp = self.catalog.one("SELECT modify_ts FROM R_COLL_MAIN WHERE coll_name=?", (reference,)) \
                    if ref_coll is not None else (ref_repl[0].modify_ts,)
                ts = str(stamp[0]) if stamp else now_ts()
            else:
                ts = f"{int(mtime):011d}" if mtime is not None else now_ts()
            coll = self.catalog.collection(path)
            if coll is not None:
                self._require(who, coll.id, MODIFY_OBJECT, path, {})
                self.catalog.x("UPDATE R_COLL_MAIN SET modify_ts=? WHERE coll_id=?", (ts, coll.id))
                return
            replicas = self.catalog.replicas(path)
            if not replicas:
                if options.get("no_create"):
                    return
                if options.get("replica_number") is not None:
                    raise IrodsError(SYS_INVALID_INPUT_PARAM, "replica_number cannot create an object")
                opts: KeyVal = {}
                if options.get("leaf_resource_name"):
                    leaf = self.catalog.resource_or_raise(str(options["leaf_resource_name"]))
                    opts["resc_hier"] = self.catalog.hierarchy(leaf.id)
                desc = self.data.open(who, DataObjInp(path, open_flags=1 | 64, options=opts))
                self.data.close(who, desc, finalize=True, close_options={})
                replicas = self.catalog.replicas(path)
            self._require(who, replicas[0].data_id, MODIFY_OBJECT, path, {})
            targets = replicas
            if options.get("replica_number") is not None:
                targets = [r for r in replicas if r.repl_num == int(options["replica_number"])]
            elif options.get("leaf_resource_name"):
                leaf = self.catalog.resource_or_raise(str(options["leaf_resource_name"]))
                targets = [r for r in replicas if r.resc_id == leaf.id]
            else:
                good = [r for r in replicas if r.status == GOOD_REPLICA]
                targets = (good or replicas)[:1]
            if not targets:
                raise IrodsError(SYS_REPLICA_DOES_NOT_EXIST, f"no such replica of {path}")
            for replica in targets:
                self.catalog.update_replica(replica.data_id, replica.repl_num, modify_ts=ts)
