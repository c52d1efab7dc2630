# SPDX-License-Identifier: Apache-2.0
"""Fault tests, live (root, modern_ebpf): the agent runs for real while one destination fails --
HTTP to a closed port, to a server that never answers, to a slow one (1 alert/s), to one that
streams an endless body or trickles its answer; a program that exits at once, one that never
reads; a file on a full disk (a small tmpfs) and on a read-only one; syslog missing; SIGTERM
under load; a full ring buffer.

For each: the capture loop keeps going (every generated event matched its rule, read from the
agent's own metrics snapshots while the fault is on), the alerts that could not be delivered
are counted (in the metrics snapshots while the agent runs; offered = sent + failed + dropped
in the account the agent logs at exit; the destination holds exactly what was counted as
sent), and the process exits after SIGTERM.
The time SIGTERM took is printed and, with PYFALCO_FAULT_REPORT=<file>, appended there as JSON
(docs/reliability.md); the only time limit asserted is a hang guard.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from agenttools import REPO, Receiver, base_config, is_root

pytestmark = pytest.mark.root

HANG_GUARD = 30.0
ALERTS = int(os.environ.get("PYFALCO_FAULT_ALERTS", "200"))     # token opens per case
RATE = 100.0                                                     # token opens per second
LOAD_RATE = int(os.environ.get("PYFALCO_FAULT_LOAD_RATE", "50000"))   # loadgen ev/s under SIGTERM
ACCOUNT = re.compile(r"output (\w+): (\d+) offered: (\d+) sent, (\d+) failed, (\d+) dropped \(queue full\), "
                     r"(\d+) not delivered at shutdown")


def _require_root():
    if not is_root():
        pytest.fail("fault tests need root (live eBPF, tmpfs mounts)")


# ---- destinations that misbehave ------------------------------------------------------------------

class RawServer:
    """A loopback TCP server whose every connection runs ``handler(conn)`` in a thread."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.requests = 0
        self.conns: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.recv(65536)
            self.requests += 1
            self.handler(c)
        except OSError:
            pass
        finally:
            c.close()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def close(self):
        self.closed = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def _silent(c):       # reads the request, never answers
    while c.recv(65536):
        pass


def _endless(c):      # 200 OK with a chunked body that never ends
    c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    while True:
        c.sendall(chunk)


def _trickle(c):      # the answer, one byte every half second
    for b in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
        c.sendall(bytes([b]))
        time.sleep(0.5)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _mount_tmpfs(path: Path, opts: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True, capture_output=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture(scope="module")
def loadgen(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("loadgen") / "loadgen"
    subprocess.run(["cc", "-O2", "-o", str(out), str(REPO / "tools" / "bench" / "loadgen.c")], check=True,
                   capture_output=True, timeout=120)
    return str(out)


# ---- the agent under test -------------------------------------------------------------------------

class LiveAgent:
    """pyfalco on modern_ebpf with two rules (a "ready" file and a "load" file), metrics
    snapshots every 500 ms to a file, and the outputs of one fault case."""

    def __init__(self, tmp: Path, outputs: dict, **extra):
        self.tmp = tmp
        self.token = f"flt{uuid.uuid4().hex[:8]}"
        self.ready_file = tmp / f"{self.token}-ready"
        self.load_file = tmp / f"{self.token}-load"
        self.metrics_file = tmp / "metrics.jsonl"
        rules = tmp / "rules.yaml"
        rules.write_text(f"""
- rule: Fault ready
  desc: the test's ready file
  condition: evt.type in (open, openat, openat2) and evt.dir = < and fd.name = {self.ready_file}
  output: "ready (file=%fd.name)"
  priority: NOTICE
- rule: Fault load
  desc: the test's load file
  condition: evt.type in (open, openat, openat2) and evt.dir = < and fd.name = {self.load_file}
  output: "load (file=%fd.name proc=%proc.name tid=%thread.tid cmdline=%proc.cmdline)"
  priority: WARNING
""")
        cfg = {"rules_files": [str(rules)], "json_output": True, "stdout_output": {"enabled": False},
               "engine": {"kind": "modern_ebpf", "modern_ebpf": {"buf_size_preset": 4}},
               "metrics": {"enabled": True, "interval": "500ms", "output_rule": False,
                           "output_file": str(self.metrics_file)}}
        cfg.update(outputs)
        cfg.update(extra)
        self.config = base_config(tmp, **cfg)
        self.stderr_path = tmp / "agent.err"
        self.generated = 0
        self.matched = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> "LiveAgent":
        env = dict(os.environ, PYTHONPATH=str(REPO), FALCO_HOSTNAME="test-host")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "pyfalco.cli.main", "-c", str(self.config), "-M", "300"],
                                     stdout=subprocess.DEVNULL, stderr=self._err, env=env, cwd=str(self.tmp))
        end = time.monotonic() + 60
        while time.monotonic() < end and self.proc.poll() is None:
            os.close(os.open(self.ready_file, os.O_CREAT | os.O_WRONLY, 0o600))
            if self.snapshot().get("falco.rules.Fault ready", 0) >= 1:
                return self
            time.sleep(0.2)
        raise AssertionError(f"the agent did not come up:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def snapshots(self) -> list[dict]:
        try:
            text = self.metrics_file.read_text()
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line)["output_fields"])
            except (ValueError, KeyError):
                pass
        return out

    def snapshot(self) -> dict:
        s = self.snapshots()
        return s[-1] if s else {}

    def generate(self, n: int = ALERTS, rate: float = RATE) -> None:
        t0 = time.monotonic()
        for i in range(n):
            os.close(os.open(self.load_file, os.O_CREAT | os.O_WRONLY, 0o600))
            self.generated += 1
            delay = t0 + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def saw(self, pred) -> bool:
        """Whether some metrics snapshot the agent wrote satisfies ``pred``."""
        return any(pred(m) for m in self.snapshots())

    def wait_matched(self, exact: bool = True, guard: float = HANG_GUARD) -> dict:
        """The capture loop kept going: every load open reached its rule (agent's own count)."""
        end = time.monotonic() + guard
        snap = {}
        while time.monotonic() < end:
            snap = self.snapshot()
            if snap.get("falco.rules.Fault load", 0) >= self.generated:
                break
            time.sleep(0.2)
        self.matched = snap.get("falco.rules.Fault load", 0)
        if exact:
            # all matched; on a machine busy with other work the driver may drop one or two of
            # them, which then must be in its drop counter
            m = self.matched = snap.get("falco.rules.Fault load", 0)
            assert m == self.generated or (m >= self.generated - 2 and snap.get("scap.n_drops", 0) > 0), \
                (snap, self.stderr()[-3000:])
        return snap

    def stop(self) -> tuple[float, dict]:
        """SIGTERM; (seconds until the process was gone, {output: account at exit})."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(HANG_GUARD)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"no exit within {HANG_GUARD}s of SIGTERM:\n{self.stderr()[-3000:]}")
        took = time.monotonic() - t0
        self._err.close()
        err = self.stderr()
        assert code == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        acc = {}
        for m in ACCOUNT.finditer(err):
            offered, sent, failed, full, shut = (int(x) for x in m.groups()[1:])
            acc[m.group(1)] = {"offered": offered, "sent": sent, "failed": failed, "dropped_full": full,
                               "dropped_shutdown": shut}
        return took, acc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _accounted(acc: dict, name: str, matched: int) -> dict:
    c = acc[name]
    assert c["offered"] == c["sent"] + c["failed"] + c["dropped_full"] + c["dropped_shutdown"], c
    assert c["offered"] >= matched + 1, c      # the ready alert(s) and every matched load alert were offered
    return c


def _report(case: str, took: float, acc: dict, snap: dict, **more) -> None:
    row = {"case": case, "sigterm_s": round(took, 2), "accounts": acc,
           "matched": snap.get("falco.rules.Fault load"), "n_drops": snap.get("scap.n_drops"),
           "rss_mb": snap.get("falco.memory_rss_mb"), **more}
    print(json.dumps(row))
    path = os.environ.get("PYFALCO_FAULT_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def _lines_in(path: Path) -> int:
    """Complete lines (a line cut short by a full disk does not count)."""
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


# ---- the cases ------------------------------------------------------------------------------------

def _run_case(tmp_path, case: str, outputs: dict, check, *, generate=True, settled=None, **extra):
    _require_root()
    agent = LiveAgent(tmp_path, outputs, **extra)
    try:
        agent.start()
        if generate:
            agent.generate()
        snap = agent.wait_matched()
        if settled is not None:      # let the failures show in a snapshot before SIGTERM
            end = time.monotonic() + HANG_GUARD
            while not agent.saw(settled) and time.monotonic() < end:
                time.sleep(0.2)
        took, acc = agent.stop()
    finally:
        agent.kill()
    more = check(agent, acc, snap) or {}
    _report(case, took, acc, snap, **more)
    return agent, acc, snap


def test_http_closed_port(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/"

    def check(agent, acc, snap):
        c = _accounted(acc, "http", agent.matched)
        assert c["sent"] == 0 and c["failed"] >= agent.matched
        assert "Connection refused" in agent.stderr() or "ConnectionRefusedError" in agent.stderr()
        # counted in the metrics while running, not only at exit
        assert agent.saw(lambda m: m.get("falco.outputs.http.failed", 0) >= agent.matched)
    _run_case(tmp_path, "http: closed port", {"http_output": {"enabled": True, "url": url}}, check,
              settled=lambda m: m.get("falco.outputs.http.failed", 0) >= ALERTS)


def test_http_server_never_answers(tmp_path):
    srv = RawServer(_silent)
    try:
        def check(agent, acc, snap):
            c = _accounted(acc, "http", agent.matched)
            assert c["sent"] == 0 and srv.requests >= 1
            assert "timeout" in agent.stderr()
        _run_case(tmp_path, "http: never answers", {"http_output": {"enabled": True, "url": srv.url()}}, check)
    finally:
        srv.close()


def test_http_slow_server(tmp_path):
    recv = Receiver()
    recv.mode, recv.delay = "slow", 1.0     # 1 alert/s
    try:
        def check(agent, acc, snap):
            c = _accounted(acc, "http", agent.matched)
            got = len(recv.bodies)
            # the server holds what was counted as sent, plus at most the requests counted failed
            # (one that timed out or was interrupted at shutdown may have reached it: failed,
            # never sent twice)
            assert c["sent"] >= 1 and c["sent"] <= got <= c["sent"] + c["failed"], (c, got)
            assert c["dropped_shutdown"] >= 1
            return {"received": got}
        _run_case(tmp_path, "http: slow (1 alert/s)", {"http_output": {"enabled": True, "url": recv.url()}}, check)
    finally:
        recv.close()


def test_http_endless_body(tmp_path):
    srv = RawServer(_endless)
    try:
        def check(agent, acc, snap):
            c = _accounted(acc, "http", agent.matched)
            assert c["sent"] == 0 and c["failed"] >= 1
            assert "larger than" in agent.stderr()
            assert agent.saw(lambda m: m.get("falco.outputs.http.failed", 0) >= 1)
            peak = max(s.get("falco.memory_rss_mb", 0) for s in agent.snapshots())
            assert peak < 500, peak     # bounded: the old code grew to 2.5 GB in 15 s
            return {"peak_rss_mb": peak}
        _run_case(tmp_path, "http: endless body", {"http_output": {"enabled": True, "url": srv.url()}}, check,
                  settled=lambda m: m.get("falco.outputs.http.failed", 0) >= 1)
    finally:
        srv.close()


def test_http_trickling_answer(tmp_path):
    srv = RawServer(_trickle)
    try:
        def check(agent, acc, snap):
            c = _accounted(acc, "http", agent.matched)
            assert c["sent"] == 0 and c["failed"] >= 1
            assert "no complete answer within" in agent.stderr()
        _run_case(tmp_path, "http: 1 byte / 0.5 s", {"http_output": {"enabled": True, "url": srv.url()}}, check)
    finally:
        srv.close()


def test_program_exits_at_once(tmp_path):
    def check(agent, acc, snap):
        c = _accounted(acc, "program", agent.matched)
        assert c["sent"] == 0 and c["failed"] >= agent.matched
        assert agent.stderr().count("exited with 3") <= 3       # rate-limited
        assert agent.saw(lambda m: m.get("falco.outputs.program.failed", 0) >= agent.matched)
    _run_case(tmp_path, "program: exits at once (exit 3)",
              {"program_output": {"enabled": True, "program": "exit 3"}}, check,
              settled=lambda m: m.get("falco.outputs.program.failed", 0) >= ALERTS)


def test_program_keep_alive_that_exits_without_reading(tmp_path):
    def check(agent, acc, snap):
        c = _accounted(acc, "program", agent.matched)
        # nothing was read: every alert written to it is found unread in its pipe -> failed
        assert c["sent"] == 0 and c["failed"] >= agent.matched
        assert len(re.findall(r"output program: .* exited with", agent.stderr())) <= 3   # rate-limited
    _run_case(tmp_path, "program: keep_alive, exits without reading",
              {"program_output": {"enabled": True, "keep_alive": True, "program": "exit 0"}}, check)


def test_program_that_blocks(tmp_path):
    def check(agent, acc, snap):
        c = _accounted(acc, "program", agent.matched)
        assert c["sent"] == 0
    _run_case(tmp_path, "program: never reads (sleep)",
              {"program_output": {"enabled": True, "program": "sleep 1000"}}, check)


def test_program_keep_alive_that_blocks(tmp_path):
    out = tmp_path / "reader.out"

    def check(agent, acc, snap):
        c = _accounted(acc, "program", agent.matched)
        assert c["sent"] == 0 and not out.exists()
    # reads nothing for 1000 s, then would copy its input: it never gets there
    _run_case(tmp_path, "program: keep_alive, never reads",
              {"program_output": {"enabled": True, "keep_alive": True, "program": f"sleep 1000; cat > {out}"}},
              check)


@pytest.mark.parametrize("keep_alive", [False, True], ids=["reopen", "keep_alive"])
def test_file_on_a_full_disk(tmp_path, keep_alive):
    _require_root()
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "size=32k")
    path = mnt / "alerts.json"
    try:
        def check(agent, acc, snap):
            c = _accounted(acc, "file", agent.matched)
            assert c["failed"] >= 1 and c["sent"] >= 1    # some fit, the rest did not
            assert _lines_in(path) == c["sent"], (c, _lines_in(path))
            assert "No space left on device" in agent.stderr()
            assert agent.saw(lambda m: m.get("falco.outputs.file.failed", 0) >= 1)
            return {"lines_in_file": _lines_in(path)}
        _run_case(tmp_path, f"file: full disk (32 KiB tmpfs, keep_alive={keep_alive})",
                  {"file_output": {"enabled": True, "keep_alive": keep_alive, "filename": str(path)}}, check,
                  settled=lambda m: m.get("falco.outputs.file.failed", 0) >= 1)
    finally:
        _umount(mnt)


def test_file_on_a_read_only_path(tmp_path):
    _require_root()
    mnt = tmp_path / "ro"
    _mount_tmpfs(mnt, "ro,size=1m")
    try:
        def check(agent, acc, snap):
            c = _accounted(acc, "file", agent.matched)
            assert c["sent"] == 0 and c["failed"] >= agent.matched
            assert "Read-only file system" in agent.stderr()
            assert agent.saw(lambda m: m.get("falco.outputs.file.failed", 0) >= agent.matched)
        _run_case(tmp_path, "file: read-only path",
                  {"file_output": {"enabled": True, "keep_alive": True, "filename": str(mnt / "alerts.json")}},
                  check, settled=lambda m: m.get("falco.outputs.file.failed", 0) >= ALERTS)
    finally:
        _umount(mnt)


def test_syslog_missing(tmp_path):
    def check(agent, acc, snap):
        c = _accounted(acc, "syslog", agent.matched)
        assert c["sent"] == 0 and c["failed"] >= agent.matched
        assert agent.stderr().count("alert(s) not delivered") <= 3   # rate-limited
        assert agent.saw(lambda m: m.get("falco.outputs.syslog.failed", 0) >= agent.matched)
    _run_case(tmp_path, "syslog: socket missing",
              {"syslog_output": {"enabled": True, "address": str(tmp_path / "no-such-dir" / "log")}}, check,
              settled=lambda m: m.get("falco.outputs.syslog.failed", 0) >= ALERTS)


def test_sigterm_under_load_with_a_blocked_output(tmp_path, loadgen):
    """SIGTERM while loadgen runs, the HTTP output is stuck on a silent server and a kept-alive
    program never reads (a batch write is always in progress), next to a working file output."""
    srv = RawServer(_silent)
    out = tmp_path / "alerts.json"
    _require_root()
    agent = LiveAgent(tmp_path, {"http_output": {"enabled": True, "url": srv.url()},
                                 "program_output": {"enabled": True, "keep_alive": True, "program": "sleep 1000"},
                                 "file_output": {"enabled": True, "keep_alive": True, "filename": str(out)}})
    gen = None
    try:
        agent.start()
        # loadgen runs until killed below (its time is only an upper bound)
        gen = subprocess.Popen([loadgen, "open", str(LOAD_RATE), "300"], stdout=subprocess.PIPE, text=True)
        agent.generate()
        # the loop keeps going under load: every load open matches, or (past what this machine's
        # agent processes) the driver counts drops. An agent a little slower than the load is
        # behind for a while (its opens still in the ring: neither matched nor dropped yet), so
        # wait for one or the other; the guard only catches a loop that stopped.
        end = time.monotonic() + 4 * HANG_GUARD
        snap = agent.snapshot()
        while time.monotonic() < end:
            snap = agent.snapshot()
            if snap.get("falco.rules.Fault load", 0) >= agent.generated or snap.get("scap.n_drops", 0) > 0:
                break
            time.sleep(0.2)
        agent.matched = snap.get("falco.rules.Fault load", 0)
        time.sleep(1.0)
        mid = agent.snapshot()
        took, acc = agent.stop()       # loadgen still running
        assert gen.poll() is None
    finally:
        agent.kill()
        if gen is not None:
            gen.kill()
            gen.wait(10)
        srv.close()
    matched = snap["falco.rules.Fault load"]
    assert matched >= 1 and (matched == agent.generated or snap["scap.n_drops"] > 0), snap
    c = _accounted(acc, "file", matched)
    assert _lines_in(out) == c["sent"]
    _accounted(acc, "http", matched)
    assert _accounted(acc, "program", matched)["sent"] == 0
    _report(f"SIGTERM under load ({LOAD_RATE} ev/s), HTTP and program stuck", took, acc, snap,
            evts_rate=mid.get("falco.evts_rate_sec"), n_drops_at_sigterm=mid.get("scap.n_drops"),
            n_evts_at_sigterm=mid.get("scap.n_evts"))


def test_full_ring(tmp_path, loadgen):
    """A 1 MiB ring and a burst while the agent reads nothing (stopped with SIGSTOP: on a fast
    host the agent kept up with the load generator, and the ring never filled): the driver
    drops, the drops are counted and alerted, and once the agent runs again every event
    matches again."""
    out = tmp_path / "alerts.json"
    _require_root()
    agent = LiveAgent(tmp_path, {"file_output": {"enabled": True, "keep_alive": True, "filename": str(out)}},
                      # the kernel-side filter would drop the burst's unwanted opens in the driver
                      # (the ring would never fill): off, to fill it
                      engine={"kind": "modern_ebpf", "modern_ebpf": {"buf_size_preset": 1, "kernel_filter": False}},
                      syscall_event_drops={"threshold": 0.01, "actions": ["log", "alert"], "rate": 1, "max_burst": 10})
    try:
        agent.start()
        os.kill(agent.proc.pid, signal.SIGSTOP)
        try:
            burst = subprocess.run([loadgen, "open", "1000000", "4"], capture_output=True, timeout=60)
        finally:
            os.kill(agent.proc.pid, signal.SIGCONT)
        assert burst.returncode == 0, burst.stderr
        time.sleep(1.5)               # a metrics snapshot after the backlog (every 500 ms)
        before = agent.snapshot()
        agent.generate()              # after the burst: the loop is still going
        snap = agent.wait_matched(exact=False, guard=10.0)
        took, acc = agent.stop()
    finally:
        agent.kill()
    assert before["scap.n_drops"] > 0 and before["scap.n_drops_buffer_total"] > 0, before
    matched = snap["falco.rules.Fault load"]
    # the loop kept going; a 1 MiB ring may still overflow on a busy machine after the burst,
    # and then what did not match is in the drop counters
    assert matched >= 1
    assert matched == agent.generated or snap["scap.n_drops"] > before["scap.n_drops"], (matched, before, snap)
    alerts = [json.loads(x) for x in out.read_text().splitlines()]
    drops = [a for a in alerts if a["rule"] == "Falco internal: syscall event drop"]
    assert drops and int(drops[0]["output_fields"]["n_drops"]) > 0
    c = _accounted(acc, "file", agent.matched)
    assert len(alerts) == c["sent"]
    _report("full ring (1 MiB, 1M ev/s burst)", took, acc, snap, internal_drop_alerts=len(drops))


def test_stdout_nobody_reads(tmp_path):
    """stdout is a pipe nobody reads: the stdout worker blocks in write(2) once the pipe is full;
    the loop goes on, the queue holds the rest, and SIGTERM still ends the process."""
    _require_root()
    agent = LiveAgent(tmp_path, {"stdout_output": {"enabled": True}})
    env = dict(os.environ, PYTHONPATH=str(REPO), FALCO_HOSTNAME="test-host")
    agent._err = open(agent.stderr_path, "wb")
    r, w = os.pipe()
    try:
        agent.proc = subprocess.Popen([sys.executable, "-m", "pyfalco.cli.main", "-c", str(agent.config), "-M", "300"],
                                      stdout=w, stderr=agent._err, env=env, cwd=str(tmp_path))
        os.close(w)
        end = time.monotonic() + 60
        while agent.snapshot().get("falco.rules.Fault ready", 0) < 1:
            assert time.monotonic() < end and agent.proc.poll() is None, agent.stderr()
            os.close(os.open(agent.ready_file, os.O_CREAT | os.O_WRONLY, 0o600))
            time.sleep(0.2)
        agent.generate(600, 300)       # ~200 KiB of alert lines: more than the 64 KiB pipe holds
        snap = agent.wait_matched()
        took, acc = agent.stop()
    finally:
        agent.kill()
        os.close(r)
    c = _accounted(acc, "stdout", agent.matched)
    assert c["dropped_shutdown"] >= 1 and c["sent"] < c["offered"]
    _report("stdout: a pipe nobody reads", took, acc, snap)


def test_https_server_trickling_its_handshake():
    """The total-time limit covers the TLS handshake: a server sending its handshake a byte
    every half second fails the request at output_timeout (channel level, no agent)."""
    from pyfalco.outputs import Alert, Formatter, HttpChannel

    gaps = [0.0]        # the longest pause between two bytes the server really made

    def trickle_handshake(c):
        last = time.monotonic()
        try:
            for b in b"\x16\x03\x03\x00\x50" + b"\x02" * 80:      # 8.5 s at 0.1 s a byte
                c.sendall(bytes([b]))
                now = time.monotonic()
                gaps[0] = max(gaps[0], now - last)
                last = now
                time.sleep(0.1)
        except OSError:
            pass        # the client cut it off

    srv = RawServer(lambda c: None)
    srv._serve = lambda c: (trickle_handshake(c), c.close())   # no request is ever read
    ch = HttpChannel(Formatter(json_output=True), f"https://127.0.0.1:{srv.port}/", timeout=2.0, insecure=True)
    ch.start()
    try:
        ch.offer(Alert("r", 4, 1, "m", {}))
        end = time.monotonic() + HANG_GUARD
        while ch.counters()["failed"] < 1 and time.monotonic() < end:
            time.sleep(0.1)
        assert ch.counters()["failed"] == 1 and ch.counters()["sent"] == 0
        # the total-time limit ended it (the watchdog or the TLS handshake's own 2 s deadline,
        # whichever came first: one message; the longest gap the server made is printed too)
        assert "no complete answer within 2s" in (ch.last_error or ""), (ch.last_error, gaps[0])
    finally:
        ch.stop(1.0)
        srv.close()
