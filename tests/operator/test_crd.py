"""The SyncJob CRD: structural for the 1.20 API server, and in step with constants.py and the spec package."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # via kubernetes-validate; no stubs installed
import kubernetes_validate
import pytest
import yaml

from irods_ingest_operator import constants, spec
from irods_ingest_operator.constants import (
    ConditionStatus,
    DeleteMode,
    FileType,
    ImagePullPolicy,
    Operation,
    Phase,
    SymlinkPolicy,
)
from irods_ingest_operator.spec import check_collection, parse_spec, spec_problems

CRD_PATH = Path(__file__).resolve().parents[2] / "deploy" / "crds" / "syncjobs.ingest.irods.dev.yaml"
# Keywords an apiextensions.k8s.io/v1 structural schema must not carry (or that 1.20 ignores).
FORBIDDEN_KEYWORDS = {
    "$ref",
    "definitions",
    "dependencies",
    "patternProperties",
    "id",
    "x-kubernetes-validations",
}


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return loaded


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    versions = crd["spec"]["versions"]
    assert len(versions) == 1
    result: dict[str, Any] = versions[0]
    return result


@pytest.fixture(scope="module")
def schema(version: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node below and including ``node``, with a dotted path."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def closed(schema_node: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown properties forbidden where the API server would prune them."""
    result = copy.deepcopy(schema_node)
    for _, node in walk(result):
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    return result


def apply_defaults(value: Any, node: dict[str, Any]) -> Any:
    """The API server's defaulting: fill absent properties from `default`, then recurse (so a
    defaulted `{}` gets its own children's defaults)."""
    if isinstance(value, dict):
        for name, child in node.get("properties", {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
        for name, item in value.items():
            if name in node.get("properties", {}):
                apply_defaults(item, node["properties"][name])
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            apply_defaults(item, node["items"])
    return value


def schema_errors(instance: Any, schema_node: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(closed(schema_node))
    return sorted(".".join(str(p) for p in error.absolute_path) for error in validator.iter_errors(instance))


# --- Identity ---------------------------------------------------------------------------------
def test_names_match_the_constants(crd: dict[str, Any], version: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == constants.CRD_NAME == "syncjobs.ingest.irods.dev"
    assert crd["spec"]["group"] == constants.GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["singular"]) == (
        constants.KIND,
        constants.PLURAL,
        constants.SINGULAR,
    )
    assert names["shortNames"] == list(constants.SHORT_NAMES) == ["sj"]
    assert names["categories"] == list(constants.CATEGORIES) == ["irods"]
    assert (version["name"], version["served"], version["storage"]) == (constants.VERSION, True, True)
    assert version["subresources"] == {"status": {}}


def test_crd_is_a_valid_apiextensions_v1_object(crd: dict[str, Any]) -> None:
    kubernetes_validate.validate(crd, "1.25.0", strict=True)


# --- Structural -------------------------------------------------------------------------------
def test_every_node_has_a_type_or_preserves_unknown_fields(schema: dict[str, Any]) -> None:
    untyped = [
        path
        for path, node in walk(schema)
        if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert untyped == []


def test_objects_without_properties_preserve_unknown_fields(schema: dict[str, Any]) -> None:
    # Otherwise the API server prunes everything below them (root metadata is the API's own).
    opaque = [
        path
        for path, node in walk(schema)
        if node.get("type") == "object"
        and "properties" not in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and path != "metadata"
    ]
    assert opaque == []
    preserved = {path for path, node in walk(schema) if node.get("x-kubernetes-preserve-unknown-fields")}
    assert preserved == {"spec.source.volume", "spec.workers.resources"}


def test_no_forbidden_or_ignored_keywords(schema: dict[str, Any]) -> None:
    found = [(path, key) for path, node in walk(schema) for key in node if key in FORBIDDEN_KEYWORDS]
    assert found == []
    assert not [path for path, node in walk(schema) if node.get("uniqueItems")]
    assert not [
        path for path, node in walk(schema) if "properties" in node and "additionalProperties" in node
    ]
    # The only thing the API server allows under root metadata is its type.
    assert schema["properties"]["metadata"] == {"type": "object"}


def test_every_field_has_a_description(schema: dict[str, Any]) -> None:
    undocumented = [path for path, node in walk(schema) if path != "metadata" and not node.get("description")]
    assert undocumented == []


def test_defaults_are_valid_under_their_own_schema(schema: dict[str, Any]) -> None:
    with_defaults = [(path, node) for path, node in walk(schema) if "default" in node]
    assert len(with_defaults) >= 20
    for path, node in with_defaults:
        defaulted = apply_defaults(copy.deepcopy(node["default"]), node)
        assert schema_errors(defaulted, node) == [], path
    assert not [path for path, _ in with_defaults if path.startswith("status")]


def test_list_map_conditions(schema: dict[str, Any]) -> None:
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    # A list-map key must be required on 1.20 (defaulted keys came later).
    assert "type" in conditions["items"]["required"]
    assert set(conditions["items"]["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }


def test_status_has_the_documented_shape(schema: dict[str, Any]) -> None:
    status = schema["properties"]["status"]["properties"]
    assert set(status) == {
        "observedGeneration",
        "phase",
        "progress",
        "conditions",
        "run",
        "files",
        "bytes",
        "tasks",
        "workers",
        "lastSyncTime",
        "nextSyncTime",
        "recentFailures",
        "failuresNotRecorded",
        "collections",
    }
    assert set(status["collections"]["properties"]) == {"deleted"}
    assert set(status["files"]["properties"]) == {
        "discovered",
        "synced",
        "unchanged",
        "skipped",
        "excluded",
        "failed",
        "deleted",
    }
    assert set(status["tasks"]["properties"]) == {"queued", "inFlight", "done", "failed"}
    assert set(status["run"]["properties"]) == {"id", "startTime", "completionTime", "outcome"}
    assert set(status["recentFailures"]["items"]["properties"]) == {"path", "reason", "attempts", "time"}


# --- Printer columns --------------------------------------------------------------------------
def test_printer_columns(version: dict[str, Any]) -> None:
    columns = {
        column["name"]: (column["type"], column["jsonPath"], column.get("priority", 0))
        for column in version["additionalPrinterColumns"]
    }
    assert columns == {
        "Status": ("string", ".status.phase", 0),
        "Ready": ("string", '.status.conditions[?(@.type=="Ready")].status', 0),
        "Progress": ("string", ".status.progress", 0),
        "Synced": ("integer", ".status.files.synced", 0),
        "Failed": ("integer", ".status.files.failed", 0),
        "Last Sync": ("date", ".status.lastSyncTime", 0),
        "Schedule": ("string", ".spec.schedule", 0),
        # a future time in a "date" column prints as <invalid>: kubectl shows ages only
        "Next Sync": ("string", ".status.nextSyncTime", 1),
        "Suspend": ("boolean", ".spec.suspend", 1),
        "Message": ("string", '.status.conditions[?(@.type=="Ready")].message', 1),
        "Age": ("date", ".metadata.creationTimestamp", 0),
    }
    assert [c["name"] for c in version["additionalPrinterColumns"]][:2] == ["Status", "Ready"]
    assert all(column.get("description") for column in version["additionalPrinterColumns"])


def test_the_phase_enum_is_the_operators(schema: dict[str, Any]) -> None:
    assert schema["properties"]["status"]["properties"]["phase"]["enum"] == [str(p) for p in Phase]


def test_printer_column_paths_exist_in_the_schema(schema: dict[str, Any]) -> None:
    status = schema["properties"]["status"]["properties"]
    assert status["progress"]["type"] == "string"
    assert status["files"]["properties"]["synced"]["type"] == "integer"
    assert status["files"]["properties"]["failed"]["type"] == "integer"
    assert status["lastSyncTime"]["format"] == "date-time"
    assert status["phase"]["type"] == status["nextSyncTime"]["type"] == "string"
    spec = schema["properties"]["spec"]["properties"]
    assert spec["schedule"]["type"] == "string" and spec["suspend"]["type"] == "boolean"


# --- Agreement with constants.py and the spec package (spec/model.py) -------------------------
def spec_node(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    node: dict[str, Any] = schema["properties"]["spec"]
    for part in dotted.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


@pytest.mark.parametrize(
    ("path", "enum"),
    [
        ("operation", Operation),
        ("deleteMode", DeleteMode),
        ("filter.excludeTypes.[]", FileType),
        ("symlinks", SymlinkPolicy),
        ("workers.imagePullPolicy", ImagePullPolicy),
    ],
)
def test_spec_enums_match_the_constants(schema: dict[str, Any], path: str, enum: Any) -> None:
    assert spec_node(schema, path)["enum"] == [member.value for member in enum]


def test_condition_status_enum_matches(schema: dict[str, Any]) -> None:
    condition = schema["properties"]["status"]["properties"]["conditions"]["items"]["properties"]
    assert condition["status"]["enum"] == [member.value for member in ConditionStatus]


@pytest.mark.parametrize(
    ("path", "default"),
    [
        ("operation", spec.DEFAULT_OPERATION),
        ("deleteMode", spec.DEFAULT_DELETE_MODE),
        ("symlinks", spec.DEFAULT_SYMLINKS),
        ("suspend", False),
        ("initialIngest", False),
        ("ignoreCache", False),
        ("verifyChecksum", False),
        ("handler.configMapRef.key", spec.DEFAULT_HANDLER_KEY),
        ("destination.connectionSecret.environmentKey", spec.DEFAULT_ENVIRONMENT_KEY),
        ("destination.connectionSecret.passwordKey", spec.DEFAULT_PASSWORD_KEY),
        ("source.s3.credentialsSecret.accessKeyIdKey", spec.DEFAULT_ACCESS_KEY_ID_KEY),
        ("source.s3.credentialsSecret.secretAccessKeyKey", spec.DEFAULT_SECRET_ACCESS_KEY_KEY),
        ("source.s3.insecure", False),
        ("workers", {}),
        ("workers.minReplicas", spec.DEFAULT_MIN_REPLICAS),
        ("workers.maxReplicas", spec.DEFAULT_MAX_REPLICAS),
        ("workers.concurrency", spec.DEFAULT_CONCURRENCY),
        ("workers.filesPerTask", spec.DEFAULT_FILES_PER_TASK),
        ("workers.taskTimeoutSeconds", spec.DEFAULT_TASK_TIMEOUT_SECONDS),
        ("workers.maxRetries", spec.DEFAULT_MAX_RETRIES),
        ("workers.retryBackoffSeconds", spec.DEFAULT_RETRY_BACKOFF_SECONDS),
    ],
)
def test_defaults_match_spec_py(schema: dict[str, Any], path: str, default: object) -> None:
    assert spec_node(schema, path)["default"] == default


@pytest.mark.parametrize(
    ("path", "minimum", "maximum"),
    [
        ("workers.minReplicas", 0, spec.MAX_REPLICAS_LIMIT),
        ("workers.maxReplicas", 1, spec.MAX_REPLICAS_LIMIT),
        ("workers.concurrency", 1, spec.MAX_CONCURRENCY),
        ("workers.filesPerTask", 1, spec.MAX_FILES_PER_TASK),
        ("workers.taskTimeoutSeconds", 1, spec.MAX_TASK_TIMEOUT_SECONDS),
        ("workers.maxRetries", 0, spec.MAX_RETRIES_LIMIT),
        ("workers.retryBackoffSeconds", 0, spec.MAX_RETRY_BACKOFF_SECONDS),
    ],
)
def test_bounds_match_spec_py(schema: dict[str, Any], path: str, minimum: int, maximum: int) -> None:
    node = spec_node(schema, path)
    assert (node["type"], node["minimum"], node["maximum"]) == ("integer", minimum, maximum)


MINIMAL = {
    "source": {"path": "/data"},
    "destination": {"collection": "/tempZone/home/alice", "connectionSecret": {"name": "irods"}},
}

# Uses every spec field the CRD declares (checked below), with values the operator accepts.
FULL = {
    "source": {"path": "/data", "volume": {"nfs": {"server": "nas", "path": "/export"}}},
    "destination": {
        "collection": "/tempZone/home/alice",
        "resource": "demoResc",
        "connectionSecret": {"name": "irods", "environmentKey": "env.json", "passwordKey": "pw"},
    },
    "operation": "PutSync",
    "deleteMode": "Trash",
    "filter": {
        "excludeTypes": ["socket"],
        "excludeNames": [r"\.tmp$"],
        "excludeDirectories": ["^scratch"],
        "includeNames": [".*"],
    },
    "handler": {"configMapRef": {"name": "handler", "key": "handler.py"}},
    "metadata": [{"attribute": "origin", "value": "{path}", "units": "{job}"}],
    "schedule": "0 3 * * *",
    "suspend": False,
    "runNow": "1",
    "retryFailed": "1",
    "workers": {
        "image": "img:1",
        "imagePullPolicy": "IfNotPresent",
        "minReplicas": 1,
        "maxReplicas": 3,
        "concurrency": 2,
        "resources": {"limits": {"cpu": "1"}},
        "filesPerTask": 10,
        "taskTimeoutSeconds": 30,
        "maxRetries": 1,
        "retryBackoffSeconds": 1,
    },
    "initialIngest": True,
    "ignoreCache": True,
    "symlinks": "Skip",
    "verifyChecksum": True,
}
FULL_S3_SOURCE = {
    "s3": {
        "endpoint": "https://s3.example",
        "bucket": "raw",
        "prefix": "a/",
        "region": "us-east-1",
        "insecure": False,
        "credentialsSecret": {"name": "s3", "accessKeyIdKey": "id", "secretAccessKeyKey": "secret"},
        "transfer": {"parallelThresholdMiB": 64, "partSizeMiB": 16, "partsInFlight": 8, "listPageSize": 500},
    }
}


def leaf_paths(value: Any, path: str = "") -> set[str]:
    if isinstance(value, dict) and value and not path.endswith(("volume", "resources")):
        return {p for key, item in value.items() for p in leaf_paths(item, f"{path}.{key}" if path else key)}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return {p for item in value for p in leaf_paths(item, f"{path}.[]")}
    return {path}


def schema_leaf_paths(node: dict[str, Any], path: str = "") -> set[str]:
    if "properties" in node:
        return {
            p
            for key, child in node["properties"].items()
            for p in schema_leaf_paths(child, f"{path}.{key}" if path else key)
        }
    if node.get("type") == "array" and "properties" in node["items"]:
        return schema_leaf_paths(node["items"], f"{path}.[]")
    return {path}


def test_full_example_covers_every_spec_field(schema: dict[str, Any]) -> None:
    used = leaf_paths(FULL) | leaf_paths({"source": FULL_S3_SOURCE})
    assert used == schema_leaf_paths(schema["properties"]["spec"])


@pytest.mark.parametrize("source", [FULL["source"], FULL_S3_SOURCE], ids=["path", "s3"])
def test_crd_and_parser_accept_the_same_full_spec(schema: dict[str, Any], source: dict[str, Any]) -> None:
    full = {**copy.deepcopy(FULL), "source": copy.deepcopy(source)}
    if "s3" in source:
        full["deleteMode"] = "DoNotDelete"
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": "x"},
        "spec": full,
    }

    assert schema_errors(body, schema) == []
    assert spec_problems(full) == []


def test_server_defaults_equal_parser_defaults(schema: dict[str, Any]) -> None:
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": "x"},
        "spec": copy.deepcopy(MINIMAL),
    }

    defaulted = apply_defaults(body, schema)

    assert schema_errors(defaulted, schema) == []
    assert defaulted["spec"]["workers"]["filesPerTask"] == 50
    assert defaulted["spec"]["destination"]["connectionSecret"]["passwordKey"] == "password"
    assert parse_spec(defaulted["spec"]) == parse_spec(MINIMAL)


@pytest.mark.parametrize(
    ("patch", "error_path"),
    [
        ({"operation": "Copy"}, "spec.operation"),
        ({"deleteMode": "Shred"}, "spec.deleteMode"),
        ({"symlinks": "Ignore"}, "spec.symlinks"),
        ({"workers": {"filesPerTask": 0}}, "spec.workers.filesPerTask"),
        ({"workers": {"maxReplicas": 0}}, "spec.workers.maxReplicas"),
        ({"workers": {"minReplicas": -1}}, "spec.workers.minReplicas"),
        ({"workers": {"maxRetries": 101}}, "spec.workers.maxRetries"),
        ({"filter": {"excludeTypes": ["fifo"]}}, "spec.filter.excludeTypes.0"),
        (
            {"destination": {"collection": "/", "connectionSecret": {"name": "irods"}}},
            "spec.destination.collection",
        ),
        ({"destination": {"collection": "/z/c"}}, "spec.destination"),
        ({"handler": {"configMapRef": {"name": "Bad_Name"}}}, "spec.handler.configMapRef.name"),
        ({"metadata": [{"attribute": "a"}]}, "spec.metadata.0"),
        ({"sourceTypo": {}}, "spec"),
    ],
)
def test_schema_rejects_invalid_specs_naming_the_field(
    schema: dict[str, Any], patch: dict[str, Any], error_path: str
) -> None:
    body = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": "x"},
        "spec": {**MINIMAL, **patch},
    }
    assert schema_errors(body, schema) == [error_path]


PATH_CASES = [
    "/tempZone",
    "/tempZone/home/alice",
    "/z/.hidden",
    "/z/..x",
    "/z/...",
    "/z/a b",
    "relative",
    "/",
    "/z/",
    "/z//a",
    "/z/./a",
    "/z/../a",
    "/..",
    "/.",
]


@pytest.mark.parametrize("collection", PATH_CASES)
def test_collection_pattern_agrees_with_the_operator_check(schema: dict[str, Any], collection: str) -> None:
    pattern = spec_node(schema, "destination.collection")["pattern"]
    assert (re.fullmatch(pattern, collection) is not None) == (check_collection(collection) is None)


@pytest.mark.parametrize("path", PATH_CASES)
def test_source_path_pattern_agrees_with_the_operator_check(schema: dict[str, Any], path: str) -> None:
    pattern = spec_node(schema, "source.path")["pattern"]
    raw = {**MINIMAL, "source": {"path": path}}
    assert (re.fullmatch(pattern, path) is not None) == (spec_problems(raw) == [])
