"""Bad job settings given to the engine: refused before anything runs, or failed by name.

Through ``irods-ingest start`` (the CLI's ``main``, in process): every refusal is one line
per problem naming the setting and the fix, exit code 2, no traceback, and nothing
written to Redis. What only a worker can find out (the source is missing where the worker
runs, the zone does not exist) fails the run with a reason naming the path.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from irods_ingest.actions import start_job
from irods_ingest.cli import main
from irods_ingest.config import COMPATIBLE_DELETE_MODES, DeleteMode, JobConfig, Operation
from irods_ingest.errors import ConfigError
from irods_ingest.store.connection import connect
from testsupport.ingest import Ingest

TARGET = "/tempZone/home/rods/bad_jobs"


def start(redis_url: str, source: Path | str, target: str = TARGET, *options: str) -> int:
    return main(["start", str(source), target, "--job-name", "refused", "--redis-url", redis_url, *options])


def refused_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert captured.out == ""  # no {"job": ..., "run": ...} line: nothing started
    assert "Traceback" not in captured.err
    return captured.err.strip().splitlines()


def assert_nothing_in_redis(redis_url: str) -> None:
    # The fixture flushes Redis before each test; a refused job must leave no key behind
    # (no config, no run, no stored handler).
    assert connect(redis_url).keys("*") == []


INCOMPATIBLE = [
    (operation, mode)
    for operation, mode in itertools.product(Operation, DeleteMode)
    if mode not in COMPATIBLE_DELETE_MODES[operation]
]


@pytest.mark.redis
@pytest.mark.parametrize(("operation", "mode"), INCOMPATIBLE, ids=[f"{o.value}-{m.value}" for o, m in INCOMPATIBLE])
def test_incompatible_delete_mode_is_refused(redis_url: str, tmp_path: Path, operation: Operation, mode: DeleteMode,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = start(redis_url, tmp_path, TARGET, "--operation", operation.value, "--delete-mode", mode.value,
                 "--resource", "demoResc")  # RegisterAsReplicaSync needs one; here only the pair is wrong
    allowed = ", ".join(sorted(m.value for m in COMPATIBLE_DELETE_MODES[operation]))
    assert code == 2
    assert refused_lines(capsys) == [
        f"irods-ingest start: invalid delete_mode: {mode.value} is incompatible with operation {operation.value} "
        f"(with {operation.value} use one of: {allowed})"
    ]
    assert_nothing_in_redis(redis_url)


# (id, extra arguments, target, the line printed)
REFUSED: list[tuple[str, list[str], str, str]] = [
    ("root-target", [], "/", "invalid target_collection: the root collection / can only hold zones "
     "(target a collection inside a zone, e.g. /tempZone/home/rods/ingest)"),
    ("root-target-spelt-oddly", [], "//", "invalid target_collection: the root collection / can only hold zones"),
    ("relative-target", [], "tempZone/home/rods", "invalid target_collection: 'tempZone/home/rods' is not absolute "
     "(start it with /<zone>/)"),
    ("dotdot-target", [], "/tempZone/home/../x", "invalid target_collection: '/tempZone/home/../x' has . or .. "
     "segments (spell the path out)"),
    ("files-per-task-zero", ["--files-per-task", "0"], TARGET, "invalid files_per_task: 0 is out of range (use 1..10000)"),
    ("negative-retries", ["--max-retries", "-1"], TARGET, "invalid max_retries: -1 is out of range (use 0..100)"),
    ("negative-backoff", ["--retry-backoff", "-1"], TARGET, "invalid retry_backoff_seconds: must not be negative"),
    ("zero-timeout", ["--task-timeout", "0"], TARGET, "invalid task_timeout_seconds: must be at least 1"),
    ("bad-regex", ["--exclude-file-name", "("], TARGET, "invalid exclude_names: invalid regular expression '('"),
    ("bad-directory-regex", ["--exclude-directory-name", "[a-"], TARGET,
     "invalid exclude_directories: invalid regular expression '[a-'"),
    ("unknown-file-type", ["--exclude-file-type", "symlink"], TARGET,
     "invalid exclude_types: unknown file type 'symlink' (use regular, directory"),
    ("bad-job-name", ["--job-name", "has space"], TARGET, "invalid job_name: 'has space' is not a valid job name"),
    ("empty-resource", ["--resource", " "], TARGET, "invalid resource: empty resource name (omit it or name a root resource)"),
    ("replica-without-resource", ["--operation", "RegisterAsReplicaSync"], TARGET,
     "invalid resource: RegisterAsReplicaSync needs a resource to hold the extra replica"),
    ("missing-handler-file", ["--event-handler", "/nonexistent/handler.py"], TARGET,
     "--event-handler: cannot read /nonexistent/handler.py: No such file or directory"),
]


@pytest.mark.redis
@pytest.mark.parametrize(("extra", "target", "line"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_bad_setting_is_refused_with_one_line(redis_url: str, tmp_path: Path, extra: list[str], target: str, line: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert start(redis_url, tmp_path, target, *extra) == 2
    lines = refused_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith(f"irods-ingest start: {line}"), lines
    assert_nothing_in_redis(redis_url)


@pytest.mark.redis
def test_every_problem_is_reported_at_once(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert start(redis_url, tmp_path, "/", "--files-per-task", "0", "--operation", "Put", "--delete-mode", "Trash") == 2
    fields = [line.split("invalid ", 1)[1].split(":", 1)[0] for line in refused_lines(capsys)]
    assert fields == ["target_collection", "files_per_task", "delete_mode"]
    assert_nothing_in_redis(redis_url)


def test_unknown_operation_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["plan", "/src", TARGET, "--operation", "Copy"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --operation: invalid choice: 'Copy' (choose from" in err and "RegisterSync" in err


@pytest.mark.redis
def test_unknown_operation_in_a_stored_config_names_the_choices(redis_url: str) -> None:
    # The operator and the worker read configs as dicts: the same refusal, naming every choice
    with pytest.raises(ConfigError) as raised:
        JobConfig.from_dict({"job_name": "j", "source_path": "/src", "target_collection": TARGET, "operation": "Copy"})
    assert str(raised.value) == (
        "operation: unknown value 'Copy' (use one of RegisterSync, RegisterAsReplicaSync, Put, PutSync, PutAppend, NoOp)"
    )
    with pytest.raises(ConfigError, match="target_collection: the root collection"):
        start_job(connect(redis_url), JobConfig(job_name="j", source_path="/src", target_collection="/"))
    assert_nothing_in_redis(redis_url)


@pytest.mark.redis
@pytest.mark.parametrize("kind", ["missing", "a-file"])
def test_source_that_is_not_a_directory_is_refused_before_local_workers_start(
    redis_url: str, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "nowhere"
    if kind == "a-file":
        source.write_bytes(b"not a directory")
    assert start(redis_url, source, TARGET, "--workers", "1") == 2
    what = "is not a directory" if kind == "a-file" else "does not exist"
    assert refused_lines(capsys) == [
        f"irods-ingest start: invalid source_path: {source} {what} (give an existing directory to ingest)"
    ]
    assert_nothing_in_redis(redis_url)
    assert main(["plan", str(source), TARGET]) == 2  # plan scans here too: the same refusal
    assert f"invalid source_path: {source} {what}" in capsys.readouterr().err


@pytest.mark.redis
@pytest.mark.irods
@pytest.mark.parametrize("kind", ["missing", "a-file"])
def test_source_missing_where_the_worker_runs_fails_the_run_by_name(ingest: Ingest, kind: str) -> None:
    # The operator (and `start` without local workers) cannot see the workers' filesystem:
    # the run starts, and its root scan fails naming the source; nothing is created.
    ingest.source = ingest.source / "nowhere"
    if kind == "a-file":
        ingest.source.write_bytes(b"x")
    status = ingest.run()
    reason = "source is not a directory" if kind == "a-file" else "source does not exist"
    assert (status.state, status.error) == ("failed", f"{reason}: {ingest.source}")
    [failure] = ingest.failures()
    assert failure["path"] == str(ingest.source) and failure["reason"].startswith(reason)
    assert status.counters["files_discovered"] == 0 and status.counters["tasks_failed"] == 1
    assert not ingest.session.collections.exists(ingest.target)


@pytest.mark.redis
@pytest.mark.irods
def test_foreign_zone_target_fails_the_run_naming_the_collection(ingest: Ingest) -> None:
    # Which zones exist is known only to iRODS: the root scan cannot create the target and
    # the run fails with iRODS' error naming the collection (no file is discovered, none lost:
    # `irods-ingest retry` rescans once the target is fixed).
    ingest.write("a.txt", b"a")
    ingest.write("sub/b.txt", b"b")
    ingest.target = "/otherZone/home/rods/x"
    status = ingest.run(max_retries=0)
    assert status.state == "failed"
    assert status.error.startswith("the source root could not be processed: ")
    assert "/otherZone/home/rods/x" in status.error and "iRODS error" in status.error, status.error
    print(status.error)
    [failure] = ingest.failures()
    assert failure["path"] == str(ingest.source) and failure["kind"] == "scan"
    assert status.counters["files_discovered"] == 0 and status.counters["files_synced"] == 0
