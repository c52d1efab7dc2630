# SPDX-License-Identifier: Apache-2.0
"""Turns the metadata blocks of a capture file into an InitialState, and an InitialState into
the metadata blocks of the writer profile (SCAP_FORMAT.md sections 6-10 and 13).

Reading accepts every block version in the spec: MI; PL V1..V9 (and the pre-release ids), with
both V9 tails; FDL v1/v2; IL v1/v2; UL v1/v2. Writing produces MI, IL_V2, UL_V2, PL_V9 with the
layout-A tail (loginuid, exe_writable, 3 capability sets: 29 bytes) and FDL_V2 with fd types
<= 16, which both Debian's sysdig 0.29 and current Falco read.

A malformed block raises CaptureFileError naming the block and the byte inside its body.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from ..errors import CaptureFileError
from ..initial_state import (FD_BPF, FD_DIRECTORY, FD_EVENT, FD_EVENTPOLL, FD_FIFO, FD_FILE, FD_FILE_V2,
                             FD_INOTIFY, FD_IOURING, FD_IPV4_SERVSOCK, FD_IPV4_SOCK, FD_IPV6_SERVSOCK,
                             FD_IPV6_SOCK, FD_MEMFD, FD_NETLINK, FD_PIDFD, FD_SIGNALFD, FD_TIMERFD, FD_UNIX_SOCK,
                             FD_UNSUPPORTED, FD_USERFAULTFD, FdInfo, GroupInfo, InitialState, InterfaceInfo,
                             MachineInfo, ThreadInfo, UserInfo)

# Block type ids (section 3).
BT_SHB = 0x0A0D0D0A
BT_MI = 0x201
BT_PL_V9 = 0x215
BT_FDL = 0x203
BT_FDL_V2 = 0x218
BT_IL = 0x205
BT_IL_V2 = 0x219
BT_UL = 0x206
BT_UL_V2 = 0x220
MI_TYPES = {0x201, 0x8002ABCD}
# process list block type -> version
PL_VERSIONS = {0x202: 1, 0x8000ABCD: 1, 0x207: 2, 0x8013ABCD: 2, 0x209: 3, 0x8014ABCD: 3, 0x210: 4, 0x211: 5,
               0x212: 6, 0x213: 7, 0x214: 8, 0x215: 9}
FDL_TYPES = {0x203: 1, 0x8001ABCD: 1, 0x218: 2}
IL_TYPES = {0x205: 1, 0x8011ABCD: 1, 0x219: 2}
UL_TYPES = {0x206: 1, 0x8012ABCD: 1, 0x220: 2}

# fd types whose payload is just a name (section 10); 17-21 are NEW only
_NAMED_FD_TYPES = {FD_FILE, FD_DIRECTORY, FD_FIFO, FD_EVENT, FD_UNSUPPORTED, FD_SIGNALFD, FD_EVENTPOLL, FD_INOTIFY,
                   FD_TIMERFD, FD_NETLINK, FD_BPF, FD_USERFAULTFD, FD_IOURING, FD_MEMFD, FD_PIDFD}
_IF_IPV4, _IF_IPV6, _IF_IPV4_NOLINKSPEED, _IF_IPV6_NOLINKSPEED = 1, 2, 3, 4
AF_INET, AF_INET6 = 2, 10

# Limits of the strings in a PL entry (section 9) and of fd names (section 10): the writer cuts.
_MAX_STR = 1024
_MAX_LIST = 4096
_MAX_FD_NAME = 1023
_MAX_CRED = 255


class _Short(Exception):
    """A read past the end of the data; turned into CaptureFileError with the block's context."""


class _Cursor:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def left(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise _Short(f"{n} bytes needed at byte {self.pos}, {self.end - self.pos} left")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def i64(self) -> int:
        return struct.unpack("<q", self.take(8))[0]

    def sbytes(self) -> bytes:
        return self.take(self.u16())

    def str(self) -> str:
        return _text(self.sbytes())


def _text(b: bytes) -> str:
    # a NUL inside (some producers count it) ends the string; undecodable bytes survive a round trip
    return b.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _split_list(b: bytes) -> list[str]:
    """`a\\0b\\0` -> ['a', 'b'] (argv, env and cgroups lists)."""
    if not b:
        return []
    if b.endswith(b"\0"):
        b = b[:-1]
    return [x.decode("utf-8", "surrogateescape") for x in b.split(b"\0")]


# ------------------------------------------------------------------------------------------
# reading

def parse_machine_info(body: bytes) -> MachineInfo:
    b = body[:180].ljust(180, b"\0")  # the reader takes exactly 180 bytes, whatever the block says
    num_cpus, mem, max_pid = struct.unpack_from("<IQQ", b)
    hostname = _text(b[20:148])
    boot_ts, flags = struct.unpack_from("<QQ", b, 148)
    return MachineInfo(num_cpus=num_cpus, memory_size_bytes=mem, max_pid=max_pid, hostname=hostname,
                       boot_ts_epoch=boot_ts, flags=flags)


def _parse_thread(c: _Cursor, version: int) -> ThreadInfo:
    tid, pid, ptid = c.u64(), c.u64(), c.u64()
    sid = c.u64() if version >= 6 else 0
    vpgid = c.u64() if version >= 8 else 0
    comm = c.str()
    exe = c.str()
    exepath = c.str() if version >= 7 else ""
    args = _split_list(c.sbytes())
    cwd = c.str()
    fdlimit = c.u64()
    flags, uid, gid = c.u32(), c.u32(), c.u32()
    t = ThreadInfo(tid=tid, pid=pid, ptid=ptid, comm=comm, exe=exe, exepath=exepath, args=args, cwd=cwd, sid=sid,
                   vpgid=vpgid, fdlimit=fdlimit, flags=flags, uid=uid, gid=gid)
    if version >= 2:
        t.vmsize_kb, t.vmrss_kb, t.vmswap_kb = c.u32(), c.u32(), c.u32()
        t.pfmajor, t.pfminor = c.u64(), c.u64()
    if version >= 3:
        t.env = _split_list(c.sbytes())
    if version >= 4:
        t.vtid, t.vpid = c.i64(), c.i64()
        cg = _split_list(c.sbytes())
        t.cgroups = [tuple(x.split("=", 1)) if "=" in x else (x, "") for x in cg]
    else:
        t.vtid, t.vpid = tid, pid
    if version >= 5:
        t.root = c.str()
    return t


def _parse_v9_tail(c: _Cursor, t: ThreadInfo) -> None:
    """The optional V9 tail; c.end is the end of the entry (section 9, "two layouts")."""
    if c.left() <= 29:  # layout A (libs < 0.10, and OLD)
        if c.left() >= 4:
            t.loginuid = c.u32()
        if c.left() >= 1:
            t.exe_writable = bool(c.u8())
        if c.left() >= 24:
            t.cap_inheritable, t.cap_permitted, t.cap_effective = c.u64(), c.u64(), c.u64()
        return
    # layout B: every field read only while the entry has room for it
    fields = (("pidns_init_start_ts", "<Q"), ("tty", "<I"), ("loginuid", "<I"), ("exe_writable", "<B"),
              ("cap_inheritable", "<Q"), ("cap_permitted", "<Q"), ("cap_effective", "<Q"),
              ("exe_upper_layer", "<B"), ("exe_ino", "<Q"), ("exe_ino_ctime", "<Q"), ("exe_ino_mtime", "<Q"),
              ("exe_from_memfd", "<B"), ("exe_lower_layer", "<B"), ("pgid", "<q"))
    for name, fmt in fields:
        size = struct.calcsize(fmt)
        if c.left() < size:
            break
        v = struct.unpack(fmt, c.take(size))[0]
        setattr(t, name, bool(v) if fmt == "<B" else v)


def parse_proclist(body: bytes, version: int) -> list[ThreadInfo]:
    c = _Cursor(body)
    out = []
    while c.left() >= 4:
        if version >= 9:
            start = c.pos
            entry_len = c.u32()
            if entry_len < 4 or start + entry_len > c.end:
                raise _Short(f"thread entry at byte {start}: length {entry_len} outside the block")
            ec = _Cursor(body, c.pos, start + entry_len)
            t = _parse_thread(ec, version)
            _parse_v9_tail(ec, t)
            c.pos = start + entry_len
        else:
            t = _parse_thread(c, version)
        out.append(t)
    return out


def _parse_fd(c: _Cursor, version: int) -> FdInfo | None:
    fd, ino, ftype = c.u64(), c.u64(), c.u8()
    f = FdInfo(fd=fd if fd < 1 << 63 else fd - (1 << 64), type=ftype, ino=ino)
    if ftype in (FD_IPV4_SOCK,):
        f.sip, f.dip = c.take(4), c.take(4)
        f.sport, f.dport, f.l4proto = c.u16(), c.u16(), c.u8()
    elif ftype == FD_IPV6_SOCK:
        f.sip, f.dip = c.take(16), c.take(16)
        f.sport, f.dport, f.l4proto = c.u16(), c.u16(), c.u8()
    elif ftype == FD_IPV4_SERVSOCK:
        f.sip = c.take(4)
        f.sport, f.l4proto = c.u16(), c.u8()
    elif ftype == FD_IPV6_SERVSOCK:
        f.sip = c.take(16)
        f.sport, f.l4proto = c.u16(), c.u8()
    elif ftype == FD_UNIX_SOCK:
        f.unix_source, f.unix_dest = c.u64(), c.u64()
        f.name = c.str()
    elif ftype == FD_FILE_V2:
        f.open_flags = c.u32()
        f.name = c.str()
        if version >= 2 and c.left() >= 4:
            f.dev = c.u32()
    elif ftype in _NAMED_FD_TYPES:
        f.name = c.str()
    elif version >= 2:
        f.type = FD_UNSUPPORTED  # as current libs does; the payload is skipped by the entry length
    else:
        raise _Short(f"fd {fd}: unknown fd type {ftype}, and a v1 fd list cannot skip it")
    return f


def parse_fdlist(body: bytes, version: int) -> tuple[int, list[FdInfo]]:
    c = _Cursor(body)
    tid = c.u64()
    fds = []
    while c.left() >= 4:
        if version >= 2:
            start = c.pos
            entry_len = c.u32()
            if entry_len < 4 or start + entry_len > c.end:
                raise _Short(f"fd entry at byte {start}: length {entry_len} outside the block")
            fds.append(_parse_fd(_Cursor(body, c.pos, start + entry_len), version))
            c.pos = start + entry_len
        else:
            fds.append(_parse_fd(c, version))
    return tid, fds


def _parse_iface(c: _Cursor) -> InterfaceInfo | None:
    itype, namelen = c.u16(), c.u16()
    if itype in (_IF_IPV4, _IF_IPV4_NOLINKSPEED):
        addr, mask, bcast = c.take(4), c.take(4), c.take(4)
        fam = AF_INET
    elif itype in (_IF_IPV6, _IF_IPV6_NOLINKSPEED):
        addr, mask, bcast = c.take(16), c.take(16), c.take(16)
        fam = AF_INET6
    else:
        raise _Short(f"interface entry: unknown type {itype}")
    speed = c.u64() if itype in (_IF_IPV4, _IF_IPV6) else 0
    name = _text(c.take(namelen))
    return InterfaceInfo(name=name, family=fam, addr=addr, netmask=mask, bcast=bcast, linkspeed=speed)


def parse_iflist(body: bytes, version: int) -> list[InterfaceInfo]:
    c = _Cursor(body)
    out = []
    while c.left() >= 4:
        if version >= 2:
            n = c.u32()  # does not count itself
            start = c.pos
            if n > c.left():
                raise _Short(f"interface entry at byte {start - 4}: length {n} outside the block")
            out.append(_parse_iface(_Cursor(body, start, start + n)))
            c.pos = start + n
        else:
            out.append(_parse_iface(c))
    return out


def parse_userlist(body: bytes, version: int) -> tuple[list[UserInfo], list[GroupInfo]]:
    c = _Cursor(body)
    users, groups = [], []
    while c.left() >= 4:
        if version >= 2:
            start = c.pos
            n = c.u32()  # counts itself
            if n < 5 or start + n > c.end:
                raise _Short(f"user entry at byte {start}: length {n} outside the block")
            ec = _Cursor(body, c.pos, start + n)
        else:
            start = c.pos
            ec = c
        kind = ec.u8()
        if kind == 0:
            uid, gid = ec.u32(), ec.u32()
            users.append(UserInfo(uid=uid, gid=gid, name=ec.str(), homedir=ec.str(), shell=ec.str()))
        elif kind == 1:
            gid = ec.u32()
            groups.append(GroupInfo(gid=gid, name=ec.str()))
        else:
            raise _Short(f"user entry at byte {start}: unknown type {kind}")
        if version >= 2:
            c.pos = start + n
    return users, groups


def initial_state_from_blocks(blocks: Iterable[tuple[int, bytes]], state: InitialState | None = None) -> InitialState:
    """Builds (or updates) an InitialState from metadata blocks ``(block type, raw body)``.

    Blocks of unknown type, and SHB entries (which mark the start of a section), are ignored;
    a later section's blocks update the state of earlier ones. Raises CaptureFileError.
    """
    st = state if state is not None else InitialState()
    for i, (btype, body) in enumerate(blocks):
        try:
            if btype in MI_TYPES:
                st.machine = parse_machine_info(body)
            elif btype in PL_VERSIONS:
                for t in parse_proclist(body, PL_VERSIONS[btype]):
                    old = st.threads.get(t.tid)
                    if old is not None and old.fds:
                        t.fds = old.fds
                    st.threads[t.tid] = t
            elif btype in FDL_TYPES:
                tid, fds = parse_fdlist(body, FDL_TYPES[btype])
                th = st.threads.get(tid)
                if th is None:  # an fd list for a thread the process list lacks
                    th = st.threads[tid] = ThreadInfo(tid=tid, pid=tid, ptid=0)
                for f in fds:
                    th.fds[f.fd] = f
            elif btype in IL_TYPES:
                st.interfaces.extend(parse_iflist(body, IL_TYPES[btype]))
            elif btype in UL_TYPES:
                users, groups = parse_userlist(body, UL_TYPES[btype])
                st.users.update((u.uid, u) for u in users)
                st.groups.update((g.gid, g) for g in groups)
        except (_Short, struct.error) as err:
            raise CaptureFileError(f"metadata block #{i} (type 0x{btype:x}, {len(body)} bytes): {err}") from None
    return st


def read_initial_state(path) -> InitialState:
    """The initial state of a capture file: the metadata blocks of its first section.

    Raises CaptureFileError when the file or a metadata block is malformed.
    """
    from ._native_scap import Replay
    with Replay(path) as rp:
        return initial_state_from_blocks(rp.metadata())


# ------------------------------------------------------------------------------------------
# writing (the profile of section 13)

def _s(text: str | bytes, limit: int) -> bytes:
    b = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
    b = b[:limit]
    return struct.pack("<H", len(b)) + b


def _list(items: list[str], limit: int) -> bytes:
    b = b"".join(x.encode("utf-8", "surrogateescape") + b"\0" for x in items)
    return _s(b[:limit], limit)


def build_machine_info(m: MachineInfo) -> bytes:
    host = m.hostname.encode("utf-8", "surrogateescape")[:127].ljust(128, b"\0")
    return struct.pack("<IQQ", m.num_cpus, m.memory_size_bytes, m.max_pid) + host + struct.pack(
        "<QQQQ", m.boot_ts_epoch, m.flags, 0, 0)


def build_thread_entry(t: ThreadInfo) -> bytes:
    cg = [f"{a}={b}" for a, b in t.cgroups]
    body = b"".join((
        struct.pack("<QQQQQ", t.tid, t.pid, t.ptid, t.sid, t.vpgid),
        _s(t.comm, _MAX_STR), _s(t.exe, _MAX_STR), _s(t.exepath, _MAX_STR), _list(t.args, _MAX_LIST),
        _s(t.cwd, _MAX_STR),
        struct.pack("<QIII", t.fdlimit, t.flags & 0xFFFFFFFF, t.uid & 0xFFFFFFFF, t.gid & 0xFFFFFFFF),
        struct.pack("<IIIQQ", t.vmsize_kb, t.vmrss_kb, t.vmswap_kb, t.pfmajor, t.pfminor),
        _list(t.env, _MAX_LIST),
        struct.pack("<qq", t.vtid, t.vpid),
        _list(cg, _MAX_LIST),
        _s(t.root, _MAX_STR),
        # layout-A tail: 29 bytes (sysdig 0.29 reads loginuid and exe_writable, then skips)
        struct.pack("<IBQQQ", t.loginuid & 0xFFFFFFFF, 1 if t.exe_writable else 0, t.cap_inheritable,
                    t.cap_permitted, t.cap_effective),
    ))
    return struct.pack("<I", 4 + len(body)) + body


def build_proclist(threads: Iterable[ThreadInfo]) -> bytes:
    return b"".join(build_thread_entry(t) for t in threads)


def build_fd_entry(f: FdInfo) -> bytes:
    ftype = f.type if f.type <= FD_FILE_V2 else FD_UNSUPPORTED  # sysdig 0.29 refuses types 17..21
    head = struct.pack("<qQB", f.fd, f.ino, ftype)
    if ftype == FD_IPV4_SOCK:
        payload = (f.sip or bytes(4))[:4].ljust(4, b"\0") + (f.dip or bytes(4))[:4].ljust(4, b"\0") + struct.pack(
            "<HHB", f.sport, f.dport, f.l4proto)
    elif ftype == FD_IPV6_SOCK:
        payload = (f.sip or bytes(16))[:16].ljust(16, b"\0") + (f.dip or bytes(16))[:16].ljust(16, b"\0") + \
            struct.pack("<HHB", f.sport, f.dport, f.l4proto)
    elif ftype == FD_IPV4_SERVSOCK:
        payload = (f.sip or bytes(4))[:4].ljust(4, b"\0") + struct.pack("<HB", f.sport, f.l4proto)
    elif ftype == FD_IPV6_SERVSOCK:
        payload = (f.sip or bytes(16))[:16].ljust(16, b"\0") + struct.pack("<HB", f.sport, f.l4proto)
    elif ftype == FD_UNIX_SOCK:
        payload = struct.pack("<QQ", f.unix_source, f.unix_dest) + _s(f.name, _MAX_FD_NAME)
    elif ftype == FD_FILE_V2:
        payload = struct.pack("<I", f.open_flags) + _s(f.name, _MAX_FD_NAME) + struct.pack("<I", f.dev)
    else:
        payload = _s(f.name, _MAX_FD_NAME)
    entry = head + payload
    return struct.pack("<I", 4 + len(entry)) + entry


def build_fdlist(tid: int, fds: Iterable[FdInfo]) -> bytes:
    return struct.pack("<Q", tid) + b"".join(build_fd_entry(f) for f in fds)


def build_iflist(ifaces: Iterable[InterfaceInfo]) -> bytes:
    out = []
    for i in ifaces:
        name = i.name.encode("utf-8", "surrogateescape")
        if i.family == AF_INET6:
            pad = lambda b: (b or b"")[:16].ljust(16, b"\0")  # noqa: E731
            e = struct.pack("<HH", _IF_IPV6, len(name)) + pad(i.addr) + pad(i.netmask) + pad(i.bcast) + \
                struct.pack("<Q", i.linkspeed) + name
        else:
            pad = lambda b: (b or b"")[:4].ljust(4, b"\0")  # noqa: E731
            e = struct.pack("<HH", _IF_IPV4, len(name)) + pad(i.addr) + pad(i.netmask) + pad(i.bcast) + \
                struct.pack("<Q", i.linkspeed) + name
        out.append(struct.pack("<I", len(e)) + e)
    return b"".join(out)


def build_userlist(users: Iterable[UserInfo], groups: Iterable[GroupInfo]) -> bytes:
    out = []
    for u in users:
        e = struct.pack("<BII", 0, u.uid & 0xFFFFFFFF, u.gid & 0xFFFFFFFF) + _s(u.name, _MAX_CRED) + \
            _s(u.homedir, _MAX_CRED) + _s(u.shell, _MAX_CRED)
        out.append(struct.pack("<I", 4 + len(e)) + e)
    for g in groups:
        e = struct.pack("<BI", 1, g.gid & 0xFFFFFFFF) + _s(g.name, _MAX_CRED)
        out.append(struct.pack("<I", 4 + len(e)) + e)
    return b"".join(out)


def blocks_from_initial_state(st: InitialState) -> list[tuple[int, bytes]]:
    """The metadata blocks of the writer profile, in the order sysdig writes them: MI, IL, UL,
    PL, then one FDL per thread (empty ones too, as sysdig 0.29 does)."""
    blocks = [(BT_MI, build_machine_info(st.machine))]
    if st.interfaces:
        blocks.append((BT_IL_V2, build_iflist(st.interfaces)))
    if st.users or st.groups:
        blocks.append((BT_UL_V2, build_userlist(st.users.values(), st.groups.values())))
    if st.threads:
        blocks.append((BT_PL_V9, build_proclist(st.threads.values())))
        for t in st.threads.values():
            blocks.append((BT_FDL_V2, build_fdlist(t.tid, t.fds.values())))
    return blocks
