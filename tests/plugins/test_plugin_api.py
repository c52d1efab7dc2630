# SPDX-License-Identifier: Apache-2.0
"""Python plugins: discovery (dotted path, entry point, built-ins), Falco's load checks, fields
through rules and outputs, and isolation of plugins that raise or return garbage."""

from __future__ import annotations

import logging
import sys
import textwrap

import pytest

from pyfalco.plugins import FieldSpec, PluginError, PluginEvent
from pyfalco.plugins.registry import BUILTINS, load_configured, load_plugin, plugin_entry, resolve
from pyfalco.rules import load_rules

import pyplugins


def _cfg(*entries, load=None):
    return {"load_plugins": load if load is not None else [e["name"] for e in entries], "plugins": list(entries)}


def _run(source, ruleset):
    """(rule name, rendered output) of every match, events read to the source's end."""
    out = []
    source.open()
    while (batch := source.next_batch(0.05)) is not None:
        for evt in batch:
            for rule in ruleset.match(evt, source=source.source):
                out.append((rule.name, rule.output_format.render(evt)))
    source.close()
    return out


RULES = textwrap.dedent("""
    - required_plugin_versions:
      - name: pycounter
        version: 0.1.0
    - rule: odd user
      desc: events with an odd counter
      condition: pc.i in (1, 3) and pu.upper startswith U
      output: "user=%pc.user upper=%pu.upper i=%pc.i tags=%pc.tags plugin=%evt.pluginname src=%evt.source n=%evt.num"
      priority: WARNING
      source: pycounter
    - rule: a syscall rule
      desc: stays with the syscall source
      condition: evt.type = open
      output: "%proc.name"
      priority: INFO
""")


def test_python_source_and_extractor_through_rules():
    ps = load_configured(_cfg({"name": "pc", "library_path": "pyplugins:PyCounter", "init_config": {"prefix": "@"},
                               "open_params": "5"},
                              {"name": "up", "library_path": "pyplugins:PyUpper"}))
    try:
        assert [p.name for p in ps] == ["pycounter", "pyupper"]
        assert ps.versions() == {"pycounter": "0.2.0", "pyupper": "1.0.0"}
        assert ps.sources() == ["pycounter"]
        provs = ps.providers()
        res = load_rules(RULES, extra_sources=provs, plugins=ps.versions())
        assert res.ok, res.as_text(verbose=True)
        assert [r.event_source for r in res.ruleset.rules] == ["pycounter", "syscall"]
        (src,) = ps.event_sources(provs)
        hits = _run(src, res.ruleset)
        assert hits == [("odd user", "user=@u1 upper=U1 i=1 tags=(t0) plugin=pycounter src=pycounter n=2"),
                        ("odd user", "user=@u3 upper=U3 i=3 tags=(t0,t1,t2) plugin=pycounter src=pycounter n=4")]
        assert src.error is None and src.n_events == 5
    finally:
        ps.destroy()


def test_timestamps_and_generic_fields():
    ps = load_configured(_cfg({"name": "pc", "library_path": "pyplugins:PyCounter", "open_params": "2"}))
    (src,) = ps.event_sources()
    src.open()
    (e0, e1) = src.next_batch(0.1)
    prov = src.provider
    assert e0.ts == 1_700_000_000_000_000_000 and e1.plugin_id == 1999 and e1.source == "pycounter"
    assert prov.accessor("evt.rawtime", None)(e1) == 1_700_000_000_000_000_001
    assert prov.accessor("evt.reltime", None)(e1) == 1
    assert prov.accessor("evt.time.iso8601", None)(e0) == "2023-11-14T22:13:20.000000000Z"
    assert prov.accessor("evt.plugininfo", None)(e0) == '{"i": 0, "user": "u0"}'
    assert prov.accessor("evt.is_async", None)(e0) is False
    assert prov.field_info("evt.type") is None      # syscall-only fields are not plugin-event fields
    assert prov.field_info("pc.key").arg == "required"
    assert prov.accessor("pc.key", "user")(e0) == "u0" and prov.accessor("pc.key", "nope")(e0) is None
    src.close()
    ps.destroy()


def test_rules_of_unknown_plugin_fields_and_versions():
    ps = load_configured(_cfg({"name": "pc", "library_path": "pyplugins:PyCounter"}))
    provs = ps.providers()
    bad_field = "- rule: r\n  desc: d\n  condition: pc.nope = 1\n  output: o\n  priority: INFO\n  source: pycounter\n"
    res = load_rules(bad_field, extra_sources=provs, plugins=ps.versions())
    assert not res.ok and "unknown field 'pc.nope'" in res.as_text(verbose=True)
    too_new = "- required_plugin_versions:\n  - name: pycounter\n    version: 0.3.0\n"
    res = load_rules(too_new, extra_sources=provs, plugins=ps.versions())
    assert not res.ok and "Plugin 'pycounter' version '0.2.0' is not compatible with required plugin version '0.3.0'" \
        in res.as_text(verbose=True)
    alt = ("- required_plugin_versions:\n  - name: other\n    version: 1.0.0\n    alternatives:\n"
           "    - name: pycounter\n      version: 0.1.5\n")
    assert load_rules(alt, extra_sources=provs, plugins=ps.versions()).ok
    major = "- required_plugin_versions:\n  - name: pycounter\n    version: 1.0.0\n"
    assert not load_rules(major, extra_sources=provs, plugins=ps.versions()).ok
    # the first loaded alternative decides, as in Falco (a compatible later one does not rescue it)
    first_decides = ("- required_plugin_versions:\n  - name: pycounter\n    version: 0.9.0\n    alternatives:\n"
                     "    - name: container\n      version: 0.1.0\n")
    res = load_rules(first_decides, extra_sources=provs, plugins={**ps.versions(), "container": "0.4.0"})
    assert not res.ok and "version '0.2.0' is not compatible with required plugin version '0.9.0'" in res.as_text()
    missing = "- required_plugin_versions:\n  - name: a\n    version: 1.0.0\n    alternatives:\n" \
              "    - name: b\n      version: 2.0.0\n"
    assert "Plugin requirement not satisfied, must load one of: a (>= 1.0.0), b (>= 2.0.0)" in \
        load_rules(missing, extra_sources=provs, plugins=ps.versions()).as_text()
    dup = "- required_plugin_versions:\n  - name: a\n    version: 1.0.0\n    alternatives:\n" \
          "    - name: a\n      version: 2.0.0\n"
    assert "Defined multiple alternative version requirements for plugin 'a'" in \
        load_rules(dup, extra_sources=provs, plugins=ps.versions()).as_text()
    bad = "- required_plugin_versions:\n  - name: a\n    version: 1.x\n"
    assert "Invalid required version '1.x' for plugin 'a'" in load_rules(bad, plugins={}).as_text()
    unknown_src = "- rule: r\n  desc: d\n  condition: x.y = 1\n  output: o\n  priority: INFO\n  source: nosuch\n"
    res = load_rules(unknown_src, extra_sources=provs, plugins=ps.versions())
    assert res.ok and "Unknown source nosuch, skipping" in res.as_text(verbose=True)
    ps.destroy()


@pytest.mark.parametrize("entry, message", [
    ({"name": "x", "library_path": "pyplugins:NewApi"},
     "plugin 'newapi': plugin required API version '4.0.0' is not compatible with the framework's API version"),
    ({"name": "x", "library_path": "pyplugins:NoCaps"},
     "plugin 'nocaps': the plugin implements neither event sourcing nor field extraction"),
    ({"name": "x", "library_path": "pyplugins:BadField"}, "plugin 'badfield': field 'x.y': unknown type 'float'"),
    ({"name": "x", "library_path": "pyplugins:NoOpen"},
     "plugin 'noopen': event sourcing capability is incomplete: open() is not implemented"),
    ({"name": "x", "library_path": "pyplugins:Missing"}, "plugin 'x': module 'pyplugins' has no attribute 'Missing'"),
    ({"name": "x", "library_path": "no_such_module_zz:Cls"}, "plugin 'x': cannot import module 'no_such_module_zz'"),
    ({"name": "x", "library_path": "pyplugins:FieldSpec"}, "is not a pyfalco.plugins.Plugin subclass"),
    ({"name": "x", "library_path": "nosuchplugin"}, "plugin 'x': cannot find plugin 'nosuchplugin'"),
    ({"name": "x", "library_path": "/nonexistent/libnope.so"}, "plugin 'x': cannot find plugin library"),
    ({"name": "x", "library_path": "pyplugins:PyCounter", "init_config": {"fail": True}},
     "plugin 'pycounter': init failed: ValueError: asked to fail"),
])
def test_load_errors_name_the_plugin(entry, message):
    with pytest.raises(PluginError) as exc:
        load_plugin(entry)
    assert message in str(exc.value)


def test_configuration_errors():
    with pytest.raises(PluginError, match="plugin 'ghost': cannot load: no entry with this name in 'plugins'"):
        load_configured({"load_plugins": ["ghost"], "plugins": []})
    two = _cfg({"name": "a", "library_path": "pyplugins:PyCounter"}, {"name": "b", "library_path": "pyplugins:PyCounter"})
    with pytest.raises(PluginError, match="plugin 'pycounter': a plugin with the same name is already loaded"):
        load_configured(two)
    with pytest.raises(PluginError, match="plugin 'pyupper': has field extraction capability but is not compatible "
                                          r"with any known event source \(it extracts from: pycounter\)"):
        load_configured(_cfg({"name": "up", "library_path": "pyplugins:PyUpper"}))
    # load_plugins empty: nothing is loaded (Falco), even with entries
    assert len(load_configured(_cfg({"name": "a", "library_path": "pyplugins:PyCounter"}, load=[]))) == 0
    assert plugin_entry(_cfg({"name": "a", "library_path": "pyplugins:PyCounter"}), "pyplugins:PyCounter")["name"] == "a"


def test_builtins_resolve_to_the_python_plugins(tmp_path, monkeypatch):
    assert BUILTINS["libk8saudit.so"] == "pyfalco.plugins.k8saudit:K8sAuditPlugin"
    assert BUILTINS["libjson.so"] == "pyfalco.plugins.json_plugin:JsonPlugin"
    for path, cls in (("libjson.so", "JsonPlugin"), ("json", "JsonPlugin"), ("libk8saudit.so", "K8sAuditPlugin"),
                      ("k8saudit", "K8sAuditPlugin"), ("/usr/share/falco/plugins/libk8saudit.so", "K8sAuditPlugin")):
        assert resolve(path, "x").__name__ == cls, path
    # a real file of that name wins over the built-in (a Falco .so): here, not a valid library
    monkeypatch.chdir(tmp_path)
    (tmp_path / "libjson.so").write_bytes(b"not an ELF file")
    with pytest.raises(PluginError, match="plugin 'j': cannot load library"):
        load_plugin({"name": "j", "library_path": "libjson.so"})


def test_entry_point_discovery(tmp_path, monkeypatch):
    """A distribution that declares ``[project.entry-points."pyfalco.plugins"]`` (what pip installs
    as dist-info/entry_points.txt) is found by the entry point's name."""
    dist = tmp_path / "pyfalco_test_counter-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pyfalco-test-counter\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pyfalco.plugins]\ntestcounter = pyplugins:PyCounter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    lp = load_plugin({"name": "tc", "library_path": "testcounter", "open_params": "1"})
    assert lp.name == "pycounter" and lp.open_params == "1"


def test_plugin_that_raises_or_returns_garbage_is_isolated(caplog):
    ps = load_configured(_cfg({"name": "pc", "library_path": "pyplugins:PyCounter", "open_params": "4"}))
    prov = ps.providers()["pycounter"]
    res = load_rules("- rule: bad\n  desc: d\n  condition: pc.bad = x or pc.boom = y or pc.i = 1\n"
                     "  output: 'bad=%pc.bad boom=%pc.boom i=%pc.i'\n  priority: INFO\n  source: pycounter\n",
                     extra_sources={"pycounter": prov}, plugins=ps.versions())
    assert res.ok, res.as_text(verbose=True)
    (src,) = ps.event_sources({"pycounter": prov})
    with caplog.at_level(logging.ERROR, logger="pyfalco.plugins"):
        hits = _run(src, res.ruleset)
    assert hits == [("bad", "bad=<NA> boom=<NA> i=1")]
    lp = ps.get("pycounter")
    assert lp.errors["extract of field 'pc.bad'"] >= 4 and lp.errors["extract of field 'pc.boom'"] >= 4
    msgs = [r.getMessage() for r in caplog.records]
    assert any("plugin 'pycounter': extract of field 'pc.bad' returned dict {'a': 1} for a string field" in m
               for m in msgs), msgs
    assert any("plugin 'pycounter': extract of field 'pc.boom' raised KeyError: 'boom'" in m for m in msgs), msgs
    # logged once per field, counted after
    assert sum("pc.bad" in m for m in msgs) == 1
    ps.destroy()


@pytest.mark.parametrize("garbage, message", [
    ("raise", "plugin 'pycounter': next_batch raised RuntimeError: the feed went away"),
    ("type", "plugin 'pycounter': next_batch returned a dict event (expected bytes or (ts, bytes))"),
    ("notalist", "plugin 'pycounter': next_batch returned int, not a list of events"),
])
def test_source_that_fails_stops_alone(garbage, message, caplog):
    ps = load_configured(_cfg({"name": "pc", "library_path": "pyplugins:PyCounter", "open_params": f"6,{garbage}"}))
    (src,) = ps.event_sources()
    src.open()
    seen = 0
    with caplog.at_level(logging.ERROR, logger="pyfalco.plugins"):
        while (batch := src.next_batch(0.05)) is not None:
            seen += len(batch)
    assert seen == 2 and src.ended
    assert str(src.error) == message
    assert f"{message}; event source 'pycounter' stopped" in caplog.text
    assert src.next_batch(0.05) is None
    ps.destroy()


def test_fieldspec_json_round_trip():
    spec = FieldSpec("a.b", "string", is_list=True, arg_required=True, arg_key=True, display="A B", desc="d",
                     properties=("hidden",), add_output=True)
    assert FieldSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError, match="required argument must be an index or a key"):
        FieldSpec.from_json({"name": "a.c", "type": "string", "arg": {"isRequired": True}})
    evt = PluginEvent(1, 2, 3, "s", b"x")
    assert evt.plugin_name == "" and evt.cache == {}


def test_pyplugins_importable():
    assert sys.modules["pyplugins"] is pyplugins


def test_close_during_next_batch_waits_for_it():
    """A close from another thread (the engine at shutdown) never runs under a running next_batch:
    a C plugin's close frees what next_batch uses."""
    import threading
    import time as _time
    ps = load_configured(_cfg({"name": "s", "library_path": "pyplugins:Slow"}))
    calls = pyplugins.Slow.calls
    calls.clear()
    (src,) = ps.event_sources()
    src.open()
    result = []
    t = threading.Thread(target=lambda: result.append(src.next_batch(1.0)))
    t.start()
    deadline = _time.monotonic() + 10
    while not calls and _time.monotonic() < deadline:
        _time.sleep(0.01)
    src.close()                       # while next_batch sleeps inside the plugin
    assert calls == ["in"] and src.busy
    t.join(5)
    assert calls == ["in", "out", "close"]
    assert result == [None] and src.ended and not src.busy
    ps.destroy()


def test_ip_fields_accept_what_falco_passes():
    import ipaddress
    from pyfalco.plugins.provider import _checker
    ipaddr = _checker(FieldSpec("a.ip", "ipaddr"))
    ipnet = _checker(FieldSpec("a.net", "ipnet"))
    assert ipaddr("10.1.2.3") == ipaddress.ip_address("10.1.2.3")
    assert ipnet(ipaddress.ip_address("10.1.2.3")) == ipaddress.ip_address("10.1.2.3")   # C ABI: an address
    assert ipnet("10.0.0.0/8") == ipaddress.ip_network("10.0.0.0/8")
    with pytest.raises(ValueError):
        ipaddr("not-an-ip")
    with pytest.raises(TypeError):
        _checker(FieldSpec("a.n", "uint64"))(True)
    assert _checker(FieldSpec("a.l", "uint64", is_list=True))([1, 2]) == (1, 2)


def test_detection_session_loads_plugins_with_the_agents_loader(monkeypatch):
    """DetectionSession(plugins=[entries]) goes through registry.load_entries: the same conflict
    checks as the agent's configuration, and every plugin loaded before a failure destroyed."""
    from pyfalco.testing import DetectionSession
    destroyed = []
    monkeypatch.setattr(pyplugins.PyCounter, "destroy", lambda self: destroyed.append(self.name), raising=False)
    two = [{"name": "a", "library_path": "pyplugins:PyCounter"}, {"name": "b", "library_path": "pyplugins:PyCounter"}]
    with pytest.raises(PluginError, match="plugin 'pycounter': a plugin with the same name is already loaded"):
        DetectionSession(rules=[], engine=None, plugins=two).load()
    assert destroyed == ["pycounter", "pycounter"]      # the one refused and the one loaded before it
    with pytest.raises(PluginError, match="plugin 'pyupper': has field extraction capability"):
        DetectionSession(rules=[], engine=None, plugins=[{"name": "up", "library_path": "pyplugins:PyUpper"}]).load()
    with pytest.raises(TypeError, match="expected plugins entries"):
        DetectionSession(rules=[], engine=None, plugins=["pyplugins:PyCounter"]).load()
