"""AVU metadata (MOD_AVU_METADATA_AN 706, ATOMIC_APPLY_METADATA_OPERATIONS_APN 20002) and
access control (MOD_ACCESS_CONTROL_AN 707).

Errors as the catalog plugin gives them (``db_mod_avu_metadata_op``, ``db_add_avu_metadata_op``):
adding an AVU the object already has is CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, removing one it
does not have is CAT_SUCCESS_BUT_WITH_NO_INFO; resource and user AVUs need a rodsadmin.
"""

from __future__ import annotations

from typing import Any

from irods_ingest_testkit.irods_server.auth import Identity
from irods_ingest_testkit.irods_server.catalog import (
    ACCESS_ALIASES,
    ACCESS_LEVELS,
    OWN,
    Catalog,
    normalize_path,
    now_ts,
)
from irods_ingest_testkit.irods_server.errors import (
    CAT_INSUFFICIENT_PRIVILEGE_LEVEL,
    CAT_INVALID_ARGUMENT,
    CAT_INVALID_RESOURCE,
    CAT_INVALID_USER,
    CAT_NO_ACCESS_PERMISSION,
    CAT_SUCCESS_BUT_WITH_NO_INFO,
    CAT_UNKNOWN_COLLECTION,
    CAT_UNKNOWN_FILE,
    CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME,
    SYS_INVALID_INPUT_PARAM,
    IrodsError,
)
from irods_ingest_testkit.irods_server.packs import ArgsInp

CREATE_METADATA = ACCESS_LEVELS["create_metadata"]
DELETE_METADATA = ACCESS_LEVELS["delete_metadata"]
_ENTITY_FLAGS = {"data_object": "-d", "collection": "-C", "resource": "-R", "user": "-u"}


class Metadata:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def entity_id(self, who: Identity, kind: str, name: str, level: int, admin_mode: bool) -> int:
        kind = _ENTITY_FLAGS.get(kind, kind)
        admin = admin_mode and who.client.is_admin
        if admin_mode and not who.client.is_admin:
            raise IrodsError(CAT_INSUFFICIENT_PRIVILEGE_LEVEL, "admin mode needs a rodsadmin")
        if kind == "-d":
            replicas = self.catalog.replicas(normalize_path(name))
            if not replicas:
                raise IrodsError(CAT_UNKNOWN_FILE, f"data object {name} does not exist")
            object_id = replicas[0].data_id
        elif kind == "-C":
            coll = self.catalog.collection(normalize_path(name))
            if coll is None:
                raise IrodsError(CAT_UNKNOWN_COLLECTION, f"collection {name} does not exist")
            object_id = coll.id
        elif kind == "-R":
            if not who.client.is_admin:
                raise IrodsError(CAT_INSUFFICIENT_PRIVILEGE_LEVEL, "resource metadata needs a rodsadmin")
            resc = self.catalog.resource(name)
            if resc is None:
                raise IrodsError(CAT_INVALID_RESOURCE, f"resource {name} does not exist")
            return resc.id
        elif kind == "-u":
            if not who.client.is_admin:
                raise IrodsError(CAT_INSUFFICIENT_PRIVILEGE_LEVEL, "user metadata needs a rodsadmin")
            user = self.catalog.user(name)
            if user is None:
                raise IrodsError(CAT_INVALID_USER, f"user {name} does not exist")
            return user.id
        else:
            raise IrodsError(CAT_INVALID_ARGUMENT, f"unknown object type {kind!r}")
        if not admin and self.catalog.access_level(who.client, object_id) < level:
            raise IrodsError(CAT_NO_ACCESS_PERMISSION, f"{who.client.name} may not change metadata of {name}")
        return object_id

    # ------------------------------------------------------------ 706

    def mod_avu(self, who: Identity, inp: ArgsInp) -> None:
        a = inp.args
        op = a[0]
        admin_mode = "irodsAdmin" in inp.options or op == "adda"
        with self.catalog.lock, self.catalog.transaction():
            if op == "cp":
                src = self.entity_id(who, a[1], a[3], ACCESS_LEVELS["read_metadata"], admin_mode)
                dst = self.entity_id(who, a[2], a[4], CREATE_METADATA, admin_mode)
                for _, attr, value, unit in self.catalog.avus(src):
                    self.catalog.add_avu(dst, attr, value, unit)
                return
            level = DELETE_METADATA if op in ("rm", "rmw", "rmi") else CREATE_METADATA
            oid = self.entity_id(who, a[1], a[2], level, admin_mode)
            attr, value, unit = a[3], a[4], a[5]
            if op in ("add", "adda"):
                if not self.catalog.add_avu(oid, attr, value, unit):
                    raise IrodsError(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, "the object already has this AVU")
            elif op == "rm":
                meta_id = self.catalog.find_avu(oid, attr, value, unit)
                if meta_id is None:
                    raise IrodsError(CAT_SUCCESS_BUT_WITH_NO_INFO, "no such AVU")
                self.catalog.remove_avu(oid, meta_id)
            elif op == "rmi":
                if not attr.isdigit() or not any(m[0] == int(attr) for m in self.catalog.avus(oid)):
                    raise IrodsError(CAT_SUCCESS_BUT_WITH_NO_INFO, "no such AVU")
                self.catalog.remove_avu(oid, int(attr))
            elif op == "rmw":
                removed = self._remove_wildcard(oid, attr, value, unit)
                if not removed:
                    raise IrodsError(CAT_SUCCESS_BUT_WITH_NO_INFO, "no AVU matched")
            elif op == "set":
                self._set(oid, attr, value, unit)
            elif op == "mod":
                self._modify(oid, a)
            else:
                raise IrodsError(CAT_INVALID_ARGUMENT, f"unknown metadata operation {op!r}")

    def _set(self, oid: int, attr: str, value: str, unit: str) -> None:
        """``db_set_avu_metadata_op``: change the object's AVU of that attribute in place if no
        other object shares its row (keeping its create time), else relink; drop the others."""
        same = [m for m in self.catalog.avus(oid) if m[1] == attr]
        for meta_id, _, _, _ in same[1:]:
            self.catalog.remove_avu(oid, meta_id)
        if not same:
            self.catalog.add_avu(oid, attr, value, unit)
            return
        meta_id = same[0][0]
        users = self.catalog.one("SELECT count(*) FROM R_OBJT_METAMAP WHERE meta_id=?", (meta_id,))
        duplicate = self.catalog.find_avu(oid, attr, value, unit)
        if (users and users[0] > 1) or (duplicate is not None and duplicate != meta_id):
            self.catalog.remove_avu(oid, meta_id)
            self.catalog.add_avu(oid, attr, value, unit)
            return
        self.catalog.x("UPDATE R_META_MAIN SET meta_attr_value=?, meta_attr_unit=?, modify_ts=? WHERE meta_id=?",
                       (value, unit, now_ts(), meta_id))

    def _remove_wildcard(self, oid: int, attr: str, value: str, unit: str) -> int:
        rows = self.catalog.q(
            "SELECT m.meta_id FROM R_META_MAIN m JOIN R_OBJT_METAMAP o ON o.meta_id = m.meta_id WHERE o.object_id=? "
            "AND m.meta_attr_name LIKE ? AND m.meta_attr_value LIKE ? AND m.meta_attr_unit LIKE ?",
            (oid, attr, value, unit or "%"),
        )
        for (meta_id,) in rows:
            self.catalog.remove_avu(oid, int(meta_id))
        return len(rows)

    def _modify(self, oid: int, a: list[str]) -> None:
        attr, value = a[3], a[4]
        rest = a[5:]
        unit = ""
        if rest and rest[0] and rest[0][:2] not in ("n:", "v:", "u:"):
            unit, rest = rest[0], rest[1:]
        meta_id = self.catalog.find_avu(oid, attr, value, unit)
        if meta_id is None:
            raise IrodsError(CAT_SUCCESS_BUT_WITH_NO_INFO, "no such AVU")
        new = {"n": attr, "v": value, "u": unit}
        for arg in rest:
            if arg[:2] in ("n:", "v:", "u:"):
                new[arg[0]] = arg[2:]
        self.catalog.remove_avu(oid, meta_id)
        self.catalog.add_avu(oid, new["n"], new["v"], new["u"])

    # ------------------------------------------------------------ 20002

    def apply_atomic(self, who: Identity, request: dict[str, Any]) -> None:
        kind = str(request.get("entity_type", ""))
        if kind not in _ENTITY_FLAGS:
            raise IrodsError(SYS_INVALID_INPUT_PARAM, f"invalid entity_type {kind!r}")
        operations = request.get("operations")
        if not isinstance(operations, list):
            raise IrodsError(SYS_INVALID_INPUT_PARAM, "operations must be a list")
        name = str(request.get("entity_name", ""))
        with self.catalog.lock, self.catalog.transaction():
            try:
                oid = self.entity_id(who, kind, name, CREATE_METADATA, bool(request.get("admin_mode")))
            except IrodsError as exc:
                if exc.code in (CAT_UNKNOWN_FILE, CAT_UNKNOWN_COLLECTION, CAT_INVALID_RESOURCE, CAT_INVALID_USER):
                    exc.message = f"Entity does not exist [entity_name={name}]"  # atomic_apply_metadata_operations
                raise
            for op in operations:
                if not isinstance(op, dict) or op.get("operation") not in ("add", "remove"):
                    raise IrodsError(SYS_INVALID_INPUT_PARAM, f"invalid operation {op!r}")
                attr, value = str(op.get("attribute", "")), str(op.get("value", ""))
                unit = str(op.get("units", ""))
                if not attr or not value:
                    raise IrodsError(SYS_INVALID_INPUT_PARAM, "attribute and value must not be empty")
                if op["operation"] == "add":
                    self.catalog.add_avu(oid, attr, value, unit)
                else:
                    meta_id = self.catalog.find_avu(oid, attr, value, unit)
                    if meta_id is not None:
                        self.catalog.remove_avu(oid, meta_id)

    # ------------------------------------------------------------ 707

    def set_access(self, who: Identity, recursive: bool, access: str, user_name: str, zone: str, path: str) -> None:
        admin = access.startswith("admin:")
        if admin:
            access = access[len("admin:") :]
            if not who.client.is_admin:
                raise IrodsError(CAT_INSUFFICIENT_PRIVILEGE_LEVEL, "admin mode needs a rodsadmin")
        path = normalize_path(path)
        with self.catalog.lock, self.catalog.transaction():
            coll = self.catalog.collection(path)
            replicas = self.catalog.replicas(path) if coll is None else []
            if coll is None and not replicas:
                raise IrodsError(CAT_UNKNOWN_FILE, f"{path} does not exist")
            top_id = coll.id if coll is not None else replicas[0].data_id
            if not admin and self.catalog.access_level(who.client, top_id) < OWN:
                raise IrodsError(CAT_NO_ACCESS_PERMISSION, f"{who.client.name} does not own {path}")
            colls = self.catalog.subtree(path) if coll is not None and recursive else ([coll] if coll else [])
            if access in ("inherit", "noinherit"):
                if coll is None:
                    raise IrodsError(CAT_INVALID_ARGUMENT, "inheritance applies to collections")
                for c in colls:
                    self.catalog.x("UPDATE R_COLL_MAIN SET coll_inheritance=?, modify_ts=? WHERE coll_id=?",
                                   ("1" if access == "inherit" else "", now_ts(), c.id))
                return
            name = ACCESS_ALIASES.get(access, access)
            if name not in ACCESS_LEVELS:
                raise IrodsError(CAT_INVALID_ARGUMENT, f"unknown access level {access!r}")
            user = self.catalog.user(user_name, zone or None)
            if user is None:
                raise IrodsError(CAT_INVALID_USER, f"user {user_name} does not exist")
            object_ids = [c.id for c in colls]
            if recursive:
                object_ids += [d for c in colls for d in self.catalog.data_ids_in(c.id)]
            if coll is None:
                object_ids = [top_id]
            for object_id in object_ids:
                self.catalog.set_access(object_id, user.id, ACCESS_LEVELS[name])
