# SPDX-License-Identifier: Apache-2.0
"""The destinations of Falco's outputs: stdout, file, syslog, program and http(s).

Each one is a :class:`~pyfalco.outputs.base.Channel`; they only differ in how a batch of
rendered lines reaches its destination.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import gzip
import http.client
import logging
import os
import select
import socket
import ssl
import struct
import subprocess
import sys
import termios
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
    for log rotation); otherwise it is opened and closed around every batch, as Falco does.

    Writes are unbuffered ``write(2)`` calls of whole batches: on a full disk or a read-only
    path the alerts whose line did not reach the file in full are counted as failed (a short
    write is accounted line by line), and nothing is kept in a buffer to be written twice."""

    name = "file"

    def __init__(self, formatter: Formatter, filename: str, capacity: int = 0, keep_alive: bool = False,
                 buffered: bool = False):
        super().__init__(formatter, capacity)
        self.filename = filename
        self.keep_alive = keep_alive
        self.buffered = buffered    # kept for the configuration; a batch is one write already
        self._fd: int | None = None

    def _open_fd(self) -> int:
        return os.open(self.filename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def open(self):
        if self.keep_alive and self._fd is None:
            self._fd = self._open_fd()

    def deliver(self, batch):
        lines = [(self.formatter(a) + "\n").encode("utf-8", "replace") for a in batch]
        data = b"".join(lines)
        fd = self._fd if self.keep_alive else None
        if fd is None:
            fd = self._open_fd()     # raises: the whole batch failed
            if self.keep_alive:
                self._fd = fd
        off = 0
        err: OSError | None = None
        try:
            while off < len(data):
                off += os.write(fd, data[off:])
        except OSError as exc:
            err = exc
        finally:
            if not self.keep_alive:
                os.close(fd)
        if err is None:
            return 0
        if self.keep_alive:
            self.close_dest()        # reopened for the next batch (the path may be back)
        done, n = 0, 0
        for ln in lines:
            n += len(ln)
            if n > off:
                break
            done += 1
        failed = len(batch) - done
        self.note_error(f"{self.filename}: {err.strerror or err}", failed)
        return failed

    def close_dest(self):
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


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
        s.settimeout(2.0)  # a syslogd that stops reading fails the alert, never holds the worker long
        self._sock = s

    def deliver(self, batch):
        failed = 0
        for alert in batch:
            pri = self.FACILITY_USER * 8 + alert.priority
            stamp = time.strftime("%b %d %H:%M:%S", time.localtime(alert.time_ns // 1_000_000_000))
            head = f"<{pri}>{stamp} {self.ident}[{os.getpid()}]: "
            msg = (head + self.formatter(alert)).encode("utf-8", "replace")
            if len(msg) > self.MAX_DATAGRAM and not self._stream:
                # too long for one datagram: shorten the strings, not the line (JSON stays valid)
                for n in (2048, 512, 128, 32):
                    msg = (head + self.formatter(alert.truncated(n))).encode("utf-8", "replace")
                    if len(msg) <= self.MAX_DATAGRAM:
                        break
            try:
                if self._sock is None:
                    self.open()
                if self._stream:
                    self._sock.sendall(msg + b"\n")
                else:
                    if len(msg) > self.MAX_DATAGRAM:  # cut on a character boundary: stays valid UTF-8
                        msg = msg[:self.MAX_DATAGRAM].decode("utf-8", "ignore").encode("utf-8")
                    self._sock.send(msg)
            except OSError as exc:
                self.close_dest()  # reconnect next time (syslogd restarted)
                failed += 1
                self.note_error(f"{self.address}: {exc}")
        return failed

    def close_dest(self):
        s, self._sock = self._sock, None
        if s is not None:
            s.close()

    def interrupt(self):
        s = self._sock
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ProgramChannel(Channel):
    """Pipes alert lines to the standard input of ``program`` (a command line from the
    configuration, run by ``/bin/sh -c``; event data never reaches the command line, only the
    program's standard input). ``keep_alive`` keeps one process for all alerts; otherwise one
    runs per batch and must finish within ``timeout``.

    Accounting is exact: the agent keeps a duplicate of the pipe's read end, so when the
    program exits (or is killed) the bytes it never read are known (FIONREAD) and the alerts
    they hold are counted as failed, not sent. A non-zero exit fails the batch. A program that
    keeps exiting is restarted at most once per second; batches in between fail (counted)."""

    name = "program"
    #: keep line ends of the last alerts written to a keep-alive process at least this far back
    #: (more than any pipe buffer the agent leaves at its default size)
    _TRACK_BYTES = 1 << 20

    def __init__(self, formatter: Formatter, program: str, capacity: int = 0, keep_alive: bool = False,
                 timeout: float = 2.0):
        super().__init__(formatter, capacity)
        self.program = program
        self.keep_alive = keep_alive
        self.timeout = timeout
        self._proc: subprocess.Popen | None = None
        self._w: int | None = None      # write end (non-blocking)
        self._r: int | None = None      # the agent's copy of the read end (unread bytes)
        self._written = 0               # bytes written to the current process
        self._ends: collections.deque = collections.deque()  # cumulative end offset of each alert line
        self._last_spawn = 0.0
        self._lock = threading.Lock()
        self.restarts = 0

    # -- process ------------------------------------------------------------------------------
    def _spawn(self) -> None:
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", self.program], stdin=r,
                                    stdout=subprocess.DEVNULL if self.keep_alive else None,
                                    close_fds=True, start_new_session=True)
        except OSError:
            os.close(r)
            os.close(w)
            raise
        os.set_blocking(w, False)
        with self._lock:
            self._proc, self._w, self._r = proc, w, r
            self._written = 0
            self._ends.clear()
            self._last_spawn = time.monotonic()

    def _unread(self) -> int:
        r = self._r
        if r is None:
            return 0
        try:
            return struct.unpack("i", fcntl.ioctl(r, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return 0

    def _lost_alerts(self) -> int:
        """Alerts written to the current process whose line it did not read in full."""
        consumed = self._written - self._unread()
        return sum(1 for e in self._ends if e > consumed)

    def _reap(self, wait: float) -> tuple[int | None, int]:
        """Close the write end, wait up to ``wait`` s for the program (kill it after), close the
        read end. Returns (exit status, alerts left unread)."""
        with self._lock:
            proc, w = self._proc, self._w
            self._w = None
        if w is not None:
            os.close(w)
        if proc is None:
            return None, 0
        try:
            proc.wait(max(0.0, wait))
        except subprocess.TimeoutExpired:
            self._kill(proc)
        lost = self._lost_alerts()
        with self._lock:
            r, self._r, self._proc = self._r, None, None
            self._ends.clear()
        if r is not None:
            os.close(r)
        return proc.returncode, lost

    def _write(self, data: bytes, line_ends: list[int], deadline: float) -> int:
        """Write ``data`` (lines ending at ``line_ends``) before ``deadline``; returns how many
        alerts were not written in full (the program exited or stopped reading)."""
        view = memoryview(data)
        off = 0
        proc, w = self._proc, self._w
        while off < len(data):
            try:
                off += os.write(w, view[off:off + 65536])
                continue
            except BlockingIOError:
                pass
            except (BrokenPipeError, OSError, TypeError):
                break
            if proc.poll() is not None or time.monotonic() >= deadline:
                break
            select.select([], [w], [], min(0.05, max(0.0, deadline - time.monotonic())))
        base = self._written
        self._written += off
        done = 0
        for e in line_ends:
            if e > off:
                break
            self._ends.append(base + e)
            done += 1
        while self._ends and self._ends[0] < self._written - self._TRACK_BYTES:
            self._ends.popleft()
        return len(line_ends) - done

    # -- delivery -------------------------------------------------------------------------------
    def deliver(self, batch):
        lines = [(self.formatter(a) + "\n").encode("utf-8", "replace") for a in batch]
        ends, n = [], 0
        for ln in lines:
            n += len(ln)
            ends.append(n)
        data = b"".join(lines)
        deadline = time.monotonic() + self.timeout
        if self.keep_alive:
            return self._deliver_kept(batch, data, ends, deadline)
        self._spawn()
        unwritten = self._write(data, ends, deadline)
        status, lost = self._reap(deadline - time.monotonic())
        if status:
            why = f"killed after {self.timeout:g}s (or by signal {-status})" if status < 0 else f"exited with {status}"
            self.note_error(f"{self.program!r} {why}", len(batch))
            return len(batch)
        if unwritten or lost:
            self.note_error(f"{self.program!r} did not read {max(unwritten, lost)} alert(s)", max(unwritten, lost))
        return max(unwritten, lost)

    def _deliver_kept(self, batch, data, ends, deadline) -> int:
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            status, lost = self._reap(0)
            self.reclassify_failed(lost)
            self.log_limited(logging.WARNING, "exit", "output program: %r exited with %s (%d alert(s) left "
                             "unread); restarting it", self.program, status, lost)
            proc = None
        if proc is None:
            if time.monotonic() - self._last_spawn < 1.0:
                self.note_error(f"{self.program!r} keeps exiting; restarting it at most once a second", len(batch))
                return len(batch)
            self._spawn()
            self.restarts += 1
        unwritten = self._write(data, ends, deadline)
        if unwritten:
            self.note_error(f"{self.program!r} did not read its input within {self.timeout:g}s", unwritten)
        return unwritten

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
        if self._proc is None:
            return
        _status, lost = self._reap(min(self.timeout, 1.0))
        self.reclassify_failed(lost)
        if lost:
            log.warning("output program: %d alert(s) left unread by %r at close", lost, self.program)

    def interrupt(self):
        proc = self._proc
        if proc is not None:
            self._kill(proc)


class _CountingSend:
    """Counts the request bytes the socket accepted (``bytes_sent``): a request that failed
    before any byte left can be sent again without any risk of a duplicate."""

    bytes_sent = 0

    def send(self, data):
        if self.sock is None:
            if not self.auto_open:
                raise http.client.NotConnected()
            self.connect()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            super().send(data)   # not used by HttpChannel (bodies are bytes); counted as sent at all
            self.bytes_sent += 1
            return
        view = memoryview(data).cast("B")
        while view:
            n = self.sock.send(view)
            self.bytes_sent += n
            view = view[n:]


class _HTTPConnection(_CountingSend, http.client.HTTPConnection):
    """Plain HTTP with the byte count."""


class _HTTPSConnection(_CountingSend, http.client.HTTPSConnection):
    """``conn.sock`` is the TLS socket during the handshake too, so the watchdog can cut a
    server that trickles its handshake (the standard class assigns it only afterwards)."""

    def connect(self):
        http.client.HTTPConnection.connect(self)
        host = self._tunnel_host or self.host
        self.sock = self._context.wrap_socket(self.sock, server_hostname=host, do_handshake_on_connect=False)
        self.sock.do_handshake()


class _ResponseTooLarge(Exception):
    """The HTTP answer body is over the limit."""


class HttpChannel(Channel):
    """POSTs every alert to ``url`` (http or https) with the standard library only.

    TLS: ``insecure`` skips verification; ``ca_cert`` (a file), ``ca_bundle`` (a file) and
    ``ca_path`` (a directory) add trust anchors; ``mtls`` with ``client_cert``/``client_key``
    authenticates the client. ``compress_uploads`` gzips bodies (Content-Encoding: gzip);
    ``keep_alive`` reuses one connection. A status >= 400 is a failed delivery. After
    ``max_consecutive_timeouts`` timeouts in a row the destination is given a short rest
    (alerts in that time are counted as failed) so a dead server cannot hold the queue.

    Bounds: every request (connect, send, the whole answer) must finish within ``timeout``
    seconds in total -- a watchdog shuts the socket down at the deadline, so a server trickling
    a byte at a time cannot hold the output -- and an answer body larger than ``max_response``
    bytes fails the request unread (an endless body cannot grow the agent's memory)."""

    name = "http"
    MAX_RESPONSE = 1 << 20

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
        self.max_response = self.MAX_RESPONSE
        self._conn: http.client.HTTPConnection | None = None
        self._cur: http.client.HTTPConnection | None = None
        self._deadline: float | None = None
        self._expired = False
        self._wd_cv = threading.Condition()
        self._wd: threading.Thread | None = None
        self.status_counts: dict[int, int] = {}
        self.retries = 0            # requests sent again after a failure before any byte left
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
            return _HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._ctx)
        return _HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _post(self, body: bytes) -> int:
        headers = {"Content-Type": self.formatter.content_type, "User-Agent": self.user_agent,
                   "Accept": "*/*"}
        if self.compress:
            body = gzip.compress(body, 5)
            headers["Content-Encoding"] = "gzip"
        if not self.keep_alive:
            headers["Connection"] = "close"
        self._arm(time.monotonic() + self.timeout)
        retried = False
        while True:
            conn = self._conn if self.keep_alive else None
            if conn is not None and conn.sock is not None and select.select([conn.sock], [], [], 0)[0]:
                conn.close()   # the server closed the idle kept-alive connection: start a new one
                conn = self._conn = None
            if conn is None:
                conn = self._connect()
            conn.bytes_sent = 0
            with self._wd_cv:
                self._cur = conn
                expired = self._expired
            try:
                if expired:
                    raise TimeoutError("deadline passed")
                conn.request("POST", self.path, body, headers)
                resp = conn.getresponse()
                data = resp.read(self.max_response + 1)
                if len(data) > self.max_response:
                    raise _ResponseTooLarge(f"answer body larger than {self.max_response} bytes (not read)")
            except BaseException as exc:
                conn.close()
                self._conn = None
                with self._wd_cv:
                    expired = self._expired
                # Sent again only when not one byte of it left (refused or reset connect, a kept-alive
                # socket the server had closed): the server cannot have the alert, so there is no
                # duplicate. Once, and within the same total time. Anything else is counted as failed,
                # never sent twice (the server may have got it).
                if (not retried and not expired and not self._halt and conn.bytes_sent == 0 and isinstance(exc, OSError)
                        and not isinstance(exc, (socket.timeout, TimeoutError, ssl.SSLError))):
                    retried = True
                    self.retries += 1
                    continue
                expired = self._disarm()
                # a socket timeout (per operation, the TLS handshake's included) can only fire
                # once the request is that old: the same total-time limit the watchdog enforces,
                # whichever of the two noticed it first
                if (expired and not isinstance(exc, _ResponseTooLarge)) or isinstance(exc, (socket.timeout, TimeoutError)):
                    raise TimeoutError(f"no complete answer within {self.timeout:g}s") from None
                raise
            break
        self._disarm()
        if self.keep_alive and not resp.will_close:
            self._conn = conn
        else:
            conn.close()
            self._conn = None
        if self.echo and data:
            sys.stdout.buffer.write(data + (b"" if data.endswith(b"\n") else b"\n"))
            sys.stdout.buffer.flush()
        return resp.status

    # -- total-time watchdog -------------------------------------------------------------------
    def _arm(self, deadline: float) -> None:
        with self._wd_cv:
            self._deadline = deadline
            self._expired = False
            if self._wd is None or not self._wd.is_alive():
                self._wd = threading.Thread(target=self._watchdog, name="pyfalco-output-http-watchdog",
                                            daemon=True)
                self._wd.start()
            self._wd_cv.notify()

    def _disarm(self) -> bool:
        """End of a request; True when the watchdog cut it."""
        with self._wd_cv:
            self._deadline = None
            self._cur = None
            return self._expired

    def _watchdog(self) -> None:
        idle_since = time.monotonic()
        while True:
            with self._wd_cv:
                d = self._deadline
                now = time.monotonic()
                if d is None:
                    if now - idle_since > 30.0:  # no request for a while: end; the next one restarts it
                        self._wd = None
                        return
                    self._wd_cv.wait(1.0)
                    continue
                idle_since = now
                if now < d:
                    self._wd_cv.wait(d - now)
                    continue
                self._deadline = None
                self._expired = True
                conn = self._cur
            if conn is not None and conn.sock is not None:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def deliver(self, batch):
        failed = 0
        for alert in batch:
            now = time.monotonic()
            if now < self._rest_until:
                failed += 1
                self.note_error(f"{self.url}: resting {self.rest:g}s after {self.max_timeouts} timeouts in a row")
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
            except (OSError, http.client.HTTPException, ssl.SSLError, _ResponseTooLarge) as exc:
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
