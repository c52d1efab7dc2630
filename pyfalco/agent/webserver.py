# SPDX-License-Identifier: Apache-2.0
"""The agent's embedded web server (stdlib http.server in a thread): health, versions, metrics.

``GET <k8s_healthz_endpoint>`` (``/healthz``) -> ``{"status": "ok"}``; ``GET /versions`` -> the
versions JSON; ``GET /metrics`` -> Prometheus text, only when ``metrics.enabled`` and
``webserver.prometheus_metrics_enabled`` are both true (404 otherwise, as Falco).
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

__all__ = ["WebServer"]

log = logging.getLogger("pyfalco.agent")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, family):
        self.address_family = family
        super().__init__(addr, handler)


class WebServer:
    def __init__(self, cfg: dict, versions: Callable[[], dict], metrics: Callable[[], str] | None):
        self.cfg = cfg
        self.versions = versions
        self.metrics = metrics
        self.healthz = cfg.get("k8s_healthz_endpoint") or "/healthz"
        self._srv: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._srv.server_address[1] if self._srv else 0

    def start(self) -> "WebServer":
        import socket
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "pyfalco"

            def log_message(self, fmt, *args):  # noqa: D401 - quiet access log
                log.debug("webserver: " + fmt, *args)

            def _send(self, code: int, body: str, ctype: str):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                path = self.path.split("?", 1)[0]
                try:
                    if path == outer.healthz:
                        self._send(200, json.dumps({"status": "ok"}), "application/json")
                    elif path == "/versions":
                        self._send(200, json.dumps(outer.versions()), "application/json")
                    elif path == "/metrics" and outer.metrics is not None:
                        self._send(200, outer.metrics(), "text/plain; version=0.0.4; charset=utf-8")
                    else:
                        self._send(404, "not found\n", "text/plain")
                except Exception as exc:  # noqa: BLE001
                    log.error("webserver: %s: %s", path, exc)
                    self._send(500, "internal error\n", "text/plain")

            do_HEAD = do_GET

        addr = self.cfg.get("listen_address") or "0.0.0.0"
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self._srv = _Server((addr, int(self.cfg.get("listen_port", 8765))), Handler, family)
        if self.cfg.get("ssl_enabled"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cfg.get("ssl_certificate"))
            self._srv.socket = ctx.wrap_socket(self._srv.socket, server_side=True)
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="pyfalco-webserver", daemon=True)
        self._thread.start()
        log.info("webserver listening on %s:%d", addr, self.port)
        return self

    def stop(self) -> None:
        srv, self._srv = self._srv, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()
        if self._thread is not None:
            self._thread.join(2.0)
