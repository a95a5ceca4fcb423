"""The threaded TCP server: one thread per connection, as iRODS forks one agent per client.

Start-up as the real server does it (``rsApiHandler``/``agent_main``): read the
``RODS_CONNECT`` startup pack; if its option asks for client/server negotiation, answer
``CS_NEG_REFUSE`` (this server offers no TLS) and read the client's result, ending the
connection if that is a failure; then send ``RODS_VERSION`` and serve API requests until
``RODS_DISCONNECT``. A malformed frame or an abrupt disconnect ends that connection only;
a request body that cannot be parsed is answered with SYS_API_INPUT_ERR.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
import time
from typing import Any

from irods_ingest_testkit.irods_server.agent import Agent, Reply, ServerContext
from irods_ingest_testkit.irods_server.api import API_NAMES, HANDLERS, require_authenticated
from irods_ingest_testkit.irods_server.auth import Authenticator
from irods_ingest_testkit.irods_server.errors import (
    SYS_API_INPUT_ERR,
    SYS_UNMATCHED_API_NUM,
    IrodsError,
    ProtocolError,
)
from irods_ingest_testkit.irods_server.faults import Faults
from irods_ingest_testkit.irods_server.framing import (
    RODS_API_REPLY,
    RODS_API_REQ,
    RODS_CONNECT,
    RODS_CS_NEG_T,
    RODS_DISCONNECT,
    RODS_VERSION,
    Message,
    pack_message,
    parse_xml,
    read_message,
)
from irods_ingest_testkit.irods_server.packs import StartupPack, cs_neg_xml, rerror_xml, version_xml

log = logging.getLogger("irods_ingest_testkit.irods_server")

REQUEST_NEGOTIATION = "request_server_negotiation"
CS_NEG_REFUSE = "CS_NEG_REFUSE"
XML_PROT = 1


class _DropConnection(Exception):
    """A fault asked for the connection to be cut without a reply."""


class ConnectionHandler(socketserver.BaseRequestHandler):
    server: IrodsTcpServer
    request: socket.socket

    def handle(self) -> None:
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = self.client_address
        self.server.track(sock, peer)
        agent: Agent | None = None
        try:
            agent = self._start(sock)
            if agent is not None:
                self._serve(sock, agent)
        except (EOFError, ConnectionError, _DropConnection):
            pass
        except ProtocolError as exc:
            log.info("closing connection after a malformed message: %s", exc)
        except OSError as exc:
            log.debug("connection error: %s", exc)
        except Exception:
            log.exception("unexpected error; closing the connection")
        finally:
            if agent is not None:
                try:
                    agent.release()
                except Exception:
                    log.exception("error releasing the connection's open replicas")
            self.server.untrack(sock, peer)

    def _start(self, sock: socket.socket) -> Agent | None:
        context = self.server.context
        first = read_message(sock)
        if first.msg_type != RODS_CONNECT:
            raise ProtocolError(f"expected RODS_CONNECT, got {first.msg_type!r}")
        startup = StartupPack.parse(first.body)
        if startup.irods_prot != XML_PROT:
            raise ProtocolError("only the XML protocol (irodsProt=1) is implemented")
        if startup.option.endswith(REQUEST_NEGOTIATION):
            sock.sendall(pack_message(Message(RODS_CS_NEG_T, body=cs_neg_xml(CS_NEG_REFUSE))))
            answer = read_message(sock)
            result = parse_xml(answer.body).text_of("result") if answer.body else ""
            if "CS_NEG_USE_TCP" not in result:
                log.info("client/server negotiation failed (%s); closing", result)
                return None
        self.server.faults.connection_opened()
        sock.sendall(pack_message(Message(RODS_VERSION, body=version_xml("rods" + context.server_version))))
        authenticator = Authenticator(
            context.catalog, startup.proxy_user, startup.proxy_zone, startup.client_user, startup.client_zone
        )
        return Agent(context, authenticator)

    def _serve(self, sock: socket.socket, agent: Agent) -> None:
        while True:
            request = read_message(sock)
            if request.msg_type == RODS_DISCONNECT:
                return
            if request.msg_type != RODS_API_REQ:
                raise ProtocolError(f"unexpected message type {request.msg_type!r}")
            reply = self._dispatch(agent, request)
            latency = self.server.faults.latency
            if latency > 0:
                time.sleep(latency)  # a catalog that answers in milliseconds (--latency-ms)
            sock.sendall(
                pack_message(Message(RODS_API_REPLY, body=reply.body, error=b"", bs=reply.bs, int_info=reply.int_info))
                if not isinstance(reply, _ErrorReply)
                else pack_message(
                    Message(RODS_API_REPLY, body=reply.body,
                            error=rerror_xml(reply.int_info, reply.message) if reply.message else b"",
                            int_info=reply.int_info)
                )
            )

    def _dispatch(self, agent: Agent, request: Message) -> Reply:
        api = request.int_info
        action = self.server.faults.on_request(api)
        if action.delay:
            time.sleep(action.delay)  # the fault itself: a slow server
        if action.drop:
            raise _DropConnection()
        if action.fail_code is not None:
            return _ErrorReply(action.fail_code, "injected fault")
        handler = HANDLERS.get(api)
        try:
            if handler is None:
                raise IrodsError(SYS_UNMATCHED_API_NUM, f"API {api} is not implemented by the test server")
            require_authenticated(agent, api)
            reply = handler(agent, request)
            log.debug("API %s %s -> %d", api, API_NAMES.get(api, "?"), reply.int_info)
            return reply
        except IrodsError as exc:
            log.debug("API %s %s -> error %d %s", api, API_NAMES.get(api, "?"), exc.code, exc.message)
            return _ErrorReply(exc.code, exc.message, exc.body)
        except ProtocolError as exc:
            return _ErrorReply(SYS_API_INPUT_ERR, str(exc))


class _ErrorReply(Reply):
    def __init__(self, code: int, message: str, body: bytes = b"") -> None:
        super().__init__(int_info=code, body=body)
        self.message = message


class IrodsTcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True  # joined explicitly by join_connections(), never left behind by stop()

    def __init__(self, address: tuple[str, int], context: ServerContext, faults: Faults) -> None:
        self.context = context
        self.faults = faults
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()
        self._closed = threading.Condition(self._sockets_lock)
        self._peers: set[tuple[str, int]] = set()  # client addresses of connections not yet cleaned up
        self._agent_threads: list[threading.Thread] = []
        super().__init__(address, ConnectionHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), name="irods-agent", daemon=True
        )
        with self._sockets_lock:
            self._agent_threads = [t for t in self._agent_threads if t.is_alive()]
            self._agent_threads.append(thread)
        thread.start()

    def join_connections(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._sockets_lock:
            threads = list(self._agent_threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def track(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        with self._sockets_lock:
            self._sockets.add(sock)
            self._peers.add(peer)

    def untrack(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        """The connection has ended and its clean-up (open replicas released) is done."""
        with self._closed:
            self._sockets.discard(sock)
            self._peers.discard(peer)
            self._closed.notify_all()

    def wait_disconnected(self, peer: tuple[str, int], timeout: float) -> bool:
        with self._closed:
            return self._closed.wait_for(lambda: tuple(peer) not in self._peers, timeout)

    def close_connections(self) -> None:
        with self._sockets_lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("error on connection from %s", client_address)
