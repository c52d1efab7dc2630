# SPDX-License-Identifier: Apache-2.0
"""Field extractors over the state engine: ``accessor(name, arg)`` -> callable(InspectedEvent) -> value.

Values are typed as the rule engine expects (provider.py of pyfalco.rules): int for numbers,
bool, str, ``ipaddress`` objects for addresses and networks, tuples for "any ancestor" forms; None
is Falco's missing value (``<NA>``). An extractor never raises: a value that cannot be computed
is None.

The hot fields (evt.type, proc.name, fd.name, container.id) are plain functions that read one
attribute; values that cost a join or a walk are cached on the thread (until exec) or on the event.
"""

from __future__ import annotations

import ipaddress
import time as _time
from collections.abc import Callable
from typing import Any

from .. import _schema
from ..events import SockAddr, SockTuple
from ..initial_state import FD_DIRECTORY, FD_FILE, FD_FILE_V2, FD_UNIX_SOCK
from ..state.fds import L4_NAMES, ROLE_NONE, ROLE_SERVER, TYPECHARS, TYPENAMES
from . import render

__all__ = ["make_accessor", "EXTRACTORS", "INDEXED", "KEYED", "NotExtractable"]

EVENTS = _schema.EVENTS
PT = _schema.PT
_EVENT_NAMES = tuple(e.name for e in EVENTS)
_NEVENTS = len(EVENTS)
LOGIN_SHELLS = frozenset(("sh", "bash", "zsh", "ksh", "csh", "tcsh", "dash", "ash", "fish", "mksh", "busybox"))
_OPEN_CODES = frozenset((3, 307, 327, 337, 59))   # open, openat, openat2, open_by_handle_at, creat
_PPM_O_RDONLY, _PPM_O_WRONLY, _PPM_O_CREAT, _PPM_O_F_CREATED = 1, 2, 4, 1 << 14
_EXIT_RES_NAMES = ("res", "fd")


class NotExtractable(KeyError):
    """A field name this provider cannot extract."""


_SAFE_ERRORS = (AttributeError, TypeError, ValueError, KeyError, IndexError, OverflowError, OSError)


def _safe(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def safe(ie):
        try:
            return fn(ie)
        except _SAFE_ERRORS:
            return None
    safe.__name__ = getattr(fn, "__name__", "extract")
    safe.__wrapped__ = fn
    return safe


# ---- small helpers ----------------------------------------------------------------------------

def _threads(ie):
    return ie.inspector.threads


def _main(ie):
    t = ie.thread
    if t is None:
        return None
    if t.tid == t.pid:
        return t
    m = ie.inspector.threads.threads.get(t.pid)
    return m if m is not None else t


def _parent(ie):
    t = ie.thread
    if t is None:
        return None
    return ie.inspector.threads.parent(t)


def _nz(s):
    return s if s else None


def _res(ie):
    """The return value of an exit event (its ``res`` parameter, or the fd of fd-creating calls)."""
    evt = ie.evt
    code = evt.type
    if code % 2 == 0 or code >= _NEVENTS:
        return None
    params = EVENTS[code].params
    if not params or params[0].name not in _EXIT_RES_NAMES:
        return None
    v = evt.param(0)
    return v if isinstance(v, int) else None


# ---- evt.* ------------------------------------------------------------------------------------

def evt_type(ie):
    code = ie.evt.type
    return _EVENT_NAMES[code] if code < _NEVENTS else None


def evt_num(ie):
    return ie.evt.num


def _fmt_time(ts: int, date: bool, ns: bool, utc: bool = False) -> str:
    secs, frac = divmod(ts, 1_000_000_000)
    tm = _time.gmtime(secs) if utc else _time.localtime(secs)
    out = _time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", tm)
    return f"{out}.{frac:09d}" if ns else out


def evt_time(ie):
    return _fmt_time(ie.evt.ts, False, True)


def evt_time_s(ie):
    return _fmt_time(ie.evt.ts, False, False)


def evt_time_iso8601(ie):
    secs, frac = divmod(ie.evt.ts, 1_000_000_000)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs)) + f".{frac:09d}Z"


def evt_datetime(ie):
    return _fmt_time(ie.evt.ts, True, True)


def evt_datetime_s(ie):
    return _fmt_time(ie.evt.ts, True, False)


def _category(ie):
    code = ie.evt.type
    if code >= _NEVENTS:
        return None
    cats = EVENTS[code].category - {"SYSCALL", "TRACEPOINT", "PLUGIN", "METAEVENT", "INTERNAL"}
    if not cats:
        return "other"
    return sorted(cats)[0].lower().replace("_", "-")


def evt_res(ie):
    r = _res(ie)
    return None if r is None else render.errno_name(r)


def evt_rawres(ie):
    return _res(ie)


def evt_failed(ie):
    r = _res(ie)
    return None if r is None else r < 0


def _open_flags(ie):
    code = ie.evt.type
    if code not in _OPEN_CODES:
        return None
    if code == 59:
        f = ie.fd
        return f.flags if f is not None else _PPM_O_CREAT | _PPM_O_WRONLY
    return ie.evt.get("flags")


def _open_bit(bit: int):
    """evt.is_open_read/write/create: _open_flags tested for one bit, the _safe wrapper inlined."""
    def is_open(ie):
        try:
            evt = ie.evt
            code = evt.type
            if code not in _OPEN_CODES:
                return None
            if code == 59:
                f = ie.fd
                fl = f.flags if f is not None else _PPM_O_CREAT | _PPM_O_WRONLY
            else:
                fl = evt.get("flags")
            return None if fl is None else bool(fl & bit)
        except _SAFE_ERRORS:
            return None
    return is_open


evt_is_open_read = _open_bit(_PPM_O_RDONLY)
evt_is_open_read.__name__ = "evt_is_open_read"
evt_is_open_write = _open_bit(_PPM_O_WRONLY)
evt_is_open_write.__name__ = "evt_is_open_write"


def evt_is_open_exec(ie):
    fl = _open_flags(ie)
    if fl is None:
        return None
    mode = ie.evt.get("mode") or 0
    return bool(fl & (_PPM_O_CREAT | (1 << 13))) and bool(mode & 0o111)


evt_is_open_create = _open_bit(_PPM_O_F_CREATED)
evt_is_open_create.__name__ = "evt_is_open_create"


def _flag(flag: str):
    def f(ie):
        code = ie.evt.type
        return code < _NEVENTS and flag in EVENTS[code].flags
    return f


def _param_info(ie, arg: str):
    """(index, ParamInfo) of an event parameter by name or number, or (-1, None)."""
    code = ie.evt.type
    if code >= _NEVENTS:
        return -1, None
    params = EVENTS[code].params
    if arg.lstrip("-").isdigit():
        i = int(arg)
        return (i, params[i]) if 0 <= i < len(params) and i < ie.evt.nparams else (-1, None)
    for i, p in enumerate(params):
        if p.name == arg:
            return (i, p) if i < ie.evt.nparams else (-1, None)
    return -1, None


def _fd_text(ie, fd: int) -> str:
    t = ie.thread
    f = t.proc.fds.get(fd) if t is not None else None
    if f is None and ie.fd is not None and ie.fdnum == fd:
        f = ie.fd
    if f is None:
        return str(fd) if fd >= 0 else ("AT_FDCWD" if fd == -100 else str(fd))
    return f"<{TYPECHARS.get(f.type, 'o')}>{f.name}"


def render_param(ie, i: int, p, resolved: bool = True) -> str | None:
    """One parameter as text: ``resolved`` gives evt.arg's form, otherwise evt.args' ``raw(resolved)``."""
    v = ie.evt.param(i)
    if v is None:
        return None
    ptype = p.type
    extra = p.extra
    if ptype in (PT["FD"], PT["FD32"] if "FD32" in PT else -1):
        if not isinstance(v, int):
            return None
        txt = _fd_text(ie, v)
        if resolved:
            return txt if (txt.startswith("<") or txt == "AT_FDCWD") else str(v)
        return f"{v}({txt})" if txt != str(v) else str(v)
    if ptype == PT["ERRNO"]:
        if not isinstance(v, int):
            return None
        if v < 0:
            name = render.errno_name(v)
            return name if resolved else f"{v}({name})"
        return str(v)
    if ptype == PT["PID"]:
        if not isinstance(v, int):
            return None
        t = ie.inspector.threads.threads.get(v)
        if t is not None and t.comm and not resolved:
            return f"{v}({t.comm})"
        return str(v)
    if extra and isinstance(v, int) and ptype == PT.get("MODE", -1):
        # libs: the mode in octal ("%#o"), resolved as the chmod_mode/mknod_mode names
        names = render.render_flags(extra, v)
        raw = f"0{v:o}" if v else "0"
        if resolved:
            return names or raw
        return f"{raw}({names})" if names else raw
    if extra and isinstance(v, int) and ptype in (PT["FLAGS8"], PT["FLAGS16"], PT["FLAGS32"]):
        names = render.render_flags(extra, v)
        if resolved:
            return names or str(v)
        return f"{v}({names})" if names else str(v)
    if extra and isinstance(v, int) and "ENUMFLAGS8" in PT and ptype in (
            PT["ENUMFLAGS8"], PT["ENUMFLAGS16"], PT["ENUMFLAGS32"]):
        name = render.render_enum(extra, v)
        if resolved:
            return name or str(v)
        return f"{v}({name})" if name else str(v)
    if isinstance(v, (SockAddr, SockTuple)):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return render.printable(bytes(v))
    if ptype == PT.get("FSRELPATH", -1) and isinstance(v, str) and resolved and v and not v.startswith("/"):
        return v
    if isinstance(v, int) and p.fmt == "HEX":
        return f"{v:X}" if not resolved else f"{v:X}"
    if isinstance(v, int) and p.fmt == "OCT":
        return f"{v:o}"
    if isinstance(v, tuple) and len(v) == 2 and ptype == PT["DYN"]:
        return str(v[1])
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return str(v)


def evt_args(ie):
    cache = ie.cache
    if cache is not None and "evt.args" in cache:
        return cache["evt.args"]
    code = ie.evt.type
    if code >= _NEVENTS:
        return None
    parts = []
    for i, p in enumerate(EVENTS[code].params[:ie.evt.nparams]):
        txt = render_param(ie, i, p, resolved=False)
        parts.append(f"{p.name}={'' if txt is None else txt}")
    out = " ".join(parts)
    if ie.cache is None:
        ie.cache = {}
    ie.cache["evt.args"] = out
    return out


def make_evt_arg(arg: str):
    def evt_arg(ie):
        i, p = _param_info(ie, arg)
        if p is None:
            return None
        return render_param(ie, i, p, resolved=True)
    return evt_arg


def make_evt_rawarg(arg: str):
    def evt_rawarg(ie):
        i, p = _param_info(ie, arg)
        if p is None:
            return None
        v = ie.evt.param(i)
        if isinstance(v, (SockAddr, SockTuple)):
            return str(v)
        if isinstance(v, tuple) and p.type == PT["DYN"]:
            return v[1] if isinstance(v[1], int) else None
        if isinstance(v, (bytes, bytearray)):
            return bytes(v).decode("utf-8", "surrogateescape")
        return v
    return evt_rawarg


def evt_buffer(ie):
    data = ie.evt.get("data")
    return bytes(data) if isinstance(data, (bytes, bytearray)) else None


def evt_buflen(ie):
    code = ie.evt.type
    if code >= _NEVENTS or not ({"READS_FROM_FD", "WRITES_TO_FD"} & EVENTS[code].flags):
        return None
    r = _res(ie)
    return r if r is not None and r >= 0 else None


def evt_deltatime(ie):
    prev = ie.prev_ts
    return None if prev is None else ie.evt.ts - prev


def _path_of(ie, which: str):
    """(normalized, raw) path of a file syscall's ``name`` / ``source`` / ``target``."""
    cache = ie.cache
    key = "fs.path"
    if cache is not None and key in cache:
        paths = cache[key]
    else:
        paths = ie.inspector.paths_of(ie)
        if ie.cache is None:
            ie.cache = {}
        ie.cache[key] = paths
    return paths.get(which) if paths else None


def _fs(which: str, raw: bool):
    def f(ie):
        v = _path_of(ie, which)
        return None if v is None else v[1 if raw else 0]
    return f


# ---- proc.* / thread.* ----------------------------------------------------------------------

def proc_name(ie):
    t = ie.thread
    return t.comm or None if t is not None else None


def _on(getter: Callable, who: str):
    """A thread-level getter applied to the event thread, its main thread or its parent."""
    if who == "self":
        def f(ie):
            t = ie.thread
            return None if t is None else getter(t, ie)
    elif who == "main":
        def f(ie):
            t = _main(ie)
            return None if t is None else getter(t, ie)
    else:
        def f(ie):
            t = _parent(ie)
            return None if t is None else getter(t, ie)
    return f


def _ancestor_field(getter: Callable, arg: str | None, key: str):
    if arg is None:
        def anyof(ie):
            cache = ie.cache
            ck = "any:" + key
            if cache is not None and ck in cache:
                return cache[ck]
            t = ie.thread
            if t is None:
                return None
            vals = tuple(v for v in (getter(a, ie) for a in ie.inspector.threads.ancestors(t)) if v is not None)
            if ie.cache is None:
                ie.cache = {}
            ie.cache[ck] = vals
            return vals
        return anyof
    n = int(arg)

    def nth(ie):
        t = ie.thread
        if t is None:
            return None
        a = ie.inspector.threads.ancestor(t, n) if n else t
        return None if a is None else getter(a, ie)
    return nth


def _g_comm(t, ie):
    return t.comm or None


def _g_exe(t, ie):
    return t.exe or None


def _g_exepath(t, ie):
    return t.exepath or None


def _g_args(t, ie):
    return t.args_str()


def _g_cmdline(t, ie):
    return t.cmdline() or None


def _g_pid(t, ie):
    return t.pid


def _g_exeline(t, ie):
    a = t.args_str()
    return f"{t.exe} {a}" if a else t.exe


def _g_cwd(t, ie):
    cwd = t.proc.cwd
    if not cwd:
        return None
    return cwd if cwd.endswith("/") else cwd + "/"


def _g_duration(t, ie):
    m = ie.inspector.threads.main_thread(t)
    return ie.evt.ts - m.clone_ts if m.clone_ts else None


def _g_start(t, ie):
    m = ie.inspector.threads.main_thread(t)
    return m.clone_ts or None


def _env_of(t, ie):
    env = t.env
    if not env and ie.inspector.live:
        env = ie.inspector.read_environ(t)
    return env


def make_proc_env(arg: str | None):
    if arg is None:
        def env_all(ie):
            t = _main(ie)
            if t is None:
                return None
            return " ".join(_env_of(t, ie))
        return env_all
    prefix = arg + "="

    def env_one(ie):
        t = _main(ie)
        if t is None:
            return None
        for e in _env_of(t, ie):
            if e.startswith(prefix):
                return e[len(prefix):]
        return None
    return env_one


def proc_loginshellid(ie):
    t = ie.thread
    if t is None:
        return None
    found = None
    m = _main(ie)
    chain = [m] + list(ie.inspector.threads.ancestors(t))
    for a in chain:
        if a.comm in LOGIN_SHELLS:
            found = a.pid
    return found


def _leader(kind: str):
    """Session / process-group leader: the process whose pid is the id, or the eldest ancestor
    sharing it."""
    def leader(ie):
        t = _main(ie)
        if t is None:
            return None
        ident = getattr(t, kind)
        own = t.vpid if kind == "vpgid" else t.pid if kind == "pgid" else t.vpid
        if own == ident or t.pid == ident:
            return t
        best = t
        for a in ie.inspector.threads.ancestors(t):
            if getattr(a, kind) != ident:
                break
            best = a
            if (a.vpid if kind != "pgid" else a.pid) == ident or a.pid == ident:
                break
        return best
    return leader


def _via(leader_fn, getter):
    def f(ie):
        lt = leader_fn(ie)
        return None if lt is None else getter(lt, ie)
    return f


def _exe_flag(bit: int):
    def f(t, ie):
        return bool(t.exe_flags & bit)
    return f


def _ctime_proc_start(t, ie):
    m = ie.inspector.threads.main_thread(t)
    if not t.exe_ino_ctime or not m.clone_ts:
        return None
    return m.clone_ts - t.exe_ino_ctime


def _ctime_pidns_start(t, ie):
    if not t.exe_ino_ctime or not t.pidns_init_start_ts or t.pidns_init_start_ts >= t.exe_ino_ctime:
        return None
    return t.exe_ino_ctime - t.pidns_init_start_ts


def _std(n: int, what: str):
    def f(t, ie):
        fd = t.proc.fds.get(n)
        if fd is None:
            return None
        return fd.typename if what == "type" else fd.name
    return f


def make_thread_cgroup(arg: str):
    def f(ie):
        t = ie.thread
        return None if t is None else t.cgroup(arg)
    return f


# ---- user.* / group.* --------------------------------------------------------------------------

def user_name(ie):
    t = ie.thread
    u = ie.inspector.users.user(t) if t is not None else None
    return u.name if u is not None else None


def _user_attr(attr: str, login: bool = False):
    def f(ie):
        t = ie.thread
        if t is None:
            return None
        if login:
            if t.loginuid == 0xFFFFFFFF:
                return None
            u = ie.inspector.users.user(t, t.loginuid)
        else:
            u = ie.inspector.users.user(t)
        return getattr(u, attr) if u is not None else None
    return f


def user_loginuid(ie):
    t = ie.thread
    if t is None:
        return None
    return -1 if t.loginuid == 0xFFFFFFFF else t.loginuid


def group_name(ie):
    t = ie.thread
    g = ie.inspector.users.group(t) if t is not None else None
    return g.name if g is not None else None


# ---- fd.* ---------------------------------------------------------------------------------------

# events that carry an fd (libs' EF_USES_FD), and libs' fd.typechar for one whose fd is unknown
_USES_FD = frozenset(e.code for e in EVENTS if e.name not in ("mmap", "mmap2")
                     and {"USES_FD", "CREATES_FD", "DESTROYS_FD"} & set(e.flags))
_CREATES_FD = frozenset(e.code for e in EVENTS if "CREATES_FD" in e.flags)
_NULL_TYPECHAR = {name: ch for names, ch in (
    (("open", "openat", "openat2", "creat"), "f"), (("socket", "accept", "accept4"), "4"),
    (("pipe", "pipe2"), "p"), (("eventfd", "eventfd2"), "e"), (("signalfd", "signalfd4"), "s"),
    (("timerfd_create",), "t"), (("inotify_init", "inotify_init1"), "i")) for name in names}


def _uses_fd(ie) -> bool:
    return ie.thread is not None and ie.evt.type in _USES_FD


def _connect_failed(ie) -> bool:
    evt = ie.evt
    if evt.name != "connect" or not evt.type & 1:
        return False
    res = evt.get("res")
    return isinstance(res, int) and res < 0


def fd_name(ie):
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


def fd_num(ie):
    if ie.fd is not None or _uses_fd(ie):
        return ie.fdnum
    return None


def _real(ie):
    """The event's fd, or None for none or the stand-in of a failed open (libs has no fd there)."""
    f = ie.fd
    return f if f is not None and f.fd >= 0 else None


def fd_type(ie):
    f = _real(ie)
    return TYPENAMES.get(f.type, "unknown") if f is not None else None


def fd_typechar(ie):
    f = ie.fd
    if f is not None:
        return TYPECHARS.get(f.type, "o")
    if not _uses_fd(ie):
        return None
    return _NULL_TYPECHAR.get(ie.evt.name, "o")


def fd_nameraw(ie):
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


def fd_directory(ie):
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


def fd_filename(ie):
    try:
        f = _real(ie)
        if f is None or f.type not in (FD_FILE, FD_FILE_V2) or not f.name:
            return None
        return f.name.rpartition("/")[2]
    except _SAFE_ERRORS:
        return None


def _ipfd(ie):
    f = ie.fd
    return f if f is not None and f.is_ip else None


def _client(ie):
    """(ip, port) of the client end; libs gives none for a listening socket or a socket whose
    role is not known yet."""
    f = _ipfd(ie)
    if f is None or f.is_server_socket or f.role == ROLE_NONE or f.sip is None:
        return None, None
    return f.sip, f.sport


def _server(ie):
    f = _ipfd(ie)
    if f is None:
        return None, None
    if f.is_server_socket:
        # libs: fd.sip needs a role (a listening socket from /proc has none), fd.sport does not
        return (f.sip if f.role != ROLE_NONE else None), f.sport
    if f.role == ROLE_NONE:
        return None, None
    return (f.dip, f.dport) if f.dip is not None else (None, None)


def fd_cip(ie):
    return _client(ie)[0]


def fd_sip(ie):
    return _server(ie)[0]


def fd_cport(ie):
    return _client(ie)[1]


def fd_sport(ie):
    return _server(ie)[1]


def _both(a, b):
    """Falco's fd.ip/fd.port/...: the values of both ends (client first), as a tuple; a rule
    matches when either end does (the fields are list-valued for the rule engine)."""
    if a is None:
        return None if b is None else (b,)
    return (a,) if b is None or b == a else (a, b)


def _raw_ends(ie):
    """(client, server) endpoints as stored, whatever the role (fd.ip/fd.port look at both)."""
    f = _ipfd(ie)
    if f is None:
        return (None, None), (None, None)
    if f.is_server_socket:
        return (None, None), (f.sip, f.sport)
    return (f.sip, f.sport if f.sip is not None else None), (f.dip, f.dport if f.dip is not None else None)


def fd_ip(ie):
    if _ipfd(ie) is None:
        return None
    c, s = _raw_ends(ie)
    return _both(c[0], s[0])


def fd_port(ie):
    if _ipfd(ie) is None:
        return None
    c, s = _raw_ends(ie)
    return _both(c[1], s[1])


def fd_net(ie):
    ips = fd_ip(ie)
    if ips is None:
        return None
    return tuple(n for n in (ie.inspector.network_of(ip) for ip in ips) if n is not None) or None


def fd_proto(ie):
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


def _local_remote(ie):
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


def fd_lip(ie):
    lr = _local_remote(ie)
    return None if lr is None else lr[0][0]


def fd_rip(ie):
    lr = _local_remote(ie)
    return None if lr is None else lr[1][0]


def fd_lport(ie):
    lr = _local_remote(ie)
    return None if lr is None else lr[0][1]


def fd_rport(ie):
    lr = _local_remote(ie)
    return None if lr is None else lr[1][1]


def _net_of(getter):
    """The interface network an address belongs to (Falco: the /N of a local interface), or /32|/128."""
    def f(ie):
        ip = getter(ie)
        if ip is None:
            return None
        return ie.inspector.network_of(ip)
    return f


def fd_l4proto(ie):
    """libs (sinsp_fdinfo::get_l4proto): a connection with no role yet has none ("<NA>") unless raw."""
    f = _real(ie)
    if f is None:
        return None
    if not f.is_ip:
        return "<NA>"
    if not f.is_server_socket and f.role == ROLE_NONE and f.l4proto != 5:
        return "<NA>"
    return L4_NAMES.get(f.l4proto, "<NA>")


def fd_sockfamily(ie):
    f = ie.fd
    if f is None:
        return None
    if f.is_ip:
        return "ip"
    if f.type == FD_UNIX_SOCK:
        return "unix"
    return None


def fd_is_server(ie):
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


def fd_connected(ie):
    f = _real(ie)
    return None if f is None else bool(f.connected)


def fd_name_changed(ie):
    """libs: the fd's name differs from the one it had before the event (a new named fd: true)."""
    f = _real(ie)
    if f is None:
        return None
    if ie.evt.type in _CREATES_FD and f.name:
        return True
    return ie.name_changed


def fd_uid(ie):
    f = ie.fd
    t = ie.thread
    if t is None or (f is None and not _uses_fd(ie)):
        return None
    return f"{t.tid}{ie.fdnum}"      # libs: the thread id, then the fd number (known fd or not)


def fd_types(arg: str | None):
    def f(ie):
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
    def f(ie):
        port = getter_port(ie)
        if port is None:
            return None
        return str(port)
    return f


def fd_cproto(ie):
    """libs: the client port as text for a connection with a role, "" for any other fd with a role."""
    f = _real(ie)
    if f is None or f.role == ROLE_NONE:
        return None
    if f.is_ip and not f.is_server_socket:
        return str(f.sport)
    return ""


def _ip_name(getter):
    def f(ie):
        ip = getter(ie)
        return None if ip is None else ie.inspector.ip_name(ip)
    return f


# ---- container.* / k8s.* ---------------------------------------------------------------------------

def container_id(ie):
    t = ie.thread
    if t is None:
        return None
    cid = t.container_id
    return cid[:12] if cid else "host"


def container_full_id(ie):
    t = ie.thread
    if t is None:
        return None
    return t.container_id or "host"


def _cinfo(ie):
    t = ie.thread
    if t is None or not t.container_id:
        return None
    return ie.inspector.container(t)


def _c(attr: str, host_value: Any = None):
    def f(ie):
        t = ie.thread
        if t is None:
            return None
        if not t.container_id:
            return host_value
        info = ie.inspector.container(t)
        v = getattr(info, attr, None) if info is not None else None
        return v if v not in ("", {}) else None
    return f


def container_duration(ie):
    info = _cinfo(ie)
    return ie.evt.ts - info.start_ts if info is not None and info.start_ts else None


def container_mounts(ie):
    info = _cinfo(ie)
    if info is None:
        return None
    return ",".join(f"{m.source}:{m.dest}:{m.mode}:{'true' if m.rdwr else 'false'}:{m.propagation}"
                    for m in info.mounts)


def make_container_mount(attr: str | None, arg: str):
    def f(ie):
        info = _cinfo(ie)
        if info is None:
            return None
        mounts = info.mounts
        m = None
        if arg.isdigit():
            i = int(arg)
            m = mounts[i] if i < len(mounts) else None
        else:
            for x in mounts:
                if (x.source if attr == "dest" else x.dest) == arg:
                    m = x
                    break
        if m is None:
            return None
        if attr is None:
            return f"{m.source}:{m.dest}:{m.mode}:{'true' if m.rdwr else 'false'}:{m.propagation}"
        if attr == "rdwr":
            return "true" if m.rdwr else "false"
        return getattr(m, attr) or None
    return f


def make_label(which: str, arg: str):
    def f(ie):
        info = _cinfo(ie)
        if info is None:
            return None
        return getattr(info, which).get(arg)
    return f


def _labels(which: str):
    def f(ie):
        info = _cinfo(ie)
        if info is None:
            return None
        labels = getattr(info, which)
        return ", ".join(f"{k}:{v}" for k, v in labels.items()) if labels else None
    return f


def k8s_sandbox(full: bool):
    def f(ie):
        info = _cinfo(ie)
        if info is None or not info.pod_sandbox_id:
            return None
        return info.pod_sandbox_id if full else info.pod_sandbox_id[:12]
    return f


# ---- the table ------------------------------------------------------------------------------------

_self, _mainw, _par = "self", "main", "parent"
_sid_leader = _leader("sid")
_vpgid_leader = _leader("vpgid")
_pgid_leader = _leader("pgid")

EXTRACTORS: dict[str, Callable] = {
    "evt.num": evt_num, "evt.time": evt_time, "evt.time.s": evt_time_s, "evt.time.iso8601": evt_time_iso8601,
    "evt.datetime": evt_datetime, "evt.datetime.s": evt_datetime_s,
    "evt.rawtime": lambda ie: ie.evt.ts, "evt.rawtime.s": lambda ie: ie.evt.ts // 1_000_000_000,
    "evt.rawtime.ns": lambda ie: ie.evt.ts % 1_000_000_000,
    "evt.reltime": lambda ie: ie.evt.ts - ie.inspector.first_ts,
    "evt.reltime.s": lambda ie: (ie.evt.ts - ie.inspector.first_ts) // 1_000_000_000,
    "evt.reltime.ns": lambda ie: (ie.evt.ts - ie.inspector.first_ts) % 1_000_000_000,
    "evt.source": lambda ie: "syscall", "evt.is_async": lambda ie: False,
    "evt.hostname": lambda ie: ie.inspector.hostname or None,
    "evt.type": evt_type, "syscall.type": lambda ie: evt_type(ie) if "SYSCALL" in EVENTS[ie.evt.type].category
    else None,
    "evt.category": _category, "evt.cpu": lambda ie: ie.evt.cpu, "evt.args": evt_args, "evt.info": evt_args,
    "evt.buffer": evt_buffer, "evt.buflen": evt_buflen,
    "evt.res": evt_res, "evt.rawres": evt_rawres, "evt.failed": evt_failed,
    "evt.is_io": lambda ie: _flag("READS_FROM_FD")(ie) or _flag("WRITES_TO_FD")(ie),
    "evt.is_io_read": _flag("READS_FROM_FD"), "evt.is_io_write": _flag("WRITES_TO_FD"),
    "evt.io_dir": lambda ie: "r" if _flag("READS_FROM_FD")(ie) else "w" if _flag("WRITES_TO_FD")(ie) else None,
    "evt.is_wait": _flag("WAITS"), "evt.is_syslog": lambda ie: ie.fd is not None and ie.fd.name == "/dev/log"
    and _flag("WRITES_TO_FD")(ie),
    "evt.count": lambda ie: 1, "evt.count.error": lambda ie: int(bool(evt_failed(ie))),
    "evt.count.exit": lambda ie: ie.evt.type % 2,
    "evt.abspath": _fs("name", False), "evt.abspath.src": _fs("source", False),
    "evt.abspath.dst": _fs("target", False),
    "evt.is_open_read": evt_is_open_read, "evt.is_open_write": evt_is_open_write,
    "evt.is_open_exec": evt_is_open_exec, "evt.is_open_create": evt_is_open_create,
    "evt.deltatime": evt_deltatime,
    "evt.deltatime.s": lambda ie: (lambda d: None if d is None else d // 1_000_000_000)(evt_deltatime(ie)),
    "evt.deltatime.ns": lambda ie: (lambda d: None if d is None else d % 1_000_000_000)(evt_deltatime(ie)),
    "evt.dir": lambda ie: "<" if ie.evt.type % 2 else ">",
    "evt.latency": lambda ie: 0, "evt.latency.s": lambda ie: 0, "evt.latency.ns": lambda ie: 0,
    "evt.latency.human": lambda ie: "0ns", "evt.wait_latency": lambda ie: 0,
    # process
    "proc.name": proc_name, "proc.pname": _on(_g_comm, _par),
    "proc.exe": _on(_g_exe, _self), "proc.pexe": _on(_g_exe, _par),
    "proc.exepath": _on(_g_exepath, _self), "proc.pexepath": _on(_g_exepath, _par),
    "proc.args": _on(_g_args, _self), "proc.cmdline": _on(_g_cmdline, _self),
    "proc.pcmdline": _on(_g_cmdline, _par), "proc.exeline": _on(_g_exeline, _self),
    "proc.cmdnargs": _on(lambda t, ie: len(t.args), _self),
    "proc.cmdlenargs": _on(lambda t, ie: sum(len(a) for a in t.args), _self),
    "proc.cwd": _on(_g_cwd, _self), "proc.loginshellid": proc_loginshellid,
    "proc.tty": _on(lambda t, ie: t.tty, _self), "proc.pid": _on(_g_pid, _self),
    "proc.ppid": _on(lambda t, ie: t.ptid if t.ptid > 0 else None, _mainw),
    "proc.vpid": _on(lambda t, ie: t.vpid, _self), "proc.pvpid": _on(lambda t, ie: t.vpid, _par),
    "proc.sid": _on(lambda t, ie: t.sid, _mainw), "proc.sname": _via(_sid_leader, _g_comm),
    "proc.sid.exe": _via(_sid_leader, _g_exe), "proc.sid.exepath": _via(_sid_leader, _g_exepath),
    "proc.vpgid": _on(lambda t, ie: t.vpgid, _mainw), "proc.vpgid.name": _via(_vpgid_leader, _g_comm),
    "proc.vpgid.exe": _via(_vpgid_leader, _g_exe), "proc.vpgid.exepath": _via(_vpgid_leader, _g_exepath),
    "proc.pgid": _on(lambda t, ie: t.pgid, _mainw), "proc.pgid.name": _via(_pgid_leader, _g_comm),
    "proc.pgid.exe": _via(_pgid_leader, _g_exe), "proc.pgid.exepath": _via(_pgid_leader, _g_exepath),
    "proc.duration": _on(_g_duration, _self), "proc.ppid.duration": _on(_g_duration, _par),
    "proc.pid.ts": _on(_g_start, _self), "proc.ppid.ts": _on(_g_start, _par),
    "proc.is_exe_writable": _on(_exe_flag(1), _self), "proc.is_exe_upper_layer": _on(_exe_flag(2), _self),
    "proc.is_exe_from_memfd": _on(_exe_flag(4), _self), "proc.is_exe_lower_layer": _on(_exe_flag(8), _self),
    "proc.is_sid_leader": _on(lambda t, ie: t.sid == t.vpid, _mainw),
    "proc.is_vpgid_leader": _on(lambda t, ie: t.vpgid == t.vpid, _mainw),
    "proc.is_pgid_leader": _on(lambda t, ie: t.pgid == t.pid, _mainw),
    "proc.exe_ino": _on(lambda t, ie: t.exe_ino or None, _self),
    "proc.exe_ino.ctime": _on(lambda t, ie: t.exe_ino_ctime or None, _self),
    "proc.exe_ino.mtime": _on(lambda t, ie: t.exe_ino_mtime or None, _self),
    "proc.exe_ino.ctime_duration_proc_start": _on(_ctime_proc_start, _self),
    "proc.exe_ino.ctime_duration_pidns_start": _on(_ctime_pidns_start, _self),
    "proc.pidns_init_start_ts": _on(lambda t, ie: t.pidns_init_start_ts or None, _self),
    "proc.fdopencount": _on(lambda t, ie: len(t.proc.fds), _self),
    "proc.fdlimit": _on(lambda t, ie: t.fdlimit or None, _mainw),
    "proc.fdusage": _on(lambda t, ie: 100.0 * len(t.proc.fds) / t.fdlimit if t.fdlimit else None, _mainw),
    "proc.vmsize": _on(lambda t, ie: t.vmsize, _mainw), "proc.vmrss": _on(lambda t, ie: t.vmrss, _mainw),
    "proc.vmswap": _on(lambda t, ie: t.vmswap, _mainw),
    "proc.nthreads": _on(lambda t, ie: max(t.proc.nthreads, 1), _mainw),
    "proc.nchilds": _on(lambda t, ie: max(t.proc.nthreads - 1, 0), _mainw),
    "proc.stdin.type": _on(_std(0, "type"), _self), "proc.stdin.name": _on(_std(0, "name"), _self),
    "proc.stdout.type": _on(_std(1, "type"), _self), "proc.stdout.name": _on(_std(1, "name"), _self),
    "proc.stderr.type": _on(_std(2, "type"), _self), "proc.stderr.name": _on(_std(2, "name"), _self),
    "thread.cap_permitted": _on(lambda t, ie: render.cap_names(t.cap_permitted), _self),
    "thread.cap_inheritable": _on(lambda t, ie: render.cap_names(t.cap_inheritable), _self),
    "thread.cap_effective": _on(lambda t, ie: render.cap_names(t.cap_effective), _self),
    "thread.pfmajor": _on(lambda t, ie: t.pfmajor, _self), "thread.pfminor": _on(lambda t, ie: t.pfminor, _self),
    "thread.tid": _on(lambda t, ie: t.tid, _self), "thread.ismain": _on(lambda t, ie: t.tid == t.pid, _self),
    "thread.vtid": _on(lambda t, ie: t.vtid, _self),
    "thread.nametid": _on(lambda t, ie: f"{t.comm}{t.tid}", _self),
    "thread.cgroups": _on(lambda t, ie: " ".join(f"{s}={p}" for s, p in t.cgroups) or None, _self),
    "thread.vmsize": _on(lambda t, ie: t.vmsize, _mainw), "thread.vmsize.b": _on(lambda t, ie: t.vmsize * 1024, _mainw),
    "thread.vmrss": _on(lambda t, ie: t.vmrss, _mainw), "thread.vmrss.b": _on(lambda t, ie: t.vmrss * 1024, _mainw),
    # user / group
    "user.uid": _on(lambda t, ie: t.uid, _self), "user.name": user_name,
    "user.homedir": _user_attr("homedir"), "user.shell": _user_attr("shell"),
    "user.loginuid": user_loginuid, "user.loginname": _user_attr("name", login=True),
    "group.gid": _on(lambda t, ie: t.gid, _self), "group.name": group_name,
    # fd
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
    "fd.proto": fd_proto, "fd.sproto": _proto(fd_sport),
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
    # fs.path
    "fs.path.name": _fs("name", False), "fs.path.nameraw": _fs("name", True),
    "fs.path.source": _fs("source", False), "fs.path.sourceraw": _fs("source", True),
    "fs.path.target": _fs("target", False), "fs.path.targetraw": _fs("target", True),
    # container
    "container.id": container_id, "container.full_id": container_full_id,
    "container.name": _c("name", "host"), "container.image": _c("image"), "container.image.id": _c("image_id"),
    "container.type": _c("type"), "container.privileged": _c("privileged"), "container.mounts": container_mounts,
    "container.image.repository": _c("image_repository"), "container.image.tag": _c("image_tag"),
    "container.image.digest": _c("image_digest"), "container.start_ts": _c("start_ts"),
    "container.duration": container_duration, "container.ip": _c("ip"), "container.cni.json": _c("cni_json"),
    "container.host_pid": _c("host_pid"), "container.host_network": _c("host_network"),
    "container.host_ipc": _c("host_ipc"), "container.labels": _labels("labels"),
    "k8s.pod.name": _c("pod_name"), "k8s.ns.name": _c("pod_namespace"), "k8s.pod.id": _c("pod_uid"),
    "k8s.pod.uid": _c("pod_uid"), "k8s.pod.sandbox_id": k8s_sandbox(False),
    "k8s.pod.full_sandbox_id": k8s_sandbox(True), "k8s.pod.labels": _labels("pod_labels"),
    "k8s.pod.ip": _c("pod_ip"), "k8s.pod.cni.json": _c("cni_json"),
}

#: fields whose argument is an ancestor index (none = any ancestor): name -> thread getter
INDEXED: dict[str, Callable] = {
    "proc.aname": _g_comm, "proc.aexe": _g_exe, "proc.aexepath": _g_exepath, "proc.aargs": _g_args,
    "proc.acmdline": _g_cmdline, "proc.apid": _g_pid,
}

#: fields that take a key or free-form argument: name -> factory(arg)
KEYED: dict[str, Callable[[Any], Callable]] = {
    "evt.arg": make_evt_arg, "evt.rawarg": make_evt_rawarg,
    "evt.type.is": lambda arg: (lambda ie: int(evt_type(ie) == arg)),
    "proc.env": make_proc_env, "proc.aenv": make_proc_env, "thread.cgroup": make_thread_cgroup,
    "fd.types": fd_types,
    "container.mount": lambda arg: make_container_mount(None, arg),
    "container.mount.source": lambda arg: make_container_mount("source", arg),
    "container.mount.dest": lambda arg: make_container_mount("dest", arg),
    "container.mount.mode": lambda arg: make_container_mount("mode", arg),
    "container.mount.rdwr": lambda arg: make_container_mount("rdwr", arg),
    "container.mount.propagation": lambda arg: make_container_mount("propagation", arg),
    "container.label": lambda arg: make_label("labels", arg),
    "k8s.pod.label": lambda arg: make_label("pod_labels", arg),
}

# hot-path extractors are returned as they are (they cannot raise); every other one is wrapped
_UNWRAPPED = frozenset((evt_type, evt_num, proc_name, fd_name, fd_typechar, fd_num, container_id, fd_type,
                        # these catch what _safe would themselves (one call less per use)
                        evt_is_open_read, evt_is_open_write, evt_is_open_create, fd_nameraw, fd_directory,
                        fd_filename))


def make_accessor(name: str, arg: str | None = None) -> Callable[[Any], Any]:
    """The extractor of one field use; raises NotExtractable for unknown names."""
    if name.startswith("evt.arg.") or name.startswith("evt.rawarg."):
        base, _, dot = name.partition(".arg.") if name.startswith("evt.arg.") else name.partition(".rawarg.")
        fn = (make_evt_arg if name.startswith("evt.arg.") else make_evt_rawarg)(dot)
        return _safe(fn)
    if name in INDEXED:
        if arg is not None and not arg.isdigit():
            raise NotExtractable(f"{name}[{arg}]")
        return _safe(_ancestor_field(INDEXED[name], arg, name))
    if name in KEYED:
        if arg is None and name not in ("proc.env", "proc.aenv", "fd.types"):
            raise NotExtractable(name)
        return _safe(KEYED[name](arg))
    fn = EXTRACTORS.get(name)
    if fn is None:
        raise NotExtractable(name)
    return fn if fn in _UNWRAPPED else _safe(fn)
