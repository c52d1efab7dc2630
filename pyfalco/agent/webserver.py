# SPDX-License-Identifier: Apache-2.0
"""The agent's embedded web server: health, versions, metrics.

``GET <k8s_healthz_endpoint>`` (``/healthz``) -> ``{"status": "ok"}``; ``GET /versions`` -> the
versions JSON; ``GET /metrics`` -> Prometheus text, only when ``metrics.enabled`` and
``webserver.prometheus_metrics_enabled`` are both true (404 otherwise, as Falco).

Bounded against hostile clients: one accept thread waits (with a selector, no thread per
socket) until a new connection has sent its first bytes, then hands it to a fixed pool of
workers (``threadiness``, 8 when 0) that run the TLS handshake and answer one request (HTTP/1.0,
no keep-alive). Every connection has ``REQUEST_TIMEOUT`` seconds in total from its accept to
the end of its answer: idle connections are closed by the accept thread, slow ones are shut
down under their worker. At most ``MAX_CONNECTIONS`` are open at once; past that the oldest
idle one is closed to make room (so idle connections cannot lock health probes out), or the new
one is refused when all are busy. Errors (resets, handshake failures, timeouts) go to the log,
rate-limited, never to stderr.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import selectors
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Callable

from pyfalco.outputs import LogLimiter, clean_text

__all__ = ["WebServer", "DEFAULT_LISTEN_ADDRESS"]

log = logging.getLogger("pyfalco.agent")

#: bind address when the configuration names none (loopback: nothing is exposed by default)
DEFAULT_LISTEN_ADDRESS = "127.0.0.1"
#: seconds from accept to the end of the answer, handshake included
REQUEST_TIMEOUT = 5.0
#: open connections at most (idle + being served)
MAX_CONNECTIONS = 256
#: workers when threadiness is 0
DEFAULT_WORKERS = 8


class WebServer:
    """The webserver of one agent run (``start()``/``stop()``); ``port`` is the bound port."""

    def __init__(self, cfg: dict, versions: Callable[[], dict], metrics: Callable[[], str] | None, *,
                 request_timeout: float = REQUEST_TIMEOUT, max_connections: int = MAX_CONNECTIONS):
        self.cfg = cfg
        self.versions = versions
        self.metrics = metrics
        self.healthz = cfg.get("k8s_healthz_endpoint") or "/healthz"
        self.request_timeout = request_timeout
        self.max_connections = max(1, max_connections)
        threads = int(cfg.get("threadiness") or 0)
        self.workers = threads if threads > 0 else DEFAULT_WORKERS
        self.refused = 0            # connections closed at once: every worker busy, cap reached
        self.evicted = 0            # idle connections closed to make room for a new one
        self.timed_out = 0          # connections closed at their deadline
        self.errors = 0             # resets, handshake failures, malformed requests
        self._limiter = LogLimiter(log)
        self._sock: socket.socket | None = None
        self._ctx: ssl.SSLContext | None = None
        self._stop = threading.Event()
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._work: queue.Queue = queue.Queue()
        self._busy: dict[socket.socket, float] = {}     # served connection -> deadline
        self._busy_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._handler = self._make_handler()

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1] if self._sock is not None else 0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "WebServer":
        """Bind, listen and start the threads (OSError when the address cannot be bound,
        ValueError when the TLS certificate cannot be loaded)."""
        addr = self.cfg.get("listen_address") or DEFAULT_LISTEN_ADDRESS
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        if self.cfg.get("ssl_enabled"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert = self.cfg.get("ssl_certificate")
            try:
                ctx.load_cert_chain(cert)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"ssl_certificate {cert}: {getattr(exc, 'strerror', None) or exc}") from None
            self._ctx = ctx
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((addr, int(self.cfg.get("listen_port", 8765))))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._threads = [threading.Thread(target=self._accept_loop, name="pyfalco-webserver", daemon=True)]
        self._threads += [threading.Thread(target=self._worker, name=f"pyfalco-webserver-{i}", daemon=True)
                          for i in range(self.workers)]
        for t in self._threads:
            t.start()
        log.info("webserver listening on %s:%d%s", addr, self.port, " (TLS)" if self._ctx else "")
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection; threads end within a second."""
        if self._sock is None:
            return
        self._stop.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        for _ in range(self.workers):
            self._work.put(None)
        with self._busy_lock:
            busy = list(self._busy)
        for c in busy:  # unblock workers in a read or a handshake
            _shutdown(c)
        end = time.monotonic() + 1.0
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))
        self._sock.close()
        self._sock = None
        for s in (self._wake_r, self._wake_w):
            s.close()

    # -- accept thread --------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._sock, selectors.EVENT_READ, "listen")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        idle: collections.OrderedDict[socket.socket, tuple[float, tuple]] = collections.OrderedDict()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                first = next(iter(idle.values()))[0] if idle else now + 0.5
                for key, _ in sel.select(max(0.0, min(first - now, 0.5))):
                    if key.data == "listen":
                        self._accept_some(sel, idle)
                    elif key.data == "wake":
                        return
                    else:  # the client sent its first bytes: to a worker
                        conn = key.fileobj
                        sel.unregister(conn)
                        deadline, addr = idle.pop(conn)
                        with self._busy_lock:
                            self._busy[conn] = deadline
                        self._work.put((conn, addr, deadline))
                now = time.monotonic()
                while idle:
                    conn, (deadline, addr) = next(iter(idle.items()))
                    if deadline > now:
                        break
                    idle.popitem(last=False)
                    sel.unregister(conn)
                    self.timed_out += 1
                    conn.close()
                    self._limiter(logging.INFO, "idle", "webserver: closed a connection from %s that sent "
                                  "nothing within %gs", addr[0], self.request_timeout)
                with self._busy_lock:
                    late = [c for c, d in self._busy.items() if d <= now]
                for c in late:  # a worker is stuck on a slow client: cut it off
                    _shutdown(c)
        finally:
            for conn in idle:
                conn.close()
            sel.close()

    def _accept_some(self, sel: selectors.BaseSelector, idle: collections.OrderedDict) -> None:
        for _ in range(64):
            try:
                conn, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: try again on the next loop
                self._limiter(logging.ERROR, "accept", "webserver: accept: %s", exc)
                return
            with self._busy_lock:
                n_busy = len(self._busy)
            if n_busy + len(idle) >= self.max_connections:
                if idle:  # make room: the oldest idle connection goes
                    old, (_d, old_addr) = idle.popitem(last=False)
                    sel.unregister(old)
                    self.evicted += 1
                    old.close()
                    self._limiter(logging.WARNING, "evict", "webserver: %d connections open: closed an idle one "
                                  "from %s", self.max_connections, old_addr[0])
                else:
                    self.refused += 1
                    conn.close()
                    self._limiter(logging.WARNING, "refuse", "webserver: %d connections busy: refused one from %s",
                                  self.max_connections, addr[0])
                    continue
            conn.setblocking(False)
            idle[conn] = (time.monotonic() + self.request_timeout, addr)
            sel.register(conn, selectors.EVENT_READ, "conn")

    # -- workers --------------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            conn, addr, deadline = item
            try:
                self._serve(conn, addr, deadline)
            except (OSError, ssl.SSLError, ValueError) as exc:
                self.errors += 1
                self._limiter(logging.INFO, type(exc).__name__, "webserver: connection from %s: %s: %s", addr[0],
                              type(exc).__name__, exc)
            except Exception as exc:  # noqa: BLE001 - a handler bug must not end the worker
                self.errors += 1
                self._limiter(logging.ERROR, "bug", "webserver: connection from %s: %s: %s", addr[0],
                              type(exc).__name__, exc)
            finally:
                with self._busy_lock:
                    self._busy.pop(conn, None)
                try:
                    conn.close()
                except OSError:
                    pass

    def _serve(self, conn: socket.socket, addr: tuple, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0 or self._stop.is_set():
            self.timed_out += 1
            return
        conn.setblocking(True)
        conn.settimeout(left)   # per operation; the accept thread enforces the total deadline
        sock = conn
        if self._ctx is not None:
            sock = self._ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            with self._busy_lock:
                self._busy[sock] = deadline   # the wrapped socket owns the fd now
        try:
            if sock is not conn:
                sock.do_handshake()           # here, off the accept loop, under the deadline
            self._handler(sock, addr, self)
        finally:
            if sock is not conn:
                with self._busy_lock:
                    self._busy.pop(sock, None)
                try:
                    sock.close()
                except OSError:
                    pass

    def _make_handler(self) -> type:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "pyfalco"
            protocol_version = "HTTP/1.0"   # one request per connection: no keep-alive to hold a worker
            timeout = None                  # set on the socket by _serve

            # the request line is the client's: escaped before it reaches the log
            def log_message(self, fmt, *args):  # noqa: D401 - quiet access log
                log.debug("webserver: " + fmt, *(_safe(a) for a in args))

            def log_error(self, fmt, *args):
                outer._limiter(logging.INFO, "request", "webserver: " + fmt, *(_safe(a) for a in args))

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
                except (OSError, ssl.SSLError):
                    raise
                except Exception as exc:  # noqa: BLE001
                    outer._limiter(logging.ERROR, "handler", "webserver: %s: %s", clean_text(path[:200]), exc)
                    self._send(500, "internal error\n", "text/plain")

            do_HEAD = do_GET

        return Handler


def _safe(arg):
    return clean_text(arg[:512]) if isinstance(arg, str) else arg


def _shutdown(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass
