# SPDX-License-Identifier: Apache-2.0
"""Metadata entries of unknown type are skipped with a warning where the format allows it (v2
lists: the entry, by its length; v1 lists: the rest of the list, which has no entry lengths),
and the known entries around them are kept."""

from __future__ import annotations

import struct

from pyfalco.scap.metadata import initial_state_from_blocks


def _v4_iface(name: bytes) -> bytes:
    return struct.pack("<HH", 3, len(name)) + bytes([10, 0, 0, 1]) + bytes([255, 0, 0, 0]) + bytes(4) + name


def _user(uid: int, name: bytes) -> bytes:
    return struct.pack("<BII", 0, uid, uid) + struct.pack("<H", len(name)) + name + struct.pack("<HH", 0, 0)


def test_interface_list_v2_skips_the_unknown_entry(caplog):
    unknown = struct.pack("<HH", 77, 0) + bytes(20)
    body = b"".join(struct.pack("<I", len(e)) + e for e in (_v4_iface(b"eth0"), unknown, _v4_iface(b"eth1")))
    st = initial_state_from_blocks([(0x219, body)], source="f.scap")
    assert [i.name for i in st.interfaces] == ["eth0", "eth1"]
    assert "capture file f.scap: metadata block #0 (type 0x219): interface entry of unknown type 77 at byte 24 " \
           "skipped" in caplog.text


def test_interface_list_v1_keeps_what_comes_before(caplog):
    body = _v4_iface(b"eth0") + struct.pack("<HH", 77, 0) + bytes(20) + _v4_iface(b"eth1")
    st = initial_state_from_blocks([(0x205, body)])
    assert [i.name for i in st.interfaces] == ["eth0"]
    assert "interface entry of unknown type 77 at byte 20 skipped, with the 44 bytes after it" in caplog.text


def test_user_list_v2_skips_the_unknown_entry(caplog):
    entries = (_user(1000, b"alice"), struct.pack("<B", 9) + bytes(12), _user(1001, b"bob"))
    body = b"".join(struct.pack("<I", 4 + len(e)) + e for e in entries)
    st = initial_state_from_blocks([(0x220, body)])
    assert sorted(u.name for u in st.users.values()) == ["alice", "bob"]
    assert "user list entry of unknown type 9 at byte" in caplog.text


def test_user_list_v1_keeps_what_comes_before(caplog):
    body = _user(1000, b"alice") + struct.pack("<B", 9) + bytes(12) + _user(1001, b"bob")
    st = initial_state_from_blocks([(0x206, body)])
    assert [u.name for u in st.users.values()] == ["alice"]
    assert "user list entry of unknown type 9" in caplog.text and "a v1 list has no entry lengths" in caplog.text


def test_fd_list_v2_reads_unknown_types_as_unsupported(caplog):
    def fd(num: int, ftype: int, name: bytes) -> bytes:
        e = struct.pack("<QQB", num, 0, ftype) + struct.pack("<H", len(name)) + name
        return struct.pack("<I", 4 + len(e)) + e
    body = struct.pack("<Q", 7) + fd(3, 1, b"/a") + fd(4, 200, b"???") + fd(5, 1, b"/b")
    st = initial_state_from_blocks([(0x218, body)])
    fds = st.threads[7].fds
    assert sorted(fds) == [3, 4, 5] and fds[4].type == 10 and fds[5].name == "/b"
    assert "thread 7: 1 fd(s) of unknown type (200) read as unsupported fds" in caplog.text
