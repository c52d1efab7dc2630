# SPDX-License-Identifier: Apache-2.0
"""A minimal CRI client (``runtime.v1.RuntimeService``) over a unix socket, stdlib only.

The Container Runtime Interface is gRPC: protobuf messages in HTTP/2 (cleartext, with prior
knowledge) on the runtime's unix socket (containerd: ``/run/containerd/containerd.sock``, CRI-O:
``/var/run/crio/crio.sock``). This module speaks just enough of the three layers:

* HTTP/2 framing (RFC 9113): the connection preface, SETTINGS/PING acknowledgements, flow-control
  credit for what the runtime sends, HEADERS/CONTINUATION/DATA, RST_STREAM and GOAWAY;
* HPACK (RFC 7541): requests are sent as literals (no dynamic-table state on our side); responses
  are decoded in full: static and dynamic tables, and the canonical Huffman code of Appendix B
  (rebuilt from its code lengths);
* protobuf wire format: a generic decoder to ``{field number: [values]}`` and encoders for the
  fields of the requests sent here. Field numbers are those of the CRI v1 ``api.proto``.

``CRIClient`` offers the calls pyfalco needs to read metadata (Version, ContainerStatus,
ListContainers, PodSandboxStatus, ListPodSandbox) and those the tests use to run a pod
(RunPodSandbox, CreateContainer, StartContainer, ExecSync, Stop*/Remove*).

``enrich_from_cri(info, socket)`` is what ``ContainerManager`` calls from its background thread:
it fills a ``ContainerInfo`` in from ContainerStatus (when the runtime's files on disk did not
describe the container) and the pod's labels and IP from PodSandboxStatus (cached per sandbox).
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

log = logging.getLogger("pyfalco.state.cri")

__all__ = ["CRIClient", "CRIError", "SandboxConfig", "enrich_from_cri", "NAMESPACE_POD", "NAMESPACE_CONTAINER",
           "NAMESPACE_NODE", "HpackDecoder", "huffman_decode", "pb_decode"]

RUNTIME_SERVICE = "runtime.v1.RuntimeService"

# NamespaceMode
NAMESPACE_POD, NAMESPACE_CONTAINER, NAMESPACE_NODE, NAMESPACE_TARGET = 0, 1, 2, 3

# gRPC status codes used here
GRPC_NOT_FOUND, GRPC_UNIMPLEMENTED, GRPC_UNAVAILABLE = 5, 12, 14


class CRIError(Exception):
    """A failed call: ``code`` is the gRPC status (None for transport errors)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class ProtocolError(CRIError):
    pass


# ---- protobuf wire format -------------------------------------------------------------------

def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64          # int32/int64 negatives: ten bytes of two's complement
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ProtocolError("truncated or oversized varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def pb_string(num: int, value) -> bytes:
    """A length-delimited field (string or bytes); omitted when empty (proto3 default)."""
    if not value:
        return b""
    data = value.encode() if isinstance(value, str) else bytes(value)
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def pb_message(num: int, body: bytes | None) -> bytes:
    """An embedded message; present (even empty) unless ``body`` is None."""
    if body is None:
        return b""
    return _varint(num << 3 | 2) + _varint(len(body)) + body


def pb_int(num: int, value) -> bytes:
    """A varint field (int32/int64/uint32/uint64/bool/enum); omitted when zero."""
    if not value:
        return b""
    return _varint(num << 3) + _varint(int(value))


def pb_repeated_string(num: int, values) -> bytes:
    out = b""
    for v in values or ():
        data = v.encode()
        out += _varint(num << 3 | 2) + _varint(len(data)) + data
    return out


def pb_map(num: int, mapping) -> bytes:
    """``map<string, string>``: one entry message (key = 1, value = 2) per item."""
    return b"".join(pb_message(num, pb_string(1, k) + pb_string(2, v)) for k, v in (mapping or {}).items())


def pb_decode(buf) -> dict[int, list]:
    """Wire format -> {field number: [values]}: ints for varint/fixed fields, bytes otherwise."""
    out: dict[int, list] = {}
    i, n = 0, len(buf)
    while i < n:
        key, i = _read_varint(buf, i)
        num, wtype = key >> 3, key & 7
        if wtype == 0:
            value, i = _read_varint(buf, i)
        elif wtype == 2:
            size, i = _read_varint(buf, i)
            if i + size > n:
                raise ProtocolError("truncated length-delimited field")
            value = bytes(buf[i:i + size])
            i += size
        elif wtype == 1:
            if i + 8 > n:
                raise ProtocolError("truncated fixed64")
            value = int.from_bytes(buf[i:i + 8], "little")
            i += 8
        elif wtype == 5:
            if i + 4 > n:
                raise ProtocolError("truncated fixed32")
            value = int.from_bytes(buf[i:i + 4], "little")
            i += 4
        else:
            raise ProtocolError(f"unsupported wire type {wtype}")
        if num == 0:
            raise ProtocolError("field number 0")
        out.setdefault(num, []).append(value)
    return out


def _str(msg: dict, num: int) -> str:
    v = msg.get(num)
    return v[-1].decode("utf-8", "replace") if v and isinstance(v[-1], bytes) else ""


def _int(msg: dict, num: int, signed: bool = True) -> int:
    v = msg.get(num)
    if not v or not isinstance(v[-1], int):
        return 0
    x = v[-1]
    if signed and x >= 1 << 63:
        x -= 1 << 64
    return x


def _sub(msg: dict, num: int) -> dict:
    v = msg.get(num)
    return pb_decode(v[-1]) if v and isinstance(v[-1], bytes) else {}


def _subs(msg: dict, num: int) -> list[dict]:
    return [pb_decode(v) for v in msg.get(num, ()) if isinstance(v, bytes)]


def _strmap(msg: dict, num: int) -> dict[str, str]:
    return {_str(e, 1): _str(e, 2) for e in _subs(msg, num)}


# ---- HPACK ------------------------------------------------------------------------------------

_STATIC = (
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
    (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
    (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
    ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""),
    ("cache-control", ""), ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""),
    ("content-length", ""), ("content-location", ""), ("content-range", ""), ("content-type", ""),
    ("cookie", ""), ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""), ("max-forwards", ""),
    ("proxy-authenticate", ""), ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""),
    ("retry-after", ""), ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""),
    ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
)

# Code length of each symbol 0..256 (256 = EOS) of RFC 7541 Appendix B, as chr(48 + length). The
# code is canonical: codes are assigned in order of (length, symbol), so the lengths define it.
_HUFFMAN_LENGTHS = (
    "=GLLLLLLLHNLLNLLLLLLLLNLLLLLLLLL6::<=68;::8;8666555666666678?6<:=67777777777777777777777878=C=>6?56"
    "565666577666567655677777?;>=LDFDDFFFGFGGGGGHGHHFGHGGGGEFGFGGHFEDFFGGEGFFHEFGGEEFEGFGGDFFFGFFGJJDCFG"
    "FIJJJKKJHICEJKKJKHEEJJLKKKDHDEFEEGFFIIHHJGJKJJKKKKKLKKKKKJN")
_huffman_table: dict[tuple[int, int], int] | None = None


def _huffman() -> dict[tuple[int, int], int]:
    global _huffman_table
    if _huffman_table is None:
        lengths = [ord(c) - 48 for c in _HUFFMAN_LENGTHS]
        table = {}
        code = prev = 0
        for k, sym in enumerate(sorted(range(257), key=lambda s: (lengths[s], s))):
            if k:
                code = (code + 1) << (lengths[sym] - prev)
            prev = lengths[sym]
            table[(lengths[sym], code)] = sym
        _huffman_table = table
    return _huffman_table


def huffman_decode(data: bytes) -> bytes:
    table = _huffman()
    out = bytearray()
    code = nbits = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            nbits += 1
            sym = table.get((nbits, code))
            if sym is not None:
                if sym == 256:
                    raise ProtocolError("EOS in a Huffman-coded string")
                out.append(sym)
                code = nbits = 0
            elif nbits > 30:
                raise ProtocolError("bad Huffman code")
    if nbits > 7 or code != (1 << nbits) - 1:
        raise ProtocolError("bad Huffman padding")
    return bytes(out)


def _hpack_int(data: bytes, i: int, prefix: int) -> tuple[int, int]:
    mask = (1 << prefix) - 1
    value = data[i] & mask
    i += 1
    if value < mask:
        return value, i
    shift = 0
    while True:
        if i >= len(data) or shift > 28:
            raise ProtocolError("bad HPACK integer")
        b = data[i]
        i += 1
        value += (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _hpack_str(data: bytes, i: int) -> tuple[str, int]:
    if i >= len(data):
        raise ProtocolError("truncated HPACK string")
    huff = data[i] & 0x80
    size, i = _hpack_int(data, i, 7)
    raw = data[i:i + size]
    if len(raw) != size:
        raise ProtocolError("truncated HPACK string")
    return (huffman_decode(raw) if huff else raw).decode("utf-8", "replace"), i + size


class HpackDecoder:
    """A header-block decoder with its dynamic table (one per connection)."""

    def __init__(self, max_size: int = 4096):
        self.max_size = max_size
        self.size = 0
        self.dynamic: list[tuple[str, str]] = []    # newest first

    def _entry(self, index: int) -> tuple[str, str]:
        if 1 <= index <= len(_STATIC):
            return _STATIC[index - 1]
        j = index - len(_STATIC) - 1
        if 0 <= j < len(self.dynamic):
            return self.dynamic[j]
        raise ProtocolError(f"bad HPACK index {index}")

    def _evict(self) -> None:
        while self.size > self.max_size and self.dynamic:
            name, value = self.dynamic.pop()
            self.size -= len(name.encode()) + len(value.encode()) + 32

    def decode(self, data: bytes) -> list[tuple[str, str]]:
        out = []
        i = 0
        while i < len(data):
            b = data[i]
            if b & 0x80:                                   # indexed field
                index, i = _hpack_int(data, i, 7)
                out.append(self._entry(index))
                continue
            if b & 0xC0 == 0x40:                           # literal with incremental indexing
                index, i = _hpack_int(data, i, 6)
                add = True
            elif b & 0xE0 == 0x20:                         # dynamic table size update
                self.max_size, i = _hpack_int(data, i, 5)
                self._evict()
                continue
            else:                                          # literal without / never indexed
                index, i = _hpack_int(data, i, 4)
                add = False
            if index:
                name = self._entry(index)[0]
            else:
                name, i = _hpack_str(data, i)
            value, i = _hpack_str(data, i)
            out.append((name, value))
            if add:
                self.dynamic.insert(0, (name, value))
                self.size += len(name.encode()) + len(value.encode()) + 32
                self._evict()
        return out


def _hpack_literal(name: str, value: str) -> bytes:
    """Literal header field without indexing, new name, no Huffman coding."""
    def s(text: str) -> bytes:
        data = text.encode()
        n = len(data)
        if n < 127:
            return bytes([n]) + data
        out = bytearray([127])
        n -= 127
        while n >= 128:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
        return bytes(out) + data
    return b"\x00" + s(name) + s(value)


# ---- HTTP/2 and gRPC --------------------------------------------------------------------------

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
_MAX_FRAME = 16384
_WINDOW = 1 << 24
_READ_ONLY = frozenset(("Version", "ContainerStatus", "ListContainers", "PodSandboxStatus", "ListPodSandbox"))


def _frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid & 0x7FFFFFFF) + payload


class _Connection:
    def __init__(self, path: str, timeout: float):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.buf = bytearray()
        self.decoder = HpackDecoder()
        self.next_stream = 1
        self.used = False
        # no server push; a large stream window, and the connection window raised to match
        settings = struct.pack(">HI", 2, 0) + struct.pack(">HI", 4, _WINDOW)
        self.sock.sendall(_PREFACE + _frame(SETTINGS, 0, 0, settings)
                          + _frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", _WINDOW - 65535)))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CRIError("CRI call timed out", GRPC_UNAVAILABLE)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise CRIError("CRI call timed out", GRPC_UNAVAILABLE) from None
            if not chunk:
                raise CRIError("connection closed by the runtime", GRPC_UNAVAILABLE)
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_frame(self, deadline: float) -> tuple[int, int, int, bytes]:
        head = self._recv(9, deadline)
        size = int.from_bytes(head[:3], "big")
        ftype, flags = head[3], head[4]
        sid = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        return ftype, flags, sid, self._recv(size, deadline) if size else b""

    def call(self, path: str, message: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        sid = self.next_stream
        self.next_stream += 2
        self.used = True
        block = (b"\x83\x86"                                   # :method POST, :scheme http (static)
                 + _hpack_literal(":path", path) + _hpack_literal(":authority", "localhost")
                 + _hpack_literal("content-type", "application/grpc") + _hpack_literal("te", "trailers")
                 + _hpack_literal("user-agent", "pyfalco-cri/1"))
        body = b"\x00" + struct.pack(">I", len(message)) + message
        out = _frame(HEADERS, END_HEADERS, sid, block)
        for off in range(0, len(body), _MAX_FRAME):
            chunk = body[off:off + _MAX_FRAME]
            out += _frame(DATA, END_STREAM if off + _MAX_FRAME >= len(body) else 0, sid, chunk)
        self.sock.sendall(out)

        headers: dict[str, str] = {}
        data = bytearray()
        block_sid, block = None, bytearray()
        block_end = False
        while True:
            ftype, flags, fsid, payload = self.read_frame(deadline)
            flow = len(payload)
            if ftype in (HEADERS, DATA) and flags & PADDED:
                if not payload:
                    raise ProtocolError("bad padding")
                pad = payload[0]
                payload = payload[1:len(payload) - pad]
            if ftype == HEADERS:
                if flags & PRIORITY_FLAG:
                    payload = payload[5:]
                block_sid, block, block_end = fsid, bytearray(payload), bool(flags & END_STREAM)
                if not flags & END_HEADERS:
                    continue
            elif ftype == CONTINUATION:
                if block_sid != fsid:
                    raise ProtocolError("unexpected CONTINUATION")
                block += payload
                if not flags & END_HEADERS:
                    continue
            if ftype in (HEADERS, CONTINUATION):
                fields = self.decoder.decode(bytes(block))   # every block: the dynamic table stays in step
                if block_sid == sid:
                    headers.update(fields)
                    if block_end:
                        break
                block_sid = None
            elif ftype == DATA:
                if flow:
                    credit = struct.pack(">I", flow)
                    self.sock.sendall(_frame(WINDOW_UPDATE, 0, 0, credit)
                                      + (_frame(WINDOW_UPDATE, 0, fsid, credit) if not flags & END_STREAM else b""))
                if fsid == sid:
                    data += payload
                    if flags & END_STREAM:
                        break
            elif ftype == SETTINGS:
                if not flags & ACK:
                    for off in range(0, len(payload) - 5, 6):
                        ident, value = struct.unpack(">HI", payload[off:off + 6])
                        if ident == 1:
                            pass    # table size for our encoder: we never index
                    self.sock.sendall(_frame(SETTINGS, ACK, 0))
            elif ftype == PING:
                if not flags & ACK:
                    self.sock.sendall(_frame(PING, ACK, 0, payload))
            elif ftype == RST_STREAM:
                if fsid == sid:
                    code = int.from_bytes(payload[:4], "big") if len(payload) >= 4 else -1
                    raise CRIError(f"stream reset by the runtime (HTTP/2 error {code})", GRPC_UNAVAILABLE)
            elif ftype == GOAWAY:
                last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF if len(payload) >= 4 else 0
                self.next_stream = 1 << 31     # no new streams on this connection
                if last < sid:
                    raise CRIError("the runtime is closing the connection (GOAWAY)", GRPC_UNAVAILABLE)
            elif ftype == PUSH_PROMISE:
                raise ProtocolError("PUSH_PROMISE although push is disabled")
            # PRIORITY, WINDOW_UPDATE, unknown types: nothing to do (our requests are small)

        status = headers.get("grpc-status")
        if status is None:
            http = headers.get(":status", "?")
            raise CRIError(f"no gRPC status in the response (HTTP status {http})", GRPC_UNAVAILABLE)
        if status != "0":
            msg = urllib.parse.unquote(headers.get("grpc-message", ""))
            try:
                code = int(status)
            except ValueError:
                code = 2
            raise CRIError(f"{path}: {msg or 'gRPC status ' + status}", code)
        if len(data) < 5:
            return b""
        if data[0] != 0:
            raise ProtocolError("compressed gRPC message although none was asked for")
        size = int.from_bytes(data[1:5], "big")
        if len(data) < 5 + size:
            raise ProtocolError("truncated gRPC message")
        return bytes(data[5:5 + size])


@dataclass
class SandboxConfig:
    """The parts of ``PodSandboxConfig`` a pod needs (what kubelet sends, minus DNS and ports)."""

    name: str
    namespace: str = "default"
    uid: str = ""
    attempt: int = 0
    hostname: str = ""
    log_directory: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""
    network: int = NAMESPACE_POD
    pid: int = NAMESPACE_CONTAINER
    ipc: int = NAMESPACE_POD
    privileged: bool = False

    def encode(self) -> bytes:
        metadata = pb_string(1, self.name) + pb_string(2, self.uid) + pb_string(3, self.namespace) \
            + pb_int(4, self.attempt)
        nsopts = pb_int(1, self.network) + pb_int(2, self.pid) + pb_int(3, self.ipc)
        secctx = pb_message(1, nsopts) + pb_int(6, self.privileged)
        linux = pb_string(1, self.cgroup_parent) + pb_message(2, secctx)
        return (pb_message(1, metadata) + pb_string(2, self.hostname) + pb_string(3, self.log_directory)
                + pb_map(6, self.labels) + pb_map(7, self.annotations) + pb_message(8, linux))


def _sandbox_dict(m: dict, labels_field: int, annotations_field: int) -> dict:
    meta = _sub(m, 2)
    return {"id": _str(m, 1), "name": _str(meta, 1), "uid": _str(meta, 2), "namespace": _str(meta, 3),
            "attempt": _int(meta, 4), "state": _int(m, 3), "created_at": _int(m, 4),
            "labels": _strmap(m, labels_field), "annotations": _strmap(m, annotations_field)}


class CRIClient:
    """A CRI ``RuntimeService`` client on one unix socket (thread-safe; calls are serialized)."""

    def __init__(self, path: str, timeout: float = 2.0, service: str = RUNTIME_SERVICE):
        self.path = path
        self.timeout = timeout
        self.service = service
        self._conn: _Connection | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method: str, message: bytes = b"", timeout: float | None = None) -> dict:
        """One unary call; the decoded response ({field: [values]})."""
        path = f"/{self.service}/{method}"
        timeout = self.timeout if timeout is None else timeout
        with self._lock:
            for attempt in (0, 1):
                conn = self._conn
                reused = conn is not None and conn.used
                try:
                    if conn is None or conn.next_stream >= 1 << 30:
                        if conn is not None:
                            conn.close()
                        conn = self._conn = _Connection(self.path, timeout)
                    return pb_decode(conn.call(path, message, timeout))
                except CRIError as err:
                    if err.code is not None and not isinstance(err, ProtocolError) and err.code != GRPC_UNAVAILABLE:
                        raise                     # an answer from the runtime: the connection is fine
                    self._drop()
                    if not (attempt == 0 and reused and method in _READ_ONLY):
                        raise
                except OSError as err:
                    self._drop()
                    if not (attempt == 0 and reused and method in _READ_ONLY):
                        raise CRIError(f"{self.path}: {err}", GRPC_UNAVAILABLE) from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- metadata
    def version(self) -> dict:
        m = self.call("Version", pb_string(1, "v1"))
        return {"version": _str(m, 1), "runtime_name": _str(m, 2), "runtime_version": _str(m, 3),
                "runtime_api_version": _str(m, 4)}

    def container_status(self, cid: str, verbose: bool = False) -> dict:
        m = self.call("ContainerStatus", pb_string(1, cid) + pb_int(2, verbose))
        s = _sub(m, 1)
        meta, image = _sub(s, 2), _sub(s, 8)
        mounts = [{"container_path": _str(x, 1), "host_path": _str(x, 2), "readonly": bool(_int(x, 3)),
                   "propagation": _int(x, 5)} for x in _subs(s, 14)]
        return {"id": _str(s, 1), "name": _str(meta, 1), "attempt": _int(meta, 2), "state": _int(s, 3),
                "created_at": _int(s, 4), "started_at": _int(s, 5), "finished_at": _int(s, 6),
                "exit_code": _int(s, 7), "image": _str(image, 1), "image_ref": _str(s, 9),
                "reason": _str(s, 10), "message": _str(s, 11), "labels": _strmap(s, 12),
                "annotations": _strmap(s, 13), "mounts": mounts, "log_path": _str(s, 15),
                "image_id": _str(s, 17), "info": _strmap(m, 2)}

    def list_containers(self, cid: str = "", sandbox_id: str = "", labels: dict | None = None) -> list[dict]:
        filt = pb_string(1, cid) + pb_string(3, sandbox_id) + pb_map(4, labels)
        m = self.call("ListContainers", pb_message(1, filt))
        out = []
        for c in _subs(m, 1):
            meta, image = _sub(c, 3), _sub(c, 4)
            out.append({"id": _str(c, 1), "pod_sandbox_id": _str(c, 2), "name": _str(meta, 1),
                        "attempt": _int(meta, 2), "image": _str(image, 1), "image_ref": _str(c, 5),
                        "state": _int(c, 6), "created_at": _int(c, 7), "labels": _strmap(c, 8),
                        "annotations": _strmap(c, 9), "image_id": _str(c, 10)})
        return out

    def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False) -> dict:
        m = self.call("PodSandboxStatus", pb_string(1, sandbox_id) + pb_int(2, verbose))
        s = _sub(m, 1)
        out = _sandbox_dict(s, 7, 8)
        net = _sub(s, 5)
        out["ip"] = _str(net, 1)
        out["additional_ips"] = [_str(x, 1) for x in _subs(net, 2)]
        nsopts = _sub(_sub(_sub(s, 6), 1), 2)
        out["namespace_options"] = {"network": _int(nsopts, 1), "pid": _int(nsopts, 2), "ipc": _int(nsopts, 3)}
        out["runtime_handler"] = _str(s, 9)
        out["info"] = _strmap(m, 2)
        return out

    def list_pod_sandbox(self, sandbox_id: str = "", labels: dict | None = None) -> list[dict]:
        filt = pb_string(1, sandbox_id) + pb_map(3, labels)
        m = self.call("ListPodSandbox", pb_message(1, filt))
        out = []
        for s in _subs(m, 1):
            d = _sandbox_dict(s, 5, 6)
            d["runtime_handler"] = _str(s, 7)
            out.append(d)
        return out

    # -- lifecycle (tests and tools)
    def run_pod_sandbox(self, config: SandboxConfig, runtime_handler: str = "", timeout: float = 60.0) -> str:
        m = self.call("RunPodSandbox", pb_message(1, config.encode()) + pb_string(2, runtime_handler), timeout)
        return _str(m, 1)

    def stop_pod_sandbox(self, sandbox_id: str, timeout: float = 30.0) -> None:
        self.call("StopPodSandbox", pb_string(1, sandbox_id), timeout)

    def remove_pod_sandbox(self, sandbox_id: str, timeout: float = 30.0) -> None:
        self.call("RemovePodSandbox", pb_string(1, sandbox_id), timeout)

    def create_container(self, sandbox_id: str, sandbox: SandboxConfig, name: str, image: str,
                         command=(), args=(), labels: dict | None = None, annotations: dict | None = None,
                         envs: dict | None = None, working_dir: str = "", log_path: str = "",
                         privileged: bool = False, attempt: int = 0, timeout: float = 60.0) -> str:
        metadata = pb_string(1, name) + pb_int(2, attempt)
        secctx = pb_int(2, privileged) + pb_message(3, pb_int(2, sandbox.pid))
        linux = pb_message(2, secctx)
        env = b"".join(pb_message(6, pb_string(1, k) + pb_string(2, v)) for k, v in (envs or {}).items())
        config = (pb_message(1, metadata) + pb_message(2, pb_string(1, image)) + pb_repeated_string(3, command)
                  + pb_repeated_string(4, args) + pb_string(5, working_dir) + env + pb_map(9, labels)
                  + pb_map(10, annotations) + pb_string(11, log_path) + pb_message(15, linux))
        m = self.call("CreateContainer", pb_string(1, sandbox_id) + pb_message(2, config)
                      + pb_message(3, sandbox.encode()), timeout)
        return _str(m, 1)

    def start_container(self, cid: str, timeout: float = 60.0) -> None:
        self.call("StartContainer", pb_string(1, cid), timeout)

    def stop_container(self, cid: str, grace: int = 0, timeout: float = 30.0) -> None:
        self.call("StopContainer", pb_string(1, cid) + pb_int(2, grace), timeout)

    def remove_container(self, cid: str, timeout: float = 30.0) -> None:
        self.call("RemoveContainer", pb_string(1, cid), timeout)

    def exec_sync(self, cid: str, cmd, timeout: int = 30) -> tuple[int, bytes, bytes]:
        """Runs ``cmd`` in the container; (exit code, stdout, stderr)."""
        m = self.call("ExecSync", pb_string(1, cid) + pb_repeated_string(2, cmd) + pb_int(3, timeout),
                      timeout + 10.0)
        out = m.get(1, [b""])[-1]
        err = m.get(2, [b""])[-1]
        return _int(m, 3), out if isinstance(out, bytes) else b"", err if isinstance(err, bytes) else b""


# ---- ContainerManager integration -------------------------------------------------------------

_clients: dict[str, CRIClient] = {}
_runtime_names: dict[str, str] = {}
_sandboxes: dict[tuple[str, str], tuple[float, dict | None]] = {}
_SANDBOX_TTL = 30.0
_clients_lock = threading.Lock()


def client_for(path: str) -> CRIClient:
    with _clients_lock:
        c = _clients.get(path)
        if c is None:
            c = _clients[path] = CRIClient(path, timeout=2.0)
        return c


def forget(path: str | None = None) -> None:
    """Drops the cached clients and sandboxes (of one socket, or all)."""
    with _clients_lock:
        for p in [p for p in _clients if path is None or p == path]:
            _clients.pop(p).close()
            _runtime_names.pop(p, None)
        for key in [k for k in _sandboxes if path is None or k[0] == path]:
            del _sandboxes[key]
        for p in [p for p in _unsupported if path is None or p == path]:
            del _unsupported[p]


def _runtime_type(client: CRIClient) -> str:
    from .cgroups import TYPE_CONTAINERD, TYPE_CRIO
    name = _runtime_names.get(client.path)
    if name is None:
        try:
            name = client.version()["runtime_name"]
        except CRIError:
            name = ""
        _runtime_names[client.path] = name
    return TYPE_CRIO if "cri-o" in name.lower() else TYPE_CONTAINERD if "containerd" in name.lower() else ""


def _sandbox(client: CRIClient, sandbox_id: str) -> dict | None:
    key = (client.path, sandbox_id)
    hit = _sandboxes.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < _SANDBOX_TTL:
        return hit[1]
    try:
        status = client.pod_sandbox_status(sandbox_id)
    except CRIError as err:
        if err.code != GRPC_NOT_FOUND:
            raise
        status = None
    if len(_sandboxes) > 1024:
        _sandboxes.clear()
    _sandboxes[key] = (now, status)
    return status


def _set_pod(info, sandbox: dict) -> None:
    info.pod_sandbox_id = info.pod_sandbox_id or sandbox["id"]
    info.pod_name = info.pod_name or sandbox["name"] or None
    info.pod_namespace = info.pod_namespace or sandbox["namespace"] or None
    info.pod_uid = info.pod_uid or sandbox["uid"] or None
    info.pod_labels = dict(sandbox["labels"])
    info.pod_ip = sandbox.get("ip") or info.pod_ip
    if info.host_network is None:
        info.host_network = sandbox.get("namespace_options", {}).get("network") == NAMESPACE_NODE


def _from_status(info, status: dict) -> None:
    from .containers import Mount, _oci_host_namespaces, _oci_privileged, _set_image
    if not info.name or info.name == info.id[:12]:
        info.name = status["name"] or info.name
    image = status["image"]
    image_id = status["image_id"] or status["image_ref"]
    if image.startswith("sha256:"):          # an image id, not a name
        image_id, image = image_id or image, ""
    if "@" in image_id:
        image_id = image_id.rsplit("@", 1)[1]
    _set_image(info, image or info.image, image_id if image_id.startswith("sha256:") else None)
    if status["started_at"] or status["created_at"]:
        info.start_ts = status["started_at"] or status["created_at"]
    labels = status["labels"]
    info.labels = dict(labels)
    info.pod_name = info.pod_name or labels.get("io.kubernetes.pod.name")
    info.pod_namespace = info.pod_namespace or labels.get("io.kubernetes.pod.namespace")
    info.pod_uid = info.pod_uid or labels.get("io.kubernetes.pod.uid")
    if status["mounts"] and not info.mounts:
        prop = {0: "rprivate", 1: "rslave", 2: "rshared"}
        info.mounts = [Mount(m["host_path"], m["container_path"], "ro" if m["readonly"] else "rw",
                             not m["readonly"], prop.get(m["propagation"], "")) for m in status["mounts"]]
    # verbose info (containerd, CRI-O): {"sandboxID": ..., "runtimeSpec": {OCI spec}, ...}
    try:
        detail = json.loads(status["info"].get("info") or "{}")
    except ValueError:
        detail = {}
    if isinstance(detail, dict):
        info.pod_sandbox_id = info.pod_sandbox_id or detail.get("sandboxID") or None
        spec = detail.get("runtimeSpec")
        if isinstance(spec, dict):
            ann = spec.get("annotations") or {}
            info.pod_sandbox_id = info.pod_sandbox_id or ann.get("io.kubernetes.cri.sandbox-id") or None
            if info.privileged is None:
                info.privileged = _oci_privileged(spec)
            if info.host_pid is None:
                _oci_host_namespaces(info, spec)


_unsupported: dict[str, float] = {}     # socket -> until when it is not asked again
_UNSUPPORTED_FOR = 60.0


def enrich_from_cri(info, sock_path: str) -> bool:
    """Fills ``info`` (a ContainerInfo) from the CRI runtime on ``sock_path``; True when it knew the id.

    Runs in the ContainerManager's worker thread (it blocks for at most a few seconds). A socket
    without the CRI service (Docker's containerd has the CRI plugin disabled) is left alone for a
    minute."""
    until = _unsupported.get(sock_path)
    if until is not None:
        if time.monotonic() < until:
            return False
        del _unsupported[sock_path]
    client = client_for(sock_path)
    try:
        found = False
        need_status = not info.pod_sandbox_id or not info.image or not info.name
        if need_status or not info.labels:
            try:
                status = client.container_status(info.id, verbose=need_status)
            except CRIError as err:
                if err.code not in (GRPC_NOT_FOUND, 2):   # containerd answers "not found" with Unknown too
                    raise
                status = None
            if status is not None and status["id"]:
                _from_status(info, status)
                found = True
            elif info.pod_sandbox_id in (None, info.id):
                # the pod's sandbox ("pause") container itself: named after the pod
                sandbox = _sandbox(client, info.id)
                if sandbox is not None and sandbox["id"]:
                    info.pod_sandbox_id = sandbox["id"]
                    info.name = info.name if info.name and info.name != info.id[:12] else sandbox["name"]
                    if not info.start_ts and sandbox["created_at"]:
                        info.start_ts = sandbox["created_at"]
                    found = True
        if info.pod_sandbox_id:
            sandbox = _sandbox(client, info.pod_sandbox_id)
            if sandbox is not None:
                _set_pod(info, sandbox)
                found = True
        if found:
            if not info.type:
                info.type = _runtime_type(client)
            info.source = (info.source + "+" if info.source else "") + "cri:" + sock_path
        return found
    except CRIError as err:
        if err.code == GRPC_UNIMPLEMENTED:
            _unsupported[sock_path] = time.monotonic() + _UNSUPPORTED_FOR
        log.debug("CRI %s: %s: %s", sock_path, info.id[:12], err)
        return False
