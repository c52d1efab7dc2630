# SPDX-License-Identifier: Apache-2.0
"""fd.ip, fd.port, fd.net, fd.proto: both ends of a connection, and rules that match either end."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest

from pyfalco.fields.catalog import FIELDS
from pyfalco.fields.extract import make_accessor
from pyfalco.rules import compile_filter
from pyfalco.state.fds import FD_FILE, Fd

IP = ipaddress.ip_address


class _Inspector:
    def network_of(self, ip):
        return ip

    def port_name(self, port, l4proto):
        return {443: "https", 22: "ssh"}.get(port)


def _ie(fd):
    return SimpleNamespace(fd=fd, inspector=_Inspector())


def _get(name, fd):
    return make_accessor(name)(_ie(fd))


def _connection(sip, sport, dip, dport):
    f = Fd(3, 0)
    f.set_tuple(IP(sip), sport, IP(dip), dport, 0, 6)
    return f


def test_catalog_declares_either_end_fields():
    for name in ("fd.ip", "fd.port", "fd.net", "fd.proto"):
        assert FIELDS[name].multi and not FIELDS[name].is_list
    assert not FIELDS["fd.sip"].multi and FIELDS["fd.types"].is_list


def test_values_of_both_ends():
    f = _connection("10.0.0.1", 40000, "8.8.8.8", 443)
    assert _get("fd.ip", f) == (IP("10.0.0.1"), IP("8.8.8.8"))
    assert _get("fd.port", f) == (40000, 443)
    assert _get("fd.net", f) == (IP("10.0.0.1"), IP("8.8.8.8"))
    assert _get("fd.proto", f) == ("https",)
    same = _connection("127.0.0.1", 40000, "127.0.0.1", 22)
    assert _get("fd.ip", same) == (IP("127.0.0.1"),)
    server = Fd(4, 0)
    server.set_server(IP("0.0.0.0"), 22)
    assert _get("fd.ip", server) == (IP("0.0.0.0"),) and _get("fd.port", server) == (22,)
    assert _get("fd.proto", server) == ("ssh",)
    file_fd = Fd(5, FD_FILE, "/etc/passwd")
    for name in ("fd.ip", "fd.port", "fd.net", "fd.proto"):
        assert _get(name, file_fd) is None and _get(name, None) is None


@pytest.mark.parametrize("cond, evt, want", [
    ("fd.port in (443, 80)", {"fd.port": (40000, 443)}, True),       # either end: the server's
    ("fd.port in (443, 80)", {"fd.port": (40000, 8080)}, False),
    ("fd.port = 40000", {"fd.port": (40000, 443)}, True),            # either end: the client's
    ("fd.port > 1024", {"fd.port": (40000, 443)}, True),
    ("fd.ip = 8.8.8.8", {"fd.ip": ("10.0.0.1", "8.8.8.8")}, True),
    ("fd.ip in (1.1.1.1, 10.0.0.1)", {"fd.ip": ("10.0.0.1", "8.8.8.8")}, True),
    ("fd.net = 10.0.0.0/8", {"fd.net": ("10.0.0.1", "8.8.8.8")}, True),
    ("fd.net != 127.0.0.0/8", {"fd.net": ("127.0.0.1", "127.0.0.2")}, False),
    ("fd.net != 127.0.0.0/8", {"fd.net": ("127.0.0.1", "8.8.8.8")}, True),
    ("fd.ip != 0.0.0.0", {"fd.ip": ("0.0.0.0",)}, False),
    ("fd.proto in (https, ssh)", {"fd.proto": ("https",)}, True),
    ("fd.port exists", {}, False),
])
def test_rules_match_either_end(cond, evt, want):
    flt = compile_filter(cond)
    assert flt.matches(evt) is want
