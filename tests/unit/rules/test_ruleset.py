# SPDX-License-Identifier: Apache-2.0
"""Ruleset options: rule_matching, priorities, selection by name/tag, type index, event types."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pyfalco.rules import Priority, Ruleset, alert_json, format_alert, format_output, format_time, load_rules

RULES = """
- rule: Open by cat
  desc: d
  condition: evt.type in (open, openat) and proc.name = cat
  output: "cat opened %fd.name"
  priority: WARNING
  tags: [filesystem, cat]
- rule: Any open
  desc: d
  condition: evt.type in (open, openat)
  output: "open of %fd.name by %proc.name"
  priority: NOTICE
  tags: [filesystem]
- rule: Shell spawned
  desc: d
  condition: evt.type = execve and proc.name in (sh, bash)
  output: "shell %proc.name (parent %proc.aname[1] ppid=%proc.ppid tty=%proc.tty)"
  priority: DEBUG
  tags: [process]
- rule: Everything by nobody
  desc: d
  condition: user.name = nobody
  output: "%user.name did %evt.type"
  priority: CRITICAL
  warn_evttypes: false
"""

CAT_OPEN = {"evt.type": "open", "proc.name": "cat", "fd.name": "/etc/passwd"}


@pytest.fixture
def ruleset() -> Ruleset:
    result = load_rules(RULES, rule_matching="all")
    assert result.ok, result.as_text()
    return result.ruleset


def names(rules):
    return [r.name for r in rules]


def test_all_matching(ruleset):
    assert names(ruleset.match(CAT_OPEN)) == ["Open by cat", "Any open"]


def test_first_matching():
    ruleset = load_rules(RULES).ruleset
    assert ruleset.rule_matching == "first"
    assert names(ruleset.match(CAT_OPEN)) == ["Open by cat"]


def test_index_only_meets_rules_of_the_event_type(ruleset):
    by_type, catch_all = ruleset._indexes["syscall"]
    assert names(r for _, r in by_type["open"]) == ["Open by cat", "Any open", "Everything by nobody"]
    assert names(r for _, r in by_type["execve"]) == ["Shell spawned", "Everything by nobody"]
    assert names(r for _, r in catch_all) == ["Everything by nobody"]
    assert names(ruleset.match({"evt.type": "no_such_type", "user.name": "nobody"})) == ["Everything by nobody"]


def test_min_priority(ruleset):
    ruleset.set_min_priority("warning")
    assert names(ruleset.match(CAT_OPEN)) == ["Open by cat"]
    assert ruleset.match({"evt.type": "execve", "proc.name": "sh"}) == []
    ruleset.set_min_priority(Priority.DEBUG)
    assert names(ruleset.match({"evt.type": "execve", "proc.name": "sh"})) == ["Shell spawned"]


def test_enable_disable_by_name_wildcard_and_tag(ruleset):
    assert ruleset.disable(name="*open*") == 1
    assert names(ruleset.match(CAT_OPEN)) == ["Open by cat"]
    assert ruleset.disable(tag="filesystem") == 2
    assert ruleset.match(CAT_OPEN) == []
    assert ruleset.enable(name="Any *") == 1
    assert names(ruleset.match(CAT_OPEN)) == ["Any open"]
    assert not ruleset.is_enabled("Open by cat")


def test_rules_config_selection(ruleset):
    ruleset.select([{"disable": {"rule": "*"}}, {"enable": {"tag": "cat"}}])
    assert names(ruleset.enabled_rules()) == ["Open by cat"]
    assert ruleset.event_types() == {"open", "openat"}
    with pytest.raises(ValueError):
        ruleset.select([{"toggle": {"rule": "x"}}])


def test_selection_at_load_time():
    result = load_rules(RULES, selection=[{"disable": {"tag": "filesystem"}}])
    assert names(result.ruleset.enabled_rules()) == ["Shell spawned", "Everything by nobody"]


def test_event_types_are_the_union_of_enabled_rules(ruleset):
    ruleset.disable(name="Everything by nobody")
    assert ruleset.event_types() == {"open", "openat", "execve"}


def test_disabled_in_file_is_not_matched():
    text = RULES + "- rule: Any open\n  enabled: false\n  override:\n    enabled: replace\n"
    ruleset = load_rules(text, rule_matching="all").ruleset
    assert names(ruleset.match(CAT_OPEN)) == ["Open by cat"]
    ruleset.enable(name="Any open")
    assert names(ruleset.match(CAT_OPEN)) == ["Open by cat", "Any open"]


def test_reference_ruleset_agrees(ruleset):
    ref = Ruleset(ruleset.rules, ruleset.providers, rule_matching="all", reference=True)
    for evt in (CAT_OPEN, {"evt.type": "execve", "proc.name": "bash"}, {"evt.type": "open", "user.name": "nobody"}):
        assert names(ref.match(evt)) == names(ruleset.match(evt))


def test_wrong_value_types_do_not_break_matching(ruleset, caplog):
    evt = {"evt.type": "open", "proc.name": 3, "fd.name": "/x"}
    assert names(ruleset.match(evt)) == ["Any open"]


def test_invalid_rule_matching():
    with pytest.raises(ValueError):
        Ruleset([], {}, rule_matching="some")


def test_priority_parse():
    assert Priority.parse("info") is Priority.INFORMATIONAL
    assert Priority.parse("Emergency").label == "Emergency"
    with pytest.raises(ValueError, match="Invalid priority 'loud'"):
        Priority.parse("loud")


# ---- outputs --------------------------------------------------------------------------------

def test_output_text_missing_values_and_arguments(ruleset):
    rule = ruleset.rule("Shell spawned")
    evt = {"evt.type": "execve", "proc.name": "sh", "proc.aname[1]": "sshd", "proc.tty": 34817}
    assert format_output(rule, evt) == "shell sh (parent sshd ppid=<NA> tty=34817)"
    assert format_output(rule, evt, json=True) == {"proc.name": "sh", "proc.aname[1]": "sshd", "proc.ppid": None,
                                                   "proc.tty": 34817}


def test_output_widths_transformers_and_percent_text():
    text = ("- rule: r\n  desc: d\n  condition: evt.type = open\n"
            "  output: '[%6proc.name] [%-6proc.name] [%2proc.name] %toupper(proc.name) 100% %foo %evt.arg.flags'\n"
            "  priority: INFO\n")
    rule = load_rules(text).ruleset.rule("r")
    evt = {"evt.type": "open", "proc.name": "cat", "evt.arg.flags": "O_RDONLY"}
    assert format_output(rule, evt) == "[cat   ] [   cat] [ca] CAT 100% %foo O_RDONLY"
    assert rule.output_format.fields == ("proc.name", "toupper(proc.name)", "evt.arg.flags")


def test_time_formats():
    ns = 1470327477881781397
    assert format_time(ns, tz=dt.timezone.utc) == "16:17:57.881781397"
    assert format_time(ns, iso8601=True, tz=dt.timezone.utc) == "2016-08-04T16:17:57.881781397+0000"


def test_alert_line(ruleset):
    rule = ruleset.rule("Open by cat")
    line = format_alert(rule, CAT_OPEN, 1470327477881781397, iso8601=True, tz=dt.timezone.utc)
    assert line == "2016-08-04T16:17:57.881781397+0000: Warning cat opened /etc/passwd"


def test_alert_json_shape(ruleset):
    rule = ruleset.rule("Open by cat")
    doc = alert_json(rule, CAT_OPEN, 1470327477881781397, hostname="test-host", iso8601=True,
                     tz=dt.timezone.utc)
    assert list(doc) == ["hostname", "output", "output_fields", "priority", "rule", "source", "tags", "time"]
    assert doc == {
        "hostname": "test-host",
        "output": "2016-08-04T16:17:57.881781397+0000: Warning cat opened /etc/passwd",
        "output_fields": {"evt.time.iso8601": 1470327477881781397, "fd.name": "/etc/passwd"},
        "priority": "Warning", "rule": "Open by cat", "source": "syscall", "tags": ["cat", "filesystem"],
        "time": "2016-08-04T16:17:57.881781397Z"}
    json.dumps(doc)
    short = alert_json(rule, CAT_OPEN, 0, hostname="h", include_output=False, include_tags=False,
                       include_output_fields=False, include_message=True)
    assert short == {"hostname": "h", "message": "cat opened /etc/passwd", "priority": "Warning",
                     "rule": "Open by cat", "source": "syscall", "time": "1970-01-01T00:00:00.000000000Z"}
