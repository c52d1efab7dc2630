# SPDX-License-Identifier: Apache-2.0
"""Attacker-controlled strings end to end (live eBPF, root): files whose names hold newlines,
ANSI escapes, quotes, ``$(...)``, invalid UTF-8, every C0/C1 control, every Unicode line and
paragraph separator, bidi overrides, and a command line of 64 KiB, are opened and executed for
real; the alerts go through every output (stdout, file, syslog, program, http), in text and in
JSON. Every alert stays one line with no raw control/separator/bidi character, JSON stays valid
and keeps the values, and no event data ever reaches a shell."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from agenttools import REPO, SyslogListener, base_config, is_root

pytestmark = pytest.mark.root

# what no output line may carry raw: C0 (tab too), DEL, C1, line/paragraph separators, bidi controls
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _names(token: str) -> list[bytes]:
    """Hostile file names (bytes; no '/' and no NUL, which a name cannot hold)."""
    specials = ["a\nforged: Critical line", "cr\rreturn", "\x1b[31mred\x1b[0m", 'quote"s\'and\\back',
                "$(touch pwned)", "`touch pwned2`;touch pwned3", "tab\there", "del\x7f",
                "nel\u0085", "csi\u009b31m", "ls\u2028ps\u2029", "bidi\u202etxt.exe", "iso\u2066x\u2069",
                "lrm\u200erlm\u200falm\u061c", "vt\x0bff\x0c"]
    specials.append("c0" + "".join(chr(c) for c in range(1, 32) if c not in (10,)))
    specials.append("c1" + "".join(chr(c) for c in range(0x80, 0xa0)))
    out = [f"{token}{i}-{s}".encode("utf-8") for i, s in enumerate(specials)]
    out.append(token.encode() + b"-bad-utf8-\xff\xfe\xc3(")
    out.append(token.encode() + b"-long-" + ("\u2028\x1b".encode() * 40))   # 240 bytes: under NAME_MAX
    return out


def _long_arg(token: str) -> str:
    """A 60 KiB command-line argument full of separators and escapes. (Not 64 KiB: with
    pyfalco's modern_ebpf driver today, execve arguments just over 65,535 bytes in all are
    captured cut to (length mod 65536) bytes -- a u16 wrap, so the token is lost and no rule
    matches; 70,000 bytes alert again. A finding for the driver, reported separately.)"""
    unit = "\n\u2028\u2029\u0085\x1b[2J\u202e$(id)"
    return token + "-arg-" + unit * (60000 // len(unit.encode()))


def _check_line(line: str, where: str) -> None:
    bad = UNSAFE.search(line)
    assert bad is None, f"{where}: raw U+{ord(bad.group()):04X} in {line[:200]!r}"


def _run_agent(tmp_path, json_output: bool, recv, syslog_path: str) -> tuple[dict, str]:
    token = f"hx{uuid.uuid4().hex[:8]}"
    d = tmp_path / ("json" if json_output else "text")
    d.mkdir()
    (d / "work").mkdir()
    rules = d / "rules.yaml"
    rules.write_text(f"""
- rule: Hostile open
  desc: an open of a test file
  condition: evt.type in (open, openat, openat2) and evt.dir = < and fd.name contains {token}
  output: "hostile open (file=%fd.name name=%evt.arg.name proc=%proc.name)"
  priority: WARNING
  tags: [testing]
- rule: Hostile exec
  desc: an exec with a test argument
  condition: evt.type = execve and evt.dir = < and proc.args contains {token}
  output: "hostile exec (cmdline=%proc.cmdline)"
  priority: WARNING
  tags: [testing]
""")
    files = {"file": d / "file.out", "program": d / "program.out"}
    cfg = base_config(d, rules_files=[str(rules)], json_output=json_output,
                      engine={"kind": "modern_ebpf", "modern_ebpf": {"buf_size_preset": 4}},
                      stdout_output={"enabled": True},
                      file_output={"enabled": True, "keep_alive": False, "filename": str(files["file"])},
                      syslog_output={"enabled": True, "address": syslog_path},
                      program_output={"enabled": True, "keep_alive": False,
                                      "program": f"cat >> '{files['program']}'"},
                      http_output={"enabled": True, "url": recv.url()},
                      # the receiver runs in this (busy) test process: give it time, this test is
                      # about strings; the accounting below still catches any alert lost
                      output_timeout=10000,
                      metrics={"enabled": True, "interval": "500ms", "output_rule": False,
                               "output_file": str(d / "metrics.jsonl")})
    env = dict(os.environ, PYTHONPATH=str(REPO), FALCO_HOSTNAME="test-host")
    # the agent's working directory is the test's: a name run by a shell would leave files here
    proc = subprocess.Popen([sys.executable, "-m", "pyfalco.cli.main", "-c", str(cfg), "-M", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(d / "work"))
    names = _names(token)
    try:
        ready = os.path.join(str(d).encode(), token.encode() + b"-ready")
        end = time.monotonic() + 60
        while time.monotonic() < end:
            os.close(os.open(ready, os.O_CREAT | os.O_WRONLY, 0o600))
            if files["file"].exists() and files["file"].stat().st_size:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.3)
        assert proc.poll() is None, proc.stderr.read().decode()
        for n in names:
            os.close(os.open(os.path.join(str(d).encode(), n), os.O_CREAT | os.O_WRONLY, 0o600))
        subprocess.run(["/bin/sh", "-c", "exit 0", "sh", _long_arg(token)], check=True)
        done = os.path.join(str(d).encode(), token.encode() + b"-done")
        os.close(os.open(done, os.O_CREAT | os.O_WRONLY, 0o600))
        deadline, done_seen = time.monotonic() + 30, False
        while time.monotonic() < deadline:
            if all(p.exists() and b"-done" in p.read_bytes() for p in files.values()) \
                    and any(b"-done" in b for b in recv.bodies):
                done_seen = True
                break
            time.sleep(0.2)
        # the drop count read below must cover every event above: wait for a metrics snapshot
        # written after the alerts arrived (one every 500 ms; a quick run may not have any yet)
        metrics = d / "metrics.jsonl"
        seen = _complete_lines(metrics)
        deadline = time.monotonic() + 30
        while _complete_lines(metrics) <= seen and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
    finally:
        recv.note(f"test: SIGTERM to the agent ('-done' reached the file, program and http outputs: "
                  f"{locals().get('done_seen')})")
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    raw = {"stdout": out, "file": files["file"].read_bytes(), "program": files["program"].read_bytes()}
    drops = 0
    for line in (d / "metrics.jsonl").read_text().splitlines():   # written at least once (above)
        drops = max(drops, json.loads(line)["output_fields"].get("scap.n_drops", 0))
    return {"token": token, "names": names, "raw": raw, "work": d / "work", "drops": drops}, err.decode()


ACCOUNT = re.compile(r"output (\w+): (\d+) offered: (\d+) sent, (\d+) failed, (\d+) dropped \(queue full\), "
                     r"(\d+) not delivered at shutdown")


def _accounts(err: str) -> dict:
    """Each output's account, as the agent logs it at exit."""
    out = {}
    for m in ACCOUNT.finditer(err):
        out[m.group(1)] = dict(zip(("offered", "sent", "failed", "dropped_full", "dropped_shutdown"),
                                   (int(x) for x in m.groups()[1:])))
    return out


def _complete_lines(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _lines(data: bytes, where: str) -> list[str]:
    text = data.decode("utf-8")   # valid UTF-8 or this raises
    assert text.endswith("\n"), where
    lines = text[:-1].split("\n")
    for ln in lines:
        _check_line(ln, where)
    return lines


def _expected_name(d_bytes: bytes, n: bytes) -> str:
    return os.path.join(d_bytes, n).decode("utf-8", "replace")


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_hostile_strings_through_every_output(tmp_path, process_receiver, json_output):
    receiver = process_receiver
    if not is_root():
        pytest.fail("the end-to-end hostile-strings test needs root (live eBPF)")
    syslog = SyslogListener(str(tmp_path / f"log-{int(json_output)}.sock"))
    try:
        res, err = _run_agent(tmp_path, json_output, receiver, syslog.path)
        # the agent has exited: let the listener read every datagram still in its socket
        n, end = -1, time.monotonic() + 10
        while n != len(syslog.messages) and time.monotonic() < end:
            n = len(syslog.messages)
            time.sleep(0.5)
    finally:
        syslog.close()
    token, names = res["token"], res["names"]
    assert "Traceback" not in err, err
    per_output = {k: _lines(v, k) for k, v in res["raw"].items()}
    per_output["http"] = []
    for body in receiver.bodies:
        assert b"\n" not in body
        per_output["http"] += _lines(body + b"\n", "http")
    per_output["syslog"] = []
    for msg in syslog.messages:
        assert len(msg) <= 8192
        line = _lines(msg + b"\n", "syslog")[0]
        m = re.match(r"<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d pyfalco\[\d+\]: ", line)
        assert m, line[:80]
        if token in line:      # the test's alerts (an internal drop alert under load is Debug)
            assert m.group(1) == "12", line[:80]      # facility user (1), Warning (4)
        per_output["syslog"].append(line[m.end():])
    d_bytes = str(tmp_path / ("json" if json_output else "text")).encode()
    out_log = [ln for ln in err.splitlines() if "output" in ln]
    acc = _accounts(err)
    assert set(acc) == {"stdout", "file", "syslog", "program", "http"}, out_log
    for where, c in acc.items():
        assert c["offered"] == c["sent"] + c["failed"] + c["dropped_full"] + c["dropped_shutdown"], (where, c)
    # the receiver holds exactly what the agent counted as sent, plus at most the requests it
    # counted as failed after their body had arrived (a timeout waiting for the answer)
    h = acc["http"]
    # (messages as text: pytest shortens a tuple's repr, and these lines are what explain a failure)
    why = "\n".join(["agent:", *out_log, "receiver:", *receiver.events])
    assert h["sent"] <= len(receiver.bodies) <= h["sent"] + h["failed"], f"{h} {len(receiver.bodies)} bodies\n{why}"
    for where, lines in per_output.items():
        hostile = [ln for ln in lines if f"{token}" in ln and "-ready" not in ln and "-done" not in ln]
        # every hostile open and the exec: one alert each, each on exactly one line
        opens = [ln for ln in hostile if "hostile open" in ln]
        execs = [ln for ln in hostile if "hostile exec" in ln]
        # one alert per open and for the exec (unless the driver dropped events on a busy
        # machine: then they are in its drop counter; or an HTTP request timed out: then it is
        # in the http account, logged as a timeout -- an alert missing with nothing counted fails)
        short = len(names) - len(opens)
        timed_out = (where == "http" and 0 < short <= acc["http"]["failed"]
                     and all("timeout" in ln for ln in out_log if "not delivered:" in ln))
        assert short == 0 or (short > 0 and (res["drops"] or timed_out)), \
            f"{where}: {len(opens)} of {len(names)} opens, {res['drops']} drops\n{why}"
        assert len(execs) >= 1 or (res["drops"] and not execs), (where, len(execs), res["drops"])
        if not execs or len(opens) < len(names):
            continue
        if json_output:
            objs = [json.loads(ln) for ln in opens]
            got = sorted(o["output_fields"]["fd.name"] for o in objs)
            assert got == sorted(_expected_name(d_bytes, n) for n in names), where
            for o in objs:
                assert o["rule"] == "Hostile open" and o["output"].count(o["output_fields"]["fd.name"]) == 2
            ex = json.loads(execs[0])["output_fields"]["proc.cmdline"]
            assert "\u2028" in ex and "\n" in ex and "$(id)" in ex    # values kept, only escaped
            assert ex.count("$(id)") >= 10, where      # the driver keeps the first KiB or so
        else:
            # text: the escapes are visible, the forged "Critical" line is inside the first line
            assert any("a\\nforged: Critical line" in ln for ln in opens), where
            assert any("ls\\u2028ps\\u2029" in ln for ln in opens), where
            assert any("bidi\\u202etxt.exe" in ln for ln in opens), where
            assert any("nel\\x85" in ln for ln in opens) and any("csi\\x9b31m" in ln for ln in opens), where
            assert any("-bad-utf8-\ufffd\ufffd\ufffd(" in ln for ln in opens), where
            assert "\\n\\u2028\\u2029\\x85\\x1b[2J\\u202e$(id)" in execs[0], where
            assert execs[0].count("\\u202e$(id)") >= 10, where
    # no name ever ran in a shell (the program output's shell gets alerts on stdin only)
    assert not any(res["work"].glob("pwned*")), list(res["work"].iterdir())


# ---- 64 KiB values through each destination (no root: the channels directly) --------------------

def _huge_alert() -> "object":
    from pyfalco.outputs import Alert
    unit = "\n\u2028\u2029\u0085\x1b[2J\u202e\"$(id)\\" + b"\xff".decode("utf-8", "surrogateescape")
    big = "x" + unit * (65536 // len(unit))
    return Alert("Big", 4, 1700000000123456789, f"big (file={big})", {"fd.name": big, "n": 1}, tags=("t",),
                 host="h")


@pytest.mark.parametrize("json_output", [False, True], ids=["text", "json"])
def test_64k_hostile_values_through_each_channel(tmp_path, receiver, json_output):
    import io

    from pyfalco.outputs import (FileChannel, Formatter, HttpChannel, ProgramChannel, StdoutChannel,
                                 SyslogChannel)
    fmt = Formatter(json_output=json_output)
    stream = io.BytesIO()
    syslog = SyslogListener(str(tmp_path / "big.sock"))
    prog_out = tmp_path / "prog.out"
    chans = [StdoutChannel(fmt, stream=stream), FileChannel(fmt, str(tmp_path / "file.out")),
             SyslogChannel(fmt, syslog.path), ProgramChannel(fmt, f"cat > '{prog_out}'"),
             HttpChannel(fmt, receiver.url())]
    try:
        for ch in chans:
            ch.start()
            ch.offer(_huge_alert())
        for ch in chans:
            ch.stop(3.0)
            assert ch.counters()["sent"] == 1, (ch.name, ch.counters())
        assert syslog.wait(1)
    finally:
        syslog.close()
    outs = {"stdout": stream.getvalue(), "file": (tmp_path / "file.out").read_bytes(),
            "program": prog_out.read_bytes(), "http": receiver.bodies[0] + b"\n",
            "syslog": syslog.messages[0].split(b": ", 1)[1] + b"\n"}
    for where, data in outs.items():
        lines = _lines(data, where)
        assert len(lines) == 1, where
        if where == "syslog":
            assert len(syslog.messages[0]) <= 8192
        else:
            assert len(lines[0]) > 65536, where
        if json_output:
            obj = json.loads(lines[0])
            val = obj["output_fields"]["fd.name"]
            assert val.startswith("x\n\u2028\u2029\u0085\x1b[2J\u202e\"$(id)\\\ufffd"), where
            if where == "syslog":
                assert val.endswith("...")     # shortened, still a complete JSON document
            else:
                assert val == _huge_alert().fields["fd.name"].replace(
                    b"\xff".decode("utf-8", "surrogateescape"), "\ufffd"), where
