"""The catalog: SQLite with the real ICAT table and column names, plus the vault on disk.

Tables and columns follow ``server/icat/src/icatSysTables.sql.pp`` (iRODS 4.3/5.0):
``R_ZONE_MAIN``, ``R_USER_MAIN``, ``R_USER_PASSWORD``, ``R_USER_GROUP``, ``R_RESC_MAIN``,
``R_COLL_MAIN``, ``R_DATA_MAIN``, ``R_META_MAIN``, ``R_OBJT_METAMAP``, ``R_OBJT_ACCESS``,
``R_TOKN_MAIN``, ``R_SPECIFIC_QUERY`` ... so that GenQuery translates to SQL the way the
real server's ``general_query.cpp`` does. All object ids come from one sequence, as in
iRODS (``R_ObjectID``), because ``R_OBJT_METAMAP.object_id`` does not record a type.

Bootstrap (what ``irods-ingest test-server`` comes up with):

* zone ``tempZone``; user ``rods`` (rodsadmin, password ``rods``); group ``public``;
* collections ``/``, ``/tempZone``, ``/tempZone/home``, ``/tempZone/home/public``,
  ``/tempZone/home/rods``, ``/tempZone/trash``, ``/tempZone/trash/home``,
  ``/tempZone/trash/home/rods``, ``/tempZone/trash/home/public``;
* resources: ``demoResc`` (unixfilesystem, the default, vault ``DIR/vault/demoResc``) and a
  hierarchy ``rootResc`` (passthru) -> ``midResc`` (random) -> ``leaf1Resc``, ``leaf2Resc``
  (unixfilesystem, vaults ``DIR/vault/leaf1Resc`` and ``DIR/vault/leaf2Resc``).

Everything runs under one re-entrant lock: the server is for tests, correctness over speed.
"""

from __future__ import annotations

import contextlib
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from irods_ingest_testkit.irods_server.errors import (
    CAT_INVALID_USER,
    CAT_UNKNOWN_COLLECTION,
    HIERARCHY_ERROR,
    SYS_RESC_DOES_NOT_EXIST,
    USER_FILE_TOO_LARGE,
    IrodsError,
)

ZONE: Final = "tempZone"
ADMIN_USER: Final = "rods"
ADMIN_PASSWORD: Final = "rods"
PUBLIC_GROUP: Final = "public"
DEFAULT_RESOURCE: Final = "demoResc"
ROOT_RESOURCE: Final = "rootResc"
MID_RESOURCE: Final = "midResc"
LEAF_RESOURCES: Final = ("leaf1Resc", "leaf2Resc")

# data_is_dirty values (irods/replica_state.hpp)
STALE_REPLICA: Final = 0
GOOD_REPLICA: Final = 1
INTERMEDIATE_REPLICA: Final = 2
READ_LOCKED: Final = 3
WRITE_LOCKED: Final = 4

# Access levels (server/core/include/irods/catalog_utilities.hpp; PRC irods/access.py)
ACCESS_LEVELS: Final[dict[str, int]] = {
    "null": 1000,
    "execute": 1010,
    "read_annotation": 1020,
    "read_system_metadata": 1030,
    "read_metadata": 1040,
    "read_object": 1050,
    "write_annotation": 1060,
    "create_metadata": 1070,
    "modify_metadata": 1080,
    "delete_metadata": 1090,
    "administer_object": 1100,
    "create_object": 1110,
    "modify_object": 1120,
    "delete_object": 1130,
    "create_token": 1140,
    "delete_token": 1150,
    "curate": 1160,
    "own": 1200,
}
ACCESS_ALIASES: Final = {"read": "read_object", "write": "modify_object"}
READ_METADATA: Final = ACCESS_LEVELS["read_metadata"]
READ_OBJECT: Final = ACCESS_LEVELS["read_object"]
MODIFY_OBJECT: Final = ACCESS_LEVELS["modify_object"]
DELETE_OBJECT: Final = ACCESS_LEVELS["delete_object"]
OWN: Final = ACCESS_LEVELS["own"]

COORDINATING_TYPES: Final = frozenset({"passthru", "random", "replication", "roundrobin", "compound", "deferred", "load_balanced"})
STORAGE_TYPES: Final = frozenset({"unixfilesystem", "unix file system", "s3", "univmss", "mockarchive", "nonblocking"})

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS R_OBJECTID(next_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS R_ZONE_MAIN(zone_id INTEGER PRIMARY KEY, zone_name TEXT NOT NULL UNIQUE,
  zone_type_name TEXT NOT NULL, zone_conn_string TEXT DEFAULT '', r_comment TEXT DEFAULT '',
  create_ts TEXT, modify_ts TEXT);
CREATE TABLE IF NOT EXISTS R_USER_MAIN(user_id INTEGER PRIMARY KEY, user_name TEXT NOT NULL,
  user_type_name TEXT NOT NULL, zone_name TEXT NOT NULL, user_info TEXT DEFAULT '', r_comment TEXT DEFAULT '',
  create_ts TEXT, modify_ts TEXT, UNIQUE(user_name, zone_name));
CREATE TABLE IF NOT EXISTS R_USER_PASSWORD(user_id INTEGER NOT NULL, rcat_password TEXT NOT NULL,
  pass_expiry_ts TEXT DEFAULT '9999-12-31', create_ts TEXT, modify_ts TEXT);
CREATE TABLE IF NOT EXISTS R_USER_GROUP(group_user_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
  create_ts TEXT, modify_ts TEXT, UNIQUE(group_user_id, user_id));
CREATE TABLE IF NOT EXISTS R_USER_AUTH(user_id INTEGER NOT NULL, user_auth_name TEXT, create_ts TEXT);
CREATE TABLE IF NOT EXISTS R_RESC_MAIN(resc_id INTEGER PRIMARY KEY, resc_name TEXT NOT NULL UNIQUE,
  zone_name TEXT NOT NULL, resc_type_name TEXT NOT NULL, resc_class_name TEXT NOT NULL DEFAULT 'cache',
  resc_net TEXT NOT NULL DEFAULT '', resc_def_path TEXT NOT NULL DEFAULT '', free_space TEXT DEFAULT '',
  free_space_ts TEXT DEFAULT '', resc_info TEXT DEFAULT '', r_comment TEXT DEFAULT '',
  resc_status TEXT DEFAULT '', create_ts TEXT, modify_ts TEXT, resc_children TEXT DEFAULT '',
  resc_context TEXT DEFAULT '', resc_parent TEXT DEFAULT '', resc_parent_context TEXT DEFAULT '');
CREATE TABLE IF NOT EXISTS R_COLL_MAIN(coll_id INTEGER PRIMARY KEY, parent_coll_name TEXT NOT NULL,
  coll_name TEXT NOT NULL UNIQUE, coll_owner_name TEXT NOT NULL, coll_owner_zone TEXT NOT NULL,
  coll_map_id INTEGER DEFAULT 0, coll_inheritance TEXT DEFAULT '', coll_type TEXT DEFAULT '',
  coll_info1 TEXT DEFAULT '', coll_info2 TEXT DEFAULT '', coll_expiry_ts TEXT DEFAULT '',
  r_comment TEXT DEFAULT '', create_ts TEXT, modify_ts TEXT);
CREATE TABLE IF NOT EXISTS R_DATA_MAIN(data_id INTEGER NOT NULL, coll_id INTEGER NOT NULL,
  data_name TEXT NOT NULL, data_repl_num INTEGER NOT NULL, data_version TEXT DEFAULT '',
  data_type_name TEXT NOT NULL DEFAULT 'generic', data_size INTEGER NOT NULL DEFAULT 0,
  resc_id INTEGER NOT NULL, data_path TEXT NOT NULL, data_owner_name TEXT NOT NULL,
  data_owner_zone TEXT NOT NULL, data_is_dirty INTEGER DEFAULT 0, data_status TEXT DEFAULT '',
  data_checksum TEXT DEFAULT '', data_expiry_ts TEXT DEFAULT '00000000000', data_map_id INTEGER DEFAULT 0,
  data_mode TEXT DEFAULT '', r_comment TEXT DEFAULT '', create_ts TEXT, modify_ts TEXT, access_ts TEXT,
  PRIMARY KEY(data_id, data_repl_num));
CREATE INDEX IF NOT EXISTS idx_data_coll ON R_DATA_MAIN(coll_id, data_name);
CREATE INDEX IF NOT EXISTS idx_coll_parent ON R_COLL_MAIN(parent_coll_name);
CREATE TABLE IF NOT EXISTS R_META_MAIN(meta_id INTEGER PRIMARY KEY, meta_namespace TEXT DEFAULT '',
  meta_attr_name TEXT NOT NULL, meta_attr_value TEXT NOT NULL, meta_attr_unit TEXT DEFAULT '',
  r_comment TEXT DEFAULT '', create_ts TEXT, modify_ts TEXT);
CREATE TABLE IF NOT EXISTS R_OBJT_METAMAP(object_id INTEGER NOT NULL, meta_id INTEGER NOT NULL,
  create_ts TEXT, modify_ts TEXT, UNIQUE(object_id, meta_id));
CREATE INDEX IF NOT EXISTS idx_metamap_obj ON R_OBJT_METAMAP(object_id);
CREATE TABLE IF NOT EXISTS R_OBJT_ACCESS(object_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
  access_type_id INTEGER NOT NULL, create_ts TEXT, modify_ts TEXT, UNIQUE(object_id, user_id));
CREATE INDEX IF NOT EXISTS idx_access_obj ON R_OBJT_ACCESS(object_id);
CREATE TABLE IF NOT EXISTS R_TOKN_MAIN(token_namespace TEXT NOT NULL, token_id INTEGER NOT NULL,
  token_name TEXT NOT NULL, token_value TEXT DEFAULT '', token_value2 TEXT DEFAULT '',
  token_value3 TEXT DEFAULT '', r_comment TEXT DEFAULT '', create_ts TEXT, modify_ts TEXT);
CREATE TABLE IF NOT EXISTS R_SPECIFIC_QUERY(alias TEXT, sqlStr TEXT, create_ts TEXT);
CREATE TABLE IF NOT EXISTS R_QUOTA_MAIN(user_id INTEGER, resc_id INTEGER, quota_limit INTEGER,
  quota_over INTEGER, modify_ts TEXT);
CREATE TABLE IF NOT EXISTS R_RULE_EXEC(rule_exec_id INTEGER PRIMARY KEY, rule_name TEXT, rei_file_path TEXT,
  user_name TEXT, exe_address TEXT, exe_time TEXT, exe_frequency TEXT, priority TEXT, estimated_exe_time TEXT,
  notification_addr TEXT, last_exe_time TEXT, exe_status TEXT, exe_context TEXT, create_ts TEXT, modify_ts TEXT);
CREATE TABLE IF NOT EXISTS R_TICKET_MAIN(ticket_id INTEGER PRIMARY KEY, ticket_string TEXT, ticket_type TEXT,
  user_id INTEGER, object_id INTEGER, object_type TEXT, uses_limit INTEGER, uses_count INTEGER,
  write_file_limit INTEGER, write_file_count INTEGER, write_byte_limit INTEGER, write_byte_count INTEGER,
  ticket_expiry_ts TEXT, restrictions TEXT, create_ts TEXT, modify_ts TEXT);
CREATE TABLE IF NOT EXISTS R_TICKET_ALLOWED_HOSTS(ticket_id INTEGER, host TEXT);
CREATE TABLE IF NOT EXISTS R_TICKET_ALLOWED_USERS(ticket_id INTEGER, user_name TEXT);
CREATE TABLE IF NOT EXISTS R_TICKET_ALLOWED_GROUPS(ticket_id INTEGER, group_name TEXT);
"""

FIRST_OBJECT_ID: Final = 10000

# Built-in specific queries of the server's icatSysInserts.sql: the listing ones, and the two
# paged ACL listings behind ``ils -A`` (rewritten for this schema, with LIMIT ? OFFSET ?).
BUILTIN_SPECIFIC_QUERIES: Final = (
    ("ls", "select alias,sqlStr from R_SPECIFIC_QUERY"),
    ("lsl", "select alias,sqlStr from R_SPECIFIC_QUERY where sqlStr like ?"),
    ("ilsLACollections",
     "SELECT c.parent_coll_name, c.coll_name, c.create_ts, c.modify_ts, c.coll_id, c.coll_owner_name, "
     "c.coll_owner_zone, c.coll_type, u.user_name, u.zone_name, a.access_type_id, u.user_id "
     "FROM R_COLL_MAIN c JOIN R_OBJT_ACCESS a ON c.coll_id = a.object_id JOIN R_USER_MAIN u ON a.user_id = u.user_id "
     "WHERE c.parent_coll_name = ? ORDER BY c.coll_name, u.user_name, a.access_type_id DESC LIMIT ? OFFSET ?"),
    ("ilsLADataObjects",
     "SELECT c.coll_name, d.data_name, d.create_ts, d.modify_ts, d.data_id, d.data_size, d.data_repl_num, "
     "d.data_owner_name, d.data_owner_zone, u.user_name, u.user_id, a.access_type_id, u.user_type_name, u.zone_name "
     "FROM R_COLL_MAIN c JOIN R_DATA_MAIN d ON c.coll_id = d.coll_id JOIN R_OBJT_ACCESS a ON d.data_id = a.object_id "
     "JOIN R_USER_MAIN u ON a.user_id = u.user_id WHERE c.coll_name = ? "
     "ORDER BY c.coll_name, d.data_name, u.user_name, a.access_type_id DESC LIMIT ? OFFSET ?"),
)


def now_ts() -> str:
    """iRODS timestamps: seconds since the epoch, zero-padded to 11 digits."""
    return f"{int(time.time()):011d}"


def split_path(path: str) -> tuple[str, str]:
    parent, _, name = path.rpartition("/")
    return parent or "/", name


def normalize_path(path: str) -> str:
    """Collapse ``//`` and a trailing ``/`` as the server's path handling does."""
    if not path.startswith("/"):
        return path
    parts = [p for p in path.split("/") if p]
    return "/" + "/".join(parts)


@dataclass(frozen=True)
class User:
    id: int
    name: str
    type: str
    zone: str

    @property
    def is_admin(self) -> bool:
        return self.type == "rodsadmin"

    @property
    def is_group(self) -> bool:
        return self.type == "rodsgroup"


@dataclass(frozen=True)
class Resource:
    id: int
    name: str
    type: str
    host: str
    vault: str
    parent_id: int | None
    context: str

    @property
    def is_storage(self) -> bool:
        return self.type.lower() not in COORDINATING_TYPES


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    parent: str
    owner: str
    zone: str
    inheritance: bool


@dataclass(frozen=True)
class Replica:
    data_id: int
    coll_id: int
    name: str
    repl_num: int
    size: int
    resc_id: int
    path: str
    status: int
    checksum: str
    owner: str
    owner_zone: str
    data_type: str
    create_ts: str
    modify_ts: str


_REPLICA_COLUMNS: Final = (
    "data_id, coll_id, data_name, data_repl_num, data_size, resc_id, data_path, data_is_dirty, "
    "data_checksum, data_owner_name, data_owner_zone, data_type_name, create_ts, modify_ts"
)


def _replica(row: Sequence[Any]) -> Replica:
    return Replica(
        data_id=row[0],
        coll_id=row[1],
        name=row[2],
        repl_num=row[3],
        size=row[4],
        resc_id=row[5],
        path=row[6],
        status=row[7],
        checksum=row[8] or "",
        owner=row[9],
        owner_zone=row[10],
        data_type=row[11],
        create_ts=row[12],
        modify_ts=row[13],
    )


class Catalog:
    """The catalog database and the vault root; every method is safe to call from any thread."""

    def __init__(self, data_dir: Path, zone: str = ZONE, hostname: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.vault_root = self.data_dir / "vault"
        self.zone = zone
        self.hostname = hostname or socket.gethostname()
        self.lock = threading.RLock()
        self._tx_depth = 0
        self._hier_cache: dict[int, str] = {}
        self.db = sqlite3.connect(
            str(self.data_dir / "catalog.sqlite"), check_same_thread=False, isolation_level=None
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")
        # PostgreSQL's LIKE is case-sensitive; GenQuery relies on that.
        self.db.execute("PRAGMA case_sensitive_like=ON")
        self.db.create_function("resc_hier", 1, self._hier_of_id, deterministic=True)
        with self.lock:
            self.db.executescript(SCHEMA)
            if self.one("SELECT count(*) FROM R_OBJECTID")[0] == 0:  # type: ignore[index]
                self._bootstrap()
            self.refresh_hierarchies()

    # ------------------------------------------------------------ plumbing

    def q(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self.lock:
            row: tuple[Any, ...] | None = self.db.execute(sql, args).fetchone()
            return row

    def x(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self.lock:
            return self.db.execute(sql, args).rowcount

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing for a group of statements (nested uses join the outer one)."""
        with self.lock:
            if self._tx_depth:
                self._tx_depth += 1
                try:
                    yield
                finally:
                    self._tx_depth -= 1
                return
            self.db.execute("BEGIN")
            self._tx_depth = 1
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            else:
                self.db.execute("COMMIT")
            finally:
                self._tx_depth = 0

    def next_id(self) -> int:
        with self.lock:
            (value,) = self.one("SELECT next_id FROM R_OBJECTID") or (FIRST_OBJECT_ID,)
            self.x("UPDATE R_OBJECTID SET next_id = ?", (value + 1,))
            return int(value)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # ------------------------------------------------------------ bootstrap

    def _bootstrap(self) -> None:
        with self.transaction():
            self.x("INSERT INTO R_OBJECTID VALUES(?)", (FIRST_OBJECT_ID,))
            t = now_ts()
            self.x(
                "INSERT INTO R_ZONE_MAIN(zone_id, zone_name, zone_type_name, create_ts, modify_ts) VALUES(?,?,?,?,?)",
                (self.next_id(), self.zone, "local", t, t),
            )
            for namespace, levels in (("access_type", ACCESS_LEVELS),):
                for name, level in levels.items():
                    self.x(
                        "INSERT INTO R_TOKN_MAIN(token_namespace, token_id, token_name, create_ts, modify_ts) "
                        "VALUES(?,?,?,?,?)",
                        (namespace, level, name, t, t),
                    )
            for alias, sql in BUILTIN_SPECIFIC_QUERIES:
                self.x("INSERT INTO R_SPECIFIC_QUERY VALUES(?,?,?)", (alias, sql, t))
            self.add_user(PUBLIC_GROUP, "rodsgroup")
            self.add_user(ADMIN_USER, "rodsadmin", password=ADMIN_PASSWORD, make_home=False)
            for path in ("/", f"/{self.zone}", f"/{self.zone}/home", f"/{self.zone}/trash",
                         f"/{self.zone}/trash/home"):
                cid = self.make_collection(path, ADMIN_USER)
                self.set_access(cid, self.user_or_raise(PUBLIC_GROUP).id, READ_OBJECT)
            self.make_home_collections(ADMIN_USER)
            public_home = self.make_collection(f"/{self.zone}/home/{PUBLIC_GROUP}", ADMIN_USER)
            # Every user may create in /zone/home/public: python-irodsclient's own tests (its quota
            # tests, run against real servers) create objects there as a fresh rodsuser.
            self.set_access(public_home, self.user_or_raise(PUBLIC_GROUP).id, MODIFY_OBJECT)
            self.make_collection(f"/{self.zone}/trash/home/{PUBLIC_GROUP}", ADMIN_USER)
            self.add_resource(DEFAULT_RESOURCE, "unixfilesystem", str(self.vault_root / DEFAULT_RESOURCE))
            self.add_resource(ROOT_RESOURCE, "passthru", "")
            self.add_resource(MID_RESOURCE, "random", "")
            self.add_child(ROOT_RESOURCE, MID_RESOURCE)
            for leaf in LEAF_RESOURCES:
                self.add_resource(leaf, "unixfilesystem", str(self.vault_root / leaf))
                self.add_child(MID_RESOURCE, leaf)

    # ------------------------------------------------------------ users and groups

    def user(self, name: str, zone: str | None = None) -> User | None:
        if "#" in name:
            name, zone = name.split("#", 1)
        row = self.one(
            "SELECT user_id, user_name, user_type_name, zone_name FROM R_USER_MAIN WHERE user_name=? AND zone_name=?",
            (name, zone or self.zone),
        )
        return User(*row) if row else None

    def user_or_raise(self, name: str, zone: str | None = None) -> User:
        found = self.user(name, zone)
        if found is None:
            raise IrodsError(CAT_INVALID_USER, f"no such user {name}")
        return found

    def user_by_id(self, user_id: int) -> User | None:
        row = self.one(
            "SELECT user_id, user_name, user_type_name, zone_name FROM R_USER_MAIN WHERE user_id=?", (user_id,)
        )
        return User(*row) if row else None

    def password_of(self, user_id: int) -> str | None:
        row = self.one("SELECT rcat_password FROM R_USER_PASSWORD WHERE user_id=?", (user_id,))
        return str(row[0]) if row else None

    def set_password(self, user_id: int, password: str) -> None:
        t = now_ts()
        with self.transaction():
            self.x("DELETE FROM R_USER_PASSWORD WHERE user_id=?", (user_id,))
            self.x(
                "INSERT INTO R_USER_PASSWORD(user_id, rcat_password, create_ts, modify_ts) VALUES(?,?,?,?)",
                (user_id, password, t, t),
            )

    def add_user(
        self, name: str, user_type: str, zone: str | None = None, password: str | None = None,
        make_home: bool = True,
    ) -> User:
        t = now_ts()
        zone = zone or self.zone
        with self.transaction():
            uid = self.next_id()
            self.x(
                "INSERT INTO R_USER_MAIN(user_id, user_name, user_type_name, zone_name, create_ts, modify_ts) "
                "VALUES(?,?,?,?,?,?)",
                (uid, name, user_type, zone, t, t),
            )
            # Every user is a member of its own group, and ordinary users of "public" (icatHighLevelRoutines).
            self.x("INSERT INTO R_USER_GROUP VALUES(?,?,?,?)", (uid, uid, t, t))
            if user_type != "rodsgroup":
                public = self.user(PUBLIC_GROUP)
                if public is not None:
                    self.x("INSERT OR IGNORE INTO R_USER_GROUP VALUES(?,?,?,?)", (public.id, uid, t, t))
            if password is not None:
                self.set_password(uid, password)
            user = User(uid, name, user_type, zone)
            if make_home and self.collection(f"/{self.zone}/home") is not None:
                self.make_home_collections(name, zone)
        return user

    def home_name(self, name: str, zone: str | None = None) -> str:
        """The name of a user's home (and trash) collection: ``user``, or ``user#zone`` for a
        user of a remote zone (chlRegUserRE)."""
        return name if zone in (None, "", self.zone) else f"{name}#{zone}"

    def make_home_collections(self, name: str, zone: str | None = None) -> None:
        home = self.home_name(name, zone)
        for path in (f"/{self.zone}/home/{home}", f"/{self.zone}/trash/home/{home}"):
            if self.collection(path) is None:
                self.make_collection(path, name, zone)

    def zone_type(self, name: str) -> str | None:
        """``local``, ``remote``, or None for an unknown zone."""
        row = self.one("SELECT zone_type_name FROM R_ZONE_MAIN WHERE zone_name=?", (name,))
        return str(row[0]) if row else None

    def group_ids(self, user_id: int) -> list[int]:
        return [r[0] for r in self.q("SELECT group_user_id FROM R_USER_GROUP WHERE user_id=?", (user_id,))]

    # ------------------------------------------------------------ resources

    def _resource(self, row: Sequence[Any] | None) -> Resource | None:
        if row is None:
            return None
        parent = str(row[5] or "")
        return Resource(row[0], row[1], row[2], row[3], row[4], int(parent) if parent.isdigit() else None, row[6] or "")

    _RESC_COLUMNS: Final = "resc_id, resc_name, resc_type_name, resc_net, resc_def_path, resc_parent, resc_context"

    def resource(self, name: str) -> Resource | None:
        return self._resource(self.one(f"SELECT {self._RESC_COLUMNS} FROM R_RESC_MAIN WHERE resc_name=?", (name,)))

    def resource_or_raise(self, name: str) -> Resource:
        found = self.resource(name)
        if found is None:
            raise IrodsError(SYS_RESC_DOES_NOT_EXIST, f"resource {name} does not exist")
        return found

    def require_free_space(self, leaf: Resource, size: int) -> None:
        """USER_FILE_TOO_LARGE when a create would leave the leaf below the minimum its context asks
        for (``minimum_free_space_for_create_in_bytes``, against the catalog's ``free_space``), as
        the unixfilesystem plugin's create redirect checks."""
        context = dict(kv.partition("=")[::2] for kv in leaf.context.split(";") if "=" in kv)
        minimum = context.get("minimum_free_space_for_create_in_bytes", "").strip()
        row = self.one("SELECT free_space FROM R_RESC_MAIN WHERE resc_id=?", (leaf.id,))
        free = str(row[0] or "").strip() if row else ""
        if minimum.isdigit() and free.isdigit() and int(free) - max(size, 0) < int(minimum):
            raise IrodsError(USER_FILE_TOO_LARGE, f"not enough free space on {leaf.name}")

    def resource_by_id(self, resc_id: int) -> Resource | None:
        return self._resource(self.one(f"SELECT {self._RESC_COLUMNS} FROM R_RESC_MAIN WHERE resc_id=?", (resc_id,)))

    def children(self, resc_id: int) -> list[Resource]:
        rows = self.q(
            f"SELECT {self._RESC_COLUMNS} FROM R_RESC_MAIN WHERE resc_parent=? ORDER BY resc_name", (str(resc_id),)
        )
        return [r for r in (self._resource(row) for row in rows) if r is not None]

    def add_resource(self, name: str, resc_type: str, vault: str, host: str | None = None, context: str = "") -> Resource:
        t = now_ts()
        rid = self.next_id()
        self.x(
            "INSERT INTO R_RESC_MAIN(resc_id, resc_name, zone_name, resc_type_name, resc_class_name, resc_net, "
            "resc_def_path, resc_context, create_ts, modify_ts) VALUES(?,?,?,?,?,?,?,?,?,?)",
            (rid, name, self.zone, resc_type, "cache", host or (self.hostname if vault else "EMPTY_RESC_HOST"),
             vault or "EMPTY_RESC_PATH", context, t, t),
        )
        self.refresh_hierarchies()
        return Resource(rid, name, resc_type, host or self.hostname, vault, None, context)

    def add_child(self, parent: str, child: str, context: str = "") -> None:
        p, c = self.resource_or_raise(parent), self.resource_or_raise(child)
        if c.parent_id is not None:
            raise IrodsError(HIERARCHY_ERROR, f"{child} already has a parent")
        if p.is_storage:
            raise IrodsError(HIERARCHY_ERROR, f"{parent} is a storage resource and cannot have children")
        self.x(
            "UPDATE R_RESC_MAIN SET resc_parent=?, resc_parent_context=?, modify_ts=? WHERE resc_id=?",
            (str(p.id), context, now_ts(), c.id),
        )
        self.refresh_hierarchies()

    def remove_child(self, parent: str, child: str) -> None:
        p, c = self.resource_or_raise(parent), self.resource_or_raise(child)
        if c.parent_id != p.id:
            raise IrodsError(HIERARCHY_ERROR, f"{child} is not a child of {parent}")
        self.x("UPDATE R_RESC_MAIN SET resc_parent='', resc_parent_context='', modify_ts=? WHERE resc_id=?",
               (now_ts(), c.id))
        self.refresh_hierarchies()

    def refresh_hierarchies(self) -> None:
        with self.lock:
            rows = self.q("SELECT resc_id, resc_name, resc_parent FROM R_RESC_MAIN")
            by_id = {r[0]: (r[1], str(r[2] or "")) for r in rows}
            cache: dict[int, str] = {}
            for rid in by_id:
                names: list[str] = []
                cur: int | None = rid
                seen: set[int] = set()
                while cur is not None and cur in by_id and cur not in seen:
                    seen.add(cur)
                    name, parent = by_id[cur]
                    names.append(name)
                    cur = int(parent) if parent.isdigit() else None
                cache[rid] = ";".join(reversed(names))
            self._hier_cache = cache

    def _hier_of_id(self, resc_id: object) -> str:
        try:
            return self._hier_cache.get(int(str(resc_id)), "")
        except ValueError:
            return ""

    def hierarchy(self, resc_id: int) -> str:
        return self._hier_of_id(resc_id)

    def root_of(self, resc_id: int) -> str:
        return self.hierarchy(resc_id).split(";")[0]

    def leaf_for_hierarchy(self, hier: str) -> Resource:
        """The leaf of a full ``root;...;leaf`` string; HIERARCHY_ERROR if it is not one."""
        leaf = self.resource(hier.split(";")[-1])
        if leaf is None or self.hierarchy(leaf.id) != hier or not leaf.is_storage:
            raise IrodsError(HIERARCHY_ERROR, f"invalid resource hierarchy {hier!r}")
        return leaf

    def leaves_under(self, resc: Resource) -> list[Resource]:
        if resc.is_storage:
            return [resc]
        out: list[Resource] = []
        for child in self.children(resc.id):
            out += self.leaves_under(child)
        return out

    def pick_leaf_for_create(self, root: Resource, rng: random.Random) -> Resource:
        """Resolve a root resource to the leaf a new replica goes to (the "vote" of the plugins)."""
        cur = root
        while not cur.is_storage:
            kids = self.children(cur.id)
            if not kids:
                raise IrodsError(HIERARCHY_ERROR, f"coordinating resource {cur.name} has no children")
            cur = rng.choice(kids) if cur.type == "random" else kids[0]
        return cur

    # ------------------------------------------------------------ collections

    def collection(self, path: str) -> Collection | None:
        row = self.one(
            "SELECT coll_id, coll_name, parent_coll_name, coll_owner_name, coll_owner_zone, coll_inheritance "
            "FROM R_COLL_MAIN WHERE coll_name=?",
            (path,),
        )
        if row is None:
            return None
        return Collection(row[0], row[1], row[2], row[3], row[4], row[5] == "1")

    def collection_or_raise(self, path: str) -> Collection:
        found = self.collection(path)
        if found is None:
            raise IrodsError(CAT_UNKNOWN_COLLECTION, f"collection {path} does not exist")
        return found

    def make_collection(self, path: str, owner: str, owner_zone: str | None = None) -> int:
        """Insert one collection owned by ``owner``; the parent's inheritance flag and ACLs carry over."""
        t = now_ts()
        parent_path, _ = split_path(path)
        parent = self.collection(parent_path) if path != "/" else None
        with self.transaction():
            cid = self.next_id()
            self.x(
                "INSERT INTO R_COLL_MAIN(coll_id, parent_coll_name, coll_name, coll_owner_name, coll_owner_zone, "
                "coll_inheritance, create_ts, modify_ts) VALUES(?,?,?,?,?,?,?,?)",
                (cid, parent_path if path != "/" else "/", path, owner, owner_zone or self.zone,
                 "1" if parent and parent.inheritance else "", t, t),
            )
            self.inherit_access(cid, parent)
            owner_user = self.user(owner, owner_zone)
            if owner_user is not None:
                self.set_access(cid, owner_user.id, OWN)
        return cid

    def inherit_access(self, object_id: int, parent: Collection | None) -> None:
        if parent is not None and parent.inheritance:
            t = now_ts()
            self.x(
                "INSERT OR REPLACE INTO R_OBJT_ACCESS(object_id, user_id, access_type_id, create_ts, modify_ts) "
                "SELECT ?, user_id, access_type_id, ?, ? FROM R_OBJT_ACCESS WHERE object_id=?",
                (object_id, t, t, parent.id),
            )

    def collection_path_of(self, coll_id: int) -> str:
        row = self.one("SELECT coll_name FROM R_COLL_MAIN WHERE coll_id=?", (coll_id,))
        if row is None:
            raise IrodsError(CAT_UNKNOWN_COLLECTION, f"collection id {coll_id} does not exist")
        return str(row[0])

    def subtree(self, path: str) -> list[Collection]:
        """``path`` and every collection below it, parents before children."""
        like = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
        if path == "/":
            like = "/%"
        rows = self.q(
            "SELECT coll_id, coll_name, parent_coll_name, coll_owner_name, coll_owner_zone, coll_inheritance "
            "FROM R_COLL_MAIN WHERE coll_name=? OR coll_name LIKE ? ESCAPE '\\' ORDER BY length(coll_name)",
            (path, like),
        )
        return [Collection(r[0], r[1], r[2], r[3], r[4], r[5] == "1") for r in rows]

    def is_collection_empty(self, coll: Collection) -> bool:
        if self.one("SELECT 1 FROM R_DATA_MAIN WHERE coll_id=? LIMIT 1", (coll.id,)):
            return False
        return not self.one("SELECT 1 FROM R_COLL_MAIN WHERE parent_coll_name=? AND coll_id<>? LIMIT 1",
                            (coll.name, coll.id))

    # ------------------------------------------------------------ data objects

    def replicas(self, path: str) -> list[Replica]:
        parent, name = split_path(path)
        rows = self.q(
            f"SELECT {', '.join('d.' + c.strip() for c in _REPLICA_COLUMNS.split(','))} FROM R_DATA_MAIN d "
            "JOIN R_COLL_MAIN c ON c.coll_id = d.coll_id WHERE c.coll_name=? AND d.data_name=? "
            "ORDER BY d.data_repl_num",
            (parent, name),
        )
        return [_replica(r) for r in rows]

    def replicas_by_id(self, data_id: int) -> list[Replica]:
        rows = self.q(f"SELECT {_REPLICA_COLUMNS} FROM R_DATA_MAIN WHERE data_id=? ORDER BY data_repl_num",
                      (data_id,))
        return [_replica(r) for r in rows]

    def data_ids_in(self, coll_id: int) -> list[int]:
        return [r[0] for r in self.q("SELECT DISTINCT data_id FROM R_DATA_MAIN WHERE coll_id=?", (coll_id,))]

    def insert_replica(
        self, *, data_id: int, coll_id: int, name: str, repl_num: int, size: int, resc_id: int, phys: str,
        owner: User, status: int, checksum: str = "", data_type: str = "generic", mtime: str | None = None,
        create_ts: str | None = None,
    ) -> None:
        t = now_ts()
        self.x(
            "INSERT INTO R_DATA_MAIN(data_id, coll_id, data_name, data_repl_num, data_type_name, data_size, resc_id, "
            "data_path, data_owner_name, data_owner_zone, data_is_dirty, data_checksum, create_ts, modify_ts, "
            "access_ts) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (data_id, coll_id, name, repl_num, data_type, size, resc_id, phys, owner.name, owner.zone, status,
             checksum, create_ts or t, mtime or t, t),
        )

    def update_replica(self, data_id: int, repl_num: int, **fields: object) -> None:
        if not fields:
            return
        sets = ", ".join(f"{k}=?" for k in fields)
        self.x(f"UPDATE R_DATA_MAIN SET {sets} WHERE data_id=? AND data_repl_num=?",
               (*fields.values(), data_id, repl_num))

    def delete_object_rows(self, object_ids: Sequence[int]) -> None:
        """Forget catalog rows that hang off object ids: AVU links and ACLs."""
        for chunk_start in range(0, len(object_ids), 500):
            chunk = list(object_ids[chunk_start : chunk_start + 500])
            marks = ",".join("?" * len(chunk))
            self.x(f"DELETE FROM R_OBJT_METAMAP WHERE object_id IN ({marks})", chunk)
            self.x(f"DELETE FROM R_OBJT_ACCESS WHERE object_id IN ({marks})", chunk)

    def vault_path(self, resc: Resource, logical_path: str) -> str:
        """Where a new replica's file goes: ``<vault>/<path without /zone>`` (the default vault scheme)."""
        rel = logical_path.split("/", 2)[2] if logical_path.count("/") >= 2 else logical_path.lstrip("/")
        return str(Path(resc.vault) / rel)

    def in_vault(self, resc: Resource, phys: str) -> bool:
        vault = resc.vault.rstrip("/")
        return bool(vault) and vault != "EMPTY_RESC_PATH" and phys.startswith(vault + "/")

    # ------------------------------------------------------------ access control

    def access_level(self, user: User, object_id: int) -> int:
        groups = self.group_ids(user.id)
        marks = ",".join("?" * len(groups))
        row = self.one(
            f"SELECT max(access_type_id) FROM R_OBJT_ACCESS WHERE object_id=? AND user_id IN ({marks})",
            (object_id, *groups),
        )
        return int(row[0]) if row and row[0] is not None else 0

    def set_access(self, object_id: int, user_id: int, level: int) -> None:
        t = now_ts()
        if level <= ACCESS_LEVELS["null"]:
            self.x("DELETE FROM R_OBJT_ACCESS WHERE object_id=? AND user_id=?", (object_id, user_id))
            return
        self.x(
            "INSERT INTO R_OBJT_ACCESS(object_id, user_id, access_type_id, create_ts, modify_ts) VALUES(?,?,?,?,?) "
            "ON CONFLICT(object_id, user_id) DO UPDATE SET access_type_id=excluded.access_type_id, "
            "modify_ts=excluded.modify_ts",
            (object_id, user_id, level, t, t),
        )

    # ------------------------------------------------------------ metadata

    def find_avu(self, object_id: int, attr: str, value: str, unit: str) -> int | None:
        row = self.one(
            "SELECT m.meta_id FROM R_META_MAIN m JOIN R_OBJT_METAMAP o ON o.meta_id = m.meta_id "
            "WHERE o.object_id=? AND m.meta_attr_name=? AND m.meta_attr_value=? AND m.meta_attr_unit=?",
            (object_id, attr, value, unit),
        )
        return int(row[0]) if row else None

    def add_avu(self, object_id: int, attr: str, value: str, unit: str) -> bool:
        """Link an AVU; False if the object already has it. AVU rows are shared, as in iRODS."""
        if self.find_avu(object_id, attr, value, unit) is not None:
            return False
        t = now_ts()
        row = self.one(
            "SELECT meta_id FROM R_META_MAIN WHERE meta_attr_name=? AND meta_attr_value=? AND meta_attr_unit=?",
            (attr, value, unit),
        )
        if row is None:
            meta_id = self.next_id()
            self.x(
                "INSERT INTO R_META_MAIN(meta_id, meta_attr_name, meta_attr_value, meta_attr_unit, create_ts, "
                "modify_ts) VALUES(?,?,?,?,?,?)",
                (meta_id, attr, value, unit, t, t),
            )
        else:
            meta_id = int(row[0])
        self.x("INSERT INTO R_OBJT_METAMAP VALUES(?,?,?,?)", (object_id, meta_id, t, t))
        return True

    def remove_avu(self, object_id: int, meta_id: int) -> None:
        self.x("DELETE FROM R_OBJT_METAMAP WHERE object_id=? AND meta_id=?", (object_id, meta_id))

    def avus(self, object_id: int) -> list[tuple[int, str, str, str]]:
        rows = self.q(
            "SELECT m.meta_id, m.meta_attr_name, m.meta_attr_value, m.meta_attr_unit FROM R_META_MAIN m "
            "JOIN R_OBJT_METAMAP o ON o.meta_id = m.meta_id WHERE o.object_id=? ORDER BY m.meta_id",
            (object_id,),
        )
        return [(int(r[0]), r[1], r[2], r[3] or "") for r in rows]

    def remove_unused_avus(self) -> None:
        self.x("DELETE FROM R_META_MAIN WHERE meta_id NOT IN (SELECT meta_id FROM R_OBJT_METAMAP)")
