# SPDX-License-Identifier: Apache-2.0
"""The committed event tables are what the generator makes from ../shared/spec today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_tables_are_up_to_date():
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_event_table.py"), "--check"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_schema_facts():
    from pyfalco import _schema
    assert len(_schema.EVENTS) == _schema.EVENT_MAX == 454
    assert _schema.EVENTS[307].enum == "PPME_SYSCALL_OPENAT_2_X"
    assert [p.name for p in _schema.EVENTS[307].params] == ["fd", "dirfd", "name", "flags", "mode", "dev", "ino"]
    assert _schema.SYSCALL_EVENT[_schema.SYSCALL_NUMBERS["openat"]] == 307
    assert _schema.SYSCALL_EVENT[_schema.SYSCALL_NUMBERS["prlimit64"]] in _schema.EVENT_CODES_BY_NAME["prlimit"]
    # the 2022 table (Debian's sysdig) has 6 openat exit params
    assert len(_schema.EVENTS[307].params_2022) == 6
