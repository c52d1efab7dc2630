# SPDX-License-Identifier: Apache-2.0
"""Which fds a sent event touches, as the kernel filter's held opens see it: the rules that
pyfalco.kfilter (the tables user space writes into the driver: pf_kf_uses, pf_kf_mkfd) and
tools/gen_event_table.py (each filler's compile-time facts, driver/abi/fillers_list.h:
PF_KF_USES_<syscall>, PF_KF_MKFD_<syscall>) both apply, so that the two cannot disagree.

No pyfalco import: the generator loads this file by its path, without importing the package
whose pyfalco/_schema.py it writes.
"""

from __future__ import annotations

from typing import Sequence

#: mkfd values (the driver's PF_KF_MKFD_*)
MKFD_RET = 1     # the return value is a new fd
MKFD_PARAMS = 2  # parameters 2 and 3 are new fds (pipe, socketpair)


def uses_mask(params: Sequence[tuple[str, bool]], creates_fd: bool) -> int:
    """Bit i set when parameter i (``(name, is an fd)``, the first 16) is an fd the event reads
    from the fd table (the driver sends a held open of it first): every fd parameter but the
    one the event creates (``res``, the new ``fd`` of an fd-creating call, dup2/dup3's
    ``newfd``), which the driver forgets instead (``mkfd``). An extra bit only sends a held
    open earlier."""
    mask = 0
    for i, (name, is_fd) in enumerate(params[:16]):
        if not is_fd or name in ("res", "newfd") or (i == 0 and name == "fd" and creates_fd):
            continue
        mask |= 1 << i
    return mask


def mkfd(event_name: str, param_names: Sequence[str], creates_fd: bool) -> int:
    """How a sent event of this kind makes fds (their numbers leave the driver's held table, so
    that only a close of an fd whose open was held is ever dropped): MKFD_PARAMS when its
    parameters 2 and 3 are new fds, MKFD_RET when it returns one, 0 otherwise. Extra entries
    only make the driver send more closes (fcntl: F_DUPFD returns a new fd)."""
    if not (creates_fd or event_name == "fcntl"):
        return 0
    return MKFD_PARAMS if list(param_names[1:3]) == ["fd1", "fd2"] else MKFD_RET
