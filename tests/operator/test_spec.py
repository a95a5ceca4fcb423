"""SyncJob spec parsing and the cross-field rules the 1.20 API server cannot enforce."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from irods_ingest_operator.constants import DeleteMode, FileType, ImagePullPolicy, Operation, SymlinkPolicy
from irods_ingest_operator.spec import (
    InvalidSpecError,
    PathSource,
    S3Source,
    SpecProblem,
    SyncJobSpec,
    check_collection,
    check_schedule,
    delete_mode_is_compatible,
    next_fire_time,
    parse_spec,
    parse_syncjob,
    spec_problems,
)


def defaulted_spec(**overrides: Any) -> dict[str, Any]:
    """A spec as the API server returns it: user fields plus every CRD default."""
    spec: dict[str, Any] = {
        "source": {"path": "/data", "volume": {"persistentVolumeClaim": {"claimName": "archive"}}},
        "destination": {
            "collection": "/tempZone/home/alice/ingest",
            "connectionSecret": {
                "name": "irods",
                "environmentKey": "irods_environment.json",
                "passwordKey": "password",
            },
        },
        "operation": "RegisterSync",
        "deleteMode": "DoNotDelete",
        "suspend": False,
        "workers": {
            "minReplicas": 0,
            "maxReplicas": 4,
            "concurrency": 1,
            "filesPerTask": 50,
            "taskTimeoutSeconds": 3600,
            "maxRetries": 3,
            "retryBackoffSeconds": 5,
        },
        "initialIngest": False,
        "ignoreCache": False,
        "symlinks": "Register",
        "verifyChecksum": False,
    }
    spec.update(overrides)
    return spec


def s3_source(**fields: Any) -> dict[str, Any]:
    return {"s3": {"bucket": "raw", **fields}}


def problem_fields(raw: dict[str, Any]) -> list[str]:
    return [problem.field for problem in spec_problems(raw)]


# --- Parsing the happy paths ------------------------------------------------------------------
def test_defaulted_path_spec_parses_into_typed_values() -> None:
    spec = parse_spec(defaulted_spec())

    assert spec.source == PathSource(path="/data", volume={"persistentVolumeClaim": {"claimName": "archive"}})
    assert spec.destination.collection == "/tempZone/home/alice/ingest"
    assert spec.destination.connection_secret.name == "irods"
    assert spec.destination.resource is None
    assert spec.operation is Operation.REGISTER_SYNC
    assert spec.delete_mode is DeleteMode.DO_NOT_DELETE
    assert spec.symlinks is SymlinkPolicy.REGISTER
    assert spec.workers.max_replicas == 4
    assert spec.workers.files_per_task == 50
    assert spec.handler is None
    assert spec.schedule is None
    assert spec.run_now is None


def test_every_field_is_carried_into_the_dataclasses() -> None:
    raw = defaulted_spec(
        operation="PutSync",
        deleteMode="Trash",
        filter={
            "excludeTypes": ["socket", "pipe"],
            "excludeNames": [r".*\.tmp$"],
            "excludeDirectories": ["^scratch/"],
            "includeNames": [r".*\.tif$"],
        },
        handler={"configMapRef": {"name": "handler-cm", "key": "policy.py"}},
        metadata=[{"attribute": "source", "value": "{path}", "units": "job:{job}"}],
        schedule="0 2 * * *",
        suspend=True,
        runNow="2024-05-01T10:00:00Z",
        initialIngest=True,
        ignoreCache=True,
        symlinks="Follow",
        verifyChecksum=True,
    )
    raw["destination"]["resource"] = "demoResc"
    raw["workers"].update(
        image="registry.example/irods-ingest:1.2",
        imagePullPolicy="Always",
        minReplicas=1,
        maxReplicas=8,
        concurrency=4,
        resources={"limits": {"memory": "512Mi"}},
        filesPerTask=100,
        taskTimeoutSeconds=60,
        maxRetries=0,
        retryBackoffSeconds=0,
    )

    spec = parse_spec(raw)

    assert spec.operation is Operation.PUT_SYNC
    assert spec.delete_mode is DeleteMode.TRASH
    assert spec.destination.resource == "demoResc"
    assert spec.filter.exclude_types == frozenset({FileType.SOCKET, FileType.PIPE})
    assert spec.filter.exclude_names == (r".*\.tmp$",)
    assert spec.filter.exclude_directories == ("^scratch/",)
    assert spec.filter.include_names == (r".*\.tif$",)
    assert spec.handler is not None
    assert (spec.handler.config_map_name, spec.handler.key) == ("handler-cm", "policy.py")
    assert spec.metadata[0].value == "{path}"
    assert spec.metadata[0].units == "job:{job}"
    assert spec.schedule == "0 2 * * *"
    assert spec.suspend is True
    assert spec.run_now == "2024-05-01T10:00:00Z"
    assert (spec.initial_ingest, spec.ignore_cache, spec.verify_checksum) == (True, True, True)
    assert spec.symlinks is SymlinkPolicy.FOLLOW
    workers = spec.workers
    assert workers.image == "registry.example/irods-ingest:1.2"
    assert workers.image_pull_policy is ImagePullPolicy.ALWAYS
    assert (workers.min_replicas, workers.max_replicas, workers.concurrency) == (1, 8, 4)
    assert workers.resources == {"limits": {"memory": "512Mi"}}
    assert (workers.files_per_task, workers.task_timeout_seconds) == (100, 60)
    assert (workers.max_retries, workers.retry_backoff_seconds) == (0, 0)


def test_a_spec_without_server_defaults_gets_the_same_defaults() -> None:
    minimal = {
        "source": {"path": "/data"},
        "destination": {"collection": "/zone/c", "connectionSecret": {"name": "irods"}},
    }
    full = defaulted_spec(source={"path": "/data"})
    full["destination"] = {
        "collection": "/zone/c",
        "connectionSecret": {
            "name": "irods",
            "environmentKey": "irods_environment.json",
            "passwordKey": "password",
        },
    }

    assert parse_spec(minimal) == parse_spec(full)


def test_s3_source_with_credentials() -> None:
    raw = defaulted_spec(
        source=s3_source(
            endpoint="minio.example:9000",
            prefix="2024/",
            region="eu-west-1",
            credentialsSecret={"name": "s3-creds"},
        )
    )

    source = parse_spec(raw).source

    assert isinstance(source, S3Source)
    assert (source.bucket, source.prefix, source.region) == ("raw", "2024/", "eu-west-1")
    assert source.credentials is not None
    assert source.credentials.secret_name == "s3-creds"
    assert source.credentials.access_key_id_key == "AWS_ACCESS_KEY_ID"
    assert source.credentials.secret_access_key_key == "AWS_SECRET_ACCESS_KEY"
    assert source.endpoint_url() == "https://minio.example:9000"


@pytest.mark.parametrize(
    ("endpoint", "insecure", "url"),
    [
        (None, False, None),
        ("s3.example", False, "https://s3.example"),
        ("s3.example", True, "http://s3.example"),
        ("https://s3.example", False, "https://s3.example"),
        ("http://127.0.0.1:5000", True, "http://127.0.0.1:5000"),
    ],
)
def test_s3_endpoint_url(endpoint: str | None, insecure: bool, url: str | None) -> None:
    assert S3Source(bucket="b", endpoint=endpoint, insecure=insecure).endpoint_url() == url


def test_plain_http_endpoint_needs_insecure() -> None:
    raw = defaulted_spec(source=s3_source(endpoint="http://127.0.0.1:5000"))

    assert problem_fields(raw) == ["spec.source.s3.endpoint"]
    assert (
        spec_problems(defaulted_spec(source=s3_source(endpoint="http://127.0.0.1:5000", insecure=True))) == []
    )


# --- Collecting every problem -----------------------------------------------------------------
def test_all_problems_are_collected_not_just_the_first() -> None:
    raw = defaulted_spec(operation="PutSync", deleteMode="Unregister", schedule="every day")
    raw["destination"]["collection"] = "/zone/../etc"
    raw["workers"].update(minReplicas=5, maxReplicas=2)
    raw["filter"] = {"excludeNames": ["(unclosed"]}

    with pytest.raises(InvalidSpecError) as raised:
        parse_spec(raw)

    fields = [problem.field for problem in raised.value.problems]
    assert sorted(fields) == sorted(
        [
            "spec.destination.collection",
            "spec.deleteMode",
            "spec.workers.minReplicas",
            "spec.schedule",
            "spec.filter.excludeNames[0]",
        ]
    )
    assert all(problem.message and problem.fix for problem in raised.value.problems)
    # The exception text names fields (for the Stalled condition) and counts the rest.
    assert "spec." in str(raised.value)
    assert "and 2 more" in str(raised.value)


def test_problem_text_names_field_message_and_fix() -> None:
    problem = SpecProblem("spec.x", "is wrong", "set it right")
    assert str(problem) == "spec.x: is wrong (set it right)"


def test_missing_spec_sections() -> None:
    assert problem_fields({}) == ["spec.source", "spec.destination"]
    with pytest.raises(InvalidSpecError):
        parse_spec({"destination": {"collection": "/z/c", "connectionSecret": {"name": "irods"}}})


def test_connection_secret_is_required() -> None:
    raw = defaulted_spec()
    del raw["destination"]["connectionSecret"]
    assert problem_fields(raw) == ["spec.destination.connectionSecret"]


def test_unknown_fields_are_reported_for_specs_that_never_met_the_api_server() -> None:
    raw = defaulted_spec(sourceTypo=1)
    raw["workers"]["replicas"] = 3

    assert problem_fields(raw) == ["spec.sourceTypo", "spec.workers.replicas"]


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("workers", "maxReplicas", "4"),
        ("workers", "maxReplicas", True),
        ("workers", "filesPerTask", 0),
        ("workers", "filesPerTask", 10001),
        ("workers", "maxRetries", 101),
        ("workers", "concurrency", 0),
        ("workers", "imagePullPolicy", "Sometimes"),
        ("workers", "image", "has space:1"),
        (None, "suspend", "yes"),
        (None, "operation", "Copy"),
        (None, "symlinks", "Ignore"),
    ],
)
def test_type_enum_and_bound_violations_name_the_field(section: str | None, key: str, value: object) -> None:
    raw = defaulted_spec()
    (raw[section] if section else raw)[key] = value
    expected = f"spec.{section}.{key}" if section else f"spec.{key}"

    assert problem_fields(raw) == [expected]


# --- Source rules -----------------------------------------------------------------------------
def test_source_needs_exactly_one_of_path_and_s3() -> None:
    both = defaulted_spec(source={"path": "/data", "s3": {"bucket": "raw"}})
    neither = defaulted_spec(source={})

    assert problem_fields(both) == ["spec.source"]
    assert problem_fields(neither) == ["spec.source"]
    assert "both" in spec_problems(both)[0].message
    assert "neither" in spec_problems(neither)[0].message


def test_volume_only_with_path() -> None:
    raw = defaulted_spec(source={**s3_source(), "volume": {"emptyDir": {}}})
    assert problem_fields(raw) == ["spec.source.volume"]


def test_path_without_volume_is_allowed() -> None:
    spec = parse_spec(defaulted_spec(source={"path": "/srv/data"}))
    assert spec.source == PathSource(path="/srv/data", volume=None)


@pytest.mark.parametrize(
    ("volume", "field"),
    [
        ({"name": "x", "persistentVolumeClaim": {"claimName": "a"}}, "spec.source.volume.name"),
        ({"persistentVolumeClam": {"claimName": "a"}}, "spec.source.volume"),
        ({"nfs": {"server": "s", "path": "/"}, "hostPath": {"path": "/d"}}, "spec.source.volume"),
        ({}, "spec.source.volume"),
        ({"hostPath": "/d"}, "spec.source.volume.hostPath"),
    ],
)
def test_volume_must_be_one_known_volume_source(volume: dict[str, Any], field: str) -> None:
    raw = defaulted_spec(source={"path": "/data", "volume": volume})
    assert problem_fields(raw) == [field]


@pytest.mark.parametrize(
    "path",
    [
        "data",
        "/",
        "/data/",
        "/data/../etc",
        "/data/./x",
        "//data",
        "/tmp",
        "/tmp/in",
        "/etc",
        "/etc/irods-ingest/irods",
    ],
)
def test_bad_source_paths(path: str) -> None:
    assert problem_fields(defaulted_spec(source={"path": path})) == ["spec.source.path"]


@pytest.mark.parametrize("path", ["/data", "/mnt/archive/2024", "/srv/.hidden", "/etcetera"])
def test_good_source_paths(path: str) -> None:
    assert spec_problems(defaulted_spec(source={"path": path})) == []


# --- Destination rules ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("collection", "fragment"),
    [
        ("tempZone/home", "absolute"),
        ("/", "root"),
        ("/tempZone/home/", "end with"),
        ("/tempZone//home", "empty segment"),
        ("/tempZone/home/../rods", "'..'"),
        ("/tempZone/./home", "'.'"),
        ("/..", "'..'"),
    ],
)
def test_bad_collections(collection: str, fragment: str) -> None:
    why = check_collection(collection)
    assert why is not None and fragment in why
    raw = defaulted_spec()
    raw["destination"]["collection"] = collection
    assert problem_fields(raw) == ["spec.destination.collection"]


@pytest.mark.parametrize(
    "collection", ["/tempZone", "/tempZone/home/alice/ingest", "/z/.hidden", "/z/..x", "/z/a b"]
)
def test_good_collections(collection: str) -> None:
    assert check_collection(collection) is None


@pytest.mark.parametrize("name", ["Irods", "irods_secret", "-irods", "a" * 254])
def test_secret_names_must_be_dns_subdomains(name: str) -> None:
    raw = defaulted_spec()
    raw["destination"]["connectionSecret"]["name"] = name
    assert problem_fields(raw) == ["spec.destination.connectionSecret.name"]


def test_secret_key_names() -> None:
    raw = defaulted_spec()
    raw["destination"]["connectionSecret"]["passwordKey"] = "pass word"
    assert problem_fields(raw) == ["spec.destination.connectionSecret.passwordKey"]


# --- The incumbent's operation x deleteMode matrix, all 24 cases -------------------------------
# Written out independently of spec.COMPATIBLE_DELETE_MODES, from irods-capability-automated-ingest
# 0.7.0 utils.delete_mode_is_compatible_with_operation; numbers are that release's
# test/test_delete_modes.py case numbers.
OPS = Operation
DM = DeleteMode
MATRIX: list[tuple[int, Operation, DeleteMode, bool]] = [
    (0, OPS.NO_OP, DM.DO_NOT_DELETE, True),
    (1, OPS.NO_OP, DM.UNREGISTER, False),
    (2, OPS.NO_OP, DM.TRASH, False),
    (3, OPS.NO_OP, DM.NO_TRASH, False),
    (4, OPS.REGISTER_SYNC, DM.DO_NOT_DELETE, True),
    (5, OPS.REGISTER_SYNC, DM.UNREGISTER, True),
    (6, OPS.REGISTER_SYNC, DM.TRASH, False),
    (7, OPS.REGISTER_SYNC, DM.NO_TRASH, False),
    (8, OPS.REGISTER_AS_REPLICA_SYNC, DM.DO_NOT_DELETE, True),
    (9, OPS.REGISTER_AS_REPLICA_SYNC, DM.UNREGISTER, True),
    (10, OPS.REGISTER_AS_REPLICA_SYNC, DM.TRASH, False),
    (11, OPS.REGISTER_AS_REPLICA_SYNC, DM.NO_TRASH, False),
    (12, OPS.PUT, DM.DO_NOT_DELETE, True),
    (13, OPS.PUT, DM.UNREGISTER, False),
    (14, OPS.PUT, DM.TRASH, False),
    (15, OPS.PUT, DM.NO_TRASH, False),
    (16, OPS.PUT_SYNC, DM.DO_NOT_DELETE, True),
    (17, OPS.PUT_SYNC, DM.UNREGISTER, False),
    (18, OPS.PUT_SYNC, DM.TRASH, True),
    (19, OPS.PUT_SYNC, DM.NO_TRASH, True),
    (20, OPS.PUT_APPEND, DM.DO_NOT_DELETE, True),
    (21, OPS.PUT_APPEND, DM.UNREGISTER, False),
    (22, OPS.PUT_APPEND, DM.TRASH, True),
    (23, OPS.PUT_APPEND, DM.NO_TRASH, True),
]


def test_matrix_table_covers_every_pair_once() -> None:
    assert len(MATRIX) == 24
    assert {(op, mode) for _, op, mode, _ in MATRIX} == {
        (op, mode) for op in Operation for mode in DeleteMode
    }
    assert [case for case, *_ in MATRIX] == list(range(24))


@pytest.mark.parametrize(
    ("case", "operation", "delete_mode", "compatible"), MATRIX, ids=[f"case{c[0]}" for c in MATRIX]
)
def test_operation_delete_mode_matrix(
    case: int, operation: Operation, delete_mode: DeleteMode, compatible: bool
) -> None:
    raw = defaulted_spec(operation=str(operation), deleteMode=str(delete_mode))
    if operation is Operation.REGISTER_AS_REPLICA_SYNC:
        raw["destination"]["resource"] = "replResc"

    assert delete_mode_is_compatible(operation, delete_mode) is compatible
    problems = spec_problems(raw)
    if compatible:
        assert problems == []
    else:
        assert [p.field for p in problems] == ["spec.deleteMode"]
        assert str(operation) in problems[0].message and str(delete_mode) in problems[0].message
        assert "DoNotDelete" in problems[0].fix


@pytest.mark.parametrize("delete_mode", [DM.UNREGISTER, DM.TRASH, DM.NO_TRASH])
def test_s3_sources_take_the_delete_modes_their_operation_allows(delete_mode: DeleteMode) -> None:
    operation = OPS.REGISTER_SYNC if delete_mode is DM.UNREGISTER else OPS.PUT_SYNC
    raw = defaulted_spec(source=s3_source(), operation=str(operation), deleteMode=str(delete_mode))
    assert spec_problems(raw) == []

    wrong = OPS.PUT_SYNC if delete_mode is DM.UNREGISTER else OPS.REGISTER_SYNC
    problems = spec_problems(defaulted_spec(source=s3_source(), operation=str(wrong), deleteMode=str(delete_mode)))
    assert [p.field for p in problems] == ["spec.deleteMode"]
    assert str(wrong) in problems[0].message


def test_register_as_replica_needs_a_resource_or_a_handler() -> None:
    raw = defaulted_spec(operation="RegisterAsReplicaSync")
    assert problem_fields(raw) == ["spec.destination.resource"]

    with_handler = defaulted_spec(operation="RegisterAsReplicaSync", handler={"configMapRef": {"name": "h"}})
    assert spec_problems(with_handler) == []


# --- Workers, filters, schedule, metadata -----------------------------------------------------
def test_min_replicas_above_max() -> None:
    raw = defaulted_spec()
    raw["workers"].update(minReplicas=3, maxReplicas=2)
    assert problem_fields(raw) == ["spec.workers.minReplicas"]
    raw["workers"].update(minReplicas=2)
    assert spec_problems(raw) == []


def test_every_regex_list_is_compiled_and_indexed() -> None:
    raw = defaulted_spec(
        filter={
            "excludeNames": ["ok", "[bad"],
            "excludeDirectories": ["*bad"],
            "includeNames": ["fine", "also(fine)", "(bad"],
            "excludeTypes": ["fifo"],
        }
    )
    assert problem_fields(raw) == [
        "spec.filter.excludeTypes[0]",
        "spec.filter.excludeNames[1]",
        "spec.filter.excludeDirectories[0]",
        "spec.filter.includeNames[2]",
    ]


@pytest.mark.parametrize(
    "schedule", ["*/15 * * * *", "0 2 * * 1-5", "0 0 29 2 *", "0 3 * * MON", "@daily", "@hourly"]
)
def test_valid_schedules(schedule: str) -> None:
    assert check_schedule(schedule) is None


@pytest.mark.parametrize(
    "schedule",
    [
        "every day",
        "0 0 * * * *",  # six fields: croniter would read seconds
        "61 * * * *",
        "0 0 30 2 *",  # parses, never fires
        "@reboot",
        "CRON_TZ=UTC 0 * * * *",
        "H * * * *",
    ],
)
def test_invalid_schedules(schedule: str) -> None:
    assert check_schedule(schedule) is not None
    assert problem_fields(defaulted_spec(schedule=schedule)) == ["spec.schedule"]


def test_empty_schedule_means_run_once() -> None:
    assert parse_spec(defaulted_spec(schedule="")).schedule is None


def test_next_fire_time_is_strictly_after_and_in_utc() -> None:
    after = datetime(2024, 5, 1, 2, 0, tzinfo=UTC)
    assert next_fire_time("0 2 * * *", after) == datetime(2024, 5, 2, 2, 0, tzinfo=UTC)
    assert next_fire_time("*/15 * * * *", after) == datetime(2024, 5, 1, 2, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "template",
    ["plain", "{path}", "{job}/{run}: {relativePath} {size} {mtime}", "{{literal}}", "{logicalPath}"],
)
def test_valid_metadata_templates(template: str) -> None:
    raw = defaulted_spec(metadata=[{"attribute": "a", "value": template}])
    assert spec_problems(raw) == []


@pytest.mark.parametrize(
    "template",
    ["{secret}", "{path!r}", "{size:>10}", "{name.__class__}", "{path[0]}", "{unclosed", "}", "{}"],
)
def test_invalid_metadata_templates(template: str) -> None:
    raw = defaulted_spec(metadata=[{"attribute": "ok", "value": "ok"}, {"attribute": "a", "value": template}])
    assert problem_fields(raw) == ["spec.metadata[1].value"]


def test_metadata_attribute_and_value_are_required() -> None:
    raw = defaulted_spec(metadata=[{"attribute": "a"}, {"value": "v", "units": "u"}])
    assert problem_fields(raw) == ["spec.metadata[0].value", "spec.metadata[1].attribute"]


# --- Whole objects ----------------------------------------------------------------------------
def test_parse_syncjob_checks_the_name_with_the_spec() -> None:
    body = {"metadata": {"name": "x" * 64, "namespace": "ns"}, "spec": defaulted_spec(schedule="bad")}

    with pytest.raises(InvalidSpecError) as raised:
        parse_syncjob(body)

    assert [p.field for p in raised.value.problems] == ["metadata.name", "spec.schedule"]
    ok = {"metadata": {"name": "x" * 63}, "spec": defaulted_spec()}
    assert isinstance(parse_syncjob(ok), SyncJobSpec)


def test_parsing_does_not_alias_the_input() -> None:
    raw = defaulted_spec()
    raw["workers"]["resources"] = {"limits": {"cpu": "1"}}
    before = copy.deepcopy(raw)

    spec = parse_spec(raw)
    raw["workers"]["resources"]["limits"]["cpu"] = "2"

    assert before != raw
    assert spec.workers.resources == {"limits": {"cpu": "1"}}


def test_s3_transfer_settings_are_parsed_and_bounded() -> None:
    raw = defaulted_spec(source=s3_source(transfer={"partSizeMiB": 16, "partsInFlight": 8}))
    source = parse_spec(raw).source
    assert isinstance(source, S3Source)
    assert (source.transfer.part_size_mib, source.transfer.parts_in_flight) == (16, 8)
    assert source.transfer.parallel_threshold_mib is None and source.transfer.list_page_size is None

    bad = defaulted_spec(source=s3_source(transfer={"partsInFlight": 0, "listPageSize": 5000, "chunk": 1}))
    with pytest.raises(InvalidSpecError) as raised:
        parse_spec(bad)
    assert sorted(p.field for p in raised.value.problems) == [
        "spec.source.s3.transfer.chunk",
        "spec.source.s3.transfer.listPageSize",
        "spec.source.s3.transfer.partsInFlight",
    ]
