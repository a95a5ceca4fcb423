"""The operator on the real API server: its process, a SyncJob client, and the pods' stand-in.

Shared by the operator end-to-end tests and the attack suite (tests/security): a real
kube-apiserver and controller-manager, real redis-server, the iRODS test server, the operator
as its own process, and a local stand-in for the kubelet (``testsupport.kubelet``) that runs
each worker Deployment's replicas as local processes with the pod's environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from irods_ingest_operator.constants import GROUP, PLURAL, VERSION
from irods_ingest_testkit.processes import stop_process
from testsupport.irods_fixtures import IrodsEnv
from testsupport.kube import ControlPlane
from testsupport.kubelet import LocalKubelet, local_kubelet

# What to print when a wait times out (set by the fixtures of the running test).
DIAGNOSTICS: list[Callable[[], str]] = []


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    details = "\n".join(describe() for describe in DIAGNOSTICS)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{details}")


class Cluster:
    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.objects = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)
        self.apps = k8s.AppsV1Api(api)

    def create_syncjob(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SyncJob", "metadata": {"name": name}, "spec": spec}
        return self.objects.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)  # type: ignore[no-any-return]

    def get(self, name: str) -> dict[str, Any]:
        return self.objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)  # type: ignore[no-any-return]

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec})

    def delete(self, name: str) -> None:
        self.objects.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        for condition in self.get(name).get("status", {}).get("conditions", []):
            if condition["type"] == kind:
                return condition  # type: ignore[no-any-return]
        return None

    def events(self, name: str) -> list[str]:
        items = self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={name}").items
        return [e.reason for e in items]


class OperatorProcess:
    """The operator as its own process; ``restart()`` kills it (SIGKILL) and starts it again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as handle:
            return subprocess.Popen([sys.executable, "-m", "irods_ingest_operator.main"], env=self.env,
                                    stdout=handle, stderr=subprocess.STDOUT)

    def restart(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = self._start()

    def poll(self) -> int | None:
        return self.process.poll()


@pytest.fixture
def operator_process(kube_control_plane: ControlPlane, kube_namespace: str, redis_url: str,
                     tmp_path: Path) -> Iterator[OperatorProcess]:
    log = tmp_path / "operator.log"
    env = kube_control_plane.operator_env(kube_namespace, redis_url)
    env["IRODS_INGEST_OPERATOR_LOG_LEVEL"] = "INFO"
    process = OperatorProcess(env, log)
    DIAGNOSTICS.append(lambda: "operator log (tail):\n" + "\n".join(
        line for line in log.read_text(errors="replace").splitlines()[-60:] if "Timer 'refresh' succeeded" not in line))
    yield process
    DIAGNOSTICS.clear()
    stop_process(process.process)


@pytest.fixture
def cluster(kube_api: k8s.ApiClient, kube_namespace: str, irods_env: IrodsEnv) -> Cluster:
    c = Cluster(kube_api, kube_namespace)
    DIAGNOSTICS.append(lambda: "syncjobs:\n" + json.dumps(
        [{"name": i["metadata"]["name"], "status": i.get("status")} for i in
         c.objects.list_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL)["items"]], indent=1)
        + "\ndeployments: " + str([(d.metadata.name, d.spec.replicas) for d in c.apps.list_namespaced_deployment(kube_namespace).items]))
    environment = {"irods_host": irods_env.host, "irods_port": irods_env.port, "irods_user_name": irods_env.user,
                   "irods_zone_name": irods_env.zone}
    c.core.create_namespaced_secret(kube_namespace, k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="irods-connection"),
        string_data={"irods_environment.json": json.dumps(environment), "password": irods_env.password},
    ))
    return c


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A scratch directory outside /tmp (worker pods reserve /tmp, and the spec refuses it)."""
    path = Path(tempfile.mkdtemp(prefix="irods-ingest-e2e-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def kubelet(kube_api: k8s.ApiClient, kube_namespace: str, tmp_path: Path) -> Iterator[LocalKubelet]:
    with local_kubelet(kube_api, kube_namespace, tmp_path / "pods") as running:
        DIAGNOSTICS.append(lambda: f"kubelet errors: {running.errors[-5:]}\nworker logs (tail):\n"
                           + "\n".join(running.logs(name)[-3000:] for name in running.replicas))
        yield running


def scrape_or_none(port: int) -> dict[str, float] | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def make_tree(root: Path, count: int) -> None:
    for i in range(count):
        path = root / f"dir{i % 3}" / f"file{i}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100 + i))


def job_spec(source: Path, collection: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": {"path": str(source), "volume": {"hostPath": {"path": str(source), "type": "Directory"}}},
        "destination": {"collection": collection, "connectionSecret": {"name": "irods-connection"}},
        "operation": "PutSync",
        "workers": {"minReplicas": 0, "maxReplicas": 2, "filesPerTask": 4},
    }
    spec.update(extra)
    return spec
