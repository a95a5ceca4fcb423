"""What a kubectl user sees of a SyncJob, read from the real API server: the printed columns
(the server-side Table that ``kubectl get`` prints), the Events with their counts and types,
and an operator process of a test's own settings.

Shared by the operator's end-to-end tests of issue 19 (tests/operator/test_*_e2e.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from kubernetes import client as k8s

from irods_ingest_operator.constants import GROUP, PLURAL, VERSION
from irods_ingest_testkit.processes import stop_process
from testsupport.kube import ControlPlane
from testsupport.operator_fixtures import DIAGNOSTICS, OperatorProcess

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@dataclass(frozen=True)
class Column:
    name: str
    priority: int  # 0: `kubectl get`; 1: only `kubectl get -o wide`
    value: Any


def printed_columns(api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Column]:
    """The columns the API server prints for the SyncJob (what `kubectl get sj -o wide` shows)."""
    method, url, headers, body, post = api.param_serialize(
        "GET", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}",
        header_params={"Accept": TABLE_ACCEPT}, auth_settings=["BearerToken"])
    response = api.call_api(method, url, header_params=headers, body=body, post_params=post)
    response.read()
    table = cast(dict[str, Any], json.loads(response.data or b"{}"))
    definitions = table["columnDefinitions"]
    [row] = table["rows"]
    return {d["name"]: Column(d["name"], int(d.get("priority", 0)), cell)
            for d, cell in zip(definitions, row["cells"], strict=True)}


@dataclass(frozen=True)
class SeenEvent:
    reason: str
    message: str
    type: str
    count: int


def events_of(api: k8s.ApiClient, namespace: str, name: str) -> list[SeenEvent]:
    items = k8s.CoreV1Api(api).list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
    return [SeenEvent(e.reason or "", e.message or "", e.type or "", int(e.count or 1)) for e in items]


@contextmanager
def operator_with(plane: ControlPlane, namespace: str, redis_url: str, log: Path,
                  **settings: str) -> Iterator[OperatorProcess]:
    """The operator as its own process, with ``IRODS_INGEST_OPERATOR_<NAME>`` settings of the test's own."""
    env = plane.operator_env(namespace, redis_url)
    env.update({f"IRODS_INGEST_OPERATOR_{key}": value for key, value in settings.items()})
    process = OperatorProcess(env, log)

    def tail() -> str:
        return "operator log (tail):\n" + "\n".join(log.read_text(errors="replace").splitlines()[-60:])

    DIAGNOSTICS.append(tail)
    try:
        yield process
    finally:
        DIAGNOSTICS.remove(tail)
        stop_process(process.process)
