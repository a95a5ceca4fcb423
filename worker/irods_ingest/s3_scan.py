"""Classifying one S3 listing page: the S3 counterpart of :mod:`irods_ingest.scan`.

Pure (no network): the executor lists one page per SCAN task and turns the result into
child SCAN tasks (one per common prefix), a continuation SCAN task (if truncated) and
FILES batches, so many workers list one bucket at once and no task holds more than a page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from irods_ingest.config import FileType, S3Source
from irods_ingest.s3_io import ListPage
from irods_ingest.scan import Filters, Skipped, join_relative
from irods_ingest.tasks import FileEntry

_BAD_SEGMENTS = frozenset({"", ".", ".."})


@dataclass
class PageScan:
    subdirectories: list[str] = field(default_factory=list)  # relative prefixes, without the trailing "/"
    candidates: list[FileEntry] = field(default_factory=list)  # not excluded; the change cache decides
    excluded: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    # every object and subprefix name of the page, excluded and skipped ones included (so
    # that excluding something never deletes it from iRODS), as the scan of a directory has
    names_seen: set[str] = field(default_factory=set)


class ListingBook(Protocol):
    """What a multi-page prefix's pages remember for its last page (in Redis:
    :class:`irods_ingest.jobstate.ListingBook`).

    A listing page never sees a whole prefix: every page but the last adds its names (before
    its acknowledgement enqueues the next page), and the last page compares the iRODS
    collection and the change cache against them, then forgets them.
    """

    def remember_seen(self, run_id: str, directory: str, names: Iterable[str]) -> None: ...

    def seen_started(self, run_id: str, directory: str) -> bool: ...

    def seen_among(self, run_id: str, directory: str, names: list[str]) -> set[str]: ...

    def forget_seen(self, run_id: str, directory: str) -> None: ...

    def forget_run_seen(self, run_id: str) -> int: ...


def list_prefix(source: S3Source, directory: str) -> str:
    """The full key prefix that lists ``directory`` (relative to the source prefix)."""
    return source.key(f"{directory}/" if directory else "")


def classify_page(page: ListPage, source: S3Source, directory: str, filters: Filters) -> PageScan:
    result = PageScan()
    listed = list_prefix(source, directory)
    for prefix in page.common_prefixes:
        name = prefix[len(listed) :].removesuffix("/")
        relative = join_relative(directory, name)
        result.names_seen.add(name)
        if name in _BAD_SEGMENTS:
            result.skipped.append(Skipped(f"{name}/", f"prefix {prefix!r} has an empty, '.' or '..' segment, which iRODS cannot name"))
        elif not filters.excludes_directory(relative):
            result.subdirectories.append(relative)
    for obj in page.objects:
        name = obj.key[len(listed) :]
        if not name:
            continue  # the "folder" marker of the prefix itself (a key ending in "/")
        result.names_seen.add(name)
        if name in (".", ".."):
            result.skipped.append(Skipped(name, f"key {obj.key!r} ends in a '.' or '..' segment, which iRODS cannot name"))
            continue
        if filters.excludes_file(join_relative(directory, name), FileType.REGULAR):
            result.excluded += 1
            continue
        result.candidates.append(FileEntry(name, obj.size, obj.last_modified_ns, FileType.REGULAR.value, obj.etag))
    return result
