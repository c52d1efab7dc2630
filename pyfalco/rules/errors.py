# SPDX-License-Identifier: Apache-2.0
"""Exceptions of the rule language: condition syntax errors and the strict-load wrapper."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyfalco.errors import RuleError

if TYPE_CHECKING:  # pragma: no cover
    from pyfalco.rules.result import LoadResult

__all__ = ["RuleError", "ConditionSyntaxError", "RulesLoadError", "caret_snippet", "line_col"]


def line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based (line, column) of offset ``pos`` in ``text``."""
    pos = max(0, min(pos, len(text)))
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


_SNIPPET_WIDTH = 160  # characters shown each side of the caret at most


def caret_snippet(text: str, pos: int, indent: str = "    ") -> str:
    """The line of ``text`` holding offset ``pos`` with a caret under it.

    A long line is cut to a window around ``pos`` (marked ``...``): the cost and the size of a
    snippet stay bounded even for a rules file written on a single line.
    """
    pos = max(0, min(pos, len(text)))
    low = max(0, pos - _SNIPPET_WIDTH)
    start = text.rfind("\n", low, pos) + 1
    head = ""
    if start == 0 and low > 0:
        start, head = low, "..."
    end = text.find("\n", pos, pos + _SNIPPET_WIDTH)
    tail = ""
    if end < 0:
        end = min(len(text), pos + _SNIPPET_WIDTH)
        if end < len(text) and text[end] != "\n":
            tail = "..."
    line = text[start:end].replace("\t", " ")
    return f"{indent}{head}{line}{tail}\n{indent}{' ' * (len(head) + pos - start)}^"


class ConditionSyntaxError(RuleError, ValueError):
    """A condition that does not follow the grammar.

    ``msg`` is the bare reason, ``pos`` the 0-based offset in ``condition``, ``line``/``col``
    1-based. ``str()`` renders the reason, the position and the condition line with a caret.
    """

    def __init__(self, msg: str, pos: int, condition: str):
        self.msg = msg
        self.pos = pos
        self.condition = condition
        self.line, self.col = line_col(condition, pos)
        super().__init__(msg)

    def __str__(self) -> str:
        return f"{self.msg} (line {self.line}, column {self.col})\n{caret_snippet(self.condition, self.pos)}"

    def __reduce__(self):  # keep pickling (multiprocessing, pytest-xdist) working
        return (type(self), (self.msg, self.pos, self.condition))


class RulesLoadError(RuleError):
    """Raised by ``load_rules(..., strict=True)`` when loading produced at least one error."""

    def __init__(self, result: LoadResult):
        self.result = result
        super().__init__(result.as_text(verbose=True))
