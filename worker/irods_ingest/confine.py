"""Keeping a filesystem job inside its source root: what a link points to, and what is opened.

A data producer controls the source tree, links included, and may change it at any moment.
Two rules follow (issue 14, finding 4):

- a symbolic link is followed (uploaded, registered, descended) only if it resolves inside
  the *real* source root (``realpath`` of the configured source): a link to
  ``/proc/self/environ`` or ``../../etc`` is skipped by name, never read;
- an upload reads only what it opened itself and checked: :func:`opened_inside` opens the
  file (``O_NOFOLLOW`` unless following is asked for, and never blocking on a FIFO), checks
  through ``/proc/self/fd`` that the file actually opened is a regular file inside the real
  root, and hands back ``/proc/self/fd/N`` for python-irodsclient to open. Opening that path
  reopens the very same file (a "magic link", for every thread of the process, as PRC's
  parallel transfer needs), whatever has been renamed or swapped since: the check and the
  read concern one file, so a regular file swapped for a link after the scan (or a
  directory swapped for a link to elsewhere) fails by name instead of leaking.

Pure filesystem work: no Redis, no iRODS.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from irods_ingest.errors import PermanentError, SourceVanished

_PROC_FD = "/proc/self/fd"


def real_root(source_path: str) -> str:
    """The source root as the kernel resolves it (the configured path may itself be a link)."""
    return os.path.realpath(source_path)


def inside(path: str, root: str) -> bool:
    """Whether the resolved ``path`` is ``root`` or below it (both as ``realpath`` gives them)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def escaping_target(link: str, root: str) -> str | None:
    """Where the link at ``link`` resolves to, if that is outside ``root``; else None.

    A broken link resolves as far as it goes (``realpath`` without ``strict``): one that would
    point outside once its target appears is refused as well.
    """
    target = os.path.realpath(link)
    return None if inside(target, root) else target


def escape_reason(target: str) -> str:
    return f"symbolic link points outside the source root ({target}): not ingested"


def _kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


@contextmanager
def opened_inside(path: str, root: str, *, follow: bool) -> Iterator[str]:
    """Open ``path`` for reading, check it, and yield a path that reopens exactly that file.

    ``follow`` False (a regular file as listed): a link in the last component is refused
    (``O_NOFOLLOW``). ``follow`` True (a link whose target the scan confined): followed, and
    the file reached must still lie inside ``root``. Either way, what was opened must be a
    regular file whose path (``/proc/self/fd/N``) is inside ``root``, which also catches a
    directory higher up swapped for a link. Raises :class:`PermanentError` naming ``path``
    (:class:`SourceVanished` if it is gone); the descriptor is closed on leaving.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise SourceVanished(f"source file vanished before it was synced: {path}") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise PermanentError(f"{path} was replaced by a symbolic link after the scan: not followed") from exc
        raise PermanentError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise PermanentError(f"{path} is {_kind_of(mode)} now, not a regular file: not read")
        handle = f"{_PROC_FD}/{fd}"
        try:
            opened = os.readlink(handle)
        except OSError as exc:
            raise PermanentError(f"cannot check which file {path} is ({handle}: {exc.strerror}; is /proc mounted?)") from exc
        if not inside(opened, root):
            raise PermanentError(f"{path} resolves outside the source root ({opened}): not ingested")
        yield handle
    finally:
        os.close(fd)
