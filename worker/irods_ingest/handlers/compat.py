"""The incumbent's handler-module API, provided so that handler files run unchanged.

A handler written for ``irods_capability_automated_ingest`` imports its ``core.Core`` and
``utils.Operation``/``utils.DeleteMode``; :func:`install_compat_modules` registers modules of
those names (when the incumbent itself is not installed) whose classes behave as the
incumbent's: ``Core.on_<event>`` wrappers call ``pre_<event>``/``post_<event>`` hooks around
the action. :func:`to_operation` and :func:`to_delete_mode` read a handler's answers, whichever
of the enums (or names) it used.
"""

from __future__ import annotations

import enum
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from irods_ingest.config import DeleteMode, Operation
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


# Named as the incumbent names them: a handler that logs or checks ``type(op).__name__`` (or
# the Operation hooks are handed, see incumbent_operation) sees what it saw under the incumbent.
CompatOperation.__name__ = CompatOperation.__qualname__ = "Operation"
CompatDeleteMode.__name__ = CompatDeleteMode.__qualname__ = "DeleteMode"


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


def incumbent_operation(operation: Operation) -> Any:
    """``operation`` as the handler's own ``utils.Operation`` member: the incumbent passes one to
    the data-object hooks of the Put operations, and handlers compare it with what they imported
    (the compatibility enum, or the incumbent's own when that package is installed)."""
    utils = sys.modules.get(f"{COMPAT_PACKAGE}.utils")
    enum_class = getattr(utils, "Operation", CompatOperation)
    try:
        return enum_class[operation.name]
    except (KeyError, TypeError):
        return CompatOperation[operation.name]


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
