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

The native implementation (``_listing.c``, built on install when a C compiler is present)
runs the readdir loop and the encoding without the GIL at ``find -type f``'s pace; the
pure-Python one below gives the same result and is used where the extension is missing.
Raises ``OSError`` (``FileNotFoundError``, ``NotADirectoryError``, ``PermissionError``)
when the directory itself cannot be listed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from irods_ingest.tasks import wire_names

Listing = tuple[list[str], int, list[str], list[str], list[str]]
ListByName = Callable[[str, int, bool], Listing]


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


def _native() -> ListByName | None:
    try:
        from irods_ingest._listing import list_by_name  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return list_by_name  # type: ignore[no-any-return,unused-ignore]


native_list_by_name: ListByName | None = _native()
NATIVE = native_list_by_name is not None
list_by_name: ListByName = native_list_by_name or list_by_name_python
