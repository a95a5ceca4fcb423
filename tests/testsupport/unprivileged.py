"""Checking what an unprivileged worker can read, from a suite that may run as root.

Root reads a mode-000 file, so a test of "unreadable files are reported" proves nothing when
run as root. ``as_unprivileged(func)`` runs ``func`` in a forked child that has dropped to
``nobody`` (no exec: the interpreter under /root need not be reachable) and returns its
result; run as any other user it simply calls ``func``. ``world_dir()`` is a directory that
user can reach (pytest's own tmp_path lives under a 0700 directory).
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
NOBODY = 65534


def as_unprivileged(func: Callable[[], T]) -> T:
    if os.geteuid() != 0:
        return func()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, run, send back the pickled result or exception
        status = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            try:
                payload = pickle.dumps((True, func()))
            except BaseException as exc:  # returned to the parent to raise there
                payload = pickle.dumps((False, exc))
            with os.fdopen(write_end, "wb") as out:
                out.write(payload)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as source:
        data = source.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the unprivileged child failed"
    ok, value = pickle.loads(data)
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


@contextmanager
def world_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="irods-ingest-unprivileged-"))
    try:
        path.chmod(0o777)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
