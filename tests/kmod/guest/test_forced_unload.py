# SPDX-License-Identifier: Apache-2.0
"""The kernel module removed under a running agent (Debian's kernel in the guest, which has
CONFIG_MODULE_FORCE_UNLOAD).

A plain unload is refused while the agent captures, and the agent goes on alerting. A forced one
(``rmmod -f``: delete_module with O_TRUNC) ends the capture: the module stops writing, flags its
rings, and its exit waits for the agent to close the device; the agent drains what the module
wrote, logs one error line naming the cause with the module's counters, delivers the alert of
every event before the removal, and exits 1 without a traceback; the removal completes when the
agent has closed the device. The times are printed and written to $PF_RESULTS/forced_unload.json
(docs/reliability.md); the only time limit asserted is a hang guard (TCG emulation is slow).
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from conftest import loader, module_loaded

REPO = Path(__file__).resolve().parents[3]
HANG_GUARD = 180.0  # seconds; an agent or a removal that hangs fails here, a slow one does not
BEFORE = 50         # marker opens just before the forced removal: each must give its alert

RULES = """
- rule: Unload marker opened
  desc: a test marker file was opened
  condition: evt.type in (open, openat, openat2) and fd.name startswith "{prefix}"
  output: "marker opened (file=%fd.name)"
  priority: WARNING
"""


def _delete_module(force: bool) -> int:
    """delete_module("pyfalco", O_NONBLOCK [| O_TRUNC]): 0 or the errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    flags = os.O_NONBLOCK | (os.O_TRUNC if force else 0)
    rc = libc.syscall(ctypes.c_long(176), ctypes.c_char_p(b"pyfalco"), ctypes.c_uint(flags))  # x86_64
    return 0 if rc == 0 else ctypes.get_errno()


class Agent:
    """`pyfalco` (the CLI) on the kmod engine, JSON alerts on stdout, its log on stderr."""

    def __init__(self, tmp: Path, prefix: str):
        rules = tmp / "rules.yaml"
        rules.write_text(RULES.format(prefix=prefix))
        cfg = tmp / "pyfalco.yaml"
        cfg.write_text(json.dumps({
            "stdout_output": {"enabled": True}, "syslog_output": {"enabled": False}, "json_output": True,
            "webserver": {"enabled": False}, "log_syslog": False, "log_stderr": True, "config_files": [],
            "rules_files": [str(rules)], "watch_config_files": False, "engine": {"kind": "kmod"}}))
        env = dict(os.environ, PYTHONPATH=str(REPO), FALCO_HOSTNAME="guest")
        self.proc = subprocess.Popen([sys.executable, "-m", "pyfalco.cli.main", "-c", str(cfg)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     cwd=str(REPO))
        self.files: list[str] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self):
        for line in self.proc.stdout:
            try:
                name = json.loads(line)["output_fields"]["fd.name"]
            except (ValueError, KeyError, TypeError):
                continue
            with self._lock:
                self.files.append(name)

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def alerted(self, path: str) -> bool:
        with self._lock:
            return path in self.files

    def wait_alert(self, path: str, timeout: float, retouch: bool = False) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            if retouch:
                touch(path)
            if self.alerted(path):
                return True
            time.sleep(0.5)
        return self.alerted(path)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def touch(path: str) -> None:
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))


def test_module_removed_under_a_running_agent(loaded, tmp_path):
    prefix = f"/tmp/pfunload-{uuid.uuid4().hex[:8]}-"
    agent = Agent(tmp_path, prefix)
    try:
        # capturing: a marker opened now and again until its alert comes (startup under TCG is slow)
        assert agent.wait_alert(prefix + "ready", HANG_GUARD, retouch=True), \
            "the agent never alerted:\n" + "\n".join(agent.stderr[-20:])

        # a plain unload is refused while the agent holds the device; the agent goes on
        proc = loader("unload")
        assert proc.returncode == 6 and "in use (1 open capture(s))" in proc.stderr
        assert _delete_module(force=False) != 0 and module_loaded()
        touch(prefix + "after-refused")
        assert agent.wait_alert(prefix + "after-refused", HANG_GUARD)

        # forced: every marker opened before it must still be alerted
        before = [f"{prefix}before-{i}" for i in range(BEFORE)]
        for p in before:
            touch(p)
        removal: dict = {}

        def force():
            removal["rc"] = _delete_module(force=True)
            removal["t"] = time.monotonic()

        t0 = time.monotonic()
        remover = threading.Thread(target=force, daemon=True)
        remover.start()
        rc = agent.proc.wait(timeout=HANG_GUARD)
        t_exit = time.monotonic() - t0
        remover.join(HANG_GUARD)
        assert not remover.is_alive(), "the forced removal never completed"
        t_removed = removal["t"] - t0
        time.sleep(1)  # the reader threads take the last lines
    finally:
        agent.kill()

    log = "\n".join(agent.stderr)
    assert rc == 1, log
    assert "Traceback" not in log, log
    gone = [line for line in agent.stderr if "removed by force" in line]
    assert len(gone) == 1, log
    m = re.search(r"every event it wrote was read \((\d+)\), (\d+) were dropped before .* \((\d+) events processed "
                  r"before it\)", gone[0])
    assert m, gone[0]
    # the module's count of what it wrote is what the agent processed: nothing was left in the rings
    assert int(m.group(1)) == int(m.group(3)) > 0, gone[0]
    missing = [p for p in before if not agent.alerted(p)]
    assert not missing, f"{len(missing)} of {BEFORE} alerts before the removal were lost:\n{log}"
    assert removal["rc"] == 0 and not module_loaded()
    assert not Path("/dev/pyfalco").exists()

    report = {"agent_exit_s": round(t_exit, 2), "module_removed_s": round(t_removed, 2),
              "alerts_before_removal": BEFORE, "alerts_delivered": BEFORE - len(missing), "exit_code": rc,
              "events_written": int(m.group(1)), "events_dropped": int(m.group(2)), "events_processed": int(m.group(3)),
              "error_line": gone[0]}
    print("\nforced unload:", json.dumps(report))
    if os.environ.get("PF_RESULTS"):
        Path(os.environ["PF_RESULTS"], "forced_unload.json").write_text(json.dumps(report) + "\n")
