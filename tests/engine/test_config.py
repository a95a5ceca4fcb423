"""Job configuration validation: every problem named with its field and fix."""

from __future__ import annotations

import itertools

import pytest

from irods_ingest.config import COMPATIBLE_DELETE_MODES, DeleteMode, JobConfig, Operation, check, validate
from irods_ingest.errors import ConfigError

BASE = JobConfig(job_name="j", source_path="/data", target_collection="/tempZone/home/rods/in")

# The incumbent's table (irods_capability_automated_ingest 0.7.0 utils.py), spelled out
# independently of the implementation so that a change to either is caught.
ALLOWED = {
    ("NoOp", "DoNotDelete"),
    ("RegisterSync", "DoNotDelete"), ("RegisterSync", "Unregister"),
    ("RegisterAsReplicaSync", "DoNotDelete"), ("RegisterAsReplicaSync", "Unregister"),
    ("Put", "DoNotDelete"),
    ("PutSync", "DoNotDelete"), ("PutSync", "Trash"), ("PutSync", "NoTrash"),
    ("PutAppend", "DoNotDelete"), ("PutAppend", "Trash"), ("PutAppend", "NoTrash"),
}


@pytest.mark.parametrize(("operation", "mode"), list(itertools.product(Operation, DeleteMode)), ids=lambda v: v.value)
def test_delete_mode_matrix_all_24_cases(operation: Operation, mode: DeleteMode) -> None:
    config = BASE.with_changes(operation=operation, delete_mode=mode, resource="demoResc")
    problems = [p for p in validate(config) if p.field == "delete_mode"]
    if (operation.value, mode.value) in ALLOWED:
        assert problems == []
    else:
        assert len(problems) == 1
        assert operation.value in problems[0].message and mode.value in problems[0].message
        assert "DoNotDelete" in problems[0].fix


def test_matrix_table_has_all_operations() -> None:
    assert set(COMPATIBLE_DELETE_MODES) == set(Operation)


@pytest.mark.parametrize(
    ("collection", "needle"),
    [("/", "root collection"), ("//", "root collection"), ("relative/path", "not absolute"), ("/tempZone/a/../b", ". or ..")],
)
def test_bad_target_collections(collection: str, needle: str) -> None:
    problems = validate(BASE.with_changes(target_collection=collection))
    assert [p.field for p in problems] == ["target_collection"]
    assert needle in problems[0].message


def test_all_problems_reported_together() -> None:
    config = BASE.with_changes(files_per_task=0, exclude_names=("([unclosed",), job_name="bad name", max_retries=-1)
    with pytest.raises(ConfigError) as caught:
        check(config)
    fields = {p.field for p in caught.value.problems}
    assert fields == {"files_per_task", "exclude_names", "job_name", "max_retries"}
    assert "files_per_task" in str(caught.value)


def test_replica_sync_needs_a_resource_unless_a_handler_may_supply_it() -> None:
    config = BASE.with_changes(operation=Operation.REGISTER_AS_REPLICA_SYNC)
    assert [p.field for p in validate(config)] == ["resource"]
    assert validate(config.with_changes(handler_hash="abc")) == []


def test_round_trip_through_dict() -> None:
    config = BASE.with_changes(operation=Operation.PUT_SYNC, delete_mode=DeleteMode.TRASH, exclude_names=("x.*",))
    assert JobConfig.from_dict(config.to_dict()) == config


def test_from_dict_names_unknown_values_and_settings() -> None:
    with pytest.raises(ConfigError) as caught:
        JobConfig.from_dict({**BASE.to_dict(), "operation": "Copy", "colour": "blue"})
    assert [p.field for p in caught.value.problems] == ["colour"]
    with pytest.raises(ConfigError) as caught:
        JobConfig.from_dict({**BASE.to_dict(), "operation": "Copy"})
    assert caught.value.problems[0].field == "operation"
    assert "PutSync" in caught.value.problems[0].fix
