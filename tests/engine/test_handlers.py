"""Event handlers written for the incumbent load unchanged; failures are visible, never fatal."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from irods_ingest.config import DeleteMode, JobConfig, Operation
from irods_ingest.errors import HandlerError
from irods_ingest.execute.context import directory_changed
from irods_ingest.handlers import HandlerCache, compile_handler, incumbent_operation, to_operation

INCUMBENT_STYLE = '''
from irods_capability_automated_ingest.core import Core
from irods_capability_automated_ingest.utils import Operation, DeleteMode

calls = []

class event_handler(Core):
    @staticmethod
    def operation(session, meta, **options):
        return Operation.PUT_SYNC

    @staticmethod
    def delete_mode(meta):
        return DeleteMode.TRASH

    @staticmethod
    def to_resource(session, meta, **options):
        return "demoResc"

    @staticmethod
    def as_user(meta, **options):
        return "tempZone", "alice"

    @staticmethod
    def max_retries(hdlr_mod, logger, meta):
        return 7

    @staticmethod
    def delay(hdlr_mod, logger, meta, retries):
        return 2 * retries

    @staticmethod
    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        calls.append(("pre", meta["target"]))

    @staticmethod
    def post_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):
        calls.append(("post", meta["target"]))
'''

log = logging.getLogger("test")


def test_incumbent_handler_module_runs_unchanged() -> None:
    handler = compile_handler(INCUMBENT_STYLE, "h1")
    meta: dict[str, Any] = {"target": "/z/a", "path": "/src/a"}
    assert handler.operation(None, meta, Operation.REGISTER_SYNC) is Operation.PUT_SYNC
    assert handler.delete_mode(meta, DeleteMode.DO_NOT_DELETE) is DeleteMode.TRASH
    assert handler.to_resource(None, meta, None) == "demoResc"
    assert handler.as_user(meta) == ("tempZone", "alice")
    assert handler.max_retries(log, meta, 3) == 7
    assert handler.delay(log, meta, 3, 0.0) == 6.0
    order: list[str] = []
    handler.around("data_obj_create", lambda *a, **k: order.append("body"), log, None, meta)
    assert handler.module.calls == [("pre", "/z/a"), ("post", "/z/a")]
    assert order == ["body"]


def test_defaults_apply_when_methods_are_absent() -> None:
    handler = compile_handler("from irods_capability_automated_ingest.core import Core\nclass event_handler(Core):\n    pass\n", "h2")
    assert handler.operation(None, {}, Operation.PUT) is Operation.PUT
    assert handler.to_resource(None, {}, "r") == "r"
    assert handler.as_user({}) is None
    ran: list[int] = []
    handler.around("coll_create", lambda *a, **k: ran.append(1), log, None, {})
    assert ran == [1]


def test_syntax_error_is_reported_with_traceback() -> None:
    with pytest.raises(HandlerError) as caught:
        compile_handler("class event_handler(:\n", "bad")
    assert "SyntaxError" in str(caught.value)
    assert "line 1" in caught.value.traceback_text


def test_missing_class_is_named() -> None:
    with pytest.raises(HandlerError, match="no class named event_handler"):
        compile_handler("x = 1\n", "noclass")


@pytest.mark.parametrize(
    ("method", "body", "call", "needle"),
    [
        ("operation", "return 'Copy'", lambda h: h.operation(None, {}, Operation.PUT), "not an Operation"),
        ("to_resource", "return 42", lambda h: h.to_resource(None, {}, None), "resource name"),
        ("as_user", "return 'alice'", lambda h: h.as_user({}), "(zone, user)"),
        ("max_retries", "return 'many'", lambda h: h.max_retries(log, {}, 1), "integer"),
        ("delay", "return -1", lambda h: h.delay(log, {}, 1, 0), ">= 0"),
        ("operation", "raise KeyError('boom')", lambda h: h.operation(None, {}, Operation.PUT), "KeyError"),
    ],
)
def test_wrong_return_types_and_exceptions_are_handler_errors(method: str, body: str, call: Any, needle: str) -> None:
    signature = {
        "operation": "(session, meta, **o)",
        "to_resource": "(session, meta, **o)",
        "as_user": "(meta, **o)",
        "max_retries": "(m, logger, meta)",
        "delay": "(m, logger, meta, retries)",
    }[method]
    source = f"class event_handler:\n    @staticmethod\n    def {method}{signature}:\n        {body}\n"
    handler = compile_handler(source, f"bad-{method}")
    with pytest.raises(HandlerError) as caught:
        call(handler)
    assert needle in str(caught.value)


def test_hook_exception_carries_traceback() -> None:
    source = (
        "from irods_capability_automated_ingest.core import Core\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n"
        "    def post_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):\n"
        "        raise RuntimeError('hook broke')\n"
    )
    handler = compile_handler(source, "hook")
    with pytest.raises(HandlerError) as caught:
        handler.around("data_obj_create", lambda *a, **k: None, log, None, {})
    assert "hook broke" in str(caught.value) and "post_data_obj_create" in caught.value.traceback_text


def test_cache_compiles_once_per_hash() -> None:
    fetched: list[str] = []

    def fetch(digest: str) -> str:
        fetched.append(digest)
        return INCUMBENT_STYLE

    cache = HandlerCache(fetch)
    first = cache.get("abc")
    assert cache.get("abc") is first
    assert cache.get("def") is not first
    assert fetched == ["abc", "def"]
    assert cache.get(None).cls is None


def test_hooks_get_the_arguments_around_passes_and_the_handlers_own_operation() -> None:
    """``around`` hands the wrapper, hooks and action the module then exactly the arguments given
    (the engine passes the incumbent's: no logger for deletes, the Operation for uploads)."""
    handler = compile_handler(INCUMBENT_STYLE, "h-args")
    seen: list[tuple[Any, ...]] = []
    handler.around("data_obj_delete", lambda *a, **k: seen.append((a, k)), None, {"target": "/z/a"})
    assert seen == [((handler.module, None, {"target": "/z/a"}), {})]
    op = incumbent_operation(Operation.PUT_SYNC)
    from irods_capability_automated_ingest.utils import Operation as HandlersOperation

    assert op is HandlersOperation.PUT_SYNC and type(op).__name__ == "Operation"
    assert to_operation(op, "x") is Operation.PUT_SYNC


def test_a_directory_fires_coll_modify_only_if_it_changed_since_the_previous_run() -> None:
    config = JobConfig(job_name="j", source_path="/src", target_collection="/z/c")
    assert directory_changed(config, None, {"mtime": 1.0, "ctime": 1.0})  # no previous run
    assert not directory_changed(config, 10.0, {"mtime": 5.0, "ctime": 9.5})
    assert directory_changed(config, 10.0, {"mtime": 10.0, "ctime": 9.0})
    assert directory_changed(config, 10.0, {"mtime": 5.0, "ctime": 11.0})  # metadata changed
    assert directory_changed(config.with_changes(ignore_cache=True), 10.0, {"mtime": 5.0, "ctime": 5.0})
    assert directory_changed(config, 10.0, {"mtime": None, "ctime": None})  # unknown: as the incumbent without a time
