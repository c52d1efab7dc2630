# SPDX-License-Identifier: Apache-2.0
"""Lexer/parser: tree shapes, positions, printing, and property tests (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyfalco.rules import ConditionSyntaxError, parse, to_text
from pyfalco.rules import nodes as n
from pyfalco.rules.lexer import Lexer, TokenKind
from pyfalco.rules.parser import MAX_DEPTH, parse_uncached


def test_precedence_or_and_not():
    tree = parse("not a or b and c")
    assert tree == n.Or((n.Not(n.MacroRef("a")), n.And((n.MacroRef("b"), n.MacroRef("c")))))


def test_parentheses_keep_structure():
    assert parse("a and (b and c)") == n.And((n.MacroRef("a"), n.And((n.MacroRef("b"), n.MacroRef("c")))))


def test_check_with_field_argument_and_modifier():
    tree = parse("proc.aname[2] startswith oneof (a, 'b c')")
    assert tree == n.Check(n.FieldRef("proc.aname", "2"), "startswith",
                           n.ListLiteral((n.Literal("a"), n.Literal("b c"))), "oneof")


def test_quoted_field_argument():
    assert parse('container.mount.dest["/var/run/docker.sock"] exists').lhs == \
        n.FieldRef("container.mount.dest", "/var/run/docker.sock")


def test_dot_argument_form_is_a_field_name():
    assert parse("evt.arg.flags contains O_TRUNC").lhs == n.FieldRef("evt.arg.flags")


def test_transformers_and_val():
    tree = parse("tolower(proc.name) = val(proc.pname)")
    assert tree == n.Check(n.Transform("tolower", (n.FieldRef("proc.name"),)), "=", n.Val(n.FieldRef("proc.pname")))


def test_join_and_concat_arguments():
    tree = parse('join(",", (proc.name, proc.pname)) = concat(proc.name, "-", toupper(proc.pname))')
    assert tree.lhs == n.Transform("join", (n.Literal(","), n.FieldRef("proc.name"), n.FieldRef("proc.pname")))
    assert tree.value == n.Transform("concat", (n.FieldRef("proc.name"), n.Literal("-"),
                                                n.Transform("toupper", (n.FieldRef("proc.pname"),))))


def test_bare_values_with_special_characters():
    assert parse("proc.name in (<NA>, N/A, a.b-c:d)").value.items == (
        n.Literal("<NA>"), n.Literal("N/A"), n.Literal("a.b-c:d"))


def test_not_followed_by_identifier_is_a_macro():
    assert parse("not_vpn_inbound") == n.MacroRef("not_vpn_inbound")
    assert parse("not vpn") == n.Not(n.MacroRef("vpn"))


def test_numbers_hex_and_signed():
    assert parse("fd.num >= -1").value == n.Literal("-1")
    assert parse("proc.pid = 0x1F").value == n.Literal("0x1F")


def test_escapes_in_quoted_strings():
    assert parse(r'proc.name = "a\"b\\c\n"').value.value == 'a"b\\c\n'
    assert parse(r"proc.name = 'it\'s'").value.value == "it's"


def test_node_positions():
    tree = parse("a and proc.name = x")
    assert tree.items[1].pos == 16           # the operator
    assert tree.items[1].lhs.pos == 6
    assert tree.items[1].value.pos == 18


def test_parse_is_cached():
    assert parse("proc.name = cached") is parse("proc.name = cached")


def test_error_renders_a_caret():
    with pytest.raises(ConditionSyntaxError) as info:
        parse("evt.type in and fd.name startswith /etc")
    exc = info.value
    assert (exc.msg, exc.pos, exc.line, exc.col) == ("expected a list after 'in', found 'and'", 12, 1, 13)
    assert str(exc) == ("expected a list after 'in', found 'and' (line 1, column 13)\n"
                        "    evt.type in and fd.name startswith /etc\n"
                        "                ^")


def test_error_on_second_line():
    with pytest.raises(ConditionSyntaxError) as info:
        parse("proc.name = a and\n  fd.name = b c")
    assert (info.value.line, info.value.col) == (2, 15)
    assert str(info.value).endswith("      fd.name = b c\n                  ^")


def test_nesting_limit():
    parse("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    with pytest.raises(ConditionSyntaxError, match="nesting is too deep"):
        parse("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ConditionSyntaxError, match="nesting is too deep"):
        parse("not " * 5000 + "a")


def test_non_string_condition_is_a_type_error():
    with pytest.raises(TypeError):
        parse_uncached(42)


def test_lexer_tokens_carry_positions():
    lex = Lexer("  proc.name = 'x'")
    name = lex.lex_name()
    assert (name.kind, name.value, name.pos, name.line, name.col) == (TokenKind.NAME, "proc.name", 2, 1, 3)
    assert lex.lex_operator().value == "="
    assert lex.lex_string() == (TokenKind.STRING, "x", 14, 1, 15)
    assert lex.at_eof()


# ---- property tests -----------------------------------------------------------------------------

_FIELDS = st.sampled_from(["proc.name", "fd.name", "evt.type", "proc.cmdline", "container.id"])
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_WORD = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda w: w not in ("and", "or", "not", "oneof", "anyof", "allof"))
_NUMBER = st.integers(-10**6, 10**6).map(str) | st.integers(0, 2**32).map(hex)


@st.composite
def _operand(draw, depth=0):
    if depth < 2 and draw(st.booleans()):
        name = draw(st.sampled_from(["tolower", "toupper", "b64", "basename", "len"]))
        return n.Transform(name, (draw(_operand(depth + 1)),))
    arg = draw(st.none() | _TEXT.filter(bool) | st.integers(0, 9).map(str))
    return n.FieldRef(draw(_FIELDS), arg)


@st.composite
def _check(draw):
    lhs = draw(_operand())
    kind = draw(st.sampled_from(["exists", "num", "str", "mod", "list", "val"]))
    if kind == "exists":
        return n.Check(lhs, "exists")
    if kind == "num":
        return n.Check(lhs, draw(st.sampled_from(["<", "<=", ">", ">="])), n.Literal(draw(_NUMBER)))
    str_ops = ["=", "==", "!=", "contains", "icontains", "bcontains", "startswith", "bstartswith", "endswith",
               "glob", "iglob", "regex"]
    if kind == "str":
        return n.Check(lhs, draw(st.sampled_from(str_ops)), n.Literal(draw(_TEXT)))
    items = n.ListLiteral(tuple(n.Literal(t) for t in draw(st.lists(_TEXT, max_size=4))))
    if kind == "mod":
        return n.Check(lhs, draw(st.sampled_from(str_ops)), items, draw(st.sampled_from(["oneof", "anyof", "allof"])))
    if kind == "list":
        return n.Check(lhs, draw(st.sampled_from(["in", "intersects", "pmatch"])), items)
    return n.Check(lhs, draw(st.sampled_from(str_ops + ["in", "<"])), n.Val(n.FieldRef(draw(_FIELDS))))


def _expr(leaf):
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            inner.map(n.Not),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: n.And(tuple(xs))),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: n.Or(tuple(xs))),
        ),
        max_leaves=8,
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_expr(_check() | _WORD.map(n.MacroRef)))
def test_print_parse_round_trip(tree):
    text = to_text(tree)
    assert parse_uncached(text) == tree, text


_ALPHABET = st.sampled_from(list("()[],=!<>\"'\\ \t\nabcxyz.019_-/*") +
                            ["and ", "or ", "not ", "in ", "exists", "proc.name", "val(", "tolower(", "join(",
                             "concat(", "oneof ", "contains ", "0x", "evt.arg."])


@settings(max_examples=500)
@given(st.lists(_ALPHABET, max_size=25).map("".join))
def test_random_input_raises_only_syntax_errors(text):
    try:
        tree = parse_uncached(text)
    except ConditionSyntaxError as exc:
        assert 0 <= exc.pos <= len(text)
        str(exc)
    else:
        assert parse_uncached(to_text(tree)) == tree


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_arbitrary_text_raises_only_syntax_errors(text):
    try:
        parse_uncached(text)
    except ConditionSyntaxError:
        pass
