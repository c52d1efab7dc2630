# SPDX-License-Identifier: Apache-2.0
"""Load results: every error and warning of a load, with its code and context, and their renderings.

A message's context is a chain of locations from the YAML item down to the place inside a
condition (Falco's ``rule_loader::context``): each with an item type, an item name and a
position (file, 1-based line and column, 0-based offset). ``as_json()`` gives the shape of
``falco -V``; ``as_text()`` a summary, with snippets when verbose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ERROR_CODES", "WARNING_CODES", "Location", "LoadMessage", "FileResult", "LoadResult"]

ERROR_CODES = {
    "LOAD_ERR_FILE_READ": "File read error",
    "LOAD_ERR_YAML_PARSE": "YAML parse error",
    "LOAD_ERR_YAML_VALIDATE": "Error validating internal structure of YAML file",
    "LOAD_ERR_COMPILE_CONDITION": "Error compiling condition",
    "LOAD_ERR_COMPILE_OUTPUT": "Error compiling output",
    "LOAD_ERR_VALIDATE": "Error validating rule/macro/list/exception objects",
    "LOAD_ERR_EXTENSION": "Error in extension item",
}
WARNING_CODES = {
    "LOAD_UNKNOWN_SOURCE": "Unknown event source",
    "LOAD_UNSAFE_NA_CHECK": "Unsafe <NA> comparison in condition",
    "LOAD_NO_EVTTYPE": "Condition has no event-type restriction",
    "LOAD_UNKNOWN_FILTER": "Unknown field or event-type in condition or output",
    "LOAD_UNUSED_MACRO": "Unused macro",
    "LOAD_UNUSED_LIST": "Unused list",
    "LOAD_UNKNOWN_ITEM": "Unknown rules file item",
    "LOAD_DEPRECATED_ITEM": "Used deprecated item",
    "LOAD_WARNING_EXTENSION": "Warning in extension item",
    "LOAD_APPEND_NO_VALUES": "Overriding/appending list with no values",
    "LOAD_EXCEPTION_NAME_NOT_UNIQUE": "Multiple exceptions defined with the same name",
    "LOAD_INVALID_MACRO_NAME": "Invalid macro name",
    "LOAD_INVALID_LIST_NAME": "Invalid list name",
    "LOAD_COMPILE_CONDITION": "Condition has issues",
    "LOAD_UNKNOWN_KEY": "Unknown key",
}


@dataclass(frozen=True)
class Location:
    item_type: str          # rule, macro, list, exception, condition expression, ...
    item_name: str
    file: str
    line: int = 0           # 1-based; 0 when unknown
    column: int = 0         # 1-based; 0 when unknown
    offset: int = 0         # 0-based

    def as_json(self) -> dict:
        return {"item_type": self.item_type, "item_name": self.item_name,
                "position": {"name": self.file, "line": self.line, "column": self.column,
                             "offset": self.offset}}


@dataclass
class LoadMessage:
    code: str
    message: str
    locations: tuple = ()
    snippet: str = ""

    @property
    def is_error(self) -> bool:
        return self.code in ERROR_CODES

    @property
    def codedesc(self) -> str:
        return ERROR_CODES.get(self.code) or WARNING_CODES.get(self.code, "")

    @property
    def file(self) -> str:
        return self.locations[0].file if self.locations else ""

    @property
    def item(self) -> Location | None:
        """The outermost YAML item (rule, macro, list, ...) the message is about."""
        return self.locations[0] if self.locations else None

    @property
    def item_type(self) -> str:
        return self.locations[0].item_type if self.locations else ""

    @property
    def item_name(self) -> str:
        return self.locations[0].item_name if self.locations else ""

    def where(self) -> str:
        """``file:line:col: rule 'name':`` prefix, from the most precise file position known."""
        if not self.locations:
            return ""
        top = self.locations[0]
        pos = next((loc for loc in reversed(self.locations) if loc.line and loc.file == top.file), top)
        head = f"{top.file}:{pos.line}:{pos.column}:" if pos.line else f"{top.file}:"
        if top.item_name or top.item_type:
            name = f" '{top.item_name}'" if top.item_name else ""
            head += f" {top.item_type}{name}:"
        for loc in self.locations[1:]:  # the macros a rule's problem sits in
            if loc.item_type in ("macro", "macro condition") and loc.item_name \
                    and (top.item_type, top.item_name) != ("macro", loc.item_name):  # named once
                head += f" macro '{loc.item_name}':"
            elif loc.item_type == "exception":
                head += f" exception '{loc.item_name}':"
        return head

    def as_text(self, verbose: bool = False) -> str:
        text = f"{self.where()} {self.code} ({self.codedesc}): {self.message}".lstrip()
        if verbose and self.snippet:
            text += "\n" + self.snippet
        return text

    def __str__(self) -> str:
        return self.as_text(verbose=True)

    def as_json(self) -> dict:
        return {"code": self.code, "codedesc": self.codedesc, "message": self.message,
                "context": {"locations": [loc.as_json() for loc in self.locations],
                            "snippet": self.snippet}}


@dataclass
class FileResult:
    name: str
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def successful(self) -> bool:
        return not self.errors

    def as_json(self) -> dict:
        return {"name": self.name, "successful": self.successful,
                "errors": [m.as_json() for m in self.errors],
                "warnings": [m.as_json() for m in self.warnings]}


class LoadResult:
    """Outcome of :func:`~pyfalco.rules.load_rules`: messages per file and the ruleset.

    ``ruleset`` is None when loading produced errors. ``unknown_fields`` names the fields the
    provider could not supply.
    """

    def __init__(self, names: list[str]):
        self.files: list[FileResult] = [FileResult(name) for name in names]
        self._by_name = {f.name: f for f in self.files}
        self.ruleset: Any = None
        self.unknown_fields: set[str] = set()
        self.required_engine_version: str | None = None

    def file(self, name: str) -> FileResult:
        res = self._by_name.get(name)
        if res is None:
            res = self._by_name[name] = FileResult(name)
            self.files.append(res)
        return res

    def add(self, msg: LoadMessage) -> LoadMessage:
        target = self.file(msg.file) if msg.file else (self.files[-1] if self.files else self.file(""))
        (target.errors if msg.is_error else target.warnings).append(msg)
        return msg

    @property
    def errors(self) -> list[LoadMessage]:
        return [m for f in self.files for m in f.errors]

    @property
    def warnings(self) -> list[LoadMessage]:
        return [m for f in self.files for m in f.warnings]

    @property
    def ok(self) -> bool:
        return not any(f.errors for f in self.files)

    def codes(self) -> list[str]:
        """Codes of all errors then all warnings, in order (handy in tests)."""
        return [m.code for m in self.errors] + [m.code for m in self.warnings]

    def as_text(self, verbose: bool = False) -> str:
        lines = []
        for f in self.files:
            status = "Invalid" if f.errors else ("Ok, with warnings" if f.warnings else "Ok")
            lines.append(f"{f.name}: {status}")
            if f.errors:
                lines.append(f"{len(f.errors)} Errors:")
                lines.extend(m.as_text(verbose) for m in f.errors)
            if f.warnings:
                lines.append(f"{len(f.warnings)} Warnings:")
                lines.extend(m.as_text(verbose) for m in f.warnings)
        return "\n".join(lines)

    def as_json(self) -> dict:
        """The ``falco -V`` JSON shape: ``{"falco_load_results": [...]}``."""
        return {"falco_load_results": [f.as_json() for f in self.files]}

    def as_json_str(self) -> str:
        return json.dumps(self.as_json())

    def __repr__(self) -> str:
        return f"<LoadResult ok={self.ok} errors={len(self.errors)} warnings={len(self.warnings)}>"
