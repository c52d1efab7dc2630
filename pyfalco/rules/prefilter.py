# SPDX-License-Identifier: Apache-2.0
"""A cheap test that lets a compiled bucket of open rules skip most open events.

Most opens a host makes (read-only opens of libraries, /proc, /etc/passwd, ...) can match no
rule, yet the bucket of the open event types evaluates every rule's condition up to its first
false term, tens of field reads. The kernel filter's analysis (``pyfalco.kfilter``) already
over-approximates every rule that can see an open by clauses (flag mask, path pattern): a rule
can match an open of a normalized absolute path only when one of its clauses holds. The same
clauses, tested in Python on the fd the state engine just made, tell when a bucket cannot match;
for every other open (no fd, a directory, a relative or unnormalized path, fd.name differing from
fd.nameraw) the bucket runs as before, so results are those of the rules themselves.

The analysis lives in the engine layer (``pyfalco.kfilter``): the engine hands it to the ruleset
(``Ruleset.open_analysis``), which passes it here; without it buckets have no prefilter.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

__all__ = ["open_guard"]


def open_guard(trees: Sequence[Any], K: Any) -> Callable[[Any], bool] | None:
    """``guard(ie)``: False only when none of the conditions ``trees`` (rules of open, openat or
    openat2 events) can hold for the InspectedEvent ``ie``; None when no cheap test exists (a
    condition may match an open whatever its path and flags). ``K``: the module with the kernel
    filter's clause analysis (``pyfalco.kfilter``)."""
    try:
        from pyfalco.state.fds import FD_DIRECTORY
        from pyfalco.state.parser import E_OPEN, E_OPENAT, E_OPENAT2
    except ImportError:  # pragma: no cover - both are part of the package
        return None
    flags_any = K.PPM_O_DIRECTORY
    exact: dict = {}
    dirs: dict = {}
    base: dict = {}
    prefix: dict = {}
    tables = {K.EXACT: exact, K.DIR: dirs, K.BASE: base, K.PREFIX: prefix}
    try:
        for tree in trees:
            clauses = K._open_clauses(tree)
            if clauses == K.TRUE:
                return None
            for mask, pat in clauses:
                if pat is None:
                    flags_any |= mask
                else:
                    kind, text = pat
                    table = tables[kind]
                    table[text] = table.get(text, 0) | (K.ANY if mask is None else mask)
    except (RecursionError, KeyError, TypeError, ValueError, AttributeError):
        return None
    any_bit = K.ANY
    lens = tuple(sorted({len(p) for p in prefix}))
    max_path = K._MAX_PATH
    # the exit events whose fd the state engine makes from the event itself (StateParser._open);
    # for any other code (enter events, older layouts) ie.fd is not that open's fd
    made = frozenset((E_OPEN, E_OPENAT, E_OPENAT2))

    # paths repeat (the same files are opened again and again): the answer by flags then path
    cache: dict = {}

    def decide(path: str, fl: int) -> bool:
        # what the analysis assumes: fd.name == fd.nameraw == a normalized absolute path
        if (len(path) < 2 or path[0] != "/" or path[-1] == "/" or "//" in path or "/." in path or ".." in path
                or not path.isascii() or len(path) >= max_path):
            return True
        fl |= any_bit
        m = exact.get(path)
        if m is not None and m & fl:
            return True
        d, _, b = path.rpartition("/")
        m = dirs.get(d or "/")
        if m is not None and m & fl:
            return True
        m = base.get(b)
        if m is not None and m & fl:
            return True
        for n in lens:
            m = prefix.get(path[:n])
            if m is not None and m & fl:
                return True
        return False

    def guard(ie: Any) -> bool:
        f = ie.fd
        if f is None or ie.evt.type not in made:
            return True
        fl = f.flags
        if fl & flags_any or f.type == FD_DIRECTORY:
            return True
        path = f.name
        if f.nameraw != path:
            return True
        by_path = cache.get(fl)
        if by_path is None:
            if len(cache) >= 64:
                cache.clear()
            by_path = cache[fl] = {}
        hit = by_path.get(path)
        if hit is None:
            if len(by_path) >= 4096:
                by_path.clear()
            hit = by_path[path] = decide(path, fl)
        return hit
    return guard
