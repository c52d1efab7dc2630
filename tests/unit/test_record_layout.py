# SPDX-License-Identifier: Apache-2.0
"""The record layout is defined once in Python (pyfalco/record.py) and agrees with the C headers
(driver/abi/pyfalco_abi.h, libpyfalco/include/pyfalco/pyfalco.h); no other module re-derives it."""

from __future__ import annotations

import re
from pathlib import Path

import pyfalco
from pyfalco import record
from pyfalco.events import Event, split_batch

ROOT = Path(pyfalco.__file__).resolve().parent
CHECKOUT = ROOT.parent

#: the struct formats of the header, and the files that still spell them out (with the fix);
#: the test fails when one of these no longer does (remove it here) or another one starts to
KNOWN_COPIES = {
    "plugins/cabi.py": "plugin event records: use record.HDR / record.HDR_SIZE",
}
_FORMATS = re.compile(r"""["']<(?:HHI)?QQIHI["']""")
_C_TYPES = {"pf_u64": "Q", "pf_u32": "I", "pf_u16": "H", "uint64_t": "Q", "uint32_t": "I", "uint16_t": "H"}


def _c_struct(path: Path, name: str) -> str:
    """struct.Struct format of a C struct of fixed-width integer fields."""
    text = path.read_text()
    body = re.search(r"struct %s \{(.*?)\}" % re.escape(name), text, re.S).group(1)
    return "<" + "".join(_C_TYPES[m] for m in re.findall(r"^\s*(\w+)\s+\w+;", body, re.M))


def test_header_matches_the_c_abi():
    assert _c_struct(CHECKOUT / "driver/abi/pyfalco_abi.h", "pyfalco_evt_hdr") == record.HDR.format
    size = re.search(r"#define PYFALCO_EVT_HDR_SIZE (\d+)", (CHECKOUT / "driver/abi/pyfalco_abi.h").read_text())
    assert int(size.group(1)) == record.HDR_SIZE == 26
    assert record.HDR_LEN_OFFSET == 16 and record.HDR.unpack(record.pack_header(1, 2, 3, 4, 5))[2] == 3


def test_batch_entry_matches_the_library_header():
    fmt = _c_struct(CHECKOUT / "libpyfalco/include/pyfalco/pyfalco.h", "pyfalco_batch_entry")
    assert fmt == record.BATCH_ENTRY.format and record.BATCH_ENTRY_SIZE == 8
    assert record.ENTRY_HDR.size == record.BATCH_ENTRY_SIZE + record.HDR_SIZE


def test_a_batch_built_from_the_layout_splits_back():
    """Two records in a batch, entries padded to 8: split_batch finds both where entry_stride says."""
    recs = []
    for i, body in enumerate((b"\x00\x00", b"\x03\x00abc")):
        recs.append(record.pack_header(1000 + i, 42, record.HDR_SIZE + len(body), 3, 1) + body)
    buf = b""
    for r in recs:
        entry = record.BATCH_ENTRY.pack(1, 0, len(r)) + r
        buf += entry + b"\0" * (record.entry_stride(len(r)) - len(entry))
    assert len(buf) == sum(record.entry_stride(len(r)) for r in recs) and len(buf) % 8 == 0
    evts = split_batch(buf, 2)
    assert [(e.ts, e.tid, e.type, e.record) for e in evts] == [(1000 + i, 42, 3, r) for i, r in enumerate(recs)]
    assert Event.from_bytes(recs[1]).raw_param(0) == b"abc"


def test_no_module_spells_the_header_out_again():
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "record.py":
            continue
        if _FORMATS.search(path.read_text()):
            found[rel] = path
    unknown = sorted(set(found) - set(KNOWN_COPIES))
    assert not unknown, f"the record header re-derived outside pyfalco/record.py: {unknown}"
    stale = sorted(set(KNOWN_COPIES) - set(found))
    assert not stale, f"no longer re-derive the header (remove from KNOWN_COPIES): {stale}"


def test_kernel_filter_spec_magic_is_the_library_s():
    """The filter spec's magic names its path hash: Python's one copy (pyfalco/record.py, which
    pyfalco.kfilter and pyfalco.capture both use) and the C header must agree, or libpyfalco
    refuses every spec."""
    from pyfalco import capture, kfilter, record
    header = (CHECKOUT / "libpyfalco" / "include" / "pyfalco" / "kfilter.h").read_text()
    c_magic = int(re.search(r"#define PYFALCO_KF_MAGIC (0x[0-9a-fA-F]+)u", header).group(1), 16)
    assert record.KF_SPEC_MAGIC == c_magic
    assert kfilter.MAGIC is record.KF_SPEC_MAGIC
    assert record.KF_SPEC_HEADER.unpack(capture.KF_SPEC_OFF) == (c_magic, 0, 0, 0)
