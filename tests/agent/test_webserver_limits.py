# SPDX-License-Identifier: Apache-2.0
"""The webserver against hostile clients (real sockets on 127.0.0.1): idle and half-open
connections, a TLS client that never handshakes, a client trickling its request, connection
resets, a connection flood; loopback by default; replay and --dry-run leave the port alone."""

from __future__ import annotations

import json
import os
import logging
import re
import socket
import ssl
import struct
import threading
import time
import urllib.request

import pytest

from agenttools import CURL_SCAP, ETC_ALERTS, base_config, json_lines, run_cli
from pyfalco.agent.config import load_config
from pyfalco.agent.webserver import WebServer

HANG_GUARD = 30.0   # only "it happened at all"; the timings go to docs/reliability.md


def _server(**cfg) -> WebServer:
    base = {"listen_address": "127.0.0.1", "listen_port": 0, "k8s_healthz_endpoint": "/healthz"}
    base.update(cfg)
    timeout = base.pop("request_timeout", 1.0)
    cap = base.pop("max_connections", 256)
    return WebServer(base, lambda: {"pyfalco_version": "test"}, None, request_timeout=timeout,
                     max_connections=cap).start()


def _healthz(port: int, ctx: ssl.SSLContext | None = None) -> dict:
    scheme = "https" if ctx else "http"
    with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/healthz", timeout=HANG_GUARD, context=ctx) as r:
        return json.loads(r.read())


def _still_open(s: socket.socket) -> bool:
    """True while the peer has neither closed nor reset ``s`` (nothing to read yet)."""
    try:
        return s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _wait_closed(s: socket.socket, timeout: float = HANG_GUARD) -> bool:
    s.settimeout(timeout)
    try:
        while True:
            if s.recv(4096) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_no_configuration_binds_loopback():
    cfg = load_config(None, (), defaults_if_missing=True).data
    assert cfg["webserver"]["listen_address"] in ("127.0.0.1", "::1", "localhost")
    ws = WebServer({"listen_port": 0}, dict, None).start()   # no address at all: loopback too
    try:
        assert ws._sock.getsockname()[0] == "127.0.0.1"
    finally:
        ws.stop()


def test_idle_tcp_connection_does_not_block_tls(pki):
    ctx_srv_cert = pki["server_cert"]
    # the webserver takes one PEM holding the certificate and its key
    pem = ctx_srv_cert + ".both.pem"
    with open(pem, "w") as f:
        f.write(open(pki["server_cert"]).read() + open(pki["server_key"]).read())
    # a deadline well past the probe's, so "still open" means "not waited for", on a busy machine too
    ws = _server(ssl_enabled=True, ssl_certificate=pem, request_timeout=8.0)
    client_ctx = ssl.create_default_context(cafile=pki["ca"])
    idle = socket.create_connection(("127.0.0.1", ws.port))
    try:
        time.sleep(0.2)
        assert _healthz(ws.port, client_ctx) == {"status": "ok"}
        # the answer came while the idle connection was still open: the accept loop did not
        # wait for its handshake
        assert _still_open(idle)
        # ... and the idle one is closed at its deadline, not kept forever
        assert _wait_closed(idle)
        assert ws.timed_out >= 1
    finally:
        idle.close()
        ws.stop()


def test_tls_client_that_stops_mid_handshake_is_cut_off(pki):
    pem = pki["server_cert"] + ".both2.pem"
    with open(pem, "w") as f:
        f.write(open(pki["server_cert"]).read() + open(pki["server_key"]).read())
    ws = _server(ssl_enabled=True, ssl_certificate=pem, request_timeout=1.0, threadiness=1)
    client_ctx = ssl.create_default_context(cafile=pki["ca"])
    stuck = socket.create_connection(("127.0.0.1", ws.port))
    try:
        stuck.sendall(b"\x16\x03\x01")   # the first bytes of a ClientHello, then nothing
        time.sleep(0.2)
        # the single worker is held by the stuck handshake until its deadline; then it serves
        assert _wait_closed(stuck)
        assert _healthz(ws.port, client_ctx) == {"status": "ok"}
    finally:
        stuck.close()
        ws.stop()


def test_many_half_open_connections_use_no_threads_and_do_not_lock_out_probes():
    ws = _server(request_timeout=20.0, max_connections=200)
    before = threading.active_count()
    conns = []
    try:
        for _ in range(600):
            conns.append(socket.create_connection(("127.0.0.1", ws.port)))
        time.sleep(0.5)
        # no thread per connection: the webserver's threads are its accept thread and workers,
        # and the process has no more threads than before the flood
        ws_threads = [t for t in threading.enumerate() if t.name.startswith("pyfalco-webserver")]
        assert len(ws_threads) == 1 + ws.workers
        assert threading.active_count() <= before
        assert _healthz(ws.port) == {"status": "ok"}
        assert ws.evicted >= 600 - 200
        # the oldest idle connections were the ones closed
        assert not _still_open(conns[0]) and _still_open(conns[-1])
    finally:
        for c in conns:
            c.close()
        ws.stop()


def test_trickling_client_is_cut_off_at_its_deadline():
    ws = _server(request_timeout=1.0)
    s = socket.create_connection(("127.0.0.1", ws.port))
    request = b"GET /healthz HTTP/1.0\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n\r\n"
    sent = 0
    try:
        end = time.monotonic() + HANG_GUARD
        closed = False
        while time.monotonic() < end and sent < len(request):
            try:
                s.sendall(request[sent:sent + 1])
            except OSError:
                closed = True
                break
            sent += 1
            if not _still_open(s):
                closed = True
                break
            time.sleep(0.1)
        assert closed and sent < len(request), f"sent {sent} of {len(request)} bytes, never cut off"
        assert _healthz(ws.port) == {"status": "ok"}
    finally:
        s.close()
        ws.stop()


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_connection_resets_never_reach_stderr(capfd, caplog, pki, tls):
    extra = {}
    if tls:
        pem = pki["server_cert"] + ".both3.pem"
        with open(pem, "w") as f:
            f.write(open(pki["server_cert"]).read() + open(pki["server_key"]).read())
        extra = {"ssl_enabled": True, "ssl_certificate": pem}
    ws = _server(request_timeout=2.0, **extra)
    # https: the first bytes of a ClientHello, then a reset mid-handshake
    msgs = (b"\x16\x03\x01\x02\x00\x01", b"\x16") if tls else (b"GET /healthz HTTP/1.0\r\n\r\n", b"GET /heal")
    ctx = ssl.create_default_context(cafile=pki["ca"]) if tls else None
    try:
        with caplog.at_level(logging.DEBUG, logger="pyfalco.agent"):
            for i in range(50):
                s = socket.create_connection(("127.0.0.1", ws.port))
                s.sendall(msgs[i % 2])
                # SO_LINGER 0: close sends a RST
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            assert _healthz(ws.port, ctx) == {"status": "ok"}
            time.sleep(0.5)
    finally:
        ws.stop()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception" not in err, err
    # what is logged about them is rate-limited: far fewer lines than resets
    lines = [r for r in caplog.records if "webserver" in r.getMessage() and r.levelno >= logging.INFO]
    assert len(lines) < 10


def test_bad_requests_get_an_answer_not_a_crash():
    ws = _server(request_timeout=2.0)
    try:
        for raw in (b"\x00\xff garbage\r\n\r\n", b"GET /" + b"a" * 70000 + b" HTTP/1.0\r\n\r\n",
                    b"POST /healthz HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
                    b"GET /healthz HTTP/1.0\r\n" + b"X: y\r\n" * 200 + b"\r\n"):
            s = socket.create_connection(("127.0.0.1", ws.port))
            s.settimeout(HANG_GUARD)
            try:
                s.sendall(raw)
            except OSError:
                pass
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            s.close()
            # an error status (a request without a version gets an HTTP/0.9-style error page)
            assert data == b"" or re.match(rb"HTTP/1\.[01] [45]\d\d ", data) \
                or b"Error code explanation: 4" in data, data[:80]
        assert _healthz(ws.port) == {"status": "ok"}
    finally:
        ws.stop()


# ---- the agent: replay, --dry-run and a busy port ----------------------------------------------

@pytest.fixture
def busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def _cfg(tmp_path, etc_rules, port, **ws):
    cfg = base_config(tmp_path, rules_files=[str(etc_rules)], json_output=True)
    data = json.loads(cfg.read_text())
    data.pop("webserver")   # the defaults: enabled, not asked for explicitly
    if ws:
        data["webserver"] = ws
    data.setdefault("webserver", {})["listen_port"] = port
    cfg.write_text(json.dumps(data))
    return cfg


def test_replay_leaves_the_webserver_off_unless_asked(tmp_path, etc_rules, busy_port):
    cfg = _cfg(tmp_path, etc_rules, busy_port)
    r = run_cli(["-c", cfg, "-e", CURL_SCAP])
    assert r.returncode == 0, r.stderr
    assert len(json_lines(r.stdout)) == ETC_ALERTS
    assert "webserver listening" not in r.stderr and "cannot listen" not in r.stderr
    # asked for on the command line: it starts, and the busy port is one clear line, exit 1
    r = run_cli(["-c", cfg, "-e", CURL_SCAP, "-o", "webserver.enabled=true"])
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    bad = [x for x in r.stderr.splitlines() if "cannot listen" in x]
    assert len(bad) == 1 and f"127.0.0.1:{busy_port}" in bad[0] and "in use" in bad[0], r.stderr


def test_replay_with_a_user_config_asking_for_it(tmp_path, etc_rules):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    cfg = _cfg(tmp_path, etc_rules, port, enabled=True)
    r = run_cli(["-c", cfg, "-e", CURL_SCAP])
    assert r.returncode == 0, r.stderr
    assert f"webserver listening on 127.0.0.1:{port}" in r.stderr


def test_dry_run_leaves_the_port_alone(tmp_path, etc_rules, busy_port):
    cfg = _cfg(tmp_path, etc_rules, busy_port, enabled=True)
    r = run_cli(["-c", cfg, "--dry-run"])
    assert r.returncode == 0, r.stderr
    assert "webserver listening" not in r.stderr and "cannot listen" not in r.stderr


def test_live_engine_busy_port_is_one_line(tmp_path, etc_rules, busy_port):
    cfg = _cfg(tmp_path, etc_rules, busy_port, enabled=True)
    r = run_cli(["-c", cfg, "-o", "engine.kind=nodriver", "-M", "5"])
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    bad = [x for x in r.stderr.splitlines() if "cannot listen" in x]
    assert len(bad) == 1 and "in use" in bad[0], r.stderr


def test_request_lines_are_escaped_in_the_log(caplog):
    ws = _server(request_timeout=2.0)
    try:
        with caplog.at_level(logging.DEBUG, logger="pyfalco.agent"):
            for raw in (b"GET /a\x1b[2J\xc2\x85\xe2\x80\xa8b HTTP/1.0\r\n\r\n", b"\x1b[31mBAD\x9b\r\n\r\n"):
                s = socket.create_connection(("127.0.0.1", ws.port))
                s.settimeout(HANG_GUARD)
                s.sendall(raw)
                while s.recv(65536):
                    pass
                s.close()
            time.sleep(0.3)
    finally:
        ws.stop()
    msgs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("webserver:")]
    assert any("\\x1b[2J" in m for m in msgs), msgs
    for m in msgs:
        assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", m), m


def test_replay_with_the_packaged_default_configuration(tmp_path, etc_rules, busy_port):
    """No -c: the packaged default configuration enables the webserver for live runs; that is
    not an explicit request, so a replay leaves the (busy) port alone."""
    if os.path.exists("/etc/pyfalco/pyfalco.yaml"):
        pytest.fail("/etc/pyfalco/pyfalco.yaml exists here: this test needs the packaged default")
    r = run_cli(["-e", CURL_SCAP, "-r", etc_rules, "-o", f"webserver.listen_port={busy_port}",
                 "-o", "syslog_output.enabled=false", "-o", "json_output=true"])
    assert r.returncode == 0, r.stderr
    assert len(json_lines(r.stdout)) == ETC_ALERTS
    assert "webserver listening" not in r.stderr and "cannot listen" not in r.stderr
