"""Per-connection state (what iRODS calls an agent) and the server-wide context it shares."""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass, field
from typing import Final

from irods_ingest_testkit.irods_server.auth import Authenticator, Identity
from irods_ingest_testkit.irods_server.catalog import Catalog
from irods_ingest_testkit.irods_server.data import FIRST_DESCRIPTOR, DataService, Descriptor, OpenReplicas
from irods_ingest_testkit.irods_server.errors import (
    BAD_INPUT_DESC_INDEX,
    CAT_GET_ROW_ERR,
    CAT_STATEMENT_TABLE_FULL,
    SYS_NO_API_PRIV,
    IrodsError,
)

MAX_STATEMENTS: Final = 50  # MAX_NUM_OF_CONCURRENT_STMTS in the catalog layer


@dataclass
class Reply:
    """What an API handler returns: ``int_info`` (status or descriptor), body XML and raw bytes."""

    int_info: int = 0
    body: bytes = b""
    bs: bytes = b""


@dataclass
class Cursor:
    """The rest of a GenQuery result, kept for continueInx paging."""

    columns: list[int]
    rows: list[list[str]]
    total: int


class CursorTable:
    """Open GenQuery statements. A real agent keeps them per connection; ``continueInx`` is slot + 1."""

    def __init__(self, numbering: itertools.count[int] | None = None) -> None:
        self._lock = threading.Lock()
        self._cursors: dict[int, Cursor] = {}
        self._numbering = numbering

    def open(self, cursor: Cursor) -> int:
        with self._lock:
            if self._numbering is not None:
                slot = next(self._numbering)
            else:
                free = [i for i in range(1, MAX_STATEMENTS + 1) if i not in self._cursors]
                if not free:
                    raise IrodsError(CAT_STATEMENT_TABLE_FULL, "too many open GenQuery statements")
                slot = free[0]
            self._cursors[slot] = cursor
            return slot

    def get(self, slot: int) -> Cursor:
        with self._lock:
            cursor = self._cursors.get(slot)
        if cursor is None:
            raise IrodsError(CAT_GET_ROW_ERR, f"no open statement {slot} on this connection")
        return cursor

    def close(self, slot: int) -> None:
        with self._lock:
            self._cursors.pop(slot, None)

    def __len__(self) -> int:
        return len(self._cursors)


@dataclass
class ServerContext:
    """What every connection of one server shares."""

    catalog: Catalog
    server_version: str
    open_replicas: OpenReplicas = field(default_factory=OpenReplicas)
    cursor_scope: str = "connection"  # or "server": one table for all connections (lenient)
    rng: random.Random = field(default_factory=random.Random)
    shared_cursors: CursorTable = field(default_factory=lambda: CursorTable(itertools.count(1)))

    def __post_init__(self) -> None:
        self.data = DataService(self.catalog, self.open_replicas, self.rng)

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.server_version.split(".") if p.isdigit())


class Agent:
    """One client connection: who it is, its descriptors and its GenQuery statements."""

    def __init__(self, context: ServerContext, authenticator: Authenticator) -> None:
        self.context = context
        self.catalog = context.catalog
        self.authenticator = authenticator
        self.identity: Identity | None = None
        self.descriptors: dict[int, Descriptor] = {}
        self.cursors = context.shared_cursors if context.cursor_scope == "server" else CursorTable()

    @property
    def who(self) -> Identity:
        if self.identity is None:
            raise IrodsError(SYS_NO_API_PRIV, "the connection is not authenticated")
        return self.identity

    def add_descriptor(self, desc: Descriptor) -> int:
        fd = FIRST_DESCRIPTOR
        while fd in self.descriptors:
            fd += 1
        self.descriptors[fd] = desc
        return fd

    def descriptor(self, fd: int) -> Descriptor:
        desc = self.descriptors.get(fd)
        if desc is None:
            raise IrodsError(BAD_INPUT_DESC_INDEX, f"descriptor {fd} is not open on this connection")
        return desc

    def release(self) -> None:
        """The connection ended: close what it left open (an unfinished write becomes stale)."""
        for fd in list(self.descriptors):
            desc = self.descriptors.pop(fd)
            if self.identity is not None:
                self.context.data.close(self.identity, desc, finalize=False, close_options={})
            else:
                desc.file.close()
