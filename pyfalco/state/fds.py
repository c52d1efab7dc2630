# SPDX-License-Identifier: Apache-2.0
"""File descriptors of the state engine: one Fd per open descriptor, kept in a process's fd table.

Sockets keep their endpoints the way libs does: ``sip/sport`` is the client side and
``dip/dport`` the server side of a connection, and ``role`` says which side this process is
(client after connect, server after accept/bind; guessed from the ports this process has bound
or uses for a datagram socket seen first in a send/receive; for sockets of an initial fd table,
server when the local port is a listening port of the machine). The name of an IP socket is
``client->server`` (``10.0.0.1:40000->10.0.0.2:80``); a bound socket's is ``ip:port``; a unix
socket's is ``<source>-><dest> <path>`` with kernel pointers in hex (just the path for one from an
initial table, empty for a socketpair).
"""

from __future__ import annotations

import ipaddress

from ..initial_state import (FD_BPF, FD_DIRECTORY, FD_EVENT, FD_EVENTPOLL, FD_FIFO, FD_FILE, FD_FILE_V2,
                             FD_INOTIFY, FD_IOURING, FD_IPV4_SERVSOCK, FD_IPV4_SOCK, FD_IPV6_SERVSOCK,
                             FD_IPV6_SOCK, FD_MEMFD, FD_NETLINK, FD_PIDFD, FD_SIGNALFD, FD_TIMERFD,
                             FD_UNINITIALIZED, FD_UNIX_SOCK, FD_UNSUPPORTED, FD_USERFAULTFD, FdInfo)

__all__ = ["Fd", "TYPECHARS", "TYPENAMES", "ROLE_NONE", "ROLE_CLIENT", "ROLE_SERVER", "L4_NAMES", "fd_from_info",
           "Interfaces", "server_ports", "orient_socket", "orient_initial_sockets", "PPM_O_CLOEXEC",
           "PPM_O_F_CREATED"]

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


def _ip_str(ip, ftype: int = 0) -> str:
    if ip is None:
        return "::" if ftype in (FD_IPV6_SOCK, FD_IPV6_SERVSOCK) else "0.0.0.0"
    return str(ip)


def _unset(ip) -> bool:
    """An address libs holds as zero (none yet, or the unspecified address)."""
    return ip is None or ip.packed.count(0) == len(ip.packed)


_new = object.__new__


class Fd:
    """One open file descriptor. ``name`` is Falco's fd.name; ``nameraw`` the path as passed."""

    __slots__ = ("fd", "type", "name", "nameraw", "flags", "dev", "ino", "sip", "sport", "dip", "dport",
                 "l4proto", "role", "connected", "unix_source", "unix_dest", "upper_layer", "lower_layer",
                 "pid", "from_proc", "redirected")

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
        self.from_proc = False  # an IP socket from an initial table whose roles are not decided yet
        self.redirected = False  # a connect replaced a destination the socket already had

    @classmethod
    def made(cls, fd: int, ftype: int, name: str, flags: int, nameraw: str, dev: int, ino: int, pid: int) -> "Fd":
        """``Fd(fd, ftype, name, flags)`` with nameraw, dev, ino and pid set, without the call
        of ``__init__`` (a class call costs as much as the stores here: opens make one each)."""
        f = _new(cls)
        f.fd = fd
        f.type = ftype
        f.name = name
        f.nameraw = nameraw
        f.flags = flags
        f.dev = dev
        f.ino = ino
        f.sip = None
        f.sport = 0
        f.dip = None
        f.dport = 0
        f.l4proto = 0
        f.role = ROLE_NONE
        f.connected = False
        f.unix_source = 0
        f.unix_dest = 0
        f.upper_layer = False
        f.lower_layer = False
        f.pid = pid
        f.from_proc = False
        f.redirected = False
        return f

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
    def tuple_name(self) -> str:
        """Falco's name of an IP socket: ``client->server`` (``sip:sport->dip:dport``)."""
        return f"{_ip_str(self.sip, self.type)}:{self.sport}->{_ip_str(self.dip, self.type)}:{self.dport}"

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
        self.name = self.tuple_name()
        return self.name != old

    def update_addresses(self, sip, sport: int, dip, dport: int, overwrite_dest: bool = False) -> bool:
        """libs' address update of a socket from an event's tuple: nothing changes when the tuple is
        this socket's, either way round; the source is always taken, the destination only where
        unset unless ``overwrite_dest`` (connect). True if something changed."""
        if self.type in (FD_IPV4_SOCK, FD_IPV6_SOCK):
            if ((sip == self.sip and sport == self.sport and dip == self.dip and dport == self.dport)
                    or (dip == self.sip and dport == self.sport and sip == self.dip and sport == self.dport)):
                return False
        changed = False
        if self.sip != sip:
            self.sip = sip
            changed = True
        if self.sport != sport:
            self.sport = sport
            changed = True
        if _unset(self.dip) or (overwrite_dest and self.dip != dip):
            if self.dip != dip:
                changed = True
            self.dip = dip
        if not self.dport or (overwrite_dest and self.dport != dport):
            if self.dport != dport:
                changed = True
            self.dport = dport
        return changed

    def swap(self) -> None:
        """Exchanges the two ends (the tuple was seen from the other side)."""
        self.sip, self.sport, self.dip, self.dport = self.dip, self.dport, self.sip, self.sport

    def set_server(self, ip, port: int) -> None:
        """A bound (listening) IP socket."""
        self.type = FD_IPV6_SERVSOCK if isinstance(ip, ipaddress.IPv6Address) else FD_IPV4_SERVSOCK
        self.sip = ip
        self.sport = port
        self.dip = None
        self.dport = 0
        self.role = ROLE_SERVER
        self.name = f"{_ip_str(ip, self.type)}:{port}"

    def set_unix(self, source: int, dest: int, path: str) -> bool:
        """A unix socket named from an event's tuple: ``<source>-><dest> <path>`` (kernel pointers in hex)."""
        self.type = FD_UNIX_SOCK
        self.unix_source, self.unix_dest = source, dest
        old = self.name
        self.name = f"{source:x}->{dest:x} {path}"
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
    """An Fd from an initial-state FdInfo (the /proc scan or a capture's fd list), as libs adds it:
    a connected IP socket is ``local->remote`` with no role until :func:`orient_initial_sockets`
    (or :func:`orient_socket`) decides which end is the server; a unix socket is named by its path
    alone (client when it has none, server otherwise)."""
    f = Fd(info.fd, info.type, info.name, info.open_flags)
    f.ino = info.ino
    f.dev = info.dev
    f.pid = pid
    t = info.type
    if t == FD_FILE_V2 or t == FD_FILE:
        f.type = FD_DIRECTORY if info.open_flags & PPM_O_DIRECTORY else FD_FILE_V2
    elif t in (FD_IPV4_SOCK, FD_IPV6_SOCK):
        f.l4proto = info.l4proto
        f.set_tuple(_addr(info.sip), info.sport, _addr(info.dip), info.dport, ROLE_NONE)
        f.connected = info.l4proto == L4_TCP
        f.from_proc = True
    elif t in (FD_IPV4_SERVSOCK, FD_IPV6_SERVSOCK):
        f.l4proto = info.l4proto
        f.set_server(_addr(info.sip), info.sport)
        f.role = ROLE_NONE     # libs gives a listening socket from /proc no role (fd.sip is <NA>)
    elif t == FD_UNIX_SOCK:
        f.unix_source, f.unix_dest = info.unix_source, info.unix_dest
        f.name = f.nameraw = info.name or ""
        f.role = ROLE_SERVER if f.name else ROLE_CLIENT
    return f


class Interfaces:
    """The machine's interface addresses, for completing a socket tuple that lacks one end (libs'
    network-interface inference: the exact address, else one in the same subnet, else the first
    non-loopback address)."""

    def __init__(self, infos=()):
        self.v4: list[tuple[int, int]] = []      # (address, netmask) as integers
        self.v6: list[bytes] = []
        for i in infos:
            if i.family == 2 and len(i.addr) >= 4:
                self.v4.append((int.from_bytes(bytes(i.addr[:4]), "big"),
                                int.from_bytes(bytes(i.netmask[:4]), "big") if len(i.netmask) >= 4 else 0))
            elif i.family == 10 and len(i.addr) >= 16:
                self.v6.append(bytes(i.addr[:16]))

    def infer(self, dest):
        """The local address used to reach ``dest`` (an ipaddress object), or None."""
        if isinstance(dest, ipaddress.IPv6Address):
            d = dest.packed
            for a in self.v6:
                if a == d:
                    return ipaddress.IPv6Address(a)
            for a in self.v6:
                if a[:8] == d[:8]:
                    return ipaddress.IPv6Address(a)
            for a in self.v6:
                if a != _LOOPBACK6:
                    return ipaddress.IPv6Address(a)
            return None
        d = int(dest) if dest is not None else 0
        for a, _ in self.v4:
            if a == d:
                return ipaddress.IPv4Address(a)
        for a, m in self.v4:
            if a & m == d & m:
                return ipaddress.IPv4Address(a)
        for a, _ in self.v4:
            if a != 0x7F000001:
                return ipaddress.IPv4Address(a)
        return None

    def is_local(self, ip) -> bool:
        """Whether an address is one of this machine's (libs: an interface has it; IPv6: in the
        /64 of an interface)."""
        if ip is None:
            return False
        if isinstance(ip, ipaddress.IPv6Address):
            p = ip.packed
            return any(a[:8] == p[:8] for a in self.v6)
        return any(a == int(ip) for a, _ in self.v4)

    def complete(self, f: Fd) -> None:
        """Fills the missing end of an IP socket's tuple from the interfaces (libs' update_fd)."""
        if f.type not in (FD_IPV4_SOCK, FD_IPV6_SOCK):
            return
        s_unset, d_unset = _unset(f.sip), _unset(f.dip)
        if not s_unset and not d_unset:
            return
        if s_unset:
            new = self.infer(f.dip)
            if new is None:
                return
            if new == f.dip and f.sport == f.dport:
                return
            f.sip = new
        else:
            new = self.infer(f.sip)
            if new is None:
                return
            if new == f.sip and f.sport == f.dport:
                return
            f.dip = new


_LOOPBACK6 = ipaddress.IPv6Address("::1").packed


def server_ports(fd_tables) -> set[int]:
    """The ports of the listening IP sockets in some fd tables (dicts fd -> Fd)."""
    ports: set[int] = set()
    for fds in fd_tables:
        for f in fds.values():
            if f.type == FD_IPV4_SERVSOCK or f.type == FD_IPV6_SERVSOCK:
                ports.add(f.sport)
    return ports


def orient_socket(f: Fd, ports: set[int], interfaces: Interfaces | None = None) -> None:
    """Decides the roles of a connected socket read from /proc or a capture's fd table as libs does:
    the missing end is filled from the interfaces; an IPv4 socket whose local port is a listening
    port of the machine is the server end (the name becomes ``client->server``), any other IPv4
    socket a client. IPv6 sockets keep no role, as in libs."""
    if not getattr(f, "from_proc", False) or f.type not in (FD_IPV4_SOCK, FD_IPV6_SOCK):
        return
    f.from_proc = False
    if interfaces is not None and f.type == FD_IPV4_SOCK:
        interfaces.complete(f)
    if f.type == FD_IPV4_SOCK:
        if f.sport in ports:
            f.swap()
            f.role = ROLE_SERVER
        else:
            f.role = ROLE_CLIENT
    f.name = f.nameraw = f.tuple_name()


def orient_initial_sockets(fd_tables, interfaces: Interfaces | None = None) -> set[int]:
    """Applies :func:`orient_socket` to every socket of the initial fd tables; returns the
    listening ports it used."""
    tables = list(fd_tables)
    ports = server_ports(tables)
    for fds in tables:
        for f in fds.values():
            orient_socket(f, ports, interfaces)
    return ports
