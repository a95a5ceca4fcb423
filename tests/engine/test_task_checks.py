"""task_checks: what a worker refuses to execute, whoever queued it (pure, no services)."""

from __future__ import annotations

import json

import pytest

from irods_ingest.config import DeleteMode, JobConfig, Operation, S3Source
from irods_ingest.task_checks import task_problem
from irods_ingest.tasks import FileEntry, MalformedTask, Task, TaskKind

TARGET = "/tempZone/home/rods/ingest"
FS = JobConfig(job_name="j", source_path="/data", target_collection=TARGET, operation=Operation.PUT_SYNC,
               delete_mode=DeleteMode.TRASH)
S3 = JobConfig(job_name="j", source_path="", target_collection=TARGET, operation=Operation.PUT_SYNC,
               s3=S3Source(bucket="bucket", prefix="in"))


def files(*names: str, directory: str = "", kind: str = "regular", etag: str = "") -> Task:
    return Task(TaskKind.FILES, "r", directory=directory, entries=tuple(FileEntry(n, 1, 1, kind, etag) for n in names))


def delete(*paths: str, colls: tuple[str, ...] = (), directory: str = "") -> Task:
    return Task(TaskKind.DELETE, "r", directory=directory, paths=paths, collections=colls)


def problem(task: Task, config: JobConfig = FS, mode: DeleteMode | None = None) -> str | None:
    return task_problem(task, config, config.delete_mode if mode is None else mode)


# ---------------------------------------------------------------- what the engine itself queues passes
@pytest.mark.parametrize(
    "task",
    [
        Task(TaskKind.SCAN, "r"),
        Task(TaskKind.SCAN, "r", directory="a/b c", more_directories=("x", "y/z", "caf\udce9")),
        files("a.txt", "b c", "caf\udce9", "..hidden", "...", "x\ny"),
        files("l", kind="link", directory="sub"),
        files("s", kind="socket"),
        Task(TaskKind.FILES, "r", directory="d", listed='["a","b"]'),
        delete(f"{TARGET}/a.txt", f"{TARGET}/sub/b", directory="sub"),
        delete(colls=(f"{TARGET}/gone", f"{TARGET}/deep/er/gone")),
        delete(f"{TARGET}//a.txt"),  # "//" is spelling: iRODS reads it as "/"
        Task(TaskKind.FINALIZE, "r"),
    ],
    ids=lambda t: t.kind.value,
)
def test_what_the_engine_queues_passes(task: Task) -> None:
    assert problem(task) is None


def test_deletes_below_a_target_spelled_with_a_trailing_slash_pass() -> None:
    config = FS.with_changes(target_collection=TARGET + "/")
    assert problem(delete(f"{TARGET}/a"), config) is None
    assert problem(delete(colls=(TARGET,)), config) is not None


def test_s3_tasks_pass_with_tokens_and_etags() -> None:
    assert problem(Task(TaskKind.SCAN, "r", directory="2024/01", token="opaque"), S3) is None
    assert problem(files("obj.bin", etag="abc-2", directory="2024"), S3) is None


# ---------------------------------------------------------------- directories
@pytest.mark.parametrize("directory", ["/etc", "..", "../../etc", "a/../..", "a/./b", "a//b", "a/", ".", "a\x00b"])
@pytest.mark.parametrize("kind", [TaskKind.SCAN, TaskKind.FILES, TaskKind.DELETE])
def test_directories_stay_below_the_source_root(directory: str, kind: TaskKind) -> None:
    task = Task(kind, "r", directory=directory)
    reason = problem(task)
    assert reason is not None and repr(directory) in reason


@pytest.mark.parametrize("other", ["..", "/etc", "a/../../b", ""])
def test_every_directory_of_a_scan_group_is_checked(other: str) -> None:
    assert problem(Task(TaskKind.SCAN, "r", directory="ok", more_directories=("fine", other))) is not None


def test_s3_directories_follow_the_same_rules() -> None:
    assert problem(Task(TaskKind.SCAN, "r", directory="../other-prefix"), S3) is not None
    assert problem(Task(TaskKind.SCAN, "r", directory="/abs"), S3) is not None


# ---------------------------------------------------------------- file names
@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc/passwd", "x\x00"])
def test_file_names_are_single_components(name: str) -> None:
    reason = problem(files("fine", name))
    assert reason == f"file name {name!r} is not a single path component"


@pytest.mark.parametrize("kind", ["pipe", "character", "block", "directory", "whatever"])
def test_file_kinds_are_those_a_scan_hands_on(kind: str) -> None:
    assert "which a scan never hands on" in (problem(files("x", kind=kind)) or "")


def test_etags_only_in_s3_jobs_and_s3_objects_are_regular() -> None:
    assert "ETag" in (problem(files("x", etag="abc")) or "")
    assert "S3 object is a regular file" in (problem(files("x", kind="link", etag="e"), S3) or "")


# ---------------------------------------------------------------- deletions
def test_no_delete_in_a_job_that_deletes_nothing() -> None:
    inside = delete(f"{TARGET}/a.txt")
    assert problem(inside, mode=DeleteMode.DO_NOT_DELETE) == (
        "a delete task in a job that deletes nothing (delete mode DoNotDelete)"
    )
    # the effective mode decides, not the stored one: a handler may turn deletions on or off
    assert problem(inside, FS.with_changes(delete_mode=DeleteMode.DO_NOT_DELETE), DeleteMode.TRASH) is None
    assert problem(inside, FS, DeleteMode.DO_NOT_DELETE) is not None


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/tempZone/home", "lies outside the target collection"),
        ("/tempZone/home/rods/other", "lies outside the target collection"),
        ("/tempZone/home/rods/ingest-sibling/x", "lies outside the target collection"),  # a prefix, not a parent
        (f"{TARGET}/../other", "lies outside the target collection"),
        (f"{TARGET}/a/../../other/x", "lies outside the target collection"),
        (TARGET, "is the target collection itself"),
        (f"{TARGET}/", "is the target collection itself"),
        (f"{TARGET}/.", "is the target collection itself"),
        (f"{TARGET}/a/..", "is the target collection itself"),
        (f"{TARGET}/a/../b", "has '.' or '..' segments"),
        (f"{TARGET}/./b", "has '.' or '..' segments"),
        ("tempZone/home/rods/ingest/a", "is not an absolute logical path"),
        (f"{TARGET}/a\x00", "contains a NUL character"),
        ("/", "lies outside the target collection"),
    ],
)
@pytest.mark.parametrize("field", ["paths", "colls"])
def test_deletes_lie_strictly_below_the_target(path: str, why: str, field: str) -> None:
    task = delete(f"{TARGET}/fine", path) if field == "paths" else delete(colls=(f"{TARGET}/fine", path))
    reason = problem(task)
    assert reason is not None and why in reason, reason


def test_the_collection_a_deletion_waits_for_lies_below_the_target_too() -> None:
    ok = Task(TaskKind.DELETE, "r", collections=(f"{TARGET}/a",), after=f"{TARGET}/a", cursor="7", remove=True)
    assert problem(ok) is None
    assert "outside the target" in (problem(Task(TaskKind.DELETE, "r", collections=(f"{TARGET}/a",), after="/tempZone/home")) or "")


def test_a_redelivered_task_is_judged_like_any_other() -> None:
    assert problem(Task(TaskKind.FILES, "r", entries=(FileEntry("a", 1, 1),), redelivered=True)) is None
    assert problem(Task(TaskKind.FILES, "r", entries=(FileEntry("../a", 1, 1),), redelivered=True)) is not None


# ---------------------------------------------------------------- fields a kind never carries
@pytest.mark.parametrize(
    ("task", "reason"),
    [
        (Task(TaskKind.FINALIZE, "r", directory="x"), "a finalize task does not carry 'dir'"),
        (Task(TaskKind.FINALIZE, "r", paths=(f"{TARGET}/a",)), "a finalize task does not carry 'paths'"),
        (Task(TaskKind.SCAN, "r", token="t"), "a listing token in a scan task of a job whose source is not S3"),
        (Task(TaskKind.SCAN, "r", paths=(f"{TARGET}/a",)), "a scan task does not carry 'paths'"),
        (Task(TaskKind.FILES, "r", collections=(f"{TARGET}/a",)), "a files task does not carry 'colls'"),
        (Task(TaskKind.DELETE, "r", entries=(FileEntry("a", 1, 1),)), "a delete task does not carry 'entries'"),
        (Task(TaskKind.FILES, "r", token="t"), "a files task does not carry 'tok'"),
        (Task(TaskKind.SCAN, "r", remove=True, cursor="c"), "a scan task does not carry 'cur', 'rm'"),
        (Task(TaskKind.FILES, "r", after=f"{TARGET}/a"), "a files task does not carry 'af'"),
    ],
)
def test_a_task_carries_only_what_its_kind_uses(task: Task, reason: str) -> None:
    assert problem(task) == reason


# ---------------------------------------------------------------- payloads that are no task at all
@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"not json", "Expecting value"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b"{}", "missing field 'id'"),
        (b'{"id": "i", "kind": "bogus", "run": "r"}', "'bogus' is not a valid TaskKind"),
        (b'{"id": "i", "kind": "files", "run": "r", "entries": "abc"}', "field 'entries' is str, not an array"),
        (b'{"id": "i", "kind": "files", "run": "r", "entries": [["x", "NaN?", "0", "regular"]]}', "invalid literal"),
        (b'{"id": "i", "kind": "files", "run": "r", "entries": [["x", 1, 0, "regular"]]}', "neither a name nor"),
        (b'{"id": "i", "kind": "files", "run": "r", "entries": [{"name": "x"}]}', "neither a name nor"),
        (b'{"id": "i", "kind": "delete", "run": "r", "paths": "/tempZone/home"}', "field 'paths' is str"),
        (b'{"id": "i", "kind": "delete", "run": "r", "colls": [["/a"]]}', "an item of 'colls' is list"),
        (b'{"id": "i", "kind": "scan", "run": "r", "dir": 42}', "field 'dir' is int, not a string"),
        (b'{"id": {"n": 1}, "kind": "scan", "run": "r"}', "field 'id' is dict, not a string"),
        (b'{"id": "i", "kind": "scan", "run": "r", "attempt": "x"}', "invalid literal"),
        (b'{"id": "i", "kind": "files", "run": "r", "entries": ["\\u0000b64:abc"]}', "Incorrect padding"),
        (b"\xff\xfe", "Expecting value"),
    ],
)
def test_payloads_that_are_no_task_raise_malformed_task_with_the_raw_bytes(raw: bytes, detail: str) -> None:
    with pytest.raises(MalformedTask) as caught:
        Task.decode(raw)
    assert caught.value.raw == raw
    assert str(caught.value).startswith("malformed task payload: ") and detail in str(caught.value), str(caught.value)


def test_a_malformed_task_keeps_its_id_and_a_bounded_excerpt() -> None:
    raw = json.dumps({"id": "forged-1", "kind": "nope", "run": "r", "pad": "x" * 1000}).encode()
    with pytest.raises(MalformedTask) as caught:
        Task.decode(raw)
    assert caught.value.task_id == "forged-1"
    assert len(caught.value.excerpt) <= 203 and caught.value.excerpt.endswith("...")


def test_every_task_the_engine_encodes_decodes_unchanged() -> None:
    for task in (
        Task(TaskKind.SCAN, "r", directory="a", more_directories=("b", "caf\udce9")),
        files("a", "caf\udce9", directory="d"),
        Task(TaskKind.FILES, "r", entries=(FileEntry("o", 5, 6, "regular", "etag-1"),)),
        delete(f"{TARGET}/a", colls=(f"{TARGET}/b",)),
        Task(TaskKind.FINALIZE, "r"),
        Task(TaskKind.SCAN, "r", directory="p", token="tok"),
    ):
        assert Task.decode(task.encode()) == task


def test_a_retry_run_never_redoes_a_rejected_task() -> None:
    from irods_ingest.actions import retry_tasks

    failures = [
        {"path": "/tempZone/home", "kind": "delete", "outcome": "rejected", "collection": True},
        {"path": f"{TARGET}/a", "kind": "delete", "outcome": "rejected"},
        {"path": "..", "kind": "files", "outcome": "rejected"},
        {"path": "", "kind": "unknown", "outcome": "rejected"},
        {"path": f"{TARGET}/b", "kind": "delete"},  # an ordinary failed deletion is redone
    ]
    tasks, _ = retry_tasks(FS, failures, "r2")
    assert [(t.kind, t.paths, t.collections) for t in tasks] == [(TaskKind.DELETE, (f"{TARGET}/b",), ())]
