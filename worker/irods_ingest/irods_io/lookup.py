"""Bounded catalog lookups by name: what a FILES task needs to know of its own files.

A FILES task asks iRODS about the names of its batch only -- one GenQuery ``DATA_NAME in
(...)`` with the collection, all replicas of each (what the sync decisions compare), and
for the names that are no data object one ``COLL_NAME in (...)`` (a file must not be synced
onto a collection of its name) -- never a listing of the whole collection, which made a
directory of N files cost N²/files_per_task catalog rows. A condition holds up to
:data:`IN_CONDITION_CHARS` of names (the server bounds its length), so a batch of
``files_per_task`` names is one query of each kind, two at most.

GenQuery cannot quote a ``'`` inside an ``in (...)`` list (the server toggles on every
quote); ``=`` takes everything between the first and the last quote, so such names are
asked about one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

from irods.column import In
from irods.models import Collection, DataObject

from irods_ingest.irods_io.catalog import CollectionListing, IrodsCatalog, irods_errors

# The server copies an ``in`` list's values into one buffer of 2 x MAX_SQL_SIZE_GENERAL_QUERY
# (16 000) bytes per query (general_query.cpp, addInClauseToWhereForIn): half of one leaves
# room for the rest of the query and fits a batch of 50 full collection paths.
IN_CONDITION_CHARS: Final = 8000


def in_batches(names: Sequence[str]) -> Iterator[list[str]]:
    """``names`` in groups whose ``in (...)`` condition stays under :data:`IN_CONDITION_CHARS`."""
    batch: list[str] = []
    size = 0
    for name in names:
        if batch and size + len(name) + 3 > IN_CONDITION_CHARS:
            yield batch
            batch, size = [], 0
        batch.append(name)
        size += len(name) + 3  # quotes and a comma
    if batch:
        yield batch


def quotable(name: str) -> bool:
    """Whether ``name`` can stand in a GenQuery ``in (...)`` list."""
    return "'" not in name


def children_named(catalog: IrodsCatalog, collection: str, names: Sequence[str], *, subcollections: bool = True) -> CollectionListing:
    """The data objects (all replicas) and, with ``subcollections``, the subcollections of
    ``collection`` among ``names``: rows bounded by the names asked about."""
    wanted = list(dict.fromkeys(names))  # a character map may give two files one name
    result = CollectionListing()
    for batch in in_batches([n for n in wanted if quotable(n)]):
        catalog.objects_where(collection, In(DataObject.name, batch), into=result)
    for name in wanted:
        if not quotable(name):
            catalog.objects_where(collection, DataObject.name == name, into=result)
    if subcollections:
        # A data object and a collection never share a path: only the other names can be one.
        result.subcollections = subcollections_named(catalog, collection, [n for n in wanted if n not in result.objects])
    return result


def subcollections_named(catalog: IrodsCatalog, collection: str, names: Sequence[str]) -> set[str]:
    """Which of ``names`` are subcollections of ``collection``."""
    prefix = collection.rstrip("/") + "/"
    paths = [prefix + n for n in names]
    found: set[str] = set()
    with irods_errors("listing", collection):
        for batch in in_batches([p for p in paths if quotable(p)]):
            rows = catalog.all_rows(catalog.session.query(Collection.name).filter(In(Collection.name, batch)))
            found.update(row[Collection.name][len(prefix) :] for row in rows)
        for path in paths:
            if not quotable(path):
                rows = catalog.all_rows(catalog.session.query(Collection.name).filter(Collection.name == path))
                found.update(row[Collection.name][len(prefix) :] for row in rows)
    return found
