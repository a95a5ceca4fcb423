"""Per-file time limits for worker threads (the incumbent's Celery soft time limit).

A thread cannot be killed, but CPython can raise an exception in it asynchronously: when
the limit passes, :class:`FileTimeout` is raised in the worker thread at its next Python
instruction (after the blocking call in progress returns — so a hung socket is bounded by
the iRODS connection timeout, set from the same limit). Leaving the block cancels any
pending exception under a lock, so a late firing can never hit unrelated code.

One watchdog thread per process serves every deadline (a heap of expiries and a condition
variable): entering and leaving a block costs a heap push and a flag under a lock, where a
``threading.Timer`` per file started and stopped an OS thread per file (18 % of a worker's
busy time on new files).
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import math
import threading
import time
from types import TracebackType


class FileTimeout(BaseException):
    """The time limit of one file's sync passed.

    A BaseException (like KeyboardInterrupt), so that ``except Exception`` in a user's hook
    or in the engine's error translation cannot swallow it.
    """


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


class _Watchdog:
    """Fires expired deadlines from one daemon thread (started on first use, per process)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Deadline]] = []  # (expiry, token, deadline)
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        # The expiry the watchdog sleeps until (-inf while it is awake and will look at the
        # heap before sleeping again): only an earlier one needs to wake it. With one limit
        # for every file, no add() wakes it -- a notify per file cost a thread switch per file.
        self._sleeping_until = -math.inf

    def add(self, deadline: Deadline, expires: float) -> None:
        """Watch ``deadline`` until ``expires`` (its token is set under the lock, before the
        watchdog can see the entry)."""
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                # (Re)started lazily: after fork() only the forking thread survives.
                self._thread = threading.Thread(target=self._run, name="deadline-watchdog", daemon=True)
                self._thread.start()
            # Drop left deadlines from the top here too, not only when the watchdog wakes: with
            # one limit for every file the watchdog sleeps a whole limit, and the heap would
            # otherwise grow by one entry per file until then.
            while self._heap and not self._heap[0][2].watching(self._heap[0][1]):
                heapq.heappop(self._heap)
            token = deadline._token = next(self._order)
            heapq.heappush(self._heap, (expires, token, deadline))
            if expires < self._sleeping_until:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            due: list[Deadline] = []
            with self._cond:
                now = time.monotonic()
                while self._heap and (not self._heap[0][2].watching(self._heap[0][1]) or self._heap[0][0] <= now):
                    _expires, token, deadline = heapq.heappop(self._heap)
                    if deadline.watching(token):
                        due.append(deadline)
                if not due:
                    self._sleeping_until = self._heap[0][0] if self._heap else math.inf
                    self._cond.wait(None if not self._heap else self._heap[0][0] - now)
                    self._sleeping_until = -math.inf
                    continue
            for deadline in due:
                deadline._fire()


_WATCHDOG = _Watchdog()


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._active = False
        self._thread_id = 0
        self._token = -1
        self.fired = False

    def watching(self, token: int) -> bool:
        """Whether the watchdog entry ``token`` is this block's current one (a re-entered
        Deadline must not fire at an earlier entry's expiry)."""
        return self._active and self._token == token

    def __enter__(self) -> Deadline:
        self._thread_id = threading.get_ident()
        self._active = True
        if self.seconds > 0:
            _WATCHDOG.add(self, time.monotonic() + self.seconds)
        return self

    def _fire(self) -> None:
        with self._lock:
            if self._active:
                self.fired = True
                _set_async_exc(self._thread_id, FileTimeout)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with self._lock:
            self._active = False
            if self.fired and exc_type is None:
                # Fired but not delivered yet: withdraw it (a NULL exception clears the pending one).
                _set_async_exc(self._thread_id, ctypes.py_object())
