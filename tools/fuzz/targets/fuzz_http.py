#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fuzz target: the agent's webserver (pyfalco/agent/webserver.py) parsing raw HTTP requests.

A real WebServer is started once on 127.0.0.1 (port 0) with /versions and /metrics; each input
is one connection's bytes, written into one end of a socketpair, and the other end is served in
this thread by ``WebServer._serve`` (what a worker thread runs for an accepted connection: the
deadline, the request handler), so an exception reaches the fuzzer instead of the worker's
catch-all. Whatever comes back must be an HTTP response (HTTP/0.9 style, a bare body, for a
request line without a valid version, as http.server does), or nothing.

Input: the raw request bytes (request line, headers, body), at most 8 KiB.
Expected errors: OSError, ssl.SSLError, ValueError (the worker counts those as connection errors);
anything else would reach the worker's "bug" branch and is a finding.
"""

from __future__ import annotations

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzzlib  # noqa: E402

EXPECTED = ("OSError/ssl.SSLError/ValueError (what the worker counts as a connection error: a reset, a "
            "timeout, a malformed request); any other exception is a handler bug")
MAX_LEN = 8192
CI_RUNS = 3000

_G: dict = {}


def setup() -> None:
    import pyfalco.agent.webserver
    cfg = {"enabled": True, "listen_address": "127.0.0.1", "listen_port": 0, "k8s_healthz_endpoint": "/healthz",
           "prometheus_metrics_enabled": True}
    ws = pyfalco.agent.webserver.WebServer(cfg, lambda: {"pyfalco_version": "0.1.0", "engine_version": "0.62.0"},
                                           lambda: "# HELP x y\n# TYPE x counter\nx 1\n")
    ws.start()
    _G["ws"] = ws
    import ssl
    _G["expected"] = (OSError, ssl.SSLError, ValueError)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    import time
    ws = _G["ws"]
    a, b = socket.socketpair()
    try:
        a.settimeout(5)
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)     # then EOF: a handler waiting for more sees the end, not a hang
        try:
            ws._serve(b, ("127.0.0.1", 40000), time.monotonic() + 5.0)
        except _G["expected"]:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        reply = bytearray()
        while True:
            chunk = a.recv(65536)
            if not chunk:
                break
            reply += chunk
    finally:
        a.close()
        b.close()
    # an HTTP/1.x status line, or (http.server's HTTP/0.9 mode: a request line without a valid
    # version, or "GET /path" alone) a bare body: the page or an error page, no headers
    if reply and not reply.startswith((b"HTTP/1.", b"<!DOCTYPE HTML>", b'{"status"', b"not found",
                                       b"# HELP", b'{"pyfalco_version"')):
        raise AssertionError(f"not an HTTP response: {bytes(reply[:80])!r}")


if __name__ == "__main__":
    fuzzlib.main(setup, TestOneInput, MAX_LEN, (), include=("pyfalco", "http.server", "http.client", "email"))
