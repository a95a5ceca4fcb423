"""Checking a task against its job before a worker acts on it (issue 14, finding 2b).

Anyone holding a worker's Redis credential can push tasks into a job's queue: the queue is
not a trusted channel. :func:`task_problem` is what the worker asks of every task it claims
(after the run fence): ``None``, or why the task must not run. A rejected task is
acknowledged as failed with a "rejected task" record; nothing of it is executed.

The rules, per kind (a task carries only the fields its kind uses):

- every ``directory`` (and each of a grouped SCAN's ``more_directories``) is a path
  relative to the source root, or "" for the root: not absolute, no empty, ``.`` or ``..``
  segments, no NUL. For an S3 source the same holds for the path below the source prefix
  (the listing never produces such segments: ``s3_scan`` skips them);
- SCAN: a listing ``token`` only for an S3 source;
- FILES: every entry's name is one path component (not empty, no ``/``, not ``.``/``..``,
  no NUL), of a kind the scan produces (an S3 object: regular; an ETag only for S3);
- DELETE: only when the job deletes (the *effective* delete mode, the handler's
  delete_mode() included, is not DoNotDelete); every path and collection (and the
  collection a deletion waits for, ``after``) is an absolute
  logical path strictly below the job's target collection: resolved with ``posixpath``
  it lies below the target (never the target itself), and it is spelled out (no ``.`` or
  ``..`` segments). Deliberately NOT required: that the paths be direct children of the
  logical collection of ``directory``. The forger writes both fields, so that rule would
  protect nothing; it would need the handler's character_map (not known here); and a retry
  run (``actions.retry_tasks``) legitimately carries deletions from many collections in
  one task with ``directory`` "";
- FINALIZE: nothing but its run.

Pure: no Redis, no iRODS, no filesystem.
"""

from __future__ import annotations

import posixpath

from irods_ingest.config import DeleteMode, FileType, JobConfig, normalize_collection
from irods_ingest.tasks import Task, TaskKind

REJECTED_PREFIX = "rejected task: "
# What a scan puts into FILES tasks: regular files; links under symlinks: Register; sockets
# where they are registered, not read.
_FILE_KINDS = frozenset({FileType.REGULAR.value, FileType.LINK.value, FileType.SOCKET.value})


def task_problem(task: Task, config: JobConfig, delete_mode: DeleteMode) -> str | None:
    """Why ``task`` must not run for the job configured by ``config`` (None: it may).

    ``delete_mode`` is the job's effective delete mode (the handler's answer applied).
    """
    problem = _relative_problem("directory", task.directory) or _extra_fields(task, config)
    if problem:
        return problem
    if task.kind is TaskKind.SCAN:
        if "" in task.more_directories:
            return "a scan group lists the source root again (it is only ever the first scan)"
        return next(filter(None, (_relative_problem("scan directory", d) for d in task.more_directories)), None)
    if task.kind is TaskKind.FILES:
        return next(filter(None, (_entry_problem(e.name, e.kind, e.etag, config) for e in task.entries)), None)
    if task.kind is TaskKind.DELETE:
        if delete_mode is DeleteMode.DO_NOT_DELETE:
            return f"a delete task in a job that deletes nothing (delete mode {DeleteMode.DO_NOT_DELETE.value})"
        target = normalize_collection(config.target_collection)
        logical = (*task.paths, *task.collections, *((task.after,) if task.after else ()))
        return next(filter(None, (_logical_problem(p, target) for p in logical)), None)
    return None


def _extra_fields(task: Task, config: JobConfig) -> str | None:
    """A field the task's kind never carries."""
    carried = {
        "entries": bool(task.entries or task.listed),
        "also": bool(task.more_directories),
        "paths": bool(task.paths),
        "colls": bool(task.collections),
        "tok": bool(task.token),
        "dir": bool(task.directory),
        "af": bool(task.after),
        "cur": bool(task.cursor),
        "rm": task.remove,
    }
    allowed = {
        TaskKind.SCAN: {"dir", "also"} | ({"tok"} if config.s3 is not None else set()),
        TaskKind.FILES: {"dir", "entries"},
        TaskKind.DELETE: {"dir", "paths", "colls", "af", "cur", "rm"},
        TaskKind.FINALIZE: set(),
    }[task.kind]
    extra = sorted(name for name, present in carried.items() if present and name not in allowed)
    if not extra:
        return None
    if extra == ["tok"] and task.kind is TaskKind.SCAN:
        return "a listing token in a scan task of a job whose source is not S3"
    return f"a {task.kind.value} task does not carry {', '.join(repr(e) for e in extra)}"


def _relative_problem(what: str, path: str) -> str | None:
    """A path relative to the source root ("" is the root itself)."""
    if not path:
        return None
    if "\x00" in path:
        return f"{what} {path!r} contains a NUL character"
    if path.startswith("/"):
        return f"{what} {path!r} is absolute (it must be relative to the source root)"
    if any(segment in ("", ".", "..") for segment in path.split("/")):
        return f"{what} {path!r} has an empty, '.' or '..' segment (it must stay below the source root)"
    return None


def _entry_problem(name: str, kind: str, etag: str, config: JobConfig) -> str | None:
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        return f"file name {name!r} is not a single path component"
    if config.s3 is not None:
        if kind != FileType.REGULAR.value:
            return f"file {name!r} has kind {kind!r}, but an S3 object is a regular file"
    elif kind not in _FILE_KINDS:
        return f"file {name!r} has kind {kind!r}, which a scan never hands on"
    elif etag:
        return f"file {name!r} carries an ETag in a job whose source is not S3"
    return None


def _logical_problem(path: str, target: str) -> str | None:
    """A DELETE task's logical path: strictly below ``target`` (normalised), spelled out."""
    if "\x00" in path:
        return f"{path!r} contains a NUL character"
    if not path.startswith("/"):
        return f"{path!r} is not an absolute logical path"
    collapsed = normalize_collection(path)  # "//" and a trailing "/" are spelling, not structure
    resolved = posixpath.normpath(collapsed)
    if resolved == target:
        return f"{path} is the target collection itself (only what lies below it may be deleted)"
    if not resolved.startswith(target.rstrip("/") + "/"):
        return f"{path} lies outside the target collection {target}"
    if resolved != collapsed:
        return f"{path} has '.' or '..' segments (spell the path out)"
    return None
