"""Catalog and data operations the engine needs, over one PRC session.

Every method translates PRC exceptions at this edge: network trouble becomes
:class:`RetryableError`; an iRODS error code becomes :class:`PermanentError` whose
message names the code (e.g. ``DIRECT_CHILD_ACCESS``) and the path.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import irods.exception as irods_exc
import irods.keywords as kw
from irods.api_number import api_number
from irods.message import GenQueryResponse, iRODSMessage
from irods.models import Collection, DataObject
from irods.results import ResultSet
from irods.session import iRODSSession

from irods_ingest.errors import PermanentError, RetryableError
from irods_ingest.metrics import irods_call


@dataclass(frozen=True)
class Replica:
    number: int
    resource: str  # leaf resource name
    hierarchy: str  # "root;...;leaf"
    path: str
    size: int
    status: str
    modify_time: int

    @property
    def root_resource(self) -> str:
        return self.hierarchy.split(";", 1)[0] if self.hierarchy else self.resource


@dataclass
class ObjectInfo:
    name: str
    replicas: list[Replica] = field(default_factory=list)

    @property
    def size(self) -> int:
        good = [r for r in self.replicas if r.status == "1"] or self.replicas
        return good[0].size if good else 0

    @property
    def has_good_replica(self) -> bool:
        return any(r.status == "1" for r in self.replicas)

    def replicas_under(self, root_resource: str) -> list[Replica]:
        return [r for r in self.replicas if r.root_resource == root_resource or r.resource == root_resource]


@dataclass
class CollectionListing:
    """Some of one collection's direct children (the names a FILES task asked about)."""

    objects: dict[str, ObjectInfo] = field(default_factory=dict)
    subcollections: set[str] = field(default_factory=set)
    exists: bool = True


# What the sync decisions need of every replica of an object, in one GenQuery row each.
REPLICA_COLUMNS: Final = (
    DataObject.name,
    DataObject.replica_number,
    DataObject.resource_name,
    DataObject.resc_hier,
    DataObject.path,
    DataObject.size,
    DataObject.replica_status,
    DataObject.modify_time,
)


def add_replica_row(listing: CollectionListing, row: Any) -> None:
    """Add one GenQuery row of :data:`REPLICA_COLUMNS` to ``listing``."""
    name = row[DataObject.name]
    info = listing.objects.setdefault(name, ObjectInfo(name))
    modified = row[DataObject.modify_time]
    info.replicas.append(
        Replica(
            number=int(row[DataObject.replica_number]),
            resource=row[DataObject.resource_name] or "",
            hierarchy=row[DataObject.resc_hier] or "",
            path=row[DataObject.path] or "",
            size=int(row[DataObject.size] or 0),
            status=str(row[DataObject.replica_status]),
            modify_time=int(modified.timestamp()) if modified is not None else 0,
        )
    )


class AlreadyExists(PermanentError):
    """The data object appeared between the listing and the create (another worker, or an
    earlier delivery of the same task, made it)."""


class Missing(PermanentError):
    """The data object or collection is not there (any more): for a delete, nothing to do."""


_EXISTS_CODES = frozenset({"CAT_NAME_EXISTS_AS_DATAOBJ", "OVERWRITE_WITHOUT_FORCE_FLAG"})
_MISSING_CODES = frozenset(
    {"CAT_NO_ROWS_FOUND", "OBJ_PATH_DOES_NOT_EXIST", "CAT_UNKNOWN_COLLECTION", "CAT_UNKNOWN_FILE", "USER_FILE_DOES_NOT_EXIST"}
)
# Transient: the connection broke, or another writer holds the object (it will close).
_RETRYABLE_CODES = frozenset(
    {
        "SYS_HEADER_READ_LEN_ERR",
        "SYS_SOCK_READ_ERR",
        "SYS_SOCK_CONNECT_ERR",
        "LOCKED_DATA_OBJECT_ACCESS",
        "INTERMEDIATE_REPLICA_ACCESS",
    }
)


@contextmanager
def irods_errors(action: str, path: str) -> Iterator[None]:
    """Translate PRC errors for ``action`` on ``path``; time the call for the metrics."""
    with irods_call(action.split()[0]), _translated(action, path):
        yield


@contextmanager
def _translated(action: str, path: str) -> Iterator[None]:
    try:
        yield
    except irods_exc.NetworkException as exc:
        raise RetryableError(f"{action} {path}: connection to iRODS lost: {exc}") from exc
    except (ConnectionError, TimeoutError, EOFError) as exc:
        raise RetryableError(f"{action} {path}: connection to iRODS lost: {exc}") from exc
    except irods_exc.iRODSException as exc:
        name = type(exc).__name__
        code = getattr(exc, "code", "")
        detail = str(exc).strip()
        message = f"{action} {path}: iRODS error {name} ({code})" + (f": {detail}" if detail and detail != name else "")
        if name in _RETRYABLE_CODES:
            raise RetryableError(message) from exc
        if name in _EXISTS_CODES:
            raise AlreadyExists(message) from exc
        if name in _MISSING_CODES:
            raise Missing(message) from exc
        if name == "CAT_INVALID_AUTHENTICATION":
            raise PermanentError(
                f"{action} {path}: iRODS refused the password (CAT_INVALID_AUTHENTICATION); "
                "check IRODS_PASSWORD or the connection Secret"
            ) from exc
        raise PermanentError(message) from exc
    except irods_exc.DoesNotExist as exc:
        raise Missing(f"{action} {path}: does not exist in iRODS") from exc


class IrodsCatalog:
    """Thin, typed operations over a PRC session (the only code calling PRC's data APIs)."""

    def __init__(self, session: iRODSSession) -> None:
        self.session = session

    @property
    def zone(self) -> str:
        return str(self.session.zone)

    def close(self) -> None:
        self.session.cleanup()

    def limit_call_time(self, seconds: float) -> None:
        """Give up on a reply after ``seconds`` (PRC's socket timeout, applied to each call as it
        takes its connection): a server that never answers must not hold a worker for longer."""
        if self.session.connection_timeout != seconds:
            self.session.connection_timeout = seconds

    # ---------------------------------------------------------------- queries
    def collection_exists(self, path: str) -> bool:
        with irods_errors("checking collection", path):
            for _ in self.session.query(Collection.id).filter(Collection.name == path).limit(1):
                return True
        return False

    def objects_where(self, collection: str, condition: Any, into: CollectionListing | None = None) -> CollectionListing:
        """The data objects (with every replica) of ``collection`` that match ``condition`` (a
        PRC criterion on DataObject.name: ``==`` one name, ``In`` a bounded batch of names).

        Bounded by the condition, never the whole collection: a FILES task asks only about
        its own names (:mod:`irods_ingest.irods_io.lookup`)."""
        result = into if into is not None else CollectionListing()
        with irods_errors("listing", collection):
            query = self.session.query(*REPLICA_COLUMNS).filter(Collection.name == collection, condition)
            for row in self.all_rows(query):
                add_replica_row(result, row)
        return result

    def all_rows(self, query: Any) -> list[Any]:
        """Every row of a GenQuery, all pages on ONE connection.

        The server keeps a paged query's cursor per connection; PRC's own iteration takes a
        connection from the pool for every page, and after a parallel transfer the pool holds
        several, so a continuation could land on another one (CAT_GET_ROW_ERR).
        """
        rows: list[Any] = []
        with self.session.pool.get_connection() as conn:
            while True:
                conn.send(iRODSMessage("RODS_API_REQ", msg=query._message(), int_info=api_number["GEN_QUERY_AN"]))
                try:
                    result_set = ResultSet(conn.recv().get_main_message(GenQueryResponse))
                except irods_exc.CAT_NO_ROWS_FOUND:
                    return rows
                rows.extend(result_set)
                if result_set.continue_index <= 0:
                    return rows
                query = query.continue_index(result_set.continue_index)

    def object_info(self, logical_path: str) -> ObjectInfo | None:
        """One data object's replicas (None if it does not exist): one query for one name."""
        collection, name = posixpath.split(logical_path)
        return self.objects_where(collection, DataObject.name == name).objects.get(name)

    # ---------------------------------------------------------------- collections
    def create_collection(self, path: str) -> None:
        with irods_errors("creating collection", path):
            self.session.collections.create(path, recurse=True)

    def remove_empty_collection(self, path: str, *, unregister: bool) -> None:
        """Remove ``path`` if it is empty (never recursively, never forced): iRODS refuses a
        collection that holds anything (CAT_COLLECTION_NOT_EMPTY); :class:`Missing` if it is gone."""
        with irods_errors("removing collection", path):
            if unregister:
                self.session.collections.unregister(path, recurse=False)
            else:
                self.session.collections.remove(path, recurse=False, force=False)

    # ---------------------------------------------------------------- data objects
    def register(
        self,
        physical_path: str,
        logical_path: str,
        *,
        resource: str | None,
        size: int,
        mtime: int,
        as_replica: bool = False,
        checksum: bool = False,
    ) -> None:
        options: dict[str, Any] = {kw.DATA_SIZE_KW: str(size), kw.DATA_MODIFY_KW: str(mtime)}
        if resource:
            options[kw.DEST_RESC_NAME_KW] = resource
        if as_replica:
            options[kw.REG_REPL_KW] = ""
        if checksum:
            options[kw.VERIFY_CHKSUM_KW] = ""
        with irods_errors("registering", logical_path):
            self.session.data_objects.register(physical_path, logical_path, **options)

    def update_replica_metadata(self, logical_path: str, replica_number: int | None, *, size: int, mtime: int) -> None:
        info: dict[str, Any] = {"objPath": logical_path}
        if replica_number is not None:
            info["replNum"] = replica_number
        with irods_errors("updating catalog entry of", logical_path):
            self.session.data_objects.modDataObjMeta(info, {"dataSize": size, "dataModify": mtime, "allReplStatus": 1})

    def put(self, local_path: str | bytes, logical_path: str, *, resource: str | None, overwrite: bool, checksum: bool) -> None:
        # PRC 3.x forces overwrite on put unless told otherwise: state it either way
        # (FORCE_FLAG_KW=False is removed by PRC, and then an existing object is refused).
        options: dict[str, Any] = {kw.FORCE_FLAG_KW: bool(overwrite)}
        if resource:
            options[kw.DEST_RESC_NAME_KW] = resource
        if checksum:
            options[kw.REG_CHKSUM_KW] = ""
        with irods_errors("uploading", logical_path):
            self.session.data_objects.put(_fs_path(local_path), logical_path, **options)

    def append(self, local_path: str | bytes, logical_path: str, *, from_offset: int, resource: str | None) -> int:
        """Append the bytes of ``local_path`` beyond ``from_offset``; returns bytes written."""
        options: dict[str, Any] = {}
        if resource:
            options[kw.DEST_RESC_NAME_KW] = resource
        written = 0
        with irods_errors("appending to", logical_path), open(local_path, "rb") as source:
            source.seek(from_offset)
            with self.session.data_objects.open(logical_path, "a", **options) as target:
                target.seek(from_offset)
                while chunk := source.read(4 * 1024 * 1024):
                    target.write(chunk)
                    written += len(chunk)
        return written

    def write_stream(
        self, chunks: Iterable[bytes], logical_path: str, *, resource: str | None, overwrite: bool, offset: int | None = None
    ) -> int:
        """Write ``chunks`` into a data object (memory: one chunk); returns bytes written.

        ``offset`` None writes the whole object (refused with :class:`AlreadyExists` if it is
        there and ``overwrite`` is False; a new object is removed again if the write breaks,
        so that a later Put does not take a partial copy for a finished one); an ``offset``
        writes from there on (an append). Errors of ``chunks`` itself pass through unchanged.
        """
        options: dict[str, Any] = {}
        if resource:
            options[kw.DEST_RESC_NAME_KW] = resource
        written = 0
        creating = offset is None and not overwrite
        with irods_errors("uploading" if offset is None else "appending to", logical_path):
            if creating and self.session.data_objects.exists(logical_path):
                raise AlreadyExists(f"uploading {logical_path}: the data object already exists")
            try:
                with self.session.data_objects.open(logical_path, "w" if offset is None else "a", **options) as target:
                    if offset is not None:
                        target.seek(offset)
                    for chunk in chunks:
                        target.write(chunk)
                        written += len(chunk)
            except BaseException:
                if creating:
                    self._discard(logical_path)
                raise
        return written

    def _discard(self, logical_path: str) -> None:
        # Best effort: the broken connection may be what stopped the write.
        with contextlib.suppress(Exception):
            self.session.data_objects.unlink(logical_path, force=True)

    def discard(self, logical_path: str) -> None:
        """Remove a data object this run created but could not complete (best effort, no trash)."""
        self._discard(logical_path)

    def read_stream(self, logical_path: str, *, length: int, chunk_bytes: int = 8 * 1024 * 1024) -> Iterator[bytes]:
        """The first ``length`` bytes of a data object, in chunks."""
        remaining = length
        with irods_errors("reading", logical_path), self.session.data_objects.open(logical_path, "r") as source:
            while remaining > 0:
                chunk = source.read(min(chunk_bytes, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    def checksum(self, logical_path: str) -> str:
        """iRODS' checksum of the object (computed by the server if it has none yet)."""
        with irods_errors("checksumming", logical_path):
            return str(self.session.data_objects.chksum(logical_path))

    def unregister(self, logical_path: str, *, resource: str | None = None) -> None:
        options: dict[str, Any] = {}
        if resource:
            options[kw.RESC_NAME_KW] = resource
        with irods_errors("unregistering", logical_path):
            self.session.data_objects.unregister(logical_path, **options)

    def unlink(self, logical_path: str, *, force: bool) -> None:
        with irods_errors("deleting", logical_path):
            self.session.data_objects.unlink(logical_path, force=force)

    def add_metadata(self, logical_path: str, attribute: str, value: str, units: str = "") -> None:
        with irods_errors("adding metadata to", logical_path):
            obj = self.session.data_objects.get(logical_path)
            if attribute not in obj.metadata:
                obj.metadata.add(attribute, value, units or None)


def _fs_path(path: str | bytes) -> str:
    return path.decode("utf-8", "surrogateescape") if isinstance(path, bytes) else path
