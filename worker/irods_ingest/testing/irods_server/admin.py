"""GENERAL_ADMIN_AN (701), USER_ADMIN_AN (714) and SPECIFIC_QUERY_AN (722).

The subset ``iadmin`` and python-irodsclient's own test set-up use: users, groups and
their members, passwords, resources and their children, specific queries, and a few
housekeeping verbs that are accepted and ignored (quotas, usage). 701 needs a rodsadmin
(SYS_NO_API_PRIV otherwise, as the API table's LOCAL_PRIV_USER_AUTH gives).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from irods_ingest.testing.irods_server import obfuscation
from irods_ingest.testing.irods_server.auth import Identity
from irods_ingest.testing.irods_server.catalog import Catalog, Collection, now_ts
from irods_ingest.testing.irods_server.errors import (
    CAT_COLLECTION_NOT_EMPTY,
    CAT_INVALID_ARGUMENT,
    CAT_INVALID_RESOURCE_TYPE,
    CAT_INVALID_USER,
    CAT_INVALID_ZONE,
    CAT_RESOURCE_NOT_EMPTY,
    CAT_UNKNOWN_SPECIFIC_QUERY,
    CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME,
    HIERARCHY_ERROR,
    SYS_NO_API_PRIV,
    SYS_NOT_SUPPORTED,
    IrodsError,
)
from irods_ingest.testing.irods_server.packs import ArgsInp

USER_TYPES = ("rodsuser", "rodsadmin", "groupadmin", "rodsgroup")
RESOURCE_TYPES = ("unixfilesystem", "passthru", "random", "replication", "roundrobin", "compound", "s3",
                  "univmss", "load_balanced", "deferred", "mockarchive", "nonblocking", "structfile")


class Admin:
    def __init__(self, catalog: Catalog, signature_of: Callable[[], str], admin_password: Callable[[], str]) -> None:
        self.catalog = catalog
        self.signature_of = signature_of
        self.admin_password = admin_password

    # ------------------------------------------------------------ 701

    def general(self, who: Identity, inp: ArgsInp) -> None:
        if not who.client.is_admin:
            raise IrodsError(SYS_NO_API_PRIV, "GENERAL_ADMIN_AN needs a rodsadmin")
        a = inp.args
        verb, noun = a[0], a[1]
        with self.catalog.lock, self.catalog.transaction():
            if verb == "add" and noun in ("user", "group"):
                self._add_user(a[2], "rodsgroup" if noun == "group" else a[3], a[4], a[5])
            elif verb == "rm" and noun in ("user", "group"):
                self._remove_user(a[2], a[3])
            elif verb == "modify" and noun == "user":
                self._modify_user(a[2], a[3], a[4])
            elif verb == "modify" and noun == "group":
                self._membership(a[2], a[3], a[4], a[5])
            elif verb == "add" and noun == "resource":
                self._add_resource(a[2], a[3], a[4], a[5])
            elif verb == "rm" and noun == "resource":
                self._remove_resource(a[2])
            elif verb == "modify" and noun == "resource":
                self._modify_resource(a[2], a[3], a[4])
            elif verb == "add" and noun == "childtoresc":
                self.catalog.add_child(a[2], a[3], a[4])
            elif verb == "rm" and noun == "childfromresc":
                self.catalog.remove_child(a[2], a[3])
            elif verb == "add" and noun == "specificQuery":
                self._add_specific_query(a[2], a[3])
            elif verb == "rm" and noun == "specificQuery":
                if not self.catalog.x("DELETE FROM R_SPECIFIC_QUERY WHERE alias=? OR sqlStr=?", (a[2], a[2])):
                    raise IrodsError(CAT_UNKNOWN_SPECIFIC_QUERY, f"no specific query {a[2]!r}")
            elif verb == "rm" and noun == "unusedAVUs":
                self.catalog.remove_unused_avus()
            elif verb in ("calculate-usage", "set-quota"):
                return
            else:
                raise IrodsError(SYS_NOT_SUPPORTED, f"GENERAL_ADMIN {verb} {noun} is not supported")

    # ------------------------------------------------------------ 714

    def user_admin(self, who: Identity, inp: ArgsInp) -> None:
        a = inp.args
        with self.catalog.lock, self.catalog.transaction():
            if a[0] == "userpw" and a[2] == "password":
                if a[1] != who.client.name and not who.client.is_admin:
                    raise IrodsError(SYS_NO_API_PRIV, "users may change only their own password")
                user = self.catalog.user_or_raise(a[1])
                old = self.catalog.password_of(user.id) or ""
                self.catalog.set_password(user.id, obfuscation.decode_v2(a[3], old, self.signature_of()))
                return
            if who.client.type not in ("groupadmin", "rodsadmin"):
                raise IrodsError(SYS_NO_API_PRIV, "USER_ADMIN_AN needs a groupadmin")
            if a[0] == "mkuser":
                name = a[1].split("#")[0]
                password = obfuscation.decode_with_key(a[2], self.admin_password()) if a[2] else None
                self._add_user(name, "rodsuser", "", "", password)
            elif a[0] == "mkgroup":
                self._add_user(a[1], "rodsgroup", "", "")
            elif a[0] == "modify" and a[1] == "group":
                self._membership(a[2], a[3], a[4], a[5])
            else:
                raise IrodsError(SYS_NOT_SUPPORTED, f"USER_ADMIN {a[0]} is not supported")

    # ------------------------------------------------------------ users and groups

    def _add_user(self, name: str, user_type: str, zone: str, auth: str, password: str | None = None) -> None:
        if "#" in name:
            name, zone = name.split("#", 1)
        if zone and zone != self.catalog.zone:
            raise IrodsError(CAT_INVALID_ZONE, f"zone {zone} does not exist")
        if user_type not in USER_TYPES:
            raise IrodsError(CAT_INVALID_ARGUMENT, f"invalid user type {user_type!r}")
        if self.catalog.user(name) is not None:
            raise IrodsError(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, f"user {name} exists")
        user = self.catalog.add_user(name, user_type, password=password)
        if auth:
            self.catalog.x("INSERT INTO R_USER_AUTH VALUES(?,?,?)", (user.id, auth, now_ts()))

    def _remove_user(self, name: str, zone: str) -> None:
        user = self.catalog.user(name, zone or None)
        if user is None:
            raise IrodsError(CAT_INVALID_USER, f"user {name} does not exist")
        zone_name = self.catalog.zone
        homes = [c for c in (self.catalog.collection(f"/{zone_name}/home/{name}"),
                             self.catalog.collection(f"/{zone_name}/trash/home/{name}")) if c is not None]
        for home in homes:
            if not self.catalog.is_collection_empty(home):
                raise IrodsError(CAT_COLLECTION_NOT_EMPTY, f"{home.name} is not empty")
        for home in homes:
            self._drop_collection(home)
        self.catalog.x("DELETE FROM R_USER_MAIN WHERE user_id=?", (user.id,))
        self.catalog.x("DELETE FROM R_USER_PASSWORD WHERE user_id=?", (user.id,))
        self.catalog.x("DELETE FROM R_USER_GROUP WHERE user_id=? OR group_user_id=?", (user.id, user.id))
        self.catalog.x("DELETE FROM R_USER_AUTH WHERE user_id=?", (user.id,))
        self.catalog.x("DELETE FROM R_OBJT_ACCESS WHERE user_id=?", (user.id,))
        self.catalog.x("DELETE FROM R_OBJT_METAMAP WHERE object_id=?", (user.id,))

    def _drop_collection(self, coll: Collection) -> None:
        self.catalog.x("DELETE FROM R_COLL_MAIN WHERE coll_id=?", (coll.id,))
        self.catalog.delete_object_rows([coll.id])

    def _modify_user(self, name: str, option: str, value: str) -> None:
        user = self.catalog.user(name)
        if user is None:
            raise IrodsError(CAT_INVALID_USER, f"user {name} does not exist")
        if option == "password":
            self.catalog.set_password(user.id, obfuscation.decode_v2(value, self.admin_password(), self.signature_of()))
        elif option == "type":
            if value not in USER_TYPES:
                raise IrodsError(CAT_INVALID_ARGUMENT, f"invalid user type {value!r}")
            self.catalog.x("UPDATE R_USER_MAIN SET user_type_name=?, modify_ts=? WHERE user_id=?",
                           (value, now_ts(), user.id))
        elif option in ("info", "comment"):
            column = "user_info" if option == "info" else "r_comment"
            self.catalog.x(f"UPDATE R_USER_MAIN SET {column}=?, modify_ts=? WHERE user_id=?",
                           (value, now_ts(), user.id))
        elif option in ("addAuth", "rmAuth"):
            if option == "addAuth":
                self.catalog.x("INSERT INTO R_USER_AUTH VALUES(?,?,?)", (user.id, value, now_ts()))
            else:
                self.catalog.x("DELETE FROM R_USER_AUTH WHERE user_id=? AND user_auth_name=?", (user.id, value))
        else:
            raise IrodsError(SYS_NOT_SUPPORTED, f"modify user {option} is not supported")

    def _membership(self, group_name: str, action: str, user_name: str, zone: str) -> None:
        group = self.catalog.user(group_name)
        if group is None or not group.is_group:
            raise IrodsError(CAT_INVALID_USER, f"group {group_name} does not exist")
        user = self.catalog.user(user_name, zone or None)
        if user is None:
            raise IrodsError(CAT_INVALID_USER, f"user {user_name} does not exist")
        if action == "add":
            t = now_ts()
            if self.catalog.x("INSERT OR IGNORE INTO R_USER_GROUP VALUES(?,?,?,?)", (group.id, user.id, t, t)) == 0:
                raise IrodsError(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, f"{user_name} is already in {group_name}")
        elif action == "remove":
            self.catalog.x("DELETE FROM R_USER_GROUP WHERE group_user_id=? AND user_id=?", (group.id, user.id))
        else:
            raise IrodsError(CAT_INVALID_ARGUMENT, f"modify group {action!r}")

    # ------------------------------------------------------------ resources

    def _add_resource(self, name: str, resc_type: str, location: str, context: str) -> None:
        if self.catalog.resource(name) is not None:
            raise IrodsError(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, f"resource {name} exists")
        if resc_type.lower() not in RESOURCE_TYPES:
            raise IrodsError(CAT_INVALID_RESOURCE_TYPE, f"resource type {resc_type!r} is not supported")
        host, _, vault = location.partition(":")
        self.catalog.add_resource(name, resc_type, vault, host=host or None, context=context)
        if vault:
            try:
                Path(vault).mkdir(parents=True, exist_ok=True)
            except OSError:
                pass  # the real server creates the vault lazily as well

    def _remove_resource(self, name: str) -> None:
        resc = self.catalog.resource_or_raise(name)
        if self.catalog.one("SELECT 1 FROM R_DATA_MAIN WHERE resc_id=? LIMIT 1", (resc.id,)):
            raise IrodsError(CAT_RESOURCE_NOT_EMPTY, f"resource {name} holds replicas")
        if self.catalog.children(resc.id):
            raise IrodsError(HIERARCHY_ERROR, f"resource {name} has children")
        self.catalog.x("DELETE FROM R_RESC_MAIN WHERE resc_id=?", (resc.id,))
        self.catalog.x("DELETE FROM R_OBJT_METAMAP WHERE object_id=?", (resc.id,))
        self.catalog.refresh_hierarchies()

    def _modify_resource(self, name: str, option: str, value: str) -> None:
        resc = self.catalog.resource_or_raise(name)
        columns = {"name": "resc_name", "type": "resc_type_name", "host": "resc_net", "path": "resc_def_path",
                   "status": "resc_status", "comment": "r_comment", "info": "resc_info",
                   "free_space": "free_space", "context": "resc_context"}
        column = columns.get(option)
        if column is None:
            raise IrodsError(SYS_NOT_SUPPORTED, f"modify resource {option} is not supported")
        self.catalog.x(f"UPDATE R_RESC_MAIN SET {column}=?, modify_ts=? WHERE resc_id=?", (value, now_ts(), resc.id))
        self.catalog.refresh_hierarchies()

    def _add_specific_query(self, sql: str, alias: str) -> None:
        if self.catalog.one("SELECT 1 FROM R_SPECIFIC_QUERY WHERE alias=?", (alias,)):
            raise IrodsError(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, f"specific query {alias} exists")
        self.catalog.x("INSERT INTO R_SPECIFIC_QUERY VALUES(?,?,?)", (alias, sql, now_ts()))
