# SPDX-License-Identifier: Apache-2.0
"""File syscalls: every parameter of each exit event, success and failure, odd and long paths."""

from __future__ import annotations

import ctypes
import errno
import os
import stat

import pytest

from drivertools import assert_header, result, syscall

PPM_O_RDONLY, PPM_O_WRONLY, PPM_O_RDWR = 1, 2, 3
PPM_O_CREAT, PPM_O_TRUNC, PPM_O_CLOEXEC, PPM_O_EXCL, PPM_O_F_CREATED = 4, 256, 4096, 32, 16384
AT_FDCWD = -100


def dev_of(st) -> int:
    """st_dev as the driver encodes it (the userspace dev_t encoding)."""
    return st.st_dev & 0xFFFFFFFF


def test_openat_existing_file(tracer, tmp_path):
    path = tmp_path / "exists"
    path.write_text("x")
    st = os.stat(path)

    def run():
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        os.close(fd)
        return fd

    fd, events = tracer.trace(run)
    (evt,) = tracer.mine(events, "openat")
    assert_header(evt, "openat")
    p = evt.params
    assert p["fd"] == fd
    assert p["dirfd"] == AT_FDCWD
    assert p["name"] == str(path)
    assert p["flags"] == PPM_O_RDONLY | PPM_O_CLOEXEC
    assert p["mode"] == 0
    assert p["dev"] == dev_of(st)
    assert p["ino"] == st.st_ino


def test_openat_creates_file_and_sets_created_flag(tracer, tmp_path):
    path = tmp_path / "new"

    def run():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        os.close(fd)
        return fd

    fd, events = tracer.trace(run)
    (evt,) = tracer.mine(events, "openat")
    p = evt.params
    assert p["fd"] == fd
    # Python adds O_CLOEXEC to every open (PEP 446)
    assert p["flags"] == PPM_O_WRONLY | PPM_O_CREAT | PPM_O_TRUNC | PPM_O_CLOEXEC | PPM_O_F_CREATED
    assert p["mode"] == 0o640
    assert p["ino"] == os.stat(path).st_ino


def test_openat_failure_carries_negative_errno(tracer, tmp_path):
    missing = tmp_path / "missing" / "file"

    def run():
        with pytest.raises(FileNotFoundError):
            os.open(missing, os.O_RDONLY)

    _, events = tracer.trace(run)
    (evt,) = tracer.mine(events, "openat")
    assert_header(evt, "openat")
    assert evt.params["fd"] == -errno.ENOENT
    assert evt.params["name"] == str(missing)
    assert evt.params["dev"] == 0 and evt.params["ino"] == 0


def test_openat_relative_to_dirfd(tracer, tmp_path):
    (tmp_path / "rel").write_text("")
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        def run():
            fd = os.open("rel", os.O_RDONLY, dir_fd=dfd)
            os.close(fd)

        _, events = tracer.trace(run)
    finally:
        os.close(dfd)
    (evt,) = tracer.mine(events, "openat")
    assert evt.params["dirfd"] == dfd
    assert evt.params["name"] == "rel"


def test_open_legacy_syscall(tracer, tmp_path):
    path = tmp_path / "legacy"
    path.write_text("")

    def run():
        fd = result(syscall("open", str(path), os.O_RDWR, 0))
        os.close(fd)
        return fd

    fd, events = tracer.trace(run)
    (evt,) = tracer.mine(events, "open")
    assert_header(evt, "open")
    assert evt.params == {"fd": fd, "name": str(path), "flags": PPM_O_RDWR, "mode": 0,
                          "dev": dev_of(os.stat(path)), "ino": os.stat(path).st_ino}


def test_openat2(tracer, tmp_path):
    path = tmp_path / "o2"
    how = (ctypes.c_uint64 * 3)(os.O_RDWR | os.O_CREAT, 0o600, 0)

    def run():
        fd = result(syscall("openat2", AT_FDCWD, str(path), ctypes.byref(how), ctypes.sizeof(how)))
        os.close(fd)
        return fd

    fd, events = tracer.trace(run)
    (evt,) = tracer.mine(events, "openat2")
    assert_header(evt, "openat2")
    p = evt.params
    assert p["fd"] == fd and p["dirfd"] == AT_FDCWD and p["name"] == str(path)
    assert p["flags"] == PPM_O_RDWR | PPM_O_CREAT | PPM_O_F_CREATED
    assert p["mode"] == 0o600 and p["resolve"] == 0
    assert p["ino"] == os.stat(path).st_ino


def test_creat(tracer, tmp_path):
    path = tmp_path / "c"

    def run():
        fd = result(syscall("creat", str(path), 0o644))
        os.close(fd)
        return fd

    fd, events = tracer.trace(run)
    (evt,) = tracer.mine(events, "creat")
    assert_header(evt, "creat")
    p = evt.params
    assert p["fd"] == fd and p["name"] == str(path) and p["mode"] == 0o644
    assert p["ino"] == os.stat(path).st_ino
    assert p["creat_flags"] == 1  # created


def test_path_of_4095_bytes_and_non_utf8_names(tracer, tmp_path):
    # a path of exactly PATH_MAX - 1 bytes (the kernel's limit) arrives whole
    long_name = "/" + "a" * 4094
    odd = bytes(tmp_path) + b"/caf\xe9-\xff\x01"

    def run():
        for p in (long_name.encode(), odd):
            try:
                os.close(os.open(p, os.O_RDONLY))
            except OSError:
                pass

    _, events = tracer.trace(run)
    evts = tracer.mine(events, "openat")
    assert len(evts) == 2
    assert evts[0].params["name"] == long_name
    assert evts[0].params["fd"] in (-errno.ENOENT, -errno.ENAMETOOLONG)
    raw = evts[1].raw_param(2)
    assert bytes(raw) == odd + b"\0"
    assert evts[1].params["name"].encode("utf-8", "surrogateescape") == odd


def test_close_and_dup_family(tracer, tmp_path):
    path = tmp_path / "d"
    path.write_text("")

    def run():
        fd = os.open(path, os.O_RDONLY)
        a = result(syscall("dup", fd))  # os.dup() uses fcntl(F_DUPFD_CLOEXEC)
        b = os.dup2(fd, 200)
        c = result(syscall("dup3", fd, 201, os.O_CLOEXEC))
        bad = result(syscall("dup", 9999))
        for x in (fd, a, b, c):
            os.close(x)
        return fd, a, b, c, bad

    (fd, a, b, c, bad), events = tracer.trace(run)
    dups = tracer.mine(events, "dup")
    assert [e.params for e in dups] == [{"res": a, "oldfd": fd}, {"res": -errno.EBADF, "oldfd": 9999}]
    assert_header(dups[0], "dup")
    (d2,) = tracer.mine(events, "dup2")
    assert d2.params == {"res": 200, "oldfd": fd, "newfd": 200}
    (d3,) = tracer.mine(events, "dup3")
    assert d3.params == {"res": 201, "oldfd": fd, "newfd": 201, "flags": PPM_O_CLOEXEC}
    closes = [e.params for e in tracer.mine(events, "close")]
    assert closes == [{"res": 0, "fd": x} for x in (fd, a, b, c)]


def test_fcntl_dupfd_cloexec(tracer):
    def run():
        r, w = os.pipe()
        import fcntl
        n = fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, 300)
        for x in (r, w, n):
            os.close(x)
        return r, n

    (r, n), events = tracer.trace(run)
    evt = [e for e in tracer.mine(events, "fcntl") if e.params["fd"] == r][0]
    assert_header(evt, "fcntl")
    assert evt.params["res"] == n
    assert evt.params["cmd"] == 26  # PPM_FCNTL_F_DUPFD_CLOEXEC
    assert evt.params["arg"] == 300


def test_pipe2(tracer):
    def run():
        r, w = os.pipe2(os.O_CLOEXEC)
        ino = os.fstat(r).st_ino
        os.close(r)
        os.close(w)
        return r, w, ino

    (r, w, ino), events = tracer.trace(run)
    (evt,) = tracer.mine(events, "pipe2")
    assert_header(evt, "pipe2")
    assert evt.params == {"res": 0, "fd1": r, "fd2": w, "ino": ino, "flags": PPM_O_CLOEXEC}


@pytest.mark.parametrize("name", ["mkdir", "rmdir", "unlink", "chdir"])
def test_single_path_syscalls(tracer, tmp_path, name):
    target = tmp_path / "thing"
    cwd = os.getcwd()

    def run():
        if name == "mkdir":
            return result(syscall("mkdir", str(target), 0o750))
        if name == "rmdir":
            target.mkdir()
            return result(syscall("rmdir", str(target)))
        if name == "unlink":
            target.write_text("")
            return result(syscall("unlink", str(target)))
        try:
            return result(syscall("chdir", str(tmp_path)))
        finally:
            os.chdir(cwd)

    res, events = tracer.trace(run)
    evt = tracer.mine(events, name)[0]
    assert_header(evt, name)
    p = evt.params
    assert p["res"] == res == 0
    assert p["path"] == str(tmp_path if name == "chdir" else target)
    if name == "mkdir":
        assert p["mode"] == 0o750


def test_at_syscalls(tracer, tmp_path):
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    (tmp_path / "f").write_text("")

    def run():
        os.mkdir("sub", 0o700, dir_fd=dfd)
        os.rename("f", "g", src_dir_fd=dfd, dst_dir_fd=dfd)
        os.link("g", "h", src_dir_fd=dfd, dst_dir_fd=dfd)
        os.symlink("/etc/shadow", "s", dir_fd=dfd)
        os.chmod("g", 0o4755, dir_fd=dfd)
        os.chown("g", 1, 2, dir_fd=dfd)
        os.unlink("h", dir_fd=dfd)
        os.rmdir("sub", dir_fd=dfd)

    try:
        _, events = tracer.trace(run)
    finally:
        os.close(dfd)
    by = {e.name: e for e in events if e.tid == tracer.mine(events, "mkdirat")[0].tid}
    assert by["mkdirat"].params == {"res": 0, "dirfd": dfd, "path": "sub", "mode": 0o700}
    ren = by.get("renameat2") or by.get("renameat") or by.get("rename")
    assert ren.params["oldpath"] == "f" and ren.params["newpath"] == "g"
    # os.link follows symlinks by default: AT_SYMLINK_FOLLOW (0x400), passed as given
    assert by["linkat"].params == {"res": 0, "olddir": dfd, "oldpath": "g", "newdir": dfd, "newpath": "h",
                                   "flags": 0x400}
    assert by["symlinkat"].params == {"res": 0, "target": "/etc/shadow", "linkdirfd": dfd, "linkpath": "s"}
    assert by["fchmodat"].params == {"res": 0, "dirfd": dfd, "filename": "g", "mode": 0o4755}
    assert by["fchownat"].params == {"res": 0, "dirfd": dfd, "pathname": "g", "uid": 1, "gid": 2, "flags": 0}
    unl = [e.params for e in events if e.name == "unlinkat"]
    assert {"res": 0, "dirfd": dfd, "name": "h", "flags": 0} in unl
    assert {"res": 0, "dirfd": dfd, "name": "sub", "flags": 0x200} in unl  # AT_REMOVEDIR as passed
    for e in by.values():
        assert_header(e, e.name)


def test_legacy_path_pairs_and_chmod_chown(tracer, tmp_path):
    a, b, s = tmp_path / "a", tmp_path / "b", tmp_path / "s"
    a.write_text("")

    def run():
        return [result(syscall("rename", str(a), str(b))), result(syscall("link", str(b), str(a))),
                result(syscall("symlink", "target", str(s))), result(syscall("chmod", str(a), 0o600)),
                result(syscall("chown", str(a), 3, 4)), result(syscall("lchown", str(s), 5, 6))]

    res, events = tracer.trace(run)
    assert res == [0] * 6
    by = {e.name: e.params for e in tracer.mine(events, "rename") + tracer.mine(events, "link")
          + tracer.mine(events, "symlink") + tracer.mine(events, "chmod") + tracer.mine(events, "chown")
          + tracer.mine(events, "lchown")}
    assert by["rename"] == {"res": 0, "oldpath": str(a), "newpath": str(b)}
    assert by["link"] == {"res": 0, "oldpath": str(b), "newpath": str(a)}
    assert by["symlink"] == {"res": 0, "target": "target", "linkpath": str(s)}
    assert by["chmod"] == {"res": 0, "filename": str(a), "mode": 0o600}
    assert by["chown"] == {"res": 0, "path": str(a), "uid": 3, "gid": 4}
    assert by["lchown"] == {"res": 0, "path": str(s), "uid": 5, "gid": 6}


def test_fd_based_file_syscalls(tracer, tmp_path):
    path = tmp_path / "f"
    path.write_text("")
    fd = os.open(path, os.O_RDONLY)
    dfd = os.open(tmp_path, os.O_RDONLY)
    cwd = os.getcwd()
    try:
        def run():
            os.fchmod(fd, 0o700)
            os.fchown(fd, 7, 8)
            os.fchdir(dfd)
            os.chdir(cwd)

        _, events = tracer.trace(run)
    finally:
        os.close(fd)
        os.close(dfd)
    assert tracer.mine(events, "fchmod")[0].params == {"res": 0, "fd": fd, "mode": 0o700}
    assert tracer.mine(events, "fchown")[0].params == {"res": 0, "fd": fd, "uid": 7, "gid": 8}
    assert tracer.mine(events, "fchdir")[0].params == {"res": 0, "fd": dfd}


def test_memfd_create(tracer):
    def run():
        fd = os.memfd_create("payload", os.MFD_CLOEXEC)
        os.close(fd)
        return fd

    fd, events = tracer.trace(run)
    (evt,) = tracer.mine(events, "memfd_create")
    assert_header(evt, "memfd_create")
    assert evt.params == {"fd": fd, "name": "payload", "flags": os.MFD_CLOEXEC}


def test_read_write_payloads_honour_snaplen(tracer, capture, tmp_path):
    path = tmp_path / "data"
    blob = bytes(range(256)) * 8  # 2048 bytes, snaplen is 256 in these tests

    def run():
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        n = os.write(fd, blob)
        os.lseek(fd, 0, os.SEEK_SET)
        got = os.read(fd, 4096)
        os.close(fd)
        return fd, n, got

    (fd, n, got), events = tracer.trace(run)
    (w,) = tracer.mine(events, "write")
    assert_header(w, "write")
    assert w.params == {"res": n, "data": blob[:256], "fd": fd, "size": len(blob)}
    r = [e for e in tracer.mine(events, "read") if e.params["fd"] == fd][0]
    assert r.params == {"res": len(got), "data": blob[:256], "fd": fd, "size": 4096}


def test_mount_and_umount_in_a_private_namespace(tracer, tmp_path):
    mnt = tmp_path / "m"
    mnt.mkdir()

    def run():
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                assert result(syscall("unshare", 0x20000)) == 0  # CLONE_NEWNS
                assert result(syscall("mount", "none", "/", None, 1 << 18 | 1 << 14, None)) == 0  # MS_PRIVATE|MS_REC
                assert result(syscall("mount", "tmpfs", str(mnt), "tmpfs", 0, None)) == 0
                assert result(syscall("umount2", str(mnt), 2)) == 0  # MNT_DETACH
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        return pid

    pid, events = tracer.trace(run)
    mounts = [e.params for e in events if e.name == "mount" and e.tid == pid]
    assert {"res": 0, "dev": "tmpfs", "dir": str(mnt), "type": "tmpfs", "flags": 0} in mounts
    (um,) = [e for e in events if e.name == "umount2" and e.tid == pid]
    assert_header(um, "umount2", tid=pid)
    assert um.params == {"res": 0, "name": str(mnt), "flags": 2}
    (us,) = [e for e in events if e.name == "unshare" and e.tid == pid]
    assert us.params == {"res": 0, "flags": 1 << 5}  # PPM_CL_CLONE_NEWNS


def test_stat_of_created_file_matches(tmp_path):
    # guards the dev encoding assumption used above: st_dev is the userspace dev_t
    st = os.stat(tmp_path)
    assert stat.S_ISDIR(st.st_mode)
    assert os.major(st.st_dev) == (st.st_dev >> 8) & 0xFFF


def test_open_by_handle_at(tracer, tmp_path):
    path = tmp_path / "h"
    path.write_text("")
    libc = ctypes.CDLL(None, use_errno=True)

    class Handle(ctypes.Structure):
        _fields_ = [("bytes", ctypes.c_uint), ("type", ctypes.c_int), ("f", ctypes.c_ubyte * 128)]

    h = Handle(bytes=128)
    mount_id = ctypes.c_int()
    assert libc.name_to_handle_at(AT_FDCWD, str(path).encode(), ctypes.byref(h), ctypes.byref(mount_id), 0) == 0
    mfd = os.open(tmp_path, os.O_RDONLY)
    try:
        def run():
            fd = result(syscall("open_by_handle_at", mfd, ctypes.byref(h), os.O_RDONLY))
            os.close(fd)
            return fd

        fd, events = tracer.trace(run)
    finally:
        os.close(mfd)
    (evt,) = tracer.mine(events, "open_by_handle_at")
    assert_header(evt, "open_by_handle_at")
    st = os.stat(path)
    assert evt.params == {"fd": fd, "mountfd": mfd, "flags": PPM_O_RDONLY, "path": str(path), "dev": dev_of(st),
                          "ino": st.st_ino}
