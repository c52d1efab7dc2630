# SPDX-License-Identifier: Apache-2.0
"""Missing rules are fatal, as in Falco: a named rules file or folder that does not exist or cannot
be read stops the agent with its path (exit 1, no traceback), and so does a run that would load no
rules, unless the configuration names no rules files and --allow-no-rules says it is on purpose.
Relative rules_files entries resolve against the folder of the configuration file naming them;
without -c the agent uses /etc/pyfalco/pyfalco.yaml, else the packaged default."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from agenttools import CURL_SCAP, ETC_ALERTS, ETC_RULES, PYFALCO, REPO, base_config

from pyfalco.agent import config as config_mod
from pyfalco.agent.config import load_config, packaged_path


def cli(args, cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               FALCO_HOSTNAME="test-host")
    return subprocess.run(PYFALCO + [str(a) for a in args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=str(cwd))


def assert_one_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [x for x in r.stderr.splitlines() if any(n in x for n in needles)]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], r.stderr


@pytest.fixture
def cfg(tmp_path):
    return base_config(tmp_path)


@pytest.mark.parametrize("mode", [["-e", CURL_SCAP], ["--dry-run"]])
def test_missing_r_file_names_its_path(tmp_path, cfg, mode):
    missing = tmp_path / "nope" / "missing_rules.yaml"
    r = cli(["-c", cfg, "-r", missing, *mode], tmp_path)
    assert_one_error(r, f"Could not open rules file {missing} for reading", "No such file or directory")
    assert r.stdout == ""


@pytest.mark.parametrize("mode", [["-e", CURL_SCAP], ["--dry-run"]])
def test_empty_r_folder_loads_no_rules(tmp_path, cfg, mode):
    empty = tmp_path / "emptydir"
    empty.mkdir()
    r = cli(["-c", cfg, "-r", f"{empty}/", *mode], tmp_path)
    assert_one_error(r, f"no rules loaded (-r {empty}/)", "no .yml/.yaml files")


def test_unreadable_entries_are_errors(tmp_path, cfg, etc_rules):
    # a symlink loop cannot be opened even by root (ELOOP)
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    r = cli(["-c", cfg, "-r", etc_rules, "-r", loop, "--dry-run"], tmp_path)
    assert_one_error(r, f"Could not open rules file {loop} for reading", "symbolic links")
    d = tmp_path / "rules.d"
    d.mkdir()
    (d / "00-good.yaml").write_text(ETC_RULES)
    (d / "10-loop.yaml").symlink_to(d / "10-loop.yaml")
    r = cli(["-c", cfg, "-r", d, "-e", CURL_SCAP], tmp_path)
    assert_one_error(r, f"Could not open rules file {d / '10-loop.yaml'} for reading")


def test_rules_files_entry_missing_is_fatal_and_the_log_names_r_not_the_config(tmp_path, etc_rules):
    cfg = base_config(tmp_path, rules_files=["/nonexistent/configured_rules.yaml"])
    r = cli(["-c", cfg, "-e", CURL_SCAP], tmp_path)
    assert_one_error(r, "Could not open rules file /nonexistent/configured_rules.yaml for reading")
    # -r replaces rules_files: the configured (missing) file is never opened nor named
    r = cli(["-c", cfg, "-r", etc_rules, "-e", CURL_SCAP], tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == ETC_ALERTS
    assert "configured_rules" not in r.stderr


def test_all_rules_disabled_is_an_error_naming_the_r_path(tmp_path, cfg):
    rules = tmp_path / "disabled.yaml"
    rules.write_text(ETC_RULES + "  enabled: false\n")
    r = cli(["-c", cfg, "-r", rules, "-e", CURL_SCAP], tmp_path)
    assert_one_error(r, f"no rules loaded (-r {rules})", "1 rule(s) defined, none enabled")
    macros_only = tmp_path / "macros.yaml"
    macros_only.write_text("- macro: m\n  condition: evt.type = open\n")
    r = cli(["-c", cfg, "-r", macros_only, "--dry-run"], tmp_path)
    assert_one_error(r, f"no rules loaded (-r {macros_only})", "the files define no rules")


def test_no_rules_files_needs_the_flag(tmp_path, cfg, etc_rules):
    r = cli(["-c", cfg, "-o", "engine.kind=nodriver", "-M", "1"], tmp_path)
    assert_one_error(r, "no rules files", "--allow-no-rules")
    r = cli(["-c", cfg, "-o", "engine.kind=nodriver", "-M", "1", "--allow-no-rules"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "running without rules" in r.stderr
    # the flag does not excuse named files that give no rules
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    r = cli(["-c", cfg, "-r", empty, "--allow-no-rules", "--dry-run"], tmp_path)
    assert_one_error(r, f"no rules loaded (-r {empty})")


def test_relative_rules_files_resolve_against_the_config_folder(tmp_path):
    conf = tmp_path / "conf"
    (conf / "rules").mkdir(parents=True)
    (conf / "rules" / "etc.yaml").write_text(ETC_RULES)
    (conf / "config.d").mkdir()
    (conf / "config.d" / "more.yaml").write_text("rules_files: [../more/more_rules.yaml]\n")
    (conf / "more").mkdir()
    (conf / "more" / "more_rules.yaml").write_text(
        ETC_RULES.replace("Etc open", "Etc open again").replace("priority: WARNING", "priority: ERROR"))
    cfg = conf / "pyfalco.yaml"
    cfg.write_text(json.dumps({"rules_files": ["rules/etc.yaml"], "config_files": ["config.d"],
                               "syslog_output": {"enabled": False}, "webserver": {"enabled": False},
                               "log_syslog": False, "append_output": [], "json_output": True,
                               "rule_matching": "all"}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = cli(["-c", cfg, "-e", CURL_SCAP], elsewhere)
    assert r.returncode == 0, r.stderr
    rules = [json.loads(x)["rule"] for x in r.stdout.splitlines()]
    assert rules.count("Etc open") == ETC_ALERTS and rules.count("Etc open again") == ETC_ALERTS
    c = load_config(str(cfg))
    assert c["rules_files"] == [str(conf / "rules" / "etc.yaml"), str(conf / "config.d" / ".." / "more" / "more_rules.yaml")]
    # a missing relative entry is reported with the path it resolved to
    (conf / "rules" / "etc.yaml").unlink()
    r = cli(["-c", cfg, "-e", CURL_SCAP], elsewhere)
    assert_one_error(r, f"Could not open rules file {conf / 'rules' / 'etc.yaml'} for reading")
    # -o and -r paths stay relative to the working directory
    (elsewhere / "here.yaml").write_text(ETC_RULES)
    r = cli(["-c", cfg, "-r", "here.yaml", "-e", CURL_SCAP], elsewhere)
    assert r.returncode == 0, r.stderr


def test_without_c_the_etc_file_else_the_packaged_default(tmp_path, monkeypatch):
    etc = tmp_path / "etc_pyfalco.yaml"
    monkeypatch.setattr(config_mod, "DEFAULT_CONFIG_PATHS", (str(etc),))
    c = load_config(None)
    assert c.path == packaged_path("pyfalco.yaml")
    assert [Path(p).resolve() for p in c["rules_files"]] == [Path(packaged_path("pyfalco_rules.yaml")).resolve()]
    etc.write_text("rules_files: [local.yaml]\njson_output: true\n")
    c = load_config(None)
    assert c.path == str(etc) and c["rules_files"] == [str(tmp_path / "local.yaml")] and c["json_output"]


def test_print_default_config_is_a_working_config(tmp_path):
    r = cli(["--print-default-config"], tmp_path)
    assert r.returncode == 0, r.stderr
    saved = tmp_path / "etc" / "pyfalco.yaml"
    saved.parent.mkdir()
    saved.write_text(r.stdout)
    c = load_config(str(saved))
    assert [Path(p).resolve() for p in c["rules_files"]] == [(REPO / "rules" / "pyfalco_rules.yaml").resolve()]
    r = cli(["-c", saved, "--dry-run", "-o", "log_syslog=false"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "rules from 1 file(s) loaded" in r.stderr
    assert "warning(s)" not in r.stderr, r.stderr       # a default start loads with no warning
    # the commented k8s audit lines, uncommented, work where the text was saved: the rules line
    # was made absolute too, and the plugin entries are served by the built-ins
    lines = saved.read_text().splitlines()
    first, last = lines.index("# plugins:"), lines.index("# load_plugins: [k8saudit, json]")
    lines[first:last + 1] = [line[2:] for line in lines[first:last + 1]]
    lines = [line[1:] if line.startswith("#  - ") and "k8s_audit" in line else line for line in lines]
    saved.write_text("\n".join(lines) + "\n")
    c = load_config(str(saved))
    assert [Path(p).resolve() for p in c["rules_files"]] == [(REPO / "rules" / "pyfalco_rules.yaml").resolve(),
                                                          (REPO / "rules" / "pyfalco_k8s_audit_rules.yaml").resolve()]
    assert c["load_plugins"] == ["k8saudit", "json"]
    r = cli(["-c", saved, "--dry-run", "-o", "log_syslog=false"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "rules from 2 file(s) loaded" in r.stderr and "warning(s)" not in r.stderr, r.stderr


def test_python_m_pyfalco_is_the_cli(tmp_path, etc_rules, cfg):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([PYFALCO[0], "-m", "pyfalco", "-c", str(cfg), "-r", str(etc_rules), "-e", str(CURL_SCAP)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == ETC_ALERTS
    r = subprocess.run([PYFALCO[0], "-m", "pyfalco", "--no-such-flag"], capture_output=True, text=True,
                       timeout=60, env=env, cwd=str(tmp_path))
    assert r.returncode == 1 and "unrecognized arguments" in r.stderr


def test_unreadable_file_as_an_unprivileged_user():
    """Permission denied: the CLI runs as nobody (setpriv; root reads any file) on a mode-000 file
    in a world-readable folder (pytest's own tmp folders are private to root)."""
    if os.geteuid() != 0:
        pytest.fail("needs root to run the CLI as nobody")
    with tempfile.TemporaryDirectory(prefix="pyfalco-unreadable-", dir="/tmp") as d:
        d = Path(d)
        d.chmod(0o755)
        cfg = base_config(d)
        rules = d / "etc_rules.yaml"
        rules.write_text(ETC_RULES)
        secret = d / "secret_rules.yaml"
        secret.write_text(ETC_RULES)
        for f in (cfg, rules):
            f.chmod(0o644)
        secret.chmod(0o000)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        base = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"] + PYFALCO + ["-c", str(cfg)]
        r = subprocess.run(base + ["-r", str(rules), "-r", str(secret), "--dry-run"], capture_output=True,
                           text=True, timeout=120, env=env, cwd="/")
        assert_one_error(r, f"Could not open rules file {secret} for reading", "Permission denied")
        r = subprocess.run(base + ["-r", str(rules), "--dry-run"], capture_output=True, text=True, timeout=120,
                           env=env, cwd="/")
        assert r.returncode == 0, r.stderr


def test_certificate_paths_resolve_against_the_config_folder_outputs_do_not(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    cfg = conf / "pyfalco.yaml"
    cfg.write_text("webserver: {ssl_certificate: certs/pyfalco.pem}\n"
                   "http_output: {ca_cert: ca.pem, client_cert: /abs/client.pem, ca_path: ''}\n"
                   "file_output: {filename: ./events.txt}\nmetrics: {output_file: m.jsonl}\n")
    c = load_config(str(cfg), ["http_output.client_key=key.pem"])
    assert c["webserver"]["ssl_certificate"] == str(conf / "certs" / "pyfalco.pem")
    assert c["http_output"]["ca_cert"] == str(conf / "ca.pem")
    assert c["http_output"]["client_cert"] == "/abs/client.pem" and c["http_output"]["ca_path"] == ""
    # -o values, output files: the working directory, as Falco
    assert c["http_output"]["client_key"] == "key.pem"
    assert c["file_output"]["filename"] == "./events.txt" and c["metrics"]["output_file"] == "m.jsonl"


def test_missing_config_files_entry_is_a_note_not_a_warning(tmp_path):
    cfg = tmp_path / "pyfalco.yaml"
    cfg.write_text(f"config_files: [{tmp_path / 'config.d'}]\nfoo_unknown: 1\n")
    c = load_config(str(cfg))
    assert c.notes == [f"config_files: {tmp_path / 'config.d'} does not exist (skipped)"]
    assert c.warnings == ["unknown configuration key 'foo_unknown' (ignored)"]
