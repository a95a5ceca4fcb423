"""Loading handler source: a syntax check that runs nothing, and compiling by content hash.

Workers compile each source once per hash and keep it (no per-call Redis fetch); a new hash
loads anew. A controller that must never execute tenant code (the operator) uses
:func:`check_handler_syntax` only.
"""

from __future__ import annotations

import ast
import threading
import traceback
import types
from collections.abc import Callable

from irods_ingest.errors import HandlerError
from irods_ingest.handlers.compat import install_compat_modules
from irods_ingest.handlers.handler import NO_HANDLER, Handler

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
