"""A tiny HTTP/JSON control channel for a server running in another process.

``GET /counters`` -> ``{"api_counts": {"702": 3, ...}, "connections": n}``;
``POST /reset`` zeroes the counters; ``POST /faults`` with a fault object
(``{"kind": "fail", "api": 702, "nth": 1, "code": -808000}``, see :mod:`.faults`) adds one,
``{"kind": "clear"}`` removes all; ``GET /faults`` lists the active ones; ``GET /health``;
``GET /latency`` -> ``{"ms": 2.0}`` and ``POST /latency`` with ``{"ms": 2}``: the latency added
to every API reply.
:class:`ControlClient` speaks it with the standard library only.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from irods_ingest_testkit.irods_server.faults import Fault, Faults


class _ControlHandler(BaseHTTPRequestHandler):
    server: ControlServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, value: object) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        faults = self.server.faults
        if self.path == "/counters":
            counts = {str(k): v for k, v in sorted(faults.counts().items())}
            self._send(200, {"api_counts": counts, "connections": faults.connections})
        elif self.path == "/faults":
            self._send(200, [f.to_json() for f in faults.active()])
        elif self.path == "/health":
            self._send(200, {"ok": True})
        elif self.path == "/latency":
            self._send(200, {"ms": faults.latency * 1000.0})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        faults = self.server.faults
        length = int(self.headers.get("Content-Length") or 0)
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send(400, {"error": "body is not JSON"})
            return
        if self.path == "/reset":
            faults.reset_counts()
            self._send(200, {"ok": True})
        elif self.path == "/latency":
            try:
                faults.set_latency(float(payload["ms"]) / 1000.0)
            except (KeyError, ValueError, TypeError) as exc:
                self._send(400, {"error": f"expected {{\"ms\": <0..60000>}}: {exc}"})
                return
            self._send(200, {"ok": True})
        elif self.path == "/faults":
            if not isinstance(payload, dict):
                self._send(400, {"error": "expected a JSON object"})
                return
            if (payload.get("kind") or payload.get("action")) == "clear":
                faults.clear()
                self._send(200, {"ok": True})
                return
            try:
                faults.add(Fault.from_json(payload))
            except (ValueError, TypeError) as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": "not found"})


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], faults: Faults) -> None:
        self.faults = faults
        super().__init__(address, _ControlHandler)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="irods-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)


class ControlClient:
    """Reads counters and injects faults into a test server in another process."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.base = f"http://{host}:{port}"
        self.timeout = timeout

    def _call(self, method: str, path: str, payload: object | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())

    def api_counts(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self._call("GET", "/counters")["api_counts"].items()}

    def connections(self) -> int:
        return int(self._call("GET", "/counters")["connections"])

    def reset_counts(self) -> None:
        self._call("POST", "/reset", {})

    def add_fault(self, kind: str, api: int | None = None, *, nth: int = 1, code: int = -1,
                  seconds: float = 0.0, times: int | None = None) -> None:
        payload: dict[str, object] = {"kind": kind, "api": api, "nth": nth, "code": code, "seconds": seconds}
        if times is not None:
            payload["times"] = times
        self._call("POST", "/faults", payload)

    def fail_nth(self, api: int, nth: int, code: int, times: int = 1) -> None:
        self.add_fault("fail", api, nth=nth, code=code, times=times)

    def drop_connection(self, api: int | None = None, nth: int = 1) -> None:
        self.add_fault("drop", api, nth=nth)

    def delay_replies(self, seconds: float, api: int | None = None, times: int = 0) -> None:
        self.add_fault("delay", api, seconds=seconds, times=times)

    def clear_faults(self) -> None:
        self._call("POST", "/faults", {"kind": "clear"})

    def set_latency_ms(self, ms: float) -> None:
        """Add ``ms`` milliseconds to every API reply from now on (0 = none)."""
        self._call("POST", "/latency", {"ms": ms})

    def latency_ms(self) -> float:
        return float(self._call("GET", "/latency")["ms"])

    def healthy(self) -> bool:
        try:
            return bool(self._call("GET", "/health").get("ok"))
        except OSError:
            return False
