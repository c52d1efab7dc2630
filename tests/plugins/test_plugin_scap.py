# SPDX-License-Identifier: Apache-2.0
"""Plugin events round-trip through .scap files as Falco writes them (``pluginevent`` with the
plugin id and payload): a recorded plugin source replays (-e) through the same rules with the
same alerts as the live source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyfalco
from pyfalco.plugins.registry import load_configured
from pyfalco.plugins.scapio import read_plugin_events, record

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

RULES = """
- rule: Gamma word
  desc: the third word is gamma
  condition: cd.word[2] = gamma and cd.n < 5
  output: "gamma n=%cd.n num=%evt.num words=%cd.words info=%evt.plugininfo"
  priority: WARNING
  source: cdummy
- rule: Py user
  desc: the python source's users
  condition: pc.i in (1, 3)
  output: "user=%pc.user i=%pc.i"
  priority: NOTICE
  source: pycounter
"""


def _cli(args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "pyfalco.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=60, env=env, cwd=str(REPO))


def _config(tmp_path, c_plugins, load):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    cfg = {"stdout_output": {"enabled": True}, "syslog_output": {"enabled": False}, "webserver": {"enabled": False},
           "log_syslog": False, "config_files": [], "append_output": [], "watch_config_files": False,
           "json_output": True, "rules_files": [str(rules)], "load_plugins": list(load),
           "plugins": [{"name": "cd", "library_path": c_plugins["cdummy"], "open_params": "6"},
                       {"name": "pc", "library_path": "pyplugins:PyCounter", "open_params": "5"}]}
    p = tmp_path / "pyfalco.yaml"
    p.write_text(json.dumps(cfg))
    return p


def test_record_and_read_back(tmp_path, c_plugins):
    ps = load_configured({"load_plugins": ["cd"], "plugins": [
        {"name": "cd", "library_path": c_plugins["cdummy"], "open_params": "5"}]})
    path = tmp_path / "cd.scap"
    (src,) = ps.event_sources()
    assert record(src, str(path)) == 5
    back = list(read_plugin_events(str(path), ps))
    assert [(e.num, e.ts, e.plugin_id, e.source, e.plugin_name) for e in back[:2]] == [
        (1, 1_700_000_000_000_000_000, 999, "cdummy", "cdummy"), (2, 1_700_000_000_001_000_000, 999, "cdummy", "cdummy")]
    assert back[4].data == b"4 alpha beta gamma delta epsilon"
    # the file is a plain capture: the generic reader sees libscap's pluginevent with its params
    cap = pyfalco.Capture(engine="replay", capture_file=str(path))
    first = cap.next_batch(1000)[0]
    cap.close()
    assert (first.type, first.name, first.params) == (322, "pluginevent", {"plugin_id": 999, "event_data": b"0 alpha"})
    ps.destroy()


def test_replay_gives_the_live_alerts(tmp_path, c_plugins):
    cfg = _config(tmp_path, c_plugins, ("cd", "pc"))
    live = _cli(["-c", cfg, "--disable-source", "syscall"])
    assert live.returncode == 0, live.stderr
    # record both sources into one file, the C plugin's events first
    ps = load_configured(json.loads(cfg.read_text()))
    from pyfalco.scap.writer import CaptureWriter
    from pyfalco.plugins.scapio import Recorder
    path = tmp_path / "both.scap"
    with CaptureWriter(str(path)) as w:
        rec = Recorder(w)
        for src in ps.event_sources():
            src.open()
            while (batch := src.next_batch(0.05)) is not None:
                for e in batch:
                    rec(e)
            src.close()
    ps.destroy()
    assert rec.n == 11
    replay = _cli(["-c", cfg, "-e", path])
    assert replay.returncode == 0, replay.stderr
    def alerts(text):
        return sorted((a["source"], a["rule"], a["output"]) for a in map(json.loads, text.splitlines())
                      if a.get("source") != "internal")
    got, want = alerts(replay.stdout), alerts(live.stdout)
    assert len(want) == 5
    # evt.num is the file's event number in replay: the pycounter events follow cdummy's 6
    assert [o for s, _r, o in got if s == "cdummy"] == [o for s, _r, o in want if s == "cdummy"]
    assert [o.split(": ", 1)[1] for s, _r, o in got if s == "pycounter"] == \
        ["Notice user=u1 i=1", "Notice user=u3 i=3"]
    assert "end of capture file: 11 events processed" in replay.stderr


def test_replay_without_the_plugin_skips_its_events(tmp_path, c_plugins):
    ps = load_configured({"load_plugins": ["cd"], "plugins": [
        {"name": "cd", "library_path": c_plugins["cdummy"], "open_params": "3"}]})
    path = tmp_path / "cd.scap"
    record(ps.event_sources()[0], str(path))
    ps.destroy()
    cfg = _config(tmp_path, c_plugins, ("pc",))
    r = _cli(["-c", cfg, "-e", path])
    assert r.returncode == 0, r.stderr
    assert [line for line in r.stdout.splitlines() if line.startswith("{")] == []
    assert "plugin events of plugin id 999 skipped (no loaded plugin has this id)" in r.stderr
    assert r.stderr.count("skipped (no loaded plugin") == 1 and "Traceback" not in r.stderr
