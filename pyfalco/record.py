# SPDX-License-Identifier: Apache-2.0
"""The scap record layout, defined once for Python (the C side is ``driver/abi/pyfalco_abi.h`` and
``libpyfalco/include/pyfalco/pyfalco.h``).

A record is a packed 26-byte header (``struct ppm_evt_hdr``: ts u64, tid u64, len u32, type u16,
nparams u32), then ``nparams`` parameter lengths (u16, or u32 for LARGE_PAYLOAD events), then the
parameter bytes; ``len`` counts all of it. A libpyfalco batch holds entries of an 8-byte
``struct pyfalco_batch_entry`` (cpu u16, flags u16, record length u32) followed by the record,
each entry padded to 8 bytes.
"""

from __future__ import annotations

import struct

__all__ = ["HDR", "HDR_SIZE", "HDR_LEN_OFFSET", "BATCH_ENTRY", "BATCH_ENTRY_SIZE", "ENTRY_HDR", "BATCH_ALIGN",
           "pack_header", "entry_stride", "KF_SPEC_MAGIC", "KF_SPEC_HEADER"]

#: struct ppm_evt_hdr: ts, tid, len, type, nparams
HDR = struct.Struct("<QQIHI")
HDR_SIZE = HDR.size                     # 26
#: offset of ``len`` in the header (ts and tid come first)
HDR_LEN_OFFSET = struct.calcsize("<QQ")
#: struct pyfalco_batch_entry: cpu, flags, record length
BATCH_ENTRY = struct.Struct("<HHI")
BATCH_ENTRY_SIZE = BATCH_ENTRY.size     # 8
#: a batch entry and the header of its record in one read: cpu, flags, rlen, ts, tid, len, type, nparams
ENTRY_HDR = struct.Struct("<" + BATCH_ENTRY.format.lstrip("<") + HDR.format.lstrip("<"))
#: alignment of batch entries
BATCH_ALIGN = 8
#: the kernel-side filter's spec (libpyfalco/include/pyfalco/kfilter.h, PYFALCO_KF_MAGIC): its magic,
#: "PFK2" (the word-at-a-time path hash; libpyfalco refuses a spec of another hash: "PFKF" was FNV-1a),
#: and its header: magic, on (event types), flags_any, number of patterns
KF_SPEC_MAGIC = 0x324B4650
KF_SPEC_HEADER = struct.Struct("<IIII")


def pack_header(ts: int, tid: int, length: int, etype: int, nparams: int) -> bytes:
    """A record header; ``length`` is the whole record's (header included)."""
    return HDR.pack(ts, tid, length, etype, nparams)


def entry_stride(rlen: int) -> int:
    """Bytes from one batch entry to the next, for a record of ``rlen`` bytes."""
    return (BATCH_ENTRY_SIZE + rlen + BATCH_ALIGN - 1) & ~(BATCH_ALIGN - 1)
