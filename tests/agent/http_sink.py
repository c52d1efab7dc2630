# SPDX-License-Identifier: Apache-2.0
"""The loopback HTTP receiver of the agent tests. :func:`make_server` builds it (agenttools.Receiver
serves it on a thread of the pytest process); run as ``python http_sink.py DIR`` it serves in a
process of its own (for tests that must not depend on how busy the pytest process is): it prints
its port on the first line of stdout, appends every body to DIR/bodies (a 4-byte big-endian
length, then the body) BEFORE answering 200, and notes anything unusual on its side (malformed
or timed-out requests, handler errors, short bodies) in DIR/events."""

from __future__ import annotations

import http.server
import os
import struct
import sys
import threading
import time
import traceback
from typing import Callable


def make_server(record: Callable[[http.server.BaseHTTPRequestHandler, bytes], None],
                note: Callable[[str], None],
                status: Callable[[], int] = lambda: 200) -> http.server.ThreadingHTTPServer:
    """A threading HTTP/1.1 server on 127.0.0.1 (a free port) that hands every POST body to
    ``record`` before it answers ``status()``, and every oddity (a body shorter than announced,
    a malformed or timed-out request, a handler error) to ``note``."""

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def log_error(self, fmt, *args):     # a malformed or timed-out request
            note(f"{self.client_address}: " + (fmt % args))

        def do_POST(self):  # noqa: N802
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            if len(body) != n:
                note(f"{self.client_address}: body of {len(body)} bytes, {n} announced")
            record(self, body)
            self.send_response(status())
            self.send_header("Content-Length", "0")
            self.end_headers()

    class S(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            note(f"{client_address}: {traceback.format_exc(limit=3)}")

    return S(("127.0.0.1", 0), H)


def main(out_dir: str) -> None:
    lock = threading.Lock()
    bodies = open(os.path.join(out_dir, "bodies"), "ab", buffering=0)
    events = open(os.path.join(out_dir, "events"), "a", buffering=1)

    def note(what: str) -> None:
        with lock:
            events.write(f"{time.strftime('%H:%M:%S')} {what}\n")

    def record(_handler, body: bytes) -> None:
        with lock:
            bodies.write(struct.pack(">I", len(body)) + body)

    srv = make_server(record, note)
    sys.stdout.write(f"{srv.server_address[1]}\n")
    sys.stdout.flush()
    srv.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main(sys.argv[1])
