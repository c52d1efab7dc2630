# SPDX-License-Identifier: Apache-2.0
"""Reads tokens of a condition for parser.py, one at a time, in the mode the parser asks for.

The condition language is not context free at the token level: ``<NA>`` is a bare string after
an operator, ``a.b`` is a field name in check position but a bare string after ``=``, and ``in``
is an operator after a field but a macro name at the start of a check. So the parser drives the
lexer: each ``lex_*`` method tries one token kind at the cursor (after blanks) and returns a
:class:`Token` or None without moving. Token regular expressions (libsinsp's grammar):

    Identifier      ::= [a-zA-Z]+[a-zA-Z0-9_]*
    FieldName       ::= Identifier ('.' Identifier)+
    FieldArgBareStr ::= [^ \\b\\t\\n\\r\\[\\]"']+
    HexNumber       ::= 0[xX][0-9a-fA-F]+
    Number          ::= [+\\-]?[0-9]+[\\.]?[0-9]*([eE][+\\-][0-9]+)?
    QuotedStr       ::= "(?:\\\\"|.)*?" | '(?:\\\\'|.)*?'
    BareStr         ::= [^ \\b\\t\\n\\r\\(\\),="']+
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from pyfalco.rules.errors import ConditionSyntaxError

__all__ = ["TokenKind", "Token", "Lexer", "STR_OPS", "NUM_OPS", "LIST_OPS", "UNARY_OPS", "MODIFIERS",
           "TRANSFORMERS", "ALL_OPS"]


class TokenKind(enum.Enum):
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    KEYWORD = "keyword"      # and / or / not
    NAME = "name"            # identifier or dotted field name
    ARG = "arg"              # the text between [ and ] after a field name
    OP = "op"                # comparison operator
    MODIFIER = "modifier"    # oneof / anyof / allof
    TRANSFORMER = "transformer"  # tolower( ... : the name, without the parenthesis
    STRING = "string"        # quoted string, unescaped
    NUMBER = "number"
    BARE = "bare"            # bare string
    EOF = "eof"


class Token(NamedTuple):
    kind: TokenKind
    value: str
    pos: int
    line: int
    col: int


UNARY_OPS = ("exists",)
NUM_OPS = ("<=", "<", ">=", ">")
STR_OPS = ("==", "=", "!=", "bcontains", "bstartswith", "contains", "endswith", "glob",
           "icontains", "iglob", "startswith", "regex")
LIST_OPS = ("intersects", "in", "pmatch")
ALL_OPS = UNARY_OPS + NUM_OPS + STR_OPS + LIST_OPS
MODIFIERS = ("oneof", "anyof", "allof")
TRANSFORMERS = ("tolower", "toupper", "b64", "basename", "len", "join", "concat")

_BLANKS = " \t\n\r\b\f\v"
_RE_BLANKS = re.compile(r"[ \t\n\r\b\f\v]*")
_RE_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z][a-zA-Z0-9_]*)*")
_RE_WORD = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*")
_RE_ARG_BARE = re.compile(r"[^ \t\n\r\b\[\]\"']+")
_RE_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+(?![^ \t\n\r\b(),=\"'])|[+\-]?[0-9]+\.?[0-9]*(?:[eE][+\-][0-9]+)?(?![^ \t\n\r\b(),=\"'])")
_RE_BARE = re.compile(r"[^ \t\n\r\b(),=\"']+")
_RE_SYM_OP = re.compile(r"<=|<|>=|>|==|=|!=")
_WORD_OPS = frozenset(op for op in ALL_OPS if op[0].isalpha())
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


class Lexer:
    """Cursor over one condition text; see the module docstring."""

    __slots__ = ("text", "pos", "_at", "_line", "_line_start")

    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        # line/column are tracked from the last token forward, so that a condition of n tokens
        # costs O(n) in all (counting from the start for every token was quadratic)
        self._at = 0            # offset up to which lines were counted
        self._line = 1          # line number at ``_at``
        self._line_start = 0    # offset of the first character of that line

    # ---- helpers --------------------------------------------------------------------------
    def token(self, kind: TokenKind, value: str, pos: int) -> Token:
        text = self.text
        if pos < self._at:  # the parser went back (rare): count again from the start
            self._at, self._line, self._line_start = 0, 1, 0
        newlines = text.count("\n", self._at, pos)
        if newlines:
            self._line += newlines
            self._line_start = text.rfind("\n", self._at, pos) + 1
        self._at = pos
        return Token(kind, value, pos, self._line, pos - self._line_start + 1)

    def fail(self, msg: str, pos: int | None = None):
        raise ConditionSyntaxError(msg, self.pos if pos is None else pos, self.text)

    def skip_blanks(self) -> bool:
        end = _RE_BLANKS.match(self.text, self.pos).end()
        moved = end != self.pos
        self.pos = end
        return moved

    def at_eof(self) -> bool:
        self.skip_blanks()
        return self.pos >= len(self.text)

    def peek(self) -> str:
        """The next character after blanks ('' at the end)."""
        self.skip_blanks()
        return self.text[self.pos:self.pos + 1]

    def eof_token(self) -> Token:
        self.skip_blanks()
        return self.token(TokenKind.EOF, "", self.pos)

    # ---- lexers: each consumes the token on success -----------------------------------------
    def lex_punct(self, ch: str) -> Token | None:
        self.skip_blanks()
        if self.text.startswith(ch, self.pos):
            tok = self.token(TokenKind(ch) if ch in "()," else TokenKind.OP, ch, self.pos)
            self.pos += 1
            return tok
        return None

    def lex_keyword(self, word: str) -> Token | None:
        """``and``/``or``/``not`` followed by a blank, '(' or the end of the text."""
        self.skip_blanks()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (
                end == len(self.text) or self.text[end] in _BLANKS or self.text[end] == "("):
            tok = self.token(TokenKind.KEYWORD, word, self.pos)
            self.pos = end
            return tok
        return None

    def lex_name(self) -> Token | None:
        self.skip_blanks()
        m = _RE_NAME.match(self.text, self.pos)
        if not m:
            return None
        self.pos = m.end()
        return self.token(TokenKind.NAME, m.group(), m.start())

    def lex_call(self, names) -> Token | None:
        """``name(`` with no blank before the parenthesis, for a name in ``names``."""
        self.skip_blanks()
        m = _RE_WORD.match(self.text, self.pos)
        if m and m.group() in names and self.text.startswith("(", m.end()):
            self.pos = m.end() + 1
            return self.token(TokenKind.TRANSFORMER, m.group(), m.start())
        return None

    def lex_field_arg(self) -> Token | None:
        """``[arg]`` right after a field name (no blank in between)."""
        if not self.text.startswith("[", self.pos):
            return None
        start = self.pos
        self.pos += 1
        if self.text[self.pos:self.pos + 1] in ('"', "'"):
            value = self._quoted()
        else:
            m = _RE_ARG_BARE.match(self.text, self.pos)
            if not m:
                self.fail("expected a field argument after '['")
            value = m.group()
            self.pos = m.end()
        if not self.text.startswith("]", self.pos):
            self.fail("expected ']' after the field argument")
        self.pos += 1
        return self.token(TokenKind.ARG, value, start)

    def lex_operator(self) -> Token | None:
        self.skip_blanks()
        m = _RE_SYM_OP.match(self.text, self.pos)
        if m:
            self.pos = m.end()
            return self.token(TokenKind.OP, m.group(), m.start())
        m = _RE_WORD.match(self.text, self.pos)
        if m and m.group() in _WORD_OPS:
            self.pos = m.end()
            return self.token(TokenKind.OP, m.group(), m.start())
        return None

    def lex_modifier(self) -> Token | None:
        """``oneof``/``anyof``/``allof`` when a list follows."""
        self.skip_blanks()
        m = _RE_WORD.match(self.text, self.pos)
        if m and m.group() in MODIFIERS:
            after = _RE_BLANKS.match(self.text, m.end()).end()
            if self.text.startswith("(", after):
                self.pos = m.end()
                return self.token(TokenKind.MODIFIER, m.group(), m.start())
        return None

    def lex_number(self) -> Token | None:
        self.skip_blanks()
        m = _RE_NUMBER.match(self.text, self.pos)
        if not m:
            return None
        self.pos = m.end()
        return self.token(TokenKind.NUMBER, m.group(), m.start())

    def lex_string(self) -> Token | None:
        """A quoted or a bare string."""
        self.skip_blanks()
        start = self.pos
        if self.text[start:start + 1] in ('"', "'"):
            value = self._quoted()
            return self.token(TokenKind.STRING, value, start)
        m = _RE_BARE.match(self.text, start)
        if not m:
            return None
        self.pos = m.end()
        return self.token(TokenKind.BARE, m.group(), start)

    def lex_quoted(self) -> Token | None:
        self.skip_blanks()
        start = self.pos
        if self.text[start:start + 1] in ('"', "'"):
            return self.token(TokenKind.STRING, self._quoted(), start)
        return None

    def _quoted(self) -> str:
        text, start = self.text, self.pos
        quote_ch = text[start]
        out = []
        i = start + 1
        n = len(text)
        while i < n:
            ch = text[i]
            if ch == "\\" and i + 1 < n:
                nxt = text[i + 1]
                out.append(_ESCAPES.get(nxt, "\\" + nxt))
                i += 2
                continue
            if ch == quote_ch:
                self.pos = i + 1
                return "".join(out)
            out.append(ch)
            i += 1
        self.fail("unterminated quoted string", start)
        raise AssertionError  # pragma: no cover
