"""Scanning one source directory: classify every entry, never open special files.

Pure filesystem work (no Redis, no iRODS): the worker turns a :class:`DirectoryScan`
into child scan tasks, file batches, counts and failure records.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from irods_ingest.config import DeleteMode, FileType, JobConfig, Operation, SymlinkPolicy
from irods_ingest.confine import escape_reason, escaping_target, inside, real_root
from irods_ingest.listing import Lister, Listing, encode_names, open_lister
from irods_ingest.tasks import FileEntry, from_wire_name, wire_name, wire_names

_TYPE_OF_MODE = (
    (stat.S_ISREG, FileType.REGULAR),
    (stat.S_ISDIR, FileType.DIRECTORY),
    (stat.S_ISLNK, FileType.LINK),
    (stat.S_ISSOCK, FileType.SOCKET),
    (stat.S_ISFIFO, FileType.PIPE),
    (stat.S_ISCHR, FileType.CHARACTER),
    (stat.S_ISBLK, FileType.BLOCK),
)


def file_type(mode: int) -> FileType | None:
    if stat.S_ISREG(mode):  # the common case first, without the loop
        return FileType.REGULAR
    for test, kind in _TYPE_OF_MODE:
        if test(mode):
            return kind
    return None


@dataclass
class Skipped:
    name: str
    reason: str
    failed: bool = False  # True: counts as a failure (e.g. unreadable for an upload)


@dataclass
class DirectoryScan:
    subdirectories: list[str] = field(default_factory=list)  # relative paths
    to_sync: list[FileEntry] = field(default_factory=list)
    # Regular files to sync, listed by name without a stat: JSON arrays of wire names, at most
    # files_per_task each, ready to travel as FILES tasks (listing.encode_names); ``listed`` counts them.
    listed_batches: list[str] = field(default_factory=list)
    listed: int = 0
    unchanged: list[FileEntry] = field(default_factory=list)
    excluded: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    # Every entry name, incl. excluded/unreadable, for deletions and stale cache entries (left
    # empty by a first-sync scan of a job that deletes nothing: nothing reads it there).
    names_seen: set[str] = field(default_factory=set)
    stale_cache: list[str] = field(default_factory=list)  # cache fields for names no longer present
    done: bool = True  # the directory's listing ended with this page
    # A native page (names_seen left empty): its other entries by raw name (directories,
    # links, special and unreadable files), for its record
    native: bool = False
    raw_names: list[str] = field(default_factory=list)

    def record(self) -> str:
        """Every entry name this page accounted for, as one JSON array of wire names (what a
        paged listing records per page: execute.scan_pages)."""
        if not self.native:
            return encode_names(list(self.names_seen))
        arrays = [*self.listed_batches, encode_names(self.raw_names)]
        return "[" + ",".join(a[1:-1] for a in arrays if len(a) > 2) + "]"


class Filters:
    """Exclusion rules. Regexes are matched from the start of the path relative to the source
    root (``re.match``), as the incumbent matched them against absolute paths: ``.*\\.tmp``
    excludes every ``.tmp`` file, ``cache`` the top-level ``cache`` and anything below it."""

    def __init__(self, config: JobConfig) -> None:
        self.exclude_types = set(config.exclude_types)
        self.exclude_names = [re.compile(p) for p in config.exclude_names]
        self.exclude_directories = [re.compile(p) for p in config.exclude_directories]
        self.include_names = [re.compile(p) for p in config.include_names]
        self.filters_files = bool(self.exclude_types or self.exclude_names or self.include_names)

    def excludes_directory(self, relative: str) -> bool:
        return FileType.DIRECTORY in self.exclude_types or any(p.match(relative) for p in self.exclude_directories)

    def excludes_file(self, relative: str, kind: FileType) -> bool:
        if kind in self.exclude_types or any(p.match(relative) for p in self.exclude_names):
            return True
        return bool(self.include_names) and not any(p.match(relative) for p in self.include_names)


def join_relative(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


# Wire names (cache fields) -> the cached values of those that have one.
CacheLookup = Callable[[list[str]], Mapping[str, str]]
# Wire names -> those an earlier delivery of the same listing already accounted for.
AlreadySeen = Callable[[list[str]], set[str]]
_UNBOUNDED = sys.maxsize
_CHUNK = 1000  # entries classified together (one cache read) within a page


class DirectoryPages:
    """One directory's entries, classified a page of at most ``page_entries`` at a time.

    Every page comes from ONE open directory stream (``os.scandir``, or the native
    :func:`irods_ingest.listing.open_lister`): within a stream readdir returns each entry
    that exists throughout exactly once, in whatever order the filesystem keeps, so pages
    never overlap and together hold the whole directory, with memory for one page.

    ``cached_anything`` says whether the directory has a change cache to compare: without
    one (a first sync) regular files are listed by name, without ``stat``; with nothing to
    match a name against and no deletions to judge they go straight into batches, natively.
    ``next(cached, seen)`` classifies the next page: ``cached`` gives the cache values of
    the page's names (a dict of a small directory, or one bounded read per page); ``seen``
    drops the names an earlier delivery already accounted for before anything is counted.

    Raises ``FileNotFoundError``/``NotADirectoryError``/``PermissionError`` when the
    directory itself cannot be listed; the caller records that.
    """

    def __init__(
        self,
        root: str,
        directory: str,
        config: JobConfig,
        filters: Filters | None = None,
        *,
        cached_anything: bool,
        stat_files: bool = False,
        page_entries: int | None = None,
    ) -> None:
        self.filters = filters or Filters(config)
        self.config = config
        self.directory = directory
        self.absolute_dir = os.path.join(root, directory) if directory else root
        self.use_cache = not config.ignore_cache and cached_anything  # a directory never synced has nothing to compare
        self.by_name = not stat_files and not self.use_cache
        # Nothing to match a file's name against and no deletions to judge: the listing of
        # regular files can go straight into batches (natively where built).
        self.fast = self.by_name and not cached_anything and not self.filters.filters_files and (
            config.delete_mode is DeleteMode.DO_NOT_DELETE
        )
        self.limit = page_entries or _UNBOUNDED
        self._root = root
        self._lister: Lister | None = None
        self._scandir: Iterator[os.DirEntry[str]] | None = None
        if self.fast:
            self._lister = open_lister(self.absolute_dir, config.files_per_task, config.operation.uploads)
        else:
            self._scandir = os.scandir(self.absolute_dir)

    def __enter__(self) -> DirectoryPages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._lister is not None:
            self._lister.close()
        if self._scandir is not None:
            self._scandir.close()  # type: ignore[attr-defined]

    def next(self, cached: CacheLookup | None = None, seen: AlreadySeen | None = None) -> DirectoryScan:
        """Classify the next page; ``done`` on the result says whether the listing ended."""
        result = DirectoryScan()
        classify = _Classifier(self._root, self.directory, self.absolute_dir, self.config, self.filters, None, result)
        if self._lister is not None:
            self._fast_page(result, classify, seen)
            return result
        assert self._scandir is not None
        listed: list[str] = []
        taken = 0
        result.done = False
        # A chunk at a time: one cache read per chunk, and no more than a chunk's entries (and
        # their stat results) held at once, however large the page.
        while taken < self.limit and not result.done:
            want = min(_CHUNK, self.limit - taken)
            entries = list(itertools.islice(self._scandir, want))
            taken += len(entries)
            result.done = len(entries) < want
            if seen is not None and entries:
                known = seen([wire_name(e.name) for e in entries])
                entries = [e for e in entries if wire_name(e.name) not in known]
            if self.use_cache and entries:
                classify.cached = cached([wire_name(e.name) for e in entries]) if cached is not None else {}
            self._classify(entries, result, classify, listed)
        size = self.config.files_per_task
        result.listed_batches = [encode_names(listed[i : i + size]) for i in range(0, len(listed), size)]
        result.listed = len(listed)
        return result

    def _fast_page(self, result: DirectoryScan, classify: _Classifier, seen: AlreadySeen | None) -> None:
        assert self._lister is not None
        batches, files, directories, others, unreadable, result.done = self._lister.page(self.limit)
        if seen is not None:
            batches, files, directories, others, unreadable = _unseen(
                batches, directories, others, unreadable, seen, self.config.files_per_task
            )
        result.listed_batches, result.listed, result.native = batches, files, True
        result.raw_names = directories + others + unreadable
        for name in directories:
            relative = join_relative(self.directory, name)
            if not self.filters.excludes_directory(relative):
                result.subdirectories.append(relative)
        for name in unreadable:
            result.skipped.append(Skipped(name, UNREADABLE, failed=True))
        for name in others:
            path = os.path.join(self.absolute_dir, name)
            classify(name, path, lambda path=path: os.lstat(path))  # type: ignore[misc]

    def _classify(self, entries: list[os.DirEntry[str]], result: DirectoryScan, classify: _Classifier, listed: list[str]) -> None:
        names_seen = result.names_seen
        filters, directory, uploads = self.filters, self.directory, self.config.operation.uploads
        for dirent in entries:
            name = dirent.name
            names_seen.add(name)
            if self.by_name and dirent.is_file(follow_symlinks=False):  # d_type: no system call
                if filters.filters_files and filters.excludes_file(join_relative(directory, name), FileType.REGULAR):
                    result.excluded += 1
                elif uploads and not os.access(dirent.path, os.R_OK):
                    result.skipped.append(Skipped(name, UNREADABLE, failed=True))
                else:
                    listed.append(name)
                continue
            classify(name, dirent.path, lambda dirent=dirent: dirent.stat(follow_symlinks=False))  # type: ignore[misc]


def _unseen(
    batches: list[str], directories: list[str], others: list[str], unreadable: list[str], seen: AlreadySeen, size: int
) -> Listing:
    """A native page without the names ``seen`` reports (a redelivered listing)."""
    files = [from_wire_name(n) for batch in batches for n in json.loads(batch)]
    known = seen(wire_names(files + directories + others + unreadable))
    files = [n for n in files if wire_name(n) not in known]
    batches = [encode_names(files[i : i + size]) for i in range(0, len(files), size)]

    def keep(names: list[str]) -> list[str]:
        return [n for n in names if wire_name(n) not in known]

    return batches, len(files), keep(directories), keep(others), keep(unreadable)


def scan_directory(
    root: str,
    directory: str,
    config: JobConfig,
    cached: dict[str, str],
    filters: Filters | None = None,
    *,
    stat_files: bool = True,
) -> DirectoryScan:
    """Classify all entries of ``root/directory`` at once, and find the cache's stale entries.

    ``stat_files=False`` (a directory with nothing cached to compare, e.g. a first sync):
    regular files, known as such from the directory entry's type, are listed by name
    without a ``stat``, straight into ``listed_batches`` -- the task that syncs a file
    stats it anyway, so the scan runs at the pace of ``find -type f`` instead of paying a
    second ``stat`` per file. Everything else (directories, links, special files) is
    classified as with a stat. (Scans list a page at a time: :class:`DirectoryPages`.)
    """
    with DirectoryPages(root, directory, config, filters, cached_anything=bool(cached), stat_files=stat_files) as pages:
        result = pages.next(lambda names: cached)
    if cached and not pages.fast:
        result.stale_cache = stale_entries(cached, result.names_seen)
    return result


def stale_entries(cache_fields: Iterable[str], names_seen: set[str]) -> list[str]:
    """The cache fields (wire names) of entries no longer in ``names_seen`` (raw names)."""
    present = {wire_name(n) for n in names_seen}
    return [field_name for field_name in cache_fields if field_name not in present]


UNREADABLE = "permission denied: the worker cannot read this file"


class _Classifier:
    """One entry, ``stat``'ed: a subdirectory, a file to sync or unchanged, excluded or skipped."""

    def __init__(
        self,
        root: str,
        directory: str,
        absolute_dir: str,
        config: JobConfig,
        filters: Filters,
        cached: Mapping[str, str] | None,
        result: DirectoryScan,
    ) -> None:
        self.root = root
        self._real_root: str | None = None  # resolved at the first link: most directories have none
        self.directory = directory
        self.absolute_dir = absolute_dir
        self.config = config
        self.filters = filters
        self.cached = cached  # None: nothing to compare (every file is synced)
        self.result = result
        self.uploads = config.operation.uploads

    def __call__(self, name: str, path: str, lstat: Callable[[], os.stat_result]) -> None:
        result, filters = self.result, self.filters
        relative = join_relative(self.directory, name)
        try:
            st = lstat()
        except FileNotFoundError:
            result.skipped.append(Skipped(name, "vanished during the scan"))
            return
        kind = file_type(st.st_mode)
        if kind is FileType.LINK:
            if self._real_root is None:
                self._real_root = real_root(self.root)
            handled = _classify_link(path, name, relative, self.absolute_dir, self._real_root, self.config, filters, result)
            if handled is None:
                return
            st, kind = handled
        if kind is FileType.DIRECTORY:
            if not filters.excludes_directory(relative):
                result.subdirectories.append(relative)
            return
        if kind is None or filters.excludes_file(relative, kind):
            result.excluded += 1
            return
        if kind in (FileType.PIPE, FileType.CHARACTER, FileType.BLOCK) or (kind is FileType.SOCKET and self.uploads):
            # Opening these could block a worker forever or read endless data.
            result.skipped.append(
                Skipped(name, f"{kind.value} file is not ingested (exclude type {kind.value!r} to silence this)")
            )
            return
        if self.uploads and kind is FileType.REGULAR and not os.access(path, os.R_OK):
            result.skipped.append(Skipped(name, UNREADABLE, failed=True))
            return
        entry = FileEntry(name, st.st_size, st.st_mtime_ns, FileType.REGULAR.value if kind is FileType.REGULAR else kind.value)
        if self.cached is not None and self.cached.get(entry.cache_field) == entry.cache_value:
            result.unchanged.append(entry)
        else:
            result.to_sync.append(entry)


def _classify_link(
    path: str,
    name: str,
    relative: str,
    absolute_dir: str,
    root: str,
    config: JobConfig,
    filters: Filters,
    result: DirectoryScan,
) -> tuple[os.stat_result, FileType] | None:
    """Apply the symlink policy; returns the (stat, type) to continue with, or None if handled.

    Whatever the policy and operation, a link that resolves outside ``root`` (the real source
    root) is skipped: neither uploaded, nor registered (iRODS would serve the bytes it points
    to; the incumbent registered such links), nor descended (see :mod:`irods_ingest.confine`).
    """
    if config.symlinks is SymlinkPolicy.SKIP:
        if not filters.excludes_file(relative, FileType.LINK):
            result.skipped.append(Skipped(name, "symbolic link skipped (symlinks: Skip)"))
        else:
            result.excluded += 1
        return None
    if config.symlinks is SymlinkPolicy.REGISTER:
        escaped = escaping_target(path, root)
        if escaped is not None:
            _refuse_escape(name, relative, escaped, filters, result)
            return None
        if config.operation.uploads:
            try:
                is_directory = stat.S_ISDIR(os.stat(path).st_mode)
            except OSError:  # missing target, or a loop
                result.skipped.append(Skipped(name, "broken symbolic link: nothing to upload"))
                return None
            if is_directory:
                result.skipped.append(
                    Skipped(name, "symbolic link to a directory: nothing to upload (symlinks: Follow descends it)")
                )
                return None
        return os.lstat(path), FileType.LINK
    # Follow: what the link points to, with loops refused.
    try:
        target_stat = os.stat(path)
    except FileNotFoundError:
        result.skipped.append(Skipped(name, "broken symbolic link"))
        return None
    except OSError as exc:  # ELOOP and friends
        result.skipped.append(Skipped(name, f"symbolic link cannot be followed: {exc.strerror}"))
        return None
    real_target = os.path.realpath(path)
    if not inside(real_target, root):
        _refuse_escape(name, relative, real_target, filters, result)
        return None
    if stat.S_ISDIR(target_stat.st_mode):
        real_here = os.path.realpath(absolute_dir)
        if real_here == real_target or real_here.startswith(real_target.rstrip("/") + "/"):
            result.skipped.append(Skipped(name, f"symbolic link loop: {relative} points to its own ancestor"))
            return None
    kind = file_type(target_stat.st_mode)
    return (target_stat, kind) if kind is not None else None


def _refuse_escape(name: str, relative: str, target: str, filters: Filters, result: DirectoryScan) -> None:
    """A link out of the source root is skipped by name (unless the filters exclude it anyway)."""
    if filters.excludes_file(relative, FileType.LINK):
        result.excluded += 1
    else:
        result.skipped.append(Skipped(name, escape_reason(target)))


def operation_needs_readable(operation: Operation) -> bool:
    return operation.uploads
