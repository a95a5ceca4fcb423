"""A private ``redis-server`` process on a loopback port.

Used by ``irods-ingest demo`` (when no Redis URL is given) and by the test suite, whose
fault tests stop and restart it. The launcher speaks raw RESP for its readiness probe so
that it does not import ``redis`` (only the store adapter does).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from irods_ingest.testing.processes import free_port, stop_process, wait_until

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
    host: str = "127.0.0.1"
    extra_args: list[str] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _owns_dir: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

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
        args = [
            binary,
            "--bind", self.host,
            "--port", str(self.port),
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
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
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
