"""A private ``redis-server`` process on a loopback port.

Used by ``irods-ingest demo`` (when no Redis URL is given) and by the test suite, whose
fault tests stop and restart it. The launcher speaks raw RESP for its readiness probe so
that it does not import ``redis`` (only the store adapter does).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from irods_ingest_testkit.processes import free_port, stop_process, wait_until

REDIS_SERVER_BINARY = "redis-server"


class RedisServerMissing(RuntimeError):
    """``redis-server`` is not installed."""


@dataclass
class RedisServer:
    """One ``redis-server`` owned by the caller.

    ``appendonly`` turns on AOF persistence (``appendfsync always``) so that a restart
    keeps every acknowledged write, as the fault suite requires.
    """

    data_dir: Path | None = None
    port: int = 0
    password: str | None = None
    appendonly: bool = False
    tls: bool = False  # serve TLS only, with a private CA made for this server (see ca_path)
    host: str = "127.0.0.1"
    extra_args: list[str] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _owns_dir: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}{self.host}:{self.port}/0?ssl_ca_certs={self.ca_path}"
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def ca_path(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "tls" / "ca.crt"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        assert self.data_dir is not None
        return self.data_dir / "redis.log"

    def start(self, timeout: float = 15.0) -> RedisServer:
        binary = shutil.which(REDIS_SERVER_BINARY)
        if binary is None:
            raise RedisServerMissing(
                "redis-server is not installed; install it with `apt-get install redis-server`"
            )
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="irods-ingest-redis-"))
            self._owns_dir = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)
        if self.tls:
            self._make_certificates()
        tls_dir = self.data_dir / "tls"
        listen = (
            ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(tls_dir / "server.crt"),
             "--tls-key-file", str(tls_dir / "server.key"), "--tls-ca-cert-file", str(self.ca_path),
             "--tls-auth-clients", "no"]
            if self.tls
            else ["--port", str(self.port)]
        )
        args = [
            binary,
            "--bind", self.host,
            *listen,
            "--dir", str(self.data_dir),
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
            "--appendonly", "yes" if self.appendonly else "no",
        ]
        if self.appendonly:
            args += ["--appendfsync", "always"]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.extra_args
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        wait_until(self.ping, timeout=timeout, what=f"redis-server on port {self.port}", process=self._process)
        return self

    def ping(self) -> bool:
        """True when the server answers PING (after AUTH when a password is set)."""
        request = b""
        if self.password:
            pw = self.password.encode()
            request += b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw)
        request += b"*1\r\n$4\r\nPING\r\n"
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as raw_sock:
                sock: socket.socket = raw_sock
                if self.tls:
                    context = ssl.create_default_context(cafile=str(self.ca_path))
                    sock = context.wrap_socket(raw_sock, server_hostname=self.host)
                sock.sendall(request)
                reply = b""
                while b"PONG" not in reply and not reply.startswith(b"-"):
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    reply += chunk
                return b"+PONG" in reply
        except OSError:
            return False

    def _make_certificates(self) -> None:
        """A throwaway CA and a server certificate for 127.0.0.1 (openssl, as the suite installs it)."""
        assert self.data_dir is not None
        tls_dir = self.data_dir / "tls"
        if (tls_dir / "server.crt").exists():
            return
        tls_dir.mkdir(parents=True, exist_ok=True)
        openssl = shutil.which("openssl")
        if openssl is None:
            raise RedisServerMissing("openssl is needed for a TLS redis-server (apt-get install openssl)")

        def run(*args: str) -> None:
            subprocess.run([openssl, *args], cwd=tls_dir, check=True, capture_output=True)

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=irods-ingest test CA",
            "-keyout", "ca.key", "-out", "ca.crt")
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={self.host}", "-keyout", "server.key",
            "-out", "server.csr")
        (tls_dir / "san.cnf").write_text(f"subjectAltName=IP:{self.host},DNS:localhost\n")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "san.cnf", "-out", "server.crt")

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def kill(self) -> None:
        """SIGKILL: an abrupt crash, for fault tests."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self, timeout: float = 15.0) -> RedisServer:
        """Stop and start again on the same port and data directory (AOF replays)."""
        self.stop()
        return self.start(timeout=timeout)

    def close(self) -> None:
        self.stop()
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
