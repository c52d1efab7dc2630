# SPDX-License-Identifier: Apache-2.0
"""Rules files are bounded (issue 16): every file loads in time and memory linear in its expanded
size or is refused with one error naming the item and the limit; never a RecursionError, never
a blow-up. Numbers follow Falco's literal grammar, and nothing the loader accepts raises per event.

The hostile files come from the issue's findings (a 200-macro chain, a macro used twice per
level, nested lists, a 40k-item list, deep parentheses, inf/nan/1e999/1_000). No test asserts
a duration: the CLI runs in a subprocess whose timeout only guards against a hang.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyfalco.rules import RuleError, compile_filter, event_type_names, load_rules
from pyfalco.rules import limits
from pyfalco.rules.limits import (MAX_EXPANDED_DEPTH, MAX_EXPANDED_NODES, MAX_LIST_ITEMS, MAX_MACRO_DEPTH,
                                  MAX_NESTING, measure)
from pyfalco.rules.resolver import LimitError

ROOT = Path(__file__).resolve().parents[3]
RULE = "- rule: r\n  desc: d\n  condition: {cond}\n  output: o\n  priority: INFO\n"


def rule(cond: str, name: str = "r") -> str:
    return RULE.format(cond=cond).replace("- rule: r", f"- rule: {name}")


def macro_chain(n: int) -> str:
    out = ["- macro: m0\n  condition: proc.name = a\n"]
    out += [f"- macro: m{i}\n  condition: m{i - 1}\n" for i in range(1, n)]
    return "".join(out) + rule(f"evt.type = open and m{n - 1}")


def doubling(levels: int, keyword: str) -> str:
    out = ["- macro: m0\n  condition: proc.name = a\n"]
    out += [f"- macro: m{i}\n  condition: (m{i - 1} {keyword} m{i - 1})\n" for i in range(1, levels)]
    return "".join(out) + rule(f"evt.type = open and m{levels - 1}")


def nested_lists(levels: int) -> str:
    out = ["- list: l0\n  items: [a, b]\n"]
    out += [f"- list: l{i}\n  items: [l{i - 1}, l{i - 1}]\n" for i in range(1, levels)]
    return "".join(out) + rule(f"evt.type = open and proc.name in (l{levels - 1})")


def load(text: str, **kw):
    return load_rules(("f.yaml", text), **kw)


def one_error(result):
    assert not result.ok and result.ruleset is None
    assert len(result.errors) == 1, result.as_text()
    return result.errors[0]


def evaluate_everywhere(result, evt: dict) -> bool:
    """The match of the only rule by its compiled function, the reference interpreter and the
    per-event-type bucket function (compile_bucket): they must agree."""
    ruleset = result.ruleset
    (only,) = ruleset.rules
    compiled, reference = only.fn(evt), only.reference_matches(evt)
    names = sorted(event_type_names())
    matchers, _ = ruleset.code_matchers(names)
    bucket = bool(matchers[names.index(evt["evt.type"])](evt))
    assert compiled == reference == bucket
    assert ruleset.evaluation_errors == {}
    return compiled


def cli_validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # the timeout is a guard against a hang, not a performance assertion
    return subprocess.run([sys.executable, "-m", "pyfalco.cli.main", "-V", str(path)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=str(ROOT))


# ---- macro chains ---------------------------------------------------------------------------

def test_a_chain_of_200_macros_is_refused_once_at_the_macro_over_the_limit():
    err = one_error(load(macro_chain(200)))
    assert err.code == "LOAD_ERR_COMPILE_CONDITION"
    assert (err.item_type, err.item_name) == ("macro", f"m{MAX_MACRO_DEPTH}")
    assert f"macros are nested {MAX_MACRO_DEPTH + 1} levels deep, more than the limit of {MAX_MACRO_DEPTH}" \
        in err.message
    assert f"m{MAX_MACRO_DEPTH} -> m{MAX_MACRO_DEPTH - 1}" in err.message


def test_a_chain_of_macros_at_the_limit_loads_and_matches():
    result = load(macro_chain(MAX_MACRO_DEPTH))
    assert result.ok and not result.warnings, result.as_text()
    assert measure(result.ruleset.rules[0].tree).macro_depth == MAX_MACRO_DEPTH
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": "a"}) is True
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": "b"}) is False


def test_pyfalco_V_on_a_long_macro_chain_prints_one_error_and_exits_1(tmp_path):
    r = cli_validate(tmp_path, macro_chain(1000))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stdout + r.stderr and "RecursionError" not in r.stdout + r.stderr
    errors = [ln for ln in r.stdout.splitlines() if "LOAD_ERR" in ln]
    assert len(errors) == 1 and f"more than the limit of {MAX_MACRO_DEPTH}" in errors[0]
    assert errors[0].startswith(f"{tmp_path / 'hostile.yaml'}:")


def test_macros_referring_forward_through_overrides_stop_at_the_depth_limit():
    # overrides move a macro's visibility past later macros: m_i -> m_{i+1} -> ... resolves
    # recursively (not in definition order); the resolver's own guard must stop it
    n = 200
    text = "".join(f"- macro: m{i}\n  condition: proc.name = a\n" for i in range(n))
    text += "".join(f"- macro: m{i}\n  condition: m{i + 1}\n  override:\n    condition: replace\n"
                    for i in range(n - 1))
    result = load(text + rule("evt.type = open and m0"))
    assert not result.ok
    assert all(e.code == "LOAD_ERR_COMPILE_CONDITION" for e in result.errors)
    assert any(f"more than the limit of {MAX_MACRO_DEPTH}" in e.message for e in result.errors), result.as_text()


# ---- exponential expansion ------------------------------------------------------------------

@pytest.mark.parametrize("keyword", ["or", "and"])
def test_a_macro_used_twice_per_level_is_refused_at_the_expansion_limit(keyword):
    err = one_error(load(doubling(18, keyword)))  # 2**18 checks if it were expanded
    first_over = next(i for i in range(20) if 2 ** (i + 1) - 1 > MAX_EXPANDED_NODES)
    assert (err.item_type, err.item_name) == ("macro", f"m{first_over}")
    assert f"expands to {2 ** (first_over + 1) - 1:,} checks and operators" in err.message
    assert f"more than the limit of {MAX_EXPANDED_NODES:,}" in err.message
    assert f"macro 'm{first_over - 1}' alone expands to {2 ** first_over - 1:,}" in err.message


@pytest.mark.parametrize("keyword", ["or", "and"])
def test_a_macro_used_twice_per_level_under_the_limit_loads_and_matches(keyword):
    result = load(doubling(12, keyword))
    assert result.ok, result.as_text()
    assert measure(result.ruleset.rules[0].tree).nodes == 2 ** 12 - 1 + 1 + 1  # + evt.type check, and
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": "a"}) is True
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": "b"}) is False


def test_pyfalco_V_on_the_and_doubling_macro_is_refused_without_a_blow_up(tmp_path):
    r = cli_validate(tmp_path, doubling(24, "and"))
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    errors = [ln for ln in r.stdout.splitlines() if "LOAD_ERR" in ln]
    assert len(errors) == 1 and f"more than the limit of {MAX_EXPANDED_NODES:,}" in errors[0]


def test_the_total_of_a_load_is_bounded_too(monkeypatch):
    # a macro under the per-condition limit, used by many rules: the load's total stops it
    monkeypatch.setattr(limits, "MAX_TOTAL_NODES", 300)
    text = doubling(6, "or").rsplit("- rule:", 1)[0]  # m5: 63 nodes
    text += "".join(rule("evt.type = open and m5", name=f"r{i}") for i in range(20))
    result = load(text)
    err = one_error(result)
    assert err.item_name == "r4" and "more than the limit of 300 checks and operators in all" in err.message


def test_the_total_length_of_conditions_is_bounded(monkeypatch):
    monkeypatch.setattr(limits, "MAX_TOTAL_LENGTH", 2000)
    text = "- list: l\n  items: [" + ", ".join(f"item{i}" for i in range(100)) + "]\n"
    text += "".join(rule("evt.type = open and proc.name in (l)", name=f"r{i}") for i in range(10))
    err = one_error(load(text))
    assert err.item_name == "r2" and "longer than the limit of 2,000 characters in all" in err.message


# ---- lists ----------------------------------------------------------------------------------

def test_nested_lists_under_the_limit_load_and_match():
    result = load(nested_lists(14))  # 2**14 items
    assert result.ok, result.as_text()
    assert measure(result.ruleset.rules[0].tree).values == 2 ** 14
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": "b"}) is True
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": "c"}) is False


def test_nested_lists_over_the_limit_are_refused_before_they_are_built():
    err = one_error(load(nested_lists(40)))  # 2**40 items if it were built
    first_over = next(i for i in range(40) if 2 ** (i + 1) > MAX_LIST_ITEMS)
    assert (err.code, err.item_type, err.item_name) == ("LOAD_ERR_VALIDATE", "list", f"l{first_over}")
    assert f"has {2 ** (first_over + 1):,} items" in err.message
    assert f"more than the limit of {MAX_LIST_ITEMS:,}" in err.message


def test_a_long_chain_of_lists_loads():
    n = 3000
    text = "- list: l0\n  items: [a]\n" + "".join(f"- list: l{i}\n  items: [l{i - 1}, x{i}]\n" for i in range(1, n))
    result = load(text + rule(f"evt.type = open and proc.name in (l{n - 1})"))
    assert result.ok, result.as_text()
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": "a"}) is True
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": f"x{n - 1}"}) is True
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": "y"}) is False


def test_a_list_of_40k_items_loads_and_matches():
    items = ", ".join(f"p{i}" for i in range(40_000))
    result = load(rule(f"evt.type = open and proc.name in ({items})"))
    assert result.ok, result.as_text()
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": "p39999"}) is True
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": "p40000"}) is False


def test_a_condition_too_long_after_list_expansion_is_refused_at_the_reference(monkeypatch):
    from pyfalco.rules import resolver
    monkeypatch.setattr(resolver, "MAX_CONDITION_LENGTH", 5000)
    text = "- list: big\n  items: [" + ", ".join(f"item{i}" for i in range(1000)) + "]\n"
    text += rule("evt.type = open and (proc.name in (big) or proc.pname in (big))")
    err = one_error(load(text))
    assert err.item_type == "rule" and "longer than the limit of 5,000 characters" in err.message
    assert err.locations[-1].offset == len("evt.type = open and (proc.name in (")


def test_a_late_error_in_a_long_condition_reports_its_line_and_column():
    items = ",\n    ".join(f"p{i}" for i in range(20_000))
    cond = f"|\n    evt.type = open and proc.name in ({items}) and fd.num = inf"
    text = f"- rule: r\n  desc: d\n  condition: {cond}\n  output: o\n  priority: INFO\n"
    err = one_error(load(text))
    assert err.message == "'inf' is not a valid number"
    last = "    p19999) and fd.num = "
    assert (err.locations[-1].line, err.locations[-1].column) == (3 + 20_000, len(last) + 1)


# ---- nesting --------------------------------------------------------------------------------

def test_parentheses_are_nested_up_to_the_parser_limit():
    ok = load(rule("evt.type = open and " + "(" * MAX_NESTING + "proc.name = a" + ")" * MAX_NESTING))
    assert ok.ok, ok.as_text()
    assert evaluate_everywhere(ok, {"evt.type": "open", "proc.name": "a"}) is True
    deep = MAX_NESTING + 1
    err = one_error(load(rule("evt.type = open and " + "(" * deep + "proc.name = a" + ")" * deep)))
    assert err.item_name == "r" and f"nesting is too deep (more than {MAX_NESTING} levels)" in err.message
    err = one_error(load(rule("evt.type = open and " + "not " * 5000 + "proc.name = a")))
    assert "nesting is too deep" in err.message


def deepest(boolean_macros: int, plain_macros: int) -> str:
    """Macros that each add two levels (not, and), then macros that add none."""
    out = ["- macro: m0\n  condition: proc.name = a\n"]
    i = 0
    for i in range(1, boolean_macros + 1):
        out.append(f"- macro: m{i}\n  condition: not (m{i - 1} and proc.name = x{i})\n")
    for _ in range(plain_macros):
        i += 1
        out.append(f"- macro: m{i}\n  condition: m{i - 1}\n")
    return "".join(out) + rule(f"evt.type = open and m{i}")


def test_the_deepest_condition_allowed_compiles_and_evaluates_everywhere():
    levels = (MAX_EXPANDED_DEPTH - 2) // 2     # two per macro, one for the rule's 'and', one the check
    result = load(deepest(levels, MAX_MACRO_DEPTH - 1 - levels))
    assert result.ok, result.as_text()
    exp = measure(result.ruleset.rules[0].tree)
    assert (exp.depth, exp.macro_depth) == (MAX_EXPANDED_DEPTH, MAX_MACRO_DEPTH)
    expected = levels % 2 == 1  # an odd number of 'not' over an and that fails
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.name": "zz"}) is expected


def test_parentheses_nested_through_macros_are_refused_at_the_expanded_limit():
    err = one_error(load(deepest(MAX_EXPANDED_DEPTH // 2 + 1, 0)))
    assert err.item_type == "macro"
    assert f"nested {MAX_EXPANDED_DEPTH + 1} levels deep once its macros are expanded, more than the limit " \
           f"of {MAX_EXPANDED_DEPTH}" in err.message


def test_long_and_or_chains():
    ok = load(rule("evt.type = open and (" + " or ".join(f"proc.name = p{i}" for i in range(3000)) + ")"))
    assert ok.ok, ok.as_text()
    assert evaluate_everywhere(ok, {"evt.type": "open", "proc.name": "p2999"}) is True
    ok = load(rule("evt.type = open and " + " and ".join(f"proc.name != p{i}" for i in range(3000))))
    assert ok.ok, ok.as_text()
    assert evaluate_everywhere(ok, {"evt.type": "open", "proc.name": "p3000"}) is True
    n = MAX_EXPANDED_NODES + 10
    err = one_error(load(rule("evt.type = open and (" + " or ".join(f"proc.name = p{i}" for i in range(n)) + ")")))
    assert err.item_name == "r" and f"more than the limit of {MAX_EXPANDED_NODES:,}" in err.message


def test_yaml_nested_too_deep_is_a_parse_error():
    deep = "- list: l\n  items:\n" + "".join("  " * (i + 1) + "-\n" for i in range(3000))
    err = one_error(load(deep))
    assert err.code in ("LOAD_ERR_YAML_PARSE", "LOAD_ERR_YAML_VALIDATE")


def test_compile_filter_raises_its_limit_error():
    with pytest.raises(LimitError, match="macros are nested"):
        compile_filter("m199", macros={f"m{i}": (f"m{i - 1}" if i else "proc.name = a") for i in range(200)})


# ---- numbers --------------------------------------------------------------------------------

@pytest.mark.parametrize("cond, message", [
    ("fd.num = inf", "'inf' is not a valid number"),
    ("fd.num = nan", "'nan' is not a valid number"),
    ("fd.num = -inf", "'-inf' is not a valid number"),
    ("fd.num = 1e999", "'1e999' is not a valid number"),           # the exponent needs a sign
    ("fd.num > 1e+999", "'1e+999' is out of the range of 64-bit floating point numbers"),
    ("fd.num = 1_000", "'1_000' is not a valid number"),
    ("fd.num = 18446744073709551616", "'18446744073709551616' is out of the range of 64-bit numbers"),
    ("fd.num = -9223372036854775809", "'-9223372036854775809' is out of the range of 64-bit numbers"),
    ("fd.num = 0x1_0", "'0x1_0' is not a valid number"),
    ("fd.num = '3 '", "'3 ' is not a valid number"),
    ("fd.num = .5", "'.5' is not a valid number"),
    ("fd.num in (1, nan)", "'nan' is not a valid number"),
])
def test_invalid_numbers_are_compile_errors_with_their_position(cond, message):
    err = one_error(load(rule(f"evt.type = open and {cond}")))
    assert err.code == "LOAD_ERR_COMPILE_CONDITION" and err.message == message
    bad = message.split("'")[1]
    expected = len("evt.type = open and ") + cond.index(bad) - (1 if cond[cond.index(bad) - 1] == "'" else 0)
    assert err.locations[-1].offset == expected


@pytest.mark.parametrize("cond", ["fd.num > inf", "fd.num < nan", "fd.num >= 1_000", "fd.num <= 0x"])
def test_invalid_numbers_after_a_numeric_operator_are_syntax_errors(cond):
    err = one_error(load(rule(f"evt.type = open and {cond}")))
    assert err.message.startswith(f"expected a number after '{cond.split()[1]}'")
    assert err.locations[-1].offset == len("evt.type = open and ") + len(cond.split()[0]) + 1 + \
        len(cond.split()[1]) + 1


@pytest.mark.parametrize("cond, value, expected", [
    ("fd.num = 0x10", 16, True),
    ("fd.num = 0X1f", 31, True),
    ("fd.num = -3", -3, True),
    ("fd.num = +3", 3, True),
    ("fd.num > -1", 0, True),
    ("fd.num = 3.", 3, True),
    ("fd.num = 3.0", 3, True),
    ("fd.num < 2.5", 2, True),
    ("fd.num < 2.5", 3, False),
    ("fd.num = 1e+2", 100, True),
    ("fd.num = 15e-1", 1, False),
    ("fd.num = 18446744073709551615", 18446744073709551615, True),
    ("fd.num = -9223372036854775808", -9223372036854775808, True),
    ("fd.num in (1, 0x2, 3.0)", 2, True),
    ("fd.num > 1e+300", 5, False),
    ("proc.fdusage >= 1.25e+1", 12.5, True),
])
def test_valid_numbers_compare_by_value(cond, value, expected):
    field = cond.split()[0]
    result = load(rule(f"evt.type = open and {cond}"))
    assert result.ok, result.as_text()
    assert evaluate_everywhere(result, {"evt.type": "open", field: value}) is expected


@pytest.mark.parametrize("literal", ["inf", "nan", "1e999", "1_000", "99999999999999999999999"])
def test_raw_arguments_compare_non_numbers_as_strings_without_errors(literal):
    # evt.arg.* values are compared as numbers when the literal is one, else as strings
    result = load(rule(f"evt.type = open and evt.arg.flags = {literal}"))
    assert result.ok, result.as_text()
    assert evaluate_everywhere(result, {"evt.type": "open", "evt.arg.flags": literal}) is True
    assert evaluate_everywhere(result, {"evt.type": "open", "evt.arg.flags": "1000"}) is False


def test_every_accepted_number_form_runs_without_errors():
    forms = ["0", "-0", "+7", "0x0", "0xFFFFFFFFFFFFFFFF", "1.", "1.5", "1.5e+3", "2E-2", "-9223372036854775808"]
    for form in forms:
        f = compile_filter(f"fd.num = {form}")
        for value in (0, -1, 7, 1.5, 2 ** 64 - 1):
            assert f.matches({"fd.num": value}) == f.reference_matches({"fd.num": value})


# ---- per-event errors -----------------------------------------------------------------------

def test_a_rule_that_raises_per_event_is_counted_and_logged_at_powers_of_ten(caplog):
    result = load(rule("evt.type = open and proc.name contains x"))
    ruleset = result.ruleset
    bad = {"evt.type": "open", "proc.name": 5}  # a provider handing an int for a string field
    with caplog.at_level(logging.WARNING, logger="pyfalco"):
        for _ in range(150):
            assert ruleset.match(bad) == []
    assert ruleset.evaluation_errors == {"r": 150}
    logged = [rec for rec in caplog.records if "raised" in rec.getMessage()]
    assert [rec.getMessage().split("(")[1].split(" ")[0] for rec in logged] == ["1", "10", "100"]
    assert ruleset.match({"evt.type": "open", "proc.name": "xx"})  # the rule still works


def test_load_errors_are_rule_errors_never_recursion_errors():
    # strict mode raises the load's error type (what the agent's reload catches)
    from pyfalco.rules import RulesLoadError
    with pytest.raises(RulesLoadError) as info:
        load_rules(("f.yaml", macro_chain(500)), strict=True)
    assert isinstance(info.value, RuleError)
    assert "more than the limit of" in str(info.value)


def test_many_appends_fold_in_order():
    # appends are joined once at the end (joining at each append was quadratic): same results
    n = 1000
    text = "- list: l\n  items: [a]\n" + "".join(
        f"- list: l\n  items: [b{i}]\n  override:\n    items: append\n" for i in range(n))
    text += "- macro: m\n  condition: proc.name = c\n" + "".join(
        f"- macro: m\n  condition: or proc.name = c{i}\n  override:\n    condition: append\n" for i in range(n))
    text += "- rule: r\n  desc: d\n  condition: evt.type = open and (m or proc.name in (l)\n  output: o\n  priority: INFO\n" \
            "  tags: [t0]\n  exceptions:\n  - name: e\n    fields: proc.pname\n    values: [x]\n"
    text += "".join(f"- rule: r\n  desc: d{i}\n  condition: or proc.name = r{i}\n  output: o{i}\n  tags: [t{i % 7}]\n"
                    f"  exceptions:\n  - name: e\n    values: [x{i}]\n"
                    f"  override:\n    desc: append\n    condition: append\n    output: append\n"
                    f"    tags: append\n    exceptions: append\n" for i in range(n))
    text += "- rule: r\n  condition: )\n  override:\n    condition: append\n"
    result = load(text)
    assert result.ok, result.as_text()
    (r,) = result.ruleset.rules
    assert r.desc == "d " + " ".join(f"d{i}" for i in range(n))
    assert r.output == "o " + " ".join(f"o{i}" for i in range(n))
    assert sorted(r.tags) == [f"t{i}" for i in range(7)]
    assert r.condition.startswith("(evt.type = open and (m or proc.name in ( a, b0, b1,")
    assert f"b{n - 1} ) or proc.name = r0 or proc.name = r1 or" in r.condition
    assert r.condition.endswith(", x998, x999))")
    evt = {"evt.type": "open", "proc.pname": "y"}
    assert evaluate_everywhere(result, dict(evt, **{"proc.name": f"c{n - 1}"})) is True
    assert evaluate_everywhere(result, dict(evt, **{"proc.name": f"b{n - 1}"})) is True
    assert evaluate_everywhere(result, dict(evt, **{"proc.name": f"r{n - 1}"})) is True
    assert evaluate_everywhere(result, dict(evt, **{"proc.name": "zz"})) is False
    assert evaluate_everywhere(result, {"evt.type": "open", "proc.pname": "x999", "proc.name": "a"}) is False


def test_a_rules_file_on_one_line_loads_and_its_snippets_stay_short():
    # every item's snippet used to copy the whole (single) line: quadratic time and memory
    n = 8_000
    items = ", ".join(f"{{list: l{i}, items: [a]}}" for i in range(n))
    text = f"[{items}, {{rule: r, desc: d, condition: evt.type = open, priority: INFO}}]\n"
    err = one_error(load(text, warn_unused=False))
    assert err.message == "Item has no mapping for key 'output'"
    line, caret = err.snippet.split("\n")
    assert len(line) < 400 and line.lstrip().startswith("...")
    assert line[caret.index("^"):].startswith("{rule: r, desc: d")


def test_compile_condition_refuses_a_dag_over_the_limits():
    # a DAG built by hand (not by the loader) whose expansion is 2**40 checks: refused, not emitted
    from pyfalco.rules import nodes as n
    from pyfalco.rules.compiler import compile_condition
    tree = n.Check(n.FieldRef("proc.name"), "=", n.Literal("a"))
    for i in range(40):
        tree = n.Or((n.Macro(f"m{i}", tree), n.Macro(f"m{i}", tree)))
    with pytest.raises(LimitError, match="more than the limit"):
        compile_condition(tree, None)


# ---- random macro graphs --------------------------------------------------------------------

_SHAPES = ["{a}", "({a} or {b})", "({a} and {b})", "not {a}", "not ({a} or {b})", "(({a}) and not {b})"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_SHAPES), st.integers(0, 10 ** 6), st.integers(0, 10 ** 6)),
                min_size=1, max_size=90),
       st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3))
def test_random_macro_graphs_load_or_are_refused_and_evaluate_alike(shapes, names):
    # each macro uses one or two earlier macros (or a check): chains, doublings and deep
    # nesting in any mix; loading never raises, and what loads evaluates alike everywhere
    text = "- macro: m0\n  condition: proc.name = a\n"
    for i, (shape, x, y) in enumerate(shapes, start=1):
        a, b = f"m{max(0, i - 1 - x % 3)}", f"m{max(0, i - 1 - y % 5)}"
        text += f"- macro: m{i}\n  condition: {shape.format(a=a, b=b)}\n"
    text += rule(f"evt.type = open and m{len(shapes)}")
    result = load(text, warn_unused=False)
    if not result.ok:
        assert all(e.code == "LOAD_ERR_COMPILE_CONDITION" and "limit" in e.message for e in result.errors), \
            result.as_text()
        return
    exp = measure(result.ruleset.rules[0].tree)
    assert exp.nodes <= MAX_EXPANDED_NODES and exp.depth <= MAX_EXPANDED_DEPTH
    assert exp.macro_depth <= MAX_MACRO_DEPTH
    for name in names:
        evaluate_everywhere(result, {"evt.type": "open", "proc.name": name})
