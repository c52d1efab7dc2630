# SPDX-License-Identifier: Apache-2.0
"""A reload never stalls the capture: the outputs it replaces are stopped off the event loop.

Live (root, modern_ebpf): the agent's http output points at a receiver that holds every request
until the test releases it, so the old output is blocked in a delivery with alerts queued behind
it. A SIGHUP then switches the http output to a working receiver. While the old output is still
blocked (its request unanswered, nothing failed or dropped), the agent keeps matching every new
event and the new output delivers them: the loop did not wait for the old output. Released, the
old output delivers everything it held; the exit account of the http output (old + new) equals
what the two receivers hold.

In process: Outputs.retire() with a channel whose delivery blocks (a stand-in for a destination
that hangs; the live test has the real one): counters merged, shutdown bounded, the blocked
alerts counted as not delivered.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

import pytest

from agenttools import Receiver
from pyfalco.outputs import Alert, Channel, Formatter, Outputs
from test_faults import HANG_GUARD, LiveAgent, _require_root


class HeldServer:
    """A loopback HTTP server that answers each POST only after ``release`` is set."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.release = threading.Event()
        self.received = 0       # requests read
        self.answered = 0       # requests answered 200 (the sender got its answer)
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket):
        with c:
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                while len(body) < length:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                with self.lock:
                    self.received += 1
                self.release.wait()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                with self.lock:
                    self.answered += 1
            except OSError:
                return

    def close(self):
        self.release.set()
        self.sock.close()


def _wait(pred, guard: float = HANG_GUARD) -> bool:
    end = time.monotonic() + guard
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def test_reload_does_not_wait_for_a_blocked_output(tmp_path):
    _require_root()
    held, good = HeldServer(), Receiver()
    # a delivery may take 60 s (output_timeout): the old output stays blocked until released
    agent = LiveAgent(tmp_path, {"http_output": {"enabled": True, "url": held.url()}, "output_timeout": 60000})
    try:
        agent.start()
        agent.generate(20)
        agent.wait_matched()
        assert _wait(lambda: held.received >= 1), agent.stderr()[-3000:]
        before = agent.snapshot()
        assert before.get("falco.outputs.http.sent", 0) == 0

        cfg = json.loads(agent.config.read_text())
        cfg["http_output"]["url"] = good.url()
        agent.config.write_text(json.dumps(cfg))
        agent.proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: "reloaded:" in agent.stderr()), agent.stderr()[-3000:]

        # after the reload: every new event matched and delivered by the new output while the
        # old output is still blocked in its first delivery
        agent.generate(50)
        agent.wait_matched()
        assert good.wait(50, timeout=HANG_GUARD), (len(good.bodies), agent.stderr()[-3000:])
        assert _wait(lambda: agent.saw(lambda m: m.get("falco.rules.Fault load", 0) >= agent.generated
                                       and m.get("falco.outputs_retiring") == 1
                                       and m.get("falco.outputs.http.sent", 0) >= 50))
        assert held.answered == 0
        snap = agent.snapshot()
        assert snap.get("falco.outputs.http.failed", 0) == 0 and snap.get("falco.outputs.http.dropped_shutdown") == 0, snap

        # released: the old output delivers what it held and finishes
        held.release.set()
        assert _wait(lambda: agent.saw(lambda m: m.get("falco.outputs_retiring") == 0
                                       and m.get("falco.outputs.http.sent", 0) >= held.received + len(good.bodies)
                                       and held.answered >= 21)), (agent.snapshot(), held.answered)
        took, acc = agent.stop()
    finally:
        agent.kill()
        held.close()
        good.close()
    c = acc["http"]
    assert c["offered"] == c["sent"] + c["failed"] + c["dropped_full"] + c["dropped_shutdown"], c
    # nothing lost: every alert offered was delivered, to the old receiver or the new one
    assert c["failed"] == 0 and c["dropped_full"] == 0 and c["dropped_shutdown"] == 0, c
    assert c["sent"] == held.answered + len(good.bodies), (c, held.answered, len(good.bodies))
    assert held.answered >= 21 and len(good.bodies) >= 50
    print(json.dumps({"case": "reload with a blocked http output", "sigterm_s": round(took, 2), "account": c,
                      "old_receiver": held.answered, "new_receiver": len(good.bodies)}))


class _Gate(Channel):
    """A channel whose delivery blocks until ``gate`` is set (stands in for a hung destination)."""

    name = "gate"

    def __init__(self):
        super().__init__(Formatter(), capacity=100)
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.delivered: list[Alert] = []

    def deliver(self, batch):
        self.entered.set()
        self.gate.wait()
        self.delivered.extend(batch)

    def interrupt(self):
        pass        # a destination that cannot be interrupted: stop() must abandon it


def _alert(i: int) -> Alert:
    return Alert("r", 4, time.time_ns(), f"alert {i}", {})


def test_retire_delivers_or_counts_and_keeps_the_account():
    old_ch, new_ch = _Gate(), _Gate()
    old, new = Outputs([old_ch], Formatter()).start(), Outputs([new_ch], Formatter()).start()
    old.emit(_alert(0))
    assert old_ch.entered.wait(10)
    for i in range(1, 5):
        old.emit(_alert(i))
    t = new.retire(old, timeout=60.0)
    new_ch.gate.set()
    new.emit(_alert(5))
    assert _wait(lambda: new_ch.sent == 1)
    # the old set is still stopping: its counters are in the new set's account already
    assert t.is_alive() and new.retiring == 1
    assert new.counters()["gate"] == {"offered": 6, "queued": 6, "dropped_full": 0, "sent": 1, "failed": 0,
                                      "dropped_shutdown": 0, "pending": 5}
    old_ch.gate.set()       # the destination answers: everything it held is delivered
    t.join(HANG_GUARD)
    assert not t.is_alive() and new.retiring == 0
    assert [a.message for a in old_ch.delivered] == [f"alert {i}" for i in range(5)]
    assert new.counters()["gate"]["sent"] == 6 and new.counters()["gate"]["pending"] == 0


def test_shutdown_abandons_a_retiring_set_that_stays_blocked():
    old_ch = _Gate()
    old, new = Outputs([old_ch], Formatter()).start(), Outputs([], Formatter()).start()
    old.emit(_alert(0))
    assert old_ch.entered.wait(10)
    old.emit(_alert(1))
    new.retire(old, timeout=600.0)
    new.stop(timeout=0.5)       # bounded by its own timeout, not the retiring set's 600 s
    c = new.counters()["gate"]
    assert c["dropped_shutdown"] == 2 and c["sent"] == 0 and c["pending"] == 0, c
    old_ch.gate.set()
    assert old_ch.sent == 0     # abandoned: what it held is counted once, never also as sent
