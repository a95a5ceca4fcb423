"""deploy/examples/ are valid as shipped: the real API server accepts every object with a
server-side dry run (schema, defaults, admission; nothing stored), and the operator's own spec
checks (cross-field rules the 1.20 CRD cannot express) find no problem in the SyncJobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from irods_ingest_operator.constants import API_VERSION, KIND
from irods_ingest_operator.spec import parse_syncjob

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
EXAMPLES: Final = sorted((REPO_ROOT / "deploy" / "examples").glob("*.yaml"))
REQUIRED: Final = {"filesystem-pvc", "scheduled", "s3", "handler-configmap"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _empty_strings(value: Any, where: str = "") -> list[str]:
    if value == "":
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _empty_strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _empty_strings(v, f"{where}[{i}]")]
    return []


def test_the_documented_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= REQUIRED
    kinds = {doc["kind"] for path in EXAMPLES for doc in _documents(path)}
    assert {"SyncJob", "PersistentVolumeClaim", "ConfigMap"} <= kinds


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_syncjobs_pass_the_operators_checks(path: Path) -> None:
    jobs = [doc for doc in _documents(path) if doc["kind"] == KIND]
    assert jobs, f"{path.name} has no SyncJob"
    for job in jobs:
        assert job["apiVersion"] == API_VERSION
        assert "namespace" not in job["metadata"], "examples apply to the namespace kubectl is given"
        assert not _empty_strings(job), "the test apiserver turns \"\" into null; leave the field out"
        parse_syncjob(job)  # raises InvalidSpecError naming each problem


@pytest.mark.kube
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_applies_with_server_side_dry_run(path: Path, kube_api: k8s.ApiClient, kube_namespace: str) -> None:
    dynamic = DynamicClient(kube_api)  # type: ignore[no-untyped-call]
    for document in _documents(path):
        resource = dynamic.resources.get(api_version=document["apiVersion"], kind=document["kind"])
        accepted = resource.create(body=document, namespace=kube_namespace, dry_run="All").to_dict()
        assert accepted["metadata"]["name"] == document["metadata"]["name"]
        if document["kind"] == KIND:
            spec = accepted["spec"]
            # The CRD's defaults were applied by the server, and the operator parses the result.
            assert spec["deleteMode"] == document["spec"].get("deleteMode", "DoNotDelete")
            assert spec["workers"]["filesPerTask"] == document["spec"].get("workers", {}).get("filesPerTask", 50)
            parse_syncjob(accepted)
        # A dry run stores nothing.
        listing = resource.get(namespace=kube_namespace).to_dict()
        assert document["metadata"]["name"] not in [item["metadata"]["name"] for item in listing["items"]]
