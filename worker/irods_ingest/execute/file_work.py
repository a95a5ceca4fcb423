"""One file of a FILES task, decided before iRODS is touched: the file as it is now (stat'ed
again and its links judged again), its logical path, the handler's meta and its answers
(operation, resource, physical path), and the catalog to do it with."""

from __future__ import annotations

import base64
import os
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from irods_ingest.config import Operation, SymlinkPolicy, delete_mode_compatible
from irods_ingest.confine import escape_reason, escaping_target
from irods_ingest.errors import PermanentError, SourceVanished
from irods_ingest.execute.context import FILE_QUEUE, UNICODE_ERROR_PREFIX, JobContext
from irods_ingest.irods_io.catalog import IrodsCatalog
from irods_ingest.tasks import FileEntry


@dataclass
class FileWork:
    """Everything decided about one file before iRODS is touched."""

    entry: FileEntry
    source: str
    target: str
    meta: dict[str, Any]
    operation: Operation
    catalog: IrodsCatalog
    resource: str | None
    physical: str
    key: str = ""  # S3 sources: the object key

    @property
    def name(self) -> str:
        return posixpath.basename(self.target)

    @property
    def mtime(self) -> int:
        return int(self.entry.mtime_ns // 1_000_000_000)


def chunk_meta(job: JobContext, directory: str, entries: Iterable[FileEntry]) -> dict[str, dict[str, Any]]:
    """The incumbent's ``meta["chunk"]``: each file of the task's batch by source path, as listed
    (``None`` for what the listing did not stat; ``ctime`` is not listed)."""
    chunk: dict[str, dict[str, Any]] = {}
    for entry in entries:
        stated = entry.stated
        chunk[job.entry_source(directory, entry.name)] = {
            "is_link": entry.kind == "link",
            "is_socket": entry.kind == "socket",
            "mtime": entry.mtime_ns / 1e9 if stated else None,
            "ctime": None,
            "size": entry.size if stated else None,
        }
    return chunk


def prepare(job: JobContext, directory: str, scanned: FileEntry, chunk: dict[str, Any] | None = None) -> FileWork:
    config = job.config
    source = job.entry_source(directory, scanned.name)
    # An S3 object is synced as listed (size, time, ETag): no stat, and a GET that finds
    # other bytes fails verification instead of passing unnoticed.
    ctime: float | None = None
    if config.s3 is not None:
        entry = scanned
        ctime = entry.mtime_ns / 1e9  # an object has one time
    else:
        entry, ctime = _restat(job, source, scanned)
    target = job.logical_path(directory, entry.name)
    meta = job.meta(
        path=source,
        target=target,
        entry_type="file",
        size=entry.size,
        mtime=entry.mtime_ns / 1e9,
        is_link=entry.kind == "link",
        is_socket=entry.kind == "socket",
        # the incumbent's per-file keys (docs/migration.md#meta-keys)
        ctime=ctime,
        is_empty_dir=None,
        chunk=chunk if chunk is not None else chunk_meta(job, directory, [entry]),
        task="sync_file",
        queue_name=FILE_QUEUE,
    )
    if target != posixpath.join(job.logical_collection(directory), entry.name):
        renamed_by = "UnicodeEncodeError" if posixpath.basename(target).startswith(UNICODE_ERROR_PREFIX) else "character_map"
        meta["b64_path_str"] = base64.b64encode(os.fsencode(source)).decode()
        meta["b64_reason"] = renamed_by
        # the incumbent's own keys for the two renamings (bytes, as it gave them)
        if renamed_by == "character_map":
            meta["b64_path_str_charmap"] = meta["b64_path_str"].encode()
        else:
            meta["unicode_error_filename"] = posixpath.basename(target)
    operation = job.handler.operation(None, meta, config.operation)
    if not delete_mode_compatible(operation, job.handler.delete_mode(meta, config.delete_mode)):
        raise PermanentError(f"handler operation {operation.value} is incompatible with the job's delete mode")
    catalog = job.catalog(meta)
    return FileWork(
        entry=entry,
        source=source,
        target=target,
        meta=meta,
        operation=operation,
        catalog=catalog,
        resource=job.handler.to_resource(catalog.session, meta, config.resource),
        physical=job.handler.target_path(catalog.session, meta) or source,
        key=config.s3.key(posixpath.join(directory, entry.name) if directory else entry.name) if config.s3 else "",
    )


def _restat(job: JobContext, source: str, scanned: FileEntry) -> tuple[FileEntry, float]:
    """The file as it is now: it may have changed, or gone, since the scan listed it.

    Links are judged again (a data producer may have planted or re-pointed one since the
    scan): a regular file that became a link fails unless links are followed (Follow),
    and a link that now resolves outside the source root fails. One ``lstat`` as before;
    ``realpath`` only for links. Also its ctime (for ``meta``).
    """
    kind = scanned.kind
    try:
        st = os.lstat(source)
        if stat.S_ISLNK(st.st_mode):
            if kind != "link" and job.config.symlinks is not SymlinkPolicy.FOLLOW:
                raise PermanentError(f"{source} was replaced by a symbolic link after the scan: not followed")
            escaped = escaping_target(source, job.real_source_root)
            if escaped is not None:
                raise PermanentError(f"{source}: {escape_reason(escaped)}")
            if kind != "link":
                st = os.stat(source)  # Follow: the file the link points to
        elif kind == "link" and stat.S_ISREG(st.st_mode):
            kind = "regular"  # the link was replaced by a file: sync the file (no link_target AVU)
        if kind == "regular" and not stat.S_ISREG(st.st_mode):
            raise PermanentError(f"{source} is not a regular file any more (replaced after the scan): not synced")
    except FileNotFoundError as exc:
        raise SourceVanished(f"source file vanished before it was synced: {source}") from exc
    except OSError as exc:
        raise PermanentError(f"cannot stat {source}: {exc.strerror}") from exc
    if (st.st_size, st.st_mtime_ns, kind) == (scanned.size, scanned.mtime_ns, scanned.kind):
        return scanned, st.st_ctime
    return FileEntry(scanned.name, st.st_size, st.st_mtime_ns, kind), st.st_ctime
