# SPDX-License-Identifier: Apache-2.0
"""The plugin framework from the command line and in the agent: --list-plugins, --plugin-info,
--list <source>, -V against plugin fields, --enable-source/--disable-source, a plugin source run
by the agent (alone, and live next to the syscall source), and bad plugin configurations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

RULES = """
- required_plugin_versions:
  - name: cdummy
    version: 1.0.0
- rule: Gamma word
  desc: the third word is gamma
  condition: cd.word[2] = gamma and cd.n < 4
  output: "gamma (n=%cd.n words=%cd.words)"
  priority: WARNING
  source: cdummy
  tags: [plugin]
- rule: Py counter three
  desc: the python source's third event
  condition: pc.i = 2
  output: "pycounter user=%pc.user upper=%pu.upper"
  priority: NOTICE
  source: pycounter
"""


def _run(args, timeout=60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    env["FALCO_HOSTNAME"] = "test-host"
    return subprocess.run([sys.executable, "-m", "pyfalco.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(REPO))


def _config(tmp_path, c_plugins, load=("cd", "pc"), cd_params="6", pc_params="4", **extra) -> Path:
    rules = tmp_path / "plugin_rules.yaml"
    rules.write_text(RULES)
    cfg = {"stdout_output": {"enabled": True}, "syslog_output": {"enabled": False}, "webserver": {"enabled": False},
           "log_syslog": False, "config_files": [], "append_output": [], "watch_config_files": False,
           "json_output": True, "rules_files": [str(rules)], "load_plugins": list(load),
           "plugins": [{"name": "cd", "library_path": c_plugins["cdummy"], "init_config": "prefix=>",
                        "open_params": cd_params},
                       {"name": "pc", "library_path": "pyplugins:PyCounter", "init_config": {"prefix": "~"},
                        "open_params": pc_params},
                       {"name": "up", "library_path": "pyplugins:PyUpper"}]}
    cfg.update(extra)
    p = tmp_path / "pyfalco.yaml"
    p.write_text(json.dumps(cfg))
    return p


def _alerts(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Error" in line or "Traceback" in line]


def test_list_plugins_and_plugin_info(tmp_path, c_plugins):
    cfg = _config(tmp_path, c_plugins)
    r = _run(["-c", cfg, "--list-plugins"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("2 Plugins Loaded:\n")
    assert "Name: cdummy\nDescription: a test source of numbered word lists\nContact: pyfalco tests\n" \
           "Version: 1.2.3\nCapabilities:\n  - Event Sourcing (ID=999, source='cdummy')\n  - Field Extraction" in r.stdout
    assert "Name: pycounter" in r.stdout and "Name: pyupper" not in r.stdout
    r = _run(["-c", cfg, "--plugin-info", "cd"])
    assert r.returncode == 0, r.stderr
    assert "Required API version: 3.0.0" in r.stdout
    assert "No init config schema available" in r.stdout
    assert "Suggested open params:\n5: five events\nfail: an open error" in r.stdout
    r = _run(["-c", cfg, "--plugin-info", "pyplugins:PyUpper"])   # by library_path, loaded or not
    assert r.returncode == 0 and "Name: pyupper" in r.stdout and "Extract event sources: pycounter" in r.stdout
    r = _run(["-c", cfg, "--plugin-info", "nope"])
    assert r.returncode == 1 and _error_lines(r.stderr) == [
        r.stderr.strip().splitlines()[-1]] and "plugin 'nope': no entry with this name" in r.stderr


def test_version_names_the_plugin_api():
    r = _run(["--version"])
    assert r.returncode == 0 and "Plugin API:      3.3.0" in r.stdout
    r = _run(["--version", "-o", "json_output=true"])
    assert json.loads(r.stdout)["plugin_api_version"] == "3.3.0"


def test_list_fields_of_a_plugin_source(tmp_path, c_plugins):
    cfg = _config(tmp_path, c_plugins, load=("pc", "up"))
    r = _run(["-c", cfg, "--list", "pycounter"])
    assert r.returncode == 0, r.stderr
    assert "Event Sources: pycounter" in r.stdout
    assert "Field Class:                  pycounter (counts)" in r.stdout
    assert "Field Class:                  pyupper (upper-cases)" in r.stdout
    assert "pc.key[key]                   a key of the event" in r.stdout
    r = _run(["-c", cfg, "--list", "pycounter", "-N"])
    names = r.stdout.split()
    assert "evt.pluginname" in names and "pu.upper" in names and "proc.name" not in names
    r = _run(["-c", cfg, "--list", "pycounter", "--format", "json"])
    classes = json.loads(r.stdout)
    assert [c["name"] for c in classes] == ["pycounter", "pyupper"]
    assert classes[0]["fields"][4] == {"name": "pc.tags", "type": "string", "desc": "tags", "is_list": True,
                                       "arg": {"isRequired": False, "isIndex": False, "isKey": False}}
    # --list alone: every source, the plugin classes after the syscall ones, in each format
    r = _run(["-c", cfg, "--list", "--format", "json"])
    every = json.loads(r.stdout)
    assert [c["name"] for c in every][-2:] == ["pycounter", "pyupper"] and every[0]["event_sources"] == ["syscall"]
    r = _run(["-c", cfg, "--list", "-N"])
    assert "proc.name" in r.stdout.split() and "pu.upper" in r.stdout.split()
    r = _run(["-c", cfg, "--list", "--format", "markdown"])
    assert "## Field Class: pyupper" in r.stdout and "`pc.key[key]` | string | a key of the event" in r.stdout
    r = _run(["-c", cfg, "--list", "nosuch"])
    assert r.returncode == 1 and "unknown event source 'nosuch' (sources: syscall, pycounter)" in r.stderr


def test_validate_plugin_rules(tmp_path, c_plugins):
    cfg = _config(tmp_path, c_plugins, load=("cd", "pc", "up"))
    good = tmp_path / "plugin_rules.yaml"
    r = _run(["-c", cfg, "-V", good])
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("- rule: r\n  desc: d\n  condition: cd.nope = 1\n  output: o\n  priority: INFO\n  source: cdummy\n")
    r = _run(["-c", cfg, "-V", bad])
    out = json.loads(r.stdout)
    assert r.returncode == 1 and not out["falco_load_results"][0]["successful"]
    assert "unknown field 'cd.nope'" in json.dumps(out)
    # without the plugin loaded, its rules' source is unknown and the requirement unmet
    cfg2 = _config(tmp_path, c_plugins, load=("pc",))
    r = _run(["-c", cfg2, "-V", good])
    assert r.returncode == 1 and "Plugin requirement not satisfied, must load one of: cdummy (>= 1.0.0)" in r.stdout


def test_rules_only_actions_see_the_plugins(tmp_path, c_plugins):
    """--dry-run, -L and -l load the rules with the configured plugins (their sources not opened)."""
    cfg = _config(tmp_path, c_plugins, load=("cd", "pc", "up"), cd_params="fail")   # open would fail
    r = _run(["-c", cfg, "--dry-run"])
    assert r.returncode == 0, r.stderr
    assert "2 rules from 1 file(s) loaded" in r.stderr
    r = _run(["-c", cfg, "-L", "-o", "json_output=false"])
    assert r.returncode == 0 and "Gamma word" in r.stdout and "Py counter three" in r.stdout
    r = _run(["-c", cfg, "-l", "Gamma word", "-o", "json_output=true"])
    (rule,) = json.loads(r.stdout)["rules"]
    assert rule["info"]["source"] == "cdummy" and sorted(rule["details"]["condition_fields"]) == ["cd.n", "cd.word[2]"]
    assert rule["details"]["plugins"] == ["cdummy"]


def test_agent_runs_plugin_sources_alone(tmp_path, c_plugins):
    cfg = _config(tmp_path, c_plugins, load=("cd", "pc", "up"))
    r = _run(["-c", cfg, "--disable-source", "syscall"], timeout=60)
    assert r.returncode == 0, r.stderr
    alerts = _alerts(r.stdout)
    by_source = {}
    for a in alerts:
        by_source.setdefault(a["source"], []).append(a)
    assert [a["output_fields"]["cd.n"] for a in by_source["cdummy"]] == [2, 3]
    first = by_source["cdummy"][0]
    assert first["rule"] == "Gamma word" and first["priority"] == "Warning" and first["tags"] == ["plugin"]
    assert first["time"] == "2023-11-14T22:13:20.002000000Z"
    assert first["output"].endswith("Warning gamma (n=2 words=(alpha,beta,gamma))")
    (pc,) = by_source["pycounter"]
    assert pc["output_fields"] == {"pc.user": "~u2", "pu.upper": "U2", "evt.time": 1_700_000_000_000_000_002}
    assert "plugin event sources: cdummy (plugin cdummy), pycounter (plugin pycounter)" in r.stderr
    assert "the syscall source is disabled" in r.stderr
    # --enable-source picks sources the same way
    r = _run(["-c", cfg, "--enable-source", "pycounter"], timeout=60)
    assert r.returncode == 0 and {a["source"] for a in _alerts(r.stdout)} == {"pycounter"}


def test_a_failing_plugin_source_stops_alone(tmp_path, c_plugins):
    cfg = _config(tmp_path, c_plugins, load=("cd", "pc", "up"), cd_params="garbage", pc_params="4")
    r = _run(["-c", cfg, "--disable-source", "syscall"], timeout=60)
    assert r.returncode == 0, r.stderr
    assert {a["source"] for a in _alerts(r.stdout)} == {"pycounter"}
    assert "plugin 'cdummy': next_batch: event type 3 with 2 params" in r.stderr
    assert "event source 'cdummy' stopped" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, extra, message", [
    (["--enable-source", "nosuch"], {}, "attempted enabling an unknown event source: 'nosuch'"),
    (["--disable-source", "syscall", "--disable-source", "cdummy"], {"load_plugins": ["cd"]},
     "attempted disabling all event sources"),
    (["--enable-source", "syscall", "--disable-source", "cdummy"], {},
     "options --enable-source and --disable-source cannot be used together"),
    ([], {"load_plugins": ["ghost"]}, "load_plugins: no entry named 'ghost' in plugins"),
    ([], {"plugins": [{"name": "cd", "library_path": "/nonexistent/libx.so"}], "load_plugins": ["cd"]},
     "plugin 'cd': cannot find plugin library '/nonexistent/libx.so'"),
])
def test_bad_source_and_plugin_options(tmp_path, c_plugins, args, extra, message):
    cfg = _config(tmp_path, c_plugins, **extra)
    r = _run(["-c", cfg, *args, "--dry-run"])
    assert r.returncode == 1
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(_error_lines(r.stderr)) == 1, r.stderr


def test_a_source_that_cannot_open_stops_the_start(tmp_path, c_plugins):
    cfg = _config(tmp_path, c_plugins, load=("cd",), cd_params="fail")
    r = _run(["-c", cfg, "--disable-source", "syscall"])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "plugin 'cdummy': open failed: cannot open 'fail'" in r.stderr
    assert len(_error_lines(r.stderr)) <= 1


def test_abi_mismatch_from_the_command_line(tmp_path, c_plugins):
    cfg = _config(tmp_path, c_plugins, load=("bad",),
                  plugins=[{"name": "bad", "library_path": c_plugins["bad_api"]}])
    r = _run(["-c", cfg, "--list-plugins"])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "plugin 'bad': plugin required API version '4.0.0' is not compatible with the framework's API version " \
           "'3.3.0'" in r.stderr


@pytest.mark.root
def test_syscall_and_plugin_sources_at_once(tmp_path, c_plugins):
    """Live eBPF syscall events and a plugin source in one agent: alerts of both, each with its source."""
    if os.geteuid() != 0:
        pytest.fail("needs root for the live eBPF capture (this machine runs tests as root)")
    marker = f"/tmp/pyfalco-plugin-{uuid.uuid4().hex}"
    rules = tmp_path / "plugin_rules.yaml"
    cfg = _config(tmp_path, c_plugins, load=("cd",), cd_params="3")
    rules.write_text(RULES.replace("- rule: Py counter three", f"""- rule: Marker open
  desc: the test's marker file opened
  condition: evt.type in (open, openat, openat2) and fd.name = {marker}
  output: "marker opened by %proc.name"
  priority: ERROR
- rule: Py counter three""").replace("  source: pycounter\n", "  source: pycounter\n  enabled: false\n")
                     .replace("pc.i = 2", "pc.i = 2 and pc.user = x"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "pyfalco.cli.main", "-c", str(cfg), "-M", "60", "-U",
                             "-o", "engine.kind=modern_ebpf"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(REPO))
    out_lines: list[str] = []
    err_lines: list[str] = []
    readers = [threading.Thread(target=lambda f=f, acc=acc: acc.extend(iter(f.readline, "")), daemon=True)
               for f, acc in ((proc.stdout, out_lines), (proc.stderr, err_lines))]
    for t in readers:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("plugin event sources:" in x for x in err_lines):
            assert proc.poll() is None, "".join(err_lines)
            time.sleep(0.1)
        # open the marker until its alert arrives (the capture may lag behind under load)
        while time.monotonic() < deadline and not any('"source":"syscall"' in x for x in out_lines):
            with open(marker, "w") as f:
                f.write("x")
            time.sleep(0.5)
    finally:
        if os.path.exists(marker):
            os.unlink(marker)
        proc.terminate()
        proc.wait(timeout=30)
        for t in readers:
            t.join(timeout=10)
    out, err = "".join(out_lines), "".join(err_lines)
    alerts = _alerts(out)
    sources = {a["source"] for a in alerts}
    assert sources == {"syscall", "cdummy"}, (out, err)
    syscall = [a for a in alerts if a["source"] == "syscall"]
    assert syscall[0]["rule"] == "Marker open" and "marker opened by " in syscall[0]["output"]
    assert [a["output_fields"]["cd.n"] for a in alerts if a["source"] == "cdummy"] == [2]


def test_hostile_plugin_payloads_do_not_break_outputs(tmp_path):
    rules = tmp_path / "h.yaml"
    rules.write_text("- rule: h\n  desc: d\n  condition: h.data contains line1\n  output: \"data=%h.data\"\n"
                     "  priority: WARNING\n  source: hostile\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"load_plugins": ["h"], "plugins": [{"name": "h", "library_path": "pyplugins:Hostile"}],
                               "rules_files": [str(rules)], "syslog_output": {"enabled": False},
                               "webserver": {"enabled": False}, "config_files": []}))
    r = _run(["-c", cfg, "--disable-source", "syscall"])
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    assert line.endswith('Warning data=line1\\nFAKE: Critical injected\\x1b[31m"quote"\\0end')
    r = _run(["-c", cfg, "--disable-source", "syscall", "-o", "json_output=true"])
    (doc,) = map(json.loads, r.stdout.splitlines())
    assert doc["output_fields"]["h.data"] == 'line1\nFAKE: Critical injected\x1b[31m"quote"\x00end'


def test_metrics_snapshot_has_plugin_metrics(tmp_path):
    rules = tmp_path / "s.yaml"
    rules.write_text("- rule: s\n  desc: d\n  condition: slow.x = y\n  output: o\n  priority: INFO\n  source: slow\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"load_plugins": ["s"], "plugins": [{"name": "s", "library_path": "pyplugins:Slow"}],
                               "rules_files": [str(rules)], "syslog_output": {"enabled": False},
                               "webserver": {"enabled": False}, "config_files": [], "json_output": True,
                               "metrics": {"enabled": True, "interval": "1s", "output_rule": True}}))
    r = _run(["-c", cfg, "--disable-source", "syscall", "-M", "4"])
    assert r.returncode == 0, r.stderr
    snaps = [a["output_fields"] for a in _alerts(r.stdout) if a["rule"] == "Falco internal: metrics snapshot"]
    assert snaps, r.stdout
    last = snaps[-1]
    assert last["slow.n_evts"] >= 1 and last["slow.n_extract_errors"] == 0
    assert [s["slow.n_evts"] for s in snaps] == sorted(s["slow.n_evts"] for s in snaps)
