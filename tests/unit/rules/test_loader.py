# SPDX-License-Identifier: Apache-2.0
"""Loading: the stable upstream ruleset, message rendering, -V JSON, sources, strict mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pyfalco.rules import DictProvider, RulesLoadError, load_rules

STABLE = Path(__file__).resolve().parents[3] / ".." / "shared" / "rules" / "falco_rules.yaml"


@pytest.fixture(scope="module")
def stable():
    if not STABLE.exists():
        pytest.skip("shared/rules/falco_rules.yaml not present")
    return load_rules(STABLE)


def test_stable_ruleset_loads_without_errors(stable):
    assert stable.errors == []
    assert stable.ok and stable.ruleset is not None
    assert stable.required_engine_version == "0.57.0"
    assert stable.unknown_fields == set()


def test_stable_ruleset_compiles_every_rule(stable):
    rules = stable.ruleset.rules
    assert len(rules) == 25
    for rule in rules:
        assert callable(rule.fn) and rule.source.startswith("# condition of")
        compile(rule.source, "<check>", "exec")


def test_stable_ruleset_event_types(stable):
    by_name = {r.name: r.evttypes for r in stable.ruleset.rules}
    opens = {"open", "openat", "openat2"}
    execs = {"execve", "execveat"}
    assert by_name["Read sensitive file untrusted"] == opens
    assert by_name["Clear Log Activities"] == opens
    assert by_name["Run shell untrusted"] == execs
    assert by_name["Contact K8S API Server From Container"] == {"connect"}
    assert by_name["Disallowed SSH Connection Non Standard Port"] == {"connect", "sendto", "sendmsg"}
    assert by_name["Redirect STDOUT/STDIN to Network Connection in Container"] == {"dup", "dup2", "dup3"}
    assert by_name["Linux Kernel Module Injection Detected"] == {"init_module", "finit_module"}
    assert stable.ruleset.event_types() == opens | execs | {
        "connect", "sendto", "sendmsg", "socket", "dup", "dup2", "dup3", "symlink", "symlinkat", "link",
        "linkat", "init_module", "finit_module", "ptrace"}


def test_stable_ruleset_matches_a_sensitive_read(stable):
    evt = {"evt.type": "openat", "evt.is_open_read": True, "fd.typechar": "f", "fd.num": 3,
           "fd.name": "/etc/shadow", "fd.directory": "/etc", "proc.name": "python3", "proc.pname": "bash",
           "container.id": "host", "user.name": "root", "proc.cmdline": "python3 x.py"}
    hits = stable.ruleset.match(evt)
    assert [r.name for r in hits] == ["Read sensitive file untrusted"]
    assert hits[0].reference_matches(evt)
    assert "file=/etc/shadow" in hits[0].output_format.render(evt)


def test_stable_ruleset_with_a_partial_field_layer_reports_fields_by_name():
    only = {"evt.type", "proc.name", "fd.name", "evt.arg"}
    result = load_rules(STABLE, provider=DictProvider(only=only))
    assert not result.ok
    assert "proc.pname" in result.unknown_fields and "container.id" in result.unknown_fields
    assert all(m.code in ("LOAD_ERR_COMPILE_CONDITION", "LOAD_ERR_COMPILE_OUTPUT") for m in result.errors)


_BAD = """\
- rule: Write below etc
  desc: d
  condition: evt.type in and fd.name startswith /etc
  output: o
  priority: INFO
- macro: m
  condition: |
    proc.name = a and
    proc.nme = b
- rule: r2
  desc: d
  condition: evt.type = open and m
  output: o
  priority: INFO
"""


def test_error_text_names_file_line_column_item_and_caret():
    result = load_rules(("rules.yaml", _BAD))
    assert result.as_text(verbose=True) == """\
rules.yaml: Invalid
2 Errors:
rules.yaml:3:26: rule 'Write below etc': LOAD_ERR_COMPILE_CONDITION (Error compiling condition): \
expected a list after 'in', found 'and'
    evt.type in and fd.name startswith /etc
                ^
rules.yaml:9:5: rule 'r2': macro 'm': LOAD_ERR_COMPILE_CONDITION (Error compiling condition): \
unknown field 'proc.nme'
    proc.nme = b
    ^"""
    assert result.as_text().splitlines()[2].endswith("expected a list after 'in', found 'and'")


def test_validation_json_has_falco_shape():
    doc = load_rules(("rules.yaml", _BAD)).as_json()
    json.dumps(doc)
    (res,) = doc["falco_load_results"]
    assert res["name"] == "rules.yaml" and res["successful"] is False and res["warnings"] == []
    err = res["errors"][0]
    assert set(err) == {"code", "codedesc", "message", "context"}
    assert err["code"] == "LOAD_ERR_COMPILE_CONDITION"
    assert err["codedesc"] == "Error compiling condition"
    locs = err["context"]["locations"]
    assert [loc["item_type"] for loc in locs] == ["rule", "rule condition", "condition expression"]
    assert locs[0] == {"item_type": "rule", "item_name": "Write below etc",
                       "position": {"name": "rules.yaml", "line": 1, "column": 3, "offset": 2}}
    assert locs[2]["position"] == {"name": "rules.yaml", "line": 3, "column": 26, "offset": 12}
    assert err["context"]["snippet"].endswith("^")


def test_yaml_error_position():
    result = load_rules(("r.yaml", "- rule: a\n  desc: [x\n"))
    (msg,) = result.errors
    assert msg.code == "LOAD_ERR_YAML_PARSE"
    assert (msg.locations[0].line, msg.locations[0].column) == (3, 1)


def test_messages_go_to_the_file_of_their_item(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("- list: l\n  items: [x]\n")
    b = tmp_path / "b.yaml"
    b.write_text("- rule: r\n  desc: d\n  condition: evt.type = open and proc.name in (l) and nosuch\n"
                 "  output: o\n  priority: INFO\n")
    result = load_rules(a, str(b))
    assert [f.name for f in result.files] == [str(a), str(b)]
    assert result.files[0].successful and not result.files[1].successful
    assert result.files[1].errors[0].message == "Undefined macro 'nosuch' used in filter."


def test_unreadable_file():
    result = load_rules("/nonexistent/rules.yaml")
    (msg,) = result.errors
    assert msg.code == "LOAD_ERR_FILE_READ" and msg.message.startswith("Could not read file /nonexistent/rules.yaml")


def test_strict_raises_with_the_result():
    with pytest.raises(RulesLoadError) as info:
        load_rules(_BAD, strict=True)
    assert info.value.result.errors and "LOAD_ERR_COMPILE_CONDITION" in str(info.value)


def test_extra_sources_use_their_provider():
    from pyfalco.fields.catalog import FieldInfo
    k8s = DictProvider(extra_fields={"ka.verb": FieldInfo("ka.verb", "CHARBUF", "verb")})
    text = "- rule: r\n  desc: d\n  condition: ka.verb = create\n  output: '%ka.verb'\n  priority: INFO\n  source: k8s_audit\n"
    result = load_rules(text, extra_sources={"k8s_audit": k8s})
    assert result.ok and result.warnings == []
    assert [r.name for r in result.ruleset.match({"ka.verb": "create"}, source="k8s_audit")] == ["r"]
    assert result.ruleset.match({"ka.verb": "create"}) == []


def test_engine_version_option():
    assert not load_rules("- required_engine_version: 0.63.0").ok
    assert load_rules("- required_engine_version: 0.63.0", engine_version="0.63.0").ok


_KEYS = st.sampled_from(["rule", "macro", "list", "condition", "output", "desc", "priority", "items", "append",
                         "override", "enabled", "tags", "exceptions", "source", "name", "fields", "values",
                         "required_engine_version", "required_plugin_versions", "version"])
_SCALARS = st.sampled_from(["evt.type = open", "proc.name in (l)", "a and", "INFO", "true", "x", "0.1.0", "",
                            "append", "replace", "m", "l", "1", None])
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) |
                       st.dictionaries(_KEYS, inner, max_size=4), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=5), max_size=5))
def test_random_rules_files_never_raise(items):
    result = load_rules(yaml.safe_dump(items))
    result.as_text(verbose=True)
    json.dumps(result.as_json())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_random_text_never_raises(text):
    load_rules(("t.yaml", text)).as_text(verbose=True)


def _loaded(spec) -> tuple:
    """What a load gives: messages with their positions, and every compiled rule."""
    result = load_rules(spec)
    rules = [(r.name, r.source, sorted(r.evttypes)) for r in result.ruleset.rules] if result.ruleset else []
    return result.as_json(), rules


def test_pure_python_yaml_keeps_composed_nodes_in_the_cache(tmp_path, monkeypatch):
    """Without libyaml (Debian's PyPy) the composed nodes are cached by the text's hash: a second
    load of the same text reads no YAML and gives the same rules, messages and positions; a
    corrupt entry is composed again and rewritten; a changed text is a new entry."""
    from pyfalco.rules import loader
    monkeypatch.setattr(loader, "_Loader", yaml.SafeLoader)
    monkeypatch.setattr(loader, "_CACHE_MIN", 0)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("PYFALCO_RULES_CACHE", raising=False)
    specs = [("rules.yaml", _BAD), ("r.yaml", STABLE.read_text() + "\n- rule: x\n  desc: d\n  condition: evt.type = open"
                                               "\n  output: o\n  priority: WARNING\n  extra_key: 1\n")]
    first = [_loaded(s) for s in specs]
    cache = tmp_path / "pyfalco" / "rules-yaml"
    entries = sorted(cache.glob("*.json"))
    assert len(entries) == 2
    assert first[1][0]["falco_load_results"][0]["warnings"]       # positions of warnings are compared too
    real_compose = yaml.compose_all

    def no_yaml(*a, **k):
        raise AssertionError("composed again despite the cache")
    monkeypatch.setattr(yaml, "compose_all", no_yaml)
    assert [_loaded(s) for s in specs] == first
    # a corrupt entry: composed again, same result, entry rewritten
    monkeypatch.setattr(yaml, "compose_all", real_compose)
    entries[0].write_text('["s", 1, {')
    entries[1].write_text('[["q", "tag", [["s", "t", 5, 0, 0, 0]], 0, 0, 0]]')   # well-formed JSON, bad nodes
    assert [_loaded(s) for s in specs] == first
    json.loads(entries[0].read_text()) and json.loads(entries[1].read_text())
    assert sorted(cache.glob("*.json")) == entries
    load_rules(("rules.yaml", _BAD + "\n"))
    assert len(list(cache.glob("*.json"))) == 3
    # turned off: nothing written
    monkeypatch.setenv("PYFALCO_RULES_CACHE", "0")
    load_rules(("rules.yaml", _BAD + "\n\n"))
    assert len(list(cache.glob("*.json"))) == 3
    # bounded: the oldest entries go
    monkeypatch.delenv("PYFALCO_RULES_CACHE")
    monkeypatch.setattr(loader, "_CACHE_KEEP", 2)
    load_rules(("rules.yaml", _BAD + "\n" * 3))
    assert len(list(cache.glob("*.json"))) == 2
