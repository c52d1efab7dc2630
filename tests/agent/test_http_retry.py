# SPDX-License-Identifier: Apache-2.0
"""The HTTP output sends a request again only when not one byte of it left (no duplicate is
possible), once: a refused connect, a kept-alive connection the server had reset. A request
that failed after its bytes left is counted as failed and never sent twice. Real loopback
servers; no root needed."""

from __future__ import annotations

import socket
import struct
import threading

from pyfalco.outputs import Alert, Formatter, HttpChannel
from pyfalco.outputs import channels as channels_mod

JSON = Formatter(json_output=True)


def _alert(i: int) -> Alert:
    return Alert("r", 4, 1700000000000000000 + i, f"alert {i}", {"i": i}, host="h")


def _accounted(ch: HttpChannel) -> dict:
    c = ch.counters()
    assert c["offered"] == c["sent"] + c["failed"] + c["dropped_full"] + c["dropped_shutdown"] + c["pending"], c
    return c


class KeepAliveServer:
    """Answers requests on kept-alive connections; ``reset_after_answers`` answers on a
    connection, then resets it (RST, SO_LINGER 0) without waiting for the next request;
    ``reset_on_request`` resets a connection as soon as a request arrived (never answers)."""

    def __init__(self, reset_after_answers: int = 0, reset_on_request: bool = False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.reset_after = reset_after_answers
        self.reset_on_request = reset_on_request
        self.requests: list[bytes] = []
        self.connections = 0
        self.reset_done = threading.Event()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def _accept(self) -> None:
        while not self._closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _reset(c: socket.socket) -> None:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()

    def _serve(self, c: socket.socket) -> None:
        buf, answered = b"", 0
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(65536)
                    if not data:
                        c.close()
                        return
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                n = int([ln.split(b":", 1)[1] for ln in head.split(b"\r\n")
                         if ln.lower().startswith(b"content-length:")][0])
                while len(rest) < n:
                    rest += c.recv(65536)
                body, buf = rest[:n], rest[n:]
                self.requests.append(body)
                if self.reset_on_request:
                    self._reset(c)
                    return
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                answered += 1
                if self.reset_after and answered >= self.reset_after:
                    self._reset(c)
                    self.reset_done.set()
                    return
        except OSError:
            c.close()

    def close(self) -> None:
        self._closed = True
        self.sock.close()


def test_refused_connect_is_tried_once_more_and_counted_once():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                 # nothing listens there
    ch = HttpChannel(JSON, f"http://127.0.0.1:{port}/x", timeout=1.0).start()
    for i in range(3):
        ch.offer(_alert(i))
    ch.stop(10)
    c = _accounted(ch)
    assert c["failed"] == 3 and c["sent"] == 0
    assert ch.retries == 3                    # one more connect per alert, not more
    assert "ConnectionRefused" in (ch.last_error or "")


def test_request_whose_bytes_left_is_never_sent_twice():
    srv = KeepAliveServer(reset_on_request=True)
    try:
        ch = HttpChannel(JSON, srv.url(), timeout=2.0).start()
        ch.offer(_alert(0))
        ch.stop(10)
    finally:
        srv.close()
    c = _accounted(ch)
    assert c["failed"] == 1 and c["sent"] == 0 and ch.retries == 0
    assert len(srv.requests) == 1             # the server got it once: it may have acted on it


def test_kept_alive_connection_reset_by_the_server_is_sent_again(monkeypatch):
    """The race the idle check cannot close: the server resets the kept-alive connection
    after the check and before the request. The check is made to miss the reset here (the one
    stand-in of this test: select() says "nothing to read"); the reset itself is real."""
    srv = KeepAliveServer(reset_after_answers=1)
    try:
        ch = HttpChannel(JSON, srv.url(), keep_alive=True, timeout=2.0).start()
        ch.offer(_alert(0))
        assert srv.reset_done.wait(10)
        for _ in range(1000):
            if not ch.pending:
                break
            threading.Event().wait(0.01)
        real_select = channels_mod.select.select
        monkeypatch.setattr(channels_mod.select, "select",
                            lambda r, w, x, t=None: ([], [], []) if t == 0 else real_select(r, w, x, t))
        ch.offer(_alert(1))
        ch.stop(10)
    finally:
        srv.close()
    c = _accounted(ch)
    assert c["sent"] == 2 and c["failed"] == 0 and ch.retries == 1, (c, ch.last_error)
    assert [b.count(b'"i":') for b in srv.requests] == [1, 1]    # each alert arrived once
    assert srv.connections == 2
