# SPDX-License-Identifier: Apache-2.0
"""Decoding of event records built here byte by byte: types, empty params, malformed input."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from pyfalco import EventDecodeError
from pyfalco.events import Event, SockAddr, SockTuple, split_batch


def record(etype: int, params: list[bytes], tid: int = 42, ts: int = 1_700_000_000_000_000_000) -> bytes:
    body = b"".join(params)
    lens = struct.pack("<%dH" % len(params), *map(len, params))
    length = 26 + len(lens) + len(body)
    return struct.pack("<QQIHI", ts, tid, length, etype, len(params)) + lens + body


def test_openat_exit_decodes_every_type():
    rec = record(307, [struct.pack("<q", 3), struct.pack("<q", -100), b"/etc/passwd\0", struct.pack("<I", 4097),
                       struct.pack("<I", 0), struct.pack("<I", 0xFE00), struct.pack("<Q", 1234)])
    e = Event.from_bytes(rec)
    assert (e.name, e.direction, e.tid, e.nparams) == ("openat", "<", 42, 7)
    assert e.params == {"fd": 3, "dirfd": -100, "name": "/etc/passwd", "flags": 4097, "mode": 0, "dev": 0xFE00,
                        "ino": 1234}
    assert e.get("name") == "/etc/passwd" and e.get("nope", "x") == "x"


def test_zero_length_parameter_is_none():
    rec = record(307, [struct.pack("<q", -2), struct.pack("<q", -100), b"", b"", b"", b"", b""])
    e = Event.from_bytes(rec)
    assert e.params["name"] is None and e.params["ino"] is None and e.params["fd"] == -2


def test_socket_tuples_and_addresses():
    tup4 = bytes([2]) + bytes([10, 0, 0, 1]) + struct.pack("<H", 40000) + bytes([1, 2, 3, 4]) + struct.pack("<H", 443)
    addr4 = bytes([2]) + bytes([1, 2, 3, 4]) + struct.pack("<H", 443)
    e = Event.from_bytes(record(23, [struct.pack("<q", 0), tup4, struct.pack("<q", 5), addr4]))
    t = e.params["tuple"]
    assert t == SockTuple(2, ipaddress.IPv4Address("10.0.0.1"), 40000, ipaddress.IPv4Address("1.2.3.4"), 443)
    assert str(t) == "10.0.0.1:40000->1.2.3.4:443"
    assert e.params["addr"] == SockAddr(2, ipaddress.IPv4Address("1.2.3.4"), 443)
    unix = bytes([1]) + struct.pack("<QQ", 0xAA, 0xBB) + b"/run/x.sock\0"
    e = Event.from_bytes(record(23, [struct.pack("<q", 0), unix, struct.pack("<q", 5), bytes([1]) + b"/run/x.sock\0"]))
    assert e.params["tuple"].path == "/run/x.sock" and e.params["tuple"].source == 0xAA
    assert e.params["addr"].path == "/run/x.sock"


def test_non_utf8_names_survive_as_surrogates():
    raw = b"/tmp/caf\xe9\xff\0"
    e = Event.from_bytes(record(301, [struct.pack("<q", 0), raw]))
    assert e.params["path"].encode("utf-8", "surrogateescape") == raw[:-1]


@pytest.mark.parametrize("mutate,message", [
    (lambda r: r[:20], "truncated header"),
    (lambda r: r[:-3], "out of bounds"),
    (lambda r: r[:26] + struct.pack("<H", 60000) + r[28:], "runs past the event length"),
])
def test_malformed_records_raise_with_the_offset(mutate, message):
    rec = record(301, [struct.pack("<q", 0), b"/x\0"])
    with pytest.raises(EventDecodeError) as err:
        Event.from_bytes(mutate(rec))
    assert message in str(err.value)
    assert err.value.offset == 0


def test_unknown_event_code_decodes_raw():
    e = Event.from_bytes(record(9999, [b"ab"]))
    assert e.name == "unknown" and e.param(0) == b"ab"


def test_split_batch_reads_entries_and_alignment():
    recs = [record(5, [struct.pack("<q", 0), struct.pack("<q", fd)]) for fd in (3, 4, 5)]
    buf = b""
    for i, r in enumerate(recs):
        entry = struct.pack("<HHI", i, 0, len(r)) + r
        buf += entry + b"\0" * ((-len(entry)) % 8)
    events = split_batch(buf, 3, first_num=10)
    assert [e.num for e in events] == [11, 12, 13]
    assert [e.cpu for e in events] == [0, 1, 2]
    assert [e.params["fd"] for e in events] == [3, 4, 5]

