"""A stand-in for the kubelet: runs worker Deployments' containers as local processes.

The project's control plane has no nodes, so pods never run. This stand-in watches the
worker Deployments of one namespace (by polling the API) and keeps ``spec.replicas``
local processes of each running, one per replica, started from the container's command
with the pod's environment resolved the way a kubelet would: ``value``, ``secretKeyRef``
and ``fieldRef`` entries, and Secret volumes materialised into a scratch directory (env
values pointing into a mount path are rewritten to it). ``hostPath`` volumes must be
mounted at their own path (tests arrange that), so the source tree is shared as is.

Only what the worker Deployments use is supported; anything else fails loudly.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from kubernetes import client as k8s

WORKER_LABEL_SELECTOR = "app.kubernetes.io/component=worker,app.kubernetes.io/name=irods-ingest-worker"


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class LocalKubelet:
    api: k8s.ApiClient
    namespace: str
    work_dir: Path
    interval: float = 0.2
    replicas: dict[str, list[Replica]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    max_seen: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> LocalKubelet:
        self._thread = threading.Thread(target=self._loop, name="local-kubelet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for name in list(self.replicas):
            self._scale(name, [], 0)

    def running(self, deployment: str) -> int:
        return sum(1 for r in self.replicas.get(deployment, []) if r.process.poll() is None)

    def logs(self, deployment: str) -> str:
        return "\n".join(r.log.read_text(errors="replace") for r in self.replicas.get(deployment, []) if r.log.exists())

    # ------------------------------------------------------------------ loop
    def _loop(self) -> None:
        apps = k8s.AppsV1Api(self.api)
        while not self._stop.wait(self.interval):
            try:
                listing = apps.list_namespaced_deployment(self.namespace, label_selector=WORKER_LABEL_SELECTOR)
            except Exception as exc:  # the API may be briefly unavailable; try again next round
                self.errors.append(f"list: {exc}")
                continue
            present = set()
            for deployment in listing.items:
                name = deployment.metadata.name
                present.add(name)
                wanted = int(deployment.spec.replicas or 0)
                self.max_seen[name] = max(self.max_seen.get(name, 0), wanted)
                live = [r for r in self.replicas.get(name, []) if r.process.poll() is None]
                try:
                    self._scale(name, live, wanted, deployment)
                except Exception as exc:
                    self.errors.append(f"{name}: {exc}")
            for name in set(self.replicas) - present:
                self._scale(name, [r for r in self.replicas[name] if r.process.poll() is None], 0)

    def _scale(self, name: str, live: list[Replica], wanted: int, deployment: Any = None) -> None:
        while len(live) > wanted:
            replica = live.pop()
            replica.process.send_signal(signal.SIGTERM)  # the kubelet's graceful stop
            try:
                replica.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                replica.process.kill()
        while len(live) < wanted and deployment is not None:
            live.append(self._launch(deployment, len(live)))
        self.replicas[name] = live

    # ------------------------------------------------------------------ pods
    def _launch(self, deployment: Any, index: int) -> Replica:
        pod_spec = deployment.spec.template.spec
        container = pod_spec.containers[0]
        pod_name = f"{deployment.metadata.name}-{index}-{os.urandom(3).hex()}"
        pod_dir = self.work_dir / pod_name
        pod_dir.mkdir(parents=True)
        mount_map = self._volumes(pod_spec, container, pod_dir)
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1"}
        for item in container.env or []:
            env[item.name] = self._env_value(item, pod_name)
        # Rewrite values that point into a mount (longest mount path first, each value once).
        for key, value in list(env.items()):
            for mount_path in sorted(mount_map, key=len, reverse=True):
                if value == mount_path or value.startswith(mount_path + "/"):
                    env[key] = str(mount_map[mount_path]) + value[len(mount_path):]
                    break
        command = list(container.command or []) + list(container.args or [])
        if command[:1] == ["irods-ingest"]:
            command = [sys.executable, "-m", "irods_ingest", *command[1:]]
        if "--metrics-port" in command:
            # Pods have a network namespace each; local replicas share one, so each takes a free port.
            command[command.index("--metrics-port") + 1] = "0"
        log = pod_dir / "log.txt"
        handle = log.open("wb")
        process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return Replica(process, log)

    def _volumes(self, pod_spec: Any, container: Any, pod_dir: Path) -> dict[str, Path]:
        volumes = {v.name: v for v in pod_spec.volumes or []}
        mapping: dict[str, Path] = {}
        for mount in container.volume_mounts or []:
            volume = volumes[mount.name]
            if volume.secret is not None:
                local = pod_dir / "volumes" / mount.name
                local.mkdir(parents=True)
                secret = k8s.CoreV1Api(self.api).read_namespaced_secret(volume.secret.secret_name, self.namespace)
                for key, value in (secret.data or {}).items():
                    (local / key).write_bytes(base64.b64decode(value))
                mapping[mount.mount_path] = local
            elif volume.empty_dir is not None:
                local = pod_dir / "volumes" / mount.name
                local.mkdir(parents=True)
                mapping[mount.mount_path] = local
            elif volume.host_path is not None:
                if volume.host_path.path != mount.mount_path:
                    raise ValueError(f"hostPath {volume.host_path.path} must be mounted at its own path in tests")
            else:
                raise ValueError(f"volume {mount.name}: only secret, emptyDir and hostPath are supported here")
        return mapping

    def _env_value(self, item: Any, pod_name: str) -> str:
        if item.value_from is None:
            return cast(str, item.value or "")
        source = item.value_from
        if source.secret_key_ref is not None:
            ref = source.secret_key_ref
            secret = k8s.CoreV1Api(self.api).read_namespaced_secret(ref.name, self.namespace)
            return base64.b64decode((secret.data or {})[ref.key]).decode()
        if source.field_ref is not None:
            return {"metadata.name": pod_name, "metadata.namespace": self.namespace}[source.field_ref.field_path]
        raise ValueError(f"env {item.name}: unsupported valueFrom")


@contextmanager
def local_kubelet(api: k8s.ApiClient, namespace: str, work_dir: Path) -> Iterator[LocalKubelet]:
    kubelet = LocalKubelet(api, namespace, work_dir).start()
    try:
        yield kubelet
    finally:
        kubelet.stop()
