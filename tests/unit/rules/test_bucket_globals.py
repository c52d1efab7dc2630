# SPDX-License-Identifier: Apache-2.0
"""compile_bucket's function reads its constants (accessors, sets, results, the error fallback)
as the globals of its own namespace, not as default parameters: a call does not copy 50-150
defaults into its frame (~200 ns per event for the execve bucket of the default rules). Its
results are those of each rule's own compiled condition, in rule order, for both ``first`` modes."""

from __future__ import annotations

import itertools

from pyfalco.rules import compile_filter
from pyfalco.rules.compiler import compile_bucket
from pyfalco.rules.provider import DictProvider

CONDITIONS = (
    "proc.name in (bash, sh) and fd.name startswith /etc",
    "not fd.name exists",
    "proc.name = cat or fd.name contains passwd",
    "proc.name exists and not proc.name in (bash, cat)",
)


def test_bucket_has_no_default_parameters_and_answers_as_each_condition():
    prov = DictProvider()
    filters = [compile_filter(c, prov, check_evttypes=False) for c in CONDITIONS]
    results = [(f"r{i}",) for i in range(len(CONDITIONS))]
    for first in (False, True):
        fn = compile_bucket([f.tree for f in filters], prov, results, first, lambda e: ("err",))
        assert fn.__defaults__ is None and "def bucket(evt):" in fn.source
        # the constants it reads are in its namespace
        assert {"_U", "_on_error", "_r0"} <= set(fn.__globals__)
        names = (None, "bash", "cat", "sh")
        paths = (None, "/etc/passwd", "/tmp/x", "/etc/hosts")
        for name, path in itertools.product(names, paths):
            evt = {k: v for k, v in (("proc.name", name), ("fd.name", path)) if v is not None}
            hold = [r for f, r in zip(filters, results) if f.fn(evt)]
            want = (hold[0] if hold else ()) if first else tuple(x for r in hold for x in r)
            assert fn(evt) == want, (first, evt)
        # at least one event makes several conditions hold at once (the "all" sum is exercised)
        assert first or fn({"proc.name": "sh", "fd.name": "/etc/passwd"}) == ("r0", "r2", "r3")
