"""An iRODS protocol-level test server that python-irodsclient talks to over TCP, unmodified.

Use it in-process::

    server = IrodsTestServer(data_dir).start()
    session = iRODSSession(host=server.host, port=server.port, user="rods", password="rods",
                           zone="tempZone")
    ...
    server.stop()

or as a process (``python -m irods_ingest_testkit.irods_server --port 0 --data-dir DIR``),
which prints ``irods-test-server listening on HOST:PORT`` once ready; with
``--control-port`` it also serves :mod:`.control` for counters and faults.
See ``docs/irods-test-server.md`` for the module map, the resource names and the APIs.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

from irods_ingest_testkit.irods_server.agent import ServerContext
from irods_ingest_testkit.irods_server.catalog import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    DEFAULT_RESOURCE,
    LEAF_RESOURCES,
    MID_RESOURCE,
    ROOT_RESOURCE,
    ZONE,
    Catalog,
)
from irods_ingest_testkit.irods_server.control import ControlClient, ControlServer
from irods_ingest_testkit.irods_server.faults import Fault, Faults
from irods_ingest_testkit.irods_server.server import IrodsTcpServer

DEFAULT_SERVER_VERSION = "4.3.4"

__all__ = [
    "ADMIN_PASSWORD",
    "ADMIN_USER",
    "DEFAULT_RESOURCE",
    "DEFAULT_SERVER_VERSION",
    "LEAF_RESOURCES",
    "MID_RESOURCE",
    "ROOT_RESOURCE",
    "ZONE",
    "ControlClient",
    "Fault",
    "IrodsTestServer",
]


class IrodsTestServer:
    """The test server in this process, serving from background threads.

    ``cursor_scope="connection"`` keeps GenQuery continuation statements per connection,
    as a real agent does; ``"server"`` shares them (lenient to clients that page across
    pooled connections). ``latency_ms`` is added to every API reply (``set_latency_ms``
    changes it while the server runs).
    """

    def __init__(
        self,
        data_dir: Path | str,
        host: str = "127.0.0.1",
        port: int = 0,
        server_version: str = DEFAULT_SERVER_VERSION,
        control_port: int | None = None,
        cursor_scope: str = "connection",
        latency_ms: float = 0.0,
    ) -> None:
        if cursor_scope not in ("connection", "server"):
            raise ValueError("cursor_scope must be 'connection' or 'server'")
        self.data_dir = Path(data_dir)
        self.server_version = server_version.removeprefix("rods")
        self._requested = (host, port)
        self._control_port = control_port
        self._cursor_scope = cursor_scope
        self.faults = Faults()
        self.faults.set_latency(latency_ms / 1000.0)
        self.catalog: Catalog | None = None
        self._tcp: IrodsTcpServer | None = None
        self._control: ControlServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> IrodsTestServer:
        self.catalog = Catalog(self.data_dir)
        context = ServerContext(self.catalog, self.server_version, cursor_scope=self._cursor_scope)
        self._tcp = IrodsTcpServer(self._requested, context, self.faults)
        self._thread = threading.Thread(target=self._tcp.serve_forever, name="irods-test-server", daemon=True)
        self._thread.start()
        if self._control_port is not None:
            self._control = ControlServer((self._requested[0], self._control_port), self.faults)
            self._control.start()
        return self

    def stop(self) -> None:
        if self._control is not None:
            self._control.stop()
            self._control = None
        if self._tcp is not None:
            self._tcp.shutdown()
            self._tcp.server_close()
            self._tcp.close_connections()
            self._tcp.join_connections()
            self._tcp = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None

    def __enter__(self) -> IrodsTestServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------ addresses

    @property
    def host(self) -> str:
        if self._tcp is None:
            return self._requested[0]
        return str(self._tcp.server_address[0])

    @property
    def port(self) -> int:
        if self._tcp is None:
            raise RuntimeError("the server is not running")
        return int(self._tcp.server_address[1])

    @property
    def control_port(self) -> int | None:
        return None if self._control is None else int(self._control.server_address[1])

    @property
    def zone(self) -> str:
        return ZONE

    # ------------------------------------------------------------ counters and faults

    def api_counts(self) -> dict[int, int]:
        return self.faults.counts()

    def reset_counts(self) -> None:
        self.faults.reset_counts()

    def wait_disconnected(self, client_address: tuple[str, int], timeout: float = 10.0) -> bool:
        """Block until the connection from ``client_address`` (the client socket's
        ``getsockname()``) has ended and been cleaned up: its open replicas released. False on
        timeout. Lets a test wait for an abrupt disconnect without polling."""
        return self._tcp is not None and self._tcp.wait_disconnected(client_address, timeout)

    def fail_nth(self, api: int, nth: int, code: int, times: int = 1) -> None:
        """The ``nth`` next call of ``api`` is answered with ``code`` (``times`` in a row)."""
        self.faults.add(Fault("fail", api, nth=nth, code=code, times=times))

    def drop_connection(self, api: int | None = None, nth: int = 1) -> None:
        """The ``nth`` next call (of ``api``, or any) closes its connection without a reply."""
        self.faults.add(Fault("drop", api, nth=nth))

    def delay_replies(self, seconds: float, api: int | None = None, times: int = 0) -> None:
        """Hold back replies (to ``api``, or all) by ``seconds``; ``times=0`` until cleared."""
        self.faults.add(Fault("delay", api, seconds=seconds, times=times))

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_latency_ms(self, ms: float) -> None:
        """Add ``ms`` milliseconds to every API reply from now on (0 = none), as a real
        catalog answers in milliseconds, not microseconds."""
        self.faults.set_latency(ms / 1000.0)

    @property
    def latency_ms(self) -> float:
        return self.faults.latency * 1000.0
