# SPDX-License-Identifier: Apache-2.0
"""Decodes scap event records (header, parameter lengths, typed parameters) into Events.

An Event keeps a reference to the batch buffer it came from and decodes lazily: the header is
unpacked when the batch is split, parameters only when asked for (``evt.params``, ``evt.param``),
and the parameter offsets once per event.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any, NamedTuple

from . import _schema
from . import record as _record
from .errors import EventDecodeError
from .flag_tables import FLAGS, render_enum, render_flags

EVENTS = _schema.EVENTS
EVENT_MAX = _schema.EVENT_MAX
PT = _schema.PT

# the record layout (pyfalco.record), under the names this module has always exported
HDR, HDR_SIZE, ENTRY_HDR, ENTRY_SIZE = _record.HDR, _record.HDR_SIZE, _record.ENTRY_HDR, _record.BATCH_ENTRY_SIZE

_U16 = struct.Struct("<H")
_LENS = {n: struct.Struct("<%dH" % n) for n in range(0, 64)}
_LENS32 = {n: struct.Struct("<%dI" % n) for n in range(0, 64)}

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10


class SockAddr(NamedTuple):
    """A PT_SOCKADDR value: an IP endpoint or a unix path."""
    family: int
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    port: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        if self.family == AF_UNIX:
            return self.path or ""
        if self.ip is None:
            return ""
        if self.family == AF_INET6:
            return f"{self.ip}:{self.port}"
        return f"{self.ip}:{self.port}"


class SockTuple(NamedTuple):
    """A PT_SOCKTUPLE value: source and destination of a connection (libs' orientation)."""
    family: int
    sip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    sport: int | None = None
    dip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    dport: int | None = None
    path: str | None = None
    source: int = 0
    dest: int = 0

    def __str__(self) -> str:
        if self.family == AF_UNIX:
            return f"{self.source:x}->{self.dest:x} {self.path or ''}"
        return f"{self.sip}:{self.sport}->{self.dip}:{self.dport}"


def _cstr(b: bytes) -> str:
    """A CHARBUF/path value: up to the first NUL, undecodable bytes kept as surrogates."""
    i = b.find(0)
    if i >= 0:
        b = b[:i]
    return b.decode("utf-8", "surrogateescape")


class _IPv4(ipaddress.IPv4Address):
    """An IPv4Address that keeps its text: socket names, tuples and fields format the same few
    addresses on every event (ipaddress builds the dotted text in Python each time)."""

    __slots__ = ("_text",)

    def __init__(self, address: Any) -> None:
        super().__init__(address)
        self._text = ipaddress.IPv4Address.__str__(self)

    def __str__(self) -> str:
        return self._text

    def __format__(self, fmt: str) -> str:
        return self._text if not fmt else ipaddress.IPv4Address.__format__(self, fmt)

    def __repr__(self) -> str:
        return f"IPv4Address({self._text!r})"

    def __eq__(self, other: object) -> bool:
        # the same cached object, or no address (ipaddress's own test raises and catches an
        # AttributeError for None: sockets compare their unset ends on every connect)
        if other is self:
            return True
        if other is None:
            return False
        return ipaddress.IPv4Address.__eq__(self, other)

    __hash__ = ipaddress.IPv4Address.__hash__


class _IPv6(ipaddress.IPv6Address):
    """An IPv6Address that keeps its text (see _IPv4)."""

    __slots__ = ("_text",)

    def __init__(self, address: Any) -> None:
        super().__init__(address)
        self._text = ipaddress.IPv6Address.__str__(self)

    def __str__(self) -> str:
        return self._text

    def __format__(self, fmt: str) -> str:
        return self._text if not fmt else ipaddress.IPv6Address.__format__(self, fmt)

    def __repr__(self) -> str:
        return f"IPv6Address({self._text!r})"

    def __eq__(self, other: object) -> bool:
        # the same cached object, or no address (ipaddress's own test raises and catches an
        # AttributeError for None: sockets compare their unset ends on every connect)
        if other is self:
            return True
        if other is None:
            return False
        return ipaddress.IPv6Address.__eq__(self, other)

    __hash__ = ipaddress.IPv6Address.__hash__


_IP4_CACHE: dict = {}
_IP6_CACHE: dict = {}


def _ip4(b: bytes) -> ipaddress.IPv4Address:
    """IPv4Address of 4 bytes (immutable, so the objects of recent addresses are shared)."""
    ip = _IP4_CACHE.get(b)
    if ip is None:
        if len(_IP4_CACHE) >= 4096:
            _IP4_CACHE.clear()
        ip = _IP4_CACHE[b] = _IPv4(b)
    return ip


def _ip6(b: bytes) -> ipaddress.IPv6Address:
    ip = _IP6_CACHE.get(b)
    if ip is None:
        if len(_IP6_CACHE) >= 4096:
            _IP6_CACHE.clear()
        ip = _IP6_CACHE[b] = _IPv6(b)
    return ip


def _sockaddr(b: bytes) -> SockAddr | None:
    fam = b[0]
    if fam == AF_INET and len(b) >= 7:
        return SockAddr(AF_INET, _ip4(b[1:5]), _U16.unpack_from(b, 5)[0])
    if fam == AF_INET6 and len(b) >= 19:
        ip = _ip6(b[1:17])
        if ip.ipv4_mapped is not None:
            return SockAddr(AF_INET, ip.ipv4_mapped, _U16.unpack_from(b, 17)[0])
        return SockAddr(AF_INET6, ip, _U16.unpack_from(b, 17)[0])
    if fam == AF_UNIX:
        return SockAddr(AF_UNIX, path=_cstr(b[1:]))
    return SockAddr(fam)


def _socktuple(b: bytes) -> SockTuple | None:
    fam = b[0]
    if fam == AF_INET and len(b) >= 13:
        return SockTuple(AF_INET, _ip4(b[1:5]), _U16.unpack_from(b, 5)[0], _ip4(b[7:11]),
                         _U16.unpack_from(b, 11)[0])
    if fam == AF_INET6 and len(b) >= 37:
        s = _ip6(b[1:17])
        d = _ip6(b[19:35])
        sport = _U16.unpack_from(b, 17)[0]
        dport = _U16.unpack_from(b, 35)[0]
        if s.ipv4_mapped is not None and d.ipv4_mapped is not None:
            return SockTuple(AF_INET, s.ipv4_mapped, sport, d.ipv4_mapped, dport)
        return SockTuple(AF_INET6, s, sport, d, dport)
    if fam == AF_UNIX and len(b) >= 17:
        src, dst = struct.unpack_from("<QQ", b, 1)
        return SockTuple(AF_UNIX, path=_cstr(b[17:]), source=src, dest=dst)
    return SockTuple(fam)


def _fdlist(b: bytes) -> list[tuple[int, int]]:
    (n,) = _U16.unpack_from(b, 0)
    out = []
    off = 2
    for _ in range(n):
        if off + 10 > len(b):
            break
        fd, flags = struct.unpack_from("<qH", b, off)
        out.append((fd, flags))
        off += 10
    return out


def _dyn(b: bytes) -> tuple[int, int | bytes]:
    idx = b[0]
    rest = b[1:]
    if len(rest) == 8:
        return idx, struct.unpack("<Q", rest)[0]
    if len(rest) == 4:
        return idx, struct.unpack("<I", rest)[0]
    return idx, rest


def _int_decoder(fmt: str):
    s = struct.Struct(fmt)
    size = s.size
    unpack_from = s.unpack_from

    def dec(b: bytes) -> int | None:
        if len(b) < size:
            # shorter than its type: a producer that wrote a narrower int; widen it
            return int.from_bytes(b, "little", signed=fmt[1].islower()) if b else None
        return unpack_from(b)[0]
    return dec


_SIGNED = {"INT8": "<b", "INT16": "<h", "INT32": "<i", "INT64": "<q", "ERRNO": "<q", "FD": "<q", "PID": "<q",
           "FD32": "<i", "PID32": "<i"}
_UNSIGNED = {"UINT8": "<B", "UINT16": "<H", "UINT32": "<I", "UINT64": "<Q", "FLAGS8": "<B", "FLAGS16": "<H",
             "FLAGS32": "<I", "ENUMFLAGS8": "<B", "ENUMFLAGS16": "<H", "ENUMFLAGS32": "<I", "UID": "<I",
             "GID": "<I", "MODE": "<I", "SIGTYPE": "<B", "SYSCALLID": "<H", "PORT": "<H", "L4PROTO": "<B",
             "SOCKFAMILY": "<B", "BOOL": "<I", "SIGSET": "<I", "RELTIME": "<Q", "ABSTIME": "<Q"}

DECODERS: dict[int, Any] = {}
for _name, _fmt in {**_SIGNED, **_UNSIGNED}.items():
    DECODERS[PT[_name]] = _int_decoder(_fmt)
for _name in ("CHARBUF", "FSPATH", "FSRELPATH"):
    DECODERS[PT[_name]] = _cstr
DECODERS[PT["BYTEBUF"]] = bytes
DECODERS[PT["SOCKADDR"]] = _sockaddr
DECODERS[PT["SOCKTUPLE"]] = _socktuple
DECODERS[PT["FDLIST"]] = _fdlist
DECODERS[PT["DYN"]] = _dyn
DECODERS[PT["DOUBLE"]] = lambda b: struct.unpack("<d", b)[0] if len(b) == 8 else None
DECODERS[PT["IPV4ADDR"]] = lambda b: ipaddress.IPv4Address(b[:4]) if len(b) >= 4 else None
DECODERS[PT["IPV6ADDR"]] = lambda b: ipaddress.IPv6Address(b[:16]) if len(b) >= 16 else None


def decode_param(ptype: int, raw: bytes) -> Any:
    """Decodes one parameter; a zero-length parameter is None (Falco's "no value")."""
    if not raw:
        return None
    dec = DECODERS.get(ptype)
    if dec is None:
        return bytes(raw)
    try:
        return dec(raw)
    except (ValueError, struct.error, IndexError):
        return bytes(raw)


_UNKNOWN_INFO = _schema.EventInfo(-1, "PPME_UNKNOWN", "unknown", frozenset(), frozenset(), (), None)


def event_info(code: int) -> _schema.EventInfo:
    return EVENTS[code] if 0 <= code < EVENT_MAX else _UNKNOWN_INFO


# ---- per-type decoders ------------------------------------------------------------------------
# One generated function per (event code, number of parameters) decodes every parameter of a
# record at once: parameter lengths with one struct, fixed-size integers read in place (a
# length other than the type's size goes through decode_param, as does every other type).
# Its values are exactly Event.param(i)'s; a record whose lengths do not add up returns None and
# the generic path raises the same EventDecodeError as before.

_FIXED = {PT[_name]: _fmt for _name, _fmt in {**_SIGNED, **_UNSIGNED}.items()}
# types whose decoder returns a value for any non-empty bytes (every length and index checked)
_NEVER_RAISE = frozenset((PT["SOCKADDR"], PT["SOCKTUPLE"]))
_STRINGS = frozenset(PT[_n] for _n in ("CHARBUF", "FSPATH", "FSRELPATH"))
_DECODER_CACHE: dict[int, Any] = {}     # code << 32 | n -> decoder
#: parameter name -> first index, per event code
_NAME_INDEX: list[dict[str, int]] = []
for _info in EVENTS:
    _idx: dict[str, int] = {}
    for _i, _p in enumerate(_info.params):
        _idx.setdefault(_p.name, _i)
    _NAME_INDEX.append(_idx)
_NO_NAMES: dict[str, int] = {}
_PARAM_NAMES = tuple(tuple(p.name for p in e.params) for e in EVENTS)


def _make_decoder(code: int, n: int):
    info = event_info(code)
    large = "LARGE_PAYLOAD" in info.flags
    width = 4 if large else 2
    if n == 0:
        return lambda buf, off, end: ()
    ns: dict[str, Any] = {"_dp": decode_param, "_cstr": _cstr, "_bytes": bytes}
    ptypes = [info.params[i].type if i < len(info.params) else None for i in range(n)]
    fmts = [_FIXED.get(t) if t is not None else None for t in ptypes]
    # runs of consecutive fixed-size integers: one struct each, used when every length is the
    # type's size (the run's values otherwise decoded one by one)
    groups: list[tuple[int, int]] = []
    i = 0
    while i < n:
        if fmts[i] is None:
            i += 1
            continue
        j = i
        while j < n and fmts[j] is not None:
            j += 1
        groups.append((i, j))
        i = j
    lens = [f"l{i}" for i in range(n)]
    lenfmt = "<%d%s" % (n, "I" if large else "H")
    lines = ["def dec(buf, off, end):"]
    first = groups[0] if groups and groups[0][0] == 0 else None
    if first is not None:
        # the lengths and the first run in one read (checked below before use)
        a, b = first
        ns["_L"] = fused = struct.Struct(lenfmt + "".join(f[1] for f in fmts[a:b]))
        ns["_LL"] = struct.Struct(lenfmt)
        # the fused read may run past the buffer when the run's last parameters are empty and
        # the record ends its buffer (a batch's last event): then the lengths alone
        lines.append(f"    if off + {HDR_SIZE + fused.size} <= len(buf):")
        lines.append(f"        {', '.join(lens + [f'v{k}' for k in range(a, b)])}, = _L.unpack_from(buf, off + {HDR_SIZE})")
        lines.append("        _ok = True")
        lines.append("    else:")
        lines.append(f"        {', '.join(lens)}, = _LL.unpack_from(buf, off + {HDR_SIZE})")
        lines.append("        _ok = False")
    else:
        ns["_L"] = struct.Struct(lenfmt)
        lines.append(f"    {', '.join(lens)}, = _L.unpack_from(buf, off + {HDR_SIZE})")
    lines.append(f"    p0 = off + {HDR_SIZE + width * n}")
    for i in range(n):
        lines.append(f"    p{i + 1} = p{i} + l{i}")
    lines.append(f"    if p{n} > end:")
    lines.append("        return None")

    def one(i: int) -> str:
        raw = f"buf[p{i}:p{i + 1}]"
        if ptypes[i] is None:
            return f"(_bytes({raw}) or None)"
        if ptypes[i] in _STRINGS:
            # _cstr inline (a call per path or name)
            return (f"((_r[:_z] if (_z := _r.find(0)) >= 0 else _r).decode('utf-8', 'surrogateescape') "
                    f"if (_r := {raw}) else None)")
        if DECODERS.get(ptypes[i]) is bytes:
            # decode_param of a byte buffer inline (args, env, cgroups: a call each per exec/clone)
            return f"(_bytes(_r) if (_r := {raw}) else None)"
        if ptypes[i] in _NEVER_RAISE:
            # socket addresses and tuples: their decoders raise on no non-empty input, so
            # decode_param's lookup and try add nothing (two calls per connect/accept)
            ns[f"_d{i}"] = DECODERS[ptypes[i]]
            return f"(_d{i}(_r) if (_r := {raw}) else None)"
        return f"_dp({ptypes[i]}, {raw})"

    def one_fixed(i: int) -> str:
        # one integer of a run whose lengths are not all the types' sizes (a driver that leaves
        # one parameter empty, as the modern probe does with openat's ino): the others still
        # read in place; an empty one is None and any other length goes through decode_param,
        # as param(i) would
        ns[f"_f{i}"] = struct.Struct(fmts[i]).unpack_from
        return f"(_f{i}(buf, p{i})[0] if l{i} == {struct.calcsize(fmts[i])} else ({one(i)} if l{i} else None))"

    in_group = {}
    for g, (a, b) in enumerate(groups):
        for k in range(a, b):
            in_group[k] = g
    for i in range(n):
        g = in_group.get(i)
        if g is None:
            lines.append(f"    v{i} = {one(i)}")
            continue
        a, b = groups[g]
        if i != a:
            continue
        sizes = [struct.calcsize(fmts[k]) for k in range(a, b)]
        cond = " and ".join(f"l{k} == {sz}" for k, sz in zip(range(a, b), sizes))
        if first is not None and g == 0:
            lines.append(f"    if not (_ok and {cond}):")
            for k in range(a, b):
                lines.append(f"        v{k} = {one_fixed(k)}")
        else:
            ns[f"_g{g}"] = struct.Struct("<" + "".join(f[1] for f in fmts[a:b])).unpack_from
            lines.append(f"    if {cond}:")
            lines.append(f"        {', '.join(f'v{k}' for k in range(a, b))}, = _g{g}(buf, p{a})")
            lines.append("    else:")
            for k in range(a, b):
                lines.append(f"        v{k} = {one_fixed(k)}")
    lines.append("    return (" + ", ".join(f"v{i}" for i in range(n)) + ",)")
    exec(compile("\n".join(lines) + "\n", f"<decoder {info.name}/{n}>", "exec"), ns)
    return ns["dec"]


def param_decoder(code: int, n: int):
    """The decoder of records of type ``code`` with ``n`` parameters: ``dec(buf, off, end)`` ->
    tuple of values (None when the lengths run past ``end``)."""
    key = code << 32 | n
    dec = _DECODER_CACHE.get(key)
    if dec is None:
        dec = _DECODER_CACHE[key] = _make_decoder(code, n)
    return dec


class Event:
    """One event: header fields as attributes, parameters decoded on demand.

    ``buf[off:off+len]`` is the scap record; ``buf`` may hold a whole batch (shared, never copied).
    """

    __slots__ = ("ts", "tid", "type", "nparams", "cpu", "flags", "num", "buf", "off", "len", "_offsets",
                 "_params", "_vals", "__weakref__")

    def __init__(self, buf: bytes, off: int = 0, cpu: int = 0, flags: int = 0, num: int = 0):
        try:
            ts, tid, length, etype, nparams = HDR.unpack_from(buf, off)
        except struct.error as err:
            raise EventDecodeError(f"event at offset {off}: truncated header", off) from err
        self.ts = ts
        self.tid = tid
        self.len = length
        self.type = etype
        self.nparams = nparams
        self.cpu = cpu
        self.flags = flags
        self.num = num
        self.buf = buf
        self.off = off
        self._offsets = None
        self._params = None
        self._vals = None

    @classmethod
    def from_bytes(cls, record: bytes, cpu: int = 0, flags: int = 0, num: int = 0) -> "Event":
        evt = cls(record, 0, cpu, flags, num)
        evt.validate()
        return evt

    # -- type information
    @property
    def info(self) -> _schema.EventInfo:
        return event_info(self.type)

    @property
    def name(self) -> str:
        return event_info(self.type).name

    @property
    def direction(self) -> str:
        return ">" if self.type % 2 == 0 else "<"

    @property
    def record(self) -> bytes:
        return bytes(self.buf[self.off:self.off + self.len])

    # -- parameters
    def _param_bounds(self) -> tuple:
        try:
            offs = self._offsets
        except AttributeError:      # not set by the batch splitters
            offs = None
        if offs is not None:
            return offs
        n = self.nparams
        base = self.off + HDR_SIZE
        large = "LARGE_PAYLOAD" in event_info(self.type).flags
        table = _LENS32 if large else _LENS
        width = 4 if large else 2
        try:
            lens = (table[n] if n in table else struct.Struct("<%d%s" % (n, "I" if large else "H"))).unpack_from(
                self.buf, base)
        except struct.error as err:
            raise EventDecodeError(f"event {self.name} at offset {self.off}: {n} parameter lengths past the end",
                                   self.off, self.type) from err
        pos = base + width * n
        end = self.off + self.len
        out = []
        for ln in lens:
            if pos + ln > end:
                raise EventDecodeError(f"event {self.name} at offset {self.off}: parameter {len(out)} of {ln} "
                                       f"bytes runs past the event length {self.len}", self.off, self.type)
            out.append((pos, pos + ln))
            pos += ln
        self._offsets = offs = tuple(out)
        return offs

    def validate(self) -> None:
        """Raises EventDecodeError if the record's lengths are inconsistent."""
        if self.len < HDR_SIZE or self.off + self.len > len(self.buf):
            raise EventDecodeError(f"event at offset {self.off}: length {self.len} is out of bounds", self.off,
                                   self.type)
        self._param_bounds()

    def raw_param(self, i: int) -> bytes | None:
        """The bytes of parameter i (None if the event has fewer parameters)."""
        bounds = self._param_bounds()
        if i >= len(bounds):
            return None
        a, b = bounds[i]
        return self.buf[a:b]

    def _param_slow(self, i: int) -> Any:
        raw = self.raw_param(i)
        if raw is None:
            return None
        params = event_info(self.type).params
        if i >= len(params):
            return bytes(raw) if raw else None
        return decode_param(params[i].type, raw)

    def values(self) -> tuple:
        """Every parameter decoded, in order (cached): ``values()[i] == param(i)``."""
        vals = self._vals
        if vals is None:
            n = self.nparams
            dec = _DECODER_CACHE.get(self.type << 32 | n)
            if dec is None:
                dec = param_decoder(self.type, n)
            off = self.off
            try:
                vals = dec(self.buf, off, off + self.len)
            except struct.error:
                vals = None
            if vals is None:
                # inconsistent lengths: the generic path raises EventDecodeError
                vals = tuple(self._param_slow(i) for i in range(n))
            self._vals = vals
        return vals

    def param(self, i: int) -> Any:
        """Parameter i decoded by its type; None when absent or empty."""
        vals = self._vals
        if vals is None:
            vals = self.values()
        if 0 <= i < len(vals):
            return vals[i]
        return self._param_slow(i) if i < 0 else None

    def param_index(self, name: str) -> int:
        code = self.type
        return (_NAME_INDEX[code] if 0 <= code < EVENT_MAX else _NO_NAMES).get(name, -1)

    def get(self, name: str, default: Any = None) -> Any:
        code = self.type
        i = (_NAME_INDEX[code] if 0 <= code < EVENT_MAX else _NO_NAMES).get(name, -1)
        if i < 0 or i >= self.nparams:
            return default
        vals = self._vals
        if vals is None:
            vals = self.values()
        v = vals[i]
        return default if v is None else v

    def flag_names(self, name: str) -> list[str] | None:
        """The names of a flags or enum parameter's value, as Falco renders them
        (``evt.flag_names("flags") == ["O_RDONLY", "O_CLOEXEC"]``); None when the parameter is
        absent, empty, or not a named-flags parameter."""
        i = self.param_index(name)
        if i < 0 or i >= self.nparams:
            return None
        value = self.get(name)
        table = event_info(self.type).params[i].extra.split(" ")[0]
        if not isinstance(value, int) or not table:
            return None
        text = render_flags(table, value) if table in FLAGS else render_enum(table, value)
        return text.split("|") if text else []

    @property
    def params(self) -> dict[str, Any]:
        """Every parameter by name, decoded (cached)."""
        try:
            p = self._params
        except AttributeError:      # not set by the batch splitters
            p = None
        if p is None:
            code = self.type
            names = _PARAM_NAMES[code] if 0 <= code < EVENT_MAX else ()
            vals = self._vals
            if vals is None:
                vals = self.values()
            p = self._params = dict(zip(names, vals))
        return p

    def __repr__(self) -> str:
        return f"<Event #{self.num} {self.direction} {self.name} tid={self.tid} ts={self.ts}>"


def split_batch(buf: bytes, count: int, first_num: int = 0) -> list[Event]:
    """Events of a libpyfalco batch (pyfalco_batch_entry + record, 8-byte aligned)."""
    out = []
    append = out.append
    unpack = ENTRY_HDR.unpack_from
    new = Event.__new__
    off = 0
    num = first_num
    for _ in range(count):
        cpu, flags, rlen, ts, tid, length, etype, nparams = unpack(buf, off)
        evt = new(Event)
        evt.ts = ts
        evt.tid = tid
        evt.len = length
        evt.type = etype
        evt.nparams = nparams
        evt.cpu = cpu
        evt.flags = flags
        num += 1
        evt.num = num
        evt.buf = buf
        evt.off = off + ENTRY_SIZE
        evt._vals = None
        append(evt)
        off += (ENTRY_SIZE + rlen + 7) & ~7
    return out
