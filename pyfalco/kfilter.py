# SPDX-License-Identifier: Apache-2.0
"""Kernel-side filtering compiled from the rules (modern_ebpf).

Falco's drivers filter by syscall only. The pyfalco eBPF driver can also drop, in the kernel,
open/openat/openat2 events that no selected rule can match (holding them until their fd is
used, below), and the close of such an fd (``driver/filter.bpf.h``). This module decides what may be dropped, from
the compiled condition trees of the enabled rules, and says why.

What the driver always sends (the analysis below may assume none of these holds):

* an open whose path is not one user space keeps as given, or one a traversal rule looks for:
  relative, with ``//``, ``/.`` (".", ".." and every hidden name), ``..``, a trailing ``/``, a
  byte >= 0x80, empty or too long;
* an open of a directory (by its flags or by the inode it returned), since user space names the
  fd of a directory by its path for later ``*at()`` calls and ``fchdir``.

For every other open, ``fd.name`` = ``fd.nameraw`` = the path as given, ``fd.directory`` is what
precedes its last ``/`` (``/`` for a file in the root), ``fd.filename`` what follows. Each rule
that can see an open event is over-approximated by a set of clauses ``(flags mask, path
pattern)``: the rule can match only when, for some clause, the open's flags share a bit with the
mask and its path matches the pattern (exact name, prefix, directory, file name). A check the
analysis cannot evaluate counts as true (so it never narrows), a negation counts as true unless
its operand is certainly true. The driver sends an open when any clause holds.

A dropped open is held in the kernel, not forgotten (``pf_kf_held``, keyed by the task's fd table
and the fd): its record is sent, just before, when a sent event reads that fd from user space's fd
table (any fd parameter of the event schema: the fd of fchmod/fchown/setns/read/..., the dirfd of
an ``*at()`` call, the old fd of dup/fcntl), and when a fork is about to copy the table. It is
forgotten when the kernel closes the fd and user space would drop it at the same event: its close
(then dropped too when no rule selects close events), an exec (O_CLOEXEC), close_range, an fd
created anew at that number (dup2), the exit of the table's last user. So user space's fd table is
the one it would have without the filter whenever it reads it for one fd. What reads the whole
table still turns the open filter off: ``fdlist.*``, ``fd.types``, ``proc.fdopencount``,
``proc.fdusage``, ``proc.std{in,out,err}.*``, and ``evt.args``, ``evt.info``, ``evt.arg.<p>`` of
an fd-list parameter (poll). What the driver cannot hold it sends: a record longer than
``HOLD_MAX`` bytes, an open when ``HELD_MAX`` are held, an open in a table that processes share
(CLONE_FILES without CLONE_THREAD). Fields that count or time events (``evt.num`` other than
``evt.num = 0``, ``evt.deltatime*``, ``evt.count*``, ``evt.around``) turn the whole filter off.
A filter change keeps what is held (it does not depend on the rules). Not exact: after
``unshare(CLONE_FILES)`` or ``close_range(CLOSE_RANGE_UNSHARE)`` in a thread, its copy of the
table is not what the held opens are keyed by (user space reads such an fd from /proc when used).
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from pyfalco import kfilter_facts
from pyfalco.record import KF_SPEC_HEADER, KF_SPEC_MAGIC
from pyfalco.rules import nodes as n

__all__ = ["KernelFilter", "derive", "path_hash", "OPEN_TYPES",
           "KF_OPEN", "KF_OPENAT", "KF_OPENAT2", "KF_CLOSE"]

# keep in sync with libpyfalco/include/pyfalco/kfilter.h and driver/filter.bpf.h
KF_OPEN, KF_OPENAT, KF_OPENAT2, KF_CLOSE = 1, 2, 4, 8
EXACT, PREFIX, DIR, BASE = 1, 2, 3, 4
ANY = 1 << 31
MAGIC = KF_SPEC_MAGIC
_TYPE_BITS = {"open": KF_OPEN, "openat": KF_OPENAT, "openat2": KF_OPENAT2}
OPEN_TYPES = frozenset(_TYPE_BITS)
_KIND_NAMES = {EXACT: "name", PREFIX: "prefix", DIR: "directory", BASE: "file name"}
_MAX_PATH = 4096
_MAX_CLAUSES = 4096
_MAX_PATTERNS = 16384
#: driver/maps.bpf.h: the longest open record the driver holds, and how many it holds at most
HOLD_MAX = 512
HELD_MAX = 8192

# PPM open flags (driver/abi/pyfalco_abi.h) by the names evt.arg.flags renders
PPM_O_RDONLY, PPM_O_WRONLY, PPM_O_CREAT, PPM_O_DIRECTORY = 1, 2, 4, 1 << 10
PPM_O_TMPFILE, PPM_O_F_CREATED = 1 << 13, 1 << 14
_FLAG_NAMES = {"O_RDONLY": 1, "O_WRONLY": 2, "O_RDWR": 3, "O_CREAT": 4, "O_APPEND": 8, "O_DSYNC": 16,
               "O_EXCL": 32, "O_NONBLOCK": 64, "O_SYNC": 128, "O_TRUNC": 256, "O_DIRECT": 512,
               "O_DIRECTORY": 1024, "O_LARGEFILE": 2048, "O_CLOEXEC": 4096, "O_TMPFILE": 8192,
               "O_F_CREATED": 16384}
_FLAG_FIELDS = {"evt.is_open_read": PPM_O_RDONLY, "evt.is_open_write": PPM_O_WRONLY,
                "evt.is_open_create": PPM_O_F_CREATED, "evt.is_open_exec": PPM_O_CREAT | PPM_O_TMPFILE}
_NAME_FIELDS = ("fd.name", "fd.nameraw")

# fields whose value depends on events other than the one evaluated (dropped ones included)
_HISTORY_FIELDS = ("evt.num", "evt.deltatime", "evt.count", "evt.around")
# fields that read the process's whole fd table, or fds no parameter names (a held open is sent
# only before an event whose fd parameter names it)
_TABLE_FIELDS = ("fdlist.", "fd.types", "proc.fdopencount", "proc.fdusage", "proc.stdin.", "proc.stdout.",
                 "proc.stderr.", "evt.args", "evt.info")
_PT_FD, _PT_FDLIST = 14, 16
# checks that are false for any fd that is not a socket (so for a regular file or no fd at all)
_SOCKET_ONLY = {"fd.typechar": {"4", "6", "u"}, "fd.type": {"ipv4", "ipv6", "unix"},
                "fd.l4proto": {"tcp", "udp", "icmp", "raw"}, "fd.sockfamily": {"ip", "unix"}}
_SOCKET_FIELDS = ("fd.ip", "fd.cip", "fd.sip", "fd.lip", "fd.rip", "fd.port", "fd.cport", "fd.sport",
                  "fd.lport", "fd.rport", "fd.net", "fd.cnet", "fd.snet", "fd.lnet", "fd.rnet",
                  "fd.cip.name", "fd.sip.name", "fd.lip.name", "fd.rip.name", "fd.proto", "fd.cproto",
                  "fd.sproto", "fd.lproto", "fd.rproto")
_POSITIVE_OPS = ("=", "in", "startswith", "endswith", "contains", "pmatch", "glob", "intersects")

TRUE = [(None, None)]
FALSE: list = []


def path_hash(data: bytes) -> int:
    """The driver's path hash (driver/filter.bpf.h, pf_kf_mix): the bytes as 64-bit little-endian
    words, the last one zero-padded (the map key carries the length too), each folded in as
    ``h = (h ^ w) * 0x100000001b3; h ^= h >> 32`` (64 bits) from 0xcbf29ce484222325. A word at a
    time, not FNV-1a's byte: the driver hashes 8 bytes per bpf_loop step."""
    h = 0xCBF29CE484222325
    for i in range(0, len(data), 8):
        h = ((h ^ int.from_bytes(data[i:i + 8], "little")) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 32
    return h


@dataclass
class KernelFilter:
    """What the driver may drop: ``on`` (KF_* bits), ``flags_any`` (an open with one of these
    PPM flags is sent), ``patterns`` ((kind, text) -> flag mask, ANY = whatever the flags), and
    ``reasons``: one line per decision, for ``pyfalco -i`` and the log."""

    on: int = 0
    flags_any: int = PPM_O_DIRECTORY
    patterns: dict = field(default_factory=dict)
    reasons: list = field(default_factory=list)
    #: event types whose fd.* fields some rule reads (what the held opens are sent before, for
    #: the explanation: the driver sends them before any event that uses their fd)
    release_types: list = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        return self.on != 0

    def spec(self) -> bytes:
        """The binary form libpyfalco installs (libpyfalco/include/pyfalco/kfilter.h)."""
        out = [KF_SPEC_HEADER.pack(MAGIC, self.on, self.flags_any, len(self.patterns))]
        for (kind, text), mask in sorted(self.patterns.items()):
            raw = text.encode()
            out.append(struct.pack("<QIII", path_hash(raw), len(raw), kind, mask))
        out.append(_mkfd_table())
        out.append(_uses_table())
        return b"".join(out)

    def wanted(self, flags: int, path: str, *, is_dir: bool = False) -> bool:
        """The driver's decision for a successful open, computed in Python (for tests and
        explanations): True when it is sent."""
        if flags & self.flags_any or is_dir:
            return True
        raw = path.encode("utf-8", "surrogateescape")
        if (len(raw) < 2 or len(raw) >= _MAX_PATH or raw[0:1] != b"/" or b"//" in raw or b"/." in raw
                or b".." in raw or raw.endswith(b"/") or any(c >= 0x80 for c in raw)):
            return True
        d, _, base = path.rpartition("/")
        probes = [(EXACT, path), (BASE, base), (DIR, d or "/")]
        probes += [(PREFIX, path[:i]) for i in range(1, len(path) + 1)]
        for key in probes:
            mask = self.patterns.get(key)
            if mask is not None and (mask & ANY or mask & flags):
                return True
        return False

    def describe(self) -> str:
        """Human-readable: what is filtered in the kernel and why."""
        lines = []
        if not self.on:
            lines.append("Kernel-side filter: off (every captured event is sent)")
        else:
            types = [t for t, b in _TYPE_BITS.items() if self.on & b] + (["close"] if self.on & KF_CLOSE else [])
            lines.append(f"Kernel-side filter: drops {', '.join(types)} events no rule can use")
            names = [k for k, v in _FLAG_NAMES.items() if v & self.flags_any == v and v != 3]
            lines.append(f"  opens always sent: flags with any of {'|'.join(names) or '-'}; directories; paths "
                         "that are relative or not normalized (//, /., .., trailing /, bytes >= 0x80)")
            by_kind: dict = {}
            for (kind, text), mask in sorted(self.patterns.items()):
                by_kind.setdefault(kind, []).append((text, mask))
            for kind in (EXACT, DIR, BASE, PREFIX):
                items = by_kind.get(kind, [])
                if items:
                    shown = ", ".join(f"{t}{_mask_text(m)}" for t, m in items[:12])
                    more = f", ... ({len(items)} in all)" if len(items) > 12 else ""
                    lines.append(f"  opens sent by {_KIND_NAMES[kind]}: {shown}{more}")
            rel = ", ".join(self.release_types[:12]) + (f", ... ({len(self.release_types)} in all)"
                                                        if len(self.release_types) > 12 else "")
            lines.append(f"  dropped opens are held in the kernel (records up to {HOLD_MAX} bytes, {HELD_MAX} at "
                         "most; else sent) and sent just before a sent event uses their fd"
                         + (f" (the rules read fd fields of {rel})" if rel else "")
                         + " and before a fork copies the fd table; forgotten at their close, exec (O_CLOEXEC), "
                         "close_range, dup2 over them, the table's last exit")
            lines.append("  held opens: sent instead in a table processes share (CLONE_FILES); not exact after "
                         "unshare(CLONE_FILES) or close_range(CLOSE_RANGE_UNSHARE) in a thread (what was held is "
                         "then read from /proc when used); a filter change keeps them")
        lines.extend("  " + r for r in self.reasons)
        return "\n".join(lines)


def _mkfd_table() -> bytes:
    """Event code -> how a sent event of that code makes fds (``kfilter_facts.mkfd``: 1 when it
    returns a new fd, 2 when its parameters 2 and 3 are new fds): the driver forgets those fd
    numbers in its table of dropped opens."""
    from pyfalco import _schema
    out = bytearray(1024)
    for e in _schema.EVENTS:
        if e.code < len(out):
            out[e.code] = kfilter_facts.mkfd(e.name, [p.name for p in e.params], "CREATES_FD" in e.flags)
    return bytes(out)


def _uses_table() -> bytes:
    """Event code -> u16, bit i set when parameter i is an fd the event reads from the fd table
    (``kfilter_facts.uses_mask``: the driver sends a held open of that fd first)."""
    from pyfalco import _schema
    out = [0] * 1024
    for e in _schema.EVENTS:
        if e.code < len(out):
            out[e.code] = kfilter_facts.uses_mask([(p.name, p.type == _PT_FD) for p in e.params],
                                                  "CREATES_FD" in e.flags)
    return struct.pack("<1024H", *out)


def _mask_text(mask: int) -> str:
    if mask & ANY:
        return ""
    names = [k for k, v in _FLAG_NAMES.items() if v & mask == v and v != 3]
    return " [" + "|".join(names) + "]"


# ---- the open analysis ------------------------------------------------------------------------

def _literals(value: Any) -> list[str] | None:
    if isinstance(value, n.Literal):
        return [value.value]
    if isinstance(value, n.ListLiteral) and all(isinstance(i, n.Literal) for i in value.items):
        return [i.value for i in value.items]
    return None


def _possible(text: str) -> bool:
    """Can a path the driver does not always send contain this text?"""
    raw = text.encode("utf-8", "surrogateescape")
    return b"//" not in raw and b"/." not in raw and b".." not in raw and not any(c >= 0x80 for c in raw)


def _name_pattern(kind: int, text: str) -> tuple | None:
    """(kind, text) as the driver can test it, or None when no path it filters can match."""
    raw = text.encode("utf-8", "surrogateescape")
    if not raw or len(raw) >= _MAX_PATH or not _possible(text):
        return None
    if kind == BASE:
        return None if "/" in text or text.startswith(".") else (BASE, text)
    if not text.startswith("/"):
        return None
    if kind == PREFIX:
        return (PREFIX, text)
    if text != "/" and text.endswith("/"):
        return None
    if kind == EXACT and text == "/":
        return None
    return (kind, text)


def _lit_prefix(glob: str) -> str:
    for i, c in enumerate(glob):
        if c in "*?[\\":
            return glob[:i]
    return glob


def _check_open(node: n.Check) -> list | None:
    """Clauses of one check on an open event; None: not analysable (true)."""
    lhs = node.lhs
    if not isinstance(lhs, n.FieldRef) or node.modifier:
        return None
    fname = lhs.name if lhs.arg is None else None
    op = node.op
    vals = _literals(node.value) if node.value is not None else None
    if fname == "evt.type":
        if op in ("=", "in") and vals is not None:
            return TRUE if OPEN_TYPES & set(vals) else FALSE
        if op == "!=" and vals is not None:
            return FALSE if OPEN_TYPES <= set(vals) else TRUE
        return None
    if fname in _FLAG_FIELDS and op == "=" and vals is not None and len(vals) == 1 and vals[0].lower() == "true":
        return [(_FLAG_FIELDS[fname], None)]
    if fname == "evt.arg.flags" and op == "contains" and vals is not None and len(vals) == 1 \
            and vals[0] in _FLAG_NAMES:
        return [(_FLAG_NAMES[vals[0]], None)]
    if fname in _NAME_FIELDS or fname in ("fd.directory", "fd.filename"):
        if vals is None:
            return None
        if op in ("contains", "endswith", "glob") and len(vals) == 1 and not _possible(vals[0].replace("*", "")
                                                                                   if op == "glob" else vals[0]):
            return FALSE
        if fname == "fd.filename" and op in ("startswith", "=", "in") and all(v.startswith(".") for v in vals):
            return FALSE
        out = []
        for v in vals:
            if op in ("=", "in"):
                kind = EXACT if fname in _NAME_FIELDS else DIR if fname == "fd.directory" else BASE
                pat = _name_pattern(kind, v)
            elif op in ("startswith", "pmatch", "glob") and fname != "fd.filename":
                text = _lit_prefix(v) if op == "glob" else v.rstrip("/") if op == "pmatch" else v
                if not text:
                    return None
                pat = _name_pattern(PREFIX, text)
            elif op == "glob" and fname == "fd.filename" and _lit_prefix(v) == v:
                pat = _name_pattern(BASE, v)
            else:
                return None
            if pat is not None:
                out.append((None, pat))
        return out
    return None


def _certain(node: Any) -> bool | None:
    """True/False when a node's value on any open event the driver may drop is known."""
    if isinstance(node, n.Const):
        return node.value
    if isinstance(node, n.Macro):
        return _certain(node.expr)
    if isinstance(node, n.Not):
        c = _certain(node.expr)
        return None if c is None else not c
    if isinstance(node, (n.And, n.Or)):
        cs = [_certain(i) for i in node.items]
        if isinstance(node, n.And):
            return False if False in cs else True if all(c is True for c in cs) else None
        return True if True in cs else False if all(c is False for c in cs) else None
    if isinstance(node, n.Check):
        got = _check_open(node)
        if got == FALSE:
            return False
        lhs = node.lhs
        if isinstance(lhs, n.FieldRef) and lhs.name == "evt.type" and node.op in ("=", "in"):
            vals = _literals(node.value) if node.value is not None else None
            if vals is not None and OPEN_TYPES <= set(vals):
                return True
    return None


def _and(a: list, b: list) -> list:
    if a == FALSE or b == FALSE:
        return FALSE
    if a == TRUE:
        return b
    if b == TRUE:
        return a
    if len(a) * len(b) > _MAX_CLAUSES:
        return a if len(a) <= len(b) else b      # A and B implies A: sound, less precise
    out = []
    for ma, pa in a:
        for mb, pb in b:
            m = ma if mb is None else mb if ma is None else (ma if bin(ma).count("1") <= bin(mb).count("1") else mb)
            p = pa if pb is None else pb if pa is None else (pa if pa[0] != PREFIX else pb)
            out.append((m, p))
    return _simplify(out)


def _simplify(clauses: list) -> list:
    if (None, None) in clauses:
        return TRUE
    return list(dict.fromkeys(clauses))


def _open_clauses(node: Any) -> list:
    """Over-approximation of ``node`` on an open event the driver may drop, as clauses."""
    if isinstance(node, n.Macro):
        return _open_clauses(node.expr)
    if isinstance(node, n.Const):
        return TRUE if node.value else FALSE
    if isinstance(node, n.Or):
        out: list = []
        for item in node.items:
            out.extend(_open_clauses(item))
            if (None, None) in out:
                return TRUE
        return _simplify(out)
    if isinstance(node, n.And):
        acc = TRUE
        for item in node.items:
            acc = _and(acc, _open_clauses(item))
            if acc == FALSE:
                return FALSE
        return acc
    if isinstance(node, n.Not):
        return FALSE if _certain(node.expr) is True else TRUE
    if isinstance(node, n.Check):
        got = _check_open(node)
        return TRUE if got is None else got
    return TRUE


# ---- the fd table analysis -----------------------------------------------------------------------

def _fields(node: Any, out: list) -> list:
    """(field name, check node) of every field a condition reads."""
    if isinstance(node, (n.Or, n.And)):
        for i in node.items:
            _fields(i, out)
    elif isinstance(node, n.Not):
        _fields(node.expr, out)
    elif isinstance(node, n.Macro):
        _fields(node.expr, out)
    elif isinstance(node, n.Check):
        for part in (node.lhs, node.value):
            _operand_fields(part, node, out)
    return out


def _operand_fields(node: Any, check: Any, out: list) -> None:
    if isinstance(node, n.FieldRef):
        out.append((node.name, node.arg, check))
    elif isinstance(node, n.Val):
        _operand_fields(node.field, check, out)
    elif isinstance(node, n.Transform):
        for a in node.args:
            _operand_fields(a, check, out)


def _socket_only(node: Any) -> bool | None:
    """False when the condition is false for any event whose fd is not a socket (or has no fd)."""
    if isinstance(node, n.Macro):
        return _socket_only(node.expr)
    if isinstance(node, n.Const):
        return node.value
    if isinstance(node, n.Not):
        c = _socket_only(node.expr)
        return None if c is None else not c
    if isinstance(node, (n.And, n.Or)):
        cs = [_socket_only(i) for i in node.items]
        if isinstance(node, n.And):
            return False if False in cs else None
        return False if all(c is False for c in cs) else None
    if isinstance(node, n.Check) and isinstance(node.lhs, n.FieldRef) and node.lhs.arg is None \
            and not node.modifier and node.op in _POSITIVE_OPS:
        name = node.lhs.name
        vals = _literals(node.value) if node.value is not None else None
        if name in _SOCKET_ONLY and vals is not None and set(vals) <= _SOCKET_ONLY[name] and node.op in ("=", "in"):
            return False
        if name in _SOCKET_FIELDS:
            return False
    return None


def _table_types() -> frozenset:
    """Event types whose fd.* fields come from the fd table (libs' EF_USES_FD; the open calls
    describe their own fd)."""
    from pyfalco import _schema
    return frozenset(e.name for e in _schema.EVENTS if "USES_FD" in e.flags) - OPEN_TYPES - {"creat"}


def _uses_history(name: str, arg: Any, check: Any) -> bool:
    if name == "evt.num" and isinstance(check, n.Check) and check.op == "=" and _literals(check.value) == ["0"]:
        return False   # evt.num = 0 (Falco's never_true): no event has number 0, dropped or not
    return any(name == h or name.startswith(h + ".") for h in _HISTORY_FIELDS)


def _fdlist_params() -> dict:
    """Event type name -> names of its fd-list parameters (poll: fds the driver sends no held
    open before)."""
    from pyfalco import _schema
    out: dict = {}
    for e in _schema.EVENTS:
        out.setdefault(e.name, set()).update(p.name for p in e.params if p.type == _PT_FDLIST)
    return out


def _table_field(name: str, arg: Any, types: Iterable[str], fdlist_params: dict) -> str | None:
    """Why a field read for events of ``types`` depends on fds a held open would not be sent for:
    the whole table, or an fd-list parameter."""
    for t in _TABLE_FIELDS:
        if name == t or (t.endswith(".") and name.startswith(t)):
            if name in ("evt.args", "evt.info") and not any(fdlist_params.get(t) for t in types):
                continue     # the fd parameters' held opens are sent before the event
            return name
    if name in ("evt.arg", "evt.rawarg") or name.startswith("evt.arg."):
        if name == "evt.rawarg" or name.startswith("evt.rawarg"):
            return None
        pname = arg if name == "evt.arg" else name[len("evt.arg."):]
        if pname is None or str(pname).lstrip("-").isdigit():
            if any(fdlist_params.get(t) for t in types):
                return f"{name}[{pname}]"
            return None
        if any(pname in fdlist_params.get(t, ()) for t in types):
            return f"{name}" if arg is None else f"{name}[{arg}]"
    return None


# ---- derive -------------------------------------------------------------------------------------

def derive(ruleset: Any, *, source: str = "syscall", extra_output_fields: Sequence[str] = (),
           syscalls: Iterable[str] | None = None) -> KernelFilter:
    """The kernel filter for the enabled rules of ``ruleset`` (a pyfalco Ruleset).

    ``extra_output_fields``: fields every alert prints besides the rules' own (``append_output``).
    ``syscalls``: the syscalls the driver is asked for (None: the open calls are).
    """
    kf = KernelFilter()
    rules = ruleset.enabled_rules(source)
    universe = getattr(ruleset, "universe", frozenset())
    fdlist_params = _fdlist_params()
    table_types = _table_types()
    extra = [(f.split("[", 1)[0], None, None) for f in extra_output_fields]
    open_rules, other_rules = [], []
    close_rules = []
    for rule in rules:
        types = rule.evttypes
        catch_all = bool(universe) and types >= universe
        out_fields = [(f.split("[", 1)[0], (f.split("[", 1)[1].rstrip("]") if "[" in f else None), None)
                      for f in (getattr(rule.output_format, "fields", ()) or ())]
        cond_fields = _fields(rule.tree, [])
        for name, arg, check in cond_fields + out_fields + extra:
            if _uses_history(name, arg, check):
                kf.reasons.append(f"off: rule {rule.name!r} reads {name}, which counts or times every event")
                return kf
        if catch_all or types & OPEN_TYPES:
            open_rules.append(rule)
        if catch_all or types - OPEN_TYPES:
            other_rules.append((rule, cond_fields + out_fields + extra, types - OPEN_TYPES if not catch_all else universe))
        if catch_all or "close" in types:
            close_rules.append(rule)
    # 1. no rule of another type may read the fd table beyond the fds its event names (the held
    #    opens of those are sent before the event)
    blocked = False
    release: set = set()
    for rule, flds, types in other_rules:
        types = frozenset(types) - {"creat"}
        fd_fields = []
        for name, arg, _check in flds:
            why = _table_field(name, arg, types, fdlist_params)
            if why:
                kf.reasons.append(f"off: rule {rule.name!r} reads {why} on {', '.join(sorted(types)[:4])} events: "
                                  "fds of dropped opens would be missing")
                blocked = True
                break
            if name.startswith("fd.") and types & table_types:
                fd_fields.append(name)
        else:
            if fd_fields and _socket_only(rule.tree) is not False:
                rtypes = sorted(types & table_types)
                release.update(rtypes)
                kf.reasons.append(f"rule {rule.name!r} reads {', '.join(sorted(set(fd_fields)))} on "
                                  f"{', '.join(rtypes[:4])}{' ...' if len(rtypes) > 4 else ''} events: a held "
                                  "open of that fd is sent just before")
    kf.release_types = sorted(release)
    # 2. what the open rules can match
    clauses: list = []
    for rule in open_rules:
        got = _open_clauses(rule.tree)
        if got == TRUE:
            kf.reasons.append(f"off: rule {rule.name!r} may match an open whatever its path and flags")
            blocked = True
            continue
        clauses.extend(got)
        kf.reasons.append(f"rule {rule.name!r}: {_clauses_text(got)}")
    if blocked:
        kf.reasons = [r for r in kf.reasons if r.startswith("off:")]
        return kf
    for mask, pat in clauses:
        if pat is None:
            kf.flags_any |= mask
        else:
            kf.patterns[pat] = kf.patterns.get(pat, 0) | (ANY if mask is None else mask)
    if len(kf.patterns) > _MAX_PATTERNS:
        kf.patterns.clear()
        kf.reasons.append(f"off: more than {_MAX_PATTERNS} path patterns")
        return kf
    wanted = set(syscalls) if syscalls is not None else None
    for t, bit in _TYPE_BITS.items():
        if wanted is None or t in wanted:
            kf.on |= bit
    if not close_rules:
        kf.on |= KF_CLOSE
        kf.reasons.append("closes of fds whose open was dropped are dropped too (no rule selects close)")
    else:
        kf.reasons.append(f"closes are all sent: rule {close_rules[0].name!r} selects close events")
    if not open_rules:
        kf.reasons.append("no rule selects open events: only the state needs them (directories)")
    return kf


def _clauses_text(clauses: list) -> str:
    if not clauses:
        return "can match no open the driver may drop"
    parts = []
    for mask, pat in clauses[:6]:
        bits = [] if mask is None else [_mask_text(mask).strip(" []")]
        if pat is not None:
            bits.append(f"{_KIND_NAMES[pat[0]]} {pat[1]}")
        parts.append(" and ".join(bits))
    more = f" (+{len(clauses) - 6} more)" if len(clauses) > 6 else ""
    return "opens with " + "; ".join(parts) + more


def _append_fields(cfg: dict) -> list[str]:
    """Every field name ``append_output`` may add to alerts (over-approximated from its text)."""
    import re
    return sorted(set(re.findall(r"\b[a-z][a-z0-9_]*\.[a-z0-9_.]+", str(cfg.get("append_output") or ""))))


def configure(capture: Any, ruleset: Any, cfg: dict, log: Any = None) -> KernelFilter | None:
    """The agent's hook: derive the filter for ``ruleset`` and install it on a modern_ebpf
    ``capture``, or turn it off when ``engine.modern_ebpf.kernel_filter`` is false. Returns the
    filter installed (None: none). A driver that cannot filter is logged, not fatal."""
    eng = cfg["engine"]
    if eng["kind"] != "modern_ebpf" or capture is None or not hasattr(capture, "set_kernel_filter"):
        return None
    from pyfalco.errors import PyFalcoError
    enabled = eng["modern_ebpf"].get("kernel_filter", True)
    kf = derive(ruleset, extra_output_fields=_append_fields(cfg), syscalls=getattr(capture, "syscalls", None)) \
        if enabled else None
    try:
        capture.set_kernel_filter(kf)
    except (PyFalcoError, OSError) as exc:
        if log is not None:
            # ENOTSUP: a libpyfalco built before the filter existed; every event is sent, as before
            (log.info if getattr(exc, "errno", None) == errno.ENOTSUP else log.warning)(
                "kernel-side filter not installed: %s", exc)
        return None
    if log is not None:
        if kf is None:
            log.info("kernel-side filter: off (engine.modern_ebpf.kernel_filter: false)")
        else:
            text = kf.describe().splitlines()
            log.info("%s", text[0] if kf.on else "; ".join(t.strip() for t in text))
            for line in text[1:] if kf.on else ():
                log.debug("%s", line)
    return kf
