# SPDX-License-Identifier: Apache-2.0
"""The pyfalco command: every option against a replayed capture (no root needed)."""

from __future__ import annotations

import json
import os

import pytest

from agenttools import CURL_SCAP, ETC_ALERTS, REPO, base_config, json_lines, run_cli


@pytest.fixture
def cfg(tmp_path):
    return base_config(tmp_path)


def test_help_and_version():
    r = run_cli(["-h"])
    assert r.returncode == 0
    for opt in ("-c", "-r", "--option", "-M", "--validate", "-L", "-l", "--list", "-N", "--format",
                "--list-events", "-i", "--dry-run", "--unbuffered", "--pidfile", "--support",
                "--version", "-v", "-e"):
        assert opt in r.stdout, opt
    r = run_cli(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("pyfalco version: ")
    r = run_cli(["--version", "-o", "json_output=true"])
    v = json.loads(r.stdout)
    assert v["engine_version_semver"] == "0.62.0" and "pyfalco_version" in v


def test_unknown_option_exits_1():
    r = run_cli(["--no-such-option"])
    assert r.returncode == 1 and "unrecognized arguments" in r.stderr


def test_replay_text_alerts(cfg, etc_rules):
    r = run_cli(["-c", cfg, "-r", etc_rules, "-e", CURL_SCAP])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == ETC_ALERTS
    assert ": Warning open below etc (file=/etc/ld.so.cache res=SUCCESS fd=3 tid=17497 proc=curl)" in lines[0]


def test_replay_json_alerts_are_falcos_shape(cfg, etc_rules):
    r = run_cli(["-c", cfg, "-r", etc_rules, "-e", CURL_SCAP, "-o", "json_output=true",
                 "-o", "time_format_iso_8601=true"])
    out = json_lines(r.stdout)
    assert len(out) == ETC_ALERTS
    a = out[0]
    assert list(a) == ["hostname", "output", "output_fields", "priority", "rule", "source", "tags", "time"]
    assert a["hostname"] == "test-host" and a["priority"] == "Warning" and a["rule"] == "Etc open"
    assert a["source"] == "syscall" and a["tags"] == ["filesystem", "testing"]
    assert a["time"] == "2018-08-17T17:35:48.514682170Z"
    assert a["output_fields"] == {"evt.arg.name": "/etc/ld.so.cache", "evt.rawres": 3, "evt.res": "SUCCESS",
                                  "evt.time.iso8601": 1534527348514682170, "proc.name": "curl",
                                  "thread.tid": 17497}
    assert a["output"].startswith("2018-08-17T") and ".514682170" in a["output"]


def test_o_engine_replay_equals_e(cfg, etc_rules):
    r = run_cli(["-c", cfg, "-r", etc_rules, "-o", "engine.kind=replay",
                 "-o", f"engine.replay.capture_file={CURL_SCAP}"])
    assert r.returncode == 0 and len(r.stdout.splitlines()) == ETC_ALERTS


def test_r_repeatable_files_and_directories(tmp_path, cfg, etc_rules):
    d = tmp_path / "rules.d"
    d.mkdir()
    (d / "b.yaml").write_text("- rule: Etc open\n  priority: ERROR\n  override: {priority: replace}\n")
    (d / "ignored.txt").write_text("not rules")
    r = run_cli(["-c", cfg, "-r", etc_rules, "-r", d, "-e", CURL_SCAP])
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == ETC_ALERTS and ": Error open below etc" in r.stdout


def test_rules_selection_priority_and_matching(tmp_path, cfg, etc_rules):
    # a second rule that never matches keeps one rule enabled (zero rules is an error)
    sel = tmp_path / "sel.yaml"
    sel.write_text(etc_rules.read_text() + "- rule: Never\n  desc: d\n  condition: evt.type = open and "
                   "evt.arg.name = /nonexistent-never\n  output: never\n  priority: ERROR\n  tags: [other]\n")
    r = run_cli(["-c", cfg, "-r", sel, "-e", CURL_SCAP, "-o", "rules[].disable.tag=testing"])
    assert r.returncode == 0 and r.stdout == "", r.stderr
    r = run_cli(["-c", cfg, "-r", sel, "-e", CURL_SCAP, "-o", "priority=error"])
    assert r.returncode == 0 and r.stdout == "", r.stderr
    # everything disabled: refused, naming the -r path
    r = run_cli(["-c", cfg, "-r", etc_rules, "-e", CURL_SCAP, "-o", "rules[].disable.tag=testing"])
    assert r.returncode == 1 and r.stdout == "" and f"no rules loaded (-r {etc_rules})" in r.stderr
    two = tmp_path / "two.yaml"
    two.write_text(etc_rules.read_text() + etc_rules.read_text().replace("Etc open", "Etc open 2"))
    assert len(run_cli(["-c", cfg, "-r", two, "-e", CURL_SCAP]).stdout.splitlines()) == ETC_ALERTS
    r = run_cli(["-c", cfg, "-r", two, "-e", CURL_SCAP, "-o", "rule_matching=all"])
    assert len(r.stdout.splitlines()) == 2 * ETC_ALERTS


def test_append_output_and_static_fields(cfg, etc_rules):
    r = run_cli(["-c", cfg, "-r", etc_rules, "-e", CURL_SCAP, "-o", "json_output=true",
                 "-o", "static_fields.cluster=prod",
                 "-o", 'append_output[]={"match": {"tags": ["testing"]}, "extra_output": "num=%evt.num", '
                       '"extra_fields": ["evt.type", {"args": "%evt.arg.flags"}]}',
                 "-p", "cpu=%evt.cpu"])
    a = json_lines(r.stdout)[0]
    assert a["output"].endswith(" num=215 cpu=0"), a["output"]
    f = a["output_fields"]
    assert f["evt.num"] == 215 and f["evt.type"] == "open" and f["args"] == "O_RDONLY|O_CLOEXEC" and f["static.cluster"] == "prod"


def test_unbuffered_and_file_output(tmp_path, etc_rules):
    out = tmp_path / "events.txt"
    cfg = base_config(tmp_path, file_output={"enabled": True, "filename": str(out), "keep_alive": True},
                      stdout_output={"enabled": False})
    r = run_cli(["-c", cfg, "-r", etc_rules, "-e", CURL_SCAP, "-U"])
    assert r.returncode == 0 and r.stdout == ""
    assert len(out.read_text().splitlines()) == ETC_ALERTS


def test_validate_text_and_json(tmp_path, etc_rules):
    r = run_cli(["-V", etc_rules])
    assert r.returncode == 0 and f"{etc_rules}: Ok" in r.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("- rule: broken\n  desc: d\n  condition: evt.type = open and\n  output: o\n  priority: INFO\n")
    r = run_cli(["-V", etc_rules, "-V", bad, "-o", "json_output=true"])
    assert r.returncode == 1
    res = json.loads(r.stdout)["falco_load_results"]
    assert [x["name"] for x in res] == [str(etc_rules), str(bad)]
    assert res[0]["successful"] is True and res[1]["successful"] is False
    err = res[1]["errors"][0]
    assert err["code"] == "LOAD_ERR_COMPILE_CONDITION" and set(err) == {"code", "codedesc", "message", "context"}
    r = run_cli(["--validate", bad])
    assert r.returncode == 1 and "Invalid" in r.stdout


def test_bad_rules_refuse_to_start(tmp_path, cfg):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- rule: broken\n  desc: d\n  condition: proc.nam = x\n  output: o\n  priority: INFO\n")
    r = run_cli(["-c", cfg, "-r", bad, "-e", CURL_SCAP])
    assert r.returncode == 1 and "LOAD_ERR" in r.stderr


def test_describe_rules(cfg, etc_rules):
    r = run_cli(["-c", cfg, "-r", etc_rules, "-L"])
    assert r.returncode == 0 and r.stdout.splitlines()[0].startswith("Rule") and "Etc open" in r.stdout
    r = run_cli(["-c", cfg, "-r", etc_rules, "-L", "-o", "json_output=true"])
    rule = json.loads(r.stdout)["rules"][0]
    assert rule["info"]["name"] == "Etc open" and rule["info"]["priority"] == "Warning"
    assert rule["details"]["events"] == ["open"]
    r = run_cli(["-c", cfg, "-r", etc_rules, "-l", "Etc open"])
    assert r.returncode == 0 and "an open below /etc" in r.stdout
    r = run_cli(["-c", cfg, "-r", etc_rules, "-l", "Nope"])
    assert r.returncode == 1


def test_list_fields_formats(cfg):
    r = run_cli(["-c", cfg, "--list"])
    assert r.returncode == 0 and "Field Class:" in r.stdout and "proc.name" in r.stdout
    names = run_cli(["-c", cfg, "--list", "syscall", "-N"]).stdout.split()
    assert "evt.type" in names and "fd.name" in names and "container.id" in names
    md = run_cli(["-c", cfg, "--list", "--format", "markdown"]).stdout
    assert "| Type |" in md or "Name | Type" in md
    js = json.loads(run_cli(["-c", cfg, "--list", "--format", "json"]).stdout)
    assert any(f["name"] == "proc.cmdline" for c in js for f in c["fields"])


def test_list_events_marks_the_selection(cfg, etc_rules):
    r = run_cli(["-c", cfg, "-r", etc_rules, "--list-events"])
    assert r.returncode == 0 and "=== Syscall events ===" in r.stdout
    assert "[selected] open(" in r.stdout and "[selected] execve(" in r.stdout
    assert "[selected] chmod(" not in r.stdout


def test_i_prints_ignored_and_requested(cfg, etc_rules):
    r = run_cli(["-c", cfg, "-r", etc_rules, "-i"])
    assert r.returncode == 0
    assert "ignored by default" in r.stdout and "read" in r.stdout.split("\n")[1].split()
    assert "from the rules (1): open" in r.stdout


def test_dry_run_and_support(cfg, etc_rules):
    r = run_cli(["-c", cfg, "-r", etc_rules, "--dry-run", "-o", "engine.kind=modern_ebpf"])
    assert r.returncode == 0 and "dry run" in r.stderr and r.stdout == ""
    s = json.loads(run_cli(["-c", cfg, "-r", etc_rules, "--support"]).stdout)
    assert s["rules_files"][0]["name"] == str(etc_rules) and "Etc open" in s["rules_files"][0]["content"]
    assert s["system_info"]["sysname"] == "Linux" and "--support" in s["cmdline"]


def test_max_seconds_pidfile_nodriver(tmp_path, cfg, etc_rules):
    pid = tmp_path / "pyfalco.pid"
    r = run_cli(["-c", cfg, "-r", etc_rules, "-o", "engine.kind=nodriver", "-M", "1", "-P", pid], timeout=30)
    assert r.returncode == 0, r.stderr
    assert not pid.exists()            # removed at exit


def test_config_errors_exit_1(tmp_path, etc_rules):
    r = run_cli(["-c", tmp_path / "missing.yaml"])
    assert r.returncode == 1 and "cannot read configuration file" in r.stderr
    r = run_cli(["-c", base_config(tmp_path), "-o", "json_output=maybe", "-e", CURL_SCAP])
    assert r.returncode == 1 and "json_output: expected a boolean" in r.stderr
    r = run_cli(["-c", base_config(tmp_path), "-r", etc_rules, "-e", "/nonexistent.scap"])
    assert r.returncode == 1 and "opening the replay engine" in r.stderr


def test_config_and_rule_schemas():
    s = json.loads(run_cli(["--config-schema"]).stdout)
    assert s["properties"]["engine"]["properties"]["kind"]["enum"] == ["modern_ebpf", "kmod", "replay", "nodriver"]
    assert json.loads(run_cli(["--rule-schema"]).stdout)["type"] == "array"


def test_default_deploy_config_validates_the_default_rules():
    r = run_cli(["-c", REPO / "deploy" / "pyfalco.yaml", "-V", REPO / "rules" / "pyfalco_rules.yaml"])
    assert r.returncode == 0 and "Ok" in r.stdout
    r = run_cli(["-c", REPO / "deploy" / "pyfalco.yaml", "--dry-run", "-o", "log_syslog=false"])
    assert r.returncode == 0, r.stderr


def test_page_size():
    r = run_cli(["--page-size"])
    assert r.returncode == 0 and str(os.sysconf("SC_PAGE_SIZE")) in r.stdout
