"""Scanning one source directory: classify every entry, never open special files.

Pure filesystem work (no Redis, no iRODS): the worker turns a :class:`DirectoryScan`
into child scan tasks, file batches, counts and failure records.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field

from irods_ingest.config import FileType, JobConfig, Operation, SymlinkPolicy
from irods_ingest.tasks import FileEntry, wire_name

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
    unchanged: list[FileEntry] = field(default_factory=list)
    excluded: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    names_seen: set[str] = field(default_factory=set)  # every entry name, incl. excluded/unreadable
    stale_cache: list[str] = field(default_factory=list)  # cache fields for names no longer present


class Filters:
    """Exclusion rules. Regexes are matched from the start of the path relative to the source
    root (``re.match``), as the incumbent matched them against absolute paths: ``.*\\.tmp``
    excludes every ``.tmp`` file, ``cache`` the top-level ``cache`` and anything below it."""

    def __init__(self, config: JobConfig) -> None:
        self.exclude_types = set(config.exclude_types)
        self.exclude_names = [re.compile(p) for p in config.exclude_names]
        self.exclude_directories = [re.compile(p) for p in config.exclude_directories]
        self.include_names = [re.compile(p) for p in config.include_names]

    def excludes_directory(self, relative: str) -> bool:
        return FileType.DIRECTORY in self.exclude_types or any(p.match(relative) for p in self.exclude_directories)

    def excludes_file(self, relative: str, kind: FileType) -> bool:
        if kind in self.exclude_types or any(p.match(relative) for p in self.exclude_names):
            return True
        return bool(self.include_names) and not any(p.match(relative) for p in self.include_names)


def join_relative(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def scan_directory(
    root: str, directory: str, config: JobConfig, cached: dict[str, str], filters: Filters | None = None
) -> DirectoryScan:
    """Classify the entries of ``root/directory``.

    Raises ``FileNotFoundError``/``NotADirectoryError``/``PermissionError`` when the
    directory itself cannot be listed; the caller records that.
    """
    filters = filters or Filters(config)
    result = DirectoryScan()
    absolute_dir = os.path.join(root, directory) if directory else root
    uploads = config.operation.uploads
    use_cache = not config.ignore_cache and bool(cached)  # a directory never synced has no cache to compare
    regular = FileType.REGULAR.value
    with os.scandir(absolute_dir) as entries:
        for dirent in entries:
            name = dirent.name
            result.names_seen.add(name)
            relative = join_relative(directory, name)
            try:
                st = dirent.stat(follow_symlinks=False)
            except FileNotFoundError:
                result.skipped.append(Skipped(name, "vanished during the scan"))
                continue
            kind = file_type(st.st_mode)
            if kind is FileType.LINK:
                handled = _classify_link(dirent.path, name, relative, absolute_dir, config, filters, result)
                if handled is None:
                    continue
                st, kind = handled
            if kind is FileType.DIRECTORY:
                if not filters.excludes_directory(relative):
                    result.subdirectories.append(relative)
                continue
            if kind is None or filters.excludes_file(relative, kind):
                result.excluded += 1
                continue
            if kind in (FileType.PIPE, FileType.CHARACTER, FileType.BLOCK) or (kind is FileType.SOCKET and uploads):
                # Opening these could block a worker forever or read endless data.
                result.skipped.append(
                    Skipped(name, f"{kind.value} file is not ingested (exclude type {kind.value!r} to silence this)")
                )
                continue
            if uploads and kind is FileType.REGULAR and not os.access(dirent.path, os.R_OK):
                result.skipped.append(Skipped(name, "permission denied: the worker cannot read this file", failed=True))
                continue
            entry = FileEntry(name, st.st_size, st.st_mtime_ns, regular if kind is FileType.REGULAR else kind.value)
            if use_cache and cached.get(entry.cache_field) == entry.cache_value:
                result.unchanged.append(entry)
            else:
                result.to_sync.append(entry)
    if cached:
        present = {wire_name(n) for n in result.names_seen}  # cache fields are wire names
        result.stale_cache = [field_name for field_name in cached if field_name not in present]
    return result


def _classify_link(
    path: str,
    name: str,
    relative: str,
    absolute_dir: str,
    config: JobConfig,
    filters: Filters,
    result: DirectoryScan,
) -> tuple[os.stat_result, FileType] | None:
    """Apply the symlink policy; returns the (stat, type) to continue with, or None if handled."""
    if config.symlinks is SymlinkPolicy.SKIP:
        if not filters.excludes_file(relative, FileType.LINK):
            result.skipped.append(Skipped(name, "symbolic link skipped (symlinks: Skip)"))
        else:
            result.excluded += 1
        return None
    if config.symlinks is SymlinkPolicy.REGISTER:
        if config.operation.uploads and not os.path.exists(path):
            result.skipped.append(Skipped(name, "broken symbolic link: nothing to upload"))
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
    if stat.S_ISDIR(target_stat.st_mode):
        real_target = os.path.realpath(path)
        real_here = os.path.realpath(absolute_dir)
        if real_here == real_target or real_here.startswith(real_target.rstrip("/") + "/"):
            result.skipped.append(Skipped(name, f"symbolic link loop: {relative} points to its own ancestor"))
            return None
    kind = file_type(target_stat.st_mode)
    return (target_stat, kind) if kind is not None else None


def operation_needs_readable(operation: Operation) -> bool:
    return operation.uploads
