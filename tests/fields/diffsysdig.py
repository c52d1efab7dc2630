# SPDX-License-Identifier: Apache-2.0
"""pyfalco's fields vs Debian's sysdig 0.29 (`sysdig -r FILE -p ...`) on the same exit events."""

from __future__ import annotations

import subprocess
from collections import Counter, defaultdict

FIELDS = ["evt.type", "proc.name", "proc.pname", "proc.cmdline", "proc.exepath", "fd.name", "fd.typechar",
          "fd.sip", "fd.sport", "user.name", "evt.res"]
SEP = "\x1f"


def sysdig_rows(path: str) -> dict:
    fmt = "*" + SEP.join(["%evt.rawtime", "%thread.tid", "%evt.num"] + [f"%{f}" for f in FIELDS])
    out = subprocess.run(["sysdig", "-r", str(path), "-p", fmt, "evt.dir=<"], capture_output=True, check=True,
                         timeout=600).stdout.decode("utf-8", "replace")
    rows = {}
    for line in out.splitlines():
        parts = line.split(SEP)
        if len(parts) != 3 + len(FIELDS):
            continue
        key = (int(parts[0]), int(parts[1]), parts[3])
        rows.setdefault(key, parts[3:])
    return rows


def text(v) -> str:
    from pyfalco.rules.output import value_text
    return value_text(v)


def compare(path: str, norm=None):
    """(per-field Counter of matches, per-field Counter of compared, mismatch samples, events matched)."""
    import pyfalco
    from pyfalco.inspector import Inspector
    ref = sysdig_rows(path)
    ok, seen = Counter(), Counter()
    samples = defaultdict(list)
    matched = 0
    with pyfalco.Capture(engine="replay", capture_file=str(path)) as cap:
        insp = Inspector(cap)
        prov = insp.provider
        getters = [(f, prov.accessor(f, None)) for f in FIELDS]
        for ie in insp.events():
            key = (ie.evt.ts, ie.evt.tid, ie.name)
            want = ref.get(key)
            if want is None:
                continue
            matched += 1
            for (f, get), w in zip(getters, want):
                got = text(get(ie))
                verdict = norm(f, got, w) if norm is not None else got == w
                if verdict is None:
                    verdict = True
                seen[f] += 1
                if verdict:
                    ok[f] += 1
                elif len(samples[f]) < 8:
                    samples[f].append((ie.evt.num, ie.name, got, w))
    return ok, seen, samples, matched, len(ref)
