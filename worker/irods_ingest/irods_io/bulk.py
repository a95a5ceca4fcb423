"""Bulk operations over one PRC session: one data object written from several connections
at once, and a collection's child names listed lazily.

Parallel writes follow python-irodsclient's own parallel put (``irods/parallel.py``): the
first handle opens the replica for write (creating or truncating it) and asks the server
for its *replica token* and resource hierarchy (GET_FILE_DESCRIPTOR_INFO); every further
handle opens the same replica with that token and hierarchy (iRODS 4.2.9+), each on its
own connection, and writes its byte ranges after a seek. The extra handles are closed
with REPLICA_CLOSE (no finalize) before the first handle's ordinary close finalizes the
replica (size, status good, checksum if asked), exactly once.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Final

import irods.exception as irods_exc
import irods.keywords as kw
from irods.api_number import api_number
from irods.column import In
from irods.message import GenQueryResponse, iRODSMessage
from irods.models import Collection, DataObject
from irods.results import ResultSet

from irods_ingest.errors import PermanentError
from irods_ingest.irods_io.catalog import AlreadyExists, IrodsCatalog, irods_errors
from irods_ingest.irods_io.lookup import in_batches, quotable

# REPLICA_TOKEN_KW and REPLICA_CLOSE (what a joined handle needs) came with iRODS 4.2.9.
PARALLEL_WRITE_SERVER: Final = (4, 2, 9)


def supports_parallel_write(catalog: IrodsCatalog) -> bool:
    version = tuple(getattr(catalog.session, "server_version", ()) or ())
    return version >= PARALLEL_WRITE_SERVER


class ParallelWrite:
    """One replica open for write from up to ``handles`` connections (a context manager).

    ``write_at`` is thread-safe: each call borrows a handle of its own (opening a joined one
    when none is free), so at most as many handles exist as calls ever ran at once.
    Leaving the block normally finalizes the replica; leaving it with an exception still
    closes every handle (a half-written new object is removed again, as ``write_stream``
    does, so a later Put cannot take it for a finished one).
    """

    def __init__(
        self, catalog: IrodsCatalog, logical_path: str, *, size: int, resource: str | None, overwrite: bool,
        append: bool = False, handles: int = 4,
    ) -> None:
        self.catalog = catalog
        self.path = logical_path
        self.size = size
        self.resource = resource
        self.creating = not overwrite and not append
        self.append = append
        self.handles = max(1, handles)
        self._first: Any = None
        self._joined: list[Any] = []
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._token = ""
        self._hierarchy = ""

    def __enter__(self) -> ParallelWrite:
        session = self.catalog.session
        options: dict[str, Any] = {kw.NUM_THREADS_KW: str(self.handles), kw.DATA_SIZE_KW: str(self.size)}
        if self.resource:
            options[kw.DEST_RESC_NAME_KW] = self.resource
        with irods_errors("appending to" if self.append else "uploading", self.path):
            if self.creating and session.data_objects.exists(self.path):
                raise AlreadyExists(f"uploading {self.path}: the data object already exists")
            # No redirect: every joined handle must reach the server that holds the token.
            self._first = session.data_objects.open(
                self.path, "a" if self.append else "w", finalize_on_close=True, allow_redirect=False, **options
            )
            try:
                self._token, self._hierarchy = self._first.raw.replica_access_info()
            except BaseException:
                self._abandon()
                raise
        self._free.put(self._first)
        return self

    def _join(self) -> Any:
        options: dict[str, Any] = {
            kw.NUM_THREADS_KW: str(self.handles),
            kw.DATA_SIZE_KW: str(self.size),
            kw.RESC_HIER_STR_KW: self._hierarchy,
            kw.REPLICA_TOKEN_KW: self._token,
        }
        handle = self.catalog.session.data_objects.open(
            self.path, "a", create=False, finalize_on_close=False, allow_redirect=False, **options
        )
        with self._lock:
            self._joined.append(handle)
        return handle

    def write_at(self, offset: int, chunks: Iterable[bytes]) -> int:
        """Write ``chunks`` from byte ``offset`` on; returns the bytes written. Errors of
        ``chunks`` itself pass through unchanged (the handle is then not reused)."""
        with irods_errors("uploading", self.path):
            try:
                handle = self._free.get_nowait()
            except queue.Empty:
                handle = self._join()
            handle.seek(offset)
        written = 0
        for chunk in chunks:
            with irods_errors("uploading", self.path):
                handle.write(chunk)
            written += len(chunk)
        with irods_errors("uploading", self.path):
            handle.flush()
        self._free.put(handle)  # only a handle whose writes all went through is lent again
        return written

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            with irods_errors("uploading", self.path):
                for handle in self._joined:  # REPLICA_CLOSE: no finalize, before the first handle's
                    handle.close()
                self._joined.clear()
                self._first.close()  # finalizes the replica (size, good, checksum if asked)
            return
        self._abandon()

    def _abandon(self) -> None:
        # Best effort: the broken connection may be what stopped the write.
        for handle in [*self._joined, self._first]:
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
        self._joined.clear()
        if self.creating:
            self.catalog.discard(self.path)


def child_names(catalog: IrodsCatalog, collection: str, batch: int = 1000) -> Iterator[tuple[list[str], list[str]]]:
    """The names of ``collection``'s data objects and subcollections, as batches of
    (objects, subcollections) of at most ``batch`` names each: GenQuery pages are read as
    the caller goes, so memory stays at one batch whatever the collection holds."""
    with irods_errors("listing", collection):
        objects: list[str] = []
        for row in catalog.session.query(DataObject.name).filter(Collection.name == collection):
            objects.append(row[DataObject.name])
            if len(objects) >= batch:
                yield objects, []
                objects = []
        if objects:
            yield objects, []
        subcollections: list[str] = []
        prefix = collection.rstrip("/") + "/"
        for row in catalog.session.query(Collection.name).filter(Collection.parent_name == collection):
            subcollections.append(row[Collection.name][len(prefix) :])
            if len(subcollections) >= batch:
                yield [], subcollections
                subcollections = []
        if subcollections:
            yield [], subcollections


# A page of a collection's children resumes after the last name of the previous page:
# "o:<object name>" while data objects are listed, "c:<subcollection name>" after them.
_OBJECTS, _SUBCOLLECTIONS = "o:", "c:"


def collection_page(
    catalog: IrodsCatalog, collection: str, cursor: str, *, objects: int, subcollections: int
) -> tuple[list[str], list[str], str]:
    """One bounded page of ``collection``'s children from ``cursor`` on ("" = the start):
    (up to ``objects`` data-object names, up to ``subcollections`` subcollection names, the
    cursor of the next page or "" when this page ends the listing).

    Resumed by name (GenQuery ``>`` with ORDER BY), never by a server-side continuation:
    a page is listed by one task and the next one by another task on another connection
    (and objects the earlier pages named are being deleted meanwhile, which does not move
    a name-based cursor). Data objects come first, then subcollections; a page that ends
    its objects early goes on with the subcollections. Each query asks for at most the rows
    it may use, on one connection, and closes its statement.
    """
    phase, last = (cursor[:2], cursor[2:]) if cursor else (_OBJECTS, "")
    if phase not in (_OBJECTS, _SUBCOLLECTIONS) or objects < 1:
        raise PermanentError(f"listing {collection}: not a listing cursor {cursor!r} (or no room for a page)")
    names: list[str] = []
    if phase == _OBJECTS:
        query = catalog.session.query(DataObject.name).filter(Collection.name == collection)
        if last:
            query = query.filter(DataObject.name > last)
        with irods_errors("listing", collection):
            names = [row[DataObject.name] for row in _one_page(catalog, query.order_by(DataObject.name), objects)]
        if len(names) == objects:  # perhaps more: the next page says
            return names, [], _OBJECTS + names[-1]
        last = ""
    if subcollections <= 0:
        return names, [], _SUBCOLLECTIONS + last
    prefix = collection.rstrip("/") + "/"
    query = catalog.session.query(Collection.name).filter(Collection.parent_name == collection)
    if last:
        query = query.filter(Collection.name > prefix + last)
    with irods_errors("listing", collection):
        rows = _one_page(catalog, query.order_by(Collection.name), subcollections)
    children = [row[Collection.name][len(prefix) :] for row in rows]
    more = len(children) == subcollections
    return names, children, (_SUBCOLLECTIONS + children[-1]) if more else ""


def _one_page(catalog: IrodsCatalog, query: Any, rows: int) -> list[Any]:
    """At most ``rows`` rows of a GenQuery, on one connection, its statement closed after."""
    query = query.limit(rows)
    with catalog.session.pool.get_connection() as conn:
        conn.send(iRODSMessage("RODS_API_REQ", msg=query._message(), int_info=api_number["GEN_QUERY_AN"]))
        try:
            result = ResultSet(conn.recv().get_main_message(GenQueryResponse))
        except irods_exc.CAT_NO_ROWS_FOUND:
            return []
        if result.continue_index > 0:  # the statement stays open on the server: close it
            close = query.limit(0).continue_index(result.continue_index)
            conn.send(iRODSMessage("RODS_API_REQ", msg=close._message(), int_info=api_number["GEN_QUERY_AN"]))
            with contextlib.suppress(irods_exc.CAT_NO_ROWS_FOUND):
                conn.recv()
    return list(result)[:rows]


def existing_objects(catalog: IrodsCatalog, collection: str, names: list[str]) -> set[str]:
    """Which of ``names`` are data objects in ``collection`` (GenQuery ``in``, a few dozen
    names per query: the server bounds the length of a condition; a name GenQuery cannot
    quote in a list is asked about alone)."""
    found: set[str] = set()
    conditions = [In(DataObject.name, batch) for batch in in_batches([n for n in names if quotable(n)])]
    conditions += [DataObject.name == n for n in names if not quotable(n)]
    for condition, rows in zip(conditions, [len(c.value) if isinstance(c, In) else 1 for c in conditions], strict=True):
        query = catalog.session.query(DataObject.name).filter(Collection.name == collection, condition)
        with irods_errors("listing", collection):
            found.update(row[DataObject.name] for row in _one_page(catalog, query, rows))
    return found
