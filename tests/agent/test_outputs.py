# SPDX-License-Identifier: Apache-2.0
"""Outputs against real receivers on loopback and unix sockets, and their faults.

Every alert offered is accounted for: offered = sent + failed + dropped_full + dropped_shutdown.
"""

from __future__ import annotations

import io
import json
import os
import socket
import ssl
import sys
import threading
import time

import pytest

from agenttools import Receiver, tls_context
from pyfalco.outputs import (Alert, FileChannel, Formatter, HttpChannel, Outputs, ProgramChannel, StdoutChannel,
                             SyslogChannel)

TS = 1700000000123456789


def alerts(n, prefix="a"):
    return [Alert(f"rule {i % 3}", 4, TS + i, f"{prefix} message {i}", {"evt.time": TS + i, "i": i},
                  tags={"t"}, host="h") for i in range(n)]


def accounted(ch):
    c = ch.counters()
    assert c["offered"] == c["sent"] + c["failed"] + c["dropped_full"] + c["dropped_shutdown"] + c["pending"], c
    return c


JSON = Formatter(json_output=True)


def test_stdout_channel_writes_lines():
    buf = io.BytesIO()
    ch = StdoutChannel(JSON, stream=buf).start()
    for a in alerts(5):
        ch.offer(a)
    ch.stop(5)
    lines = buf.getvalue().decode().splitlines()
    assert [json.loads(x)["output_fields"]["i"] for x in lines] == list(range(5))
    assert accounted(ch)["sent"] == 5


@pytest.mark.parametrize("keep_alive", [False, True])
def test_file_output(tmp_path, keep_alive):
    path = tmp_path / "events.txt"
    ch = FileChannel(Formatter(False), str(path), keep_alive=keep_alive).start()
    for a in alerts(20):
        ch.offer(a)
    ch.stop(5)
    lines = path.read_text().splitlines()
    assert len(lines) == 20 and lines[3].endswith(": Warning a message 3")
    assert accounted(ch)["sent"] == 20


def test_file_output_reopen_after_rotation(tmp_path):
    path = tmp_path / "events.txt"
    ch = FileChannel(JSON, str(path), keep_alive=True).start()
    ch.offer(alerts(1)[0])
    deadline = time.monotonic() + 5
    while ch.sent < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.rename(path, tmp_path / "events.txt.1")
    ch.request_reopen()
    time.sleep(0.2)
    ch.offer(alerts(2)[1])
    ch.stop(5)
    assert len(path.read_text().splitlines()) == 1
    assert len((tmp_path / "events.txt.1").read_text().splitlines()) == 1


def test_syslog_output_unix_socket(syslog_listener):
    ch = SyslogChannel(Formatter(False), syslog_listener.path).start()
    items = alerts(3)
    items[1].priority = 2
    for a in items:
        ch.offer(a)
    assert syslog_listener.wait(3)
    ch.stop(5)
    msgs = [m.decode() for m in syslog_listener.messages]
    assert msgs[0].startswith("<12>") and msgs[1].startswith("<10>")   # user facility * 8 + level
    assert " pyfalco[" in msgs[0] and msgs[0].endswith("Warning a message 0")
    assert accounted(ch)["sent"] == 3


def test_syslog_destination_missing_is_counted(tmp_path):
    ch = SyslogChannel(JSON, str(tmp_path / "nobody.sock")).start()
    for a in alerts(4):
        ch.offer(a)
    ch.stop(5)
    c = accounted(ch)
    assert c["failed"] == 4 and c["sent"] == 0


@pytest.mark.parametrize("keep_alive", [False, True])
def test_program_output_gets_alerts_on_stdin(tmp_path, keep_alive):
    out = tmp_path / "prog.out"
    ch = ProgramChannel(JSON, f"cat >> {out}", keep_alive=keep_alive).start()
    hostile = Alert("r", 4, TS, "x; rm -rf / $(touch pwned) `id`", {"fd.name": "'; touch pwned2; '"}, host="h")
    for a in alerts(5) + [hostile]:
        ch.offer(a)
    ch.stop(5)
    lines = out.read_text().splitlines()
    assert len(lines) == 6
    assert json.loads(lines[-1])["output_fields"]["fd.name"] == "'; touch pwned2; '"
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned") and not os.path.exists("pwned2")
    assert accounted(ch)["sent"] == 6


def test_program_that_blocks_never_stalls_the_producer(tmp_path):
    ch = ProgramChannel(JSON, "sleep 30", keep_alive=True, capacity=50).start()
    t0 = time.monotonic()
    for a in alerts(2000, prefix="x" * 200):
        ch.offer(a)
    assert time.monotonic() - t0 < 1.0       # offering never blocks
    t0 = time.monotonic()
    ch.stop(1.0)
    assert time.monotonic() - t0 < 5.0       # the blocked program is killed at shutdown
    c = accounted(ch)
    assert c["dropped_full"] > 0 and c["offered"] == 2000


def test_http_output_posts_json(receiver):
    ch = HttpChannel(JSON, receiver.url(), user_agent="pyfalco-test").start()
    for a in alerts(5):
        ch.offer(a)
    assert receiver.wait(5)
    ch.stop(5)
    bodies = [json.loads(b) for b in receiver.bodies]
    assert [b["output_fields"]["i"] for b in bodies] == list(range(5))
    h = receiver.headers[0]
    assert h["Content-Type"] == "application/json" and h["User-Agent"] == "pyfalco-test"
    assert accounted(ch)["sent"] == 5


def test_http_gzip_and_keep_alive(receiver):
    ch = HttpChannel(Formatter(False), receiver.url(), compress_uploads=True, keep_alive=True).start()
    for a in alerts(6):
        ch.offer(a)
    assert receiver.wait(6)
    ch.stop(5)
    assert receiver.headers[0]["Content-Encoding"] == "gzip" and receiver.headers[0]["Content-Type"] == "text/plain"
    assert receiver.bodies[2].decode().endswith("Warning a message 2")
    assert len(receiver.connections) == 1           # one kept-alive connection
    assert accounted(ch)["sent"] == 6


def test_https_with_self_signed_ca(pki):
    rec = Receiver(tls=tls_context(pki))
    try:
        ch = HttpChannel(JSON, rec.url("https"), ca_cert=pki["ca"]).start()
        for a in alerts(3):
            ch.offer(a)
        assert rec.wait(3)
        ch.stop(5)
        assert accounted(ch)["sent"] == 3
        # without the CA the certificate is refused ...
        bad = HttpChannel(JSON, rec.url("https"), ca_path="/nonexistent").start()
        bad.offer(alerts(1)[0])
        bad.stop(5)
        assert bad.failed == 1 and "CERTIFICATE_VERIFY_FAILED" in (bad.last_error or "")
        # ... unless insecure
        ins = HttpChannel(JSON, rec.url("https"), insecure=True).start()
        ins.offer(alerts(1)[0])
        ins.stop(5)
        assert ins.sent == 1
    finally:
        rec.close()


def test_https_mtls(pki):
    rec = Receiver(tls=tls_context(pki, require_client=True))
    try:
        ch = HttpChannel(JSON, rec.url("https"), ca_cert=pki["ca"], mtls=True, client_cert=pki["client_cert"],
                         client_key=pki["client_key"]).start()
        ch.offer(alerts(1)[0])
        assert rec.wait(1)
        ch.stop(5)
        assert ch.sent == 1
        nocert = HttpChannel(JSON, rec.url("https"), ca_cert=pki["ca"]).start()
        nocert.offer(alerts(1)[0])
        nocert.stop(5)
        assert nocert.failed == 1
    finally:
        rec.close()


def test_http_destination_down_is_counted():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                 # nothing listens there
    ch = HttpChannel(JSON, f"http://127.0.0.1:{port}/x", timeout=0.5).start()
    for a in alerts(10):
        ch.offer(a)
    ch.stop(10)
    c = accounted(ch)
    assert c["failed"] == 10 and c["sent"] == 0
    assert "ConnectionRefused" in ch.last_error


def test_http_500_is_a_failure(receiver):
    receiver.mode = "error"
    ch = HttpChannel(JSON, receiver.url()).start()
    for a in alerts(4):
        ch.offer(a)
    assert receiver.wait(4)
    ch.stop(5)
    c = accounted(ch)
    assert c["failed"] == 4 and ch.status_counts == {500: 4} and "HTTP 500" in ch.last_error


def test_http_slow_destination_fills_only_its_queue(receiver):
    receiver.mode, receiver.delay = "slow", 0.3
    buf = io.BytesIO()
    fast = StdoutChannel(JSON, stream=buf)
    slow = HttpChannel(JSON, receiver.url(), timeout=0.2, capacity=20, max_consecutive_timeouts=100)
    outs = Outputs([fast, slow], JSON).start()
    t0 = time.monotonic()
    for a in alerts(500):
        outs.emit(a)
    assert time.monotonic() - t0 < 1.0
    outs.stop(timeout=1.0)
    assert len(buf.getvalue().splitlines()) == 500           # the fast output got everything
    c = accounted(slow)
    assert c["dropped_full"] >= 400 and c["failed"] >= 1
    assert outs.take_drops() == c["dropped_full"]


def test_queue_full_counts_exact_drops():
    gate = threading.Event()

    class Gated(StdoutChannel):
        def deliver(self, batch):
            gate.wait(5)
            return super().deliver(batch)

    buf = io.BytesIO()
    ch = Gated(JSON, capacity=10, stream=buf).start()
    for a in alerts(100):
        ch.offer(a)
    gate.set()
    ch.stop(5)
    c = accounted(ch)
    assert c["sent"] == len(buf.getvalue().splitlines())
    assert c["sent"] + c["dropped_full"] == 100 and 10 <= c["sent"] <= 11


def test_outputs_from_config(tmp_path, receiver):
    from pyfalco.agent.config import load_config
    p = tmp_path / "c.yaml"
    p.write_text(json.dumps({"json_output": True, "stdout_output": {"enabled": False},
                             "syslog_output": {"enabled": False},
                             "file_output": {"enabled": True, "filename": str(tmp_path / "f.txt")},
                             "http_output": {"enabled": True, "url": receiver.url()},
                             "program_output": {"enabled": True, "program": f"cat > {tmp_path / 'p.txt'}"}}))
    outs = Outputs.from_config(load_config(str(p)).data).start()
    assert sorted(c.name for c in outs.channels) == ["file", "http", "program"]
    for a in alerts(3):
        outs.emit(a)
    assert receiver.wait(3)
    outs.stop(5)
    assert len((tmp_path / "f.txt").read_text().splitlines()) == 3
    assert outs.counters()["http"]["sent"] == 3
