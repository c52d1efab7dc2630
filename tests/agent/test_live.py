# SPDX-License-Identifier: Apache-2.0
"""The agent on the live eBPF driver (root): alerts from real syscalls, selection, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid

import pytest

from agenttools import base_config, is_root, popen_cli, run_cli

pytestmark = pytest.mark.root


def _require_root():
    if not is_root():
        pytest.fail("live agent tests need root (modern_ebpf)")


def test_live_alert_and_clean_sigterm(tmp_path):
    _require_root()
    token = f"pyfalco-live-{uuid.uuid4().hex[:8]}"
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
- rule: Live token open
  desc: an open of the test's token file
  condition: evt.type in (open, openat, openat2) and evt.arg.name contains {token}
  output: "token opened (file=%evt.arg.name tid=%thread.tid res=%evt.res)"
  priority: NOTICE
  tags: [testing]
""")
    out = tmp_path / "alerts.json"
    cfg = base_config(tmp_path, rules_files=[str(rules)], json_output=True, stdout_output={"enabled": False},
                      file_output={"enabled": True, "keep_alive": True, "filename": str(out)},
                      engine={"kind": "modern_ebpf", "modern_ebpf": {"buf_size_preset": 4}})
    proc = popen_cli(["-c", cfg, "-M", "60", "-v"])
    try:
        deadline = time.monotonic() + 30
        target = tmp_path / token
        while time.monotonic() < deadline:
            with open(target, "w") as f:
                f.write("x")
            if out.exists() and out.read_text().strip():
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert code == 0, err
    alerts = [json.loads(x) for x in out.read_text().splitlines()]
    assert alerts, err
    a = alerts[0]
    assert a["rule"] == "Live token open" and a["priority"] == "Notice"
    assert a["output_fields"]["evt.arg.name"] == str(target) and a["output_fields"]["evt.res"] == "SUCCESS"
    assert "Syscalls requested from the driver" in err and "from the rules (3): open openat openat2" in err


def test_live_dry_run_and_selection(tmp_path):
    _require_root()
    r = run_cli(["-c", base_config(tmp_path, engine={"kind": "modern_ebpf"}), "-M", "2", "--allow-no-rules",
                 "-o", "base_syscalls.custom_set=[execve, '!close']"], timeout=60)
    assert r.returncode == 0, r.stderr
    assert "syscalls requested" in r.stderr
