# SPDX-License-Identifier: Apache-2.0
"""The eBPF driver's compile-time facts about each filler's event (driver/abi/fillers_list.h:
PF_KF_USES_<syscall>, PF_KF_MKFD_<syscall>) agree with the tables user space writes into the
driver (pyfalco/kfilter.py). A filler whose fact is 0 never looks its table entry up (filter.bpf.h,
PF_KF_HOW): an entry user space sets for it would be ignored, and a held open it uses would reach
user space after the event instead of before."""

from __future__ import annotations

import re
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _facts() -> dict:
    text = (ROOT / "driver" / "abi" / "fillers_list.h").read_text()
    fillers = re.findall(r"^\tX\((\w+)\) \\$", text, re.M)
    uses = {m.group(1): int(m.group(2), 16) for m in re.finditer(r"^#define PF_KF_USES_(\w+) (0x[0-9a-f]+)$", text, re.M)}
    mkfd = {m.group(1): int(m.group(2)) for m in re.finditer(r"^#define PF_KF_MKFD_(\w+) (\d+)$", text, re.M)}
    return {sc: (uses[sc], mkfd[sc]) for sc in fillers}


def test_static_facts_match_user_space_tables():
    from pyfalco import _schema, kfilter

    facts = _facts()
    assert len(facts) > 80
    uses_table = struct.unpack("<1024H", kfilter._uses_table())
    mkfd_table = kfilter._mkfd_table()
    for sc, (uses, mkfd) in facts.items():
        code = _schema.SYSCALL_EVENT[_schema.SYSCALL_NUMBERS[sc]]
        assert (uses, mkfd) == (uses_table[code], mkfd_table[code]), sc


def test_state_types_are_the_fillers_codes():
    """pf_kf_state's types (filter.bpf.h, PF_KF_STATE_TYPE) are named by enum: they must be the
    codes of the execve, execveat and close_range fillers."""
    from pyfalco import _schema

    facts = _facts()
    src = (ROOT / "driver" / "filter.bpf.h").read_text()
    for sc, enum in (("execve", "PPME_SYSCALL_EXECVE_19_X"), ("execveat", "PPME_SYSCALL_EXECVEAT_X"),
                     ("close_range", "PPME_SYSCALL_CLOSE_RANGE_X")):
        assert sc in facts
        assert enum in src
        assert _schema.EVENTS[_schema.SYSCALL_EVENT[_schema.SYSCALL_NUMBERS[sc]]].enum == enum
