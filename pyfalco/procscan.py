# SPDX-License-Identifier: Apache-2.0
"""The /proc scan: the InitialState of a live capture (threads and their fds, users, groups,
interfaces, machine), read the way libscap reads it.

Sockets are resolved through the socket tables of each network namespace
(``/proc/<pid>/net/{tcp,tcp6,udp,udp6,raw,raw6,unix}``, read once per namespace): a TCP socket in
LISTEN state, or a UDP/raw socket with no peer, is a server socket (``ip:port``); a connected
one keeps local as source and peer as destination, as libscap writes it. ``scan_thread(tid)``
reads one thread, for threads the event stream shows before any clone of theirs.

Everything tolerates processes that vanish mid-scan (they are skipped).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat as _stat
import struct
import time
from pathlib import Path

from .initial_state import (FD_BPF, FD_DIRECTORY, FD_EVENT, FD_EVENTPOLL, FD_FIFO, FD_FILE_V2, FD_INOTIFY,
                            FD_IOURING, FD_IPV4_SERVSOCK, FD_IPV4_SOCK, FD_IPV6_SERVSOCK, FD_IPV6_SOCK, FD_MEMFD,
                            FD_NETLINK, FD_PIDFD, FD_SIGNALFD, FD_TIMERFD, FD_UNIX_SOCK, FD_UNSUPPORTED,
                            FD_USERFAULTFD, FdInfo, GroupInfo, InitialState, InterfaceInfo, MachineInfo,
                            ThreadInfo, UserInfo)
from .hostroot import host_path

__all__ = ["scan", "scan_thread", "scan_process", "read_users", "read_groups", "read_interfaces",
           "read_machine", "linux_open_flags_to_ppm", "boot_time_ns", "NetTables"]

# the host's /proc: $HOST_ROOT/proc when the agent runs in a container (hostroot.py)
PROC = host_path("/proc")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
L4_TCP, L4_UDP, L4_RAW = 2, 3, 5


def boot_time_ns() -> int:
    """Wall-clock time of the boot, ns since the epoch."""
    try:
        return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        with open(f"{PROC}/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return int(line.split()[1]) * 1_000_000_000
        return 0


def _read(path: str, mode: str = "r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


# Linux O_* (octal, x86_64) -> PPM_O_*
_LINUX_TO_PPM = ((0o100, 1 << 2), (0o2000, 1 << 3), (0o10000, 1 << 4), (0o200, 1 << 5), (0o4000, 1 << 6),
                 (0o4010000, 1 << 7), (0o1000, 1 << 8), (0o40000, 1 << 9), (0o200000, 1 << 10),
                 (0o100000, 1 << 11), (0o2000000, 1 << 12), (0o20200000, 1 << 13))


def linux_open_flags_to_ppm(flags: int) -> int:
    acc = flags & 3
    out = {0: 1, 1: 2, 2: 3}.get(acc, 0)
    for lin, ppm in _LINUX_TO_PPM:
        if flags & lin == lin:
            out |= ppm
    return out


# ---- network namespaces' socket tables --------------------------------------------------------

def _hex_ip(text: str) -> bytes:
    raw = bytes.fromhex(text)
    # each 32-bit word is printed in host (little-endian) order
    return b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))


class NetTables:
    """Socket inode -> FdInfo template, per network namespace."""

    def __init__(self):
        self._by_ns: dict[str, dict[int, FdInfo]] = {}

    def lookup(self, pid: int, inode: int) -> FdInfo | None:
        ns = _readlink(f"{PROC}/{pid}/ns/net") or "?"
        table = self._by_ns.get(ns)
        if table is None:
            table = self._by_ns[ns] = self._load(pid)
        return table.get(inode)

    @staticmethod
    def _load(pid: int) -> dict[int, FdInfo]:
        out: dict[int, FdInfo] = {}
        base = f"{PROC}/{pid}/net"
        for name, proto, v6 in (("tcp", L4_TCP, False), ("tcp6", L4_TCP, True), ("udp", L4_UDP, False),
                                ("udp6", L4_UDP, True), ("raw", L4_RAW, False), ("raw6", L4_RAW, True)):
            text = _read(f"{base}/{name}")
            if not text:
                continue
            for line in text.splitlines()[1:]:
                parts = line.split()
                if len(parts) < 10:
                    continue
                try:
                    lip, lport = parts[1].split(":")
                    rip, rport = parts[2].split(":")
                    state = int(parts[3], 16)
                    inode = int(parts[9])
                    lip_b, rip_b = _hex_ip(lip), _hex_ip(rip)
                    lport_i, rport_i = int(lport, 16), int(rport, 16)
                except ValueError:
                    continue
                if inode == 0:
                    continue
                if v6:
                    # v4-mapped addresses of dual-stack sockets stay IPv6 sockets, as in libscap
                    pass
                listening = (proto == L4_TCP and state == 0x0A) or (proto != L4_TCP and rport_i == 0)
                if listening:
                    out[inode] = FdInfo(0, FD_IPV6_SERVSOCK if v6 else FD_IPV4_SERVSOCK, ino=inode, sip=lip_b,
                                        sport=lport_i, l4proto=proto)
                else:
                    out[inode] = FdInfo(0, FD_IPV6_SOCK if v6 else FD_IPV4_SOCK, ino=inode, sip=lip_b,
                                        dip=rip_b, sport=lport_i, dport=rport_i, l4proto=proto)
        text = _read(f"{base}/unix")
        if text:
            for line in text.splitlines()[1:]:
                parts = line.split(None, 7)
                if len(parts) < 7:
                    continue
                try:
                    ptr = int(parts[0].rstrip(":"), 16)
                    inode = int(parts[6])
                except ValueError:
                    continue
                path = parts[7] if len(parts) > 7 else ""
                if path.startswith("@"):
                    path = path[1:]
                out[inode] = FdInfo(0, FD_UNIX_SOCK, name=path, ino=inode, unix_source=ptr)
        return out


_ANON = {"[eventfd]": FD_EVENT, "[signalfd]": FD_SIGNALFD, "[eventpoll]": FD_EVENTPOLL, "inotify": FD_INOTIFY,
         "[timerfd]": FD_TIMERFD, "[userfaultfd]": FD_USERFAULTFD, "[io_uring]": FD_IOURING, "[pidfd]": FD_PIDFD,
         "bpf-map": FD_BPF, "bpf-prog": FD_BPF, "bpf_link": FD_BPF, "bpf-link": FD_BPF}


def _fd_info(pid: int, fd: int, target: str, net: NetTables) -> FdInfo | None:
    if target.startswith("socket:["):
        try:
            inode = int(target[8:-1])
        except ValueError:
            return None
        tmpl = net.lookup(pid, inode)
        if tmpl is None:
            return FdInfo(fd, FD_UNSUPPORTED, name=target, ino=inode)
        info = FdInfo(fd, tmpl.type, tmpl.name, tmpl.ino, 0, 0, tmpl.sip, tmpl.dip, tmpl.sport, tmpl.dport,
                      tmpl.l4proto, tmpl.unix_source, tmpl.unix_dest)
        return info
    if target.startswith("pipe:["):
        try:
            ino = int(target[6:-1])
        except ValueError:
            ino = 0
        return FdInfo(fd, FD_FIFO, name=target, ino=ino)
    if target.startswith("anon_inode:"):
        kind = target[11:]
        return FdInfo(fd, _ANON.get(kind, FD_UNSUPPORTED), name=target)
    if target.startswith("/memfd:"):
        name = target[1:]
        if name.endswith(" (deleted)"):
            name = name[:-10]
        return FdInfo(fd, FD_MEMFD, name=name)
    if target.startswith("net:["):
        return FdInfo(fd, FD_NETLINK, name=target)
    if not target.startswith("/"):
        return FdInfo(fd, FD_UNSUPPORTED, name=target)
    flags = 0
    mnt = _read(f"{PROC}/{pid}/fdinfo/{fd}")
    if mnt:
        for line in mnt.splitlines():
            if line.startswith("flags:"):
                try:
                    flags = linux_open_flags_to_ppm(int(line.split()[1], 8))
                except ValueError:
                    pass
                break
    try:
        st = os.stat(f"{PROC}/{pid}/fd/{fd}")
        ino, dev = st.st_ino, st.st_dev
        isdir = (st.st_mode & 0o170000) == 0o040000
    except OSError:
        ino = dev = 0
        isdir = False
    if isdir:
        return FdInfo(fd, FD_DIRECTORY, name=target, ino=ino, open_flags=flags | (1 << 10), dev=dev)
    return FdInfo(fd, FD_FILE_V2, name=target, ino=ino, open_flags=flags, dev=dev)


def _fds(pid: int, net: NetTables) -> dict[int, FdInfo]:
    out: dict[int, FdInfo] = {}
    base = f"{PROC}/{pid}/fd"
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for name in names:
        try:
            fd = int(name)
        except ValueError:
            continue
        target = _readlink(f"{base}/{name}")
        if target is None:
            continue
        info = _fd_info(pid, fd, target, net)
        if info is not None:
            info.fd = fd
            out[fd] = info
    return out


# ---- threads ------------------------------------------------------------------------------

def _status(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def _cgroups(text: str | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    unified = None
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, subsys, path = parts
        if not subsys:
            unified = path
            continue
        for s in subsys.split(","):
            if s.startswith("name="):
                continue
            out.append((s, path))
    if not out and unified is not None:
        for s in ("cpuset", "cpu", "memory", "pids"):
            out.append((s, unified))
    return out


def scan_thread(tid: int, pid: int | None = None, boot_ns: int | None = None, net: NetTables | None = None,
                with_fds: bool = True, layers: dict | None = None) -> ThreadInfo | None:
    """One thread from /proc (its process's fds too when it is the main thread), or None.
    ``layers`` memoizes the exe's overlay layer per (pid, exe inode) across a process's threads."""
    if pid is None:
        st = _read(f"{PROC}/{tid}/status")
        if st is None:
            return None
        try:
            pid = int(_status(st).get("Tgid", tid))
        except ValueError:
            pid = tid
    base = f"{PROC}/{pid}/task/{tid}"
    status_text = _read(f"{base}/status")
    stat_text = _read(f"{base}/stat")
    if status_text is None or stat_text is None:
        return None
    status = _status(status_text)
    try:
        rparen = stat_text.rindex(")")
        stat = stat_text[rparen + 2:].split()
        comm = stat_text[stat_text.index("(") + 1:rparen]
    except ValueError:
        return None
    t = ThreadInfo(tid=tid, pid=pid, ptid=0)
    t.comm = (_read(f"{base}/comm") or comm).rstrip("\n")
    try:
        t.ptid = int(status.get("PPid", "0"))
        t.pgid = int(stat[2])
        t.sid = int(stat[3])
        t.tty = int(stat[4])
        t.pfminor = int(stat[7])
        t.pfmajor = int(stat[9])
        start_ticks = int(stat[19])
    except (ValueError, IndexError):
        start_ticks = 0
    if boot_ns is None:
        boot_ns = boot_time_ns()
    t.start_ts = boot_ns + start_ticks * 1_000_000_000 // _CLK_TCK
    uid = status.get("Uid", "0 0").split()
    gid = status.get("Gid", "0 0").split()
    t.uid = int(uid[1]) if len(uid) > 1 else 0
    t.gid = int(gid[1]) if len(gid) > 1 else 0
    nspid = status.get("NSpid", "").split()
    nstgid = status.get("NStgid", "").split()
    t.vtid = int(nspid[-1]) if nspid else tid
    t.vpid = int(nstgid[-1]) if nstgid else pid
    t.cap_inheritable = int(status.get("CapInh", "0"), 16)
    t.cap_permitted = int(status.get("CapPrm", "0"), 16)
    t.cap_effective = int(status.get("CapEff", "0"), 16)
    for key, attr in (("VmSize", "vmsize_kb"), ("VmRSS", "vmrss_kb"), ("VmSwap", "vmswap_kb")):
        v = status.get(key)
        if v:
            try:
                setattr(t, attr, int(v.split()[0]))
            except ValueError:
                pass
    pbase = f"{PROC}/{pid}"
    cmdline = _read(f"{pbase}/cmdline", "rb") or b""
    argv = [a.decode("utf-8", "surrogateescape") for a in cmdline.split(b"\0")]
    if argv and argv[-1] == "":
        argv.pop()
    if argv:
        t.exe = argv[0]
        t.args = argv[1:]
    else:
        t.exe = t.comm          # kernel threads
    exe = exepath_raw = _readlink(f"{pbase}/exe") or ""
    if exe.endswith(" (deleted)"):
        exe = exe[:-10]
    t.exepath = exe
    t.exe_from_memfd = exe.startswith("/memfd:")
    if exe:
        try:
            st = os.stat(f"{pbase}/exe")
            t.exe_ino, t.exe_ino_ctime, t.exe_ino_mtime = st.st_ino, st.st_ctime_ns, st.st_mtime_ns
        except OSError:
            pass
        if t.exe_ino:
            key = (pid, t.exe_ino)
            hit = layers.get(key) if layers is not None else None
            if hit is None:
                hit = exe_layer(pid, exe, t.exe_ino, deleted=exe != exepath_raw)
                if layers is not None:
                    layers[key] = hit
            t.exe_upper_layer, t.exe_lower_layer = hit
    t.cwd = _readlink(f"{base}/cwd") or "/"
    t.root = _readlink(f"{pbase}/root") or "/"
    env = _read(f"{pbase}/environ", "rb") or b""
    t.env = [e.decode("utf-8", "surrogateescape") for e in env.split(b"\0") if e]
    lu = _read(f"{pbase}/loginuid")
    try:
        t.loginuid = int(lu) if lu else 0xFFFFFFFF
    except ValueError:
        t.loginuid = 0xFFFFFFFF
    limits = _read(f"{pbase}/limits") or ""
    for line in limits.splitlines():
        if line.startswith("Max open files"):
            try:
                t.fdlimit = int(line.split()[3])
            except (ValueError, IndexError):
                pass
    t.cgroups = _cgroups(_read(f"{base}/cgroup"))
    # vpgid: the process group as seen in the pid namespace (same as pgid on the host namespace)
    t.vpgid = t.pgid if t.vpid == pid else _ns_pgid(pid, t.pgid)
    if with_fds and tid == pid:
        t.fds = _fds(pid, net or NetTables())
    return t


def _unescape_mount(text: str) -> str:
    """A mountinfo field: the kernel writes space, tab, newline and backslash as octal escapes."""
    if "\\" not in text:
        return text
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def exe_layer(pid: int, exepath: str, exe_ino: int, deleted: bool = False) -> tuple[bool, bool]:
    """(upper, lower): the overlayfs layer of a running process's executable, for processes that
    were running before the capture (the drivers compute it at execve: PPM_EXE_UPPER_LAYER /
    PPM_EXE_LOWER_LAYER, from the overlay inode's upper dentry).

    The mount holding the executable in the process's own mount table (/proc/PID/mountinfo,
    longest mount point that is a prefix of the path) must be an overlay. The file is in the upper
    layer when the overlay's upperdir has it with the running executable's inode number (overlayfs
    reports the real inode of a non-directory whose layers share one filesystem): a file written
    in the container or copied up there. Otherwise it is the image's (lower). A deleted executable
    is upper unless the upper layer holds a whiteout at its path (a lower file deleted from the
    container). Not overlay: neither."""
    if not exepath.startswith("/"):
        return False, False
    text = _read(f"{PROC}/{pid}/mountinfo")
    if not text:
        return False, False
    best: tuple[str, str, str] | None = None
    for line in text.splitlines():
        parts = line.split(" ")
        try:
            sep = parts.index("-", 6)
        except ValueError:
            continue
        if len(parts) < sep + 4:
            continue
        mnt = _unescape_mount(parts[4])
        if exepath == mnt or exepath.startswith(mnt.rstrip("/") + "/"):
            if best is None or len(mnt) >= len(best[0]):
                best = (mnt, parts[sep + 1], parts[sep + 3])
    if best is None or best[1] != "overlay":
        return False, False
    upperdir = next((o[len("upperdir="):] for o in best[2].split(",") if o.startswith("upperdir=")), "")
    if not upperdir:
        return False, True            # a read-only overlay: only lower layers
    rel = exepath[len(best[0].rstrip("/")):]
    try:
        st = os.lstat(host_path(_unescape_mount(upperdir)) + rel)
    except OSError:
        return deleted, not deleted   # a deleted exe missing from the upper layer was only there
    if _stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return False, True            # a whiteout: the lower file, deleted in the container
    if deleted:
        return False, False           # another file has the path now: which layer ran is unknown
    return (True, False) if st.st_ino == exe_ino else (False, True)


def _ns_pgid(pid: int, pgid: int) -> int:
    st = _read(f"{PROC}/{pgid}/status")
    if st is not None:
        nstgid = _status(st).get("NStgid", "").split()
        if nstgid:
            return int(nstgid[-1])
    return pgid


def scan_process(pid: int, boot_ns: int | None = None, net: NetTables | None = None) -> list[ThreadInfo]:
    """Every thread of one process (fds on the main thread)."""
    boot_ns = boot_time_ns() if boot_ns is None else boot_ns
    net = net or NetTables()
    try:
        tids = sorted(int(x) for x in os.listdir(f"{PROC}/{pid}/task") if x.isdigit())
    except OSError:
        return []
    out = []
    layers: dict = {}
    for tid in tids:
        t = scan_thread(tid, pid, boot_ns, net, layers=layers)
        if t is not None:
            out.append(t)
    return out


# ---- users, groups, interfaces, machine -------------------------------------------------------

def read_users(root: str = "/") -> dict[int, UserInfo]:
    out: dict[int, UserInfo] = {}
    text = _read(os.path.join(root, "etc/passwd"))
    for line in (text or "").splitlines():
        parts = line.split(":")
        if len(parts) < 7 or line.startswith("#"):
            continue
        try:
            uid, gid = int(parts[2]), int(parts[3])
        except ValueError:
            continue
        out.setdefault(uid, UserInfo(uid, gid, parts[0], parts[5], parts[6]))
    return out


def read_groups(root: str = "/") -> dict[int, GroupInfo]:
    out: dict[int, GroupInfo] = {}
    text = _read(os.path.join(root, "etc/group"))
    for line in (text or "").splitlines():
        parts = line.split(":")
        if len(parts) < 3 or line.startswith("#"):
            continue
        try:
            gid = int(parts[2])
        except ValueError:
            continue
        out.setdefault(gid, GroupInfo(gid, parts[0]))
    return out


def read_interfaces() -> list[InterfaceInfo]:
    import fcntl
    out: list[InterfaceInfo] = []
    try:
        names = [n for _i, n in socket.if_nameindex()]
    except OSError:
        names = []
    except AttributeError:          # PyPy 3.9's socket module has no if_nameindex
        idx = []
        try:
            for name in os.listdir("/sys/class/net"):
                try:
                    idx.append((int(_read(f"/sys/class/net/{name}/ifindex") or 0), name))
                except ValueError:
                    pass
        except OSError:
            pass
        names = [name for _i, name in sorted(idx)]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for name in names:
            req = struct.pack("256s", name.encode()[:15])
            try:
                addr = fcntl.ioctl(s.fileno(), 0x8915, req)[20:24]       # SIOCGIFADDR
                mask = fcntl.ioctl(s.fileno(), 0x891B, req)[20:24]       # SIOCGIFNETMASK
            except OSError:
                continue
            try:
                bcast = fcntl.ioctl(s.fileno(), 0x8919, req)[20:24]      # SIOCGIFBRDADDR
            except OSError:
                bcast = b""
            out.append(InterfaceInfo(name, socket.AF_INET, addr, mask, bcast))
    finally:
        s.close()
    text = _read(f"{PROC}/net/if_inet6") or ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 6:
            continue
        try:
            addr = bytes.fromhex(parts[0])
            plen = int(parts[2], 16)
        except ValueError:
            continue
        mask = int(ipaddress.IPv6Network(f"::/{plen}").netmask).to_bytes(16, "big")
        out.append(InterfaceInfo(parts[5], socket.AF_INET6, addr, mask))
    return out


def read_machine() -> MachineInfo:
    m = MachineInfo()
    m.num_cpus = os.cpu_count() or 0
    for line in (_read(f"{PROC}/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            m.memory_size_bytes = int(line.split()[1]) * 1024
            break
    try:
        m.max_pid = int(_read(f"{PROC}/sys/kernel/pid_max") or 0)
    except ValueError:
        pass
    m.hostname = socket.gethostname()
    m.boot_ts_epoch = boot_time_ns()
    return m


def scan(with_fds: bool = True, with_env: bool = True) -> InitialState:
    """The whole InitialState of this machine, from /proc and /etc (needs root for other users' fds)."""
    st = InitialState()
    st.machine = read_machine()
    boot_ns = st.machine.boot_ts_epoch
    net = NetTables()
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            tids = sorted(int(x) for x in os.listdir(f"{PROC}/{pid}/task") if x.isdigit())
        except OSError:
            continue
        for tid in tids:
            t = scan_thread(tid, pid, boot_ns, net, with_fds)
            if t is None:
                continue
            if not with_env:
                t.env = []
            st.threads[tid] = t
    st.users = read_users(host_path("/"))
    st.groups = read_groups(host_path("/"))
    st.interfaces = read_interfaces()
    return st


def proc_exists(tid: int) -> bool:
    return Path(f"{PROC}/{tid}").exists()
