# SPDX-License-Identifier: Apache-2.0
"""The destinations of Falco's outputs: stdout, file, syslog, program and http(s).

Each one is a :class:`~pyfalco.outputs.base.Channel`; they only differ in how a batch of
rendered lines reaches its destination.
"""

from __future__ import annotations

import errno
import gzip
import http.client
import logging
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from typing import IO

from .alert import Alert
from .base import Channel, Formatter

__all__ = ["StdoutChannel", "FileChannel", "SyslogChannel", "ProgramChannel", "HttpChannel"]

log = logging.getLogger("pyfalco.outputs")


def _lines(formatter: Formatter, batch: list[Alert]) -> bytes:
    return "".join(formatter(a) + "\n" for a in batch).encode("utf-8", "replace")


class StdoutChannel(Channel):
    """Alert lines on standard output (flushed per batch unless buffered_outputs)."""

    name = "stdout"

    def __init__(self, formatter: Formatter, capacity: int = 0, buffered: bool = False,
                 stream: IO[bytes] | None = None):
        super().__init__(formatter, capacity)
        self.buffered = buffered
        self.stream = stream

    def deliver(self, batch):
        out = self.stream if self.stream is not None else sys.stdout.buffer
        out.write(_lines(self.formatter, batch))
        if not self.buffered:
            out.flush()

    def close_dest(self):
        out = self.stream if self.stream is not None else sys.stdout.buffer
        try:
            out.flush()
        except (OSError, ValueError):
            pass


class FileChannel(Channel):
    """Appends alert lines to a file. ``keep_alive`` keeps it open (and reopens it on SIGUSR1,
    for log rotation); otherwise it is opened and closed around every batch, as Falco does."""

    name = "file"

    def __init__(self, formatter: Formatter, filename: str, capacity: int = 0, keep_alive: bool = False,
                 buffered: bool = False):
        super().__init__(formatter, capacity)
        self.filename = filename
        self.keep_alive = keep_alive
        self.buffered = buffered
        self._f = None

    def open(self):
        if self.keep_alive and self._f is None:
            self._f = open(self.filename, "ab", buffering=1 << 16)

    def deliver(self, batch):
        data = _lines(self.formatter, batch)
        if self.keep_alive:
            if self._f is None:
                self.open()
            self._f.write(data)
            if not self.buffered:
                self._f.flush()
        else:
            with open(self.filename, "ab") as f:
                f.write(data)

    def close_dest(self):
        f, self._f = self._f, None
        if f is not None:
            f.close()


class SyslogChannel(Channel):
    """syslog(3)-style datagrams (facility user, level from the priority) to ``address``
    (``/dev/log`` by default; a unix datagram or stream socket)."""

    name = "syslog"
    FACILITY_USER = 1
    MAX_DATAGRAM = 8192

    def __init__(self, formatter: Formatter, address: str = "/dev/log", capacity: int = 0,
                 ident: str = "pyfalco"):
        super().__init__(formatter, capacity)
        self.address = address
        self.ident = ident
        self._sock: socket.socket | None = None
        self._stream = False

    def open(self):
        if self._sock is not None:
            return
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.connect(self.address)
            self._stream = False
        except OSError as exc:
            s.close()
            if exc.errno != errno.EPROTOTYPE:
                raise
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.address)
            self._stream = True
        s.settimeout(5.0)
        self._sock = s

    def deliver(self, batch):
        failed = 0
        for alert in batch:
            pri = self.FACILITY_USER * 8 + alert.priority
            stamp = time.strftime("%b %d %H:%M:%S", time.localtime(alert.time_ns // 1_000_000_000))
            line = self.formatter(alert)
            msg = f"<{pri}>{stamp} {self.ident}[{os.getpid()}]: {line}".encode("utf-8", "replace")
            try:
                if self._sock is None:
                    self.open()
                if self._stream:
                    self._sock.sendall(msg + b"\n")
                else:
                    self._sock.send(msg[:self.MAX_DATAGRAM] if len(msg) > self.MAX_DATAGRAM else msg)
            except OSError as exc:
                self.close_dest()  # reconnect next time (syslogd restarted)
                failed += 1
                self.note_error(f"{self.address}: {exc}")
        return failed

    def close_dest(self):
        s, self._sock = self._sock, None
        if s is not None:
            s.close()


class ProgramChannel(Channel):
    """Pipes alert lines to the standard input of ``program`` (a command line from the
    configuration, run by ``/bin/sh -c``; event data never reaches the command line).
    ``keep_alive`` keeps one process for all alerts; otherwise one runs per batch."""

    name = "program"

    def __init__(self, formatter: Formatter, program: str, capacity: int = 0, keep_alive: bool = False,
                 timeout: float = 2.0):
        super().__init__(formatter, capacity)
        self.program = program
        self.keep_alive = keep_alive
        self.timeout = timeout
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(["/bin/sh", "-c", self.program], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL if self.keep_alive else None,
                                close_fds=True, start_new_session=True)

    def deliver(self, batch):
        data = _lines(self.formatter, batch)
        if self.keep_alive:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                if proc is not None:
                    log.warning("output program: %r exited with %s; restarting it", self.program,
                                proc.returncode)
                with self._lock:
                    proc = self._proc = self._spawn()
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                self.close_dest()
                raise
            return 0
        with self._lock:
            proc = self._proc = self._spawn()
        try:
            proc.communicate(data, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            raise TimeoutError(f"{self.program!r} did not finish within {self.timeout:g}s") from None
        finally:
            self._proc = None
        if proc.returncode:
            self.note_error(f"{self.program!r} exited with {proc.returncode}")
        return 0

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            pass

    def close_dest(self):
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)

    def interrupt(self):
        proc = self._proc
        if proc is not None:
            self._kill(proc)


class HttpChannel(Channel):
    """POSTs every alert to ``url`` (http or https) with the standard library only.

    TLS: ``insecure`` skips verification; ``ca_cert`` (a file), ``ca_bundle`` (a file) and
    ``ca_path`` (a directory) add trust anchors; ``mtls`` with ``client_cert``/``client_key``
    authenticates the client. ``compress_uploads`` gzips bodies (Content-Encoding: gzip);
    ``keep_alive`` reuses one connection. A status >= 400 is a failed delivery. After
    ``max_consecutive_timeouts`` timeouts in a row the destination is given a short rest
    (alerts in that time are counted as failed) so a dead server cannot hold the queue."""

    name = "http"

    def __init__(self, formatter: Formatter, url: str, capacity: int = 0, user_agent: str = "falcosecurity/falco",
                 insecure: bool = False, ca_cert: str = "", ca_bundle: str = "", ca_path: str = "",
                 mtls: bool = False, client_cert: str = "", client_key: str = "", echo: bool = False,
                 compress_uploads: bool = False, keep_alive: bool = False, timeout: float = 2.0,
                 max_consecutive_timeouts: int = 5, rest: float = 5.0):
        super().__init__(formatter, capacity, batch=1)
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"http_output.url: not an http(s) URL: {url!r}")
        self.url = url
        self.https = u.scheme == "https"
        self.host = u.hostname
        self.port = u.port or (443 if self.https else 80)
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.user_agent = user_agent
        self.echo = echo
        self.compress = compress_uploads
        self.keep_alive = keep_alive
        self.timeout = timeout
        self.max_timeouts = max(1, int(max_consecutive_timeouts))
        self.rest = rest
        self._timeouts = 0
        self._rest_until = 0.0
        self._conn: http.client.HTTPConnection | None = None
        self._cur: http.client.HTTPConnection | None = None
        self.status_counts: dict[int, int] = {}
        self._ctx = None
        if self.https:
            ctx = ssl.create_default_context(cafile=ca_cert or ca_bundle or None, capath=ca_path or None) \
                if (ca_cert or ca_bundle or ca_path) else ssl.create_default_context()
            if ca_cert and ca_bundle:
                ctx.load_verify_locations(cafile=ca_bundle)
            if insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if mtls or (client_cert and client_key):
                if not (client_cert and client_key):
                    raise ValueError("http_output.mtls needs client_cert and client_key")
                ctx.load_cert_chain(client_cert, client_key)
            self._ctx = ctx

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _post(self, body: bytes) -> int:
        headers = {"Content-Type": self.formatter.content_type, "User-Agent": self.user_agent,
                   "Accept": "*/*"}
        if self.compress:
            body = gzip.compress(body, 5)
            headers["Content-Encoding"] = "gzip"
        if not self.keep_alive:
            headers["Connection"] = "close"
        conn = self._conn if self.keep_alive else None
        if conn is not None and conn.sock is not None and select.select([conn.sock], [], [], 0)[0]:
            conn.close()   # the server closed the idle kept-alive connection: start a new one
            conn = self._conn = None
        if conn is None:
            conn = self._connect()
        self._cur = conn
        try:
            conn.request("POST", self.path, body, headers)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            # no retry: the server may have got the alert; it is counted as failed, never twice
            conn.close()
            self._conn = None
            raise
        if self.keep_alive and not resp.will_close:
            self._conn = conn
        else:
            conn.close()
            self._conn = None
        if self.echo and data:
            sys.stdout.buffer.write(data + (b"" if data.endswith(b"\n") else b"\n"))
            sys.stdout.buffer.flush()
        return resp.status

    def deliver(self, batch):
        failed = 0
        for alert in batch:
            now = time.monotonic()
            if now < self._rest_until:
                failed += 1
                continue
            try:
                status = self._post(self.formatter(alert).encode("utf-8", "replace"))
            except (socket.timeout, TimeoutError) as exc:
                failed += 1
                self._timeouts += 1
                self.note_error(f"{self.url}: timeout ({exc})")
                if self._timeouts >= self.max_timeouts:
                    self._rest_until = time.monotonic() + self.rest
                    self._timeouts = 0
                continue
            except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
                failed += 1
                self.note_error(f"{self.url}: {type(exc).__name__}: {exc}")
                continue
            self._timeouts = 0
            self.status_counts[status] = self.status_counts.get(status, 0) + 1
            if status >= 400:
                failed += 1
                self.note_error(f"{self.url}: HTTP {status}")
            else:
                self.last_error = None
        return failed

    def close_dest(self):
        c, self._conn = self._conn, None
        if c is not None:
            c.close()

    def interrupt(self):
        c = self._cur
        if c is not None and c.sock is not None:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
