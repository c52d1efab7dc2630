# SPDX-License-Identifier: Apache-2.0
"""Socket syscalls over loopback: tuples for TCP/UDP over IPv4/IPv6 and unix sockets."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading

from drivertools import assert_header

PPM_AF_UNIX, PPM_AF_INET, PPM_AF_INET6 = 1, 2, 10
PPM_O_NONBLOCK, PPM_O_CLOEXEC = 64, 4096


def test_tcp4_connect_accept_send_recv(tracer):
    def run():
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cli.connect(("127.0.0.1", port))
        conn, peer = srv.accept()
        cli.send(b"ping")
        got = conn.recv(16)
        fds = srv.fileno(), cli.fileno(), conn.fileno()
        for s in (conn, cli, srv):
            s.close()
        return port, peer, fds, got

    (port, peer, (sfd, cfd, afd), got), events = tracer.trace(run)
    assert got == b"ping"
    lo = ipaddress.IPv4Address("127.0.0.1")
    sock = [e for e in tracer.mine(events, "socket") if e.params["fd"] in (sfd, cfd)]
    assert len(sock) == 2
    assert_header(sock[0], "socket")
    assert sock[0].params["domain"] == PPM_AF_INET and sock[0].params["type"] & 0xF == socket.SOCK_STREAM
    (b,) = tracer.mine(events, "bind")
    assert_header(b, "bind")
    assert b.params["res"] == 0 and b.params["fd"] == sfd
    assert b.params["addr"].ip == lo and b.params["addr"].port == 0
    (lst,) = tracer.mine(events, "listen")
    assert lst.params == {"res": 0, "fd": sfd, "backlog": 4}
    (c,) = tracer.mine(events, "connect")
    assert_header(c, "connect")
    t = c.params["tuple"]
    assert c.params["res"] == 0 and c.params["fd"] == cfd
    assert (t.family, t.sip, t.sport, t.dip, t.dport) == (PPM_AF_INET, lo, peer[1], lo, port)
    assert c.params["addr"].ip == lo and c.params["addr"].port == port
    acc = (tracer.mine(events, "accept4") + tracer.mine(events, "accept"))[0]
    assert_header(acc, acc.name)
    a = acc.params["tuple"]
    assert acc.params["fd"] == afd
    # inbound: the peer (client) is the source
    assert (a.sip, a.sport, a.dip, a.dport) == (lo, peer[1], lo, port)
    sends = [e for e in tracer.mine(events, "sendto") if e.params["fd"] == cfd]
    assert sends and sends[0].params["data"] == b"ping" and sends[0].params["res"] == 4
    st = sends[0].params["tuple"]
    assert (st.sip, st.sport, st.dip, st.dport) == (lo, peer[1], lo, port)
    recvs = [e for e in tracer.mine(events, "recvfrom") if e.params["fd"] == afd]
    assert recvs and recvs[0].params["data"] == b"ping" and recvs[0].params["size"] == 16


def test_tcp6_connect_refused(tracer):
    def run():
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nobody listens there now
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        try:
            s.connect(("::1", port))
        except ConnectionRefusedError:
            pass
        fd = s.fileno()
        s.close()
        return port, fd

    (port, fd), events = tracer.trace(run)
    (c,) = [e for e in tracer.mine(events, "connect") if e.params["fd"] == fd]
    assert c.params["res"] == -errno.ECONNREFUSED
    assert c.params["addr"].family == PPM_AF_INET6
    assert c.params["addr"].ip == ipaddress.IPv6Address("::1") and c.params["addr"].port == port
    t = c.params["tuple"]
    assert t.family == PPM_AF_INET6 and t.dip == ipaddress.IPv6Address("::1") and t.dport == port


def test_udp4_sendto_recvfrom(tracer):
    def run():
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b.bind(("127.0.0.1", 0))
        b.sendto(b"hello", a.getsockname())
        data, src = a.recvfrom(64)
        out = a.fileno(), b.fileno(), a.getsockname()[1], b.getsockname()[1], data
        a.close()
        b.close()
        return out

    (afd, bfd, aport, bport, data), events = tracer.trace(run)
    lo = ipaddress.IPv4Address("127.0.0.1")
    (s,) = [e for e in tracer.mine(events, "sendto") if e.params["fd"] == bfd]
    assert_header(s, "sendto")
    assert s.params["res"] == 5 and s.params["data"] == b"hello" and s.params["size"] == 5
    t = s.params["tuple"]
    # not connected: the destination comes from sendto's address
    assert (t.sip, t.sport, t.dip, t.dport) == (lo, bport, lo, aport)
    (r,) = [e for e in tracer.mine(events, "recvfrom") if e.params["fd"] == afd]
    assert_header(r, "recvfrom")
    assert r.params["res"] == 5 and r.params["data"] == b"hello"


def test_unix_socketpair_sendmsg_recvmsg(tracer):
    def run():
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.sendmsg([b"abc", b"def"])
        msg = b.recvmsg(64)
        out = a.fileno(), b.fileno(), msg[0]
        a.close()
        b.close()
        return out

    (afd, bfd, data), events = tracer.trace(run)
    assert data == b"abcdef"
    (sp,) = tracer.mine(events, "socketpair")
    assert_header(sp, "socketpair")
    p = sp.params
    assert p["res"] == 0 and (p["fd1"], p["fd2"]) == (afd, bfd)
    assert p["domain"] == PPM_AF_UNIX and p["source"] != 0 and p["peer"] != 0 and p["source"] != p["peer"]
    (sm,) = [e for e in tracer.mine(events, "sendmsg") if e.params["fd"] == afd]
    assert_header(sm, "sendmsg")
    assert sm.params["res"] == 6 and sm.params["size"] == 6 and sm.params["data"] == b"abc"
    assert sm.params["tuple"].family == PPM_AF_UNIX
    assert sm.params["tuple"].source == p["source"] and sm.params["tuple"].dest == p["peer"]
    (rm,) = [e for e in tracer.mine(events, "recvmsg") if e.params["fd"] == bfd]
    assert_header(rm, "recvmsg")
    assert rm.params["res"] == 6 and rm.params["size"] == 6 and rm.params["data"] == b"abcdef"
    assert rm.params["msgcontrol"] is None  # no ancillary data sent


def test_unix_stream_connect_to_a_path(tracer, tmp_path):
    path = str(tmp_path / "sock")

    def run():
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cli.connect(path)
        conn, _ = srv.accept()
        out = cli.fileno(), conn.fileno()
        for s in (conn, cli, srv):
            s.close()
        return out

    (cfd, afd), events = tracer.trace(run)
    (c,) = [e for e in tracer.mine(events, "connect") if e.params["fd"] == cfd]
    assert c.params["res"] == 0
    assert c.params["addr"].family == PPM_AF_UNIX and c.params["addr"].path == path
    assert c.params["tuple"].family == PPM_AF_UNIX and c.params["tuple"].path == path
    (b,) = tracer.mine(events, "bind")
    assert b.params["addr"].path == path


def test_socket_flags_and_shutdown(tracer):
    def run():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.connect_ex(("127.0.0.1", 9))
        try:
            t.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = s.fileno(), t.fileno()
        s.close()
        t.close()
        return out

    (sfd, tfd), events = tracer.trace(run)
    (s,) = [e for e in tracer.mine(events, "socket") if e.params["fd"] == sfd]
    # Python adds SOCK_CLOEXEC itself
    assert s.params["flags"] == PPM_O_NONBLOCK | PPM_O_CLOEXEC
    (sh,) = tracer.mine(events, "shutdown")
    assert_header(sh, "shutdown")
    assert sh.params["fd"] == tfd and sh.params["how"] == socket.SHUT_WR and sh.params["res"] == -errno.ENOTCONN


def test_events_of_other_threads_carry_their_tid(tracer):
    tids = []

    def run():
        def worker():
            tids.append(threading.get_native_id())
            os.close(os.open("/dev/null", os.O_RDONLY))
        th = threading.Thread(target=worker)
        th.start()
        th.join()

    _, events = tracer.trace(run)
    assert [e.params["name"] for e in events if e.name == "openat" and e.tid == tids[0]] == ["/dev/null"]


def test_getsockopt_so_error(tracer):
    def run():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        fd = s.fileno()
        s.close()
        return fd, err

    (fd, err), events = tracer.trace(run)
    (g,) = [e for e in tracer.mine(events, "getsockopt") if e.params["fd"] == fd]
    assert_header(g, "getsockopt")
    assert g.params["res"] == 0 and g.params["level"] == 1  # PPM_SOCKOPT_LEVEL_SOL_SOCKET
    assert g.params["optname"] == socket.SO_ERROR and g.params["optlen"] == 4


def test_sendmmsg_recvmmsg(tracer):
    import ctypes

    class IoVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    class MsgHdr(ctypes.Structure):
        _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(IoVec)),
                    ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                    ("flags", ctypes.c_int)]

    class MMsgHdr(ctypes.Structure):
        _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]

    from drivertools import result, syscall
    out_buf = ctypes.create_string_buffer(b"mmsg-payload", 12)
    in_buf = ctypes.create_string_buffer(64)
    out_iov, in_iov = IoVec(ctypes.addressof(out_buf), 12), IoVec(ctypes.addressof(in_buf), 64)
    out_msg = MMsgHdr(MsgHdr(None, 0, ctypes.pointer(out_iov), 1, None, 0, 0), 0)
    in_msg = MMsgHdr(MsgHdr(None, 0, ctypes.pointer(in_iov), 1, None, 0, 0), 0)

    def run():
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        sent = result(syscall("sendmmsg", a.fileno(), ctypes.byref(out_msg), 1, 0))
        got = result(syscall("recvmmsg", b.fileno(), ctypes.byref(in_msg), 1, 0, None))
        fds = a.fileno(), b.fileno()
        a.close()
        b.close()
        return fds, sent, got

    ((afd, bfd), sent, got), events = tracer.trace(run)
    assert sent == got == 1
    (s,) = tracer.mine(events, "sendmmsg")
    assert_header(s, "sendmmsg")
    assert s.params["res"] == 1 and s.params["fd"] == afd and s.params["size"] == 12
    assert s.params["data"] == b"mmsg-payload"
    (r,) = tracer.mine(events, "recvmmsg")
    assert_header(r, "recvmmsg")
    assert r.params["res"] == 1 and r.params["fd"] == bfd and r.params["size"] == 12
    assert r.params["data"] == b"mmsg-payload"


def test_tcp6_tuples_and_fd_passing(tracer):
    import array

    lo6 = ipaddress.IPv6Address("::1")

    def run():
        srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        srv.bind(("::1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        cli = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        cli.connect(("::1", port))
        conn, peer = srv.accept()
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [cli.fileno()]))])
        msg, anc, _, _ = b.recvmsg(16, socket.CMSG_SPACE(4))
        passed = array.array("i", anc[0][2])[0]
        os.close(passed)
        out = port, peer[1], cli.fileno(), conn.fileno(), b.fileno()
        for s in (a, b, conn, cli, srv):
            s.close()
        return out

    (port, cport, cfd, afd, bfd), events = tracer.trace(run)
    (c,) = [e for e in tracer.mine(events, "connect") if e.params["fd"] == cfd]
    t = c.params["tuple"]
    assert (t.family, t.sip, t.sport, t.dip, t.dport) == (PPM_AF_INET6, lo6, cport, lo6, port)
    acc = [e for e in tracer.mine(events, "accept4") + tracer.mine(events, "accept") if e.params["fd"] == afd][0]
    a = acc.params["tuple"]
    assert (a.family, a.sip, a.sport, a.dip, a.dport) == (PPM_AF_INET6, lo6, cport, lo6, port)
    (rm,) = [e for e in tracer.mine(events, "recvmsg") if e.params["fd"] == bfd]
    ctl = rm.params["msgcontrol"]
    # struct cmsghdr (len u64, level i32, type i32) + the passed fd
    import struct
    clen, level, ctype = struct.unpack_from("<Qii", ctl)
    assert (level, ctype) == (socket.SOL_SOCKET, socket.SCM_RIGHTS) and clen == 20
