"""The differential compatibility suite (issue 15): each case runs one scenario with the
incumbent (irods-capability-automated-ingest 0.7.0: its celery workers and ``irods_sync start
--synchronous``) and with ours (``irods-ingest start --synchronous --workers 2``), with the same
arguments and the same event-handler module, into separate collections, and compares the
catalogs, the hook traces and the exit statuses (``testsupport/compat.py``). A difference fails
the case unless ``tests/compat/allowed_differences.yaml`` lists it with a reason; a case marked
xfail(strict) shows a known gap of issue 15, and turns red once the gap is fixed.

Run: ``.venv/bin/pytest -m compat tests/compat``. The cases and the incumbent tests they come
from (``irods_capability_automated_ingest/test/`` in its 0.7.0 sdist):

* test_register: test_irods_sync.py::Test_register::test_register (examples/register.py)
* test_no_event_handler: test_irods_sync.py::Test_event_handlers::test_no_event_handler
* test_register_dir_par: test_irods_sync.py::Test_event_handlers::test_create_dir (10 levels deep)
* test_update: test_irods_sync.py::Test_update::test_update (register, rewrite, rescan)
* test_update_metadata: test_irods_sync.py::Test_update_metadata::test_update_metadata (examples/metadata.py)
* test_register_as_replica: test_irods_sync.py::Test_register_as_replica (REGISTER_AS_REPLICA_SYNC, default resource)
* test_put: test_irods_sync.py::Test_put::test_put (examples/put.py)
* test_sync: test_irods_sync.py::Test_sync::test_sync (examples/sync.py: PUT_SYNC, rewrite, rescan)
* test_append: test_irods_sync.py::Test_append::test_append (examples/append.py: PUT_APPEND, rewrite, rescan)
* test_no_op: test_irods_sync.py::Test_event_handlers::test_no_op (examples/no_op.py)
* test_exclude_file_name_single_file: test_irods_sync.py::test_exclude_options::test_exclude_file_name_single_file
* test_character_mapped_path_register: test_irods_sync.py::Test_irods_sync_character_mapped_path::test_register
* test_character_mapped_path_put: test_irods_sync.py::Test_irods_sync_character_mapped_path::test_put
* test_unicode_encode_error_register: test_irods_sync.py::Test_irods_sync_UnicodeEncodeError::test_register
* test_register_unicode_names: test_irods_sync.py::Test_register::test_register, with non-ASCII (valid UTF-8) names
* test_REGISTER_SYNC_and_DO_NOT_DELETE_does_not_delete_collections: test_delete_modes.py (same name)
* test_REGISTER_SYNC_and_UNREGISTER_deletes_collections: test_delete_modes.py (same name)
* test_REGISTER_AS_REPLICA_SYNC_and_UNREGISTER_deletes_collections: test_delete_modes.py (same name)
* test_PUT_SYNC_and_DO_NOT_DELETE_does_not_delete_collections: test_delete_modes.py (same name)
* test_PUT_SYNC_and_TRASH_deletes_collections: test_delete_modes.py (same name)
* test_PUT_SYNC_and_NO_TRASH_deletes_collections: test_delete_modes.py (same name)
* test_PUT_APPEND_and_TRASH_deletes_collections: test_delete_modes.py (same name)
* test_deleting_all_files_from_directory_but_not_the_directory_itself: test_delete_modes.py (..._does_not_delete_collection__issue_288)
* test_NO_OP_and_UNREGISTER_are_incompatible: test_delete_modes.py (same name)
* test_PUT_and_TRASH_are_incompatible: test_delete_modes.py (same name)
* test_REGISTER_SYNC_and_TRASH_are_incompatible: test_delete_modes.py (same name)

test_s3_bucket_scan.py's scenarios need an S3 source for both systems: a later batch.
"""

from __future__ import annotations

import itertools
import os
import shutil
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from testsupport.compat import (
    CompatDifference,
    Gap,
    GapClosed,
    KnownGapDifference,
    Scenario,
    Services,
    Step,
    check,
    load_allow_list,
    run_case,
)

pytestmark = [pytest.mark.compat, pytest.mark.redis, pytest.mark.irods, pytest.mark.timeout(300)]

NFILES = 10
INCUMBENT_ARGS = ["--files_per_task", "1", "--log_level", "INFO"]  # as its tests run irods_sync


# ---------------------------------------------------------------------------- source trees
def ten_files(src: Path) -> None:
    """The incumbent's create_files(NFILES): files 0..9 holding i bytes."""
    for i in range(NFILES):
        (src / str(i)).write_text("i" * i)


def deep_files(src: Path) -> None:
    """create_files2(10, NFILES): the files ten directories down."""
    deep = src.joinpath(*[f"a{i}" for i in range(10)])
    deep.mkdir(parents=True)
    for i in range(NFILES):
        (deep / str(i)).write_text("i" * i)


def rewrite_ten_files(src: Path) -> list[str]:
    """recreate_files(NFILES): new contents, new sizes."""
    for i in range(NFILES):
        (src / str(i)).write_text("i" * (i * 2 + 1))
    return [str(i) for i in range(NFILES)]


def delete_modes_tree(src: Path) -> None:
    """test_delete_modes.py's directory tree."""
    (src / "shallow_subdirectory").mkdir()
    (src / "shallow_subdirectory" / "file_that_exists_to_activate_trash.txt").write_text(
        "contents for file_that_exists_to_activate_trash.txt")
    (src / "deep_subdirectory" / "a" / "b" / "c").mkdir(parents=True)
    (src / "deep_subdirectory" / "x" / "y" / "z").mkdir(parents=True)
    (src / "top_level_file.txt").write_text("contents for top_level_file.txt")


def remove_shallow_subdirectory(src: Path) -> list[str]:
    shutil.rmtree(src / "shallow_subdirectory")
    return []


def remove_files_of_shallow_subdirectory(src: Path) -> list[str]:
    (src / "shallow_subdirectory" / "file_that_exists_to_activate_trash.txt").unlink()
    return []


def single_named_file(name: bytes) -> Callable[[Path], None]:
    def build(src: Path) -> None:
        descriptor = os.open(os.fsencode(src) + b"/" + name, os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(descriptor, b"contents of a file with an awkward name\n")
        os.close(descriptor)
    return build


def unicode_names(src: Path) -> None:
    for name in ("données.csv", "Ωmega", "日本語.txt", "naïve café"):
        (src / name).write_text(f"contents of {name}\n")
    (src / "répertoire").mkdir()
    (src / "répertoire" / "über.dat").write_text("deep\n")


# ---------------------------------------------------------------------------- handlers
def delete_mode_handler(operation: str, delete_mode: str) -> str:
    """test_delete_modes.py's get_event_handler(operation, delete_mode)."""
    return textwrap.dedent(f"""
        from irods_capability_automated_ingest.core import Core
        from irods_capability_automated_ingest.utils import DeleteMode, Operation
        class event_handler(Core):
            @staticmethod
            def operation(session, meta, **options):
                return Operation.{operation}

            @staticmethod
            def delete_mode(meta):
                return DeleteMode.{delete_mode}
        """)


def operation_handler(operation: str) -> str:
    return textwrap.dedent(f"""
        from irods_capability_automated_ingest.core import Core
        from irods_capability_automated_ingest.utils import Operation
        class event_handler(Core):
            @staticmethod
            def operation(session, meta, **options):
                return Operation.{operation}
        """)


def common(_src: Path) -> list[str]:
    return list(INCUMBENT_ARGS)


def exclude_file_5(src: Path) -> list[str]:
    # as the incumbent's test gives it: the file's absolute path, as a regex
    return ["--exclude_file_name", str(src / "5"), *INCUMBENT_ARGS]


# ---------------------------------------------------------------------------- known gaps (issue 15)
EXCLUDE_RELATIVE = Gap("exclusions matched against relative paths", ("catalog: 'objects' '5'*", 'trace: *"<src>/5"*'))
UNDECODABLE = Gap("names of undecodable files", ("exit: *", "catalog: *", "trace: *"))

REWRITE = Step("rewrite every file (new sizes), run again", rewrite_ten_files)
REMOVE_DIR = Step("remove shallow_subdirectory, run again", remove_shallow_subdirectory)

SYNC_IRODS = "test_irods_sync.py"
DELETE_MODES = "test_delete_modes.py::test_delete_modes_with_sync_operations"


def _delete_case(operation: str, mode: str, title: str, gaps: tuple[Gap, ...] = ()) -> Scenario:
    return Scenario(title, f"{DELETE_MODES}::{title}", delete_modes_tree, delete_mode_handler(operation, mode), common,
                    (REMOVE_DIR,), gaps)


def _incompatible(operation: str, mode: str, gaps: tuple[Gap, ...] = ()) -> Scenario:
    title = f"test_{operation}_and_{mode}_are_incompatible"
    return Scenario(title, f"{DELETE_MODES}::{title}", delete_modes_tree, delete_mode_handler(operation, mode), common,
                    (), gaps)


SCENARIOS: list[Scenario] = [
    Scenario("test_register", f"{SYNC_IRODS}::Test_register::test_register", ten_files, "example:register", common),
    Scenario("test_no_event_handler", f"{SYNC_IRODS}::Test_event_handlers::test_no_event_handler", ten_files, None, common),
    Scenario("test_register_dir_par", f"{SYNC_IRODS}::Test_event_handlers::test_create_dir", deep_files,
             "example:register", common),
    Scenario("test_update", f"{SYNC_IRODS}::Test_update::test_update", ten_files, "example:register", common, (REWRITE,)),
    Scenario("test_update_metadata", f"{SYNC_IRODS}::Test_update_metadata::test_update_metadata", ten_files,
             "example:metadata", common, (REWRITE,)),
    Scenario("test_register_as_replica", f"{SYNC_IRODS}::Test_register_as_replica (default resource)", ten_files,
             operation_handler("REGISTER_AS_REPLICA_SYNC"), common),
    Scenario("test_put", f"{SYNC_IRODS}::Test_put::test_put", ten_files, "example:put", common),
    Scenario("test_sync", f"{SYNC_IRODS}::Test_sync::test_sync", ten_files, "example:sync", common, (REWRITE,)),
    Scenario("test_append", f"{SYNC_IRODS}::Test_append::test_append", ten_files, "example:append", common, (REWRITE,)),
    Scenario("test_no_op", f"{SYNC_IRODS}::Test_event_handlers::test_no_op", ten_files, "example:no_op", common),
    Scenario("test_exclude_file_name_single_file",
             f"{SYNC_IRODS}::test_exclude_options::test_exclude_file_name_single_file", ten_files, None, exclude_file_5,
             gaps=(EXCLUDE_RELATIVE,)),
    Scenario("test_character_mapped_path_register",
             f"{SYNC_IRODS}::Test_irods_sync_character_mapped_path::test_register",
             single_named_file(b"test-file~with@5!non.alphas"), "example:register_using_char_map", common),
    Scenario("test_character_mapped_path_put", f"{SYNC_IRODS}::Test_irods_sync_character_mapped_path::test_put",
             single_named_file(b"test-file~with@5!non.alphas"), "example:put_using_char_map", common),
    Scenario("test_unicode_encode_error_register", f"{SYNC_IRODS}::Test_irods_sync_UnicodeEncodeError::test_register",
             single_named_file(b"test_register_with_unicode_encode_error_path_" + "\u1000".encode()[:-1]),
             "example:register", common, gaps=(UNDECODABLE,)),
    Scenario("test_register_unicode_names", f"{SYNC_IRODS}::Test_register::test_register (non-ASCII names)",
             unicode_names, "example:register", common),
    _delete_case("REGISTER_SYNC", "DO_NOT_DELETE", "test_REGISTER_SYNC_and_DO_NOT_DELETE_does_not_delete_collections"),
    _delete_case("REGISTER_SYNC", "UNREGISTER", "test_REGISTER_SYNC_and_UNREGISTER_deletes_collections"),
    _delete_case("REGISTER_AS_REPLICA_SYNC", "UNREGISTER", "test_REGISTER_AS_REPLICA_SYNC_and_UNREGISTER_deletes_collections"),
    _delete_case("PUT_SYNC", "DO_NOT_DELETE", "test_PUT_SYNC_and_DO_NOT_DELETE_does_not_delete_collections"),
    _delete_case("PUT_SYNC", "TRASH", "test_PUT_SYNC_and_TRASH_deletes_collections"),
    _delete_case("PUT_SYNC", "NO_TRASH", "test_PUT_SYNC_and_NO_TRASH_deletes_collections"),
    _delete_case("PUT_APPEND", "TRASH", "test_PUT_APPEND_and_TRASH_deletes_collections"),
    Scenario("test_deleting_all_files_from_directory_but_not_the_directory_itself",
             f"{DELETE_MODES}::test_deleting_all_files_from_directory_but_not_the_directory_itself_does_not_delete_collection__issue_288",
             delete_modes_tree, delete_mode_handler("REGISTER_SYNC", "UNREGISTER"), common,
             (Step("remove the files of shallow_subdirectory, keep it, run again", remove_files_of_shallow_subdirectory),)),
    _incompatible("NO_OP", "UNREGISTER"),
    _incompatible("PUT", "TRASH"),
    _incompatible("REGISTER_SYNC", "TRASH"),
]

_serial = itertools.count()


def _param(scenario: Scenario) -> object:
    marks = []
    if scenario.gaps:
        reason = "issue 15: " + "; ".join(g.reason for g in scenario.gaps)
        marks.append(pytest.mark.xfail(strict=True, raises=KnownGapDifference, reason=reason))
    return pytest.param(scenario, id=scenario.id, marks=marks)


@pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
def test_case(scenario: Scenario, compat_services: Services, request: pytest.FixtureRequest) -> None:
    result = run_case(compat_services, scenario, next(_serial))
    # An empty comparison proves nothing: the incumbent ran every step and its hooks were
    # recorded (it calls pre_job even for a job it then fails).
    assert len(result.results["incumbent"].runs) == len(result.results["ours"].runs) == 1 + len(scenario.steps)
    assert result.results["incumbent"].trace.calls, "the instrumented handler recorded no hook call"
    request.node.user_properties.append(("compat", result.status))
    check(result)


def test_allow_list_entries_name_cases_reasons_and_documentation() -> None:
    """Every allowed difference names a case of this suite, says why, and points at its section
    of docs/migration.md (a deliberate fix of an incumbent defect is documented there)."""
    ids = {s.id for s in SCENARIOS}
    migration = (Path(__file__).resolve().parents[2] / "docs" / "migration.md").read_text()
    for case, entries in load_allow_list().items():
        assert case in ids, f"allowed_differences.yaml: {case} is not a case"
        assert entries, f"allowed_differences.yaml: {case} lists nothing"
        for entry in entries:
            assert set(entry) == {"what", "reason", "docs"}, entry
            assert entry["reason"].strip(), entry
            anchor = entry["docs"].partition("#")[2]
            assert entry["docs"].startswith("docs/migration.md#") and f'<a id="{anchor}"></a>' in migration, entry


def test_a_difference_not_allowed_fails_with_a_readable_report() -> None:
    """The harness's verdict on made-up results: what differs is named, with both values."""
    from collections import Counter

    from testsupport.compat import CaseResult, Difference, Run, SystemResult, Trace, classify, compare

    def system(exit_status: int, size: int, trace: list[str]) -> SystemResult:
        return SystemResult([Run(["x"], exit_status, "boom\n")], {"objects": {"0": {"size": size}}}, Trace(Counter(trace)))

    results = {"incumbent": system(0, 1, ["a", "a"]), "ours": system(1, 2, ["a"])}
    differences = compare(results)
    assert [d.aspect for d in differences] == ["exit", "catalog", "trace"]
    assert differences[1] == Difference("catalog", "'objects' '0' 'size'", 1, 2)
    allowed, rest = classify("x", differences, {"x": [{"what": "exit: *", "reason": "r", "docs": "d"}]})
    assert [d.aspect for d in allowed] == ["exit"] and len(rest) == 2
    scenario = SCENARIOS[0]
    with pytest.raises(CompatDifference, match=r"(?s)catalog: 'objects' '0' 'size'.*incumbent: 1.*ours:      2") as info:
        check(CaseResult(scenario, results, differences, allowed, rest))
    assert not isinstance(info.value, KnownGapDifference)
    both = (Gap("g1", ("catalog: *",)), Gap("g2", ("trace: *",)))
    with pytest.raises(KnownGapDifference):  # every not-allowed difference explained, each gap shows
        check(CaseResult(replace(scenario, gaps=both), results, differences, allowed, rest))
    with pytest.raises(CompatDifference) as info:  # a difference outside the gaps is not excused by them
        check(CaseResult(replace(scenario, gaps=both[1:]), results, differences, allowed, rest))
    assert not isinstance(info.value, KnownGapDifference) and "catalog: 'objects'" in str(info.value)
    closed = (*both, Gap("g3", ("exit: *",)))  # the exit difference is allowed: g3 no longer shows
    with pytest.raises(GapClosed, match="g3"):
        check(CaseResult(replace(scenario, gaps=closed), results, differences, allowed, rest))
