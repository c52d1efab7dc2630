# SPDX-License-Identifier: Apache-2.0
"""File descriptors of the state engine: one Fd per open descriptor, kept in a process's fd table.

Sockets keep their endpoints the way libs does: ``sip/sport`` is the client side and
``dip/dport`` the server side of a connection, and ``role`` says which side this process is
(ROLE_CLIENT after connect/sendto, ROLE_SERVER after accept/bind/recvfrom). The name of an IP
socket is ``client->server`` (``10.0.0.1:40000->10.0.0.2:80``); a listening socket's is
``ip:port``; a unix socket's is ``<source>-><dest> <path>`` with kernel pointers in hex.
"""

from __future__ import annotations

import ipaddress

from ..initial_state import (FD_BPF, FD_DIRECTORY, FD_EVENT, FD_EVENTPOLL, FD_FIFO, FD_FILE, FD_FILE_V2,
                             FD_INOTIFY, FD_IOURING, FD_IPV4_SERVSOCK, FD_IPV4_SOCK, FD_IPV6_SERVSOCK,
                             FD_IPV6_SOCK, FD_MEMFD, FD_NETLINK, FD_PIDFD, FD_SIGNALFD, FD_TIMERFD,
                             FD_UNINITIALIZED, FD_UNIX_SOCK, FD_UNSUPPORTED, FD_USERFAULTFD, FdInfo)

__all__ = ["Fd", "TYPECHARS", "TYPENAMES", "ROLE_CLIENT", "ROLE_SERVER", "L4_NAMES", "fd_from_info",
           "PPM_O_CLOEXEC", "PPM_O_F_CREATED"]

PPM_O_RDONLY, PPM_O_WRONLY, PPM_O_CREAT, PPM_O_DIRECTORY = 1, 2, 4, 1 << 10
PPM_O_CLOEXEC, PPM_O_TMPFILE, PPM_O_F_CREATED = 1 << 12, 1 << 13, 1 << 14

ROLE_NONE, ROLE_CLIENT, ROLE_SERVER = 0, 1, 2

# scap_l4_proto
L4_UNKNOWN, L4_NA, L4_TCP, L4_UDP, L4_ICMP, L4_RAW = 0, 1, 2, 3, 4, 5
L4_NAMES = {L4_TCP: "tcp", L4_UDP: "udp", L4_ICMP: "icmp", L4_RAW: "raw"}

TYPECHARS = {
    FD_FILE: "f", FD_FILE_V2: "f", FD_DIRECTORY: "d", FD_IPV4_SOCK: "4", FD_IPV6_SOCK: "6",
    FD_IPV4_SERVSOCK: "4", FD_IPV6_SERVSOCK: "6", FD_FIFO: "p", FD_UNIX_SOCK: "u", FD_EVENT: "e",
    FD_UNSUPPORTED: "o", FD_SIGNALFD: "s", FD_EVENTPOLL: "l", FD_INOTIFY: "i", FD_TIMERFD: "t",
    FD_NETLINK: "n", FD_BPF: "b", FD_USERFAULTFD: "u", FD_IOURING: "r", FD_MEMFD: "m", FD_PIDFD: "P",
    FD_UNINITIALIZED: "o",
}
TYPENAMES = {
    FD_FILE: "file", FD_FILE_V2: "file", FD_DIRECTORY: "directory", FD_IPV4_SOCK: "ipv4",
    FD_IPV6_SOCK: "ipv6", FD_IPV4_SERVSOCK: "ipv4", FD_IPV6_SERVSOCK: "ipv6", FD_FIFO: "pipe",
    FD_UNIX_SOCK: "unix", FD_EVENT: "event", FD_UNSUPPORTED: "unknown", FD_SIGNALFD: "signalfd",
    FD_EVENTPOLL: "eventpoll", FD_INOTIFY: "inotify", FD_TIMERFD: "timerfd", FD_NETLINK: "netlink",
    FD_BPF: "bpf", FD_USERFAULTFD: "userfaultfd", FD_IOURING: "io_uring", FD_MEMFD: "memfd",
    FD_PIDFD: "pidfd", FD_UNINITIALIZED: "unknown",
}
IP_TYPES = frozenset((FD_IPV4_SOCK, FD_IPV6_SOCK, FD_IPV4_SERVSOCK, FD_IPV6_SERVSOCK))
SOCK_TYPES = IP_TYPES | {FD_UNIX_SOCK, FD_NETLINK}
FILE_TYPES = frozenset((FD_FILE, FD_FILE_V2, FD_DIRECTORY))


def _ip_str(ip) -> str:
    return "" if ip is None else str(ip)


class Fd:
    """One open file descriptor. ``name`` is Falco's fd.name; ``nameraw`` the path as passed."""

    __slots__ = ("fd", "type", "name", "nameraw", "flags", "dev", "ino", "sip", "sport", "dip", "dport",
                 "l4proto", "role", "connected", "unix_source", "unix_dest", "upper_layer", "lower_layer",
                 "pid")

    def __init__(self, fd: int, ftype: int, name: str = "", flags: int = 0):
        self.fd = fd
        self.type = ftype
        self.name = name
        self.nameraw = name
        self.flags = flags
        self.dev = 0
        self.ino = 0
        self.sip = None        # client address (ipaddress object) for IP sockets; bind address for servers
        self.sport = 0
        self.dip = None        # server address
        self.dport = 0
        self.l4proto = 0
        self.role = ROLE_NONE
        self.connected = False
        self.unix_source = 0
        self.unix_dest = 0
        self.upper_layer = False
        self.lower_layer = False
        self.pid = 0           # owner process (fd.uid)

    def copy(self, fd: int) -> "Fd":
        """The same open file under another number (dup, fcntl F_DUPFD, fd passing)."""
        new = Fd.__new__(Fd)
        for slot in Fd.__slots__:
            setattr(new, slot, getattr(self, slot))
        new.fd = fd
        return new

    @property
    def typechar(self) -> str:
        return TYPECHARS.get(self.type, "o")

    @property
    def typename(self) -> str:
        return TYPENAMES.get(self.type, "unknown")

    @property
    def is_ip(self) -> bool:
        return self.type in IP_TYPES

    @property
    def is_server_socket(self) -> bool:
        return self.type == FD_IPV4_SERVSOCK or self.type == FD_IPV6_SERVSOCK

    # -- socket state
    def set_tuple(self, sip, sport: int, dip, dport: int, role: int, l4proto: int | None = None) -> bool:
        """Sets the client/server endpoints of an IP socket; True if the name changed."""
        if isinstance(sip, ipaddress.IPv6Address) or isinstance(dip, ipaddress.IPv6Address):
            self.type = FD_IPV6_SOCK
        else:
            self.type = FD_IPV4_SOCK
        self.sip, self.sport, self.dip, self.dport = sip, sport, dip, dport
        self.role = role
        if l4proto:
            self.l4proto = l4proto
        old = self.name
        self.name = f"{_ip_str(sip)}:{sport}->{_ip_str(dip)}:{dport}"
        return self.name != old

    def set_server(self, ip, port: int) -> None:
        """A bound (listening) IP socket."""
        self.type = FD_IPV6_SERVSOCK if isinstance(ip, ipaddress.IPv6Address) else FD_IPV4_SERVSOCK
        self.sip = ip
        self.sport = port
        self.dip = None
        self.dport = 0
        self.role = ROLE_SERVER
        self.name = f"{_ip_str(ip)}:{port}"

    def set_unix(self, source: int, dest: int, path: str) -> bool:
        self.type = FD_UNIX_SOCK
        self.unix_source, self.unix_dest = source, dest
        old = self.name
        self.name = f"{source:x}->{dest:x} {path}" if (source or dest) else path
        return self.name != old

    # -- endpoint views (client/server -> local/remote by role)
    @property
    def local(self):
        """(ip, port) of this end, or (None, 0)."""
        if self.type in (FD_IPV4_SERVSOCK, FD_IPV6_SERVSOCK):
            return self.sip, self.sport
        if self.role == ROLE_SERVER:
            return self.dip, self.dport
        if self.role == ROLE_CLIENT:
            return self.sip, self.sport
        return None, 0

    @property
    def remote(self):
        if self.type in (FD_IPV4_SERVSOCK, FD_IPV6_SERVSOCK):
            return None, 0
        if self.role == ROLE_SERVER:
            return self.sip, self.sport
        if self.role == ROLE_CLIENT:
            return self.dip, self.dport
        return None, 0

    def __repr__(self) -> str:
        return f"<Fd {self.fd} {self.typechar} {self.name!r}>"


def _addr(raw: bytes | None):
    if not raw:
        return None
    try:
        ip = ipaddress.ip_address(bytes(raw))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def fd_from_info(info: FdInfo, pid: int = 0) -> Fd:
    """An Fd from an initial-state FdInfo (the /proc scan or a capture's fd list)."""
    f = Fd(info.fd, info.type, info.name, info.open_flags)
    f.ino = info.ino
    f.dev = info.dev
    f.pid = pid
    t = info.type
    if t == FD_FILE_V2 or t == FD_FILE:
        f.type = FD_DIRECTORY if info.open_flags & PPM_O_DIRECTORY else FD_FILE_V2
    elif t in (FD_IPV4_SOCK, FD_IPV6_SOCK):
        f.l4proto = info.l4proto
        f.set_tuple(_addr(info.sip), info.sport, _addr(info.dip), info.dport, ROLE_CLIENT)
        f.connected = True
    elif t in (FD_IPV4_SERVSOCK, FD_IPV6_SERVSOCK):
        f.l4proto = info.l4proto
        f.set_server(_addr(info.sip), info.sport)
    elif t == FD_UNIX_SOCK:
        f.set_unix(info.unix_source, info.unix_dest, info.name)
    return f
