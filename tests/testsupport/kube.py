"""A real Kubernetes control plane for the test suite: etcd, kube-apiserver, kube-controller-manager.

The binaries come from ``scripts/build-control-plane.sh`` (v1.20.2, built from Debian's
source package) and Debian's ``etcd-server``. Everything binds to free loopback ports and
lives in one state directory (PKI, tokens, kubeconfigs, etcd data and each process's log).

* TLS: a throwaway CA signs the apiserver's serving certificate; the CA is also the
  ``--root-ca-file`` that the controller-manager publishes to ServiceAccount tokens.
* Authentication: static bearer tokens (``tokens.csv``): ``admin`` in ``system:masters`` plus
  any ``extra_users``; ServiceAccount tokens (legacy token secrets and the TokenRequest API).
* Authorization: RBAC only, so an unprivileged identity really is refused.

Pitfalls this class encodes:

* The garbage collector of kube-controller-manager only knows the resource types that
  existed when it started (it rediscovers every 30 s). ``crds`` are therefore applied and
  awaited before the controller-manager starts; pass ``controller_manager=False`` and call
  :meth:`ControlPlane.start_controller_manager` yourself to do more in between.
* Stop order is controller-manager, apiserver (awaited), then etcd: with etcd gone first the
  apiserver hangs in its shutdown.
* The apiserver reads ``tokens.csv`` only at start: declare users up front (``extra_users``);
  :meth:`ControlPlane.add_user` on a running plane restarts the apiserver.
* Nothing global is touched: :meth:`ControlPlane.api_client` builds its own
  ``Configuration`` and subprocesses get ``KUBECONFIG`` through :meth:`ControlPlane.env`.

Child processes get their own process group (killed as a group on stop) and are told to
die with the thread that started them, so a crashed test run leaves no control plane behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, cast

import yaml
from kubernetes import client as k8s

from irods_ingest_testkit.processes import free_port, stop_process, wait_until
from testsupport.toolcache import control_plane_bin_dir

ADMIN_USER: Final = "admin"
ETCD_BINARY: Final = "/usr/bin/etcd"
SERVICE_CLUSTER_IP_RANGE: Final = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER: Final = "https://kubernetes.default.svc"
# Controllers that need kubelets, nodes, clouds or volumes: without kubelets they only add noise.
DISABLED_CONTROLLERS: Final = (
    "nodeipam",
    "nodelifecycle",
    "route",
    "service",
    "cloud-node-lifecycle",
    "attachdetach",
    "persistentvolume-binder",
    "persistentvolume-expander",
    "ttl",
)
_CRD_GROUP: Final = "apiextensions.k8s.io"
_CRD_PLURAL: Final = "customresourcedefinitions"
_PR_SET_PDEATHSIG: Final = 1


class ControlPlaneMissing(RuntimeError):
    """A binary the control plane needs is not installed."""


class ControlPlaneError(RuntimeError):
    """The control plane failed to start; the message carries the tails of its logs."""


@dataclass(frozen=True)
class StaticUser:
    """An identity from ``tokens.csv``."""

    name: str
    groups: tuple[str, ...]
    token: str

    def csv_line(self) -> str:
        groups = ",".join(self.groups)
        return f'{self.token},{self.name},{self.name},"{groups}"'


def missing_tools(bin_dir: Path | None = None) -> list[str]:
    """What is missing to start a control plane, as readable reasons (empty when complete)."""
    bin_dir = bin_dir or control_plane_bin_dir()
    missing = [
        f"{bin_dir / name} not found"
        for name in ("kube-apiserver", "kube-controller-manager")
        if not os.access(bin_dir / name, os.X_OK)
    ]
    if not os.access(ETCD_BINARY, os.X_OK):
        missing.append(f"{ETCD_BINARY} not found (Debian package etcd-server)")
    if shutil.which("openssl") is None:
        missing.append("openssl not found")
    return missing


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback, owned by the caller.

    ``state_dir`` is kept when given (logs stay there for debugging); a temporary one is
    created and removed by :meth:`close` otherwise. ``extra_users`` maps user names to their
    groups; each gets a static token (see :meth:`token_for`, :meth:`api_client`).
    ``apiserver_args`` and ``controller_manager_args`` are appended to the command lines
    (a repeated flag overrides the default, e.g. ``--v=5``). ``audit_users``: the apiserver
    writes an audit log (:attr:`audit_log_path`, JSON lines at Metadata level) of every
    request these users make, and of nobody else's (so a test can count one identity's calls,
    say the operator's writes, and the log stays small for the rest of the suite).
    """

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        bin_dir: Path | None = None,
        etcd_binary: str = ETCD_BINARY,
        extra_users: Mapping[str, Sequence[str]] | None = None,
        crds: Sequence[Path] = (),
        controller_manager: bool = True,
        host: str = "127.0.0.1",
        apiserver_args: Sequence[str] = (),
        controller_manager_args: Sequence[str] = (),
        audit_users: Sequence[str] = (),
    ) -> None:
        self.audit_users = tuple(audit_users)
        self.bin_dir = bin_dir or control_plane_bin_dir()
        self.etcd_binary = etcd_binary
        self.crds = list(crds)
        self.run_controller_manager = controller_manager
        self.host = host
        self.apiserver_args = list(apiserver_args)
        self.controller_manager_args = list(controller_manager_args)
        self._owns_state_dir = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="irods-ingest-kube-"))
        self._users: dict[str, StaticUser] = {}
        self._add_static_user(ADMIN_USER, ("system:masters",))
        for name, groups in (extra_users or {}).items():
            self._add_static_user(name, tuple(groups))
        self.etcd_port = 0
        self.apiserver_port = 0
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._controller_manager: subprocess.Popen[bytes] | None = None

    # -- paths and identities -------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def ca_path(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def kubeconfig_path(self) -> Path:
        """Kubeconfig of the admin user (current context, namespace ``default``)."""
        return self.state_dir / "kubeconfig"

    @property
    def audit_log_path(self) -> Path:
        """The audit log of ``audit_users``' requests (exists once one was made)."""
        return self.state_dir / "audit.log"

    @property
    def server_url(self) -> str:
        if not self.apiserver_port:
            raise RuntimeError("the control plane has not been started")
        return f"https://{self.host}:{self.apiserver_port}"

    @property
    def admin_token(self) -> str:
        return self._users[ADMIN_USER].token

    @property
    def users(self) -> Mapping[str, StaticUser]:
        return dict(self._users)

    @property
    def running(self) -> bool:
        return self._apiserver is not None and self._apiserver.poll() is None

    def token_for(self, user: str) -> str:
        return self._users[user].token

    def log_path(self, component: str) -> Path:
        """``etcd``, ``kube-apiserver`` or ``kube-controller-manager``."""
        return self.state_dir / f"{component}.log"

    def add_user(self, name: str, groups: Sequence[str] = ()) -> str:
        """Declare a static user and return its token.

        The apiserver reads its token file only at start, so on a running control plane this
        restarts the apiserver (a few seconds); prefer ``extra_users`` in the constructor.
        """
        user = self._add_static_user(name, tuple(groups))
        if self.running:
            self._write_tokens()
            self.restart_apiserver()
        return user.token

    # -- clients ---------------------------------------------------------------------------

    def configuration(self, user: str = ADMIN_USER, *, token: str | None = None) -> k8s.Configuration:
        """A client ``Configuration`` for ``user`` (or for a raw bearer ``token``)."""
        config = k8s.Configuration()
        config.host = self.server_url
        config.ssl_ca_cert = str(self.ca_path)
        config.verify_ssl = True
        config.api_key = {"BearerToken": token or self.token_for(user)}
        config.api_key_prefix = {"BearerToken": "Bearer"}
        return config

    def api_client(self, user: str = ADMIN_USER, *, token: str | None = None) -> k8s.ApiClient:
        """A new ``ApiClient`` acting as ``user`` (or with ``token``); the caller closes it."""
        return k8s.ApiClient(configuration=self.configuration(user, token=token))

    def write_kubeconfig(
        self, path: Path, user: str = ADMIN_USER, *, token: str | None = None, namespace: str = "default"
    ) -> Path:
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.server_url, "certificate-authority": str(self.ca_path)},
                }
            ],
            "users": [{"name": user, "user": {"token": token or self.token_for(user)}}],
            "contexts": [
                {"name": "local", "context": {"cluster": "local", "user": user, "namespace": namespace}}
            ],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        path.chmod(0o600)
        return path

    def kubeconfig_for(self, user: str) -> Path:
        """A kubeconfig acting as ``user`` (written on first use)."""
        if user == ADMIN_USER:
            return self.kubeconfig_path
        path = self.state_dir / f"kubeconfig-{user}"
        if not path.exists():
            self.write_kubeconfig(path, user)
        return path

    def env(self, user: str = ADMIN_USER, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for a subprocess (kubectl, helm, the operator) with ``KUBECONFIG`` set."""
        environment = dict(os.environ if base is None else base)
        environment["KUBECONFIG"] = str(self.kubeconfig_for(user))
        return environment

    def operator_env(self, namespace: str, redis_url: str, user: str = ADMIN_USER) -> dict[str, str]:
        """The environment of a test operator process: this cluster (as ``user``), one watched
        namespace, fast reconciles and scale-downs, liveness and metrics on free ports."""
        from irods_ingest.store.acl import without_credentials
        from irods_ingest_testkit.processes import free_port

        environment = self.env(user)
        environment.update(
            IRODS_INGEST_OPERATOR_REDIS_URL=redis_url,
            # Without credentials: each job's workers get a Redis user of their own on it.
            IRODS_INGEST_OPERATOR_WORKER_REDIS_URL=without_credentials(redis_url),
            IRODS_INGEST_OPERATOR_NAMESPACES=namespace,
            IRODS_INGEST_OPERATOR_RECONCILE_INTERVAL="0.5",
            IRODS_INGEST_OPERATOR_SCALE_DOWN_WINDOW="2",
            IRODS_INGEST_OPERATOR_LIVENESS_ENDPOINT=f"http://127.0.0.1:{free_port()}/healthz",
            IRODS_INGEST_OPERATOR_METRICS_PORT=str(free_port()),
            # This cluster's admin allows hostPath sources: the test pods (local processes, or
            # pods on this machine's node) read source trees the tests make on this host.
            IRODS_INGEST_OPERATOR_ALLOWED_VOLUME_TYPES="hostPath,persistentVolumeClaim,nfs,csi",
        )
        return environment

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> Self:
        """Start etcd and the apiserver, apply ``crds``, then (by default) the controller-manager."""
        if self._etcd is not None or self._apiserver is not None:
            raise RuntimeError("the control plane is already started")
        problems = missing_tools(self.bin_dir)
        if problems:
            raise ControlPlaneMissing("; ".join(problems))
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._write_pki()
            self._write_tokens()
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            self.write_kubeconfig(self.kubeconfig_path)
            for crd in self.crds:
                self.apply_crd_file(crd)
            if self.run_controller_manager:
                self.start_controller_manager(timeout)
        except BaseException as exc:  # Ctrl-C included: never leave half a control plane running
            report = self.log_tails()
            self.stop()
            if not isinstance(exc, Exception):
                raise
            raise ControlPlaneError(
                f"control plane failed to start: {exc}\nstate and logs: {self.state_dir}\n{report}"
            ) from exc
        return self

    def start_controller_manager(self, timeout: float = 90.0) -> None:
        """Start kube-controller-manager; ready once the ``default`` ServiceAccount has its token.

        Its garbage collector sees only resource types that exist now (or after its 30 s
        rediscovery): create CRDs first.
        """
        if self._controller_manager is not None and self._controller_manager.poll() is None:
            return
        controllers = ",".join(["*", *(f"-{name}" for name in DISABLED_CONTROLLERS)])
        process = self._launch(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig_path}",
                "--leader-elect=false",
                f"--bind-address={self.host}",
                "--secure-port=0",
                "--port=0",
                f"--service-account-private-key-file={self.pki_dir / 'sa.key'}",
                f"--root-ca-file={self.ca_path}",
                f"--controllers={controllers}",
                # The default client-side limit (20 requests/s) makes each namespace deletion,
                # which lists and deletes every resource type, take about 5 s.
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--v=1",
                *self.controller_manager_args,
            ],
        )
        self._controller_manager = process
        wait_until(
            self._default_service_account_has_token,
            timeout=timeout,
            what="kube-controller-manager (default ServiceAccount token)",
            process=process,
            interval=0.2,
        )

    def restart_apiserver(self, timeout: float = 90.0) -> None:
        """Stop and start the apiserver on the same port (it re-reads ``tokens.csv``).

        The controller-manager is stopped around it: the apiserver's graceful shutdown waits
        (up to a minute) for open watch connections such as the controller-manager's.
        """
        controller_manager_was_running = self._controller_manager is not None
        self._stop_component("_controller_manager", "kube-controller-manager")
        self._stop_component("_apiserver", "kube-apiserver")
        self._start_apiserver(timeout, port=self.apiserver_port)
        if controller_manager_was_running:
            self.start_controller_manager(timeout)

    def stop(self) -> None:
        """Stop everything: controller-manager, apiserver (awaited), then etcd."""
        self._stop_component("_controller_manager", "kube-controller-manager")
        self._stop_component("_apiserver", "kube-apiserver")
        self._stop_component("_etcd", "etcd")

    def close(self) -> None:
        self.stop()
        if self._owns_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- custom resource definitions ------------------------------------------------------

    def apply_crd_file(self, path: Path, timeout: float = 30.0) -> list[str]:
        """Create (or replace) every CRD in a YAML file and wait until each is Established."""
        names = []
        with self.api_client() as api:
            for document in yaml.safe_load_all(path.read_text()):
                if document and document.get("kind") == "CustomResourceDefinition":
                    names.append(apply_crd(api, document, timeout=timeout))
        return names

    # -- diagnostics -----------------------------------------------------------------------

    def log_tails(self, lines: int = 30) -> str:
        parts = []
        for component in ("etcd", "kube-apiserver", "kube-controller-manager"):
            path = self.log_path(component)
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path} (last {len(tail)} lines) ---\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- internals -------------------------------------------------------------------------

    def _add_static_user(self, name: str, groups: tuple[str, ...]) -> StaticUser:
        if name in self._users:
            raise ValueError(f"user {name!r} is already declared")
        if any(char in name for char in ',"\n') or any(char in group for group in groups for char in ',"\n'):
            raise ValueError(f"user {name!r} or its groups contain characters tokens.csv cannot hold")
        user = StaticUser(name=name, groups=groups, token=secrets.token_hex(24))
        self._users[name] = user
        return user

    def _write_tokens(self) -> None:
        path = self.pki_dir / "tokens.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(user.csv_line() + "\n" for user in self._users.values()))
        path.chmod(0o600)

    def _write_pki(self) -> None:
        pki = self.pki_dir
        if (pki / "apiserver.crt").exists():
            return  # a restart in the same state directory keeps its identity
        pki.mkdir(parents=True, exist_ok=True)
        ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl(
            "req", "-x509", *ec_key, "-days", "3650", "-subj", "/CN=irods-ingest-test-ca",
            "-keyout", pki / "ca.key", "-out", pki / "ca.crt",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        _openssl(
            "req", *ec_key, "-subj", "/CN=kube-apiserver",
            "-keyout", pki / "apiserver.key", "-out", pki / "apiserver.csr",
        )  # fmt: skip
        service_ip = "10.96.0.1"  # the first address of SERVICE_CLUSTER_IP_RANGE: the `kubernetes` Service
        names = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        alt_names = ",".join(
            [f"IP:{self.host}", f"IP:{service_ip}", "DNS:localhost", *(f"DNS:{name}" for name in names)]
        )
        (pki / "apiserver.ext").write_text(
            f"subjectAltName={alt_names}\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
        )
        _openssl(
            "x509", "-req", "-in", pki / "apiserver.csr", "-CA", pki / "ca.crt", "-CAkey", pki / "ca.key",
            "-CAcreateserial", "-days", "3650", "-extfile", pki / "apiserver.ext", "-out", pki / "apiserver.crt",
        )  # fmt: skip
        # ServiceAccount token signing key pair (RS256, the default algorithm verifiers expect).
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pki / "sa.key")
        _openssl("pkey", "-in", pki / "sa.key", "-pubout", "-out", pki / "sa.pub")

    def _start_etcd(self, timeout: float) -> None:
        def launch() -> subprocess.Popen[bytes]:
            self.etcd_port = free_port(self.host)
            peer_url = f"http://{self.host}:{free_port(self.host)}"
            client_url = f"http://{self.host}:{self.etcd_port}"
            return self._launch(
                "etcd",
                [
                    self.etcd_binary,
                    "--name=default",
                    f"--data-dir={self.state_dir / 'etcd'}",
                    f"--listen-client-urls={client_url}",
                    f"--advertise-client-urls={client_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=default={peer_url}",
                ],
            )

        self._etcd = self._launch_with_retries(launch, self._etcd_healthy, timeout=timeout, what="etcd")

    def _start_apiserver(self, timeout: float, port: int = 0) -> None:
        pki = self.pki_dir

        def launch() -> subprocess.Popen[bytes]:
            self.apiserver_port = port or free_port(self.host)
            return self._launch(
                "kube-apiserver",
                [
                    str(self.bin_dir / "kube-apiserver"),
                    f"--etcd-servers=http://{self.host}:{self.etcd_port}",
                    f"--bind-address={self.host}",
                    f"--advertise-address={self.host}",
                    # Endpoints may not be loopback addresses, and no pod here ever needs the
                    # `kubernetes` Service's endpoints: do not maintain them.
                    "--endpoint-reconciler-type=none",
                    f"--secure-port={self.apiserver_port}",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--token-auth-file={pki / 'tokens.csv'}",
                    "--authorization-mode=RBAC",
                    f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                    "--allow-privileged=true",
                    "--profiling=false",
                    "--v=1",
                    *self._audit_args(),
                    *self.apiserver_args,
                ],
            )

        self._apiserver = self._launch_with_retries(
            launch, self._apiserver_ready, timeout=timeout, what="kube-apiserver", attempts=1 if port else 3
        )

    def _audit_args(self) -> list[str]:
        if not self.audit_users:
            return []
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            # One line per request, when its response is complete (a watch also logs when its
            # response starts: count requests by auditID).
            "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata", "users": list(self.audit_users)}, {"level": "None"}],
        }
        path = self.state_dir / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy, sort_keys=False))
        # The log backend's default mode is blocking: a request's line is written before its
        # response returns, so a reader that saw the response finds the line.
        return [f"--audit-policy-file={path}", f"--audit-log-path={self.audit_log_path}"]

    def _launch_with_retries(
        self,
        launch: Callable[[], subprocess.Popen[bytes]],
        ready: Callable[[], bool],
        *,
        timeout: float,
        what: str,
        attempts: int = 3,
    ) -> subprocess.Popen[bytes]:
        """Launch until ready; a process that dies early (say, a port taken meanwhile) is retried."""
        for attempt in range(1, attempts + 1):
            process = launch()
            try:
                wait_until(ready, timeout=timeout, what=what, process=process, interval=0.1)
                return process
            except RuntimeError:
                self._stop(what, process, timeout=10.0)
                if attempt == attempts:
                    raise
        raise AssertionError("unreachable")

    def _launch(self, component: str, args: list[str]) -> subprocess.Popen[bytes]:
        with self.log_path(component).open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} starting: {' '.join(args)}\n".encode())
            log.flush()
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def _stop_component(self, attribute: str, component: str) -> None:
        process: subprocess.Popen[bytes] | None = getattr(self, attribute)
        if process is not None:
            # A client that still holds a watch (an operator under test) would keep the
            # apiserver's graceful shutdown waiting for a minute: SIGKILL after a short grace.
            self._stop(component, process, timeout=10.0)
            setattr(self, attribute, None)

    @staticmethod
    def _stop(component: str, process: subprocess.Popen[bytes], *, timeout: float) -> None:
        try:
            stop_process(process, timeout=timeout)
        finally:
            # Anything the process left in its group goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    def _etcd_healthy(self) -> bool:
        body = _http_get(f"http://{self.host}:{self.etcd_port}/health")
        return body is not None and b'"health":"true"' in body.replace(b" ", b"")

    def _apiserver_ready(self) -> bool:
        return _http_get(f"{self.server_url}/readyz", token=self.admin_token, ca_path=self.ca_path) == b"ok"

    def _default_service_account_has_token(self) -> bool:
        body = _http_get(
            f"{self.server_url}/api/v1/namespaces/default/serviceaccounts/default",
            token=self.admin_token,
            ca_path=self.ca_path,
        )
        return body is not None and bool(json.loads(body).get("secrets"))


# -- helpers for any ApiClient ------------------------------------------------------------


def apply_crd(api: k8s.ApiClient, crd: Mapping[str, Any], *, timeout: float = 30.0) -> str:
    """Create or replace a CustomResourceDefinition and wait until it is Established."""
    objects = k8s.CustomObjectsApi(api)
    name: str = crd["metadata"]["name"]
    try:
        objects.create_cluster_custom_object(_CRD_GROUP, "v1", _CRD_PLURAL, dict(crd))
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise
        current = cast(dict[str, Any], objects.get_cluster_custom_object(_CRD_GROUP, "v1", _CRD_PLURAL, name))
        replacement = json.loads(json.dumps(crd))
        replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        objects.replace_cluster_custom_object(_CRD_GROUP, "v1", _CRD_PLURAL, name, replacement)
    wait_until(lambda: crd_established(api, name), timeout=timeout, what=f"CRD {name} Established")
    return name


def crd_established(api: k8s.ApiClient, name: str) -> bool:
    """True when the CRD's ``Established`` condition is ``True`` (its API is served)."""
    crd = cast(
        dict[str, Any],
        k8s.CustomObjectsApi(api).get_cluster_custom_object(_CRD_GROUP, "v1", _CRD_PLURAL, name),
    )
    conditions = crd.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


# -- module internals ---------------------------------------------------------------------


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _http_get(url: str, *, token: str | None = None, ca_path: Path | None = None) -> bytes | None:
    """The body of a 200 response, or None for any error (a readiness probe)."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(ca_path)) if ca_path else None
    try:
        with urllib.request.urlopen(request, timeout=2.0, context=context) as response:
            body: bytes = response.read()
            return body if response.status == 200 else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


# Resolved in the parent so that the forked child only makes the call.
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the thread that started it dies (Linux)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
