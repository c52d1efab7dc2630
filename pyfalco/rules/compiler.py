# SPDX-License-Identifier: Apache-2.0
"""Compiles a checked, resolved condition tree into a Python function (generated source + compile()).

One function per rule::

    def rule_0(evt, _a0=_a0, _s0=_s0):
        return ((_a0(evt) in _s0) and ...)

Field accessors, literal sets (frozensets), compiled regular expressions and helper functions are
bound as default arguments, so the hot path does local-variable loads only: no registry lookups,
no exception handling. ``and``/``or`` keep Python's short-circuit; constant subtrees (empty lists,
``Const`` nodes) are folded before code is emitted. A missing value (None) fails every comparison.
The generated source is kept (``CompiledCondition.source``) for inspection.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from pyfalco.rules import nodes as n
from pyfalco.rules import operators as ops
from pyfalco.rules.checker import operand_type
from pyfalco.rules.lexer import LIST_OPS
from pyfalco.rules.limits import limit_problem
from pyfalco.rules.resolver import LimitError

__all__ = ["CompiledCondition", "compile_condition", "compile_bucket", "fold_constants", "necessary_values"]

_HELPERS = {
    "_pmatch": ops.pmatch,
    "_to_bytes": ops.to_bytes,
    "_to_ip": ops.to_ip,
    "_ip_match": ops.ip_match,
    "_ip_in": ops.ip_in,
    "_apply": ops.apply_scalar,
    **{f"_t_{name}": fn for name, fn in ops.TRANSFORMS.items()},
}


@dataclass
class CompiledCondition:
    function: Callable[[Any], bool]
    source: str
    constants: dict


# ---- constant folding -----------------------------------------------------------------------

class _Folder(n.NodeVisitor):
    def __init__(self, provider: Any):
        self.provider = provider
        self._macros: dict[int, tuple] = {}  # id of a macro's tree -> (tree, folded): shared, folded once

    def visit_Or(self, node):
        items = []
        for item in (self.visit(i) for i in node.items):
            if isinstance(item, n.Const):
                if item.value:
                    return n.Const(True, pos=node.pos)
                continue
            items.append(item)
        if not items:
            return n.Const(False, pos=node.pos)
        return items[0] if len(items) == 1 else n.Or(tuple(items), pos=node.pos)

    def visit_And(self, node):
        items = []
        for item in (self.visit(i) for i in node.items):
            if isinstance(item, n.Const):
                if not item.value:
                    return n.Const(False, pos=node.pos)
                continue
            items.append(item)
        if not items:
            return n.Const(True, pos=node.pos)
        return items[0] if len(items) == 1 else n.And(tuple(items), pos=node.pos)

    def visit_Not(self, node):
        expr = self.visit(node.expr)
        if isinstance(expr, n.Const):
            return n.Const(not expr.value, pos=node.pos)
        return n.Not(expr, pos=node.pos)

    def visit_Macro(self, node):
        hit = self._macros.get(id(node.expr))
        if hit is None:
            hit = self._macros[id(node.expr)] = (node.expr, self.visit(node.expr))
        return hit[1]

    def visit_Const(self, node):
        return node

    def visit_Check(self, node: n.Check):
        value = node.value
        if isinstance(value, n.ListLiteral) and not value.items and (
                node.op in LIST_OPS or node.modifier in ("oneof", "anyof")):
            lt = operand_type(self.provider, node.lhs)
            if not (node.op == "in" and lt.multi and lt.is_list):  # "all of no values" is true
                return n.Const(False, pos=node.pos)
        return node


def fold_constants(tree: n.Node, provider: Any) -> n.Node:
    """``tree`` with macros inlined and constant subtrees folded."""
    return _Folder(provider).visit(tree)


# ---- code generation ------------------------------------------------------------------------

class _Emitter(n.NodeVisitor):
    def __init__(self, provider: Any, memo: bool = False):
        self.provider = provider
        self.consts: dict[str, Any] = {}
        self.comments: list[str] = []
        self._keys: dict[Any, str] = {}
        self._tmp = 0
        # memo: every field is extracted at most once per call (compile_bucket), and so is every
        # boolean subtree that occurs more than once (shared: its text -> occurrences)
        self.memo = memo
        self.memos: list[str] = []
        self.shared: dict = {}
        self._bool_names: dict = {}
        self._key_cache: dict = {}
        # where the code being emitted runs (memo mode): the memos certainly set there (read
        # them as they are), those perhaps set (test them against _U first: they need the _U
        # set at the top, ``unset``); a memo in neither is certainly unset (just assign it).
        # Code is emitted in the order Python evaluates it; short-circuits and conditional
        # parts keep only what they certainly evaluate (their first operand) in ``must``.
        self.must: set[str] = set()
        self.may: set[str] = set()
        self.unset: list[str] = []

    def _memo_read(self, name: str, compute: Callable[[], str]) -> str:
        """The code reading memo ``name`` computed by ``compute()``'s code, by what this point of
        the code knows about it (see ``must``/``may``)."""
        if name in self.must:
            return name
        if name not in self.may:
            text = f"({name} := {compute()})"
        else:
            must = set(self.must)
            text = f"({name} if {name} is not _U else ({name} := {compute()}))"
            self.must = must            # what compute() evaluates ran perhaps
            if name not in self.unset:
                self.unset.append(name)
        self.must.add(name)
        self.may.add(name)
        return text

    def visit(self, node, *args):
        if self.shared and isinstance(node, (n.And, n.Or, n.Not)):
            key = _node_key(node, self._key_cache)
            if self.shared.get(key, 0) > 1:
                name = self._bool_names.get(key)
                if name is None:
                    name = self._bool_names[key] = f"_b{len(self._bool_names)}"
                    self.memos.append(name)
                return self._memo_read(name, lambda: super(_Emitter, self).visit(node, *args))
        return super().visit(node, *args)

    # constants bound as default arguments
    def const(self, prefix: str, key: Any, make: Callable[[], Any], note: str) -> str:
        name = self._keys.get(key)
        if name is None:
            name = f"{prefix}{len(self._keys)}"
            self._keys[key] = name
            self.consts[name] = make()
            self.comments.append(f"#   {name} = {note}")
        return name

    def helper(self, name: str) -> str:
        self.consts[name] = _HELPERS[name]
        return name

    def tmp(self) -> str:
        self._tmp += 1
        return f"_v{self._tmp}"

    # boolean structure
    def _chain(self, node, op: str) -> str:
        if not node.items:
            return "()"
        parts = [self.visit(node.items[0])]
        must = set(self.must)           # only the first operand certainly runs
        parts += [self.visit(i) for i in node.items[1:]]
        self.must = must
        return "(" + f" {op} ".join(parts) + ")"

    def visit_Or(self, node):
        return self._chain(node, "or")

    def visit_And(self, node):
        return self._chain(node, "and")

    def visit_Not(self, node):
        return f"(not {self.visit(node.expr)})"

    def visit_Const(self, node):
        return "True" if node.value else "False"

    def visit_Macro(self, node):
        return self.visit(node.expr)

    # operands
    def operand(self, node) -> str:
        if isinstance(node, n.FieldRef):
            acc = self.const("_a", ("field", node.name, node.arg),
                             lambda: self.provider.accessor(node.name, node.arg),
                             f"accessor({node.name!r}, {node.arg!r})")
            if self.memo:
                m = "_m" + acc[2:]
                if m not in self.memos:
                    self.memos.append(m)
                return self._memo_read(m, lambda: f"{acc}(evt)")
            return f"{acc}(evt)"
        if isinstance(node, n.Val):
            return self.operand(node.field)
        if isinstance(node, n.Transform):
            fn = self.helper(f"_t_{node.name}")
            args = []
            for arg in node.args:
                if isinstance(arg, n.Literal):
                    args.append(repr(arg.value))
                else:
                    args.append(self.operand(arg))
            return f"{fn}({', '.join(args)})"
        raise TypeError(node)  # pragma: no cover

    def literal_const(self, kind: str, op: str, value: n.Node):
        """(python expression, converted value) of a literal right-hand side."""
        raw = ops.convert_literal(kind, op, value.value)
        if op == "icontains":
            raw = raw.lower()
        if op in ("glob", "iglob"):
            return self.const("_g", (op, raw), lambda: ops.glob_matcher(raw, op == "iglob"),
                              f"{op} matcher for {raw!r}"), raw
        if op == "regex":
            return self.const("_r", (op, raw), lambda: ops.regex_matcher(raw), f"regex fullmatch {raw!r}"), raw
        # inline only what repr() writes as a Python literal (a non-finite float would be
        # ``inf``, a name): anything else is bound as a constant
        if isinstance(raw, (str, int, bool, bytes)) or (isinstance(raw, float) and math.isfinite(raw)):
            return repr(raw), raw
        return self.const("_c", (kind, op, repr(raw)), lambda: raw, repr(raw)), raw

    def scalar(self, op: str, kind: str, t: str, r: str) -> str:
        """Code for ``t op r`` where ``t`` holds a non-missing value and ``r`` a prepared literal."""
        if kind in ("ip", "dyn"):
            apply = self.helper("_apply")
            return f"{apply}({op!r}, {kind!r}, {t}, {r})"
        if op in ("=", "=="):
            return f"{t} == {r}"
        if op in ("!=", "<", "<=", ">", ">="):
            return f"{t} {op} {r}"
        if op == "contains":
            return f"{r} in {t}"
        if op == "icontains":
            return f"{r} in {t}.lower()"
        if op in ("startswith", "endswith"):
            return f"{t}.{op}({r})"
        if op == "bcontains":
            return f"{r} in {self.helper('_to_bytes')}({t})"
        if op == "bstartswith":
            return f"{self.helper('_to_bytes')}({t}).startswith({r})"
        if op in ("glob", "iglob", "regex"):
            return f"{r}({t}) is not None"
        raise ValueError(op)  # pragma: no cover

    def visit_Check(self, node: n.Check) -> str:
        lt = operand_type(self.provider, node.lhs)
        lhs = self.operand(node.lhs)
        op, kind, value = node.op, lt.kind, node.value
        if op == "exists":
            return f"({lhs} is not None)"
        if isinstance(value, (n.Val, n.Transform)):
            return self.dynamic(node, lt, lhs)
        v = self.tmp()
        if isinstance(value, n.ListLiteral):
            conv = [ops.convert_literal(kind, op, item.value) for item in value.items]
            if op in LIST_OPS or (node.modifier in ("oneof", "anyof") and op in ("=", "==")):
                if op == "pmatch":
                    prefixes = frozenset(ops.normalize_prefix(p) for p in conv)
                    s = self.const("_s", ("pmatch", prefixes), lambda: prefixes, repr(set(prefixes)))
                    pm = self.helper("_pmatch")
                    if lt.multi:
                        return (f"(({v} := {lhs}) is not None and "
                                f"any({pm}(_x, {s}) for _x in {v} if _x is not None))")
                    return f"{pm}({lhs}, {s})"
                if kind == "ip":
                    targets = tuple(conv)
                    s = self.const("_c", ("ip", repr(targets)), lambda: ops.IpTargets(targets), repr(targets))
                    im = self.helper("_ip_in")
                    if lt.multi:
                        return f"(({v} := {lhs}) is not None and any({im}(_x, {s}) for _x in {v} if _x is not None))"
                    return f"(({v} := {lhs}) is not None and {s}.has({v}))"
                items = frozenset(conv)
                s = self.const("_s", ("set", kind, tuple(sorted(map(repr, items)))), lambda: items,
                               f"frozenset of {len(items)} values")
                if lt.multi:
                    if op == "in" and lt.is_list:
                        return f"(({v} := {lhs}) is not None and all(_x in {s} for _x in {v} if _x is not None))"
                    return f"(({v} := {lhs}) is not None and any(_x in {s} for _x in {v} if _x is not None))"
                return f"({lhs} in {s})"
            # modifier over a list of values
            prepared = [self.literal_const(kind, op, item)[0] for item in value.items]
            tup = "(" + "".join(p + ", " for p in prepared) + ")"
            quant = "all" if node.modifier == "allof" else "any"
            test = f"{quant}({self.scalar(op, kind, '_x', '_r')} for _r in {tup})"
            if lt.multi:
                test = f"any({quant}({self.scalar(op, kind, '_y', '_r')} for _r in {tup}) " \
                       f"for _y in {v} if _y is not None)"
                return f"(({v} := {lhs}) is not None and {test})"
            test = f"{quant}({self.scalar(op, kind, v, '_r')} for _r in {tup})"
            return f"(({v} := {lhs}) is not None and {test})"
        r, _ = self.literal_const(kind, op, value)
        if lt.multi:
            return (f"(({v} := {lhs}) is not None and "
                    f"any({self.scalar(op, kind, '_x', r)} for _x in {v} if _x is not None))")
        if op in ("=", "==") and kind not in ("ip", "dyn"):
            return f"({lhs} == {r})"
        return f"(({v} := {lhs}) is not None and {self.scalar(op, kind, v, r)})"

    def dynamic(self, node: n.Check, lt, lhs: str) -> str:
        """Right-hand side computed from the event: ``val(field)`` or a transformer."""
        op, kind = node.op, lt.kind
        v, w = self.tmp(), self.tmp()
        must = set(self.must)
        rhs = self.operand(node.value)  # read only when the left-hand side has a value
        self.must = must
        fn = self.const("_d", ("dynamic", op, kind, lt.multi, lt.is_list), lambda: _dynamic(op, kind, lt),
                        f"dynamic comparison {op!r} on {kind}")
        return f"(({v} := {lhs}) is not None and ({w} := {rhs}) is not None and {fn}({v}, {w}))"


def _dynamic(op: str, kind: str, lt) -> Callable[[Any, Any], bool]:
    from pyfalco.rules.interpreter import compare_dynamic

    def compare(lhs, rhs, _op=op, _kind=kind, _multi=lt.multi, _is_list=lt.is_list):
        return compare_dynamic(_op, _kind, _multi, _is_list, lhs, rhs)
    return compare


def compile_condition(tree: n.Node, provider: Any, name: str = "condition",
                      fn_name: str = "rule") -> CompiledCondition:
    """Compile a checked tree (see checker.py). A tree over the limits of limits.py (the loader
    refuses those) raises LimitError: its source would be as large as its expansion."""
    problem = limit_problem(tree, {})
    if problem:
        raise LimitError(problem, 0)
    folded = fold_constants(tree, provider)
    em = _Emitter(provider)
    body = em.visit(folded)
    params = "".join(f", {k}={k}" for k in em.consts)
    header = [f"# condition of {name}"]
    if em.comments:
        header.append("# bound constants:")
        header.extend(em.comments)
    source = "\n".join(header) + f"\ndef {fn_name}(evt{params}):\n    return {body}\n"
    code = compile(source, f"<rule {name}>", "exec")
    namespace = dict(em.consts)
    exec(code, namespace)
    return CompiledCondition(namespace[fn_name], source, em.consts)


def _node_key(node, cache: dict):
    """A hashable key equal for equal boolean trees (checks by their canonical text)."""
    key = cache.get(id(node))
    if key is None:
        if isinstance(node, (n.And, n.Or)):
            key = (type(node).__name__, tuple(_node_key(i, cache) for i in node.items))
        elif isinstance(node, n.Not):
            key = ("Not", _node_key(node.expr, cache))
        else:
            key = n.to_text(node)
        cache[id(node)] = (key, node)      # the node is kept so that its id stays its own
        return key
    return key[0]


def _subtree_counts(trees: list, cache: dict) -> dict:
    """Occurrences of every composite boolean subtree (And, Or, Not) in ``trees``."""
    counts: dict = {}

    def walk(node) -> None:
        if isinstance(node, (n.And, n.Or)):
            for item in node.items:
                walk(item)
        elif isinstance(node, n.Not):
            walk(node.expr)
        else:
            return
        key = _node_key(node, cache)
        counts[key] = counts.get(key, 0) + 1
    for tree in trees:
        walk(tree)
    return counts


#: the field of compile_bucket's prefilter: most rules of an event type test it early
PREFILTER_FIELD = "proc.name"
_NO_RAISE_OPS = {"str": ("=", "==", "!=", "in", "exists", "contains", "startswith", "endswith"),
                 "num": ("=", "==", "!=", "in", "exists", "<", "<=", ">", ">="),
                 "bool": ("=", "==", "!=", "in", "exists")}


def _cannot_raise(node, provider: Any) -> bool:
    """True when evaluating ``node`` certainly raises nothing (a conservative test: plain fields
    against literals with operators that cannot raise on their kind)."""
    while isinstance(node, n.Macro):
        node = node.expr
    if isinstance(node, (n.And, n.Or)):
        return all(_cannot_raise(item, provider) for item in node.items)
    if isinstance(node, n.Not):
        return _cannot_raise(node.expr, provider)
    if isinstance(node, n.Const):
        return True
    if not isinstance(node, n.Check) or not isinstance(node.lhs, n.FieldRef) or node.modifier:
        return False
    if not (node.value is None or isinstance(node.value, (n.Literal, n.ListLiteral))):
        return False
    try:
        lt = operand_type(provider, node.lhs)
    except Exception:
        return False
    return node.op in _NO_RAISE_OPS.get(lt.kind, ()) and (not lt.multi or node.op == "exists")


def _values_of(node, provider: Any, field: str) -> frozenset | None:
    """The values ``field`` must have for ``node`` to hold, or None when ``node`` does not say."""
    while isinstance(node, n.Macro):
        node = node.expr
    if isinstance(node, n.Or):
        out: set = set()
        for item in node.items:     # every branch must name its values (and raise nothing)
            part = _values_of(item, provider, field)
            if part is None:
                return None
            out |= part
        return frozenset(out)
    if isinstance(node, n.And):
        return necessary_values(node, provider, field)
    if not (isinstance(node, n.Check) and isinstance(node.lhs, n.FieldRef) and node.lhs.name == field
            and node.lhs.arg is None and node.modifier is None):
        return None
    try:
        lt = operand_type(provider, node.lhs)
    except Exception:
        return None
    if lt.multi or lt.kind != "str":
        return None
    value = node.value
    try:
        if node.op in ("=", "==") and isinstance(value, n.Literal):
            return frozenset((ops.convert_literal(lt.kind, node.op, value.value),))
        if node.op == "in" and isinstance(value, n.ListLiteral):
            return frozenset(ops.convert_literal(lt.kind, node.op, item.value) for item in value.items)
    except Exception:
        return None
    return None


def necessary_values(tree, provider: Any, field: str = PREFILTER_FIELD) -> frozenset | None:
    """A set of values the (folded) condition ``tree`` needs ``field`` (a plain string field) to
    be in, or None. Taken from the first conjunct of the top-level ``and`` that tests
    ``field = v`` / ``field in (...)`` (or an ``or`` whose every branch does), and only when
    every conjunct before it cannot raise: skipping the condition when the value is not in the
    set then gives exactly what evaluating it gives (false, no error)."""
    items = [tree]
    while items:
        item = items.pop(0)
        while isinstance(item, n.Macro):
            item = item.expr
        if isinstance(item, n.And):     # a nested ``and`` is the same chain of conjuncts
            items[:0] = item.items
            continue
        found = _values_of(item, provider, field)
        if found is not None:
            return found
        if not _cannot_raise(item, provider):
            return None
    return None


class _Unset:
    """A field not extracted yet (compile_bucket's memo)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"


_UNSET = _Unset()


def compile_bucket(trees: list, provider: Any, results: list, first: bool, on_error: Callable[[Any], Any],
                   name: str = "bucket", guard: Callable[[Any], bool] | None = None) -> Callable[[Any], Any]:
    """One function for the conditions of the rules an event type selects (``trees``, in rule
    order): ``fn(evt)`` returns ``results[i]`` (a tuple) of the first condition that holds
    (``first``), or those of every condition that holds added up (a tuple; ``()`` when none).
    Each field is extracted at most once per call and shared by every condition (accessors are
    pure for one event: the state does not change while rules are evaluated); evaluation order
    and short-circuits are each condition's own. If evaluating raises, the result is
    ``on_error(evt)`` (the caller evaluates the rules one by one, isolating the one that raised).
    ``guard(evt)``: a cheap necessary condition of the whole bucket (prefilter.open_guard), tested
    first; when it is false no condition is evaluated."""
    em = _Emitter(provider, memo=True)
    folded = [fold_constants(tree, provider) for tree in trees]
    em.shared = _subtree_counts(folded, em._key_cache)
    # the prefilter: a rule whose condition needs proc.name in a set of values is skipped when
    # the event's proc.name (read once, first) is not in it
    needs = [necessary_values(tree, provider, PREFILTER_FIELD) for tree in folded]
    pre = None
    if sum(need is not None for need in needs) >= 2:
        pre_line = em.operand(n.FieldRef(PREFILTER_FIELD))
        pre = em.operand(n.FieldRef(PREFILTER_FIELD))   # now the memo's name
    bodies = []
    for i, (tree, need) in enumerate(zip(folded, needs)):
        if pre is None or need is None:
            bodies.append(em.visit(tree))
            continue
        em.consts[f"_p{i}"] = need
        must = set(em.must)         # the condition runs only when the name is in the set
        bodies.append(f"{pre} in _p{i} and {em.visit(tree)}")
        em.must = must
    em.consts["_U"] = _UNSET
    em.consts["_on_error"] = on_error
    if guard is not None:
        em.consts["_guard"] = guard
    for i, res in enumerate(results):
        em.consts[f"_r{i}"] = tuple(res)
    # the constants are the function's globals (its exec namespace), not default parameters: a
    # call copies every default into its frame (~2 ns each: a bucket has 50-150 of them), a
    # global read costs about what a local read does
    lines = [f"# rules of {name}", "def bucket(evt):", "    try:"]
    if guard is not None:
        lines.append("        if not _guard(evt):")
        lines.append("            return ()")
    if em.unset:
        lines.append("        " + " = ".join(em.unset) + " = _U")
    if pre is not None:
        lines.append(f"        {pre_line}")
    if not first:
        lines.append("        _hits = ()")
    for i, body in enumerate(bodies):
        lines.append(f"        if {body}:")
        lines.append(f"            {'return' if first else '_hits +='} _r{i}")
    lines.append("        return ()" if first else "        return _hits")
    lines.append("    except Exception:")
    lines.append("        return _on_error(evt)")
    source = "\n".join(lines) + "\n"
    code = compile(source, f"<{name}>", "exec")
    namespace = dict(em.consts)
    exec(code, namespace)
    fn = namespace["bucket"]
    fn.source = source
    # The same code over the accessors without their never-raise wrapper (fields.common.safe:
    # a frame and a try per field read): when one raises, the wrapped bucket above answers
    # for the whole event (accessors are pure for one event, so its answer is what the wrapped
    # bucket alone would give; a wrapped accessor differs only by returning None instead).
    fast_consts = dict(em.consts)
    unwrapped = 0
    for key, value in em.consts.items():
        if _ACCESSOR_CONST.match(key):
            inner = _unsafe(value)
            if inner is not value:
                fast_consts[key] = inner
                unwrapped += 1
    if not unwrapped:
        return fn
    fast_consts["_on_error"] = fn
    # an accessor that carries an ``inline`` expression of ``evt`` (the simplest proc.* and
    # container.id reads) is written into the fast bucket's code instead of called: no call, no
    # frame, no cold code object of its own per read. Its value is the accessor's whenever it does
    # not raise, and if it raises the wrapped bucket answers, as above.
    fast_source = source
    for key in fast_consts:
        if _ACCESSOR_CONST.match(key):
            inline = getattr(fast_consts[key], "inline", None)
            if isinstance(inline, str):
                fast_source = fast_source.replace(f"{key}(evt)", inline)
    if fast_source is not source:
        code = compile(fast_source, f"<{name}>", "exec")
    exec(code, fast_consts)
    fast = fast_consts["bucket"]
    fast.source = fast_source
    fast.safe_bucket = fn
    return fast


_ACCESSOR_CONST = re.compile(r"_a\d+\Z")


def _unsafe(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The extractor inside fields.common.safe's wrapper (``fn`` itself when it is not one)."""
    inner = getattr(fn, "__wrapped__", None)
    if inner is not None and getattr(fn, "__code__", None) is _SAFE_CODE:
        return inner
    return fn


def _safe_code():
    try:
        from pyfalco.fields.common import safe
    except ImportError:  # pragma: no cover - part of the package
        return None
    return safe(lambda ie: None).__code__


_SAFE_CODE = _safe_code()
