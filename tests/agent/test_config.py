# SPDX-License-Identifier: Apache-2.0
"""Configuration: defaults, -o overrides, config_files merging, validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyfalco.agent.config import (DEFAULTS, apply_override, buffer_bytes_of_preset, load_config, merge,
                                  parse_duration, parse_override)
from pyfalco.errors import ConfigError


def test_builtin_defaults_are_falcos():
    c = load_config(None, defaults_if_missing=True).data
    assert c["priority"] == "debug" and c["rule_matching"] == "first"
    assert c["json_output"] is False and c["json_include_output_property"] is True
    assert c["json_include_message_property"] is False and c["json_include_tags_property"] is True
    assert c["engine"]["kind"] == "modern_ebpf"
    assert c["engine"]["modern_ebpf"] == {"cpus_for_each_buffer": 2, "buf_size_preset": 4,
                                          "drop_failed_exit": False, "disable_iterators": False}
    assert c["syscall_event_drops"] == {"threshold": 0.1, "actions": ["log", "alert"], "rate": 0.03333,
                                        "max_burst": 1, "simulate_drops": False}
    assert c["webserver"]["listen_port"] == 8765 and c["webserver"]["k8s_healthz_endpoint"] == "/healthz"
    assert c["http_output"]["user_agent"] == "falcosecurity/falco"
    assert c["file_output"]["filename"] == "./events.txt"
    assert c["base_syscalls"] == {"custom_set": [], "repair": False, "all": False}
    assert c["outputs_queue"] == {"capacity": 0}


@pytest.mark.parametrize("text,path,value", [
    ("json_output=true", ["json_output"], True),
    ("engine.kind=replay", ["engine", "kind"], "replay"),
    ("rules[].disable.tag=network", ["rules", None, "disable", "tag"], "network"),
    ("append_output[]={\"extra_fields\": [\"proc.env\"]}", ["append_output", None], {"extra_fields": ["proc.env"]}),
    ("rules_files[1]=/x.yaml", ["rules_files", 1], "/x.yaml"),
    ("static_fields.a\\.b=c", ["static_fields", "a.b"], "c"),
    ("base_syscalls.custom_set=[openat, '!close']", ["base_syscalls", "custom_set"], ["openat", "!close"]),
    ("metrics.interval=15m", ["metrics", "interval"], "15m"),
])
def test_parse_override(text, path, value):
    assert parse_override(text) == (path, value)


def test_apply_override_paths():
    cfg = {"rules_files": ["a", "b"]}
    apply_override(cfg, *parse_override("rules_files[1]=c"))
    apply_override(cfg, *parse_override("rules_files[]=d"))
    apply_override(cfg, *parse_override("rules[].enable.rule=A*"))
    apply_override(cfg, *parse_override("rules[0].enable.tag=t"))
    apply_override(cfg, *parse_override("http_output.url=http://127.0.0.1:1/x"))
    assert cfg == {"rules_files": ["a", "c", "d"], "rules": [{"enable": {"rule": "A*", "tag": "t"}}],
                   "http_output": {"url": "http://127.0.0.1:1/x"}}


@pytest.mark.parametrize("bad", ["novalue", "=x", "a..b=1"])
def test_bad_overrides_name_the_problem(bad):
    with pytest.raises(ConfigError, match="-o"):
        parse_override(bad)


def test_merge_strategies():
    base = {"a": [1], "m": {"x": 1, "y": 2}, "s": 1}
    assert merge(dict(base, a=[1], m=dict(base["m"])), {"a": [2], "m": {"y": 3, "z": 4}, "s": 2, "n": 5}) == \
        {"a": [1, 2], "m": {"x": 1, "y": 3, "z": 4}, "s": 2, "n": 5}
    assert merge({"a": [1], "m": {"x": 1}}, {"a": [2], "m": {"y": 1}}, "override") == {"a": [2], "m": {"y": 1}}
    assert merge({"a": [1], "s": 1}, {"a": [2], "s": 2, "n": 3}, "add-only") == {"a": [1], "s": 1, "n": 3}
    with pytest.raises(ConfigError, match="strategy"):
        merge({}, {}, "bogus")


def test_config_files_merge_in_order(tmp_path):
    d = tmp_path / "config.d"
    d.mkdir()
    (d / "10-a.yaml").write_text("rules_files: [/b.yaml]\njson_output: true\n")
    (d / "20-b.yaml").write_text("priority: warning\n")
    (tmp_path / "over.yaml").write_text("rules_files: [/only.yaml]\n")
    (tmp_path / "addonly.yaml").write_text("priority: error\nrule_matching: all\n")
    main = tmp_path / "main.yaml"
    main.write_text(f"rules_files: [/a.yaml]\nconfig_files:\n  - {d}\n"
                    f"  - {{path: {tmp_path / 'addonly.yaml'}, strategy: add-only}}\n")
    c = load_config(str(main))
    assert c["rules_files"] == ["/a.yaml", "/b.yaml"]
    assert c["json_output"] is True and c["priority"] == "warning" and c["rule_matching"] == "all"
    assert c.files == [str(main), str(d / "10-a.yaml"), str(d / "20-b.yaml"), str(tmp_path / "addonly.yaml")]
    main.write_text(f"rules_files: [/a.yaml]\nconfig_files:\n  - {{path: {tmp_path / 'over.yaml'}, "
                    "strategy: override}\n")
    assert load_config(str(main))["rules_files"] == ["/only.yaml"]


def test_config_files_entry_the_system_cannot_look_up_is_one_error_line(tmp_path):
    """Fuzz finding (config, session 7): a config_files entry whose name is longer than NAME_MAX
    made Path.is_dir() raise OSError out of the loader (a traceback). Now: one ConfigError line
    naming the configuration file, the entry and the reason; a name with a newline stays escaped."""
    main = tmp_path / "main.yaml"
    long_name = "a\\nb" + "x" * 300 + ".yaml"
    main.write_text(f"config_files:\n  - {tmp_path / 'present.yaml'}\n  - \"{long_name}\"\n")
    (tmp_path / "present.yaml").write_text("priority: warning\n")
    with pytest.raises(ConfigError) as ei:
        load_config(str(main))
    msg = str(ei.value)
    assert len(msg.splitlines()) == 1
    assert msg.startswith(f"{main}: config_files[1]: cannot look up ") and "File name too long" in msg
    assert "a\\nb" in msg                      # the newline shown escaped
    # a path under a regular file (ENOTDIR) does not exist: a note, as a missing path is
    main.write_text(f"config_files: [{tmp_path / 'present.yaml' / 'sub.yaml'}]\n")
    c = load_config(str(main))
    assert c.notes == [f"config_files: {tmp_path / 'present.yaml' / 'sub.yaml'} does not exist (skipped)"]
    # a folder that cannot be listed (no permission for a non-root user: root reads it anyway)
    # is left to the permission tests; a broken symlink loop is refused the same way as the long name
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    main.write_text(f"config_files: [{loop}]\n")
    with pytest.raises(ConfigError, match=r"config_files\[0\]: cannot look up .*loop\.yaml: Too many levels"):
        load_config(str(main))


def test_unknown_keys_are_warnings_naming_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("jsn_output: true\nwebserver:\n  listen_prot: 1\ngrpc:\n  enabled: false\n")
    c = load_config(str(p))
    assert "unknown configuration key 'jsn_output' (ignored)" in c.warnings
    assert "unknown configuration key 'webserver.listen_prot' (ignored)" in c.warnings
    assert any("'grpc' is no longer supported" in w for w in c.warnings)


@pytest.mark.parametrize("text,message", [
    ("json_output: yes please", "json_output: expected a boolean"),
    ("outputs_queue: {capacity: lots}", "outputs_queue.capacity: expected an integer"),
    ("priority: loud", "priority: expected one of"),
    ("engine: {kind: ebpf}", "engine.kind: expected one of modern_ebpf, kmod, replay, nodriver"),
    ("engine: {modern_ebpf: {buf_size_preset: 0}}", "buf_size_preset must be 1..10"),
    ("syscall_event_drops: {actions: [log, panic]}", "syscall_event_drops.actions: unknown action 'panic'"),
    ("metrics: {interval: soon}", "metrics.interval: expected a duration"),
    ("rules: [{enable: {name: x}}]", "rules[0]: expected"),
    ("http_output: {enabled: true}", "http_output.url: required"),
    ("webserver: {listen_port: 70000}", "webserver.listen_port: 70000 is not a port"),
    ("[1, 2]", "must be a YAML map"),
    ("json_output: [", "invalid YAML"),
])
def test_wrong_types_are_errors_naming_the_key(tmp_path, text, message):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(str(p))


def test_legacy_rules_file_and_env_expansion(tmp_path, monkeypatch):
    monkeypatch.setenv("PYFALCO_TEST_DIR", "/srv/rules")
    p = tmp_path / "c.yaml"
    p.write_text("rules_file: ['${PYFALCO_TEST_DIR}/a.yaml']\nstatic_fields: {lit: '$${PYFALCO_TEST_DIR}'}\n")
    c = load_config(str(p))
    assert c["rules_files"] == ["/srv/rules/a.yaml"]
    assert c["static_fields"] == {"lit": "${PYFALCO_TEST_DIR}"}


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(str(tmp_path / "nope.yaml"))


def test_buffer_presets_and_durations():
    assert buffer_bytes_of_preset(4) == 8 << 20 and buffer_bytes_of_preset(10) == 512 << 20
    assert parse_duration("1h") == 3600 and parse_duration("500ms") == 0.5 and parse_duration(5) == 5


def test_deploy_config_is_valid_and_uses_the_default_rules():
    from agenttools import REPO
    c = load_config(str(REPO / "deploy" / "pyfalco.yaml"))
    # the relative entry resolves next to the file (deploy/pyfalco_rules.yaml links to the rules)
    # only the syscall rules, as Falco's falco.yaml: the k8s audit rules go with the k8saudit plugin
    assert c["rules_files"] == [str(REPO / "deploy" / "pyfalco_rules.yaml")]
    assert Path(c["rules_files"][0]).resolve() == (REPO / "rules" / "pyfalco_rules.yaml").resolve()
    assert c["load_plugins"] == [] and c["plugins"] == []
    assert not [w for w in c.warnings if "unknown" in w]
    for key in DEFAULTS:
        assert key in c.data
