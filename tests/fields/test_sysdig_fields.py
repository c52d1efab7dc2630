# SPDX-License-Identifier: Apache-2.0
"""Differential test: pyfalco's state and fields vs Debian's sysdig 0.29 on ../shared/captures.

Events are matched by (timestamp, tid, type) between pyfalco's exit events and sysdig's exit
lines. Known differences, explained (not bugs of pyfalco's):
  * sysdig 0.29 prints an empty string where Falco prints ``<NA>``: the two are equal here;
  * proc.exepath: sysdig 0.29 fills it only from the capture's process list, never from execve
    events of the 2022 layout, so it prints "" where pyfalco resolves the path: not compared
    when sysdig has nothing;
  * the remaining gaps are measured below and held at their present rates (MIN_RATE): thread
    parents of threads created before the capture (sysdig walks its own thread list), UDP
    sockets whose sendmsg tuple has an unbound source, fd entries of unix sockets after a failed
    connect, setsockopt on fds sysdig made up from nothing, and user names of captures whose
    user list sysdig 0.29 does not read.
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from diffsysdig import FIELDS, compare

CAPTURES = sorted((__import__("pathlib").Path(__file__).resolve().parents[3] / "shared" / "captures").glob("*.scap"))
READABLE = [p for p in CAPTURES if p.name != "libs_curl_google_comments.scap"]

MIN_RATE = {"evt.type": 1.0, "proc.name": 1.0, "proc.cmdline": 1.0, "evt.res": 1.0, "proc.pname": 1.0,
            "proc.exepath": 1.0, "fd.name": 0.96, "fd.typechar": 0.96, "fd.sip": 0.97, "fd.sport": 0.97,
            "user.name": 0.89}


def _norm(field: str, got: str, want: str):
    if want == "" and got == "<NA>":
        return None   # equal
    if field == "proc.exepath" and want == "":
        return None   # sysdig 0.29 limitation (module docstring)
    return got == want


def test_fields_match_sysdig():
    if shutil.which("sysdig") is None:
        pytest.fail("sysdig is needed (tools/setup installs it)")
    ok, seen = Counter(), Counter()
    total = 0
    for path in READABLE:
        o, s, samples, matched, _nref = compare(path, _norm)
        ok.update(o)
        seen.update(s)
        total += matched
    assert total > 3500
    rates = {f: ok[f] / seen[f] for f in FIELDS if seen[f]}
    print("match rates:", {f: round(r, 4) for f, r in rates.items()})
    low = {f: round(r, 4) for f, r in rates.items() if r < MIN_RATE.get(f, 1.0)}
    assert not low, low
