# SPDX-License-Identifier: Apache-2.0
"""Renders event parameters as Falco prints them (evt.arg.*, evt.args, evt.res) for the field modules.

The flag and enum tables (libs' ``PPM_*`` values) and their rendering are
:mod:`pyfalco.flag_tables`, re-exported here; this module adds errno names, capability names and
sysdig's printable form of buffers.
"""

from __future__ import annotations

import errno as _errno
import ipaddress
import string

# the tables live below the event layer (Event.flag_names reads them too)
from ..flag_tables import CAP_NAMES, ENUMS, FLAGS, render_enum, render_flags

__all__ = ["FLAGS", "ENUMS", "render_flags", "render_enum", "errno_name", "cap_names", "printable",
           "CAP_NAMES", "ip_text"]

_cap_cache: dict[int, str] = {}


def cap_names(mask: int) -> str:
    """Capability names of a bit mask, space separated (``thread.cap_effective``)."""
    s = _cap_cache.get(mask)
    if s is None:
        s = " ".join(n for i, n in enumerate(CAP_NAMES) if mask >> i & 1)
        if len(_cap_cache) < 256:
            _cap_cache[mask] = s
    return s


def errno_name(res: int) -> str:
    """``SUCCESS`` for res >= 0, else the errno name of -res (``ENOENT``), or the number."""
    if res >= 0:
        return "SUCCESS"
    return _errno.errorcode.get(-res, str(res))


_PRINTABLE = frozenset(string.printable.encode()) - frozenset(b"\t\n\r\x0b\x0c")


def printable(data: bytes) -> str:
    """A byte buffer as sysdig's normal format prints it: non-printable bytes become '.'."""
    return "".join(chr(c) if c in _PRINTABLE else "." for c in data)


def ip_text(ip) -> str:
    """An address as text, "" for anything else."""
    return str(ip) if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else ""
