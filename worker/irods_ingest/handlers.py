"""Event handlers: the incumbent's handler module API, loaded by content hash.

A handler is Python source defining ``class event_handler(Core)`` exactly as for
``irods_capability_automated_ingest``: its imports of
``irods_capability_automated_ingest.core`` / ``.utils`` resolve to the compatibility
modules registered here, so existing handler files run unchanged. Workers compile each
source once per hash and keep it (no per-call Redis fetch); a new hash loads anew.

Failures are never silent: a syntax error or an exception in a hook becomes a
:class:`HandlerError` carrying the traceback, which fails that file (or the job, for
``pre_job``) visibly.
"""

from __future__ import annotations

import ast
import enum
import sys
import threading
import traceback
import types
from collections.abc import Callable
from typing import Any

from irods_ingest.config import DeleteMode, JobConfig, Operation, delete_mode_compatible
from irods_ingest.errors import HandlerError

COMPAT_PACKAGE = "irods_capability_automated_ingest"


class CompatOperation(enum.Enum):
    """The incumbent's ``utils.Operation`` (same member names and values)."""

    REGISTER_SYNC = 0
    REGISTER_AS_REPLICA_SYNC = 1
    PUT = 2
    PUT_SYNC = 3
    PUT_APPEND = 4
    NO_OP = 5


class CompatDeleteMode(enum.Enum):
    DO_NOT_DELETE = 0
    UNREGISTER = 1
    TRASH = 2
    NO_TRASH = 3


class Core:
    """The incumbent's ``core.Core``: ``on_*`` wrappers calling ``pre_*``/``post_*`` hooks."""

    @classmethod
    def _around(cls, event: str, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        pre = getattr(cls, f"pre_{event}", None)
        if pre is not None:
            pre(*args, **options)
        func(*args, **options)
        post = getattr(cls, f"post_{event}", None)
        if post is not None:
            post(*args, **options)

    @classmethod
    def on_data_obj_create(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("data_obj_create", func, *args, **options)

    @classmethod
    def on_data_obj_modify(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("data_obj_modify", func, *args, **options)

    @classmethod
    def on_data_obj_delete(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("data_obj_delete", func, *args, **options)

    @classmethod
    def on_coll_create(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("coll_create", func, *args, **options)

    @classmethod
    def on_coll_modify(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("coll_modify", func, *args, **options)

    @classmethod
    def on_coll_delete(cls, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        cls._around("coll_delete", func, *args, **options)


_OPERATION_FROM_COMPAT = {
    CompatOperation.REGISTER_SYNC: Operation.REGISTER_SYNC,
    CompatOperation.REGISTER_AS_REPLICA_SYNC: Operation.REGISTER_AS_REPLICA_SYNC,
    CompatOperation.PUT: Operation.PUT,
    CompatOperation.PUT_SYNC: Operation.PUT_SYNC,
    CompatOperation.PUT_APPEND: Operation.PUT_APPEND,
    CompatOperation.NO_OP: Operation.NO_OP,
}
_DELETE_MODE_FROM_COMPAT = {
    CompatDeleteMode.DO_NOT_DELETE: DeleteMode.DO_NOT_DELETE,
    CompatDeleteMode.UNREGISTER: DeleteMode.UNREGISTER,
    CompatDeleteMode.TRASH: DeleteMode.TRASH,
    CompatDeleteMode.NO_TRASH: DeleteMode.NO_TRASH,
}

_compat_lock = threading.Lock()


def install_compat_modules() -> None:
    """Make ``irods_capability_automated_ingest.{core,utils}`` importable for handlers."""
    with _compat_lock:
        if f"{COMPAT_PACKAGE}.core" in sys.modules:
            return
        package = types.ModuleType(COMPAT_PACKAGE)
        package.__path__ = []
        core = types.ModuleType(f"{COMPAT_PACKAGE}.core")
        core.Core = Core  # type: ignore[attr-defined]
        utils = types.ModuleType(f"{COMPAT_PACKAGE}.utils")
        utils.Operation = CompatOperation  # type: ignore[attr-defined]
        utils.DeleteMode = CompatDeleteMode  # type: ignore[attr-defined]
        package.core = core  # type: ignore[attr-defined]
        package.utils = utils  # type: ignore[attr-defined]
        sys.modules.setdefault(COMPAT_PACKAGE, package)
        sys.modules.setdefault(f"{COMPAT_PACKAGE}.core", core)
        sys.modules.setdefault(f"{COMPAT_PACKAGE}.utils", utils)


def to_operation(value: Any, where: str) -> Operation:
    """Accept the incumbent's enum, ours, or a name such as ``"PutSync"``/``"PUT_SYNC"``."""
    if isinstance(value, Operation):
        return value
    if isinstance(value, CompatOperation):
        return _OPERATION_FROM_COMPAT[value]
    # The real incumbent's enum, when that package is installed and the handler imported it.
    if isinstance(value, enum.Enum) and type(value).__name__ == "Operation":
        try:
            return _OPERATION_FROM_COMPAT[CompatOperation[value.name]]
        except KeyError:
            pass
    if isinstance(value, str):
        for op in Operation:
            if value in (op.value, op.name):
                return op
    raise HandlerError(f"{where} returned {value!r}, which is not an Operation (use Operation.PUT_SYNC etc.)")


def to_delete_mode(value: Any, where: str) -> DeleteMode:
    if isinstance(value, DeleteMode):
        return value
    if isinstance(value, CompatDeleteMode):
        return _DELETE_MODE_FROM_COMPAT[value]
    if isinstance(value, enum.Enum) and type(value).__name__ == "DeleteMode":
        try:
            return _DELETE_MODE_FROM_COMPAT[CompatDeleteMode[value.name]]
        except KeyError:
            pass
    if isinstance(value, str):
        for mode in DeleteMode:
            if value in (mode.value, mode.name):
                return mode
    raise HandlerError(f"{where} returned {value!r}, which is not a DeleteMode")


class Handler:
    """One loaded handler module, with typed, checked accessors for its optional parts."""

    def __init__(self, digest: str, module: types.ModuleType, cls: type | None) -> None:
        self.digest = digest
        self.module = module
        self.cls = cls

    def has(self, name: str) -> bool:
        return self.cls is not None and hasattr(self.cls, name)

    def _invoke(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.cls, name)(*args, **kwargs)
        except HandlerError:
            raise
        except Exception as exc:  # user code: anything may escape, report it whole
            raise HandlerError(
                f"event handler {name}() raised {type(exc).__name__}: {exc}", traceback.format_exc()
            ) from exc

    # --- policy methods (incumbent signatures) ---------------------------------
    def operation(self, session: Any, meta: dict[str, Any], default: Operation) -> Operation:
        if not self.has("operation"):
            return default
        return to_operation(self._invoke("operation", session, meta), "operation()")

    def delete_mode(self, meta: dict[str, Any], default: DeleteMode) -> DeleteMode:
        if not self.has("delete_mode"):
            return default
        return to_delete_mode(self._invoke("delete_mode", meta), "delete_mode()")

    def to_resource(self, session: Any, meta: dict[str, Any], default: str | None) -> str | None:
        if not self.has("to_resource"):
            return default
        value = self._invoke("to_resource", session, meta)
        if value is not None and not isinstance(value, str):
            raise HandlerError(f"to_resource() returned {value!r}; return a resource name or None")
        return value or default

    def target_path(self, session: Any, meta: dict[str, Any]) -> str | None:
        if not self.has("target_path"):
            return None
        value = self._invoke("target_path", session, meta)
        if value is not None and not isinstance(value, str):
            raise HandlerError(f"target_path() returned {value!r}; return a physical path or None")
        return value

    def as_user(self, meta: dict[str, Any]) -> tuple[str, str] | None:
        if not self.has("as_user"):
            return None
        value = self._invoke("as_user", meta)
        if not (isinstance(value, tuple | list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise HandlerError(f"as_user() returned {value!r}; return (zone, user)")
        return str(value[0]), str(value[1])

    def character_map(self) -> dict[Any, Any] | None:
        if not self.has("character_map"):
            return None
        value = self._invoke("character_map")
        try:
            return dict(value)
        except (TypeError, ValueError) as exc:
            raise HandlerError("character_map() must return a dict or an iterable of (key, value) pairs") from exc

    def max_retries(self, logger: Any, meta: dict[str, Any], default: int) -> int:
        if not self.has("max_retries"):
            return default
        return self._int("max_retries", self._invoke("max_retries", self.module, logger, meta))

    def delay(self, logger: Any, meta: dict[str, Any], retries: int, default: float) -> float:
        if not self.has("delay"):
            return default
        value = self._invoke("delay", self.module, logger, meta, retries)
        if not isinstance(value, int | float) or value < 0:
            raise HandlerError(f"delay() returned {value!r}; return seconds as a number >= 0")
        return float(value)

    def timeout(self, logger: Any, meta: dict[str, Any], default: int) -> int:
        if not self.has("timeout"):
            return default
        return self._int("timeout", self._invoke("timeout", self.module, logger, meta))

    @staticmethod
    def _int(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise HandlerError(f"{name}() returned {value!r}; return an integer >= 0")
        return value

    # --- hooks --------------------------------------------------------------------
    def around(self, event: str, func: Callable[..., Any], logger: Any, session: Any, meta: dict[str, Any], **options: Any) -> None:
        """Run ``func`` wrapped by the handler's ``on_<event>`` (pre/post hooks), as the incumbent does."""
        wrapper = f"on_{event}"
        if self.cls is None or not hasattr(self.cls, wrapper):
            func(self.module, logger, session, meta, **options)
            return
        try:
            getattr(self.cls, wrapper)(func, self.module, logger, session, meta, **options)
        except HandlerError:
            raise
        except Exception as exc:
            if getattr(exc, "_from_engine", False):
                raise
            # Name the handler's own function that raised (pre_/post_<event>, or an on_<event>
            # override), so the failure record says which hook to fix.
            hook = self._called_function(exc)
            raise HandlerError(
                f"event handler {f'{hook}()' if hook else f'hook around {event}'} raised {type(exc).__name__}: {exc}",
                traceback.format_exc(),
                from_hook=True,
            ) from exc

    def _called_function(self, exc: BaseException) -> str | None:
        """The outermost function of the handler module in ``exc``'s traceback: the hook the
        engine called (not a helper of the module that the hook called)."""
        frame = exc.__traceback__
        while frame is not None:
            if frame.tb_frame.f_code.co_filename == self.module.__file__:
                return frame.tb_frame.f_code.co_name
            frame = frame.tb_next
        return None

    def job_hook(self, name: str, logger: Any, meta: dict[str, Any]) -> None:
        if self.has(name):
            self._invoke(name, self.module, logger, meta)


class NoHandler(Handler):
    def __init__(self) -> None:
        super().__init__("", types.ModuleType("no_event_handler"), None)


# A ConfigMap holds at most 1 MiB; a module larger than that is not a handler anybody wrote.
MAX_HANDLER_SOURCE_BYTES = 1024 * 1024


def check_handler_syntax(source: str, where: str = "event handler") -> None:
    """Check a handler module WITHOUT running any of it: it parses, and binds ``event_handler``
    at module level (a class, or a name imported/assigned as such).

    This is what a controller that must never execute tenant code (the operator) can know;
    everything that needs the module to run is decided by the workers (:func:`job_policy`).
    """
    if len(source.encode("utf-8", "surrogateescape")) > MAX_HANDLER_SOURCE_BYTES:
        raise HandlerError(f"{where} is larger than {MAX_HANDLER_SOURCE_BYTES} bytes")
    try:
        tree = ast.parse(source, filename=where)
    except SyntaxError as exc:
        line = f" (line {exc.lineno}{f', column {exc.offset}' if exc.offset else ''})" if exc.lineno else ""
        raise HandlerError(f"{where} has a syntax error{line}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes; absurd nesting
        raise HandlerError(f"{where} cannot be parsed: {type(exc).__name__}: {exc}") from None
    if not any(_binds_event_handler(node) for node in tree.body):
        raise HandlerError(f"{where} defines no class named event_handler (write `class event_handler(Core):`)")


def _binds_event_handler(node: ast.stmt) -> bool:
    if isinstance(node, ast.ClassDef):
        return node.name == "event_handler"
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(isinstance(t, ast.Name) and t.id == "event_handler" for t in targets)
    if isinstance(node, ast.Import | ast.ImportFrom):
        return any((alias.asname or alias.name) == "event_handler" for alias in node.names)
    if isinstance(node, ast.If | ast.Try):  # e.g. a guarded import
        bodies = [node.body, node.orelse] + ([node.finalbody, *(h.body for h in node.handlers)] if isinstance(node, ast.Try) else [])
        return any(_binds_event_handler(child) for body in bodies for child in body)
    return False


def job_policy(config: JobConfig, handler: Handler) -> JobConfig:
    """``config`` with the handler's job-wide answers applied (operation(), delete_mode()),
    after checking its character_map(). Runs handler code: only where handler code may run
    (a worker, or the CLI of the user who owns the handler). Raises :class:`HandlerError`."""
    charmap = handler.character_map()
    if charmap is not None:
        for key, value in charmap.items():
            if (isinstance(key, str) and len(key) > 1) or (isinstance(value, str) and len(value) > 1):
                raise HandlerError("character_map() must map single characters to single characters")
    meta = {"job_name": config.job_name}
    operation = handler.operation(None, meta, config.operation)
    delete_mode = handler.delete_mode(meta, config.delete_mode)
    if operation is config.operation and delete_mode is config.delete_mode:
        return config
    return config.with_changes(operation=operation, delete_mode=delete_mode)


def checked_job_policy(config: JobConfig, handler: Handler) -> JobConfig:
    """:func:`job_policy`, also refusing an operation the delete mode does not allow (the
    incumbent's matrix), as a worker must before it acts on a handler's answers."""
    effective = job_policy(config, handler)
    if not delete_mode_compatible(effective.operation, effective.delete_mode):
        raise HandlerError(
            f"event handler: operation {effective.operation.value} and delete mode {effective.delete_mode.value} "
            "are incompatible (fix the handler's operation() or delete_mode(), or the job's deleteMode)"
        )
    return effective


def compile_handler(source: str, digest: str) -> Handler:
    """Compile handler source into a module; raise :class:`HandlerError` with the traceback."""
    install_compat_modules()
    name = f"irods_ingest_event_handler_{digest}"
    module = types.ModuleType(name)
    module.__file__ = f"<event handler {digest}>"
    try:
        code = compile(source, module.__file__, "exec")
        exec(code, module.__dict__)
    except Exception as exc:  # a user's module: report whatever it raised, with where
        raise HandlerError(
            f"event handler failed to load: {type(exc).__name__}: {exc}", traceback.format_exc()
        ) from exc
    cls = module.__dict__.get("event_handler")
    if cls is None or not isinstance(cls, type):
        raise HandlerError("event handler module defines no class named event_handler")
    return Handler(digest, module, cls)


class HandlerCache:
    """Per-worker cache of compiled handlers by content hash."""

    def __init__(self, fetch_source: Callable[[str], str]) -> None:
        self._fetch = fetch_source
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()

    def get(self, digest: str | None) -> Handler:
        if not digest:
            return NO_HANDLER
        with self._lock:
            handler = self._handlers.get(digest)
        if handler is None:
            handler = compile_handler(self._fetch(digest), digest)
            with self._lock:
                self._handlers[digest] = handler
        return handler


NO_HANDLER = NoHandler()
