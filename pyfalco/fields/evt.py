# SPDX-License-Identifier: Apache-2.0
"""evt.* and fs.path.* fields (libsinsp's sinsp_filter_check_event / fspath): the event itself,
its parameters as Falco renders them, its time, and the paths a file syscall names."""

from __future__ import annotations

import errno as _errno
import time as _time
from collections.abc import Callable
from typing import Any

from .. import event_codes as ec
from ..events import SockAddr, SockTuple
from ..state.fds import IP_TYPES, L4_ICMP, L4_RAW, L4_TCP, L4_UDP, TYPECHARS
from . import render
from .common import EVENTS, PT
from .common import EVENT_NAMES as _EVENT_NAMES
from .common import NEVENTS as _NEVENTS
from .common import SAFE_ERRORS as _SAFE_ERRORS
from .stateview import FieldEvent

__all__ = ["EXTRACTORS", "INDEXED", "KEYED", "UNWRAPPED", "evt_type", "render_param"]

_CREAT = ec.PPME_SYSCALL_CREAT_X
_OPEN_CODES = frozenset((ec.PPME_SYSCALL_OPEN_X, ec.PPME_SYSCALL_OPENAT_2_X, ec.PPME_SYSCALL_OPENAT2_X,
                         ec.PPME_SYSCALL_OPEN_BY_HANDLE_AT_X, _CREAT))
_PPM_O_RDONLY, _PPM_O_WRONLY, _PPM_O_CREAT, _PPM_O_F_CREATED = 1, 2, 4, 1 << 14
_EXIT_RES_NAMES = ("res", "fd")
_ERRNO_NAMES = _errno.errorcode


# by event code: 1 for the exit events whose first parameter is their return value
_HAS_RES = bytes(1 if code % 2 and e.params and e.params[0].name in _EXIT_RES_NAMES else 0
                 for code, e in enumerate(EVENTS))


def _res(ie: FieldEvent):
    """The return value of an exit event (its ``res`` parameter, or the fd of fd-creating calls)."""
    evt = ie.evt
    code = evt.type
    if code >= _NEVENTS or not _HAS_RES[code]:
        return None
    v = evt.param(0)
    return v if isinstance(v, int) else None


def evt_type(ie: FieldEvent):
    code = ie.evt.type
    return _EVENT_NAMES[code] if code < _NEVENTS else None


def evt_num(ie: FieldEvent):
    return ie.evt.num


def _fmt_time(ts: int, date: bool, ns: bool, utc: bool = False) -> str:
    secs, frac = divmod(ts, 1_000_000_000)
    tm = _time.gmtime(secs) if utc else _time.localtime(secs)
    out = _time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", tm)
    return f"{out}.{frac:09d}" if ns else out


def evt_time(ie: FieldEvent):
    return _fmt_time(ie.evt.ts, False, True)


def evt_time_s(ie: FieldEvent):
    return _fmt_time(ie.evt.ts, False, False)


def evt_time_iso8601(ie: FieldEvent):
    secs, frac = divmod(ie.evt.ts, 1_000_000_000)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(secs)) + f".{frac:09d}Z"


def evt_datetime(ie: FieldEvent):
    return _fmt_time(ie.evt.ts, True, True)


def evt_datetime_s(ie: FieldEvent):
    return _fmt_time(ie.evt.ts, True, False)


def _category(ie: FieldEvent):
    code = ie.evt.type
    if code >= _NEVENTS:
        return None
    cats = EVENTS[code].category - {"SYSCALL", "TRACEPOINT", "PLUGIN", "METAEVENT", "INTERNAL"}
    if not cats:
        return "other"
    return sorted(cats)[0].lower().replace("_", "-")


def evt_res(ie: FieldEvent):
    # render.errno_name(_res(ie)) in one frame (the first field every execve rule reads)
    evt = ie.evt
    code = evt.type
    if code >= _NEVENTS or not _HAS_RES[code]:
        return None
    vals = evt._vals
    if vals is None:
        vals = evt.values()
    if not vals:
        return None
    r = vals[0]
    if not isinstance(r, int):
        return None
    return "SUCCESS" if r >= 0 else _ERRNO_NAMES.get(-r) or str(r)


def evt_rawres(ie: FieldEvent):
    return _res(ie)


def evt_failed(ie: FieldEvent):
    r = _res(ie)
    return None if r is None else r < 0


def _open_flags(ie: FieldEvent):
    code = ie.evt.type
    if code not in _OPEN_CODES:
        return None
    if code == _CREAT:
        f = ie.fd
        return f.flags if f is not None else _PPM_O_CREAT | _PPM_O_WRONLY
    return ie.evt.get("flags")


def _open_bit(bit: int):
    """evt.is_open_read/write/create: _open_flags tested for one bit, the _safe wrapper inlined."""
    def is_open(ie: FieldEvent):
        try:
            evt = ie.evt
            code = evt.type
            if code not in _OPEN_CODES:
                return None
            if code == _CREAT:
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


def evt_is_open_exec(ie: FieldEvent):
    fl = _open_flags(ie)
    if fl is None:
        return None
    mode = ie.evt.get("mode") or 0
    return bool(fl & (_PPM_O_CREAT | (1 << 13))) and bool(mode & 0o111)


evt_is_open_create = _open_bit(_PPM_O_F_CREATED)
evt_is_open_create.__name__ = "evt_is_open_create"


def _flag(flag: str):
    def f(ie: FieldEvent):
        code = ie.evt.type
        return code < _NEVENTS and flag in EVENTS[code].flags
    return f


def _param_info(ie: FieldEvent, arg: str):
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


#: parameter types whose empty value libs prints as "" (its legacy NULL encoding of strings)
_EMPTY_AS_EMPTY = frozenset(PT[n] for n in ("CHARBUF", "FSPATH", "FSRELPATH") if n in PT)
#: libs' L4 protocol character after an IP socket's type character (sinsp_evt::render_fd: <4t>)
_L4_CHARS = {L4_TCP: "t", L4_UDP: "u", L4_ICMP: "i", L4_RAW: "r"}
#: parameter types libs renders as "NULL" when empty (sinsp_evt::get_param_as_str; others <NA>)
_NULL_WHEN_EMPTY = frozenset(PT[n] for n in ("BYTEBUF", "SOCKTUPLE", "FDLIST", "CHARBUFARRAY", "CHARBUF_PAIR_ARRAY",
                                             "DYN") if n in PT)


def _fd_of(ie: FieldEvent, fd: int):
    t = ie.thread
    f = t.proc.fds.get(fd) if t is not None else None
    if f is None and ie.fd is not None and ie.fdnum == fd:
        f = ie.fd
    return f


def _fd_text(ie: FieldEvent, fd: int) -> str:
    f = _fd_of(ie, fd)
    if f is None:
        if fd >= 0:
            return str(fd)
        # libs: AT_FDCWD by name, any other negative fd resolved as an errno (a failed call's fd)
        return "AT_FDCWD" if fd == -100 else (render.errno_name(fd) or str(fd))
    l4 = _L4_CHARS.get(f.l4proto, "") if f.type in IP_TYPES else ""
    return f"<{TYPECHARS.get(f.type, 'o')}{l4}>{f.name}"


def _fdlist_text(ie: FieldEvent, pairs) -> str:
    """poll's fds as libs prints them: ``fd:<typechar><events in hex>``, ``?`` for an unknown fd."""
    out = []
    for fd, events in pairs:
        f = _fd_of(ie, fd)
        out.append(f"{fd}:{TYPECHARS.get(f.type, 'o') if f is not None else '?'}{events:x}")
    return " ".join(out)


def render_param(ie: FieldEvent, i: int, p, resolved: bool = True) -> str | None:
    """One parameter as text: ``resolved`` gives evt.arg's form, otherwise evt.args' ``raw(resolved)``."""
    v = ie.evt.param(i)
    ptype = p.type
    if v is None:
        # an empty parameter: libs prints "NULL" for the types that could be empty before its
        # converter made every type emptyable (buffers, tuples, fd lists), <NA> for the others
        if ptype in _NULL_WHEN_EMPTY and i < ie.evt.nparams and ie.evt.raw_param(i) is not None:
            return "NULL"
        return None
    extra = p.extra
    if ptype in (PT["FD"], PT["FD32"] if "FD32" in PT else -1):
        if not isinstance(v, int):
            return None
        txt = _fd_text(ie, v)
        if resolved:
            return txt
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
        # libs resolves a pid to the comm of the thread with that id when the table has it;
        # evt.arg.X shows the resolved form, evt.args "pid(comm)"
        t = ie.inspector.threads.threads.get(v)
        if t is not None and t.comm:
            return t.comm if resolved else f"{v}({t.comm})"
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
    if ptype == PT.get("FDLIST", -1) and isinstance(v, list):
        return _fdlist_text(ie, v)
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return str(v)


def evt_args(ie: FieldEvent):
    cache = ie.cache
    if cache is not None and "evt.args" in cache:
        return cache["evt.args"]
    code = ie.evt.type
    if code >= _NEVENTS:
        return None
    parts = []
    for i, p in enumerate(EVENTS[code].params[:ie.evt.nparams]):
        txt = render_param(ie, i, p, resolved=False)
        if txt is None:
            # libs (sinsp_evt::get_param_as_str): an empty string or path prints as "", any other
            # empty parameter as <NA> (buffers and tuples as NULL, which render_param gives)
            txt = "" if p.type in _EMPTY_AS_EMPTY else "<NA>"
        parts.append(f"{p.name}={txt}")
    out = " ".join(parts)
    if ie.cache is None:
        ie.cache = {}
    ie.cache["evt.args"] = out
    return out


def make_evt_arg(arg: str):
    def evt_arg(ie: FieldEvent):
        i, p = _param_info(ie, arg)
        if p is None:
            return None
        return render_param(ie, i, p, resolved=True)
    return evt_arg


def make_evt_rawarg(arg: str):
    def evt_rawarg(ie: FieldEvent):
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


def evt_buffer(ie: FieldEvent):
    data = ie.evt.get("data")
    return bytes(data) if isinstance(data, (bytes, bytearray)) else None


def evt_buflen(ie: FieldEvent):
    code = ie.evt.type
    if code >= _NEVENTS or not ({"READS_FROM_FD", "WRITES_TO_FD"} & EVENTS[code].flags):
        return None
    r = _res(ie)
    return r if r is not None and r >= 0 else None


def evt_deltatime(ie: FieldEvent):
    prev = ie.prev_ts
    return None if prev is None else ie.evt.ts - prev


def _path_of(ie: FieldEvent, which: str):
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
    def f(ie: FieldEvent):
        v = _path_of(ie, which)
        return None if v is None else v[1 if raw else 0]
    return f


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
    # fs.path
    "fs.path.name": _fs("name", False), "fs.path.nameraw": _fs("name", True),
    "fs.path.source": _fs("source", False), "fs.path.sourceraw": _fs("source", True),
    "fs.path.target": _fs("target", False), "fs.path.targetraw": _fs("target", True),
}

INDEXED: dict[str, Callable] = {}

KEYED: dict[str, Callable[[Any], Callable]] = {
    "evt.arg": make_evt_arg, "evt.rawarg": make_evt_rawarg,
    "evt.type.is": lambda arg: (lambda ie: int(evt_type(ie) == arg)),
}

#: returned as they are by make_accessor (they cannot raise, or catch what safe() would)
UNWRAPPED = frozenset((evt_type, evt_num, evt_is_open_read, evt_is_open_write, evt_is_open_create))
