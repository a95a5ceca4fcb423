"""Per-file time limits for worker threads (the incumbent's Celery soft time limit).

A thread cannot be killed, but CPython can raise an exception in it asynchronously: when
the limit passes, :class:`FileTimeout` is raised in the worker thread at its next Python
instruction (after the blocking call in progress returns — so a hung socket is bounded by
the iRODS connection timeout, set from the same limit). Leaving the block cancels any
pending exception under a lock, so a late timer can never hit unrelated code.
"""

from __future__ import annotations

import ctypes
import threading
from types import TracebackType


class FileTimeout(BaseException):
    """The time limit of one file's sync passed.

    A BaseException (like KeyboardInterrupt), so that ``except Exception`` in a user's hook
    or in the engine's error translation cannot swallow it.
    """


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._active = False
        self._thread_id = 0
        self._timer: threading.Timer | None = None
        self.fired = False

    def __enter__(self) -> Deadline:
        self._thread_id = threading.get_ident()
        self._active = True
        if self.seconds > 0:
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def _fire(self) -> None:
        with self._lock:
            if self._active:
                self.fired = True
                _set_async_exc(self._thread_id, FileTimeout)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with self._lock:
            self._active = False
            if self._timer is not None:
                self._timer.cancel()
            if self.fired and exc_type is None:
                # Fired but not delivered yet: withdraw it (a NULL exception clears the pending one).
                _set_async_exc(self._thread_id, ctypes.py_object())
