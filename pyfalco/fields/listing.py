# SPDX-License-Identifier: Apache-2.0
"""``pyfalco --list``: every field with its type and description, as text, markdown or JSON."""

from __future__ import annotations

import json

from .catalog import FIELDS, FieldInfo
from .provider import EXTRA_FIELDS, extractable

__all__ = ["list_fields", "all_fields", "FIELD_CLASSES"]

# field classes in `falco --list` order: (prefix, class name, description)
FIELD_CLASSES = (
    ("evt.", "evt", "Event fields (all syscall events)"),
    ("syscall.", "evt", "Event fields (all syscall events)"),
    ("proc.", "process", "Process and thread fields"),
    ("thread.", "process", "Process and thread fields"),
    ("user.", "user", "User fields (resolved inside the process's root)"),
    ("group.", "group", "Group fields (resolved inside the process's root)"),
    ("fd.", "fd", "File descriptor fields"),
    ("fdlist.", "fdlist", "Poll event file descriptor lists"),
    ("fs.path.", "fs.path", "Path arguments of file syscalls"),
    ("container.", "container", "Container fields (from the container runtime)"),
    ("k8s.", "k8s", "Kubernetes pod fields (from the CRI metadata)"),
)


def _class_of(name: str) -> tuple[str, str]:
    for prefix, cls, desc in FIELD_CLASSES:
        if name.startswith(prefix):
            return cls, desc
    return "other", "Other fields"


def all_fields() -> list[FieldInfo]:
    """Catalog fields plus the state layer's own, in catalog order."""
    out = dict(FIELDS)
    out.update(EXTRA_FIELDS)
    return list(out.values())


def _arg_suffix(f: FieldInfo) -> str:
    return {"required": "[arg]", "optional": "[arg]", "index": "[N]", "key": "[key]"}.get(f.arg, "")


def list_fields(fmt: str = "text", source: str = "syscall") -> str:
    """Every field: ``fmt`` is ``text`` (falco --list), ``markdown`` or ``json``."""
    fields = all_fields()
    if fmt == "json":
        return json.dumps([{"name": f.name, "type": f.type, "desc": f.desc, "arg": f.arg, "is_list": f.is_list,
                            "class": _class_of(f.name)[0], "source": source,
                            "extracted": extractable(f.name)} for f in fields], indent=2)
    groups: dict[str, list[FieldInfo]] = {}
    descs: dict[str, str] = {}
    for f in fields:
        cls, desc = _class_of(f.name)
        groups.setdefault(cls, []).append(f)
        descs[cls] = desc
    lines: list[str] = []
    if fmt == "markdown":
        for cls, items in groups.items():
            lines.append(f"## Field Class: {cls}\n\n{descs[cls]}\n")
            lines.append("Name | Type | Description\n:----|:-----|:-----------")
            for f in items:
                lines.append(f"`{f.name}{_arg_suffix(f)}` | {f.type} | {f.desc.replace('|', '/')}")
            lines.append("")
        return "\n".join(lines)
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}: text, markdown or json")
    width = max(len(f.name) + len(_arg_suffix(f)) for f in fields) + 2
    for cls, items in groups.items():
        lines.append("-" * 80)
        lines.append(f"Field Class:                  {cls} ({descs[cls]})")
        lines.append(f"Event Sources:                {source}")
        lines.append("")
        for f in items:
            name = f"{f.name}{_arg_suffix(f)}"
            lines.append(f"{name:<{width}}({f.type}) {f.desc}")
        lines.append("")
    return "\n".join(lines)
