# SPDX-License-Identifier: Apache-2.0
"""HTTP/2 framing (RFC 9113) for unary gRPC calls on a unix socket: the connection preface,
SETTINGS/PING acknowledgements, flow-control credit for what the peer sends, HEADERS/CONTINUATION/
DATA, RST_STREAM and GOAWAY; and gRPC's message framing and status trailers."""

from __future__ import annotations

import socket
import struct
import time
import urllib.parse

from .errors import GRPC_UNAVAILABLE, CRIError, ProtocolError
from .hpack import HpackDecoder, encode_literal

__all__ = ["Connection", "frame", "DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
           "GOAWAY", "WINDOW_UPDATE", "CONTINUATION", "END_STREAM", "ACK", "END_HEADERS", "PADDED", "PRIORITY_FLAG"]

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
_MAX_FRAME = 16384
_WINDOW = 1 << 24


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame."""
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid & 0x7FFFFFFF) + payload


class Connection:
    """One HTTP/2 connection on a unix socket; ``call`` makes one unary gRPC call on a new stream."""

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
        self.sock.sendall(_PREFACE + frame(SETTINGS, 0, 0, settings)
                          + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", _WINDOW - 65535)))

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
        """(type, flags, stream id, payload) of the next frame."""
        head = self._recv(9, deadline)
        size = int.from_bytes(head[:3], "big")
        ftype, flags = head[3], head[4]
        sid = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        return ftype, flags, sid, self._recv(size, deadline) if size else b""

    def call(self, path: str, message: bytes, timeout: float) -> bytes:
        """The response message of a unary gRPC call to ``path``; CRIError with the gRPC status."""
        deadline = time.monotonic() + timeout
        sid = self.next_stream
        self.next_stream += 2
        self.used = True
        block = (b"\x83\x86"                                   # :method POST, :scheme http (static)
                 + encode_literal(":path", path) + encode_literal(":authority", "localhost")
                 + encode_literal("content-type", "application/grpc") + encode_literal("te", "trailers")
                 + encode_literal("user-agent", "pyfalco-cri/1"))
        body = b"\x00" + struct.pack(">I", len(message)) + message
        out = frame(HEADERS, END_HEADERS, sid, block)
        for off in range(0, len(body), _MAX_FRAME):
            chunk = body[off:off + _MAX_FRAME]
            out += frame(DATA, END_STREAM if off + _MAX_FRAME >= len(body) else 0, sid, chunk)
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
                    self.sock.sendall(frame(WINDOW_UPDATE, 0, 0, credit)
                                      + (frame(WINDOW_UPDATE, 0, fsid, credit) if not flags & END_STREAM else b""))
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
                    self.sock.sendall(frame(SETTINGS, ACK, 0))
            elif ftype == PING:
                if not flags & ACK:
                    self.sock.sendall(frame(PING, ACK, 0, payload))
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
