"""Invalid SyncJob specs: each one is refused naming the field path, what is wrong and the fix.

Specs go through the operator's own parser (``parse_syncjob``), which checks everything
again for specs that never met an API server and adds the cross-field rules the CRD
schema cannot express. The API server's own 422 rejections of the same manifests are in
``tests/operator/test_crd.py`` and ``tests/operator/test_operator_e2e.py``; the exhaustive
per-field matrices are in ``tests/operator/test_spec.py``. Here: one hostile value per
field, with the exact message a user reads in the ``Stalled`` condition.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from irods_ingest_operator.spec import InvalidSpecError, SyncJobSpec, parse_syncjob

Body = dict[str, Any]


def valid_body() -> Body:
    """A minimal SyncJob as a user writes it (no server defaults)."""
    return {
        "metadata": {"name": "ingest", "namespace": "lab"},
        "spec": {
            "source": {"path": "/data"},
            "destination": {"collection": "/tempZone/home/rods/in", "connectionSecret": {"name": "irods"}},
        },
    }


def spec(**changes: Any) -> Callable[[Body], None]:
    return lambda body: body["spec"].update(changes)


def source(**changes: Any) -> Callable[[Body], None]:
    return lambda body: body["spec"]["source"].update(changes)


def destination(**changes: Any) -> Callable[[Body], None]:
    return lambda body: body["spec"]["destination"].update(changes)


def drop(section: str) -> Callable[[Body], None]:
    return lambda body: body["spec"].pop(section)


# (id, change, the field path named, a fragment of the message, a fragment of the fix)
CASES: list[tuple[str, Callable[[Body], None], str, str, str]] = [
    ("missing-source", drop("source"), "spec.source", "is required", "set source.path"),
    ("missing-destination", drop("destination"), "spec.destination", "is required", "set destination.collection"),
    ("path-and-s3", source(s3={"bucket": "raw"}), "spec.source", "sets both path and s3", "exactly one"),
    ("relative-source", source(path="data"), "spec.source.path", "must be absolute", "give an absolute directory path"),
    ("root-source", source(path="/"), "spec.source.path", "must not be the root directory", "give the directory to sync"),
    ("dotdot-source", source(path="/data/../etc"), "spec.source.path", "must be normalised (no '.', '..'", "write it as '/etc'"),
    ("bad-bucket", spec(source={"s3": {"bucket": "Bad_Bucket"}}), "spec.source.s3.bucket",
     "'Bad_Bucket' is not a valid bucket name", "lowercase letters"),
    ("s3-plain-http", spec(source={"s3": {"bucket": "raw", "endpoint": "http://s3:9000"}}), "spec.source.s3.endpoint",
     "plain http", "insecure: true"),
    ("unknown-operation", spec(operation="Copy"), "spec.operation", "'Copy' is not allowed", "use one of: RegisterSync"),
    ("unknown-delete-mode", spec(deleteMode="Shred"), "spec.deleteMode", "'Shred' is not allowed", "DoNotDelete"),
    ("put-with-trash", spec(operation="Put", deleteMode="Trash"), "spec.deleteMode",
     "Trash cannot be used with operation Put", "with Put use deleteMode DoNotDelete"),
    ("replica-without-resource", spec(operation="RegisterAsReplicaSync"), "spec.destination.resource",
     "is required by operation RegisterAsReplicaSync", "to_resource()"),
    ("relative-target", destination(collection="tempZone/home"), "spec.destination.collection",
     "must be an absolute iRODS path", "/tempZone/home/alice/ingest"),
    ("root-target", destination(collection="/"), "spec.destination.collection", "must not be the root collection",
     "absolute collection"),
    ("dotdot-target", destination(collection="/tempZone/../x"), "spec.destination.collection",
     "'.' or '..' segments", "absolute collection"),
    ("missing-secret", lambda body: body["spec"]["destination"].pop("connectionSecret"),
     "spec.destination.connectionSecret", "is required", "name the Secret"),
    ("bad-secret-name", destination(connectionSecret={"name": "Bad_Secret"}), "spec.destination.connectionSecret.name",
     "not a valid Secret name", "lower-case letters"),
    ("negative-replicas", spec(workers={"minReplicas": -1}), "spec.workers.minReplicas", "is -1",
     "in range"),
    ("min-above-max", spec(workers={"minReplicas": 5, "maxReplicas": 2}), "spec.workers.minReplicas",
     "above maxReplicas 2", "lower minReplicas or raise maxReplicas"),
    ("files-per-task-zero", spec(workers={"filesPerTask": 0}), "spec.workers.filesPerTask",
     "between 1 and 10000", "in range"),
    ("concurrency-string", spec(workers={"concurrency": "4"}), "spec.workers.concurrency", "must be an integer",
     "whole number"),
    ("bad-image", spec(workers={"image": "has space"}), "spec.workers.image", "not an image reference",
     "registry/irods-ingest"),
    ("bad-cron", spec(schedule="every day"), "spec.schedule", "has 2 fields", "'0 2 * * *'"),
    ("six-field-cron", spec(schedule="0 0 0 * * *"), "spec.schedule", "has 6 fields", "five cron fields"),
    ("bad-regex", spec(filter={"excludeNames": ["("]}), "spec.filter.excludeNames[0]",
     "not a valid regular expression", "fix the expression"),
    ("bad-directory-regex", spec(filter={"excludeDirectories": ["[a-"]}), "spec.filter.excludeDirectories[0]",
     "not a valid regular expression", "fix the expression"),
    ("unknown-file-type", spec(filter={"excludeTypes": ["symlink"]}), "spec.filter.excludeTypes[0]",
     "'symlink' is not a file type", "link"),
    ("handler-without-name", spec(handler={"configMapRef": {}}), "spec.handler.configMapRef.name", "is required",
     "set spec.handler.configMapRef.name"),
    ("unknown-template-field", spec(metadata=[{"attribute": "a", "value": "{nosuch}"}]), "spec.metadata[0].value",
     "unknown field '{nosuch}'", "{relativePath}"),
    ("unknown-symlink-policy", spec(symlinks="Ignore"), "spec.symlinks", "'Ignore' is not allowed", "Register"),
    ("suspend-as-string", spec(suspend="yes"), "spec.suspend", "must be true or false", "unquoted"),
    ("typo-field", spec(sourcePath="/data"), "spec.sourcePath", "is not a known field", "remove it"),
    ("name-too-long", lambda body: body["metadata"].update(name="x" * 64), "metadata.name", "is 64 characters",
     "at most 63"),
]


def test_the_valid_body_parses() -> None:
    assert isinstance(parse_syncjob(valid_body()), SyncJobSpec)  # so each case below fails for its one change


@pytest.mark.parametrize(("change", "field", "message", "fix"), [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_invalid_spec_names_the_field_and_the_fix(change: Callable[[Body], None], field: str, message: str,
                                                  fix: str) -> None:
    body = copy.deepcopy(valid_body())
    change(body)
    with pytest.raises(InvalidSpecError) as raised:
        parse_syncjob(body)
    problems = raised.value.problems
    assert [p.field for p in problems] == [field], problems  # exactly this field, nothing unrelated
    assert message in problems[0].message and fix in problems[0].fix, problems[0]
    # The one-line summary (the Stalled condition's message) carries all three parts.
    assert str(raised.value) == f"{field}: {problems[0].message} ({problems[0].fix})"
