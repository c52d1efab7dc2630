# SPDX-License-Identifier: Apache-2.0
"""pyfalco's layers import only downward, and no modules import each other in a circle.

The layers, bottom up (issue 14): driver -> libpyfalco -> capture/events -> state -> fields ->
rules -> engine -> agent/testing/CLIs. Every module of pyfalco/ belongs to exactly one layer
(LAYERS, by module prefix; the longest prefix wins); an import of a module of a higher layer
fails the test, whether it is made at module level, inside a function or under TYPE_CHECKING.
A new module that fits no prefix fails too: give it its layer here.

Circles: no two modules may import each other at module level (what runs at import time);
imports inside functions are allowed to close a circle (they run later), as in
plugins.registry -> plugins.source.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pyfalco

ROOT = Path(pyfalco.__file__).parent

#: (layer name, module prefixes), bottom first
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # plain data and helpers every layer may use: exceptions, the generated event table and codes,
    # the record layout, the flag tables, the initial-state model, the host-root path helper, the
    # kernel filter's fd rules (shared with tools/gen_event_table.py: no pyfalco import)
    ("base", ("pyfalco.errors", "pyfalco._schema", "pyfalco.event_codes", "pyfalco.record",
              "pyfalco.flag_tables", "pyfalco.initial_state", "pyfalco.hostroot", "pyfalco.kfilter_facts")),
    ("driver", ("pyfalco.driver_loader",)),
    ("libpyfalco", ("pyfalco._native", "pyfalco.scap")),
    ("capture/events", ("pyfalco.capture", "pyfalco.events", "pyfalco.procscan", "pyfalco.syscalls")),
    ("state", ("pyfalco.state",)),
    ("fields", ("pyfalco.fields",)),
    # outputs render alerts (the engine's Alert type lives there) and know nothing of rules
    ("rules", ("pyfalco.rules", "pyfalco.outputs")),
    # the kernel filter is derived from rules; the inspector ties state and fields to a capture
    ("engine", ("pyfalco.engine", "pyfalco.inspector", "pyfalco.kfilter")),
    # plugins are sources and field providers that the agent and CLIs wire into the engine
    ("agent/testing/CLIs", ("pyfalco", "pyfalco.__main__", "pyfalco.agent", "pyfalco.testing", "pyfalco.cli",
                            "pyfalco.generator", "pyfalco.plugins")),
]

#: upward imports known and left for their owners, with what would remove them; the test fails
#: when one of these is gone (delete it here) or when any other upward import appears
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for rank, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (rank, len(prefix))
    return None if best is None else best[0]


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The pyfalco modules an import statement loads (``from pkg import mod`` is ``pkg.mod``)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[:len(base) - (node.level - 1)]
            pkg = ".".join(base + ([node.module] if node.module else []))
        else:
            pkg = node.module or ""
        names = [f"{pkg}.{a.name}" if f"{pkg}.{a.name}" in MODULES else pkg for a in node.names]
    out = []
    for name in names:
        if name.split(".")[0] != "pyfalco":
            continue
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        if name != module:
            out.append(name)
    return out


def _imports(module: str, path: Path) -> tuple[dict[str, int], set[str]]:
    """({imported module: line} of every import, {modules imported at module level})."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    every: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for t in _targets(module, is_package, node):
                every.setdefault(t, node.lineno)
    top: set[str] = set()

    def visit(stmts: list[ast.stmt]) -> None:
        for st in stmts:
            if isinstance(st, (ast.Import, ast.ImportFrom)):
                top.update(_targets(module, is_package, st))
            elif isinstance(st, ast.If) and not (isinstance(st.test, ast.Name) and st.test.id == "TYPE_CHECKING"):
                visit(st.body)
                visit(st.orelse)
            elif isinstance(st, ast.Try):
                visit(st.body)
                for h in st.handlers:
                    visit(h.body)
                visit(st.orelse)
                visit(st.finalbody)
    visit(tree.body)
    return every, top


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer_of(m) is None]
    assert not missing, f"modules with no layer (add them to LAYERS in {__file__}): {missing}"


def test_imports_point_down():
    upward, known_seen = [], set()
    for module, (every, _top) in sorted(GRAPH.items()):
        mine = layer_of(module)
        for target, line in sorted(every.items()):
            theirs = layer_of(target)
            if mine is None or theirs is None or theirs <= mine:
                continue
            if (module, target) in KNOWN_UPWARD:
                known_seen.add((module, target))
                continue
            upward.append(f"{MODULES[module].relative_to(ROOT.parent)}:{line}: {module} [{LAYERS[mine][0]}] "
                          f"imports {target} [{LAYERS[theirs][0]}]")
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)
    stale = set(KNOWN_UPWARD) - known_seen
    assert not stale, f"known upward imports that are gone (remove them from KNOWN_UPWARD): {sorted(stale)}"


def test_no_import_circle_at_module_level():
    graph = {m: top for m, (_every, top) in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0
    # Tarjan's strongly connected components, iteratively (no recursion limit)
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in graph:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    circles.append(sorted(comp))
    assert not circles, f"modules that import each other at module level: {circles}"


def test_the_checks_see_real_imports():
    """The graph is not empty and the checks would catch what they are for."""
    every, top = GRAPH["pyfalco.fields.evt"]
    assert "pyfalco.events" in every and "pyfalco.state.fds" in top
    assert layer_of("pyfalco.fields.evt") > layer_of("pyfalco.state.fds") > layer_of("pyfalco.events")
    # the CRI wire layers sit under the client, which sits under the container enrichment
    assert "pyfalco.state.wire.http2" in GRAPH["pyfalco.state.cri"][1]
    assert "pyfalco.state.cri" in GRAPH["pyfalco.state.container_cri"][1]
    assert "pyfalco.state.containers" not in GRAPH["pyfalco.state.container_cri"][0]
    # events.py reads the flag tables from below, not from the field layer
    assert "pyfalco.fields.render" not in GRAPH["pyfalco.events"][0]
    assert "pyfalco.flag_tables" in GRAPH["pyfalco.events"][1]
