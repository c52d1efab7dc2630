# SPDX-License-Identifier: Apache-2.0
"""The k8saudit webhook: the endpoint a kube-apiserver's audit webhook backend POSTs to.

Built on the agent's bounded web server (:class:`pyfalco.agent.webserver.WebServer`): one accept
thread, a fixed pool of workers, a total deadline per connection, a cap on open connections,
errors to the rate-limited log (never a traceback). On top of that, per request:

* only ``POST`` to the endpoint path (405 for other methods there, 404 elsewhere);
* ``Content-Type`` must contain ``application/json`` (400, as k8saudit);
* a body larger than ``webhookMaxBatchSize`` is refused with 413 (before it is read when its
  ``Content-Length`` says so; chunked bodies are read up to the limit); a body with neither
  ``Content-Length`` nor chunked encoding gets 411;
* a body that is not JSON or not audit events is answered 400 and counted (``bad_requests``);
* single events that cannot be used (no ``stageTimestamp``, larger than ``maxEventSize``) are
  skipped and counted (``skipped_events``); the request still gets 200;
* accepted events go to a bounded queue the source reads; when the agent cannot keep up for the
  whole request deadline the request is answered 503 (``dropped_requests``): the apiserver's
  webhook backend retries, as it does for Falco's.
"""

from __future__ import annotations

import logging
import queue
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

from pyfalco.agent.webserver import WebServer
from pyfalco.outputs import LogLimiter, clean_text

from .payload import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_EVENT_SIZE, PayloadError, parse_payload

__all__ = ["AuditWebhook", "HeaderField"]

log = logging.getLogger("pyfalco.plugins.k8saudit")

#: seconds from accept to the end of the answer (bodies up to webhookMaxBatchSize included)
REQUEST_TIMEOUT = 10.0
#: request bodies queued for the source at most (k8saudit's channel holds 50)
QUEUE_REQUESTS = 64


class HeaderField:
    """One ``customFieldsHeaders`` entry: values of an HTTP header copied into every event."""

    def __init__(self, header: str, fields: list[str], pattern: str | None = None):
        self.header = header
        self.fields = fields
        self.pattern = re.compile(pattern) if pattern else None
        if self.pattern is None and len(fields) != 1:
            raise ValueError(f"customFieldsHeaders {header!r}: without a pattern exactly one custom field")
        if self.pattern is not None and self.pattern.groups < len(fields):
            raise ValueError(f"customFieldsHeaders {header!r}: the pattern has {self.pattern.groups} groups "
                             f"for {len(fields)} custom fields")

    def values(self, value: str | None) -> dict:
        if value is None:
            return {}
        if self.pattern is None:
            return {self.fields[0]: value}
        m = self.pattern.search(value)
        if m is None:
            return {}
        return {f: m.group(i + 1) for i, f in enumerate(self.fields) if m.group(i + 1) is not None}


class AuditWebhook(WebServer):
    """Serve ``endpoint`` on ``host:port``; accepted events land in ``events`` (a queue of lists of
    ``(ts_ns, payload)``). ``start()``/``stop()`` as the agent's web server."""

    def __init__(self, host: str, port: int, endpoint: str, *, tls_certificate: str | None = None,
                 max_event_size: int = DEFAULT_MAX_EVENT_SIZE, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 header_fields: list[HeaderField] | None = None, workers: int = 0,
                 request_timeout: float = REQUEST_TIMEOUT, max_connections: int = 256,
                 queue_requests: int = QUEUE_REQUESTS):
        cfg = {"listen_address": host or "0.0.0.0", "listen_port": port, "threadiness": workers,
               "ssl_enabled": tls_certificate is not None, "ssl_certificate": tls_certificate}
        self.endpoint = endpoint or "/"
        self.max_event_size = max_event_size
        self.max_batch_size = max_batch_size
        self.header_fields = list(header_fields or ())
        self.events: queue.Queue = queue.Queue(maxsize=max(1, queue_requests))
        self.requests = 0           # POSTs answered 200
        self.accepted_events = 0    # events queued for the source
        self.bad_requests = 0       # bodies answered 400 (not JSON, not audit events, wrong type)
        self.oversized = 0          # bodies refused with 413
        self.skipped_events = 0     # single events left out of an accepted body
        self.dropped_requests = 0   # bodies answered 503: the queue stayed full
        self._count_lock = threading.Lock()
        super().__init__(cfg, versions=dict, metrics=None, request_timeout=request_timeout,
                         max_connections=max_connections)
        self._limiter = LogLimiter(log)     # our lines under pyfalco.plugins.k8saudit

    def _count(self, name: str, n: int = 1) -> None:
        with self._count_lock:
            setattr(self, name, getattr(self, name) + n)

    def stats(self) -> dict[str, int]:
        """The counters above, plus the server's connection counters."""
        return {"requests": self.requests, "accepted_events": self.accepted_events,
                "bad_requests": self.bad_requests, "oversized": self.oversized,
                "skipped_events": self.skipped_events, "dropped_requests": self.dropped_requests,
                "refused_connections": self.refused, "timed_out": self.timed_out, "errors": self.errors}

    def _accept(self, body: bytes, headers: Any, deadline: float) -> tuple[int, str]:
        """(status, message) for one POST body."""
        extra: dict = {}
        for hf in self.header_fields:
            extra.update(hf.values(headers.get(hf.header)))
        try:
            events, problems = parse_payload(body, max_event_size=self.max_event_size, extra=extra or None)
        except PayloadError as exc:
            self._count("bad_requests")
            self._limiter(logging.WARNING, "bad-body", "k8saudit webhook: bad request: %s", clean_text(str(exc)))
            return 400, f"bad request: {exc}"
        if problems:
            self._count("skipped_events", len(problems))
            self._limiter(logging.WARNING, "bad-event", "k8saudit webhook: skipped %d event(s): %s", len(problems),
                          clean_text(problems[0][:200]))
        if events:
            try:
                self.events.put(events, timeout=max(0.01, deadline - time.monotonic() - 0.5))
            except queue.Full:
                self._count("dropped_requests")
                self._limiter(logging.WARNING, "full", "k8saudit webhook: event queue full: answered 503")
                return 503, "event queue full, retry later"
            self._count("accepted_events", len(events))
        self._count("requests")
        return 200, ""

    def _make_handler(self) -> type:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "pyfalco-k8saudit"
            protocol_version = "HTTP/1.0"   # one request per connection (bounded workers)
            timeout = None

            def log_message(self, fmt, *args):  # noqa: D401 - quiet access log
                log.debug("k8saudit webhook: " + fmt, *(_safe(a) for a in args))

            def log_error(self, fmt, *args):
                outer._limiter(logging.INFO, "request", "k8saudit webhook: " + fmt, *(_safe(a) for a in args))

            def _send(self, code: int, body: str, close: bool = False) -> None:
                data = (body + "\n").encode() if body else b""
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                if close:
                    self.send_header("Connection", "close")
                self.end_headers()
                if data and self.command != "HEAD":
                    self.wfile.write(data)

            def _discard(self, n: int, deadline: float) -> None:
                # read (and drop) the refused body within the deadline, so the client, still
                # sending, reads the 413 instead of a connection reset
                try:
                    self.wfile.flush()
                    while n > 0 and time.monotonic() < deadline:
                        chunk = self.rfile.read1(min(n, 1 << 16)) if hasattr(self.rfile, "read1") \
                            else self.rfile.read(min(n, 1 << 16))
                        if not chunk:
                            break
                        n -= len(chunk)
                except (OSError, ValueError):
                    pass
                self.close_connection = True

            def _ours(self) -> bool:
                if self.path.split("?", 1)[0] != outer.endpoint:
                    self._send(404, "not found")
                    return False
                return True

            def do_POST(self):  # noqa: N802
                if not self._ours():
                    return
                deadline = time.monotonic() + outer.request_timeout
                if "application/json" not in (self.headers.get("Content-Type") or ""):
                    outer._count("bad_requests")
                    self._send(400, "wrong Content Type", close=True)
                    return
                te = (self.headers.get("Transfer-Encoding") or "").strip().lower()
                if te:
                    if te != "chunked":
                        outer._count("bad_requests")
                        self._send(400, f"unsupported Transfer-Encoding {clean_text(te[:40])}", close=True)
                        return
                    try:
                        body = self._read_chunked(outer.max_batch_size)
                    except ValueError as exc:
                        outer._count("bad_requests")
                        self._send(400, f"bad chunked body: {exc}", close=True)
                        return
                    if body is None:
                        outer._count("oversized")
                        self._send(413, f"request body too large (limit {outer.max_batch_size} bytes)", close=True)
                        self._discard(outer.max_batch_size, deadline)
                        return
                    self._answer(body, deadline)
                    return
                length = self.headers.get("Content-Length")
                try:
                    n = int(length) if length is not None else -1
                except ValueError:
                    n = -2
                if n == -1:
                    self._send(411, "Content-Length required", close=True)
                    return
                if n < 0:
                    outer._count("bad_requests")
                    self._send(400, "bad Content-Length", close=True)
                    return
                if n > outer.max_batch_size:
                    outer._count("oversized")
                    outer._limiter(logging.WARNING, "oversized", "k8saudit webhook: refused a %d-byte body "
                                   "(webhookMaxBatchSize %d)", n, outer.max_batch_size)
                    self._send(413, f"request body too large (limit {outer.max_batch_size} bytes)", close=True)
                    self._discard(n, deadline)
                    return
                body = self.rfile.read(n)
                if len(body) != n:   # the client went away mid-body: nothing to answer
                    outer._count("errors")
                    self.close_connection = True
                    return
                self._answer(body, deadline)

            def _read_chunked(self, limit: int) -> bytes | None:
                """A chunked body (None when it grows past ``limit``; ValueError when malformed)."""
                body = bytearray()
                while True:
                    line = self.rfile.readline(1024)
                    if not line.endswith(b"\n"):
                        raise ValueError("truncated chunk size line")
                    size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                    if size < 0:
                        raise ValueError("negative chunk size")
                    if size == 0:
                        for _ in range(64):      # trailers, up to the blank line
                            if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                                return bytes(body)
                        raise ValueError("too many trailers")
                    if len(body) + size > limit:
                        return None
                    chunk = self.rfile.read(size)
                    if len(chunk) != size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                        raise ValueError("truncated chunk")
                    body += chunk

            def _answer(self, body: bytes, deadline: float) -> None:
                try:
                    code, msg = outer._accept(body, self.headers, deadline)
                except (OSError, ssl.SSLError):
                    raise
                except Exception as exc:  # noqa: BLE001 - one body must never stop the webhook
                    outer._count("bad_requests")
                    outer._limiter(logging.ERROR, "handler", "k8saudit webhook: %s: %s", type(exc).__name__,
                                   clean_text(str(exc)[:200]))
                    code, msg = 400, "bad request"
                self._send(code, msg)

            def _not_allowed(self):
                if self._ours():
                    self._send(405, f"{clean_text(self.command)} method not allowed")

            do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed

        return Handler


def _safe(arg: Any) -> Any:
    return clean_text(arg[:512]) if isinstance(arg, str) else arg


def parse_header_fields(entries: Any, fail: Callable[[str], Exception]) -> list[HeaderField]:
    """``customFieldsHeaders`` entries -> HeaderField objects (``fail(msg)`` builds the error)."""
    if entries in (None, ""):
        return []
    if not isinstance(entries, list):
        raise fail("customFieldsHeaders must be a list")
    out = []
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("header"), str) or not e["header"]:
            raise fail("customFieldsHeaders entries need a 'header' string")
        fields = e.get("customFields")
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
            raise fail(f"customFieldsHeaders {e['header']!r}: 'customFields' must be a list of names")
        pattern = e.get("pattern")
        if pattern is not None and not isinstance(pattern, str):
            raise fail(f"customFieldsHeaders {e['header']!r}: 'pattern' must be a string")
        try:
            out.append(HeaderField(e["header"], fields, pattern))
        except (ValueError, re.error) as exc:
            raise fail(str(exc)) from None
    return out
