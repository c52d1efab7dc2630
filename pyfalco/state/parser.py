# SPDX-License-Identifier: Apache-2.0
"""Keeps the thread and fd tables up to date, one event at a time (the state engine's core).

``StateParser.parse(evt)`` finds the thread of an event (creating it when missing), applies what
the event changes (clone/fork/vfork/clone3, execve/execveat, procexit, open*/creat, close, dup*,
fcntl, socket/connect/accept*/bind/send*/recv*, pipe*/socketpair, the other fd-creating calls,
chdir/fchdir/chroot, set*id, setsid, capset, close_range) and returns an InspectedEvent that
points at the thread and fd the event is about. Events come exit-only with every parameter of
the current libs table (live capture and replay alike).
"""

from __future__ import annotations

import logging
import operator
import posixpath
import struct
from collections.abc import Callable

from .. import event_codes as ec
from ..events import _PARAM_NAMES, AF_INET, AF_INET6, AF_UNIX, param_decoder
from ..initial_state import (FD_BPF, FD_DIRECTORY, FD_EVENT, FD_EVENTPOLL, FD_FIFO, FD_FILE_V2, FD_INOTIFY,
                             FD_IOURING, FD_IPV4_SERVSOCK, FD_IPV4_SOCK, FD_IPV6_SOCK, FD_MEMFD, FD_NETLINK, FD_PIDFD, FD_SIGNALFD,
                             FD_TIMERFD, FD_UNIX_SOCK, FD_UNSUPPORTED, FD_USERFAULTFD)
from .cgroups import container_from_cgroups
from .event import InspectedEvent
from .fds import (L4_ICMP, L4_RAW, L4_TCP, L4_UDP, PPM_O_CLOEXEC, PPM_O_CREAT, PPM_O_DIRECTORY, PPM_O_WRONLY,
                  ROLE_CLIENT, ROLE_NONE, ROLE_SERVER, Fd, Interfaces)
from .threads import _CGROUPS_CACHE, Proc, Thread, ThreadTable, _split_nul, args_and_str, invalid_thread, split_args

_new = object.__new__
_made_fd = Fd.made

log = logging.getLogger("pyfalco.state")

__all__ = ["StateParser", "resolve_path"]

PPM_AT_FDCWD = -100
PPM_O_TRUNC = 1 << 8
EINPROGRESS = 115
CL_FILES, CL_FS, CL_PARENT, CL_THREAD = 1 << 0, 1 << 1, 1 << 8, 1 << 13
CL_NEWPID = 1 << 6
CL_VFORK = 1 << 27              # PPM_CL_CLONE_VFORK
CL_CHILD_IN_PIDNS = 1 << 29     # PPM_CL_CHILD_IN_PIDNS: the caller is in a pid namespace
CLOSE_RANGE_CLOEXEC = 1 << 2
FCNTL_DUPFD, FCNTL_DUPFD_CLOEXEC = 1, 26
AF_NETLINK = 16

# event codes by the names the event table gives them (pyfalco.event_codes, generated)
E_OPEN = ec.PPME_SYSCALL_OPEN_X
E_BRK, E_MMAP, E_MMAP2, E_MUNMAP = (ec.PPME_SYSCALL_BRK_4_X, ec.PPME_SYSCALL_MMAP_X, ec.PPME_SYSCALL_MMAP2_X,
                                    ec.PPME_SYSCALL_MUNMAP_X)
E_CLOSE = ec.PPME_SYSCALL_CLOSE_X
E_SOCKET = ec.PPME_SOCKET_SOCKET_X
E_BIND = ec.PPME_SOCKET_BIND_X
E_CONNECT = ec.PPME_SOCKET_CONNECT_X
E_SENDTO = ec.PPME_SOCKET_SENDTO_X
E_RECVFROM = ec.PPME_SOCKET_RECVFROM_X
E_SOCKETPAIR = ec.PPME_SOCKET_SOCKETPAIR_X
E_SENDMSG = ec.PPME_SOCKET_SENDMSG_X
E_RECVMSG = ec.PPME_SOCKET_RECVMSG_X
E_SENDMMSG = ec.PPME_SOCKET_SENDMMSG_X
E_RECVMMSG = ec.PPME_SOCKET_RECVMMSG_X
E_SEND = ec.PPME_SOCKET_SEND_X
E_RECV = ec.PPME_SOCKET_RECV_X
E_ACCEPT4_5 = ec.PPME_SOCKET_ACCEPT4_5_X
E_CREAT = ec.PPME_SYSCALL_CREAT_X
E_PIPE = ec.PPME_SYSCALL_PIPE_X
E_EVENTFD = ec.PPME_SYSCALL_EVENTFD_X
E_CHDIR = ec.PPME_SYSCALL_CHDIR_X
E_FCHDIR = ec.PPME_SYSCALL_FCHDIR_X
E_SIGNALFD = ec.PPME_SYSCALL_SIGNALFD_X
E_TIMERFD = ec.PPME_SYSCALL_TIMERFD_CREATE_X
E_INOTIFY_INIT = ec.PPME_SYSCALL_INOTIFY_INIT_X
E_FCNTL = ec.PPME_SYSCALL_FCNTL_X
E_SETRESUID = ec.PPME_SYSCALL_SETRESUID_X
E_SETRESGID = ec.PPME_SYSCALL_SETRESGID_X
E_SETUID = ec.PPME_SYSCALL_SETUID_X
E_SETGID = ec.PPME_SYSCALL_SETGID_X
E_PROCEXIT = ec.PPME_PROCEXIT_1_E
E_CLONE = ec.PPME_SYSCALL_CLONE_20_X
E_FORK = ec.PPME_SYSCALL_FORK_20_X
E_VFORK = ec.PPME_SYSCALL_VFORK_20_X
E_ACCEPT = ec.PPME_SOCKET_ACCEPT_5_X
E_CHROOT = ec.PPME_SYSCALL_CHROOT_X
E_SETSID = ec.PPME_SYSCALL_SETSID_X
E_EXECVE = ec.PPME_SYSCALL_EXECVE_19_X
E_OPENAT = ec.PPME_SYSCALL_OPENAT_2_X
E_USERFAULTFD = ec.PPME_SYSCALL_USERFAULTFD_X
E_OPENAT2 = ec.PPME_SYSCALL_OPENAT2_X
E_EXECVEAT = ec.PPME_SYSCALL_EXECVEAT_X
E_CLONE3 = ec.PPME_SYSCALL_CLONE3_X
E_OPEN_BY_HANDLE_AT = ec.PPME_SYSCALL_OPEN_BY_HANDLE_AT_X
E_IO_URING_SETUP = ec.PPME_SYSCALL_IO_URING_SETUP_X
E_CAPSET = ec.PPME_SYSCALL_CAPSET_X
E_DUP2 = ec.PPME_SYSCALL_DUP2_X
E_DUP3 = ec.PPME_SYSCALL_DUP3_X
E_DUP = ec.PPME_SYSCALL_DUP_1_X
E_BPF = ec.PPME_SYSCALL_BPF_2_X
E_EPOLL_CREATE = ec.PPME_SYSCALL_EPOLL_CREATE_X
E_EPOLL_CREATE1 = ec.PPME_SYSCALL_EPOLL_CREATE1_X
E_ACCEPT4 = ec.PPME_SOCKET_ACCEPT4_6_X
E_PIPE2 = ec.PPME_SYSCALL_PIPE2_X
E_INOTIFY_INIT1 = ec.PPME_SYSCALL_INOTIFY_INIT1_X
E_EVENTFD2 = ec.PPME_SYSCALL_EVENTFD2_X
E_SIGNALFD4 = ec.PPME_SYSCALL_SIGNALFD4_X
E_MEMFD_CREATE = ec.PPME_SYSCALL_MEMFD_CREATE_X
E_PIDFD_GETFD = ec.PPME_SYSCALL_PIDFD_GETFD_X
E_PIDFD_OPEN = ec.PPME_SYSCALL_PIDFD_OPEN_X
E_SETREUID = ec.PPME_SYSCALL_SETREUID_X
E_SETREGID = ec.PPME_SYSCALL_SETREGID_X
E_CLOSE_RANGE = ec.PPME_SYSCALL_CLOSE_RANGE_X


def resolve_path(base: str, path: str) -> str:
    """``path`` made absolute against directory ``base`` and normalized (``.``, ``..``, ``//``)."""
    if not path:
        return path
    if path[0] == "/" and "/." not in path and "//" not in path and (len(path) == 1 or path[-1] != "/"):
        return path             # already normal (most execve filenames and open names)
    if path[0] != "/":
        if not base:
            return path
        path = base + "/" + path
    out = posixpath.normpath(path)
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    return out


def _fd_param_name(info) -> str | None:
    """Which parameter of an exit event holds the fd it uses (EF_USES_FD events)."""
    names = [p.name for p in info.params]
    for cand in ("fd", "oldfd", "out_fd", "fd_out", "fdout", "dirfd", "linkdirfd", "olddirfd", "olddir",
                 "fd_in", "in_fd", "fdin"):
        if cand in names:
            return cand
    return None


class StateParser:
    """Applies events to a ThreadTable. ``thread_loader(tid)`` fills in a thread missing from it
    (the /proc scan of one thread for live captures; None for replays)."""

    def __init__(self, table: ThreadTable, thread_loader: Callable[[int], Thread | None] | None = None):
        from .. import _schema
        self.table = table
        self.thread_loader = thread_loader
        self.fd_loader: Callable[[int, int], Fd | None] | None = None
        #: (tid, reaper) of a procexit applied when the next event comes (libs removes the thread
        #: after its last event); None when there is none. Public for Inspector.process_raw,
        #: whose events that change nothing skip :meth:`skip` while it is None.
        self.pending_exit: tuple[int, int] | None = None
        #: the machine's interfaces (completes socket tuples that lack an end); set by the Inspector
        self.interfaces: Interfaces | None = None
        self.n_missing_threads = 0
        #: called with (thread, container id, runtime type) when a thread turns out to be in a
        #: container (the Inspector starts the metadata lookup there; None: nothing to do)
        self.on_container: Callable[[Thread, str, str], None] | None = None
        handlers: dict[int, Callable] = {
            E_CLONE: self._clone, E_FORK: self._clone, E_VFORK: self._clone, E_CLONE3: self._clone,
            E_EXECVE: self._execve, E_EXECVEAT: self._execve, E_PROCEXIT: self._procexit,
            E_OPEN: self._open, E_OPENAT: self._open, E_OPENAT2: self._open, E_CREAT: self._open,
            E_OPEN_BY_HANDLE_AT: self._open, E_CLOSE: self._close,
            E_DUP: self._dup, E_DUP2: self._dup, E_DUP3: self._dup, E_FCNTL: self._fcntl,
            E_SOCKET: self._socket, E_CONNECT: self._connect, E_ACCEPT: self._accept, E_ACCEPT4: self._accept,
            E_ACCEPT4_5: self._accept, E_BIND: self._bind, E_SEND: self._send, E_SENDTO: self._send,
            E_SENDMSG: self._send, E_SENDMMSG: self._send,
            E_RECV: self._recv, E_RECVFROM: self._recv, E_RECVMSG: self._recv, E_RECVMMSG: self._recv,
            E_PIPE: self._pipe, E_PIPE2: self._pipe, E_SOCKETPAIR: self._socketpair,
            E_CHDIR: self._chdir, E_FCHDIR: self._fchdir, E_CHROOT: self._chroot,
            E_SETUID: self._setuid, E_SETRESUID: self._setuid, E_SETREUID: self._setuid,
            E_SETGID: self._setgid, E_SETRESGID: self._setgid, E_SETREGID: self._setgid,
            E_SETSID: self._setsid, E_CAPSET: self._capset, E_CLOSE_RANGE: self._close_range,
            E_PIDFD_GETFD: self._pidfd_getfd, E_BPF: self._bpf,
            E_BRK: self._memory, E_MMAP: self._memory, E_MMAP2: self._memory, E_MUNMAP: self._memory,
        }
        for code, ftype in ((E_EVENTFD, FD_EVENT), (E_EVENTFD2, FD_EVENT), (E_SIGNALFD, FD_SIGNALFD),
                            (E_SIGNALFD4, FD_SIGNALFD), (E_TIMERFD, FD_TIMERFD), (E_INOTIFY_INIT, FD_INOTIFY),
                            (E_INOTIFY_INIT1, FD_INOTIFY), (E_EPOLL_CREATE, FD_EVENTPOLL),
                            (E_EPOLL_CREATE1, FD_EVENTPOLL), (E_USERFAULTFD, FD_USERFAULTFD),
                            (E_IO_URING_SETUP, FD_IOURING), (E_MEMFD_CREATE, FD_MEMFD), (E_PIDFD_OPEN, FD_PIDFD)):
            handlers[code] = self._make_simple_fd(ftype)
        self.handlers = handlers
        # for the other events that use an fd: (index of the fd parameter) per event code
        self.fd_param: dict[int, int] = {}
        for info in _schema.EVENTS:
            if info.name in ("mmap", "mmap2"):
                continue          # libs attaches no fd to memory mappings
            if "USES_FD" in info.flags and info.code not in handlers:
                name = _fd_param_name(info)
                if name is not None:
                    self.fd_param[info.code] = [p.name for p in info.params].index(name)
        #: event codes libs parses without looking their thread up (EF_SKIPPARSERESET: procinfo,
        #: drop, switch, meta events): they never make a thread entry
        self.no_lookup = frozenset(e.code for e in _schema.EVENTS if "SKIPPARSERESET" in e.flags)
        #: by event code (any u16): 1 when an event of that type changes nothing but its thread's
        #: activity time (no handler, no fd parameter): what Inspector.process_raw skips decoding
        self.plain_codes = bytes(0 if code in handlers or code in self.fd_param or code in self.no_lookup else 1
                                 for code in range(65536))

    # -- threads
    def get_thread(self, tid: int, ts: int = 0) -> Thread | None:
        t = self.table.threads.get(tid)
        if t is None and tid > 0:
            t = self._load_thread(tid)
        return t

    def _load_thread(self, tid: int) -> Thread | None:
        self.n_missing_threads += 1
        t = self.thread_loader(tid) if self.thread_loader is not None else None
        if t is None:
            if self.thread_loader is not None:
                return None
            # a replay: a thread the capture never described; libs makes an "invalid" entry for it
            # (ids -1, comm <NA>, ...) that later clone/execve events fill in; its fds are kept
            t = invalid_thread(tid)
        if t.tid != t.pid and t.pid in self.table.threads:
            main = self.table.threads[t.pid]
            t.proc = main.proc
            t.proc.nthreads += 1
        self.set_container(t)
        self.table.add(t)
        return t

    def lookup_fd(self, t: Thread, fd: int) -> Fd | None:
        """The Fd of a thread; one the tables never saw (received over a unix socket, opened before the
        scan by a thread we missed) is read from /proc on live captures."""
        f = t.proc.fds.get(fd)
        if f is None and fd >= 0 and self.fd_loader is not None:
            f = self.fd_loader(t.pid, fd)
            if f is not None:
                t.proc.fds[fd] = f
        return f

    def set_container(self, t: Thread) -> None:
        hit = container_from_cgroups(t.cgroups) if t.cgroups else None
        if hit is None:
            t.container_id = ""
            return
        t.container_id = hit[0]
        if self.on_container is not None:
            self.on_container(t, hit[0], hit[1])

    # -- entry point
    def finish_pending(self) -> None:
        """Applies a procexit seen on the previous event (parse does it first)."""
        pending = self.pending_exit
        if pending is not None:
            self.pending_exit = None
            self._finish_exit(*pending)

    def skip(self, tid: int, ts: int) -> None:
        """What :meth:`parse` does for an event that changes no state (no handler, no fd
        parameter), without decoding it: a pending procexit is applied and the thread's activity
        time kept (Inspector.process_raw's events that no rule wants)."""
        if self.pending_exit is not None:
            self.finish_pending()
        t = self.table.threads.get(tid)
        if t is None:
            t = self.get_thread(tid, ts)
        if t is not None:
            t.last_ts = ts

    def close_fd(self, tid: int, ts: int, res: int, fd: int) -> None:
        """What :meth:`parse` does for a close exit whose ``res`` and ``fd`` were read straight
        from the record (Inspector.process_raw's closes that no rule wants)."""
        if self.pending_exit is not None:
            self.finish_pending()
        t = self.table.threads.get(tid)
        if t is None:
            t = self.get_thread(tid, ts)
        if t is not None:
            if res >= 0:
                t.proc.fds.pop(fd, None)
        else:
            t = self.get_thread(tid, ts)
        if t is not None:
            t.last_ts = ts

    def parse(self, evt) -> InspectedEvent:
        pending = self.pending_exit
        if pending is not None:
            self.pending_exit = None
            self._finish_exit(*pending)
        tid = evt.tid
        t = self.table.threads.get(tid)
        # InspectedEvent(evt, None, t) without the class call (as much again as these stores)
        ie = _new(InspectedEvent)
        ie.evt = evt
        ie.inspector = None
        ie.thread = t
        ie.fd = None
        ie.fdnum = -1
        ie.name_changed = False
        ie.cache = None
        ie.extra = None
        ie.prev_ts = None
        handler = self.handlers.get(evt.type)
        if handler is not None:
            try:
                handler(evt, ie)
            except PARSE_ERRORS as err:
                # a malformed event must not stop the engine
                log.debug("parsing %r: %s", evt, err)
        else:
            idx = self.fd_param.get(evt.type)
            if idx is not None:
                if t is None:
                    t = ie.thread = self.get_thread(tid, evt.ts)
                fd = evt.param(idx)
                if isinstance(fd, int):
                    ie.fdnum = fd
                    if t is not None:
                        ie.fd = self.lookup_fd(t, fd)
        t = ie.thread
        if t is None and evt.type not in self.no_lookup:
            t = ie.thread = self.get_thread(tid, evt.ts)
        if t is not None:
            t.last_ts = evt.ts
        return ie

    def _thread(self, evt, ie: InspectedEvent) -> Thread | None:
        t = ie.thread
        if t is None:
            t = ie.thread = self.get_thread(evt.tid, evt.ts)
        return t

    # -- processes
    def _clone(self, evt, ie: InspectedEvent) -> None:
        # the parameters by position (_CLONE_KEYS), not through the evt.params dict: the current
        # table's clone exit straight through its itemgetter, any other layout through _CLONE_PICK
        vals = evt._vals
        if vals is None:
            vals = evt.values()
        if len(vals) == _CLONE_CURRENT_N and evt.type == E_CLONE:
            p = _CLONE_CURRENT(vals)
        else:
            p = _CLONE_PICK(evt)
        res = p[0]
        if res is None or res < 0:
            self._thread(evt, ie)
            return
        flags = p[1] or 0
        threads = self.table.threads
        if res == 0:
            # the child's own event: its parameters describe the child
            ctid = p[2] or evt.tid
            child = threads.get(ctid)
            if child is not None and child.flags & _FROM_PARENT_EVENT:
                child.flags &= ~_FROM_PARENT_EVENT
                # libs' parse_clone_exit_child leaves a fresh entry made by the caller as it is; the
                # ids are taken here (pid namespaces), the caller's page-fault counts kept
                pf = child.pfmajor, child.pfminor
                self._fill_from_clone(child, p, evt.ts, own=True)
                child.pfmajor, child.pfminor = pf
            elif child is None or child.clone_ts != evt.ts:
                cpid = p[3] or ctid
                cptid = p[4] or 0
                parent = threads.get(cptid)
                if flags & CL_THREAD:
                    main = threads.get(cpid)
                    if main is None and cpid != ctid and self.thread_loader is not None:
                        main = self.get_thread(cpid)      # live: /proc first, as libs' get_thread
                    if (main is None or main.is_invalid) and cpid != ctid:
                        # a thread of a process the capture never described: libs'
                        # parse_clone_exit_child makes the main thread an invalid entry and
                        # patches it from the thread's event (pid, vpid, comm/exe/args; its parent
                        # unknown: ptid 0), and the thread copies nothing from it (cwd, sid,
                        # vpgid, exepath, fds stay unset); proc.pname is its process's name
                        main = self._patch_invalid_main(main, cpid, evt.params)
                        child = self._new_child(ctid, cpid, cpid, main, flags, p, evt.ts, own=True,
                                                from_invalid=True)
                        ie.thread = child
                        return
                    parent = main or parent
                    cptid = cpid if cpid != ctid else cptid
                # replay: a process whose parent the capture never described copies nothing from it
                orphan = self.thread_loader is None and not flags & CL_THREAD and (parent is None or parent.is_invalid)
                child = self._new_child(ctid, cpid, cptid, parent, flags, p, evt.ts, own=True, from_invalid=orphan)
            ie.thread = child
            return
        # the parent's event: res is the child's tid
        parent = self._thread(evt, ie)
        if res in threads:
            existing = threads[res]
            if existing.clone_ts and evt.ts - existing.clone_ts < 10_000_000_000 or existing.clone_ts == 0:
                return            # the child's event came first
        if parent is None:
            return
        from_invalid = parent.is_invalid
        if from_invalid:
            # libs' parse_clone_exit_caller: an invalid caller takes pid, ptid, vtid and vpid from
            # the event (its parent unknown: ptid 0) and gives the child nothing but the event's
            # own values; the caller takes the child's comm/exe/args
            self._patch_invalid_caller(parent, evt.params)
        if flags & (CL_NEWPID | CL_CHILD_IN_PIDNS) or parent.vtid not in (parent.tid, -1, None):
            # res is the child's id in the caller's pid namespace, not a host tid: libs' caller
            # parser (parse_clone_exit_caller) leaves the child to the child's own event. (libs
            # also leaves CLONE_PARENT children to it, for old captures; pyfalco keeps making them
            # here, from the caller they really come from: runc's init stages are recognised by
            # the memfd executable they inherit from runc:[0:PARENT])
            return
        if flags & CL_VFORK or evt.type == E_VFORK:
            # vfork: the caller resumes only after the child exec'd or exited, so the child's
            # procexit can come before this event; made here, a child already gone would stay in
            # the table (falco#3664). libs leaves vfork children to their own event too.
            return
        if flags & CL_THREAD:
            cpid, cptid = parent.pid, parent.tid      # a thread's parent is the thread that made it
        else:
            cpid = res
            cptid = parent.ptid if flags & CL_PARENT else parent.tid
        child = self._new_child(res, cpid, cptid, parent, flags, p, evt.ts, own=False, from_invalid=from_invalid)
        child.flags |= _FROM_PARENT_EVENT
        if not flags & CL_NEWPID and parent.vpid == parent.pid:
            child.vtid = res
            child.vpid = cpid

    def _patch_invalid_main(self, main: Thread | None, pid: int, p: dict) -> Thread:
        """The invalid main thread of a thread whose own clone event is the first word of its
        process (libs' parse_clone_exit_child, lookup thread invalid)."""
        if main is None:
            main = invalid_thread(pid)
            main.proc.nthreads = 1
            self.table.add(main)
        self.table._unlink(main)
        main.pid = pid
        main.ptid = self._known_parent(p.get("ptid"))
        vpid = p.get("vpid")
        main.vpid = main.vtid = vpid if vpid is not None and vpid > 0 else pid
        self._take_names(main, p)
        self.table._link(main)
        return main

    def _patch_invalid_caller(self, t: Thread, p: dict) -> None:
        """libs' parse_clone_exit_caller on an invalid caller."""
        self.table._unlink(t)
        pid = p.get("pid")
        if pid is not None and pid > 0:
            t.pid = pid
        t.ptid = self._known_parent(p.get("ptid"))
        vtid, vpid = p.get("vtid"), p.get("vpid")
        if vpid is not None and vpid > 0:
            t.vtid, t.vpid = (vtid if vtid is not None else t.tid), vpid
        else:
            t.vtid, t.vpid = t.tid, -1
        self._take_names(t, p)
        self.table._link(t)

    def _known_parent(self, ptid) -> int:
        """libs' create_thread_dependencies: a parent missing from the table (or invalid) is 0."""
        par = self.table.threads.get(ptid) if ptid is not None else None
        return ptid if par is not None and not par.is_invalid else 0

    @staticmethod
    def _take_names(t: Thread, p: dict) -> None:
        exe = p.get("exe")
        if exe is not None:
            t.exe = exe
        comm = p.get("comm")
        t.comm = comm if comm is not None else t.exe
        args = p.get("args")
        if args is not None:
            t.args = _split_nul(args)
        t.reset_strings()

    def _new_child(self, tid: int, pid: int, ptid: int, parent: Thread | None, flags: int, p: tuple, ts: int,
                   own: bool, from_invalid: bool = False) -> Thread:
        """A clone's child (``p``: the event's _CLONE_KEYS values)."""
        # a child of an invalid caller/lookup thread copies nothing from it (libs: valid_caller /
        # valid_lookup_thread false): sinsp_threadinfo::init's defaults until the event's own values
        if from_invalid and not flags & CL_THREAD:
            parent = None
        # its Proc first (no throw-away one made by Thread())
        if flags & CL_THREAD and parent is not None:
            proc = self.table.threads.get(pid, parent).proc
        elif parent is not None:
            pproc = parent.proc
            fds = pproc.fds if flags & CL_FILES else dict(pproc.fds)
            proc = pproc if flags & CL_FS and flags & CL_FILES else Proc(fds, pproc.cwd, pproc.root)
        else:
            proc = Proc(cwd="" if from_invalid else "/")
        if from_invalid:
            child = Thread(tid, pid, ptid, proc)
            child.sid = child.vpgid = child.pgid = -1
            child.fdlimit = -1            # (loginuid stays 0xffffffff, init's default too)
        elif parent is not None:
            child = Thread.child_of(parent, tid, pid, ptid, proc)
        else:
            child = Thread(tid, pid, ptid, proc)
        child.clone_ts = ts
        child.flags = flags
        proc.nthreads += 1
        self._fill_from_clone(child, p, ts, own=own)
        if from_invalid and not flags & CL_THREAD:
            child.proc.cwd = ""           # libs takes a child's cwd from its parent only
        if not own:
            # (the child's own event: _fill_from_clone did it, once: on_container fires once)
            self.set_container(child)
        self.table.add(child)
        return child

    def _fill_from_clone(self, t: Thread, p: tuple, ts: int, own: bool) -> None:
        """A clone's values (``p``: _CLONE_KEYS) on its child; ``own``: the child's own event."""
        (_res, _flags, _tid, pid, ptid, comm, exe, args, cwd, cg, uid, gid, fdlimit, vm_size, vm_rss, vm_swap,
         pgft_maj, pgft_min, pidns_ts, vtid, vpid) = p
        if comm is not None:
            t.comm = comm
        if exe is not None:
            t.exe = exe
        if args is not None:
            t.args = split_args(args)
            t.reset_strings()
        if cwd and not (t.proc.nthreads > 1 and t.tid != t.pid):
            t.proc.cwd = cwd
        if cg is not None:
            t.set_cgroups(cg)
        _take_counters(t, uid, gid, fdlimit, vm_size, vm_rss, vm_swap, pgft_maj, pgft_min)
        if pidns_ts is not None:
            t.pidns_init_start_ts = pidns_ts
        if own:
            if vtid is not None and vtid > 0:
                t.vtid = vtid
            if vpid is not None and vpid > 0:
                t.vpid = vpid
            if pid is not None and pid > 0:
                t.pid = pid
            if not t.flags & CL_THREAD and ptid is not None and ptid > 0:
                t.ptid = ptid
            self.set_container(t)

    def _execve(self, evt, ie: InspectedEvent) -> None:
        # the parameters by position, not through the evt.params dict: the current table's
        # execve exit unpacked as it is, any other layout through _EXECVE_PICK
        vals = evt._vals
        if vals is None:
            vals = evt.values()
        if len(vals) == _EXECVE_CURRENT_N and evt.type == E_EXECVE:
            (res, exe, args, _tid, pid, ptid, cwd, fdlimit, pgft_maj, pgft_min, vm_size, vm_rss, vm_swap, comm, cg,
             env, tty, vpgid, loginuid, exe_flags, cap_inheritable, cap_permitted, cap_effective, exe_ino,
             exe_ino_ctime, exe_ino_mtime, uid, trusted_exepath, pgid, gid, fname) = vals
        else:
            (res, pid, ptid, exe, args, comm, trusted_exepath, fname, cwd, env, cg, tty, vpgid, pgid, loginuid,
             exe_flags, cap_inheritable, cap_permitted, cap_effective, exe_ino, exe_ino_ctime, exe_ino_mtime, uid,
             gid, fdlimit, vm_size, vm_rss, vm_swap, pgft_maj, pgft_min) = _EXECVE_PICK(evt)
        t = ie.thread
        if t is None:
            t = ie.thread = self.get_thread(evt.tid, evt.ts)
        if res is None or res < 0:
            return
        threads = self.table.threads
        if t is None:
            t = Thread(evt.tid)
            t.proc.nthreads = 1
            self.table.add(t)
            ie.thread = t
        if pid and pid != t.pid:
            t.pid = pid
        was_invalid = t.is_invalid
        if was_invalid:
            # libs' parse_execve_exit patches an invalid entry: pid and ptid from the event (a parent
            # missing from the table: 0), vtid/vpid = tid/pid; the cwd stays unknown (libs never
            # takes it from an execve)
            self.table._unlink(t)
            t.ptid = self._known_parent(ptid)
            t.vtid, t.vpid = t.tid, t.pid
            self.table._link(t)
        elif ptid is not None and ptid > 0 and ptid != t.ptid:
            self.table._unlink(t)
            t.ptid = ptid
            self.table._link(t)
        t.exe = exe if exe is not None else t.exe
        t.args, t._args_str = args_and_str(args)
        if comm is not None:
            t.comm = comm
        exepath = trusted_exepath or ""
        if not exepath and fname:
            # resolve_path's already-normal test inline (an absolute filename, the common case)
            if fname[0] == "/" and "/." not in fname and "//" not in fname and (len(fname) == 1 or fname[-1] != "/"):
                exepath = fname
            else:
                exepath = resolve_path(t.proc.cwd, fname)
        if not exepath and t.exe and "/" in t.exe:
            exepath = resolve_path(t.proc.cwd, t.exe)
        t.exepath = exepath
        t._cmdline = None           # Thread.reset_strings, inline (_args_str was set with args)
        if cwd and not was_invalid:
            t.proc.cwd = cwd
        if env is not None:
            t.env_raw = env                     # Thread.set_env, inline
            t._env = None
        if cg is not None:
            before = t.cgroups
            hit = _CGROUPS_CACHE.get(cg) if cg.__class__ is bytes else None
            if hit is not None:
                t.cgroups = hit         # Thread.set_cgroups of a list seen before, inline
            else:
                t.set_cgroups(cg)
            if t.cgroups is not before:
                # the same list is the same tuple (set_cgroups shares one per distinct list) and
                # the thread's container was set from it (wherever cgroups are set, the container
                # is, or both are inherited): only a new list can change the container
                self.set_container(t)
        if tty is not None:
            t.tty = tty
        if vpgid is not None:
            t.vpgid = vpgid
        if pgid is not None:
            t.pgid = pgid
        if loginuid is not None:
            t.loginuid = loginuid
        if exe_flags is not None:
            t.exe_flags = exe_flags
        if cap_inheritable is not None:
            t.cap_inheritable = cap_inheritable
        if cap_permitted is not None:
            t.cap_permitted = cap_permitted
        if cap_effective is not None:
            t.cap_effective = cap_effective
        if exe_ino is not None:
            t.exe_ino = exe_ino
        if exe_ino_ctime is not None:
            t.exe_ino_ctime = exe_ino_ctime
        if exe_ino_mtime is not None:
            t.exe_ino_mtime = exe_ino_mtime
        # _take_counters, inline (a call with nine arguments per execve)
        if uid is not None:
            t.uid = uid
        if gid is not None:
            t.gid = gid
        if fdlimit is not None:
            t.fdlimit = fdlimit
        if vm_size is not None:
            t.vmsize = vm_size
        if vm_rss is not None:
            t.vmrss = vm_rss
        if vm_swap is not None:
            t.vmswap = vm_swap
        if pgft_maj is not None:
            t.pfmajor = pgft_maj
        if pgft_min is not None:
            t.pfminor = pgft_min
        t.lastexec_ts = evt.ts
        # close-on-exec descriptors are gone (a loop, not a list comprehension: no frame of its own)
        fds = t.proc.fds
        gone = None
        for n, f in fds.items():
            if f.flags & PPM_O_CLOEXEC:
                if gone is None:
                    gone = [n]
                else:
                    gone.append(n)
        if gone is not None:
            for n in gone:
                del fds[n]
        if t.proc.nthreads > 1:
            # the exec made this thread the only one of a new private table
            t.proc = Proc(dict(fds), t.proc.cwd, t.proc.root)
            t.proc.nthreads = 1
        if threads.get(t.tid) is not t:
            self.table.add(t)

    def _procexit(self, evt, ie: InspectedEvent) -> None:
        t = self._thread(evt, ie)
        if t is None:
            return
        reaper = evt.get("reaper_tid") or 0
        self.pending_exit = (t.tid, reaper)

    def _finish_exit(self, tid: int, reaper: int) -> None:
        table = self.table
        t = table.threads.get(tid)
        if t is None:
            return
        if t.tid == t.pid and t.proc.nthreads > 1:
            t.dead = True          # the leader went first: keep it for its threads
            return
        table.remove(tid, reaper)
        if t.tid != t.pid:
            main = table.threads.get(t.pid)
            if main is not None and main.dead and main.proc.nthreads <= 1:
                table.remove(main.tid, reaper)

    # -- file descriptors
    def _dir_of(self, t: Thread, dirfd) -> str:
        if dirfd is None or dirfd == PPM_AT_FDCWD:
            return t.proc.cwd
        f = t.proc.fds.get(dirfd)
        return f.name if f is not None else ""

    def _open(self, evt, ie: InspectedEvent) -> None:
        layout = _OPEN_LAYOUT.get(evt.type)
        if layout is None or evt.nparams != layout[0]:
            self._open_generic(evt, ie)
            return
        t = ie.thread
        if t is None:
            t = ie.thread = self.get_thread(evt.tid, evt.ts)
        self.open_layout(evt, ie, t, layout)

    def open_layout(self, evt, ie: InspectedEvent, t: Thread | None, layout: tuple) -> None:
        """The handler of an open exit in the current table's layout (``layout``: its row of
        OPEN_LAYOUT, ``evt.nparams`` its first item) by thread ``t`` (looked up already).
        Inspector.process_raw calls it straight away for the opens of known threads."""
        # parameters by position (what _open_generic reads by name)
        _n, i_name, i_dirfd, i_flags, i_dev, i_ino, dec = layout
        code = evt.type
        vals = evt._vals
        if vals is None:
            # Event.values() with the layout's decoder at hand
            off = evt.off
            try:
                vals = dec(evt.buf, off, off + evt.len)
            except struct.error:
                vals = None
            if vals is None:
                vals = evt.values()     # lengths that do not add up: the generic path's error
            else:
                evt._vals = vals
        if t is None:
            return
        fd = vals[0]
        raw = vals[i_name] or ""
        flags = PPM_O_CREAT | PPM_O_WRONLY | PPM_O_TRUNC if code == E_CREAT else vals[i_flags] or 0
        proc = t.proc
        if not raw:
            name = raw
        elif raw[0] == "/" and "/." not in raw and "//" not in raw and (len(raw) == 1 or raw[-1] != "/"):
            name = raw      # resolve_path, inlined for absolute names that need no normalization
        else:
            # the directory it is relative to: the cwd or dirfd's (resolve_path ignores it for
            # an absolute name)
            base = proc.cwd
            if i_dirfd >= 0:
                dirfd = vals[i_dirfd]
                if dirfd is not None and dirfd != PPM_AT_FDCWD:
                    df = proc.fds.get(dirfd)
                    base = df.name if df is not None else ""
            name = resolve_path(base, raw)
        f = _made_fd(fd if fd is not None else -1, FD_DIRECTORY if flags & PPM_O_DIRECTORY else FD_FILE_V2, name,
                     flags, raw, vals[i_dev] or 0, vals[i_ino] or 0, t.pid)
        ie.fd = f
        if fd is not None and fd >= 0:
            proc.fds[fd] = f
            ie.fdnum = fd
        else:
            ie.fdnum = -1

    def _open_generic(self, evt, ie: InspectedEvent) -> None:
        p = evt.params
        t = self._thread(evt, ie)
        code = evt.type
        fd = p.get("fd")
        if code == E_OPEN_BY_HANDLE_AT:
            raw = p.get("path") or ""
        else:
            raw = p.get("name") or ""
        flags = p.get("flags") or 0
        if code == E_CREAT:
            flags = PPM_O_CREAT | PPM_O_WRONLY | PPM_O_TRUNC
        if t is None:
            return
        if code in (E_OPENAT, E_OPENAT2):
            base = self._dir_of(t, p.get("dirfd"))
        else:
            base = t.proc.cwd
        name = resolve_path(base, raw) if raw else raw
        f = Fd(fd if fd is not None else -1, FD_DIRECTORY if flags & PPM_O_DIRECTORY else FD_FILE_V2, name, flags)
        f.nameraw = raw
        f.dev = p.get("dev") or 0
        f.ino = p.get("ino") or 0
        f.pid = t.pid
        ie.fd = f
        if fd is not None and fd >= 0:
            t.proc.fds[fd] = f
            ie.fdnum = fd
        else:
            ie.fdnum = -1

    def _close(self, evt, ie: InspectedEvent) -> None:
        t = ie.thread
        if t is None:
            t = ie.thread = self.get_thread(evt.tid, evt.ts)
        if evt.nparams != 2 or not _CLOSE_RES_FD:
            fd = evt.get("fd")
            res = evt.get("res")
        else:
            vals = evt._vals
            if vals is None:
                vals = evt.values()
            res, fd = vals
        if fd is None or t is None:
            return
        ie.fdnum = fd
        fds = t.proc.fds
        ie.fd = fds.get(fd)
        if res is not None and res >= 0:
            fds.pop(fd, None)

    def _dup(self, evt, ie: InspectedEvent) -> None:
        p = evt.params
        t = self._thread(evt, ie)
        old = p.get("oldfd")
        if t is None or old is None:
            return
        fds = t.proc.fds
        src = self.lookup_fd(t, old)
        ie.fdnum = old
        ie.fd = src
        res = p.get("res")
        if res is None or res < 0 or res == old:
            return
        if src is None:
            fds.pop(res, None)
            return
        new = src.copy(res)
        flags = p.get("flags") or 0
        new.flags = (new.flags & ~PPM_O_CLOEXEC) | (flags & PPM_O_CLOEXEC)
        fds[res] = new

    def _fcntl(self, evt, ie: InspectedEvent) -> None:
        p = evt.params
        t = self._thread(evt, ie)
        fd = p.get("fd")
        if t is None or fd is None:
            return
        fds = t.proc.fds
        ie.fdnum = fd
        ie.fd = src = self.lookup_fd(t, fd)
        cmd = p.get("cmd")
        res = p.get("res")
        if cmd in (FCNTL_DUPFD, FCNTL_DUPFD_CLOEXEC) and res is not None and res >= 0 and src is not None:
            new = src.copy(res)
            new.flags = (new.flags & ~PPM_O_CLOEXEC) | (PPM_O_CLOEXEC if cmd == FCNTL_DUPFD_CLOEXEC else 0)
            fds[res] = new

    def _new_fd(self, t: Thread, ie: InspectedEvent, fd, ftype: int, name: str = "", flags: int = 0) -> Fd | None:
        if fd is None or fd < 0:
            ie.fdnum = -1
            return None
        f = Fd(fd, ftype, name, flags)
        f.pid = t.pid
        t.proc.fds[fd] = f
        ie.fd = f
        ie.fdnum = fd
        return f

    def _make_simple_fd(self, ftype: int) -> Callable:
        def handler(evt, ie: InspectedEvent) -> None:
            t = self._thread(evt, ie)
            if t is None:
                return
            p = evt.params
            fd = p.get("fd") if "fd" in p and evt.type in (E_MEMFD_CREATE, E_PIDFD_OPEN) else p.get("res")
            name = ""
            if ftype == FD_MEMFD:
                name = "memfd:" + (p.get("name") or "")
            flags = p.get("flags") or 0
            cloexec = PPM_O_CLOEXEC if ftype in (FD_SIGNALFD, FD_INOTIFY, FD_EVENT, FD_USERFAULTFD, FD_PIDFD) \
                and isinstance(flags, int) and flags & PPM_O_CLOEXEC else 0
            self._new_fd(t, ie, fd, ftype, name, cloexec)
        return handler

    def _bpf(self, evt, ie: InspectedEvent) -> None:
        t = self._thread(evt, ie)
        fd = evt.get("fd")
        if t is not None and evt.get("cmd") in (0, 5) and fd is not None and fd > 0:
            self._new_fd(t, ie, fd, FD_BPF, "", PPM_O_CLOEXEC)

    def _pidfd_getfd(self, evt, ie: InspectedEvent) -> None:
        t = self._thread(evt, ie)
        if t is not None:
            self._new_fd(t, ie, evt.get("fd"), FD_UNSUPPORTED, "", PPM_O_CLOEXEC)

    def _pipe(self, evt, ie: InspectedEvent) -> None:
        p = evt.params
        t = self._thread(evt, ie)
        res = p.get("res")
        if t is None or res is None or res < 0:
            return
        cloexec = (p.get("flags") or 0) & PPM_O_CLOEXEC
        ino = p.get("ino") or 0
        pair = []
        for key in ("fd1", "fd2"):
            f = self._new_fd(t, ie, p.get(key), FD_FIFO, "", cloexec)
            if f is not None:
                f.ino = ino
                pair.append(f)
        ie.extra = tuple(pair)
        # libs: the event's fd is the last one added (the write end)
        ie.fd, ie.fdnum = (pair[-1], pair[-1].fd) if pair else (None, -1)

    def _socketpair(self, evt, ie: InspectedEvent) -> None:
        p = evt.params
        t = self._thread(evt, ie)
        res = p.get("res")
        if t is None or res is None or res < 0:
            return
        domain = p.get("domain")
        src, peer = p.get("source") or 0, p.get("peer") or 0
        pair = []
        for key, a, b in (("fd1", src, peer), ("fd2", peer, src)):
            f = self._new_fd(t, ie, p.get(key), FD_UNIX_SOCK if domain == AF_UNIX else FD_UNSUPPORTED)
            if f is not None:
                if domain == AF_UNIX:
                    f.unix_source, f.unix_dest = a, b      # libs names them nothing
                pair.append(f)
        ie.extra = tuple(pair)
        ie.fd, ie.fdnum = (pair[0], pair[0].fd) if pair else (None, -1)

    # -- sockets (libsinsp's rules: parsers.cpp add_socket, parse_bind/connect/accept_exit,
    #    parse_read/write_exit with update_fd and the role guess, fdinfo.cpp set_net_role_by_guessing)
    def _socket(self, evt, ie: InspectedEvent) -> None:
        p = evt.params
        t = self._thread(evt, ie)
        if t is None:
            return
        domain = p.get("domain")
        f = self._new_fd(t, ie, p.get("fd"), FD_UNSUPPORTED, "", (p.get("flags") or 0) & PPM_O_CLOEXEC)
        if f is not None:
            _init_socket(f, domain, p.get("type") or 0, p.get("proto") or 0)

    def _connect(self, evt, ie: InspectedEvent) -> None:
        # the parameters by position (res, tuple, fd, addr), not through the evt.params dict
        vals = evt._vals
        if vals is None:
            vals = evt.values()
        if len(vals) == 4 and _CONNECT_CURRENT:
            res, tup, fd, addr = vals
        else:
            res, tup, fd, addr = _CONNECT_PICK(evt)
        t = ie.thread
        if t is None:
            t = ie.thread = self.get_thread(evt.tid, evt.ts)
        if t is None or fd is None:
            return
        ie.fdnum = fd
        f = t.proc.fds.get(fd)
        if f is None and fd >= 0 and self.fd_loader is not None:
            f = self.lookup_fd(t, fd)
        ie.fd = f
        if f is None or res is None or (res < 0 and res != -EINPROGRESS):
            return            # libs leaves a socket whose connect failed as it was
        old = f.name
        f.connected = True
        if tup is None or (tup.family in (AF_INET, AF_INET6) and tup.dip is None):
            if addr is None:
                return
            if addr.family in (AF_INET, AF_INET6) and addr.ip is not None:
                f.type = FD_IPV6_SOCK if addr.family == AF_INET6 else FD_IPV4_SOCK
                f.dip, f.dport = addr.ip, addr.port or 0
            else:
                f.name = str(addr)
        elif tup.family in (AF_INET, AF_INET6):
            f.type = FD_IPV6_SOCK if tup.family == AF_INET6 else FD_IPV4_SOCK
            if f.dport and (f.dip, f.dport) != (tup.dip, tup.dport or 0):
                f.redirected = True      # (kept for the sysdig differential: 0.29 did not overwrite)
            changed = f.update_addresses(tup.sip, tup.sport or 0, tup.dip, tup.dport or 0, overwrite_dest=True)
            if changed and f.role == ROLE_SERVER and f.l4proto == L4_UDP:
                f.swap()      # a connect by a UDP server
            f.name = f.tuple_name()
        elif tup.family == AF_UNIX:
            if f.type != FD_UNIX_SOCK:
                return
            f.set_unix(tup.source, tup.dest, tup.path or "")
        else:
            return
        if f.role == ROLE_NONE:
            f.role = ROLE_CLIENT
        ie.name_changed = f.name != old

    def _accept(self, evt, ie: InspectedEvent) -> None:
        p = evt.params
        t = self._thread(evt, ie)
        fd = p.get("fd")
        if t is None or fd is None or fd < 0:
            return
        ie.fdnum = fd
        tup = p.get("tuple")
        if tup is None or tup.family not in (AF_INET, AF_INET6, AF_UNIX):
            return            # libs adds no fd it cannot describe
        flags = p.get("flags") or 0
        f = self._new_fd(t, ie, fd, FD_UNSUPPORTED, "", PPM_O_CLOEXEC if flags & 0o2000000 else 0)
        if tup.family == AF_UNIX:
            f.set_unix(tup.source, tup.dest, tup.path or "")
        else:
            f.type = FD_IPV6_SOCK if tup.family == AF_INET6 else FD_IPV4_SOCK
            f.sip, f.sport, f.dip, f.dport = tup.sip, tup.sport or 0, tup.dip, tup.dport or 0
            f.l4proto = L4_TCP
            f.name = str(tup)
        f.nameraw = f.name
        f.role = ROLE_SERVER
        f.connected = True

    def _bind(self, evt, ie: InspectedEvent) -> None:
        p = evt.params
        t = self._thread(evt, ie)
        fd = p.get("fd")
        if t is None or fd is None:
            return
        ie.fdnum = fd
        f = ie.fd = self.lookup_fd(t, fd)
        res = p.get("res")
        addr = p.get("addr")
        if f is None or addr is None or res is None or res < 0:
            return
        old = f.name
        if addr.family in (AF_INET, AF_INET6) and addr.ip is not None and addr.port:
            f.set_server(addr.ip, addr.port)
        f.name = str(addr)
        ie.name_changed = f.name != old

    def _send(self, evt, ie: InspectedEvent) -> None:
        self._rw_socket(evt, ie, False)

    def _recv(self, evt, ie: InspectedEvent) -> None:
        self._rw_socket(evt, ie, True)
        ctl = evt.get("msgcontrol")
        if ctl and self.fd_loader is not None and ie.thread is not None and (evt.get("res") or 0) >= 0:
            self._scm_rights(ie.thread, bytes(ctl))

    def _rw_socket(self, evt, ie: InspectedEvent, incoming: bool) -> None:
        """send*/recv*: a datagram socket (or one whose creation we missed) takes its ends from the
        event's tuple; its role is guessed the first time; names are ``client->server``."""
        t = self._thread(evt, ie)
        fd = evt.get("fd")
        if t is None or fd is None:
            return
        ie.fdnum = fd
        f = ie.fd = self.lookup_fd(t, fd)
        res = evt.get("res")
        ok = isinstance(res, int) and res >= 0
        if f is None:
            # libs infers a UDP socket for a successful send on an fd it never saw created
            if incoming or not ok or fd < 0:
                return
            tup = evt.get("tuple")
            if tup is None or tup.family not in (AF_INET, AF_INET6):
                return
            f = self._new_fd(t, ie, fd, FD_UNSUPPORTED)
            _init_socket(f, tup.family, 2, 17)
        if not ok:
            return
        if f.type in (FD_IPV4_SOCK, FD_IPV6_SOCK):
            f.connected = True
            if f.name and f.l4proto == L4_TCP:
                return          # a named TCP socket keeps its ends: the tuple is not decoded
        tup = evt.get("tuple")
        if tup is None:
            return
        old = f.name
        if tup.family in (AF_INET, AF_INET6):
            if tup.dip is None:
                return
            f.type = FD_IPV6_SOCK if tup.family == AF_INET6 else FD_IPV4_SOCK
            if not f.update_addresses(tup.sip, tup.sport or 0, tup.dip, tup.dport or 0):
                return
            if not f.l4proto:
                f.l4proto = L4_UDP     # an address that changes mid-connection is not TCP
            if self.interfaces is not None:
                self.interfaces.complete(f)
            if f.role == ROLE_NONE:
                f.role = _guess_role(t, f, incoming)
            if f.role == (ROLE_CLIENT if incoming else ROLE_SERVER):
                f.swap()
            f.name = f.tuple_name()
        elif tup.family == AF_UNIX:
            f.set_unix(tup.source, tup.dest, tup.path or "")
        else:
            return
        ie.name_changed = f.name != old

    def _scm_rights(self, t: Thread, ctl: bytes) -> None:
        """fds received over a unix socket (SCM_RIGHTS): described from /proc (live only)."""
        off = 0
        while off + 16 <= len(ctl):
            clen, level, ctype = struct.unpack_from("<QiI", ctl, off)
            if clen < 16:
                break
            if level == 1 and ctype == 1:     # SOL_SOCKET, SCM_RIGHTS
                n = (min(clen, len(ctl) - off) - 16) // 4
                for fd in struct.unpack_from(f"<{n}i", ctl, off + 16):
                    f = self.fd_loader(t.pid, fd)
                    if f is not None:
                        t.proc.fds[fd] = f
            off += (clen + 7) & ~7

    # -- process attributes
    def _chdir(self, evt, ie: InspectedEvent) -> None:
        t = self._thread(evt, ie)
        res = evt.get("res")
        path = evt.get("path")
        if t is not None and res == 0 and path:
            t.proc.cwd = resolve_path(t.proc.cwd, path)

    def _fchdir(self, evt, ie: InspectedEvent) -> None:
        t = self._thread(evt, ie)
        fd = evt.get("fd")
        if t is None or fd is None:
            return
        ie.fdnum = fd
        f = ie.fd = t.proc.fds.get(fd)
        if evt.get("res") == 0 and f is not None and f.name:
            t.proc.cwd = f.name

    def _chroot(self, evt, ie: InspectedEvent) -> None:
        t = self._thread(evt, ie)
        path = evt.get("path")
        if t is not None and evt.get("res") == 0 and path:
            root = resolve_path(t.proc.cwd, path)
            t.proc.root = root if t.proc.root == "/" else t.proc.root.rstrip("/") + root

    def _setuid(self, evt, ie: InspectedEvent) -> None:
        t = self._thread(evt, ie)
        if t is None or evt.get("res") != 0:
            return
        p = evt.params
        uid = p.get("euid") if "euid" in p else p.get("uid")
        if uid is not None and uid != 0xFFFFFFFF:
            t.uid = uid

    def _setgid(self, evt, ie: InspectedEvent) -> None:
        t = self._thread(evt, ie)
        if t is None or evt.get("res") != 0:
            return
        p = evt.params
        gid = p.get("egid") if "egid" in p else p.get("gid")
        if gid is not None and gid != 0xFFFFFFFF:
            t.gid = gid

    def _memory(self, evt, ie: InspectedEvent) -> None:
        """brk/mmap/mmap2/munmap exits carry the thread's memory after the call: libs
        (parse_brk_munmap_mmap_exit) takes vm_size/vm_rss/vm_swap from them."""
        t = self._thread(evt, ie)
        if t is None:
            return
        size, rss, swap = evt.get("vm_size"), evt.get("vm_rss"), evt.get("vm_swap")
        if size is not None:
            t.vmsize = size
        if rss is not None:
            t.vmrss = rss
        if swap is not None:
            t.vmswap = swap

    def _setsid(self, evt, ie: InspectedEvent) -> None:
        t = self._thread(evt, ie)
        res = evt.get("res")
        if t is not None and res is not None and res >= 0:
            t.sid = res
            t.vpgid = t.vpid
            t.pgid = t.pid

    def _capset(self, evt, ie: InspectedEvent) -> None:
        t = self._thread(evt, ie)
        if t is None or evt.get("res") != 0:
            return
        p = evt.params
        for key in ("cap_inheritable", "cap_permitted", "cap_effective"):
            v = p.get(key)
            if v is not None:
                setattr(t, key, v)

    def _close_range(self, evt, ie: InspectedEvent) -> None:
        t = self._thread(evt, ie)
        if t is None or evt.get("res") != 0:
            return
        p = evt.params
        first, last, flags = p.get("first") or 0, p.get("last"), p.get("flags") or 0
        if last is None:
            return
        fds = t.proc.fds
        for fd in [n for n in fds if first <= n <= last]:
            if flags & CLOSE_RANGE_CLOEXEC:
                fds[fd].flags |= PPM_O_CLOEXEC
            else:
                del fds[fd]


def _take_counters(t: Thread, uid, gid, fdlimit, vm_size, vm_rss, vm_swap, pgft_maj, pgft_min) -> None:
    """The ids, fd limit, memory and page-fault counters a clone or execve exit carries, each
    where the event has it (None: the thread keeps its value)."""
    if uid is not None:
        t.uid = uid
    if gid is not None:
        t.gid = gid
    if fdlimit is not None:
        t.fdlimit = fdlimit
    if vm_size is not None:
        t.vmsize = vm_size
    if vm_rss is not None:
        t.vmrss = vm_rss
    if vm_swap is not None:
        t.vmswap = vm_swap
    if pgft_maj is not None:
        t.pfmajor = pgft_maj
    if pgft_min is not None:
        t.pfminor = pgft_min


_FROM_PARENT_EVENT = 1 << 30   # Thread.flags: created from the parent's clone event, not its own yet


def _init_socket(f: Fd, domain, stype: int, proto: int) -> None:
    """A new socket's type and L4 protocol, from socket()'s domain/type/protocol (libs' add_socket)."""
    if domain == AF_UNIX:
        f.type = FD_UNIX_SOCK
    elif domain in (AF_INET, AF_INET6):
        f.type = FD_IPV4_SOCK if domain == AF_INET else FD_IPV6_SOCK
        base = stype & 0xFF
        l4 = 0
        if proto == 6:                       # IPPROTO_TCP
            l4 = L4_RAW if base == 3 else L4_TCP
        elif proto == 17:                    # IPPROTO_UDP
            l4 = L4_RAW if base == 3 else L4_UDP
        elif proto == 0:                     # IPPROTO_IP: by the socket type
            l4 = {1: L4_TCP, 2: L4_UDP}.get(base, 0)
        elif proto == 1:                     # IPPROTO_ICMP
            l4 = L4_RAW if base == 3 else L4_ICMP
        elif proto == 255:                   # IPPROTO_RAW
            l4 = L4_RAW
        f.l4proto = l4
    elif domain == AF_NETLINK:
        f.type = FD_NETLINK
    else:
        f.type = FD_UNSUPPORTED


def _guess_role(t: Thread, f: Fd, incoming: bool) -> int:
    """libs' role guess for a socket first seen in a send/receive: a client unless this process
    holds an IPv4 socket bound to (or connected to) its server port; a server if no IPv4 socket of
    the process uses its client port; else by direction (a server reads first, a client writes)."""
    fds = t.proc.fds.values()
    if not any((x.type == FD_IPV4_SOCK and x.dport == f.dport) or (x.type == FD_IPV4_SERVSOCK and x.sport == f.dport)
               for x in fds):
        return ROLE_CLIENT
    if not any(x.type == FD_IPV4_SOCK and x.sport == f.sport for x in fds):
        return ROLE_SERVER
    return ROLE_SERVER if incoming else ROLE_CLIENT


class _Picker:
    """``pick(evt)``: the event's parameters named ``keys``, in that order, each what
    ``evt.params.get(key)`` gives (None when the event's layout lacks it) but read by position
    from ``evt.values()`` (no dict of every parameter: ~3 us per execve)."""

    __slots__ = ("keys", "getters")

    def __init__(self, keys: tuple[str, ...]):
        self.keys = keys
        self.getters: dict[int, Callable] = {}

    def _getter(self, code: int, n: int) -> Callable:
        names = _PARAM_NAMES[code] if 0 <= code < len(_PARAM_NAMES) else ()
        names = names[:n]
        # evt.params is dict(zip(names, values)): a repeated name keeps its last value;
        # index n is the None padded on
        last = {name: i for i, name in enumerate(names)}
        return operator.itemgetter(*(last.get(k, n) for k in self.keys))

    def __call__(self, evt) -> tuple:
        vals = evt._vals
        if vals is None:
            vals = evt.values()
        n = len(vals)
        key = evt.type << 32 | n
        g = self.getters.get(key)
        if g is None:
            g = self.getters[key] = self._getter(evt.type, n)
        return g(vals + _PAD)


_PAD = (None,)
_CLONE_PICK = _Picker(("res", "flags", "tid", "pid", "ptid", "comm", "exe", "args", "cwd", "cgroups", "uid", "gid",
                       "fdlimit", "vm_size", "vm_rss", "vm_swap", "pgft_maj", "pgft_min", "pidns_init_start_ts",
                       "vtid", "vpid"))
_CONNECT_PICK = _Picker(("res", "tuple", "fd", "addr"))
_EXECVE_PICK = _Picker(("res", "pid", "ptid", "exe", "args", "comm", "trusted_exepath", "filename", "cwd", "env",
                        "cgroups", "tty", "vpgid", "pgid", "loginuid", "flags", "cap_inheritable", "cap_permitted",
                        "cap_effective", "exe_ino", "exe_ino_ctime", "exe_ino_mtime", "uid", "gid", "fdlimit",
                        "vm_size", "vm_rss", "vm_swap", "pgft_maj", "pgft_min"))


def _open_layouts() -> dict:
    """(nparams, index of name|path, dirfd, flags, dev, ino, the records' decoder) of the open calls
    in the current table (-1: the call has no such parameter)."""
    from .. import _schema
    out = {}
    for code in (E_OPEN, E_OPENAT, E_OPENAT2, E_CREAT, E_OPEN_BY_HANDLE_AT):
        names = [p.name for p in _schema.EVENTS[code].params]
        if names[0] != "fd":
            continue

        def ix(name, names=names):
            return names.index(name) if name in names else -1
        i_name = ix("path") if code == E_OPEN_BY_HANDLE_AT else ix("name")
        i_dirfd = ix("dirfd") if code in (E_OPENAT, E_OPENAT2) else -1
        i_flags, i_dev, i_ino = ix("flags"), ix("dev"), ix("ino")
        if min(i_name, i_dev, i_ino) < 0 or (i_flags < 0 and code != E_CREAT):
            continue
        out[code] = (len(names), i_name, i_dirfd, i_flags, i_dev, i_ino, param_decoder(code, len(names)))
    return out


_OPEN_LAYOUT = OPEN_LAYOUT = _open_layouts()
#: what a handler may raise on a malformed event (parse() logs it and goes on)
PARSE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError)


def _close_res_fd() -> bool:
    from .. import _schema
    return [p.name for p in _schema.EVENTS[E_CLOSE].params] == ["res", "fd"]


_CLOSE_RES_FD = _close_res_fd()
_CONNECT_CURRENT = _PARAM_NAMES[E_CONNECT] == _CONNECT_PICK.keys
# the clone exit layout _clone reads with one itemgetter (0: none; any other layout: _CLONE_PICK;
# a repeated name is not expected there, so the first index of each key is its index)
_CLONE_CURRENT_N = len(_PARAM_NAMES[E_CLONE]) if set(_CLONE_PICK.keys) <= set(_PARAM_NAMES[E_CLONE]) \
    and len(set(_PARAM_NAMES[E_CLONE])) == len(_PARAM_NAMES[E_CLONE]) else 0
_CLONE_CURRENT = operator.itemgetter(*(_PARAM_NAMES[E_CLONE].index(k) for k in _CLONE_PICK.keys)) \
    if _CLONE_CURRENT_N else None
# the execve exit layout _execve unpacks as it is (0: the table has another one: _EXECVE_PICK)
_EXECVE_CURRENT_N = 31 if _PARAM_NAMES[E_EXECVE] == (
    "res", "exe", "args", "tid", "pid", "ptid", "cwd", "fdlimit", "pgft_maj", "pgft_min", "vm_size", "vm_rss",
    "vm_swap", "comm", "cgroups", "env", "tty", "vpgid", "loginuid", "flags", "cap_inheritable", "cap_permitted",
    "cap_effective", "exe_ino", "exe_ino_ctime", "exe_ino_mtime", "uid", "trusted_exepath", "pgid", "gid",
    "filename") else 0
