"""Listing a directory by name, for first-sync scans: the regular files as ready-made batches.

``list_by_name(path, batch, check_readable) -> (batches, files, directories, others, unreadable)``:

- ``batches``: the regular files' names (known from the directory entry's type, never
  ``stat``'ed) as JSON arrays of at most ``batch`` wire names each -- exactly
  ``encode_names(chunk)`` -- in directory order: what a FILES task carries;
- ``files``: how many names the batches hold;
- ``directories``: the names of the subdirectories (known from the entry's type);
- ``others``: the names of every other entry (links, special files, entries whose type the
  filesystem does not report and that vanished): the caller classifies them with ``lstat``;
- ``unreadable``: regular files the worker cannot read (only with ``check_readable``).

``open_lister(path, batch, check_readable)`` reads the same listing a page at a time from
one open directory stream: ``lister.page(limit)`` returns the next at most ``limit`` entries
(every entry counts) as the five above plus ``done`` (the stream reached its end), and
``close()`` closes it. Within one stream readdir returns every entry that exists throughout
exactly once, whatever the order, so a directory of any size is listed with memory for one
page (``execute.scan_pages`` builds on that).

The native implementation (``_listing.c``, built on install when a C compiler is present)
runs the readdir loop and the encoding without the GIL at ``find -type f``'s pace; the
pure-Python one below gives the same result and is used where the extension is missing.
Raises ``OSError`` (``FileNotFoundError``, ``NotADirectoryError``, ``PermissionError``)
when the directory itself cannot be listed.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from typing import Protocol

from irods_ingest.tasks import wire_names

Listing = tuple[list[str], int, list[str], list[str], list[str]]
ListByName = Callable[[str, int, bool], Listing]
ListingPage = tuple[list[str], int, list[str], list[str], list[str], bool]


class Lister(Protocol):
    def page(self, limit: int) -> ListingPage: ...

    def close(self) -> None: ...


def encode_names(names: list[str]) -> str:
    """A FILES task's batch of names as it travels: a compact JSON array of wire names."""
    return json.dumps(wire_names(names), ensure_ascii=True, separators=(",", ":"))


def list_by_name_python(path: str, batch: int, check_readable: bool) -> Listing:
    if batch < 1:
        raise ValueError("batch must be at least 1")
    names: list[str] = []
    directories: list[str] = []
    others: list[str] = []
    unreadable: list[str] = []
    with os.scandir(path) as entries:
        for dirent in entries:
            if not dirent.is_file(follow_symlinks=False):  # d_type: no system call
                (directories if dirent.is_dir(follow_symlinks=False) else others).append(dirent.name)
            elif check_readable and not os.access(dirent.path, os.R_OK):
                unreadable.append(dirent.name)
            else:
                names.append(dirent.name)
    batches = [encode_names(names[i : i + batch]) for i in range(0, len(names), batch)]
    return batches, len(names), directories, others, unreadable


class ListerPython:
    """The pure-Python :class:`Lister` (the same pages as the native one)."""

    def __init__(self, path: str, batch: int, check_readable: bool) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._batch = batch
        self._check_readable = check_readable
        self._entries: os._ScandirIterator[str] | None = os.scandir(path)

    def page(self, limit: int) -> ListingPage:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if self._entries is None:
            raise ValueError("Lister is closed")
        names: list[str] = []
        directories: list[str] = []
        others: list[str] = []
        unreadable: list[str] = []
        entries = list(itertools.islice(self._entries, limit))
        for dirent in entries:
            if not dirent.is_file(follow_symlinks=False):
                (directories if dirent.is_dir(follow_symlinks=False) else others).append(dirent.name)
            elif self._check_readable and not os.access(dirent.path, os.R_OK):
                unreadable.append(dirent.name)
            else:
                names.append(dirent.name)
        batches = [encode_names(names[i : i + self._batch]) for i in range(0, len(names), self._batch)]
        return batches, len(names), directories, others, unreadable, len(entries) < limit

    def close(self) -> None:
        if self._entries is not None:
            self._entries.close()
            self._entries = None


def _native() -> ListByName | None:
    try:
        from irods_ingest._listing import list_by_name  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return list_by_name  # type: ignore[no-any-return,unused-ignore]


def _native_lister() -> Callable[[str, int, bool], Lister] | None:
    try:
        from irods_ingest._listing import Lister as NativeLister  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return NativeLister  # type: ignore[no-any-return,unused-ignore]


native_list_by_name: ListByName | None = _native()
NATIVE = native_list_by_name is not None
list_by_name: ListByName = native_list_by_name or list_by_name_python
native_lister: Callable[[str, int, bool], Lister] | None = _native_lister()
open_lister: Callable[[str, int, bool], Lister] = native_lister or ListerPython
