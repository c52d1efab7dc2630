# SPDX-License-Identifier: Apache-2.0
"""A loopback HTTP receiver in a process of its own (used by tests that must not depend on
how busy the pytest process is): ``python http_sink.py DIR`` serves POSTs on 127.0.0.1, prints
its port on the first line of stdout, appends every body to DIR/bodies (a 4-byte big-endian
length, then the body) BEFORE answering 200, and notes anything unusual on its side
(malformed or timed-out requests, handler errors, short bodies) in DIR/events."""

from __future__ import annotations

import http.server
import os
import struct
import sys
import threading
import time
import traceback


def main(out_dir: str) -> None:
    lock = threading.Lock()
    bodies = open(os.path.join(out_dir, "bodies"), "ab", buffering=0)
    events = open(os.path.join(out_dir, "events"), "a", buffering=1)

    def note(what: str) -> None:
        with lock:
            events.write(f"{time.strftime('%H:%M:%S')} {what}\n")

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def log_error(self, fmt, *args):
            note(f"{self.client_address}: " + (fmt % args))

        def do_POST(self):  # noqa: N802
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            if len(body) != n:
                note(f"{self.client_address}: body of {len(body)} bytes, {n} announced")
            with lock:
                bodies.write(struct.pack(">I", len(body)) + body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    class S(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            note(f"{client_address}: {traceback.format_exc(limit=3)}")

    srv = S(("127.0.0.1", 0), H)
    sys.stdout.write(f"{srv.server_address[1]}\n")
    sys.stdout.flush()
    srv.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main(sys.argv[1])
