"""``irods-ingest test-server``: run the iRODS test server until SIGINT/SIGTERM.

Contract (scripts and docs rely on it): once listening, print exactly one line
``irods-test-server listening on HOST:PORT`` to stdout (flushed); ``--port 0`` picks a free
port; with ``--control-port`` the same line ends with `` control HOST:CPORT``. Exit status 0
after a signal.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from irods_ingest_testkit.irods_server import DEFAULT_SERVER_VERSION, IrodsTestServer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irods-ingest test-server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=1247, help="TCP port; 0 picks a free one (default 1247)")
    parser.add_argument("--data-dir", required=True, help="catalog and vault directory (created if missing)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--server-version", default=DEFAULT_SERVER_VERSION,
                        help="iRODS version to report, e.g. 4.3.4 or 5.0.2 (default %(default)s)")
    parser.add_argument("--control-port", type=int, default=None,
                        help="serve the HTTP control channel (counters, faults) on this port; 0 = free port")
    parser.add_argument("--cursor-scope", choices=("connection", "server"), default="connection",
                        help="GenQuery paging statements per connection (as iRODS) or shared")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="milliseconds added to every API reply, as a real catalog answers (default 0)")
    parser.add_argument("--log-level", default="WARNING", help="logging level for stderr (default WARNING)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = IrodsTestServer(args.data_dir, host=args.host, port=args.port, server_version=args.server_version,
                             control_port=args.control_port, cursor_scope=args.cursor_scope,
                             latency_ms=args.latency_ms)
    try:
        server.start()
    except OSError as exc:
        print(f"irods-test-server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        line = f"irods-test-server listening on {server.host}:{server.port}"
        if server.control_port is not None:
            line += f" control {server.host}:{server.control_port}"
        print(line, flush=True)
        stop.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
