"""The CLI: one clear line for bad input, the incumbent's spellings accepted, plan touches nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from irods_ingest.cli import build_parser, config_from_args, main


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "irods_ingest", *args], capture_output=True, text=True, env=env, timeout=60)


def test_help_and_version_run() -> None:
    assert run_cli("--help").returncode == 0
    assert "irods-ingest" in run_cli("--version").stdout


def test_incumbent_underscore_options_are_aliases() -> None:
    args = build_parser().parse_args(
        ["start", "/src", "/tempZone/home/rods/x", "--job_name", "j1", "--files_per_task", "7",
         "--exclude_file_type", "socket,pipe", "--exclude_file_name", "a.*", "b.*", "--ignore_cache", "--initial_ingest"]
    )
    config = config_from_args(args)
    assert (config.job_name, config.files_per_task, config.ignore_cache, config.initial_ingest) == ("j1", 7, True, True)
    assert [t.value for t in config.exclude_types] == ["socket", "pipe"]
    assert config.exclude_names == ("a.*", "b.*")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["plan", "/src", "/"], "target_collection: the root collection / can only hold zones"),
        (["plan", "/src", "/tempZone/x", "--operation", "Put", "--delete-mode", "Trash"], "delete_mode: Trash is incompatible"),
        (["plan", "/src", "/tempZone/x", "--exclude-file-type", "bogus"], "exclude_types: unknown file type 'bogus'"),
        (["plan", "/src", "/tempZone/x", "--files-per-task", "0"], "files_per_task"),
        (["start", "/src", "/tempZone/x", "--event-handler", "/nonexistent/h.py", "--redis-url", "redis://127.0.0.1:1/0"], "--event-handler: cannot read"),
    ],
)
def test_bad_input_is_one_clear_line(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert any(needle in line for line in err), err
    assert not any("Traceback" in line for line in err)


def test_unreachable_redis_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--redis-url", "redis://127.0.0.1:1/0"]) == 1
    err = capsys.readouterr().err
    assert "unreachable" in err and "Traceback" not in err


def test_plan_reports_without_touching_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.txt").write_bytes(b"12345")
    (tmp_path / "two.tmp").write_bytes(b"1")
    os.mkfifo(tmp_path / "fifo")
    assert main(["plan", str(tmp_path), "/tempZone/home/rods/x", "--exclude-file-name", r".*\.tmp"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["files_to_sync"], report["bytes_to_sync"], report["excluded"], report["skipped"]) == (1, 5, 1, 1)
    assert report["directories"] == 2
    assert report["skipped_files"][0]["path"].endswith("fifo")


@pytest.mark.redis
def test_start_stop_list_against_redis(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--redis-url", redis_url]
    assert main(["start", str(tmp_path), "/tempZone/home/rods/x", "--job-name", "cli-job", *common]) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["job"] == "cli-job"
    # a second start while active is refused, and says how to replace it
    assert main(["start", str(tmp_path), "/tempZone/home/rods/x", "--job-name", "cli-job", *common]) == 1
    assert "--restart" in capsys.readouterr().err
    assert main(["list", "--format", "json", *common]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(j["job"], j["state"], j["run"]) for j in listed] == [("cli-job", "running", started["run"])]
    assert main(["stop", "cli-job", *common]) == 0
    assert "stopped" in capsys.readouterr().out
    assert main(["list", "--format", "json", *common]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["state"] == "stopped" and listed[0]["history"][0]["state"] == "stopped"


@pytest.mark.redis
def test_start_refuses_handler_with_incompatible_delete_mode(redis_url: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    handler = tmp_path / "handler.py"
    handler.write_text(
        "from irods_capability_automated_ingest.core import Core\n"
        "from irods_capability_automated_ingest.utils import Operation, DeleteMode\n"
        "class event_handler(Core):\n"
        "    @staticmethod\n    def operation(session, meta, **options):\n        return Operation.PUT\n"
        "    @staticmethod\n    def delete_mode(meta):\n        return DeleteMode.TRASH\n"
    )
    assert main(["start", str(tmp_path), "/tempZone/home/rods/x", "--event-handler", str(handler),
                 "--job-name", "bad-handler", "--redis-url", redis_url]) == 2
    assert "delete_mode: Trash is incompatible with operation Put" in capsys.readouterr().err
    from irods_ingest.jobstate import RunState
    from irods_ingest.store.connection import connect

    assert RunState(connect(redis_url), "bad-handler").status().state == "none"  # nothing started


@pytest.mark.redis
def test_start_refuses_a_handler_with_a_syntax_error(redis_url: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("class event_handler(:\n")
    assert main(["start", str(tmp_path), "/tempZone/home/rods/x", "--event-handler", str(broken),
                 "--redis-url", redis_url]) == 2
    err = capsys.readouterr().err
    assert "invalid event_handler: event handler failed to load: SyntaxError" in err and "Traceback" not in err


def test_demo_and_test_server_come_from_the_test_kits_entry_points(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The engine never imports the test kit: it finds `demo` and `test-server` through the
    `irods_ingest.commands` entry points, and without them says in one line what to install."""
    from irods_ingest import cli

    assert {"demo", "test-server"} <= set(cli.extra_commands(builtin=()))
    assert "demo" in build_parser(cli.extra_commands(builtin=())).format_help()
    # as if the test kit were not installed
    monkeypatch.setattr("irods_ingest.cli.entry.extra_commands", lambda builtin: {})
    for command in ("demo", "test-server"):
        assert main([command, "--help"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"irods-ingest {command}: this command comes with the test kit")
        assert "irods-ingest-testkit" in err[0] and "scripts/dev setup" in err[0]
