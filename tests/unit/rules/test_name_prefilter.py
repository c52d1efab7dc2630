# SPDX-License-Identifier: Apache-2.0
"""compile_bucket's proc.name prefilter (compiler.necessary_values) skips a rule only when its
condition is certainly false: a rule needing ``proc.name in (a, b)`` still matches proc.name=b,
an ``or`` not covered by proc.name everywhere gets no prefilter, conjuncts that may raise before
the name test keep the rule evaluated (its error is counted as before), and rules with
exceptions match as rule by rule. Every event is compared with each condition's own function."""

from __future__ import annotations

import itertools

from pyfalco.rules import compile_filter, load_rules
from pyfalco.rules.compiler import compile_bucket, necessary_values
from pyfalco.rules.provider import DictProvider

CONDITIONS = (
    "proc.name in (a, b) and fd.name startswith /etc",
    "fd.name startswith /tmp and proc.name = b",
    "proc.name = a or fd.name contains passwd",          # not covered by proc.name: no prefilter
    "(proc.name = a or proc.name in (c)) and fd.name exists",
    "proc.name in (a, b) and not (proc.name = b and fd.name = /etc/passwd)",
    "not proc.name in (a, b) and fd.name exists",        # a negation: no prefilter
    "toupper(fd.name) = /ETC/X and proc.name = c",       # a transformer before the name: no prefilter
)
NEEDS = ({"a", "b"}, {"b"}, None, {"a", "c"}, {"a", "b"}, None, None)


def test_necessary_values_are_derived_only_where_sound():
    prov = DictProvider()
    got = [necessary_values(compile_filter(c, prov, check_evttypes=False).tree, prov) for c in CONDITIONS]
    assert [None if g is None else set(g) for g in got] == list(NEEDS)


def test_bucket_with_prefilter_answers_as_each_condition():
    prov = DictProvider()
    filters = [compile_filter(c, prov, check_evttypes=False) for c in CONDITIONS]
    results = [(f"r{i}",) for i in range(len(CONDITIONS))]
    for first in (False, True):
        fn = compile_bucket([f.tree for f in filters], prov, results, first, lambda e: ("err",))
        # the prefilter is there (the comparison below is not vacuous)
        assert {"_p0", "_p1", "_p3", "_p4"} <= set(fn.__globals__) and "_p2" not in fn.__globals__
        names = (None, "a", "b", "c", "d", 3)
        paths = (None, "/etc/passwd", "/etc/x", "/tmp/y", "/x/passwd")
        for name, path in itertools.product(names, paths):
            evt = {k: v for k, v in (("proc.name", name), ("fd.name", path)) if v is not None}
            hold = [r for f, r in zip(filters, results) if f.fn(evt)]
            want = (hold[0] if hold else ()) if first else tuple(x for r in hold for x in r)
            assert fn(evt) == want, (first, evt)
        # the case the prefilter must not skip: proc.name = b, the second value of the set
        assert first or fn({"proc.name": "b", "fd.name": "/etc/x"}) == ("r0", "r4")
        assert first or fn({"proc.name": "b", "fd.name": "/tmp/y"}) == ("r1", "r4")


RULES = """
- list: shells
  items: [bash, sh]
- macro: spawned
  condition: evt.type = execve
- rule: Shell with exception
  desc: x
  condition: spawned and proc.name in (shells) and fd.name exists
  exceptions:
  - name: known
    fields: [proc.name, fd.name]
    values:
    - [sh, /etc/ok]
  output: "%proc.name"
  priority: WARNING
- rule: Not a shell
  desc: x
  condition: spawned and not proc.name in (shells)
  output: "%proc.name"
  priority: WARNING
- rule: Raises before the name
  desc: x
  condition: spawned and fd.name > 3 and proc.name = cat
  output: "%proc.name"
  priority: WARNING
- rule: Cat
  desc: x
  condition: spawned and proc.name = cat
  output: "%proc.name"
  priority: WARNING
"""


def test_rules_with_exceptions_and_errors_match_as_rule_by_rule():
    ruleset = load_rules(RULES, rule_matching="all", strict=True).ruleset
    rules = ruleset.enabled_rules()
    prov = rules[0].provider
    needs = [necessary_values(r.tree, prov) for r in rules]
    assert [None if x is None else set(x) for x in needs] == [{"bash", "sh"}, None, None, {"cat"}]
    bucket = compile_bucket([r.tree for r in rules], prov, [(r.name,) for r in rules], False,
                            lambda evt: tuple(r.name for r in ruleset._match_safely([(r.fn, r) for r in rules], evt)))
    assert "_p0" in bucket.__globals__
    for name, path in itertools.product(("sh", "bash", "cat", "ls"), ("/etc/ok", "/etc/no", 5, None)):
        evt = {"evt.type": "execve", "proc.name": name}
        if path is not None:
            evt["fd.name"] = path
        errors = dict(ruleset.evaluation_errors)
        want = tuple(r.name for r in ruleset.match(evt))
        errors_by_rule = dict(ruleset.evaluation_errors)
        ruleset.evaluation_errors.clear()
        ruleset.evaluation_errors.update(errors)
        assert bucket(evt) == want, evt
        # the rule whose '>' on a string raises is still evaluated (and its error counted)
        assert ruleset.evaluation_errors == errors_by_rule, evt
    assert ruleset.evaluation_errors.get("Raises before the name")
    # sh on /etc/ok is the exception; bash on it is not
    assert bucket({"evt.type": "execve", "proc.name": "sh", "fd.name": "/etc/ok"}) == ()
    assert bucket({"evt.type": "execve", "proc.name": "bash", "fd.name": "/etc/ok"}) == ("Shell with exception",)
