"""GENERAL_ADMIN_AN (701), USER_ADMIN_AN (714) and SPECIFIC_QUERY_AN (722).

The subset ``iadmin`` and python-irodsclient's own test set-up use: users, groups and
their members, passwords, resources and their children, specific queries, quotas and
their usage. 701 needs a rodsadmin (SYS_NO_API_PRIV otherwise, as the API table's
LOCAL_PRIV_USER_AUTH gives).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from irods_ingest_testkit.irods_server import obfuscation
from irods_ingest_testkit.irods_server.auth import Identity
from irods_ingest_testkit.irods_server.catalog import Catalog, Collection, now_ts
from irods_ingest_testkit.irods_server.errors import (
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
from irods_ingest_testkit.irods_server.packs import ArgsInp

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
        verbs: dict[tuple[str, str], Callable[[], object]] = {
            ("add", "user"): lambda: self._add_user(a[2], a[3], a[4], a[5]),
            ("add", "group"): lambda: self._add_user(a[2], "rodsgroup", a[4], a[5]),
            ("rm", "user"): lambda: self._remove_user(a[2], a[3]),
            ("rm", "group"): lambda: self._remove_user(a[2], a[3]),
            ("modify", "user"): lambda: self._modify_user(a[2], a[3], a[4]),
            ("modify", "group"): lambda: self._membership(a[2], a[3], a[4], a[5]),
            ("add", "resource"): lambda: self._add_resource(a[2], a[3], a[4], a[5]),
            ("rm", "resource"): lambda: self._remove_resource(a[2], dry_run=a[3] in ("--dryrun", "--dry-run")),
            ("modify", "resource"): lambda: self._modify_resource(a[2], a[3], a[4]),
            ("add", "childtoresc"): lambda: self.catalog.add_child(a[2], a[3], a[4]),
            ("rm", "childfromresc"): lambda: self.catalog.remove_child(a[2], a[3]),
            ("add", "specificQuery"): lambda: self._add_specific_query(a[2], a[3]),
            ("rm", "specificQuery"): lambda: self._remove_specific_query(a[2]),
            ("rm", "unusedAVUs"): self.catalog.remove_unused_avus,
            ("add", "zone"): lambda: self._add_zone(a[2], a[3], a[4], a[5]),
            ("rm", "zone"): lambda: self._remove_zone(a[2]),
            ("set-quota", "user"): lambda: self._set_quota(a[2], a[3], a[4]),
            ("set-quota", "group"): lambda: self._set_quota(a[2], a[3], a[4]),
            ("calculate-usage", ""): self._calculate_usage,
        }
        action = verbs.get((a[0], a[1]))
        if action is None:
            raise IrodsError(SYS_NOT_SUPPORTED, f"GENERAL_ADMIN {a[0]} {a[1]} is not supported")
        with self.catalog.lock, self.catalog.transaction():
            action()

    def _set_quota(self, name: str, resource: str, amount: str) -> None:
        """A quota of ``amount`` bytes for a user or group on one resource or ``total`` (resc_id 0)."""
        user = self.catalog.user(name)
        if user is None:
            raise IrodsError(CAT_INVALID_USER, f"user {name} does not exist")
        resc_id = 0 if resource == "total" else self.catalog.resource_or_raise(resource).id
        try:
            limit = int(amount)
        except ValueError:
            raise IrodsError(CAT_INVALID_ARGUMENT, f"quota {amount!r} is not a number") from None
        self.catalog.x("DELETE FROM R_QUOTA_MAIN WHERE user_id=? AND resc_id=?", (user.id, resc_id))
        if limit > 0:  # 0 removes the quota
            self.catalog.x("INSERT INTO R_QUOTA_MAIN VALUES(?,?,?,?,?)", (user.id, resc_id, limit, -limit, now_ts()))

    def _calculate_usage(self) -> None:
        """quota_over = usage - limit, usage being the bytes of every replica the user (or a member
        of the group) owns, on that resource or in total (chlCalcUsageAndQuota)."""
        for user_id, resc_id, limit in self.catalog.q("SELECT user_id, resc_id, quota_limit FROM R_QUOTA_MAIN"):
            members = [user_id] + [r[0] for r in self.catalog.q(
                "SELECT user_id FROM R_USER_GROUP WHERE group_user_id=? AND user_id<>?", (user_id, user_id))]
            marks = ",".join("?" * len(members))
            where = "" if resc_id == 0 else " AND d.resc_id=?"
            row = self.catalog.one(
                "SELECT COALESCE(SUM(d.data_size), 0) FROM R_DATA_MAIN d JOIN R_USER_MAIN u "
                "ON u.user_name=d.data_owner_name AND u.zone_name=d.data_owner_zone "
                f"WHERE u.user_id IN ({marks}){where}",
                (*members, *([resc_id] if resc_id else [])),
            )
            usage = int(row[0]) if row else 0
            self.catalog.x("UPDATE R_QUOTA_MAIN SET quota_over=?, modify_ts=? WHERE user_id=? AND resc_id=?",
                           (usage - int(limit), now_ts(), user_id, resc_id))

    def _remove_specific_query(self, name: str) -> None:
        if not self.catalog.x("DELETE FROM R_SPECIFIC_QUERY WHERE alias=? OR sqlStr=?", (name, name)):
            raise IrodsError(CAT_UNKNOWN_SPECIFIC_QUERY, f"no specific query {name!r}")

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
                password = obfuscation.decode_with_key(a[2], self.admin_password()) if a[2] else None
                self._add_user(a[1], "rodsuser", "", "", password)
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
        zone = zone or self.catalog.zone
        if self.catalog.zone_type(zone) is None:
            raise IrodsError(CAT_INVALID_ZONE, f"zone {zone} does not exist")
        if user_type not in USER_TYPES:
            raise IrodsError(CAT_INVALID_ARGUMENT, f"invalid user type {user_type!r}")
        if self.catalog.user(name, zone) is not None:
            raise IrodsError(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, f"user {name}#{zone} exists")
        user = self.catalog.add_user(name, user_type, zone=zone, password=password)
        if auth:
            self.catalog.x("INSERT INTO R_USER_AUTH VALUES(?,?,?)", (user.id, auth, now_ts()))

    def _remove_user(self, name: str, zone: str) -> None:
        user = self.catalog.user(name, zone or None)
        if user is None:
            raise IrodsError(CAT_INVALID_USER, f"user {name} does not exist")
        home_name = self.catalog.home_name(user.name, user.zone)  # the request may say name#zone
        zone_name = self.catalog.zone
        homes = [c for c in (self.catalog.collection(f"/{zone_name}/home/{home_name}"),
                             self.catalog.collection(f"/{zone_name}/trash/home/{home_name}")) if c is not None]
        for home in homes:
            if not self.catalog.is_collection_empty(home):
                raise IrodsError(CAT_COLLECTION_NOT_EMPTY, f"{home.name} is not empty")
        for home in homes:
            self._drop_collection(home)
        self.catalog.x("DELETE FROM R_QUOTA_MAIN WHERE user_id=?", (user.id,))
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

    # ------------------------------------------------------------ zones

    def _add_zone(self, name: str, zone_type: str, connection: str, comment: str) -> None:
        """Register a remote zone (no federation: it only makes ``user#zone`` entries possible)."""
        if zone_type != "remote":
            raise IrodsError(CAT_INVALID_ARGUMENT, "only remote zones can be added")
        if self.catalog.zone_type(name) is not None:
            raise IrodsError(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, f"zone {name} exists")
        t = now_ts()
        self.catalog.x("INSERT INTO R_ZONE_MAIN(zone_id, zone_name, zone_type_name, zone_conn_string, r_comment, "
                       "create_ts, modify_ts) VALUES(?,?,?,?,?,?,?)",
                       (self.catalog.next_id(), name, zone_type, connection, comment, t, t))

    def _remove_zone(self, name: str) -> None:
        zone_type = self.catalog.zone_type(name)
        if zone_type is None:
            raise IrodsError(CAT_INVALID_ZONE, f"zone {name} does not exist")
        if zone_type == "local":
            raise IrodsError(CAT_INVALID_ARGUMENT, "the local zone cannot be removed")
        self.catalog.x("DELETE FROM R_ZONE_MAIN WHERE zone_name=?", (name,))

    # ------------------------------------------------------------ resources

    def _add_resource(self, name: str, resc_type: str, location: str, context: str) -> None:
        if self.catalog.resource(name) is not None:
            raise IrodsError(CATALOG_ALREADY_HAS_ITEM_BY_THAT_NAME, f"resource {name} exists")
        if resc_type.lower() not in RESOURCE_TYPES:
            raise IrodsError(CAT_INVALID_RESOURCE_TYPE, f"resource type {resc_type!r} is not supported")
        host, _, vault = location.partition(":")
        self.catalog.add_resource(name, resc_type, vault, host=host or None, context=context)
        if vault:
            with contextlib.suppress(OSError):  # the real server creates the vault lazily as well
                Path(vault).mkdir(parents=True, exist_ok=True)

    def _remove_resource(self, name: str, dry_run: bool = False) -> None:
        resc = self.catalog.resource_or_raise(name)
        if self.catalog.one("SELECT 1 FROM R_DATA_MAIN WHERE resc_id=? LIMIT 1", (resc.id,)):
            raise IrodsError(CAT_RESOURCE_NOT_EMPTY, f"resource {name} holds replicas")
        if self.catalog.children(resc.id):
            raise IrodsError(HIERARCHY_ERROR, f"resource {name} has children")
        if dry_run:
            return
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
            raise IrodsError(CAT_INVALID_ARGUMENT, "Alias is not unique")  # chlAddSpecificQuery
        self.catalog.x("INSERT INTO R_SPECIFIC_QUERY VALUES(?,?,?)", (alias, sql, now_ts()))
