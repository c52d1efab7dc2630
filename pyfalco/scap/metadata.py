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

import logging
import os
import re
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
_KNOWN_FD_TYPES = _NAMED_FD_TYPES | {FD_IPV4_SOCK, FD_IPV6_SOCK, FD_IPV4_SERVSOCK, FD_IPV6_SERVSOCK, FD_UNIX_SOCK,
                                     FD_FILE_V2}
_IF_IPV4, _IF_IPV6, _IF_IPV4_NOLINKSPEED, _IF_IPV6_NOLINKSPEED = 1, 2, 3, 4
AF_INET, AF_INET6 = 2, 10
log = logging.getLogger("pyfalco.scap")

# Limits of the strings in a PL entry (section 9) and of fd names (section 10): the writer cuts.
_MAX_STR = 1024
_MAX_LIST = 4096
_MAX_FD_NAME = 1023
_MAX_CRED = 255
_MAX_IFNAME = 255  # IFNAMSIZ is 16; the u16 length field would allow more, no reader expects it


class _Short(Exception):
    """A read past the end of the data; turned into CaptureFileError with the block's context."""


class _Unknown(Exception):
    """An entry of a type this reader does not know, in a list without entry lengths: the rest of
    the block cannot be read (the entries before it are kept)."""


class _Run(struct.Struct):
    """A fixed run of little-endian fields (no padding) read with one ``unpack_from``; ``sizes``
    holds each field's size, so a run the data cuts reports the first field that does not fit."""

    def __init__(self, fmt: str):
        super().__init__(fmt)
        self.sizes = tuple(struct.calcsize("<" + f) for f in re.findall(r"\d*[a-zA-Z?]", fmt.lstrip("<")))
        assert sum(self.sizes) == self.size, fmt


_U8, _U16, _U32, _U64, _I64 = _Run("<B"), _Run("<H"), _Run("<I"), _Run("<Q"), _Run("<q")


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

    def run(self, r: _Run) -> tuple:
        """The fields of ``r``, in one unpack. The error when the data ends inside the run is the
        one reading its fields one at a time gives: the first field cut, where it starts."""
        pos = self.pos
        if pos + r.size <= self.end:
            self.pos = pos + r.size
            return r.unpack_from(self.buf, pos)
        for n in r.sizes:
            if pos + n > self.end:
                self.pos = pos
                raise _Short(f"{n} bytes needed at byte {pos}, {self.end - pos} left")
            pos += n
        raise AssertionError("unreachable: the run did not fit")

    def u8(self) -> int:
        return self.run(_U8)[0]

    def u16(self) -> int:
        return self.run(_U16)[0]

    def u32(self) -> int:
        return self.run(_U32)[0]

    def u64(self) -> int:
        return self.run(_U64)[0]

    def i64(self) -> int:
        return self.run(_I64)[0]

    def sbytes(self) -> bytes:
        """A u16 length and that many bytes (the reads and errors of ``take(u16())``, inlined:
        the proc table has several per thread)."""
        pos, end, buf = self.pos, self.end, self.buf
        if pos + 2 > end:
            raise _Short(f"2 bytes needed at byte {pos}, {end - pos} left")
        n = buf[pos] | buf[pos + 1] << 8
        pos += 2
        if pos + n > end:
            self.pos = pos
            raise _Short(f"{n} bytes needed at byte {pos}, {end - pos} left")
        self.pos = pos + n
        return buf[pos:pos + n]

    def str(self) -> str:
        return _text(self.sbytes())


def _text(b: bytes) -> str:
    # a NUL inside (some producers count it) ends the string; undecodable bytes survive a round trip
    if b"\0" in b:
        b = b[:b.index(b"\0")]
    return b.decode("utf-8", "surrogateescape")


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


# the fixed runs of a PL entry (section 9): ids (sid from V6, vpgid from V8); fdlimit, flags, uid,
# gid (with vmsize, vmrss, vmswap, pfmajor, pfminor from V2); vtid, vpid (V4)
_TH_IDS, _TH_IDS6, _TH_IDS8 = _Run("<QQQ"), _Run("<QQQq"), _Run("<QQQqq")
_TH_LIMITS, _TH_LIMITS2 = _Run("<QIII"), _Run("<QIIIIIIQQ")
_TH_VIDS = _Run("<qq")
# the V9 tails: A (loginuid, exe_writable, 3 capability sets) and B, whole
_TAIL_A = _Run("<IBQQQ")
_TAIL_B_FIELDS = (("pidns_init_start_ts", "<Q"), ("tty", "<I"), ("loginuid", "<I"), ("exe_writable", "<B"),
                  ("cap_inheritable", "<Q"), ("cap_permitted", "<Q"), ("cap_effective", "<Q"),
                  ("exe_upper_layer", "<B"), ("exe_ino", "<Q"), ("exe_ino_ctime", "<Q"), ("exe_ino_mtime", "<Q"),
                  ("exe_from_memfd", "<B"), ("exe_lower_layer", "<B"), ("pgid", "<q"))
_TAIL_B = _Run("<" + "".join(f[1:] for _, f in _TAIL_B_FIELDS))
_TAIL_B_ONE = tuple((name, struct.Struct(fmt), fmt == "<B") for name, fmt in _TAIL_B_FIELDS)


def _parse_thread(c: _Cursor, version: int) -> ThreadInfo:
    # blocks older than V6/V8 lack sid/vpgid: -1 ("unknown"), as libscap's scap_read_proclist leaves
    # them; both are signed: -1 written for an unknown id reads back as -1
    if version >= 8:
        tid, pid, ptid, sid, vpgid = c.run(_TH_IDS8)
    elif version >= 6:
        (tid, pid, ptid, sid), vpgid = c.run(_TH_IDS6), -1
    else:
        (tid, pid, ptid), sid, vpgid = c.run(_TH_IDS), -1, -1
    comm = c.str()
    exe = c.str()
    exepath = c.str() if version >= 7 else ""
    args = _split_list(c.sbytes())
    cwd = c.str()
    if version >= 2:
        fdlimit, flags, uid, gid, vmsize, vmrss, vmswap, pfmajor, pfminor = c.run(_TH_LIMITS2)
        t = ThreadInfo(tid=tid, pid=pid, ptid=ptid, comm=comm, exe=exe, exepath=exepath, args=args, cwd=cwd,
                       sid=sid, vpgid=vpgid, fdlimit=fdlimit, flags=flags, uid=uid, gid=gid, vmsize_kb=vmsize,
                       vmrss_kb=vmrss, vmswap_kb=vmswap, pfmajor=pfmajor, pfminor=pfminor)
    else:
        fdlimit, flags, uid, gid = c.run(_TH_LIMITS)
        t = ThreadInfo(tid=tid, pid=pid, ptid=ptid, comm=comm, exe=exe, exepath=exepath, args=args, cwd=cwd,
                       sid=sid, vpgid=vpgid, fdlimit=fdlimit, flags=flags, uid=uid, gid=gid)
    if version >= 3:
        t.env = _split_list(c.sbytes())
    if version >= 4:
        t.vtid, t.vpid = c.run(_TH_VIDS)
        cg = _split_list(c.sbytes())
        t.cgroups = [tuple(x.split("=", 1)) if "=" in x else (x, "") for x in cg]
    else:
        t.vtid, t.vpid = tid, pid
    if version >= 5:
        t.root = c.str()
    return t


def _parse_v9_tail(c: _Cursor, t: ThreadInfo) -> None:
    """The optional V9 tail; c.end is the end of the entry (section 9, "two layouts")."""
    left = c.left()
    if left <= 29:  # layout A (libs < 0.10, and OLD)
        if left == 29:
            t.loginuid, ew, t.cap_inheritable, t.cap_permitted, t.cap_effective = c.run(_TAIL_A)
            t.exe_writable = bool(ew)
            return
        if left >= 4:
            t.loginuid = c.u32()
        if c.left() >= 1:
            t.exe_writable = bool(c.u8())
        if c.left() >= 24:
            t.cap_inheritable, t.cap_permitted, t.cap_effective = c.u64(), c.u64(), c.u64()
        return
    # layout B: every field read only while the entry has room for it
    if left >= _TAIL_B.size:
        (t.pidns_init_start_ts, t.tty, t.loginuid, ew, t.cap_inheritable, t.cap_permitted, t.cap_effective, up,
         t.exe_ino, t.exe_ino_ctime, t.exe_ino_mtime, memfd, low, t.pgid) = c.run(_TAIL_B)
        t.exe_writable, t.exe_upper_layer, t.exe_from_memfd, t.exe_lower_layer = \
            bool(ew), bool(up), bool(memfd), bool(low)
        return
    for name, s, flag in _TAIL_B_ONE:
        if c.left() < s.size:
            break
        v = s.unpack_from(c.buf, c.pos)[0]
        c.pos += s.size
        setattr(t, name, bool(v) if flag else v)


def parse_proclist(body: bytes, version: int) -> list[ThreadInfo]:
    c = _Cursor(body)
    out = []
    u32 = _U32.unpack_from
    ec = _Cursor(body)                          # each entry's cursor (V9), moved along
    while c.end - c.pos >= 4:
        if version >= 9:
            start = c.pos
            entry_len = u32(body, start)[0]      # the loop's test: 4 bytes are there
            if entry_len < 4 or start + entry_len > c.end:
                raise _Short(f"thread entry at byte {start}: length {entry_len} outside the block")
            ec.pos, ec.end = start + 4, start + entry_len
            t = _parse_thread(ec, version)
            _parse_v9_tail(ec, t)
            c.pos = start + entry_len
        else:
            t = _parse_thread(c, version)
        out.append(t)
    return out


# an fd entry (section 10): fd, ino, type; then by type
_FD_HEAD = _Run("<QQB")
_FD_IPV4 = _Run("<4s4sHHB")
_FD_IPV6 = _Run("<16s16sHHB")
_FD_IPV4_SERV = _Run("<4sHB")
_FD_IPV6_SERV = _Run("<16sHB")
_FD_UNIX = _Run("<QQ")


def _parse_fd(c: _Cursor, version: int) -> FdInfo | None:
    fd, ino, ftype = c.run(_FD_HEAD)
    f = FdInfo(fd=fd if fd < 1 << 63 else fd - (1 << 64), type=ftype, ino=ino)
    # the most frequent types first (the tests are disjoint)
    if ftype == FD_FILE_V2:
        f.open_flags, = c.run(_U32)
        f.name = c.str()
        if version >= 2 and c.end - c.pos >= 4:
            f.dev, = c.run(_U32)
    elif ftype in _NAMED_FD_TYPES:
        f.name = c.str()
    elif ftype == FD_IPV4_SOCK:
        f.sip, f.dip, f.sport, f.dport, f.l4proto = c.run(_FD_IPV4)
    elif ftype == FD_IPV6_SOCK:
        f.sip, f.dip, f.sport, f.dport, f.l4proto = c.run(_FD_IPV6)
    elif ftype == FD_IPV4_SERVSOCK:
        f.sip, f.sport, f.l4proto = c.run(_FD_IPV4_SERV)
    elif ftype == FD_IPV6_SERVSOCK:
        f.sip, f.sport, f.l4proto = c.run(_FD_IPV6_SERV)
    elif ftype == FD_UNIX_SOCK:
        f.unix_source, f.unix_dest = c.run(_FD_UNIX)
        f.name = c.str()
    elif version >= 2:
        f.type = FD_UNSUPPORTED  # as current libs does; the payload is skipped by the entry length
    else:
        raise _Unknown(f"fd {f.fd} has unknown fd type {ftype}")
    return f


def parse_fdlist(body: bytes, version: int, warnings: list[str] | None = None) -> tuple[int, list[FdInfo]]:
    """tid and fds of an FDL body. An fd of unknown type is read as UNSUPPORTED in a v2 list (its
    entry length skips the payload, as current libs does); in a v1 list nothing after it can be
    read, so the list ends there. Either way a line goes to ``warnings``."""
    c = _Cursor(body)
    tid = c.u64()
    fds = []
    unknown: list[int] = []
    u32 = _U32.unpack_from
    ec = _Cursor(body)                          # each entry's cursor (v2), moved along
    while c.end - c.pos >= 4:
        if version >= 2:
            start = c.pos
            entry_len = u32(body, start)[0]      # the loop's test: 4 bytes are there
            if entry_len < 4 or start + entry_len > c.end:
                raise _Short(f"fd entry at byte {start}: length {entry_len} outside the block")
            ec.pos, ec.end = start + 4, start + entry_len
            if entry_len >= 21 and body[start + 20] not in _KNOWN_FD_TYPES:
                unknown.append(body[start + 20])
            fds.append(_parse_fd(ec, version))
            c.pos = start + entry_len
        else:
            start = c.pos
            try:
                fds.append(_parse_fd(c, version))
            except _Unknown as err:
                if warnings is not None:
                    warnings.append(f"thread {tid}: {err} at byte {start}; a v1 fd list has no entry lengths, "
                                    f"so its {c.end - start} remaining bytes are skipped")
                break
    if unknown and warnings is not None:
        warnings.append(f"thread {tid}: {len(unknown)} fd(s) of unknown type "
                        f"({', '.join(str(t) for t in sorted(set(unknown)))}) read as unsupported fds")
    return tid, fds


_IF_HEAD = _Run("<HH")
_IF_V4 = _Run("<4s4s4s")
_IF_V6 = _Run("<16s16s16s")


def _parse_iface(c: _Cursor) -> InterfaceInfo | None:
    itype, namelen = c.run(_IF_HEAD)
    if itype in (_IF_IPV4, _IF_IPV4_NOLINKSPEED):
        addr, mask, bcast = c.run(_IF_V4)
        fam = AF_INET
    elif itype in (_IF_IPV6, _IF_IPV6_NOLINKSPEED):
        addr, mask, bcast = c.run(_IF_V6)
        fam = AF_INET6
    else:
        raise _Unknown(f"interface entry of unknown type {itype}")
    speed = c.u64() if itype in (_IF_IPV4, _IF_IPV6) else 0
    name = _text(c.take(namelen))
    return InterfaceInfo(name=name, family=fam, addr=addr, netmask=mask, bcast=bcast, linkspeed=speed)


def parse_iflist(body: bytes, version: int, warnings: list[str] | None = None) -> list[InterfaceInfo]:
    """Interfaces of an IL body. An entry of unknown type is skipped (v2: by its length; v1: with
    the rest of the list, which has no entry lengths), with a line in ``warnings``."""
    c = _Cursor(body)
    out = []
    while c.end - c.pos >= 4:
        start = c.pos
        try:
            if version >= 2:
                n = c.u32()  # does not count itself
                if n > c.left():
                    raise _Short(f"interface entry at byte {start}: length {n} outside the block")
                c.pos = start + 4 + n
                out.append(_parse_iface(_Cursor(body, start + 4, start + 4 + n)))
            else:
                out.append(_parse_iface(c))
        except _Unknown as err:
            if warnings is not None:
                warnings.append(f"{err} at byte {start} skipped" + ("" if version >= 2 else
                                f", with the {c.end - start} bytes after it (a v1 list has no entry lengths)"))
            if version < 2:
                break
    return out


_UL_USER = _Run("<II")


def parse_userlist(body: bytes, version: int,
                   warnings: list[str] | None = None) -> tuple[list[UserInfo], list[GroupInfo]]:
    """Users and groups of a UL body; an entry of unknown type is skipped as in parse_iflist."""
    c = _Cursor(body)
    users, groups = [], []
    while c.end - c.pos >= 4:
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
            uid, gid = ec.run(_UL_USER)
            users.append(UserInfo(uid=uid, gid=gid, name=ec.str(), homedir=ec.str(), shell=ec.str()))
        elif kind == 1:
            gid = ec.u32()
            groups.append(GroupInfo(gid=gid, name=ec.str()))
        else:
            if warnings is not None:
                warnings.append(f"user list entry of unknown type {kind} at byte {start} skipped" + (
                    "" if version >= 2 else f", with the {c.end - start} bytes after it (a v1 list has no "
                                            "entry lengths)"))
            if version < 2:
                break
        if version >= 2:
            c.pos = start + n
    return users, groups


def initial_state_from_blocks(blocks: Iterable[tuple[int, bytes]], state: InitialState | None = None,
                              source: str | None = None) -> InitialState:
    """Builds (or updates) an InitialState from metadata blocks ``(block type, raw body)``.

    Blocks of unknown type, and SHB entries (which mark the start of a section), are ignored;
    a later section's blocks update the state of earlier ones. Entries of unknown type are
    skipped where the format allows it, with a warning on the ``pyfalco.scap`` logger. Raises
    CaptureFileError naming ``source`` (the file), the block and the byte for anything else.
    """
    st = state if state is not None else InitialState()
    where = f"capture file {source}: " if source else ""
    for i, (btype, body) in enumerate(blocks):
        warnings: list[str] = []
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
                tid, fds = parse_fdlist(body, FDL_TYPES[btype], warnings)
                th = st.threads.get(tid)
                if th is None:  # an fd list for a thread the process list lacks
                    th = st.threads[tid] = ThreadInfo(tid=tid, pid=tid, ptid=0)
                for f in fds:
                    th.fds[f.fd] = f
            elif btype in IL_TYPES:
                st.interfaces.extend(parse_iflist(body, IL_TYPES[btype], warnings))
            elif btype in UL_TYPES:
                users, groups = parse_userlist(body, UL_TYPES[btype], warnings)
                st.users.update((u.uid, u) for u in users)
                st.groups.update((g.gid, g) for g in groups)
        except (_Short, _Unknown, struct.error) as err:
            raise CaptureFileError(f"{where}metadata block #{i} (type 0x{btype:x}, {len(body)} bytes): {err}") from None
        for w in warnings:
            log.warning("%smetadata block #%d (type 0x%x): %s", where, i, btype, w)
    return st


def read_initial_state(path) -> InitialState:
    """The initial state of a capture file: the metadata blocks of its first section.

    Raises CaptureFileError when the file or a metadata block is malformed.
    """
    from ._native_scap import Replay
    with Replay(path) as rp:
        return initial_state_from_blocks(rp.metadata(), source=os.fspath(path))


# ------------------------------------------------------------------------------------------
# writing (the profile of section 13)

_RANGES = {c: (-(1 << (8 * struct.calcsize(c) - 1)), (1 << (8 * struct.calcsize(c) - 1)) - 1) for c in "bhiq"}
_RANGES.update({c: (0, (1 << (8 * struct.calcsize(c))) - 1) for c in "BHIQ"})


def _fit(value, code: str) -> int:
    """``value`` made to fit struct code ``code``, as libscap's C assignments and the kernel's
    counters do: an unsigned field takes a small negative value as its two's complement (-1 is
    the "none" of uid, loginuid, tid), and any value past the field's range is clamped to it
    (a VmSize above 4 TiB is written as 0xFFFFFFFF kB, not refused). None is 0."""
    v = 0 if value is None else int(value)
    lo, hi = _RANGES[code]
    if lo == 0 and v < 0 and v >= -(hi + 1) // 2:
        v += hi + 1
    return lo if v < lo else hi if v > hi else v


def _pack(fmt: str, *values) -> bytes:
    """struct.pack of integer fields, each made to fit its width first (never struct.error)."""
    return struct.pack(fmt, *(_fit(v, c) for v, c in zip(values, fmt.lstrip("<"))))


def _s(text: str | bytes, limit: int) -> bytes:
    b = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
    b = b[:limit]
    return struct.pack("<H", len(b)) + b


def _list(items: list[str], limit: int) -> bytes:
    b = b"".join(x.encode("utf-8", "surrogateescape") + b"\0" for x in items)
    return _s(b[:limit], limit)


def build_machine_info(m: MachineInfo) -> bytes:
    host = m.hostname.encode("utf-8", "surrogateescape")[:127].ljust(128, b"\0")
    return _pack("<IQQ", m.num_cpus, m.memory_size_bytes, m.max_pid) + host + _pack(
        "<QQQQ", m.boot_ts_epoch, m.flags, 0, 0)


def build_thread_entry(t: ThreadInfo) -> bytes:
    cg = [f"{a}={b}" for a, b in t.cgroups]
    body = b"".join((
        _pack("<QQQQQ", t.tid, t.pid, t.ptid, t.sid, t.vpgid),
        _s(t.comm, _MAX_STR), _s(t.exe, _MAX_STR), _s(t.exepath, _MAX_STR), _list(t.args, _MAX_LIST),
        _s(t.cwd, _MAX_STR),
        _pack("<QIII", t.fdlimit, _fit(t.flags, "Q") & 0xFFFFFFFF, t.uid, t.gid),
        _pack("<IIIQQ", t.vmsize_kb, t.vmrss_kb, t.vmswap_kb, t.pfmajor, t.pfminor),
        _list(t.env, _MAX_LIST),
        _pack("<qq", t.vtid, t.vpid),
        _list(cg, _MAX_LIST),
        _s(t.root, _MAX_STR),
        # layout-A tail: 29 bytes (sysdig 0.29 reads loginuid and exe_writable, then skips)
        _pack("<IBQQQ", t.loginuid, 1 if t.exe_writable else 0, t.cap_inheritable, t.cap_permitted,
              t.cap_effective),
    ))
    return _pack("<I", 4 + len(body)) + body


def build_proclist(threads: Iterable[ThreadInfo]) -> bytes:
    return b"".join(build_thread_entry(t) for t in threads)


def build_fd_entry(f: FdInfo) -> bytes:
    ftype = f.type if 0 <= _fit(f.type, "q") <= FD_FILE_V2 else FD_UNSUPPORTED  # sysdig 0.29 refuses 17..21
    head = _pack("<qQB", f.fd, f.ino, ftype)
    if ftype == FD_IPV4_SOCK:
        payload = (f.sip or bytes(4))[:4].ljust(4, b"\0") + (f.dip or bytes(4))[:4].ljust(4, b"\0") + _pack(
            "<HHB", f.sport, f.dport, f.l4proto)
    elif ftype == FD_IPV6_SOCK:
        payload = (f.sip or bytes(16))[:16].ljust(16, b"\0") + (f.dip or bytes(16))[:16].ljust(16, b"\0") + \
            _pack("<HHB", f.sport, f.dport, f.l4proto)
    elif ftype == FD_IPV4_SERVSOCK:
        payload = (f.sip or bytes(4))[:4].ljust(4, b"\0") + _pack("<HB", f.sport, f.l4proto)
    elif ftype == FD_IPV6_SERVSOCK:
        payload = (f.sip or bytes(16))[:16].ljust(16, b"\0") + _pack("<HB", f.sport, f.l4proto)
    elif ftype == FD_UNIX_SOCK:
        payload = _pack("<QQ", f.unix_source, f.unix_dest) + _s(f.name, _MAX_FD_NAME)
    elif ftype == FD_FILE_V2:
        payload = _pack("<I", f.open_flags) + _s(f.name, _MAX_FD_NAME) + _pack("<I", f.dev)
    else:
        payload = _s(f.name, _MAX_FD_NAME)
    entry = head + payload
    return _pack("<I", 4 + len(entry)) + entry


def build_fdlist(tid: int, fds: Iterable[FdInfo]) -> bytes:
    return _pack("<Q", tid) + b"".join(build_fd_entry(f) for f in fds)


def build_iflist(ifaces: Iterable[InterfaceInfo]) -> bytes:
    return b"".join(_if_entries(ifaces))


def _if_entries(ifaces: Iterable[InterfaceInfo]) -> list[bytes]:
    out = []
    for i in ifaces:
        name = i.name.encode("utf-8", "surrogateescape")[:_MAX_IFNAME]
        if i.family == AF_INET6:
            pad = lambda b: (b or b"")[:16].ljust(16, b"\0")  # noqa: E731
            e = _pack("<HH", _IF_IPV6, len(name)) + pad(i.addr) + pad(i.netmask) + pad(i.bcast) + \
                _pack("<Q", i.linkspeed) + name
        else:
            pad = lambda b: (b or b"")[:4].ljust(4, b"\0")  # noqa: E731
            e = _pack("<HH", _IF_IPV4, len(name)) + pad(i.addr) + pad(i.netmask) + pad(i.bcast) + \
                _pack("<Q", i.linkspeed) + name
        out.append(_pack("<I", len(e)) + e)
    return out


def build_userlist(users: Iterable[UserInfo], groups: Iterable[GroupInfo]) -> bytes:
    return b"".join(_user_entries(users, groups))


def _user_entries(users: Iterable[UserInfo], groups: Iterable[GroupInfo]) -> list[bytes]:
    out = []
    for u in users:
        e = _pack("<BII", 0, u.uid, u.gid) + _s(u.name, _MAX_CRED) + _s(u.homedir, _MAX_CRED) + \
            _s(u.shell, _MAX_CRED)
        out.append(_pack("<I", 4 + len(e)) + e)
    for g in groups:
        e = _pack("<BI", 1, g.gid) + _s(g.name, _MAX_CRED)
        out.append(_pack("<I", 4 + len(e)) + e)
    return out


#: the largest metadata block body written: a list that would be longer (tens of thousands of
#: threads with long command lines, a process with a million fds) goes into several blocks of
#: the same type, which readers merge (libpyfalco's reader takes blocks up to 256 MiB).
MAX_BLOCK_BODY = 16 << 20


def _bodies(entries: Iterable[bytes], prefix: bytes = b"", limit: int | None = None) -> list[bytes]:
    """The entries (never split) in block bodies of at most ``limit`` (MAX_BLOCK_BODY) bytes, each
    starting with ``prefix`` (an FDL's tid); at least one body, possibly empty but for the prefix."""
    limit = MAX_BLOCK_BODY if limit is None else limit
    out, cur, size = [], [prefix], len(prefix)
    for e in entries:
        if size + len(e) > limit and len(cur) > 1:
            out.append(b"".join(cur))
            cur, size = [prefix], len(prefix)
        cur.append(e)
        size += len(e)
    out.append(b"".join(cur))
    return out


def blocks_from_initial_state(st: InitialState) -> list[tuple[int, bytes]]:
    """The metadata blocks of the writer profile, in the order sysdig writes them: MI, IL, UL,
    PL, then one FDL per thread (empty ones too, as sysdig 0.29 does). Every field is made to fit
    its width (see _fit); lists longer than MAX_BLOCK_BODY take several blocks."""
    blocks = [(BT_MI, build_machine_info(st.machine))]
    if st.interfaces:
        blocks += [(BT_IL_V2, b) for b in _bodies(_if_entries(st.interfaces))]
    if st.users or st.groups:
        blocks += [(BT_UL_V2, b) for b in _bodies(_user_entries(st.users.values(), st.groups.values()))]
    if st.threads:
        blocks += [(BT_PL_V9, b) for b in _bodies(build_thread_entry(t) for t in st.threads.values())]
        for t in st.threads.values():
            blocks += [(BT_FDL_V2, b) for b in _bodies((build_fd_entry(f) for f in t.fds.values()),
                                                       _pack("<Q", t.tid))]
    return blocks
