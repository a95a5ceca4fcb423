"""One loaded event handler: typed, checked access to the incumbent's handler API.

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

import traceback
import types
from collections.abc import Callable
from typing import Any

from irods_ingest.config import DeleteMode, Operation
from irods_ingest.errors import HandlerError
from irods_ingest.handlers.compat import to_delete_mode, to_operation


class Handler:
    """One loaded handler module, with typed, checked accessors for its optional parts."""

    def __init__(self, digest: str, module: types.ModuleType, cls: type | None) -> None:
        self.digest = digest
        self.module = module
        self.cls = cls

    def has(self, name: str) -> bool:
        return self.cls is not None and hasattr(self.cls, name)

    @property
    def has_coll_modify_hooks(self) -> bool:
        return self.has("pre_coll_modify") or self.has("post_coll_modify")

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
    def around(self, event: str, func: Callable[..., Any], *args: Any, **options: Any) -> None:
        """Run ``func`` wrapped by the handler's ``on_<event>`` (pre/post hooks), as the incumbent does:
        the wrapper, its hooks and ``func`` get the handler module then ``args`` (the incumbent's
        arguments for that event, e.g. ``logger, session, meta`` or ``session, meta``)."""
        wrapper = f"on_{event}"
        if self.cls is None or not hasattr(self.cls, wrapper):
            func(self.module, *args, **options)
            return
        try:
            getattr(self.cls, wrapper)(func, self.module, *args, **options)
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
        """``pre_job`` / ``post_job``: their first argument is the ``event_handler`` class, not the
        module (the incumbent passes its ``get_module()``, which returns the class)."""
        if self.has(name):
            self._invoke(name, self.cls, logger, meta)


class NoHandler(Handler):
    def __init__(self) -> None:
        super().__init__("", types.ModuleType("no_event_handler"), None)


# A ConfigMap holds at most 1 MiB; a module larger than that is not a handler anybody wrote.


NO_HANDLER = NoHandler()
