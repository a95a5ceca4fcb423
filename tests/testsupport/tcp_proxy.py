"""A TCP proxy on loopback for real broken connections: cut a download mid-body, or sever
everything at once as when a server or the network goes away."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


class TcpProxy:
    """Forwards every connection to ``upstream``.

    ``cut_after``/``cuts``: the first ``cuts`` connections that carry more than ``cut_after``
    response bytes are reset mid-stream (a broken download). :meth:`sever` resets every open
    connection and refuses new ones.
    """

    def __init__(self, upstream: tuple[str, int], *, cut_after: int = 0, cuts: int = 0) -> None:
        self.upstream = upstream
        self.cut_after = cut_after
        self.remaining = cuts
        self.cuts = 0
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        carried = 0
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                carried += len(data)
                if downstream and carried > self.cut_after and self._take_cut():
                    sink.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
        except OSError:
            pass  # the other side went away: close both ends below
        for sock in (source, sink):
            # shutdown() first: it wakes the other pump blocked in recv() on the same socket,
            # which close() alone would not (and the client would wait for its read timeout).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _take_cut(self) -> bool:
        with self.lock:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            self.cuts += 1
            return True

    def sever(self) -> None:
        # shutdown() first: on Linux, close() alone leaves a socket that a thread is blocked
        # accept()ing on still listening, and new connections would still get through.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self.listener.close()
