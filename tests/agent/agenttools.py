# SPDX-License-Identifier: Apache-2.0
"""Helpers for the agent tests: capture files, rules, loopback HTTP(S) receivers with
programmable faults, a unix-socket syslog listener, and a bounded CLI runner."""

from __future__ import annotations

import gzip
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from http_sink import make_server

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CAPTURES = SHARED / "captures"
CURL_SCAP = CAPTURES / "libs_curl_google.scap"
PYFALCO = [sys.executable, "-m", "pyfalco.cli.main"]

#: 8 opens below /etc in libs_curl_google.scap
ETC_RULES = """
- rule: Etc open
  desc: an open below /etc
  condition: evt.type = open and evt.arg.name startswith /etc
  output: "open below etc (file=%evt.arg.name res=%evt.res fd=%evt.rawres tid=%thread.tid proc=%proc.name)"
  priority: WARNING
  tags: [filesystem, testing]
"""
ETC_ALERTS = 8


@pytest.fixture
def etc_rules(tmp_path) -> Path:
    p = tmp_path / "etc_rules.yaml"
    p.write_text(ETC_RULES)
    return p


def base_config(tmp_path: Path, **extra) -> Path:
    """A config file for tests: no syslog, no webserver, no stderr noise unless asked."""
    cfg = {"stdout_output": {"enabled": True}, "syslog_output": {"enabled": False},
           "webserver": {"enabled": False}, "log_syslog": False, "config_files": [],
           "rules_files": [], "append_output": [], "watch_config_files": False}
    for k, v in extra.items():
        cfg[k] = v
    p = tmp_path / "pyfalco.yaml"
    p.write_text(json.dumps(cfg))
    return p


def run_cli(args, timeout=60, env=None, **kw) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("FALCO_HOSTNAME", "test-host")
    if env:
        e.update(env)
    return subprocess.run(PYFALCO + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env=e, cwd=str(REPO), **kw)


def popen_cli(args, env=None, **kw) -> subprocess.Popen:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("FALCO_HOSTNAME", "test-host")
    if env:
        e.update(env)
    return subprocess.Popen(PYFALCO + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=e, cwd=str(REPO), **kw)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# ---- HTTP receiver ----------------------------------------------------------------------------

class Receiver:
    """A loopback HTTP(S) server recording POSTs. ``mode``: ok, error (500), slow (sleeps
    ``delay`` before answering)."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.bodies: list[bytes] = []
        self.headers: list[dict] = []
        self.connections = set()
        self.mode = "ok"
        self.delay = 0.0
        self.lock = threading.Lock()
        self.events: list[str] = []     # what the server saw, for a failing test's message

        def record(handler, body: bytes) -> None:
            if handler.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.mode == "slow":
                time.sleep(self.delay)
            with self.lock:
                self.bodies.append(body)
                self.headers.append(dict(handler.headers))
                self.connections.add(handler.client_address)

        self.server = make_server(record, self.note, lambda: 500 if self.mode == "error" else 200)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def note(self, what: str) -> None:
        with self.lock:
            self.events.append(f"{time.strftime('%H:%M:%S')} {what}")

    def url(self, scheme="http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/alerts"

    def wait(self, n: int, timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if len(self.bodies) >= n:
                return True
            time.sleep(0.02)
        return len(self.bodies) >= n

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class ProcessReceiver:
    """The same as :class:`Receiver` (POST bodies in ``bodies``, ``url()``, ``events``, ``note``)
    served by tests/agent/http_sink.py in a process of its own: what reaches it does not depend
    on how busy the pytest process (and its GIL) is."""

    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("http_sink.py")), str(self.dir)],
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def url(self, scheme="http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/alerts"

    @property
    def bodies(self) -> list[bytes]:
        try:
            data = (self.dir / "bodies").read_bytes()
        except FileNotFoundError:
            return []
        out, i = [], 0
        while i + 4 <= len(data):
            n = int.from_bytes(data[i:i + 4], "big")
            if i + 4 + n > len(data):
                break       # a record being written
            out.append(data[i + 4:i + 4 + n])
            i += 4 + n
        return out

    @property
    def events(self) -> list[str]:
        try:
            return (self.dir / "events").read_text().splitlines()
        except FileNotFoundError:
            return []

    def note(self, what: str) -> None:
        with open(self.dir / "events", "a") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} {what}\n")

    def close(self):
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def process_receiver(tmp_path):
    r = ProcessReceiver(tmp_path / "http-sink")
    yield r
    r.close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> dict:
    """A self-signed CA, a server certificate for 127.0.0.1 and a client certificate (openssl CLI)."""
    d = tmp_path_factory.mktemp("pki")

    def sh(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d, timeout=60)

    sh("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
       "-subj", "/CN=pyfalco test CA")
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        sh("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
           "-subj", f"/CN={'127.0.0.1' if name == 'server' else 'pyfalco client'}")
        sh("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
           "-out", f"{name}.pem", "-days", "2", *(["-extfile", "san.cnf"] if name == "server" else []))
    return {k: str(d / f) for k, f in (("ca", "ca.pem"), ("server_cert", "server.pem"), ("server_key", "server.key"),
                                         ("client_cert", "client.pem"), ("client_key", "client.key"))}


def tls_context(pki: dict, require_client: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server_cert"], pki["server_key"])
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki["ca"])
    return ctx


# ---- syslog listener ----------------------------------------------------------------------------

class SyslogListener:
    def __init__(self, path: str):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[bytes] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(65536))
            except socket.timeout:
                continue
            except OSError:
                return

    def wait(self, n, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.messages) < n:
            time.sleep(0.02)
        return len(self.messages) >= n

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def syslog_listener(tmp_path):
    s = SyslogListener(str(tmp_path / "log.sock"))
    yield s
    s.close()


def is_root() -> bool:
    return os.geteuid() == 0
