# SPDX-License-Identifier: Apache-2.0
"""Parses condition text into nodes.py trees (recursive descent over lexer.py).

Grammar (EBNF, after libsinsp's filter parser; precedence ``or`` < ``and`` < ``not`` < check)::

    Expr        ::= OrExpr
    OrExpr      ::= AndExpr ('or' (Blank | '(') AndExpr)*
    AndExpr     ::= NotExpr ('and' (Blank | '(') NotExpr)*
    NotExpr     ::= 'not' (Blank | '(') NotExpr | Check
    Check       ::= '(' Expr ')'
                  | Operand Condition
                  | Identifier                       (a macro)
    Operand     ::= FieldName ('[' FieldArg ']')?
                  | Transformer
    Transformer ::= ('tolower(' | 'toupper(' | 'b64(' | 'basename(' | 'len(') Operand ')'
                  | 'join(' StrValue ',' ('(' Operand (',' Operand)* ')' | Operand (',' Operand)*) ')'
                  | 'concat(' (Operand | QuotedStr) (',' (Operand | QuotedStr))* ')'
    RhsOperand  ::= Transformer | 'val(' FieldName ('[' FieldArg ']')? ')'
    Condition   ::= 'exists'
                  | NumOperator (NumValue | RhsOperand)
                  | StrOperator (StrValue | RhsOperand)
                  | StrOperator ('oneof' | 'anyof' | 'allof') ListValue
                  | ListOperator (ListValue | RhsOperand)
    ListValue   ::= '(' (StrValue (',' StrValue)*)? ')' | Identifier
    NumOperator ::= '<=' | '<' | '>=' | '>'
    StrOperator ::= '==' | '=' | '!=' | 'bcontains' | 'bstartswith' | 'contains' | 'endswith'
                  | 'glob' | 'icontains' | 'iglob' | 'startswith' | 'regex'
    ListOperator ::= 'in' | 'intersects' | 'pmatch'
    StrValue    ::= QuotedStr | BareStr
    NumValue    ::= HexNumber | Number

Token shapes are in lexer.py. Nesting (parentheses, ``not``, transformers) is capped at
``MAX_DEPTH`` levels. Errors raise :class:`ConditionSyntaxError` with the offset of the problem.
"""

from __future__ import annotations

from functools import lru_cache

from pyfalco.rules import nodes as n
from pyfalco.rules.errors import ConditionSyntaxError
from pyfalco.rules.limits import MAX_NESTING
from pyfalco.rules.lexer import (LIST_OPS, NUM_OPS, STR_OPS, TRANSFORMERS, UNARY_OPS, Lexer,
                                 TokenKind)

__all__ = ["parse", "parse_uncached", "MAX_DEPTH"]

MAX_DEPTH = MAX_NESTING
_SINGLE_ARG = frozenset(("tolower", "toupper", "b64", "basename", "len"))


class Parser:
    """One parse of one text; use :func:`parse`."""

    def __init__(self, text: str):
        self.text = text
        self.lex = Lexer(text)
        self.depth = 0

    def fail(self, msg: str, pos: int | None = None):
        self.lex.fail(msg, pos)

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"nesting is too deep (more than {MAX_DEPTH} levels)", pos)

    def expect(self, ch: str, what: str) -> None:
        if not self.lex.lex_punct(ch):
            self.fail(f"expected '{ch}' {what}")

    def _found(self) -> str:
        lex = self.lex
        lex.skip_blanks()
        if lex.pos >= len(self.text):
            return "the end of the condition"
        parts = self.text[lex.pos:].split(None, 1)
        word = parts[0][:30] if parts else self.text[lex.pos]
        return f"'{word}'" if word.isprintable() else repr(word)

    # ---- boolean structure ----------------------------------------------------------------
    def parse(self) -> n.Node:
        if self.lex.at_eof():
            self.fail("the condition is empty")
        expr = self.parse_or()
        if not self.lex.at_eof():
            self.fail(f"expected 'and', 'or' or the end of the condition, found {self._found()}")
        return expr

    def parse_or(self) -> n.Node:
        self.lex.skip_blanks()
        start = self.lex.pos
        items = [self.parse_and()]
        while self.lex.lex_keyword("or"):
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else n.Or(tuple(items), pos=start)

    def parse_and(self) -> n.Node:
        self.lex.skip_blanks()
        start = self.lex.pos
        items = [self.parse_not()]
        while self.lex.lex_keyword("and"):
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else n.And(tuple(items), pos=start)

    def parse_not(self) -> n.Node:
        tok = self.lex.lex_keyword("not")
        if tok:
            self.enter(tok.pos)
            expr = self.parse_not()
            self.depth -= 1
            return n.Not(expr, pos=tok.pos)
        return self.parse_check()

    def parse_check(self) -> n.Node:
        lex = self.lex
        lex.skip_blanks()
        start = lex.pos
        if lex.lex_punct("("):
            self.enter(start)
            expr = self.parse_or()
            self.expect(")", f"to close the '(' at offset {start}, found {self._found()}")
            self.depth -= 1
            return expr
        call = lex.lex_call(TRANSFORMERS)
        if call:
            return self.parse_condition(self.parse_transformer(call.value, call.pos))
        name = lex.lex_name()
        if name is None:
            if lex.pos >= len(self.text):
                self.fail("expected a field, a macro, 'not' or '(' but the condition ended")
            self.fail(f"expected a field, a macro, 'not' or '(', found {self._found()}")
        if name.value in ("and", "or", "not"):
            self.fail(f"expected a field, a macro, 'not' or '(', found '{name.value}'", name.pos)
        if "." in name.value:
            return self.parse_condition(self.field_rest(name.value, name.pos))
        if lex.peek() == "[":
            self.fail(f"'{name.value}' is not a field name: field names contain a '.'", name.pos)
        return n.MacroRef(name.value, pos=name.pos)

    # ---- operands -------------------------------------------------------------------------
    def field_rest(self, name: str, pos: int) -> n.FieldRef:
        arg = self.lex.lex_field_arg()
        return n.FieldRef(name, arg.value if arg else None, pos=pos)

    def parse_field(self, what: str) -> n.FieldRef:
        name = self.lex.lex_name()
        if name is None or "." not in name.value:
            self.fail(f"expected a field {what}, found {self._found()}", name.pos if name else None)
        return self.field_rest(name.value, name.pos)

    def parse_operand(self, what: str) -> n.Node:
        call = self.lex.lex_call(TRANSFORMERS)
        if call:
            return self.parse_transformer(call.value, call.pos)
        return self.parse_field(what)

    def parse_transformer(self, name: str, pos: int) -> n.Transform:
        self.enter(pos)
        where = f"in {name}()"
        if name in _SINGLE_ARG:
            args = (self.parse_operand(where),)
        elif name == "join":
            sep = self.lex.lex_string()
            if sep is None:
                self.fail("expected a separator string as the first argument of join()")
            self.expect(",", "after the separator of join()")
            if self.lex.lex_punct("("):
                args = self._operands(where, allow_literals=False)
                self.expect(")", "to close the field list of join()")
            else:
                args = self._operands(where, allow_literals=False)
            args = (n.Literal(sep.value, pos=sep.pos, quoted=sep.kind is TokenKind.STRING),) + args
        else:  # concat
            args = self._operands(where, allow_literals=True)
        self.expect(")", f"to close {name}(, found {self._found()}")
        self.depth -= 1
        return n.Transform(name, args, pos=pos)

    def _operands(self, where: str, allow_literals: bool) -> tuple:
        items = []
        while True:
            lit = self.lex.lex_quoted() if allow_literals else None
            items.append(n.Literal(lit.value, pos=lit.pos, quoted=True) if lit else self.parse_operand(where))
            if not self.lex.lex_punct(","):
                return tuple(items)

    def parse_rhs_operand(self) -> n.Node | None:
        call = self.lex.lex_call(TRANSFORMERS + ("val",))
        if call is None:
            return None
        if call.value == "val":
            self.enter(call.pos)
            ref = self.parse_field("in val()")
            self.expect(")", f"to close val(, found {self._found()}")
            self.depth -= 1
            return n.Val(ref, pos=call.pos)
        return self.parse_transformer(call.value, call.pos)

    # ---- conditions -----------------------------------------------------------------------
    def parse_condition(self, lhs: n.Node) -> n.Check:
        lex = self.lex
        op = lex.lex_operator()
        if op is None:
            self.fail(f"expected an operator after '{n.to_text(lhs)}', found {self._found()}")
        pos, name = op.pos, op.value
        if name in UNARY_OPS:
            return n.Check(lhs, name, None, None, pos=pos)
        if name in NUM_OPS:
            value = self.parse_rhs_operand()
            if value is None:
                tok = lex.lex_number()
                if tok is None:
                    self.fail(f"expected a number after '{name}', found {self._found()}")
                value = n.Literal(tok.value, pos=tok.pos)
            return n.Check(lhs, name, value, None, pos=pos)
        if name in STR_OPS:
            mod = lex.lex_modifier()
            if mod:
                return n.Check(lhs, name, self.parse_list(mod.value), mod.value, pos=pos)
            value = self.parse_rhs_operand()
            if value is None:
                tok = lex.lex_string()
                if tok is None:
                    self.fail(f"expected a value after '{name}', found {self._found()}")
                value = n.Literal(tok.value, pos=tok.pos, quoted=tok.kind is TokenKind.STRING)
            return n.Check(lhs, name, value, None, pos=pos)
        assert name in LIST_OPS
        value = self.parse_rhs_operand()
        if value is None:
            if lex.peek() == "(":
                value = self.parse_list(name)
            else:
                ref = lex.lex_name()
                if ref is None or "." in ref.value or ref.value in ("and", "or", "not"):
                    if ref is not None:
                        lex.pos = ref.pos
                    self.fail(f"expected a list after '{name}', found {self._found()}",
                              ref.pos if ref else None)
                value = n.ListRef(ref.value, pos=ref.pos)
        return n.Check(lhs, name, value, None, pos=pos)

    def parse_list(self, after: str) -> n.ListLiteral:
        lex = self.lex
        start = lex.lex_punct("(")
        if start is None:
            self.fail(f"expected '(' after '{after}', found {self._found()}")
        items = []
        if lex.lex_punct(")"):
            return n.ListLiteral((), pos=start.pos)
        while True:
            tok = lex.lex_string()
            if tok is None:
                self.fail(f"expected a list value, found {self._found()}")
            items.append(n.Literal(tok.value, pos=tok.pos, quoted=tok.kind is TokenKind.STRING))
            if lex.lex_punct(")"):
                return n.ListLiteral(tuple(items), pos=start.pos)
            if not lex.lex_punct(","):
                self.fail(f"expected ',' or ')' in the list, found {self._found()}")


def parse_uncached(text: str) -> n.Node:
    """Parse ``text``; raises :class:`ConditionSyntaxError` (only) on bad input."""
    if not isinstance(text, str):
        raise TypeError("condition must be a str")
    try:
        return Parser(text).parse()
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps us well below the limit
        raise ConditionSyntaxError("nesting is too deep", 0, text) from None


_CACHED_LENGTH = 64 * 1024  # longer texts (big lists) are parsed each time: the cache stays small


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> n.Node:
    return parse_uncached(text)


def parse(text: str) -> n.Node:
    """Parse ``text`` into a node tree (cached: trees are immutable).

    Raises :class:`ConditionSyntaxError` on a syntax error.
    """
    if isinstance(text, str) and len(text) > _CACHED_LENGTH:
        return parse_uncached(text)
    return _parse_cached(text)


parse.cache_clear = _parse_cached.cache_clear  # type: ignore[attr-defined]
parse.cache_info = _parse_cached.cache_info  # type: ignore[attr-defined]
