# SPDX-License-Identifier: Apache-2.0
"""HPACK (RFC 7541): a full decoder (static and dynamic tables, the canonical Huffman code of
Appendix B rebuilt from its code lengths) and literal encoding for requests (no indexing on our
side, so no encoder state)."""

from __future__ import annotations

from .errors import ProtocolError

__all__ = ["HpackDecoder", "huffman_decode", "encode_literal"]

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
    """A Huffman-coded HPACK string."""
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
        """The header fields of one header block (the dynamic table updated as it says)."""
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


def encode_literal(name: str, value: str) -> bytes:
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
