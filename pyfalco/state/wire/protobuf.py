# SPDX-License-Identifier: Apache-2.0
"""The protobuf wire format: a generic decoder to ``{field number: [values]}``, typed getters over
it, and encoders for the fields of the requests the CRI client sends."""

from __future__ import annotations

from .errors import ProtocolError

__all__ = ["varint", "read_varint", "pb_string", "pb_message", "pb_int", "pb_repeated_string", "pb_map",
           "pb_decode", "get_str", "get_int", "get_sub", "get_subs", "get_strmap"]


def varint(n: int) -> bytes:
    """A base-128 varint (negatives as ten bytes of two's complement)."""
    if n < 0:
        n += 1 << 64          # int32/int64 negatives: ten bytes of two's complement
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(buf, i: int) -> tuple[int, int]:
    """(value, next index) of the varint at ``buf[i]``."""
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
    return varint(num << 3 | 2) + varint(len(data)) + data


def pb_message(num: int, body: bytes | None) -> bytes:
    """An embedded message; present (even empty) unless ``body`` is None."""
    if body is None:
        return b""
    return varint(num << 3 | 2) + varint(len(body)) + body


def pb_int(num: int, value) -> bytes:
    """A varint field (int32/int64/uint32/uint64/bool/enum); omitted when zero."""
    if not value:
        return b""
    return varint(num << 3) + varint(int(value))


def pb_repeated_string(num: int, values) -> bytes:
    """A repeated string field."""
    out = b""
    for v in values or ():
        data = v.encode()
        out += varint(num << 3 | 2) + varint(len(data)) + data
    return out


def pb_map(num: int, mapping) -> bytes:
    """``map<string, string>``: one entry message (key = 1, value = 2) per item."""
    return b"".join(pb_message(num, pb_string(1, k) + pb_string(2, v)) for k, v in (mapping or {}).items())


def pb_decode(buf) -> dict[int, list]:
    """Wire format -> {field number: [values]}: ints for varint/fixed fields, bytes otherwise."""
    out: dict[int, list] = {}
    i, n = 0, len(buf)
    while i < n:
        key, i = read_varint(buf, i)
        num, wtype = key >> 3, key & 7
        if wtype == 0:
            value, i = read_varint(buf, i)
        elif wtype == 2:
            size, i = read_varint(buf, i)
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


def get_str(msg: dict, num: int) -> str:
    """The last value of a string field, "" when absent."""
    v = msg.get(num)
    return v[-1].decode("utf-8", "replace") if v and isinstance(v[-1], bytes) else ""


def get_int(msg: dict, num: int, signed: bool = True) -> int:
    """The last value of a varint field (two's complement when ``signed``), 0 when absent."""
    v = msg.get(num)
    if not v or not isinstance(v[-1], int):
        return 0
    x = v[-1]
    if signed and x >= 1 << 63:
        x -= 1 << 64
    return x


def get_sub(msg: dict, num: int) -> dict:
    """The last embedded message of a field, decoded ({} when absent)."""
    v = msg.get(num)
    return pb_decode(v[-1]) if v and isinstance(v[-1], bytes) else {}


def get_subs(msg: dict, num: int) -> list[dict]:
    """Every embedded message of a repeated field, decoded."""
    return [pb_decode(v) for v in msg.get(num, ()) if isinstance(v, bytes)]


def get_strmap(msg: dict, num: int) -> dict[str, str]:
    """A ``map<string, string>`` field."""
    return {get_str(e, 1): get_str(e, 2) for e in get_subs(msg, num)}
