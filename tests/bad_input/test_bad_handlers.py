"""Broken event handlers: refused at start, or the one file/directory fails naming the hook.

A handler that cannot load, or whose job-wide answers (operation, delete_mode,
character_map) are wrong, is refused before anything is written. A hook that raises, or a
per-file policy method that returns the wrong type, fails exactly the entry it was called
for, with the hook's name and the exception in the failure record, while every other file
lands. ``pre_job`` raising fails the run before any file is touched.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from irods_ingest.actions import start_job
from irods_ingest.config import DeleteMode, JobConfig, Operation
from irods_ingest.errors import ConfigError
from irods_ingest.handlers import Core
from irods_ingest.store.connection import connect
from testsupport.accounting import assert_accounted
from testsupport.ingest import Ingest

pytestmark = [pytest.mark.redis, pytest.mark.irods]

HEADER = (
    "import os\n"
    "from irods_capability_automated_ingest.core import Core\n"
    "from irods_capability_automated_ingest.utils import Operation\n"
)

# Every hook the engine wraps around an action: pre_ and post_ of each on_<event> of Core.
EVENTS = sorted(name[len("on_"):] for name in vars(Core) if name.startswith("on_"))
HOOKS = [f"{when}_{event}" for event in EVENTS for when in ("pre", "post")]


def failure_of(ingest: Ingest, needle: str) -> dict[str, object]:
    matches: list[dict[str, object]] = [f for f in ingest.failures() if needle in str(f["path"])]
    assert len(matches) == 1, ingest.failures()
    return matches[0]


def armed_handler(hook: str, armed: Path, victim: str) -> str:
    """PutSync; ``hook`` raises for the entry named ``victim`` once the ``armed`` file exists."""
    return HEADER + (
        f"ARMED = {str(armed)!r}\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n"
        "    def operation(session, meta, **options):\n"
        "        return Operation.PUT_SYNC\n"
        "    @staticmethod\n"
        f"    def {hook}(hdlr_mod, {'' if 'delete' in hook else 'logger, '}session, meta, *args, **options):\n"
        f"        if os.path.exists(ARMED) and str(meta.get('target')).endswith('/{victim}'):\n"
        f"            raise RuntimeError('boom in {hook}')\n"
    )


def test_every_wrapped_hook_is_covered() -> None:
    assert EVENTS == ["coll_create", "coll_delete", "coll_modify", "data_obj_create", "data_obj_delete", "data_obj_modify"]


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_raising_fails_only_its_entry(ingest: Ingest, tmp_path: Path, hook: str) -> None:
    event = hook.split("_", 1)[1]
    armed = tmp_path / "armed"
    victim_name = "victimdir" if event.startswith("coll") else "victim.txt"
    handler = armed_handler(hook, armed, victim_name)
    ingest.write("ok1.txt", b"one")
    ingest.write("sub/ok2.txt", b"two")
    victim_file, victim_dir = ingest.write("victim.txt", b"v1"), ingest.source / "victimdir"
    ingest.write("victimdir/inside.txt", b"in")
    run = {"handler": handler, "operation": Operation.PUT_SYNC, "delete_mode": DeleteMode.NO_TRASH}

    if event.endswith("create"):
        armed.touch()  # the first run creates: it meets the hook
    else:  # modify and delete happen on a second run, after the source changed
        assert ingest.run(**run).state == "done", ingest.failures()
        armed.touch()
        if event == "data_obj_modify":
            victim_file.write_bytes(b"v2-changed")
            ingest.write("ok1.txt", b"one-changed")
        elif event == "data_obj_delete":
            victim_file.unlink()
            (ingest.source / "ok1.txt").unlink()
        elif event == "coll_delete":
            (victim_dir / "inside.txt").unlink()
            victim_dir.rmdir()
            (ingest.source / "sub" / "ok2.txt").unlink()
            (ingest.source / "sub").rmdir()
        else:  # coll_modify fires for an existing collection whose directory changed since the last run
            ingest.write("new.txt", b"new")
            ingest.write("victimdir/new.txt", b"new")
    status = ingest.run(**run)

    assert status.state == "failed"
    victim = failure_of(ingest, victim_name)
    assert f"event handler {hook}() raised RuntimeError: boom in {hook}" in str(victim["reason"])
    assert f"def {hook}" in str(victim["traceback"]) or hook in str(victim["traceback"])
    assert len(ingest.failures()) == 1  # nothing else failed
    assert_accounted(status, ingest.failures())
    objects = ingest.objects()
    done_before = hook.startswith("post_")  # a post_ hook runs after the change was made
    if event == "data_obj_create":
        assert {"ok1.txt", "sub/ok2.txt", "victimdir/inside.txt"} <= set(objects)
        assert ("victim.txt" in objects) is done_before
        assert status.counters["files_synced"] == 3 and status.counters["files_failed"] == 1
    elif event == "data_obj_modify":
        assert ingest.read("ok1.txt") == b"one-changed"
        assert ingest.read("victim.txt") == (b"v2-changed" if done_before else b"v1")
        assert (status.counters["files_synced"], status.counters["files_failed"]) == (1, 1)
    elif event == "data_obj_delete":
        assert "ok1.txt" not in objects and status.counters["files_deleted"] == 1
        assert ("victim.txt" not in objects) is done_before
        assert victim["kind"] == "delete" and status.counters["files_failed"] == 1
    elif event == "coll_delete":
        assert not ingest.session.collections.exists(ingest.logical("sub"))  # the neighbour went
        assert ingest.session.collections.exists(ingest.logical("victimdir")) is not done_before
        assert victim["kind"] == "delete" and victim.get("collection") is True
        assert status.counters["tasks_failed"] == 1
    else:  # coll_create / coll_modify: that directory's scan fails (retry rescans it); the rest lands
        assert victim["kind"] == "scan" and victim["path"] == str(victim_dir)
        assert {"ok1.txt", "sub/ok2.txt", "victim.txt"} <= set(objects)
        assert "victimdir/inside.txt" not in objects or event == "coll_modify"
        assert status.counters["tasks_failed"] == 1 and status.counters["files_failed"] == 0
        if event == "coll_create":
            assert ingest.session.collections.exists(ingest.logical("victimdir")) is done_before
        else:
            assert "new.txt" in objects


# ---------------------------------------------------------------- refused at start
def refused(redis_url: str, source: Path, handler: str) -> str:
    config = JobConfig(job_name="broken-handler", source_path=str(source), target_collection="/tempZone/home/rods/x")
    with pytest.raises(ConfigError) as raised:
        start_job(connect(redis_url), config, handler)
    assert [p.field for p in raised.value.problems] == ["event_handler"]
    assert raised.value.problems[0].fix == "fix the handler module"
    assert connect(redis_url).keys("*") == []  # not even the handler source is stored
    return str(raised.value)


CLASS = "class event_handler(Core):\n    @staticmethod\n"
REFUSED = [
    ("syntax-error", HEADER + "class event_handler(Core:\n    pass\n",
     "event handler failed to load: SyntaxError: "),
    ("raises-on-import", HEADER + "raise ImportError('no module named instrument_lib')\n",
     "event handler failed to load: ImportError: no module named instrument_lib"),
    ("no-event-handler-class", HEADER + "class EventHandler(Core):\n    pass\n",
     "event handler module defines no class named event_handler"),
    ("operation-raises", HEADER + CLASS + "    def operation(session, meta, **options):\n        raise KeyError('mode')\n",
     "event handler operation() raised KeyError: 'mode'"),
    ("operation-wrong-type", HEADER + CLASS + "    def operation(session, meta, **options):\n        return 42\n",
     "operation() returned 42, which is not an Operation (use Operation.PUT_SYNC etc.)"),
    ("delete-mode-wrong-type", HEADER + CLASS + "    def delete_mode(meta):\n        return 'Shred'\n",
     "delete_mode() returned 'Shred', which is not a DeleteMode"),
    ("character-map-raises", HEADER + CLASS + "    def character_map():\n        return 1 / 0\n",
     "event handler character_map() raised ZeroDivisionError: division by zero"),
    ("character-map-wrong-type", HEADER + CLASS + "    def character_map():\n        return 7\n",
     "character_map() must return a dict or an iterable of (key, value) pairs"),
    ("character-map-many-characters", HEADER + CLASS + "    def character_map():\n        return {'ab': '_'}\n",
     "character_map() must map single characters to single characters"),
]


@pytest.mark.parametrize(("source", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_broken_handler_is_refused_before_anything_runs(redis_url: str, tmp_path: Path, source: str,
                                                        message: str) -> None:
    assert message in refused(redis_url, tmp_path, source)


def test_syntax_error_names_the_line(redis_url: str, tmp_path: Path) -> None:
    text = refused(redis_url, tmp_path, HEADER + "\n\nclass event_handler(Core):\n    def pre_job(:\n")
    assert "SyntaxError" in text and "line 7" in text


# ---------------------------------------------------------------- job hooks
def job_hook_handler(hook: str) -> str:
    return HEADER + CLASS + f"    def {hook}(hdlr_mod, logger, meta):\n        raise RuntimeError('{hook} broke')\n"


def test_pre_job_raising_fails_the_run_before_any_file_is_touched(ingest: Ingest) -> None:
    ingest.write("a.txt", b"a")
    status = ingest.run(handler=job_hook_handler("pre_job"), operation=Operation.PUT)
    assert (status.state, status.error) == ("failed", "pre_job failed: event handler pre_job() raised RuntimeError: pre_job broke")
    assert status.counters["files_discovered"] == 0 and not ingest.session.collections.exists(ingest.target)
    [failure] = ingest.failures()
    assert "pre_job broke" in failure["reason"] and "pre_job" in failure["traceback"]


def test_post_job_raising_fails_the_run_after_every_file_landed(ingest: Ingest) -> None:
    ingest.write("a.txt", b"a")
    ingest.write("sub/b.txt", b"b")
    status = ingest.run(handler=job_hook_handler("post_job"), operation=Operation.PUT)
    assert status.state == "failed" and "post_job() raised RuntimeError: post_job broke" in status.error
    assert set(ingest.objects()) == {"a.txt", "sub/b.txt"} and status.counters["files_synced"] == 2


# ---------------------------------------------------------------- per-file policy methods
def per_file(method: str, signature: str, result: str, ingest: Ingest) -> str:
    """``method`` answers ``result`` for victim.txt and a valid answer for every other entry."""
    default = {"to_resource": "None", "target_path": "None", "as_user": repr((ingest.env.zone, ingest.env.user)),
               "timeout": "60", "operation": "Operation.PUT"}[method]
    return HEADER + CLASS + (
        f"    def {method}({signature}):\n"
        f"        return ({result}) if str(meta.get('path', '')).endswith('victim.txt') else {default}\n"
    )


WRONG = [
    ("to_resource-int", "to_resource", "session, meta, **options", "5",
     "to_resource() returned 5; return a resource name or None"),
    ("target_path-list", "target_path", "session, meta, **options", "['/a', '/b']",
     "target_path() returned ['/a', '/b']; return a physical path or None"),
    ("as_user-string", "as_user", "meta, **options", "'alice'", "as_user() returned 'alice'; return (zone, user)"),
    ("as_user-raises", "as_user", "meta, **options", "{}['zone']", "event handler as_user() raised KeyError: 'zone'"),
    ("timeout-string", "timeout", "hdlr_mod, logger, meta", "'10'", "timeout() returned '10'; return an integer >= 0"),
    ("operation-raises-for-one-file", "operation", "session, meta, **options", "1 / 0",
     "event handler operation() raised ZeroDivisionError"),
]


@pytest.mark.parametrize(("method", "signature", "result", "message"), [c[1:] for c in WRONG], ids=[c[0] for c in WRONG])
def test_policy_method_returning_the_wrong_type_fails_only_that_file(
    ingest: Ingest, method: str, signature: str, result: str, message: str
) -> None:
    ingest.write("ok.txt", b"ok")
    ingest.write("sub/ok2.txt", b"ok2")
    ingest.write("victim.txt", b"v")
    operation = Operation.REGISTER_SYNC if method == "target_path" else Operation.PUT
    status = ingest.run(handler=per_file(method, signature, result, ingest), operation=operation)
    assert status.state == "failed"
    [failure] = ingest.failures()
    assert failure["path"].endswith("victim.txt") and message in failure["reason"], failure
    assert {"ok.txt", "sub/ok2.txt"} == set(ingest.objects())
    assert_accounted(status, ingest.failures(), on_disk=3)


def test_broken_max_retries_and_delay_fall_back_to_the_job_settings(ingest: Ingest,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    # Asked only after a failure, to decide on a retry: the job's maxRetries and backoff apply
    # (so the failure is neither hidden nor retried forever) and the handler's error is logged.
    ingest.write("ok.txt", b"ok")
    ingest.write("victim.txt", b"v")
    handler = HEADER + CLASS + (
        "    def max_retries(hdlr_mod, logger, meta):\n        return 'twice'\n"
        "    @staticmethod\n    def delay(hdlr_mod, logger, meta, retries):\n        return -1\n"
        "    @staticmethod\n    def pre_data_obj_create(hdlr_mod, logger, session, meta, *args, **options):\n"
        "        if meta['target'].endswith('victim.txt'):\n            raise OSError('instrument offline')\n"
    )
    with caplog.at_level(logging.WARNING, logger="irods_ingest.execute"):
        status = ingest.run(handler=handler, operation=Operation.PUT, max_retries=1, retry_backoff_seconds=0.01)
    [failure] = ingest.failures()
    assert "pre_data_obj_create() raised OSError: instrument offline" in failure["reason"]
    assert failure["attempts"] == 2  # the job's max_retries=1: one retry, then recorded
    assert set(ingest.objects()) == {"ok.txt"} and status.state == "failed"
    logged = [r.__dict__.get("error", "") for r in caplog.records if r.getMessage() == "handler_policy_failed"]
    assert any("max_retries() returned 'twice'" in e for e in logged), logged
    assert any("delay() returned -1" in e for e in logged), logged

