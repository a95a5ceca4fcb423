"""Opening, reading, writing and closing replicas, and the replica status state machine.

What the server does here follows iRODS 4.2.9+ (``rsDataObjOpen``, ``rsDataObjClose``,
``replica_close``, ``get_file_descriptor_info``):

* opening for write marks the target replica *intermediate* (2) and the object's other
  replicas *write-locked* (4); a second writer without the replica token is refused with
  LOCKED_DATA_OBJECT_ACCESS;
* the open returns a descriptor (an L1 index, >= 3) valid on that connection only; the
  replica token (from GET_FILE_DESCRIPTOR_INFO) lets other connections open the same
  replica, which is how the client's parallel transfer (> 32 MiB) writes one replica from
  several connections; that shared state lives in :class:`OpenReplicas`, server-wide;
* REPLICA_CLOSE closes a descriptor without finalizing; DATA_OBJ_CLOSE finalizes: size
  from the file, the replica *good* (1), replicas that were good *stale* (0), the others
  back to what they were; a checksum is computed when ``regChksum``/``verifyChksum`` was
  given and cleared otherwise (the data changed);
* a connection that ends with a replica open for write leaves it *stale* and unlocks the rest.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from irods_ingest_testkit.irods_server.auth import Identity
from irods_ingest_testkit.irods_server.catalog import (
    DEFAULT_RESOURCE,
    GOOD_REPLICA,
    INTERMEDIATE_REPLICA,
    MODIFY_OBJECT,
    OWN,
    READ_OBJECT,
    STALE_REPLICA,
    WRITE_LOCKED,
    Catalog,
    Replica,
    Resource,
    normalize_path,
    now_ts,
    split_path,
)
from irods_ingest_testkit.irods_server.errors import (
    BAD_INPUT_DESC_INDEX,
    CAT_NAME_EXISTS_AS_COLLECTION,
    CAT_NO_ACCESS_PERMISSION,
    CAT_UNKNOWN_COLLECTION,
    DIRECT_CHILD_ACCESS,
    LOCKED_DATA_OBJECT_ACCESS,
    OBJ_PATH_DOES_NOT_EXIST,
    SYS_INVALID_FILE_PATH,
    SYS_INVALID_INPUT_PARAM,
    SYS_REPLICA_DOES_NOT_EXIST,
    UNIX_FILE_OPEN_ERR,
    USER_CHKSUM_MISMATCH,
    IrodsError,
)
from irods_ingest_testkit.irods_server.packs import DataObjInp, KeyVal

O_ACCMODE: Final = 3
O_WRONLY: Final = 1
O_RDWR: Final = 2
O_CREAT: Final = 64
O_EXCL: Final = 128
O_TRUNC: Final = 512

# Keywords (lib/core/include/irods/rodsKeyWdDef.h)
KW_RESC_HIER: Final = "resc_hier"
KW_RESC_NAME: Final = "rescName"
KW_DEST_RESC_NAME: Final = "destRescName"
KW_DEF_RESC_NAME: Final = "defRescName"
KW_REPL_NUM: Final = "replNum"
KW_REPLICA_TOKEN: Final = "replicaToken"
KW_REG_CHKSUM: Final = "regChksum"
KW_VERIFY_CHKSUM: Final = "verifyChksum"
KW_FORCE: Final = "forceFlag"
KW_DATA_TYPE: Final = "dataType"
KW_DATA_SIZE: Final = "dataSize"
KW_ADMIN: Final = "irodsAdmin"

FIRST_DESCRIPTOR: Final = 3


def sha256_checksum(phys: str) -> str:
    """The checksum as iRODS formats it for the sha256 scheme: ``sha2:`` + base64 of the digest."""
    digest = hashlib.sha256()
    with open(phys, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha2:" + base64.b64encode(digest.digest()).decode()


@dataclass
class OpenReplica:
    """A replica opened on some connection; shared by every descriptor that holds its token."""

    token: str
    data_id: int
    repl_num: int
    logical_path: str
    phys: str
    resc_id: int
    hierarchy: str
    writing: bool
    prior_status: dict[int, int] = field(default_factory=dict)
    refs: int = 0
    finalized: bool = False


@dataclass
class Descriptor:
    replica: OpenReplica
    file: BinaryIO
    writing: bool
    options: KeyVal
    lock: threading.Lock = field(default_factory=threading.Lock)


class OpenReplicas:
    """Server-wide registry of open replicas, by replica token and by data object."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.by_token: dict[str, OpenReplica] = {}
        self.writers: dict[int, OpenReplica] = {}

    def register(self, replica: OpenReplica) -> None:
        with self.lock:
            self.by_token[replica.token] = replica
            if replica.writing:
                self.writers[replica.data_id] = replica

    def forget(self, replica: OpenReplica) -> None:
        with self.lock:
            self.by_token.pop(replica.token, None)
            if self.writers.get(replica.data_id) is replica:
                del self.writers[replica.data_id]


class DataService:
    """The data-object I/O APIs, independent of the wire."""

    def __init__(self, catalog: Catalog, open_replicas: OpenReplicas, rng: random.Random | None = None) -> None:
        self.catalog = catalog
        self.open_replicas = open_replicas
        self.rng = rng or random.Random()

    # ------------------------------------------------------------ permissions

    def require_access(self, identity: Identity, object_id: int, level: int, what: str) -> None:
        if self.catalog.access_level(identity.client, object_id) < level:
            raise IrodsError(CAT_NO_ACCESS_PERMISSION, f"{identity.client.name} may not access {what}")

    # ------------------------------------------------------------ resource choice

    def requested_target(self, options: KeyVal) -> tuple[Resource | None, Resource | None]:
        """(leaf, root) named by the open options; DIRECT_CHILD_ACCESS for a non-root name."""
        hier = options.get(KW_RESC_HIER)
        if hier:
            return self.catalog.leaf_for_hierarchy(hier), None
        name = options.get(KW_DEST_RESC_NAME) or options.get(KW_RESC_NAME)
        if name:
            resc = self.catalog.resource_or_raise(name)
            if resc.parent_id is not None:
                raise IrodsError(DIRECT_CHILD_ACCESS, f"{name} is not a root resource")
            return None, resc
        return None, None

    def default_root(self, options: KeyVal) -> Resource:
        name = options.get(KW_DEF_RESC_NAME) or DEFAULT_RESOURCE
        resc = self.catalog.resource(name) or self.catalog.resource_or_raise(DEFAULT_RESOURCE)
        if resc.parent_id is not None:
            raise IrodsError(DIRECT_CHILD_ACCESS, f"{name} is not a root resource")
        return resc

    def leaf_for_new_replica(self, options: KeyVal) -> Resource:
        leaf, root = self.requested_target(options)
        if leaf is None:
            leaf = self.catalog.pick_leaf_for_create(root or self.default_root(options), self.rng)
        size = options.get(KW_DATA_SIZE, "").strip()
        self.catalog.require_free_space(leaf, int(size) if size.lstrip("-").isdigit() else 0)
        return leaf

    def matching(self, replicas: list[Replica], options: KeyVal) -> list[Replica]:
        leaf, root = self.requested_target(options)
        if leaf is not None:
            return [r for r in replicas if r.resc_id == leaf.id]
        if root is not None:
            return [r for r in replicas if self.catalog.root_of(r.resc_id) == root.name]
        if options.get(KW_REPL_NUM, "").strip().isdigit():
            return [r for r in replicas if r.repl_num == int(options[KW_REPL_NUM])]
        return replicas

    # ------------------------------------------------------------ open

    def open(self, identity: Identity, inp: DataObjInp, create_api: bool = False) -> Descriptor:
        path = normalize_path(inp.obj_path)
        if not path.startswith("/"):
            raise IrodsError(SYS_INVALID_FILE_PATH, f"{path} is not an absolute path")
        flags = inp.open_flags | (O_CREAT | O_TRUNC | O_WRONLY if create_api else 0)
        writing = (flags & O_ACCMODE) in (O_WRONLY, O_RDWR)
        options = dict(inp.options)
        token = options.get(KW_REPLICA_TOKEN)
        if token:
            return self._join(path, token, writing, options)
        with self.catalog.lock:
            replicas = self.catalog.replicas(path)
            if not replicas:
                if not flags & O_CREAT:
                    raise IrodsError(OBJ_PATH_DOES_NOT_EXIST, f"{path} does not exist")
                replica = self._create_object(identity, path, options)
                return self._descriptor(replica, writing=True, truncate=True, options=options, created=True)
            data_id = replicas[0].data_id
            self.require_access(identity, data_id, MODIFY_OBJECT if writing else READ_OBJECT, path)
            if writing and data_id in self.open_replicas.writers:
                raise IrodsError(LOCKED_DATA_OBJECT_ACCESS, f"{path} is open for write elsewhere")
            candidates = self.matching(replicas, options)
            if not writing:
                readable = [r for r in candidates if r.status == GOOD_REPLICA] or [
                    r for r in candidates if r.status == STALE_REPLICA
                ]
                if not readable:
                    if candidates:
                        raise IrodsError(LOCKED_DATA_OBJECT_ACCESS, f"{path} has no readable replica")
                    raise IrodsError(SYS_REPLICA_DOES_NOT_EXIST, f"no replica of {path} there")
                return self._descriptor(readable[0], writing=False, truncate=False, options=options)
            if candidates:
                good = [r for r in candidates if r.status == GOOD_REPLICA]
                target = (good or candidates)[0]
                return self._descriptor(target, writing=True, truncate=bool(flags & O_TRUNC), options=options)
            if not flags & O_CREAT:
                raise IrodsError(SYS_REPLICA_DOES_NOT_EXIST, f"no replica of {path} there")
            replica = self._create_replica(identity, replicas, self.leaf_for_new_replica(options), options)
            return self._descriptor(replica, writing=True, truncate=True, options=options, created=True)

    def _create_object(self, identity: Identity, path: str, options: KeyVal) -> Replica:
        parent_path, name = split_path(path)
        if self.catalog.collection(path) is not None:
            raise IrodsError(CAT_NAME_EXISTS_AS_COLLECTION, f"{path} is a collection")
        parent = self.catalog.collection(parent_path)
        if parent is None:
            raise IrodsError(CAT_UNKNOWN_COLLECTION, f"collection {parent_path} does not exist")
        self.require_access(identity, parent.id, MODIFY_OBJECT, parent_path)
        leaf = self.leaf_for_new_replica(options)
        data_id = self.catalog.next_id()
        phys = self.catalog.vault_path(leaf, path)
        self._create_file(phys)
        with self.catalog.transaction():
            self.catalog.insert_replica(
                data_id=data_id, coll_id=parent.id, name=name, repl_num=0, size=0, resc_id=leaf.id, phys=phys,
                owner=identity.client, status=INTERMEDIATE_REPLICA, data_type=options.get(KW_DATA_TYPE, "generic"),
            )
            self.catalog.inherit_access(data_id, parent)
            self.catalog.set_access(data_id, identity.client.id, OWN)
        return self.catalog.replicas_by_id(data_id)[0]

    def _create_replica(self, identity: Identity, existing: list[Replica], leaf: Resource, options: KeyVal) -> Replica:
        first = existing[0]
        repl_num = max(r.repl_num for r in existing) + 1
        path = f"{self.catalog.collection_path_of(first.coll_id)}/{first.name}"
        phys = self.catalog.vault_path(leaf, path)
        self._create_file(phys)
        self.catalog.insert_replica(
            data_id=first.data_id, coll_id=first.coll_id, name=first.name, repl_num=repl_num, size=0,
            resc_id=leaf.id, phys=phys, owner=identity.client, status=INTERMEDIATE_REPLICA,
            data_type=first.data_type, create_ts=first.create_ts,
        )
        return next(r for r in self.catalog.replicas_by_id(first.data_id) if r.repl_num == repl_num)

    @staticmethod
    def _create_file(phys: str) -> None:
        try:
            Path(phys).parent.mkdir(parents=True, exist_ok=True)
            with open(phys, "wb"):
                pass
        except OSError as exc:
            raise IrodsError(UNIX_FILE_OPEN_ERR - (exc.errno or 0), f"cannot create {phys}: {exc}") from exc

    def _descriptor(
        self, replica: Replica, *, writing: bool, truncate: bool, options: KeyVal, created: bool = False
    ) -> Descriptor:
        path = f"{self.catalog.collection_path_of(replica.coll_id)}/{replica.name}"
        opened = OpenReplica(
            token=secrets.token_hex(16), data_id=replica.data_id, repl_num=replica.repl_num, logical_path=path,
            phys=replica.path, resc_id=replica.resc_id, hierarchy=self.catalog.hierarchy(replica.resc_id),
            writing=writing,
        )
        try:
            handle = open(replica.path, "r+b" if writing else "rb")  # noqa: SIM115 - lives as long as the descriptor
        except OSError as exc:
            raise IrodsError(UNIX_FILE_OPEN_ERR - (exc.errno or 0), f"cannot open {replica.path}: {exc}") from exc
        if writing:
            if truncate:
                handle.truncate(0)
            with self.catalog.transaction():
                for other in self.catalog.replicas_by_id(replica.data_id):
                    if other.repl_num == replica.repl_num:
                        continue
                    opened.prior_status[other.repl_num] = other.status
                    self.catalog.update_replica(other.data_id, other.repl_num, data_is_dirty=WRITE_LOCKED)
                opened.prior_status.setdefault(replica.repl_num, STALE_REPLICA if created else replica.status)
                self.catalog.update_replica(replica.data_id, replica.repl_num, data_is_dirty=INTERMEDIATE_REPLICA)
        opened.refs = 1
        self.open_replicas.register(opened)
        return Descriptor(opened, handle, writing, options)

    def _join(self, path: str, token: str, writing: bool, options: KeyVal) -> Descriptor:
        with self.open_replicas.lock:
            opened = self.open_replicas.by_token.get(token)
            if opened is None or opened.logical_path != path:
                raise IrodsError(SYS_INVALID_INPUT_PARAM, "invalid replica token")
            try:
                handle = open(opened.phys, "r+b" if writing else "rb")  # noqa: SIM115
            except OSError as exc:
                raise IrodsError(UNIX_FILE_OPEN_ERR, f"cannot open {opened.phys}: {exc}") from exc
            opened.refs += 1
        return Descriptor(opened, handle, writing, options)

    # ------------------------------------------------------------ I/O

    @staticmethod
    def read(desc: Descriptor, length: int) -> bytes:
        with desc.lock:
            return desc.file.read(max(0, length))

    @staticmethod
    def write(desc: Descriptor, data: bytes) -> int:
        if not desc.writing:
            raise IrodsError(BAD_INPUT_DESC_INDEX, "descriptor is not open for writing")
        with desc.lock:
            return desc.file.write(data)

    @staticmethod
    def seek(desc: Descriptor, offset: int, whence: int) -> int:
        if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
            raise IrodsError(SYS_INVALID_INPUT_PARAM, f"bad whence {whence}")
        with desc.lock:
            return desc.file.seek(offset, whence)

    # ------------------------------------------------------------ close

    def close(self, identity: Identity, desc: Descriptor, finalize: bool, close_options: KeyVal) -> None:
        desc.file.close()
        opened = desc.replica
        with self.catalog.lock, self.open_replicas.lock:
            opened.refs -= 1
            if desc.writing and finalize and not opened.finalized:
                options = {**desc.options, **close_options}
                self._finalize(opened, options)
            if opened.refs <= 0:
                if opened.writing and not opened.finalized:
                    self._abandon(opened)
                self.open_replicas.forget(opened)

    def _finalize(self, opened: OpenReplica, options: KeyVal) -> None:
        size = os.path.getsize(opened.phys)
        checksum = ""
        if KW_REG_CHKSUM in options or KW_VERIFY_CHKSUM in options:
            checksum = sha256_checksum(opened.phys)
            expected = options.get(KW_VERIFY_CHKSUM) or options.get(KW_REG_CHKSUM) or ""
            if expected and expected != checksum:
                self._abandon(opened)
                opened.finalized = True
                raise IrodsError(USER_CHKSUM_MISMATCH, f"checksum mismatch for {opened.logical_path}")
        with self.catalog.transaction():
            for repl_num, before in opened.prior_status.items():
                if repl_num == opened.repl_num:
                    continue
                after = STALE_REPLICA if before == GOOD_REPLICA else before
                self.catalog.update_replica(opened.data_id, repl_num, data_is_dirty=after)
            fields: dict[str, object] = {
                "data_size": size, "data_is_dirty": GOOD_REPLICA, "data_checksum": checksum, "modify_ts": now_ts(),
            }
            if options.get(KW_DATA_TYPE):
                fields["data_type_name"] = options[KW_DATA_TYPE]
            self.catalog.update_replica(opened.data_id, opened.repl_num, **fields)
            self._replicate_on_close(opened, size, checksum)
        opened.finalized = True

    def _replicate_on_close(self, opened: OpenReplica, size: int, checksum: str) -> None:
        """A replication (or compound: cache -> archive) resource in the hierarchy copies the new
        data to its other leaves on close."""
        for name in opened.hierarchy.split(";")[:-1]:
            node = self.catalog.resource(name)
            if node is None or node.type not in ("replication", "compound"):
                continue
            for leaf in self.catalog.leaves_under(node):
                if leaf.id == opened.resc_id:
                    continue
                replicas = self.catalog.replicas_by_id(opened.data_id)
                existing = [r for r in replicas if r.resc_id == leaf.id]
                fields: dict[str, object] = {"data_size": size, "data_is_dirty": GOOD_REPLICA,
                                             "data_checksum": checksum, "modify_ts": now_ts()}
                if existing:
                    shutil.copyfile(opened.phys, existing[0].path)
                    self.catalog.update_replica(opened.data_id, existing[0].repl_num, **fields)
                    continue
                first = replicas[0]
                phys = self.catalog.vault_path(leaf, opened.logical_path)
                Path(phys).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(opened.phys, phys)
                owner = self.catalog.user(first.owner, first.owner_zone)
                if owner is None:
                    continue
                self.catalog.insert_replica(
                    data_id=first.data_id, coll_id=first.coll_id, name=first.name,
                    repl_num=max(r.repl_num for r in replicas) + 1, size=size, resc_id=leaf.id, phys=phys,
                    owner=owner, status=GOOD_REPLICA, checksum=checksum, data_type=first.data_type,
                    create_ts=first.create_ts,
                )
            return

    def _abandon(self, opened: OpenReplica) -> None:
        """A write that never finalized: the replica is stale, the others unlocked."""
        with self.catalog.transaction():
            for repl_num, before in opened.prior_status.items():
                status = STALE_REPLICA if repl_num == opened.repl_num else before
                size = os.path.getsize(opened.phys) if repl_num == opened.repl_num and os.path.exists(opened.phys) else None
                fields: dict[str, object] = {"data_is_dirty": status}
                if size is not None:
                    fields["data_size"] = size
                self.catalog.update_replica(opened.data_id, repl_num, **fields)

    @staticmethod
    def fd_info(desc: Descriptor, zone: str) -> dict[str, object]:
        """GET_FILE_DESCRIPTOR_INFO_APN's JSON (the fields the real server fills that clients read)."""
        opened = desc.replica
        return {
            "replica_token": opened.token,
            "data_object_input": {"obj_path": opened.logical_path},
            "data_object_info": {
                "object_path": opened.logical_path,
                "resource_hierarchy": opened.hierarchy,
                "replica_number": opened.repl_num,
                "file_path": opened.phys,
                "data_id": opened.data_id,
                "resource_id": opened.resc_id,
                "zone": zone,
            },
            "open_type": 1 if desc.writing else 0,
            "operation_type": 0,
        }
