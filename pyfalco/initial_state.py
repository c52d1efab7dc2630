# SPDX-License-Identifier: Apache-2.0
"""The state a capture starts from: threads and their fds, users, groups, interfaces, machine.

Filled by a /proc scan for live captures (procscan.py) and from a capture file's metadata blocks
for replays (scap/metadata.py); the state engine seeds its tables from it.

ThreadInfo and FdInfo are slotted dataclasses (no per-instance ``__dict__``, no ad-hoc
attributes): a capture's metadata makes one per thread and per fd, and the slots make building
(41 fields) and reading them cheaper; construction, defaults, equality, repr and
``dataclasses.replace`` are those of the plain dataclasses (tests/fuzz/test_initial_state.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields


def _slotted(cls: type) -> type:
    """``dataclass(slots=True)``; on Python 3.9 (PyPy 3.9 too), which lacks it, the same class
    made the way 3.10 makes it: the dataclass rebuilt with ``__slots__`` of its fields (defaults
    live in ``__init__``, not on the class)."""
    if sys.version_info >= (3, 10):
        return dataclass(slots=True)(cls)
    cls = dataclass(cls)
    names = tuple(f.name for f in fields(cls))
    ns = {k: v for k, v in cls.__dict__.items() if k not in names and k not in ("__dict__", "__weakref__")}
    ns["__slots__"] = names
    return type(cls)(cls.__name__, cls.__bases__, ns)

# scap_fd_type (SCAP_FORMAT.md section 10)
FD_UNINITIALIZED = 0
FD_FILE = 1
FD_DIRECTORY = 2
FD_IPV4_SOCK = 3
FD_IPV6_SOCK = 4
FD_IPV4_SERVSOCK = 5
FD_IPV6_SERVSOCK = 6
FD_FIFO = 7
FD_UNIX_SOCK = 8
FD_EVENT = 9
FD_UNSUPPORTED = 10
FD_SIGNALFD = 11
FD_EVENTPOLL = 12
FD_INOTIFY = 13
FD_TIMERFD = 14
FD_NETLINK = 15
FD_FILE_V2 = 16
FD_BPF = 17
FD_USERFAULTFD = 18
FD_IOURING = 19
FD_MEMFD = 20
FD_PIDFD = 21


@_slotted
class FdInfo:
    fd: int
    type: int                 # FD_* above
    name: str = ""            # path, or "" for sockets (derived from the addresses)
    ino: int = 0
    open_flags: int = 0       # PPM_O_* for files
    dev: int = 0
    # sockets: addresses as bytes (4 or 16) or None; ports in host order
    sip: bytes | None = None
    dip: bytes | None = None
    sport: int = 0
    dport: int = 0
    l4proto: int = 0          # SCAP_L4_*
    unix_source: int = 0
    unix_dest: int = 0


@_slotted
class ThreadInfo:
    tid: int
    pid: int
    ptid: int
    comm: str = ""
    exe: str = ""             # argv[0]
    exepath: str = ""         # full path of the executable
    args: list[str] = field(default_factory=list)
    cwd: str = ""
    sid: int = 0
    vpgid: int = 0
    pgid: int = 0
    fdlimit: int = 0
    flags: int = 0            # PPM_CL_* of the thread
    uid: int = 0
    gid: int = 0
    loginuid: int = 0xFFFFFFFF
    vtid: int = 0
    vpid: int = 0
    env: list[str] = field(default_factory=list)
    cgroups: list[tuple[str, str]] = field(default_factory=list)   # (subsystems, path)
    root: str = "/"
    tty: int = 0
    cap_inheritable: int = 0
    cap_permitted: int = 0
    cap_effective: int = 0
    exe_writable: bool = False
    exe_upper_layer: bool = False
    exe_lower_layer: bool = False
    exe_from_memfd: bool = False
    exe_ino: int = 0
    exe_ino_ctime: int = 0
    exe_ino_mtime: int = 0
    pidns_init_start_ts: int = 0
    start_ts: int = 0         # ns since epoch, 0 when unknown
    vmsize_kb: int = 0
    vmrss_kb: int = 0
    vmswap_kb: int = 0
    pfmajor: int = 0
    pfminor: int = 0
    fds: dict[int, FdInfo] = field(default_factory=dict)


@dataclass
class UserInfo:
    uid: int
    gid: int
    name: str
    homedir: str = ""
    shell: str = ""


@dataclass
class GroupInfo:
    gid: int
    name: str


@dataclass
class InterfaceInfo:
    name: str
    family: int               # 2 = IPv4, 10 = IPv6
    addr: bytes
    netmask: bytes
    bcast: bytes = b""
    linkspeed: int = 0


@dataclass
class MachineInfo:
    num_cpus: int = 0
    memory_size_bytes: int = 0
    max_pid: int = 0
    hostname: str = ""
    boot_ts_epoch: int = 0
    flags: int = 0


@dataclass
class InitialState:
    machine: MachineInfo = field(default_factory=MachineInfo)
    threads: dict[int, ThreadInfo] = field(default_factory=dict)
    users: dict[int, UserInfo] = field(default_factory=dict)
    groups: dict[int, GroupInfo] = field(default_factory=dict)
    interfaces: list[InterfaceInfo] = field(default_factory=list)
