# SPDX-License-Identifier: Apache-2.0
"""proc.* and thread.* fields (libsinsp's sinsp_filter_check_thread): the process of the event,
its main thread, parent and ancestors, as the thread table has them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import event_codes as _ec
from . import render
from .common import main_thread as _main
from .common import parent_thread as _parent
from .stateview import FieldEvent

if TYPE_CHECKING:
    from ..state.threads import Thread
__all__ = ["EXTRACTORS", "INDEXED", "KEYED", "UNWRAPPED", "LOGIN_SHELLS", "on_thread", "proc_name", "libs_main"]

LOGIN_SHELLS = frozenset(("sh", "bash", "zsh", "ksh", "csh", "tcsh", "dash", "ash", "fish", "mksh", "busybox"))


def proc_name(ie: FieldEvent):
    t = ie.thread
    return t.comm or None if t is not None else None


# The same reads as expressions of ``evt`` (the event a compiled rule bucket reads), written into
# the bucket's code instead of a call (rules.compiler.compile_bucket): equal to the accessor's
# value (tests/unit/test_proc_accessors.py).
proc_name.inline = "(evt.thread.comm or None if evt.thread is not None else None)"  # type: ignore[attr-defined]


def _on(getter: Callable, who: str):
    """A thread-level getter applied to the event thread, its main thread or its parent."""
    if who == "self":
        def f(ie: FieldEvent):
            t = ie.thread
            return None if t is None else getter(t, ie)
    elif who == "main":
        def f(ie: FieldEvent):
            t = _main(ie)
            return None if t is None else getter(t, ie)
    else:
        def f(ie: FieldEvent):
            t = _parent(ie)
            return None if t is None else getter(t, ie)
    return f


def _ancestor_field(getter: Callable, arg: str | None, key: str):
    if arg is None:
        def anyof(ie: FieldEvent):
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

    def nth(ie: FieldEvent):
        t = ie.thread
        if t is None:
            return None
        a = ie.inspector.threads.ancestor(t, n) if n else t
        return None if a is None else getter(a, ie)
    return nth


def _g_comm(t: Thread, ie: FieldEvent):
    return t.comm or None


def _g_exe(t: Thread, ie: FieldEvent):
    return t.exe or None


def _g_exepath(t: Thread, ie: FieldEvent):
    # libs keeps the thread's exepath as a string, "" until an exec or /proc says otherwise (a
    # thread cloned by one the capture never described): "" is printed, not <NA>
    return t.exepath or ""


def _g_args(t: Thread, ie: FieldEvent):
    return t.args_str()


def _g_cmdline(t: Thread, ie: FieldEvent):
    return t.cmdline() or None


def _g_pid(t: Thread, ie: FieldEvent):
    return t.pid


def _g_exeline(t: Thread, ie: FieldEvent):
    # libs (TYPE_EXELINE): the exe, a space, then the arguments; the space is there without any
    return f"{t.exe} {t.args_str()}"


def libs_main(ie: FieldEvent):
    """The main thread as libs finds it (sinsp_threadinfo::get_main_thread): the thread itself when
    it leads its process, else its thread group's leader; None for an invalid thread (no group) or
    a leader missing from the table (pyfalco's main_thread() falls back to the thread instead)."""
    t = ie.thread
    if t is None:
        return None
    if t.tid == t.pid:
        return t
    if t.pid < 0:
        return None
    return ie.inspector.threads.threads.get(t.pid)


def proc_cwd(ie: FieldEvent):
    """libs' get_cwd(): the main thread's cwd ("" when never known), "./" without a main thread."""
    t = ie.thread
    if t is None:
        return None
    # libs_main inline (one frame per read: every execve of the default rules reads it)
    if t.tid != t.pid:
        if t.pid < 0:
            return "./"
        t = ie.inspector.threads.threads.get(t.pid)
        if t is None:
            return "./"
    cwd = t.proc.cwd
    return cwd if not cwd or cwd[-1] == "/" else cwd + "/"


def proc_fdlimit(ie: FieldEvent):
    """libs' get_fd_limit(): the main thread's limit (-1 when unknown), 0 without a main thread."""
    if ie.thread is None:
        return None
    m = libs_main(ie)
    return 0 if m is None else m.fdlimit


_CLOSE_X = _ec.PPME_SYSCALL_CLOSE_X


def _open_count(ie: FieldEvent, m) -> int:
    """The size of m's fd table as libs sees it while the event's fields are read: the fd a
    successful close removes still counts (parse_close_exit only schedules the removal,
    verdict.add_fd_to_remove, applied after the event)."""
    fds = m.proc.fds
    n = len(fds)
    if ie.evt.type == _CLOSE_X and ie.fd is not None and ie.fdnum not in fds:
        n += 1
    return n


def proc_fdopencount(ie: FieldEvent):
    """libs' get_fd_opencount(): the size of the main thread's fd table, 0 without a main thread."""
    if ie.thread is None:
        return None
    m = libs_main(ie)
    return 0 if m is None else _open_count(ie, m)


def proc_fdusage(ie: FieldEvent):
    """libs' get_fd_usage_pct_d(): open fds * 100 / limit (capped at 100), 0 for no positive limit."""
    if ie.thread is None:
        return None
    m = libs_main(ie)
    if m is None or m.fdlimit <= 0:
        return 0.0
    return min(100.0 * _open_count(ie, m) / m.fdlimit, 100.0)


def proc_ppid(ie: FieldEvent):
    """libs (TYPE_PPID): the main thread's ptid, -1 and 0 included; none without a main thread."""
    m = libs_main(ie)
    return None if m is None or m.ptid < -1 else m.ptid


def _xid(v: int):
    # libs prints -1 for an unknown virtual id as "no value" (TYPE_VTID/TYPE_VPID)
    return None if v == -1 else v


def _own_if_main(attr: str, scale: int = 1):
    """thread.vmsize/vmrss: libs reads them on the main thread only; other threads show 0."""
    def f(t: Thread, ie: FieldEvent):
        return getattr(t, attr) * scale if t.tid == t.pid else 0
    return f


def _g_duration(t: Thread, ie: FieldEvent):
    m = ie.inspector.threads.main_thread(t)
    return ie.evt.ts - m.clone_ts if m.clone_ts else None


def _g_start(t: Thread, ie: FieldEvent):
    m = ie.inspector.threads.main_thread(t)
    return m.clone_ts or None


def _env_of(t: Thread, ie: FieldEvent):
    env = t.env
    if not env and ie.inspector.live:
        env = ie.inspector.read_environ(t)
    return env


def make_proc_env(arg: str | None):
    if arg is None:
        def env_all(ie: FieldEvent):
            t = _main(ie)
            if t is None:
                return None
            return " ".join(_env_of(t, ie))
        return env_all
    prefix = arg + "="

    def env_one(ie: FieldEvent):
        t = _main(ie)
        if t is None:
            return None
        for e in _env_of(t, ie):
            if e.startswith(prefix):
                return e[len(prefix):]
        return None
    return env_one


def proc_loginshellid(ie: FieldEvent):
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
    def leader(ie: FieldEvent):
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
    def f(ie: FieldEvent):
        lt = leader_fn(ie)
        return None if lt is None else getter(lt, ie)
    return f


def _exe_flag(bit: int):
    def f(t: Thread, ie: FieldEvent):
        return bool(t.exe_flags & bit)
    return f


def _ctime_proc_start(t: Thread, ie: FieldEvent):
    m = ie.inspector.threads.main_thread(t)
    if not t.exe_ino_ctime or not m.clone_ts:
        return None
    return m.clone_ts - t.exe_ino_ctime


def _ctime_pidns_start(t: Thread, ie: FieldEvent):
    if not t.exe_ino_ctime or not t.pidns_init_start_ts or t.pidns_init_start_ts >= t.exe_ino_ctime:
        return None
    return t.exe_ino_ctime - t.pidns_init_start_ts


def _std(n: int, what: str):
    def f(t: Thread, ie: FieldEvent):
        fd = t.proc.fds.get(n)
        if fd is None:
            return None
        return fd.typename if what == "type" else fd.name
    return f


def make_thread_cgroup(arg: str):
    def f(ie: FieldEvent):
        t = ie.thread
        return None if t is None else t.cgroup(arg)
    return f


#: a thread getter applied to the event thread ("self"), its main thread or its parent
on_thread = _on

_self, _mainw, _par = "self", "main", "parent"


# _on(getter, ...) of the fields the default rules' execve/open buckets read most, written out:
# one frame per read instead of two (the getter's body inline; same values)
def _self_exe(ie: FieldEvent):
    t = ie.thread
    return None if t is None else (t.exe or None)


def _self_exepath(ie: FieldEvent):
    t = ie.thread
    return None if t is None else (t.exepath or "")


_self_exe.inline = "(None if evt.thread is None else (evt.thread.exe or None))"  # type: ignore[attr-defined]
_self_exepath.inline = '(None if evt.thread is None else (evt.thread.exepath or ""))'  # type: ignore[attr-defined]


def _self_args(ie: FieldEvent):
    t = ie.thread
    if t is None:
        return None
    s = t._args_str         # Thread.args_str's cache, read here (the execve parser fills it)
    return s if s is not None else t.args_str()


def _self_cmdline(ie: FieldEvent):
    t = ie.thread
    if t is None:
        return None
    s = t._cmdline          # Thread.cmdline inline (its cache; the args' string set by the execve)
    if s is None:
        a = t._args_str
        if a is None:
            a = t.args_str()
        s = t._cmdline = f"{t.comm} {a}" if a else t.comm
    return s or None


_self_args.inline = ("(None if evt.thread is None else (evt.thread._args_str if evt.thread._args_str "  # type: ignore[attr-defined]
                     "is not None else evt.thread.args_str()))")
_self_cmdline.inline = ("(None if evt.thread is None else ((evt.thread._cmdline if evt.thread._cmdline "  # type: ignore[attr-defined]
                        "is not None else evt.thread.cmdline()) or None))")


def _parent_comm(ie: FieldEvent):
    # common.parent_thread and ThreadTable.parent inline
    t = ie.thread
    if t is None:
        return None
    ptid = t.ptid
    if ptid <= 0 or ptid == t.tid:
        return None
    p = ie.inspector.threads.threads.get(ptid)
    return None if p is None else (p.comm or None)


def _self_exe_flag(bit: int) -> Callable:
    def f(ie: FieldEvent):
        t = ie.thread
        return None if t is None else bool(t.exe_flags & bit)
    f.inline = f"(None if evt.thread is None else bool(evt.thread.exe_flags & {int(bit)}))"  # type: ignore[attr-defined]
    return f

_sid_leader = _leader("sid")
_vpgid_leader = _leader("vpgid")
_pgid_leader = _leader("pgid")

EXTRACTORS: dict[str, Callable] = {
    "proc.name": proc_name, "proc.pname": _parent_comm,
    "proc.exe": _self_exe, "proc.pexe": _on(_g_exe, _par),
    "proc.exepath": _self_exepath, "proc.pexepath": _on(_g_exepath, _par),
    "proc.args": _self_args, "proc.cmdline": _self_cmdline,
    "proc.pcmdline": _on(_g_cmdline, _par), "proc.exeline": _on(_g_exeline, _self),
    "proc.cmdnargs": _on(lambda t, ie: len(t.args), _self),
    "proc.cmdlenargs": _on(lambda t, ie: sum(len(a) for a in t.args), _self),
    "proc.cwd": proc_cwd, "proc.loginshellid": proc_loginshellid,
    "proc.tty": _on(lambda t, ie: t.tty, _self), "proc.pid": _on(_g_pid, _self),
    "proc.ppid": proc_ppid,
    "proc.vpid": _on(lambda t, ie: _xid(t.vpid), _self), "proc.pvpid": _on(lambda t, ie: t.vpid, _par),
    "proc.sid": _on(lambda t, ie: t.sid, _self), "proc.sname": _via(_sid_leader, _g_comm),
    "proc.sid.exe": _via(_sid_leader, _g_exe), "proc.sid.exepath": _via(_sid_leader, _g_exepath),
    "proc.vpgid": _on(lambda t, ie: t.vpgid, _self), "proc.vpgid.name": _via(_vpgid_leader, _g_comm),
    "proc.vpgid.exe": _via(_vpgid_leader, _g_exe), "proc.vpgid.exepath": _via(_vpgid_leader, _g_exepath),
    "proc.pgid": _on(lambda t, ie: t.pgid, _mainw), "proc.pgid.name": _via(_pgid_leader, _g_comm),
    "proc.pgid.exe": _via(_pgid_leader, _g_exe), "proc.pgid.exepath": _via(_pgid_leader, _g_exepath),
    "proc.duration": _on(_g_duration, _self), "proc.ppid.duration": _on(_g_duration, _par),
    "proc.pid.ts": _on(_g_start, _self), "proc.ppid.ts": _on(_g_start, _par),
    "proc.is_exe_writable": _self_exe_flag(1), "proc.is_exe_upper_layer": _self_exe_flag(2),
    "proc.is_exe_from_memfd": _self_exe_flag(4), "proc.is_exe_lower_layer": _self_exe_flag(8),
    "proc.is_sid_leader": _on(lambda t, ie: t.sid == t.vpid, _mainw),
    "proc.is_vpgid_leader": _on(lambda t, ie: t.vpgid == t.vpid, _mainw),
    "proc.is_pgid_leader": _on(lambda t, ie: t.pgid == t.pid, _mainw),
    "proc.exe_ino": _on(lambda t, ie: t.exe_ino or None, _self),
    "proc.exe_ino.ctime": _on(lambda t, ie: t.exe_ino_ctime or None, _self),
    "proc.exe_ino.mtime": _on(lambda t, ie: t.exe_ino_mtime or None, _self),
    "proc.exe_ino.ctime_duration_proc_start": _on(_ctime_proc_start, _self),
    "proc.exe_ino.ctime_duration_pidns_start": _on(_ctime_pidns_start, _self),
    "proc.pidns_init_start_ts": _on(lambda t, ie: t.pidns_init_start_ts or None, _self),
    # fd counts and limit, memory: where libs' sinsp_filter_check_thread reads them
    "proc.fdopencount": proc_fdopencount, "proc.fdlimit": proc_fdlimit, "proc.fdusage": proc_fdusage,
    "proc.vmsize": _on(lambda t, ie: t.vmsize, _self), "proc.vmrss": _on(lambda t, ie: t.vmrss, _self),
    "proc.vmswap": _on(lambda t, ie: t.vmswap, _self),
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
    "thread.vtid": _on(lambda t, ie: _xid(t.vtid), _self),
    "thread.nametid": _on(lambda t, ie: f"{t.comm}{t.tid}", _self),
    "thread.cgroups": _on(lambda t, ie: " ".join(f"{s}={p}" for s, p in t.cgroups) or None, _self),
    "thread.vmsize": _on(_own_if_main("vmsize"), _self), "thread.vmsize.b": _on(_own_if_main("vmsize", 1024), _self),
    "thread.vmrss": _on(_own_if_main("vmrss"), _self), "thread.vmrss.b": _on(_own_if_main("vmrss", 1024), _self),
}

#: fields whose argument is an ancestor index (none = any ancestor): name -> thread getter
INDEXED: dict[str, Callable] = {
    "proc.aname": _g_comm, "proc.aexe": _g_exe, "proc.aexepath": _g_exepath, "proc.aargs": _g_args,
    "proc.acmdline": _g_cmdline, "proc.apid": _g_pid,
}

#: fields that take a key or free-form argument: name -> factory(arg)
KEYED: dict[str, Callable[[Any], Callable]] = {
    "proc.env": make_proc_env, "proc.aenv": make_proc_env, "thread.cgroup": make_thread_cgroup,
}

#: returned as they are by make_accessor (they cannot raise)
UNWRAPPED = frozenset((proc_name,))
