# SPDX-License-Identifier: Apache-2.0
"""Falco C plugins through ctypes: small plugins built here against the documented ABI (see
c/cdummy.c) run through the same loader, rules and outputs as Python plugins; ABI mismatches and
plugin errors are one clear error naming the plugin, never a crash."""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest

from pyfalco.plugins import PluginError
from pyfalco.plugins.cabi import CPlugin, api_version_compatible, decode_plugin_event, encode_plugin_event
from pyfalco.plugins.registry import load_configured, load_plugin
from pyfalco.rules import load_rules

RULES = """
- required_plugin_versions:
  - name: cdummy
    version: 1.2.0
- rule: gamma word
  desc: the third word is gamma and beta is present
  condition: cd.word[2] = gamma and cd.has[beta] = true and cd.n <= 4 and cd.words contains delta
  output: "n=%cd.n msg=%cd.msg words=%cd.words even=%cd.even len=%cdx.len info=%evt.plugininfo name=%evt.pluginname"
  priority: WARNING
  source: cdummy
"""


def _events(src):
    out = []
    src.open()
    while (batch := src.next_batch(0.05)) is not None:
        out.extend(batch)
    src.close()
    return out


def test_api_version_rule():
    assert api_version_compatible("3.0.0", "3.3.0") and api_version_compatible("3.3.0", "3.3.0")
    assert not api_version_compatible("3.3.1", "3.3.0") and not api_version_compatible("3.4.0", "3.3.0")
    assert not api_version_compatible("2.0.0", "3.3.0") and not api_version_compatible("4.0.0", "3.3.0")
    assert not api_version_compatible("3.x.0", "3.3.0")


def test_plugin_event_encoding():
    raw = encode_plugin_event(123, 999, b"payload")
    assert len(raw) == 26 + 8 + 4 + 7
    assert decode_plugin_event(raw) == (123, 999, b"payload")
    with pytest.raises(ValueError, match="shorter than its header"):
        decode_plugin_event(raw[:20])
    with pytest.raises(ValueError, match="do not add up"):
        decode_plugin_event(raw[:-1])


def test_c_plugin_identity_and_fields(c_plugins):
    p = CPlugin(c_plugins["cdummy"])
    assert (p.name, p.version, p.id, p.event_source, p.required_api_version) == \
        ("cdummy", "1.2.3", 999, "cdummy", "3.0.0")
    fields = {f.name: f for f in p.fields()}
    assert fields["cd.words"].is_list and fields["cd.word"].arg_index and fields["cd.word"].arg_required
    assert fields["cd.has"].type == "bool" and fields["cd.has"].arg_key
    p.init("")
    assert p.list_open_params()[0] == {"value": "5", "desc": "five events"}
    p.destroy()


def test_c_source_and_c_extractor_through_rules_and_outputs(c_plugins):
    ps = load_configured({"load_plugins": ["cd", "cdx"], "plugins": [
        {"name": "cd", "library_path": c_plugins["cdummy"], "init_config": "prefix=>", "open_params": "7"},
        {"name": "cdx", "library_path": c_plugins["cdummyx"]}]})
    try:
        provs = ps.providers()
        assert [lp.name for lp in ps.extractors("cdummy")] == ["cdummy", "cdummyx"]
        res = load_rules(RULES, extra_sources=provs, plugins=ps.versions())
        assert res.ok, res.as_text(verbose=True)
        (src,) = ps.event_sources(provs)
        evts = _events(src)
        assert [e.num for e in evts] == list(range(1, 8))
        assert [e.ts for e in evts][:2] == [1_700_000_000_000_000_000, 1_700_000_000_001_000_000]
        assert {e.plugin_id for e in evts} == {999}   # the plugin left 0: the framework sets its id
        assert evts[2].data == b"2 alpha beta gamma"
        hits = [(r.name, r.output_format.render(e)) for e in evts for r in res.ruleset.match(e, source="cdummy")]
        assert hits == [
            ("gamma word", "n=3 msg=>3 alpha beta gamma delta words=(alpha,beta,gamma,delta) even=false len=24 "
                           "info=cdummy event: 3 alpha beta gamma delta name=cdummy"),
            ("gamma word", "n=4 msg=>4 alpha beta gamma delta epsilon words=(alpha,beta,gamma,delta,epsilon) "
                           "even=true len=32 info=cdummy event: 4 alpha beta gamma delta epsilon name=cdummy")]
        # typed values for rules: ints, bools, tuples
        prov = provs["cdummy"]
        assert prov.accessor("cd.n", None)(evts[5]) == 5
        assert prov.accessor("cd.even", None)(evts[4]) is True
        assert prov.accessor("cd.words", None)(evts[1]) == ("alpha", "beta")
        assert prov.accessor("cd.word", "7")(evts[1]) is None      # res_len 0: <NA>
        assert prov.accessor("cd.word", "x")(evts[1]) is None      # not an index
        import ipaddress
        assert prov.accessor("cd.ip", None)(evts[3]) == ipaddress.ip_address("10.0.0.3")   # a 4-byte buffer
        ip_rules = load_rules("- rule: ip\n  desc: d\n  condition: cd.ip in (10.0.0.5, 192.168.0.0/16) or "
                              "cd.ip = 10.0.0.2\n  output: 'ip=%cd.ip'\n  priority: INFO\n  source: cdummy\n",
                              extra_sources=provs, plugins=ps.versions())
        assert [r.output_format.render(e) for e in evts for r in ip_rules.ruleset.match(e, source="cdummy")] == \
            ["ip=10.0.0.2", "ip=10.0.0.5"]
    finally:
        ps.destroy()


def test_extraction_failure_is_na_and_reported(c_plugins, caplog):
    ps = load_configured({"load_plugins": ["cd"], "plugins": [
        {"name": "cd", "library_path": c_plugins["cdummy"], "open_params": "4"}]})
    (src,) = ps.event_sources()
    acc = src.provider.accessor("cd.broken", None)
    with caplog.at_level(logging.ERROR, logger="pyfalco.plugins"):
        vals = [acc(e) for e in _events(src)]
    assert vals == ["fine", None, "fine", None]
    assert "plugin 'cdummy': extract_fields(cd.broken) failed: cd.broken cannot be extracted from event 1" \
        in caplog.text
    assert ps.get("cdummy").errors == {"extract of field 'cd.broken'": 2}
    # garbage results: two values for a non-list field, a NULL string: <NA>, reported by name
    ps2 = load_configured({"load_plugins": ["cd"], "plugins": [
        {"name": "cd", "library_path": c_plugins["cdummy"], "open_params": "1"}]})
    (src2,) = ps2.event_sources()
    (evt,) = _events(src2)
    with caplog.at_level(logging.ERROR, logger="pyfalco.plugins"):
        assert src2.provider.accessor("cd.two", None)(evt) is None
        assert src2.provider.accessor("cd.nullstr", None)(evt) is None
    assert "plugin 'cdummy': extract_fields(cd.two) returned 2 values for a non-list field" in caplog.text
    assert "plugin 'cdummy': extract_fields(cd.nullstr) returned a NULL string" in caplog.text
    ps2.destroy()
    ps.destroy()


@pytest.mark.parametrize("variant, message", [
    ("bad_api", "plugin 'bad_api': plugin required API version '4.0.0' is not compatible with the "
                "framework's API version '3.3.0'"),
    ("newer_minor", "plugin required API version '3.99.0' is not compatible"),
    ("no_last_error", "is not a Falco plugin: symbol plugin_get_last_error is missing"),
    ("bad_fields", "plugin 'cdummy': plugin_get_fields returned invalid JSON"),
])
def test_abi_mismatch_is_a_load_error(c_plugins, variant, message):
    with pytest.raises(PluginError) as exc:
        load_plugin({"name": variant, "library_path": c_plugins[variant]})
    assert message in str(exc.value)


def test_not_a_plugin_library(tmp_path):
    junk = tmp_path / "libjunk.so"
    junk.write_bytes(b"\x7fELF this is not a shared object")
    with pytest.raises(PluginError, match=r"plugin 'j': cannot load library .*libjunk.so"):
        load_plugin({"name": "j", "library_path": str(junk)})
    empty_c = tmp_path / "empty.c"
    empty_c.write_text("int not_a_plugin(void) { return 1; }\n")
    so = tmp_path / "libempty.so"
    subprocess.run([shutil.which("cc"), "-shared", "-fPIC", "-o", str(so), str(empty_c)], check=True)
    with pytest.raises(PluginError, match="is not a Falco plugin: symbol plugin_get_required_api_version is missing"):
        load_plugin({"name": "e", "library_path": str(so)})


def test_init_and_open_errors(c_plugins):
    with pytest.raises(PluginError, match="plugin 'cdummy': init failed: init_config 'fail' asked for a failure"):
        load_plugin({"name": "cd", "library_path": c_plugins["cdummy"], "init_config": "fail"})
    ps = load_configured({"load_plugins": ["cd"], "plugins": [
        {"name": "cd", "library_path": c_plugins["cdummy"], "open_params": "fail"}]})
    (src,) = ps.event_sources()
    with pytest.raises(PluginError, match="plugin 'cdummy': open failed: cannot open 'fail'"):
        src.open()
    ps.destroy()


@pytest.mark.parametrize("params, seen, message", [
    ("garbage", 0, "plugin 'cdummy': next_batch: event type 3 with 2 params (a plugin source produces plugin "
                   "events: type 322, 2 params)"),
    ("error@4", 4, "plugin 'cdummy': next_batch failed: the source broke after 4 events"),
    ("wrongid", 0, "plugin 'cdummy': next_batch: event with plugin id 7, not its own id 999"),
])
def test_source_errors_stop_the_source_with_the_plugins_error(c_plugins, params, seen, message, caplog):
    ps = load_configured({"load_plugins": ["cd"], "plugins": [
        {"name": "cd", "library_path": c_plugins["cdummy"], "open_params": params}]})
    (src,) = ps.event_sources()
    with caplog.at_level(logging.ERROR, logger="pyfalco.plugins"):
        assert len(_events(src)) == seen
    assert str(src.error) == message
    assert f"{message}; event source 'cdummy' stopped" in caplog.text
    ps.destroy()


def test_init_config_checked_against_the_plugins_schema(c_plugins):
    so = c_plugins["cdschema"]
    lp = load_plugin({"name": "s", "library_path": so, "init_config": {"prefix": ">"}})
    assert lp.init_config == '{"prefix": ">"}' and '"maxLength": 8' in lp.plugin.init_schema
    lp.plugin.destroy()
    lp = load_plugin({"name": "s", "library_path": so})          # empty: passed as {} (Falco)
    assert lp.init_config == "{}"
    lp.plugin.destroy()
    for cfg, message in (({"prefix": 3}, "init_config.prefix: expected string, got int"),
                         ({"prefix": "123456789"}, "init_config.prefix: longer than 8 characters"),
                         ({"other": 1}, "init_config: unknown property 'other'"),
                         ("prefix=>", "init config is not valid JSON")):
        with pytest.raises(PluginError) as exc:
            load_plugin({"name": "s", "library_path": so, "init_config": cfg})
        assert str(exc.value).startswith("plugin 'cdummy': ") and message in str(exc.value), str(exc.value)
