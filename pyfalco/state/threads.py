# SPDX-License-Identifier: Apache-2.0
"""The thread table: one Thread per live thread, the process tree through ``ptid``.

Threads of one process share one :class:`Proc` (fd table, cwd, root, thread count), as the
kernel shares them with CLONE_THREAD; a fork gets a copy (CLONE_FILES alone shares the fd table,
CLONE_FS alone the cwd). Strings that rules read often are cached on the thread and dropped when
an execve changes them, so extracting ``proc.cmdline`` twice costs one join.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..initial_state import ThreadInfo
from .fds import Fd, fd_from_info

__all__ = ["Thread", "Proc", "ThreadTable", "PPM_EXE_WRITABLE", "PPM_EXE_UPPER_LAYER", "PPM_EXE_FROM_MEMFD",
           "PPM_EXE_LOWER_LAYER", "invalid_thread", "UNKNOWN_ID"]

PPM_EXE_WRITABLE, PPM_EXE_UPPER_LAYER, PPM_EXE_FROM_MEMFD, PPM_EXE_LOWER_LAYER = 1, 2, 4, 8
LOGINUID_NONE = 0xFFFFFFFF


class Proc:
    """What the threads of one process share."""

    __slots__ = ("fds", "cwd", "root", "nthreads")

    def __init__(self, fds: dict | None = None, cwd: str = "/", root: str = "/"):
        self.fds: dict[int, Fd] = {} if fds is None else fds
        self.cwd = cwd
        self.root = root
        self.nthreads = 0


def _split_nul(raw: bytes | None) -> tuple[str, ...]:
    if not raw:
        return ()
    items = bytes(raw).split(b"\0")
    if items and items[-1] == b"":
        items.pop()
    return tuple(i.decode("utf-8", "surrogateescape") for i in items)


#: split_args's tuples by their raw bytes (immutable, shared: the same command lines recur)
_ARGS_CACHE: dict[bytes, tuple] = {}


def split_args(raw: bytes | None) -> tuple[str, ...]:
    """``_split_nul(raw)`` of a clone's or execve's args, kept per distinct value."""
    if not raw:
        return ()
    hit = _ARGS_CACHE.get(raw)
    if hit is None:
        hit = _split_nul(raw)
        if len(_ARGS_CACHE) > 4096:
            _ARGS_CACHE.clear()
        _ARGS_CACHE[raw] = hit
    return hit


#: args_and_str's (tuple, joined) pairs by their raw bytes
_ARGS_STR_CACHE: dict[bytes, tuple] = {}
_NO_ARGS: tuple = ((), "")


def args_and_str(raw: bytes | None) -> tuple:
    """``(split_args(raw), " ".join(split_args(raw)))``, kept per distinct value: an execve sets
    a thread's args and their joined string (Thread.args_str) at once, so proc.args and
    proc.cmdline do no join on a new exec of a command line seen before."""
    if not raw:
        return _NO_ARGS
    hit = _ARGS_STR_CACHE.get(raw)
    if hit is None:
        args = split_args(raw)
        hit = (args, " ".join(args))
        if len(_ARGS_STR_CACHE) > 4096:
            _ARGS_STR_CACHE.clear()
        _ARGS_STR_CACHE[raw] = hit
    return hit


#: Thread.set_cgroups's parsed lists by their raw bytes (immutable tuples, shared)
_CGROUPS_CACHE: dict[bytes, tuple] = {}

#: libs' names for some cgroup subsystems (sinsp_threadinfo::set_cgroups): the kernel's cgroup v2
#: "io" is v1's "blkio", and "perf"/"mem" are short forms
_SUBSYS_NAMES = {"perf": "perf_event", "mem": "memory", "io": "blkio"}


def cgroup_subsys_name(subsys: str) -> str:
    """A cgroup subsystem's name as libs keeps it: without a "_cgroup" suffix, and renamed as above."""
    subsys = subsys.replace("_cgroup", "", 1)
    return _SUBSYS_NAMES.get(subsys, subsys)


class Thread:
    """One thread. Process-wide values (exe, args, env, ...) are copies of the process's."""

    __slots__ = ("tid", "pid", "ptid", "sid", "vpgid", "pgid", "vtid", "vpid", "comm", "exe", "exepath",
                 "args", "_env", "env_raw", "tty", "uid", "gid", "loginuid", "cap_inheritable", "cap_permitted",
                 "cap_effective", "exe_flags", "exe_ino", "exe_ino_ctime", "exe_ino_mtime", "clone_ts",
                 "pidns_init_start_ts", "fdlimit", "vmsize", "vmrss", "vmswap", "pfmajor", "pfminor",
                 "cgroups", "container_id", "proc", "children", "dead", "last_ts", "flags", "_cmdline",
                 "_args_str", "lastexec_ts", "__weakref__")

    def __init__(self, tid: int, pid: int | None = None, ptid: int = 0, proc: Proc | None = None):
        self.tid = tid
        self.pid = tid if pid is None else pid
        self.ptid = ptid
        self.sid = 0
        self.vpgid = 0
        self.pgid = 0
        self.vtid = tid
        self.vpid = self.pid
        self.comm = ""
        self.exe = ""
        self.exepath = ""
        self.args: tuple[str, ...] = ()
        self._env: tuple[str, ...] | None = ()
        self.env_raw: bytes | None = None
        self.tty = 0
        self.uid = 0
        self.gid = 0
        self.loginuid = LOGINUID_NONE
        self.cap_inheritable = 0
        self.cap_permitted = 0
        self.cap_effective = 0
        self.exe_flags = 0
        self.exe_ino = 0
        self.exe_ino_ctime = 0
        self.exe_ino_mtime = 0
        self.clone_ts = 0
        self.pidns_init_start_ts = 0
        self.fdlimit = 0
        self.vmsize = self.vmrss = self.vmswap = 0
        self.pfmajor = self.pfminor = 0
        self.cgroups: tuple[tuple[str, str], ...] = ()
        self.container_id = ""
        if proc is None:
            proc = Proc()
            proc.nthreads = 1
        # a given proc is taken as it is (a clone's child: the caller counts it in)
        self.proc = proc
        self.children: set[int] | None = None
        self.dead = False
        self.last_ts = 0
        self.flags = 0
        self.lastexec_ts = 0
        self._cmdline = None
        self._args_str = None

    # -- derived strings (cached until exec)
    @property
    def is_main(self) -> bool:
        return self.tid == self.pid

    @property
    def is_invalid(self) -> bool:
        """libs' sinsp_threadinfo::is_invalid: an id is unknown (a thread a capture never described)."""
        return self.tid < 0 or self.pid < 0 or self.ptid < 0

    @property
    def fds(self) -> dict[int, Fd]:
        return self.proc.fds

    @property
    def cwd(self) -> str:
        return self.proc.cwd

    @property
    def env(self) -> tuple[str, ...]:
        env = self._env
        if env is None:
            env = self._env = _split_nul(self.env_raw)
            self.env_raw = None
        return env

    def set_env(self, raw: bytes | None) -> None:
        self.env_raw = raw
        self._env = None

    def args_str(self) -> str:
        s = self._args_str
        if s is None:
            s = self._args_str = " ".join(self.args)
        return s

    def cmdline(self) -> str:
        s = self._cmdline
        if s is None:
            a = self.args_str()
            s = self._cmdline = f"{self.comm} {a}" if a else self.comm
        return s

    def reset_strings(self) -> None:
        self._cmdline = None
        self._args_str = None

    def set_cgroups(self, raw: bytes | None) -> None:
        if raw is None:
            return
        raw = bytes(raw)
        # the same few cgroup lists come with every clone and execve: parsed once each
        hit = _CGROUPS_CACHE.get(raw)
        if hit is None:
            out = []
            for item in _split_nul(raw):
                subsys, sep, path = item.partition("=")
                if sep:
                    out.append((cgroup_subsys_name(subsys), path))
            hit = tuple(out)
            if len(_CGROUPS_CACHE) > 4096:
                _CGROUPS_CACHE.clear()
            _CGROUPS_CACHE[raw] = hit
        self.cgroups = hit

    def cgroup(self, subsys: str) -> str | None:
        for s, p in self.cgroups:
            if s == subsys:
                return p
        return None

    @classmethod
    def child_of(cls, parent: "Thread", tid: int, pid: int, ptid: int, proc: Proc) -> "Thread":
        """``Thread(tid, pid, ptid, proc)`` then ``inherit(parent)``, each slot set once (a clone's
        child: ~45 stores instead of ~70)."""
        t = cls.__new__(cls)
        t.tid = tid
        t.pid = pid
        t.ptid = ptid
        t.vtid = tid
        t.vpid = pid
        t.clone_ts = 0
        t.vmsize = t.vmrss = t.vmswap = 0
        t.pfmajor = t.pfminor = 0
        t.proc = proc
        t.children = None
        t.dead = False
        t.last_ts = 0
        t.flags = 0
        t._cmdline = None
        t._args_str = None
        t.inherit(parent)
        return t

    def inherit(self, parent: "Thread") -> None:
        """Copies what a child starts with from the thread that cloned it (before the clone's own values)."""
        # straight assignments (a loop of getattr/setattr cost ~3 us per clone): INHERITED's slots
        self.comm = parent.comm
        self.exe = parent.exe
        self.exepath = parent.exepath
        self.args = parent.args
        self._env = parent._env
        self.env_raw = parent.env_raw
        self.tty = parent.tty
        self.uid = parent.uid
        self.gid = parent.gid
        self.loginuid = parent.loginuid
        self.cap_inheritable = parent.cap_inheritable
        self.cap_permitted = parent.cap_permitted
        self.cap_effective = parent.cap_effective
        self.exe_flags = parent.exe_flags
        self.exe_ino = parent.exe_ino
        self.exe_ino_ctime = parent.exe_ino_ctime
        self.exe_ino_mtime = parent.exe_ino_mtime
        self.sid = parent.sid
        self.vpgid = parent.vpgid
        self.pgid = parent.pgid
        self.cgroups = parent.cgroups
        self.container_id = parent.container_id
        self.fdlimit = parent.fdlimit
        self.pidns_init_start_ts = parent.pidns_init_start_ts
        self.lastexec_ts = parent.lastexec_ts

    def __repr__(self) -> str:
        return f"<Thread {self.tid} pid={self.pid} ptid={self.ptid} {self.comm!r}>"


#: the slots Thread.inherit copies from the thread that cloned a child
INHERITED = ("comm", "exe", "exepath", "args", "_env", "env_raw", "tty", "uid", "gid", "loginuid", "cap_inheritable",
             "cap_permitted", "cap_effective", "exe_flags", "exe_ino", "exe_ino_ctime", "exe_ino_mtime", "sid",
             "vpgid", "pgid", "cgroups", "container_id", "fdlimit", "pidns_init_start_ts", "lastexec_ts")

#: libs' uid/gid/loginuid of a thread whose ids are unknown
UNKNOWN_ID = 0xFFFFFFFF


def invalid_thread(tid: int) -> Thread:
    """The entry libs makes for a thread of a replay that neither the capture's process list nor a
    clone describes (sinsp_thread_manager::get_thread when scap_proc_get fails: "a fake entry to
    avoid a continuous lookup"): pid and ptid -1, comm and exe ``<NA>``, uid/gid/loginuid
    0xffffffff, and sinsp_threadinfo::init's defaults for the rest (sid, vpgid, vtid, vpid and
    fdlimit -1, no cwd). Later clone and execve events of the thread fill in what they carry."""
    t = Thread(tid, -1, -1)
    t.comm = t.exe = "<NA>"
    t.uid = t.gid = t.loginuid = UNKNOWN_ID
    t.sid = t.vpgid = t.pgid = -1
    t.vtid = t.vpid = -1
    t.fdlimit = -1
    t.proc.cwd = ""
    return t


def thread_from_info(info: ThreadInfo) -> Thread:
    """A Thread from an initial-state ThreadInfo (the /proc scan or a capture's process list)."""
    t = Thread(info.tid, info.pid, info.ptid)
    t.comm = info.comm
    t.exe = info.exe
    t.exepath = info.exepath
    t.args = tuple(info.args)
    t._env = tuple(info.env)
    t.proc.cwd = info.cwd or "/"
    t.proc.root = info.root or "/"
    t.sid = info.sid
    t.vpgid = info.vpgid
    t.pgid = info.pgid
    t.vtid = info.vtid or info.tid
    t.vpid = info.vpid or info.pid
    t.fdlimit = info.fdlimit
    t.flags = info.flags
    t.uid = info.uid
    t.gid = info.gid
    t.loginuid = info.loginuid
    t.tty = info.tty
    t.cap_inheritable = info.cap_inheritable
    t.cap_permitted = info.cap_permitted
    t.cap_effective = info.cap_effective
    t.exe_flags = ((PPM_EXE_WRITABLE if info.exe_writable else 0) | (PPM_EXE_UPPER_LAYER if info.exe_upper_layer
                   else 0) | (PPM_EXE_LOWER_LAYER if info.exe_lower_layer else 0)
                   | (PPM_EXE_FROM_MEMFD if info.exe_from_memfd else 0))
    t.exe_ino = info.exe_ino
    t.exe_ino_ctime = info.exe_ino_ctime
    t.exe_ino_mtime = info.exe_ino_mtime
    t.pidns_init_start_ts = info.pidns_init_start_ts
    t.clone_ts = info.start_ts
    t.vmsize, t.vmrss, t.vmswap = info.vmsize_kb, info.vmrss_kb, info.vmswap_kb
    t.pfmajor, t.pfminor = info.pfmajor, info.pfminor
    t.cgroups = tuple((cgroup_subsys_name(s), p) for s, p in info.cgroups)
    for fd, finfo in info.fds.items():
        t.proc.fds[fd] = fd_from_info(finfo, info.pid)
    return t


class ThreadTable:
    """tid -> Thread, with the process tree (``children``) and a size bound.

    ``max_threads`` bounds memory: past it, the least recently active thread is evicted.
    """

    def __init__(self, max_threads: int = 262144):
        self.threads: dict[int, Thread] = {}
        self.max_threads = max_threads
        self.n_evicted = 0

    def __len__(self) -> int:
        return len(self.threads)

    def __iter__(self) -> Iterator[Thread]:
        return iter(list(self.threads.values()))

    def get(self, tid: int) -> Thread | None:
        return self.threads.get(tid)

    def main_thread(self, t: Thread) -> Thread:
        if t.tid == t.pid:
            return t
        m = self.threads.get(t.pid)
        return m if m is not None else t

    def parent(self, t: Thread) -> Thread | None:
        """The thread that created t (for a process: its parent; for a thread: the thread that
        cloned it, as libs keeps it). None at the top of the known tree."""
        ptid = t.ptid
        if ptid <= 0 or ptid == t.tid:
            return None
        return self.threads.get(ptid)

    def ancestors(self, t: Thread, limit: int = 64) -> Iterator[Thread]:
        """Parent, grandparent, ... (cycles and depth are bounded)."""
        seen = 0
        p = self.parent(t)
        while p is not None and seen < limit:
            yield p
            seen += 1
            nxt = self.parent(p)
            if nxt is p:
                break
            p = nxt

    def ancestor(self, t: Thread, n: int) -> Thread | None:
        if n <= 0:
            return t
        p: Thread | None = t
        for _ in range(n):
            p = self.parent(p)
            if p is None:
                return None
        return p

    def add(self, t: Thread) -> Thread:
        threads = self.threads
        old = threads.get(t.tid)
        if old is not None and old is not t:
            self._unlink(old)
        if len(threads) >= self.max_threads and t.tid not in threads:
            self._evict()
        threads[t.tid] = t
        self._link(t)
        return t

    def _link(self, t: Thread) -> None:
        if t.tid == t.pid and t.ptid > 0:
            p = self.threads.get(t.ptid)
            if p is not None:
                p = self.main_thread(p)
                if p.children is None:
                    p.children = set()
                p.children.add(t.tid)

    def _unlink(self, t: Thread) -> None:
        p = self.threads.get(t.ptid)
        if p is not None:
            p = self.main_thread(p)
            if p.children:
                p.children.discard(t.tid)

    def remove(self, tid: int, reaper: int = 0) -> None:
        """Drops a thread; children of a process that is gone go to ``reaper`` (or stay orphaned)."""
        t = self.threads.pop(tid, None)
        if t is None:
            return
        self._unlink(t)
        t.proc.nthreads -= 1
        if t.children:
            new_parent = self.threads.get(reaper) if reaper > 0 else None
            if new_parent is not None:
                new_parent = self.main_thread(new_parent)
            for ctid in t.children:
                c = self.threads.get(ctid)
                if c is None:
                    continue
                if new_parent is not None and new_parent is not c:
                    c.ptid = new_parent.tid
                    if new_parent.children is None:
                        new_parent.children = set()
                    new_parent.children.add(ctid)
                else:
                    c.ptid = 0
            t.children = None

    def _evict(self) -> None:
        # the least recently active thread that is not a parent of anything known
        victim = min(self.threads.values(), key=lambda x: (bool(x.children), x.last_ts))
        self.remove(victim.tid)
        self.n_evicted += 1
