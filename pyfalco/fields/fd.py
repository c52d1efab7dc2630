# SPDX-License-Identifier: Apache-2.0
"""fd.* fields (libsinsp's sinsp_filter_check_fd): the file descriptor an event is about, its
name, type and, for sockets, both ends as libs orients them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..initial_state import FD_DIRECTORY, FD_FILE, FD_FILE_V2, FD_UNIX_SOCK
from ..state.fds import L4_NAMES, ROLE_NONE, TYPECHARS, TYPENAMES
from .common import EVENTS
from .common import SAFE_ERRORS as _SAFE_ERRORS
from .container import container_id
from .stateview import FieldEvent

__all__ = ["EXTRACTORS", "INDEXED", "KEYED", "UNWRAPPED", "fd_name"]

# events that carry an fd (libs' EF_USES_FD), and libs' fd.typechar for one whose fd is unknown
_USES_FD = frozenset(e.code for e in EVENTS if e.name not in ("mmap", "mmap2")
                     and {"USES_FD", "CREATES_FD", "DESTROYS_FD"} & set(e.flags))
_CREATES_FD = frozenset(e.code for e in EVENTS if "CREATES_FD" in e.flags)
_NULL_TYPECHAR = {name: ch for names, ch in (
    (("open", "openat", "openat2", "creat"), "f"), (("socket", "accept", "accept4"), "4"),
    (("pipe", "pipe2"), "p"), (("eventfd", "eventfd2"), "e"), (("signalfd", "signalfd4"), "s"),
    (("timerfd_create",), "t"), (("inotify_init", "inotify_init1"), "i")) for name in names}


def _uses_fd(ie: FieldEvent) -> bool:
    return ie.thread is not None and ie.evt.type in _USES_FD


#: connect's exit events (the codes whose name is "connect" and direction "<")
_CONNECT_EXITS = frozenset(e.code for e in EVENTS if e.name == "connect" and e.code & 1)


def _connect_failed(ie: FieldEvent) -> bool:
    evt = ie.evt
    # by code: fd.name runs this for every event a rule reads it on (evt.name is a table lookup)
    if evt.type not in _CONNECT_EXITS:
        return False
    res = evt.get("res")
    return isinstance(res, int) and res < 0


def fd_name(ie: FieldEvent):
    """libs: the fd's name; an unknown fd of an event that uses one gives "" (the address it tried,
    for a failed connect or accept)."""
    f = ie.fd
    if f is not None and not _connect_failed(ie):
        return f.name
    if not _uses_fd(ie):
        return None
    if ie.evt.name in ("connect", "accept", "accept4") and ie.evt.type & 1:
        tup = ie.evt.get("tuple")
        return str(tup) if tup is not None else ""
    return ""


def fd_num(ie: FieldEvent):
    if ie.fd is not None or _uses_fd(ie):
        return ie.fdnum
    return None


def _real(ie: FieldEvent):
    """The event's fd, or None for none or the stand-in of a failed open (libs has no fd there)."""
    f = ie.fd
    return f if f is not None and f.fd >= 0 else None


def fd_type(ie: FieldEvent):
    f = _real(ie)
    return TYPENAMES.get(f.type, "unknown") if f is not None else None


def fd_typechar(ie: FieldEvent):
    f = ie.fd
    if f is not None:
        return TYPECHARS.get(f.type, "o")
    if not _uses_fd(ie):
        return None
    return _NULL_TYPECHAR.get(ie.evt.name, "o")


def fd_nameraw(ie: FieldEvent):
    try:
        f = ie.fd
        if f is None:
            return None
        return f.nameraw if f.nameraw else f.name
    except _SAFE_ERRORS:
        return None


def _dir_of_name(name: str) -> str:
    """libs' directory of a name with no fd behind it (extract_from_null_fd)."""
    pos = name.rfind("/")
    if pos > 0:
        return name[:pos] if pos < len(name) - 1 else name
    return "/"


def fd_directory(ie: FieldEvent):
    try:
        f = ie.fd
        if f is None:
            # libs: the name the event tried (or "") cut at its last slash; "/" without one
            return _dir_of_name(fd_name(ie)) if _uses_fd(ie) else None
        if not f.name:
            return None
        if f.type == FD_DIRECTORY:
            return f.name
        if f.type in (FD_FILE, FD_FILE_V2):
            d = f.name.rpartition("/")[0]
            return d or "/"
        return None
    except _SAFE_ERRORS:
        return None


def fd_filename(ie: FieldEvent):
    try:
        f = _real(ie)
        if f is None or f.type not in (FD_FILE, FD_FILE_V2) or not f.name:
            return None
        return f.name.rpartition("/")[2]
    except _SAFE_ERRORS:
        return None


def _ipfd(ie: FieldEvent):
    f = ie.fd
    return f if f is not None and f.is_ip else None


def _client(ie: FieldEvent):
    """(ip, port) of the client end; libs gives none for a listening socket or a socket whose
    role is not known yet."""
    f = _ipfd(ie)
    if f is None or f.is_server_socket or f.role == ROLE_NONE or f.sip is None:
        return None, None
    return f.sip, f.sport


def _server(ie: FieldEvent):
    f = _ipfd(ie)
    if f is None:
        return None, None
    if f.is_server_socket:
        # libs: fd.sip needs a role (a listening socket from /proc has none), fd.sport does not
        return (f.sip if f.role != ROLE_NONE else None), f.sport
    if f.role == ROLE_NONE:
        return None, None
    return (f.dip, f.dport) if f.dip is not None else (None, None)


def fd_cip(ie: FieldEvent):
    return _client(ie)[0]


def fd_sip(ie: FieldEvent):
    return _server(ie)[0]


def fd_cport(ie: FieldEvent):
    return _client(ie)[1]


def fd_sport(ie: FieldEvent):
    return _server(ie)[1]


def _both(a, b):
    """Falco's fd.ip/fd.port/...: the values of both ends (client first), as a tuple; a rule
    matches when either end does (the fields are list-valued for the rule engine)."""
    if a is None:
        return None if b is None else (b,)
    return (a,) if b is None or b == a else (a, b)


def _raw_ends(ie: FieldEvent):
    """(client, server) endpoints as stored, whatever the role (fd.ip/fd.port look at both)."""
    f = _ipfd(ie)
    if f is None:
        return (None, None), (None, None)
    if f.is_server_socket:
        return (None, None), (f.sip, f.sport)
    return (f.sip, f.sport if f.sip is not None else None), (f.dip, f.dport if f.dip is not None else None)


def fd_ip(ie: FieldEvent):
    if _ipfd(ie) is None:
        return None
    c, s = _raw_ends(ie)
    return _both(c[0], s[0])


def fd_port(ie: FieldEvent):
    if _ipfd(ie) is None:
        return None
    c, s = _raw_ends(ie)
    return _both(c[1], s[1])


def fd_net(ie: FieldEvent):
    ips = fd_ip(ie)
    if ips is None:
        return None
    return tuple(n for n in (ie.inspector.network_of(ip) for ip in ips) if n is not None) or None


def fd_proto(ie: FieldEvent):
    ports = fd_port(ie)
    if ports is None:
        return None
    l4 = ie.fd.l4proto
    names = []
    for p in ports:
        name = ie.inspector.port_name(p, l4)
        if name is not None and name not in names:
            names.append(name)
    return tuple(names) or None


def _local_remote(ie: FieldEvent):
    """((local ip, port), (remote ip, port)) of a connected IP socket as libs decides them: the
    client end is local when its address is one of this machine's, else the server end is."""
    f = _ipfd(ie)
    if f is None or f.is_server_socket or f.role == ROLE_NONE:
        return None
    ifs = getattr(getattr(getattr(ie, "inspector", None), "parser", None), "interfaces", None)
    c, s = (f.sip, f.sport), (f.dip, f.dport)
    if ifs is not None and ifs.is_local(f.sip):
        return c, s
    return s, c


def fd_lip(ie: FieldEvent):
    lr = _local_remote(ie)
    return None if lr is None else lr[0][0]


def fd_rip(ie: FieldEvent):
    lr = _local_remote(ie)
    return None if lr is None else lr[1][0]


def fd_lport(ie: FieldEvent):
    lr = _local_remote(ie)
    return None if lr is None else lr[0][1]


def fd_rport(ie: FieldEvent):
    lr = _local_remote(ie)
    return None if lr is None else lr[1][1]


def _net_of(getter):
    """The interface network an address belongs to (Falco: the /N of a local interface), or /32|/128."""
    def f(ie: FieldEvent):
        ip = getter(ie)
        if ip is None:
            return None
        return ie.inspector.network_of(ip)
    return f


def fd_l4proto(ie: FieldEvent):
    """libs (sinsp_fdinfo::get_l4proto): a connection with no role yet has none ("<NA>") unless raw."""
    f = _real(ie)
    if f is None:
        return None
    if not f.is_ip:
        return "<NA>"
    if not f.is_server_socket and f.role == ROLE_NONE and f.l4proto != 5:
        return "<NA>"
    return L4_NAMES.get(f.l4proto, "<NA>")


def fd_sockfamily(ie: FieldEvent):
    f = ie.fd
    if f is None:
        return None
    if f.is_ip:
        return "ip"
    if f.type == FD_UNIX_SOCK:
        return "unix"
    return None


def fd_is_server(ie: FieldEvent):
    """libs: true for a listening socket, and for a connection whose server end is an address of
    this machine; false for any other fd."""
    f = ie.fd
    if f is None:
        return None
    if f.is_server_socket:
        return True
    if f.is_ip:
        ifs = getattr(getattr(getattr(ie, "inspector", None), "parser", None), "interfaces", None)
        return bool(ifs is not None and ifs.is_local(f.dip))
    return False


def fd_connected(ie: FieldEvent):
    f = _real(ie)
    return None if f is None else bool(f.connected)


def fd_name_changed(ie: FieldEvent):
    """libs: the fd's name differs from the one it had before the event (a new named fd: true)."""
    f = _real(ie)
    if f is None:
        return None
    if ie.evt.type in _CREATES_FD and f.name:
        return True
    return ie.name_changed


def fd_uid(ie: FieldEvent):
    f = ie.fd
    t = ie.thread
    if t is None or (f is None and not _uses_fd(ie)):
        return None
    return f"{t.tid}{ie.fdnum}"      # libs: the thread id, then the fd number (known fd or not)


def fd_types(arg: str | None):
    def f(ie: FieldEvent):
        fds = ie.extra if isinstance(ie.extra, tuple) else ((ie.fd,) if ie.fd is not None else ())
        vals = tuple(dict.fromkeys(TYPENAMES.get(x.type, "unknown") for x in fds if x is not None))
        if arg is not None:
            i = int(arg)
            return (vals[i],) if i < len(vals) else None
        return vals
    return f


def _proto(getter_port):
    """fd.cproto/sproto/lproto/rproto: libs' port_to_string with name resolution off (Falco's
    default): the port number as text."""
    def f(ie: FieldEvent):
        port = getter_port(ie)
        if port is None:
            return None
        return str(port)
    return f


def fd_sproto(ie: FieldEvent):
    """libs (TYPE_SERVERPROTO): the server port as text for a connection; "" for a listening
    socket (its port is fd.sport, but only connections get a port string)."""
    port = fd_sport(ie)
    if port is None:
        return None
    f = _real(ie)
    return "" if f is not None and f.is_server_socket else str(port)


def fd_cproto(ie: FieldEvent):
    """libs: the client port as text for a connection with a role, "" for any other fd with a role."""
    f = _real(ie)
    if f is None or f.role == ROLE_NONE:
        return None
    if f.is_ip and not f.is_server_socket:
        return str(f.sport)
    return ""


def _ip_name(getter):
    def f(ie: FieldEvent):
        ip = getter(ie)
        return None if ip is None else ie.inspector.ip_name(ip)
    return f


EXTRACTORS: dict[str, Callable] = {
    "fd.num": fd_num, "fd.type": fd_type, "fd.typechar": fd_typechar, "fd.name": fd_name,
    "fd.directory": fd_directory, "fd.filename": fd_filename, "fd.nameraw": fd_nameraw,
    "fd.ip": fd_ip, "fd.cip": fd_cip, "fd.sip": fd_sip, "fd.lip": fd_lip, "fd.rip": fd_rip,
    "fd.port": fd_port, "fd.cport": fd_cport, "fd.sport": fd_sport, "fd.lport": fd_lport, "fd.rport": fd_rport,
    "fd.l4proto": fd_l4proto, "fd.sockfamily": fd_sockfamily, "fd.is_server": fd_is_server, "fd.uid": fd_uid,
    "fd.containername": lambda ie: None if ie.fd is None else f"{container_id(ie)}:{ie.fd.name}",
    "fd.containerdirectory": lambda ie: (lambda d: None if d is None else f"{container_id(ie)}:{d}")(
        fd_directory(ie)),
    "fd.net": fd_net, "fd.cnet": _net_of(fd_cip), "fd.snet": _net_of(fd_sip),
    "fd.lnet": _net_of(fd_lip), "fd.rnet": _net_of(fd_rip),
    "fd.proto": fd_proto, "fd.sproto": fd_sproto,
    "fd.lproto": _proto(fd_lport), "fd.rproto": _proto(fd_rport),
    "fd.cproto": fd_cproto,
    "fd.connected": fd_connected, "fd.name_changed": fd_name_changed,
    "fd.cip.name": _ip_name(fd_cip), "fd.sip.name": _ip_name(fd_sip), "fd.lip.name": _ip_name(fd_lip),
    "fd.rip.name": _ip_name(fd_rip),
    "fd.dev": lambda ie: ie.fd.dev if ie.fd is not None else None,
    "fd.dev.major": lambda ie: (ie.fd.dev >> 20) if ie.fd is not None else None,
    "fd.dev.minor": lambda ie: (ie.fd.dev & 0xFFFFF) if ie.fd is not None else None,
    "fd.ino": lambda ie: ie.fd.ino if ie.fd is not None else None,
    "fd.is_upper_layer": lambda ie: None if ie.fd is None else bool(ie.fd.upper_layer),
    "fd.is_lower_layer": lambda ie: None if ie.fd is None else bool(ie.fd.lower_layer),
}

INDEXED: dict[str, Callable] = {}

KEYED: dict[str, Callable[[Any], Callable]] = {
    "fd.types": fd_types,
}

#: returned as they are by make_accessor (they cannot raise, or catch what safe() would)
UNWRAPPED = frozenset((fd_name, fd_typechar, fd_num, fd_type, fd_nameraw, fd_directory, fd_filename))
