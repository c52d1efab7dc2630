# SPDX-License-Identifier: Apache-2.0
"""Conditions specialised per event type (pyfalco/rules/specialize.py): the batch path's bucket
of a type sees each condition with evt.type a constant, and leaves out (and no longer wants) the
types a rule can match no event of. Checked on the trees, on the code index of Falco's stable
rules (the ``outbound`` macro's sendto/sendmsg arm contradicts ``fd.l4proto=tcp``), and on every
shared capture: the batch path with and without the specialisation and the per-event path give
the same alerts."""

from __future__ import annotations

from pathlib import Path

import pytest

import pyfalco
from pyfalco.inspector import Inspector
from pyfalco.rules import nodes as n
from pyfalco.rules.ruleset import Ruleset
from pyfalco.rules.specialize import specialize

ROOT = Path(__file__).resolve().parents[3]
CAPTURES = sorted((ROOT.parent / "shared" / "captures").glob("*.scap"))
STABLE = ROOT.parent / "shared" / "rules" / "falco_rules.yaml"
NAMES = Inspector.event_code_names

# rules whose conditions mix event types: some arms contradict for some types, others hold often
MIXED = """
- macro: out
  condition: >
    (evt.type = connect or (evt.type in (sendto, recvfrom, read) and fd.l4proto != tcp))
- rule: contradicted for sendto recvfrom read
  desc: x
  condition: out and fd.l4proto = tcp and fd.typechar in (4, 6)
  output: "%evt.type %fd.name %fd.l4proto"
  priority: WARNING
- rule: holds for the non-tcp arm
  desc: x
  condition: out and fd.typechar in (4, 6, u, f) and evt.res exists
  output: "%evt.type %fd.name %fd.l4proto %evt.res"
  priority: INFO
- rule: type tests folded
  desc: x
  condition: >
    evt.type in (open, openat, close, read) and (evt.type != close or fd.num >= 0)
    and not (evt.type = read and fd.typechar = f) and not evt.type = openat2
  output: "%evt.type %fd.name"
  priority: NOTICE
- rule: address tests after the cheap ones
  desc: x
  condition: >
    evt.type in (connect, accept, accept4) and fd.ip != "0.0.0.0" and fd.net != "127.0.0.0/8"
    and not fd.snet in ("10.0.0.0/8") and fd.typechar in (4, 6) and evt.rawres >= 0
  output: "%evt.type %fd.name %fd.sip"
  priority: NOTICE
- rule: x and not x
  desc: x
  condition: evt.type in (openat, close) and fd.name startswith /etc and not fd.name startswith /etc
  output: "%fd.name"
  priority: ERROR
"""


def _engine(rules, **kw) -> pyfalco.Engine:
    return pyfalco.Engine(rules, **kw)


def _tree(engine: pyfalco.Engine, name: str):
    rule = engine.ruleset.rule(name)
    return rule, rule.provider


def test_contradicted_arm_folds_to_false_and_the_other_type_keeps_its_condition():
    eng = _engine(MIXED)
    rule, prov = _tree(eng, "contradicted for sendto recvfrom read")
    for t in ("sendto", "recvfrom", "read"):
        assert specialize(rule.tree, prov, t) == n.Const(False, pos=specialize(rule.tree, prov, t).pos)
    kept = specialize(rule.tree, prov, "connect")
    assert not isinstance(kept, n.Const)
    assert "evt.type" not in n.to_text(kept)          # evt.type = connect folded to true
    both = specialize(eng.ruleset.rule("x and not x").tree, prov, "openat")
    assert isinstance(both, n.Const) and not both.value
    # different literals are no contradiction, nor is != against = on another field
    other = _engine("""
- rule: r
  desc: x
  condition: evt.type = sendto and fd.l4proto != tcp and fd.l4proto = udp and fd.name != a and fd.directory = a
  output: x
  priority: INFO
""")
    r = other.ruleset.rule("r")
    assert not isinstance(specialize(r.tree, r.provider, "sendto"), n.Const)


def test_conjunctions_test_cheap_terms_first():
    eng = _engine(MIXED)
    rule, prov = _tree(eng, "address tests after the cheap ones")
    tree = specialize(rule.tree, prov, "connect")
    assert isinstance(tree, n.And)
    fields = [n.to_text(i).split()[0].lstrip("(") for i in tree.items]
    assert fields[:2] == ["fd.typechar", "evt.rawres"]
    assert set(fields[2:]) == {"fd.ip", "fd.net", "not"}


def test_stable_rules_no_longer_want_sendto_and_sendmsg():
    eng = _engine(STABLE)
    rs = eng.ruleset
    _pairs, mask = rs.code_index(NAMES, "syscall")
    wanted = {NAMES[c] for c in range(len(NAMES)) if mask[c]}
    assert "connect" in wanted and "socket" in wanted and "open" in wanted
    assert "sendto" not in wanted and "sendmsg" not in wanted
    # as written, the outbound rule is a candidate for both
    Ruleset.specialize_types = False
    try:
        rs._code_indexes.clear()
        _pairs, mask = rs.code_index(NAMES, "syscall")
        assert mask[NAMES.index("sendto")] and mask[NAMES.index("sendmsg")]
    finally:
        Ruleset.specialize_types = True
        rs._code_indexes.clear()


def _alerts(capture: Path, rules, batch: bool, spec: bool = True) -> list:
    Ruleset.specialize_types = spec
    try:
        engine = pyfalco.Engine(rules, capture=pyfalco.Capture("replay", capture_file=str(capture)),
                                rule_matching="all", batch=batch)
        with engine:
            return [(a.rule, a.time_ns, a.message, a.fields) for a in engine.alerts()]
    finally:
        Ruleset.specialize_types = True


@pytest.mark.parametrize("rules", ["mixed", "stable"])
@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_specialised_buckets_give_the_same_alerts(capture, rules):
    spec = {"mixed": MIXED, "stable": STABLE}[rules]
    on = _alerts(capture, spec, batch=True)
    assert on == _alerts(capture, spec, batch=True, spec=False)
    assert on == _alerts(capture, spec, batch=False)


def test_the_comparison_is_not_vacuous():
    big = max(CAPTURES, key=lambda p: p.stat().st_size)
    got = {a[0] for a in _alerts(big, MIXED, batch=True)}
    assert {"holds for the non-tcp arm", "type tests folded", "address tests after the cheap ones"} <= got
