#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fuzz target: the CRI client's decoding (state/cri.py, state/wire/, state/container_cri.py), as a hostile container
runtime would feed it. The first byte picks the layer:

* 0 mod 3: the rest is everything the runtime sends on one connection (HTTP/2 frames: SETTINGS,
  HEADERS/CONTINUATION with HPACK blocks, DATA with gRPC messages, PING, GOAWAY, RST_STREAM...).
  ``enrich_from_cri`` looks a container up through a CRIClient whose connection is one end of a
  socketpair holding those bytes (the client's own frame loop, HPACK decoder and protobuf
  decoder; its writes go to the other end, read back and dropped);
* 1 mod 3: the rest is one protobuf message answered to every call (``enrich_from_cri`` through
  a client whose ``call`` decodes it: ContainerStatus, PodSandboxStatus, Version parsing,
  the verbose info JSON with its OCI spec);
* 2 mod 3: the rest is HPACK header blocks separated by ``\\xff\\xfe``, decoded in turn by one
  HpackDecoder (the dynamic table carries over, as on a connection).

Expected errors: pyfalco.state.cri.CRIError (ProtocolError is one) from the HPACK layer;
enrich_from_cri catches CRIError itself, so nothing may escape it.
"""

from __future__ import annotations

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzzlib  # noqa: E402

EXPECTED = "pyfalco.state.cri.CRIError (ProtocolError) from HpackDecoder.decode; nothing from enrich_from_cri"
MAX_LEN = 8192
CI_RUNS = 3000
SOCK = "/nonexistent/pyfalco-fuzz-cri.sock"   # never connected to: a dropped connection stays dropped
CID = "0123456789ab" + "c" * 52

_G: dict = {}


def setup() -> None:
    import pyfalco.state.container_cri as container_cri
    import pyfalco.state.containers
    import pyfalco.state.cri as cri
    _G["cri"] = cri
    _G["container_cri"] = container_cri
    _G["ContainerInfo"] = pyfalco.state.containers.ContainerInfo

    class Canned(cri.CRIClient):
        """Answers every call with the same protobuf message (decoded as the real call does)."""
        payload = b""

        def call(self, method, message=b"", timeout=None):
            return cri.pb_decode(self.payload)
    _G["Canned"] = Canned


def _socket_client(stream: bytes):
    cri = _G["cri"]
    a, b = socket.socketpair()
    a.setblocking(False)
    conn = cri._Connection.__new__(cri._Connection)
    conn.sock = b
    conn.buf = bytearray()
    conn.decoder = cri.HpackDecoder()
    conn.next_stream = 1
    conn.used = False
    b.settimeout(2)
    # nobody reads the client's writes (PING/SETTINGS acks, WINDOW_UPDATEs): an AF_UNIX send
    # buffer of the default 208 KiB holds ~70 small writes (each costs ~3 KiB of it), so an input
    # with more control frames waited the 2 s timeout in sendall, a sleep of the harness (not a
    # finding: a runtime that never reads gets the same timeout). 16 MiB holds what an input of
    # MAX_LEN can make the client write (<= 910 frames); without CAP_NET_ADMIN: wmem_max's cap
    try:
        b.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_SNDBUFFORCE", 32), 16 << 20)
    except OSError:
        b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 << 20)
    a.sendall(stream)       # the whole answer, then EOF: a read past it ends the call
    a.shutdown(socket.SHUT_WR)
    client = cri.CRIClient(SOCK, timeout=2.0)
    client._conn = conn
    return client, a


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    if not data:
        return
    cri = _G["cri"]
    mode, rest = data[0] % 3, data[1:]
    if mode == 2:
        dec = cri.HpackDecoder()
        for block in rest.split(b"\xff\xfe"):
            try:
                dec.decode(block)
            except cri.CRIError:
                pass
        return
    enrich = _G["container_cri"]
    enrich.forget()
    info = _G["ContainerInfo"](CID)
    peer = None
    if mode == 1:
        client = _G["Canned"](SOCK)
        client.payload = rest
    else:
        client, peer = _socket_client(rest)
    enrich._clients[SOCK] = client
    try:
        enrich.enrich_from_cri(info, SOCK)
    finally:
        enrich.forget()
        if peer is not None:
            peer.close()


# ---- seeds ---------------------------------------------------------------------------------

def seeds() -> dict[str, bytes]:
    """Valid answers (written to tools/fuzz/corpus/cri by seeds.py)."""
    import json

    from pyfalco.state import cri
    from pyfalco.state.wire.hpack import encode_literal as _hpack_literal
    from pyfalco.state.wire.http2 import DATA, END_HEADERS, END_STREAM, HEADERS, PING, SETTINGS
    from pyfalco.state.wire.http2 import frame as _frame
    from pyfalco.state.wire.protobuf import pb_int, pb_map, pb_message, pb_string
    spec = {"annotations": {"io.kubernetes.cri.sandbox-id": "s" * 64},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]},
            "process": {"capabilities": {"bounding": ["CAP_SYS_ADMIN"]}}}
    meta = pb_string(1, "web") + pb_int(2, 1)
    status = (pb_string(1, CID) + pb_message(2, meta) + pb_int(3, 1) + pb_int(4, 1700000000000000000)
              + pb_int(5, 1700000000100000000) + pb_message(8, pb_string(1, "docker.io/library/nginx:1.25"))
              + pb_string(9, "docker.io/library/nginx@sha256:" + "a" * 64)
              + pb_map(12, {"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "default"})
              + pb_map(13, {"k": "v"})
              + pb_message(14, pb_string(1, "/data") + pb_string(2, "/srv/data") + pb_int(3, 1) + pb_int(5, 2))
              + pb_string(17, "sha256:" + "b" * 64))
    container = pb_message(1, status) + pb_map(2, {"info": json.dumps({"sandboxID": "s" * 64, "runtimeSpec": spec})})
    smeta = pb_string(1, "web-0") + pb_string(2, "uid-1") + pb_string(3, "default") + pb_int(4, 0)
    nsopts = pb_int(1, 2) + pb_int(2, 1)
    sandbox = pb_message(1, pb_string(1, "s" * 64) + pb_message(2, smeta) + pb_int(4, 1700000000000000000)
                         + pb_message(5, pb_string(1, "10.1.2.3") + pb_message(2, pb_string(1, "fd00::3")))
                         + pb_message(6, pb_message(1, pb_message(2, nsopts)))
                         + pb_map(7, {"app": "web"}) + pb_string(9, "runc"))
    version = pb_string(1, "0.1.0") + pb_string(2, "containerd") + pb_string(3, "1.7.0") + pb_string(4, "v1")

    def answer(sid: int, message: bytes, grpc_status: str = "0") -> bytes:
        head = b"\x88" + _hpack_literal("content-type", "application/grpc")      # :status 200 (static)
        body = b"\x00" + len(message).to_bytes(4, "big") + message
        trailers = b"\x40\x0bgrpc-status" + bytes([len(grpc_status)]) + grpc_status.encode()  # indexed
        return (_frame(HEADERS, END_HEADERS, sid, head) + _frame(DATA, 0, sid, body)
                + _frame(HEADERS, END_HEADERS | END_STREAM, sid, trailers))

    hello = _frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00\x64") + _frame(PING, 0, 0, b"12345678")
    out = {
        "h2_status_sandbox_version": b"\x00" + hello + answer(1, container) + answer(3, sandbox) + answer(5, version),
        "h2_not_found": b"\x00" + hello + answer(1, b"", "5") + answer(3, b"", "5"),
        "h2_goaway": b"\x00" + hello + _frame(7, 0, 0, b"\x00\x00\x00\x00\x00\x00\x00\x00"),
        "pb_container": b"\x01" + container,
        "pb_sandbox": b"\x01" + sandbox,
        "pb_version": b"\x01" + version,
        "hpack_blocks": b"\x02" + b"\x82\x86\x84\x41\x0fwww.example.com" + b"\xff\xfe" + b"\x82\x86\x84\xbe\x58\x08no-cache"
                        + b"\xff\xfe" + b"\x3f\xe1\x1f" + b"\x8c\xf1\xe3\xc2\xe5\xf2\x3a\x6b\xa0\xab\x90\xf4\xff",
    }
    assert cri is not None
    return out


if __name__ == "__main__":
    fuzzlib.main(setup, TestOneInput, MAX_LEN)
