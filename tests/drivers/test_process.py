# SPDX-License-Identifier: Apache-2.0
"""Process, credential and kernel-facing syscalls: clone family, execve, procexit, set*id, ..."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import subprocess
import sys
import threading
import time

from drivertools import assert_header, result, syscall

PPM_CL_CLONE_VM, PPM_CL_CLONE_VFORK = 1 << 15, 1 << 27
PPM_CL_CLONE_CHILD_CLEARTID, PPM_CL_CLONE_CHILD_SETTID = 1 << 23, 1 << 24
PPM_CL_CLONE_NEWUTS = 1 << 7


def args_of(raw: bytes) -> list[str]:
    return [a.decode() for a in raw.split(b"\0")[:-1]]


def test_fork_emits_clone_in_parent_and_child(tracer):
    def run():
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        _, status = os.waitpid(pid, 0)
        return pid, status

    (pid, status), events = tracer.trace(run)
    me = threading.get_native_id()
    parent = [e for e in events if e.name == "clone" and e.tid == me]
    child = [e for e in events if e.name == "clone" and e.tid == pid]
    assert len(parent) == 1 and len(child) == 1
    p, c = parent[0], child[0]
    assert_header(p, "clone")
    assert_header(c, "clone", tid=pid)
    assert p.params["res"] == pid and c.params["res"] == 0
    for e, tid in ((p, me), (c, pid)):
        prm = e.params
        assert prm["tid"] == tid and prm["pid"] == tid and prm["vtid"] == tid and prm["vpid"] == tid
        assert prm["comm"] == open("/proc/self/comm").read().strip()
        assert prm["exe"] and prm["cwd"] == os.getcwd()
        assert prm["uid"] == os.geteuid() and prm["gid"] == os.getegid()
        assert prm["fdlimit"] > 0 and prm["vm_size"] > 0
        assert b"=" in prm["cgroups"]
    assert p.params["ptid"] == os.getppid()
    assert c.params["ptid"] == me
    assert p.params["flags"] & (PPM_CL_CLONE_CHILD_CLEARTID | PPM_CL_CLONE_CHILD_SETTID)
    (exit_evt,) = [e for e in events if e.name == "procexit" and e.tid == pid]
    assert_header(exit_evt, "procexit", tid=pid)
    assert exit_evt.params["status"] == status == 7 << 8
    assert exit_evt.params["ret"] == 7 and exit_evt.params["sig"] == 0 and exit_evt.params["core"] == 0


def test_vfork_and_clone3_and_fork_syscalls(tracer, trigger):
    def run():
        pids = []
        pid = result(syscall("fork"))
        if pid == 0:
            os._exit(0)
        pids.append(pid)
        args = (ctypes.c_uint64 * 11)(0, 0, 0, 0, signal.SIGCHLD, 0, 0, 0, 0, 0, 0)  # struct clone_args
        pid = result(syscall("clone3", ctypes.byref(args), ctypes.sizeof(args)))
        if pid == 0:
            os._exit(0)
        pids.append(pid)
        for p in pids:
            os.waitpid(p, 0)
        # vfork shares the caller's stack: only C can do it safely
        out = subprocess.run([trigger, "vfork"], check=True, capture_output=True, text=True).stdout
        parent, child = map(int, out.split())
        return pids + [parent, child]

    (fk, c3, vparent, vf), events = tracer.trace(run)
    me = threading.get_native_id()
    # subprocess itself may vfork: the trigger's own vfork is the one returning its child
    (v,) = [e for e in events if e.name == "vfork" and e.tid == vparent and e.params["res"] == vf]
    assert_header(v, "vfork", tid=vparent)
    assert v.params["res"] == vf and v.params["flags"] == PPM_CL_CLONE_VM | PPM_CL_CLONE_VFORK
    assert [e.params["res"] for e in events if e.name == "vfork" and e.tid == vf] == [0]
    assert v.params["comm"] == "trigger"
    (f,) = [e for e in events if e.name == "fork" and e.tid == me]
    assert_header(f, "fork")
    assert f.params["res"] == fk and f.params["flags"] == 0
    (c,) = [e for e in events if e.name == "clone3" and e.tid == me]
    assert_header(c, "clone3")
    assert c.params["res"] == c3 and c.params["flags"] == 0
    assert [e.params["res"] for e in events if e.name == "clone3" and e.tid == c3] == [0]


def test_execve_carries_the_new_program(tracer, tmp_path):
    env = {"PYFALCO_TEST": "x=1", "PATH": "/usr/bin:/bin"}

    def run():
        pid = os.fork()
        if pid == 0:
            os.chdir(tmp_path)
            os.execve("/bin/sh", ["sh", "-c", "exit 3", "two words"], env)
        _, status = os.waitpid(pid, 0)
        return pid

    pid, events = tracer.trace(run)
    (evt,) = [e for e in events if e.name == "execve" and e.tid == pid]
    assert_header(evt, "execve", tid=pid)
    p = evt.params
    assert p["res"] == 0
    assert p["exe"] == "sh"
    assert args_of(p["args"]) == ["-c", "exit 3", "two words"]
    assert p["tid"] == pid and p["pid"] == pid and p["ptid"] == threading.get_native_id()
    assert p["cwd"] == str(tmp_path)
    assert p["comm"] == "sh"
    assert sorted(args_of(p["env"])) == sorted(f"{k}={v}" for k, v in env.items())
    assert p["filename"] == "/bin/sh"
    assert p["trusted_exepath"] == os.path.realpath("/bin/sh")
    assert p["exe_ino"] == os.stat("/bin/sh").st_ino
    assert p["uid"] == os.geteuid() and p["gid"] == os.getegid()
    assert p["loginuid"] == int(open("/proc/self/loginuid").read())
    assert p["cap_effective"] == p["cap_permitted"] != 0  # root
    assert p["pgid"] == os.getpgid(0)
    (exit_evt,) = [e for e in events if e.name == "procexit" and e.tid == pid]
    assert exit_evt.params["ret"] == 3


def test_execve_failure_keeps_the_callers_state(tracer, tmp_path):
    missing = str(tmp_path / "no-such-program")

    def run():
        try:
            os.execv(missing, ["x"])
        except FileNotFoundError:
            return True

    assert tracer.trace(run)[0]
    events = tracer.trace(run)[1]
    (evt,) = tracer.mine(events, "execve")
    assert_header(evt, "execve")
    assert evt.params["res"] == -errno.ENOENT
    assert evt.params["filename"] == missing
    assert evt.params["comm"] == open("/proc/self/comm").read().strip()


def test_execveat(tracer):
    # Relative to a dirfd. On this kernel a successful execveat exits with execve's syscall
    # number; the driver recognises it by the "/dev/fd/N/..." name the kernel gives the binary.
    # An execveat with AT_FDCWD or an absolute path is reported as execve (docs/driver.md).
    def run():
        pid = os.fork()
        if pid == 0:
            dfd = os.open("/bin", os.O_RDONLY | os.O_DIRECTORY)
            argv = (ctypes.c_char_p * 3)(b"true", b"--", None)
            envp = (ctypes.c_char_p * 1)(None)
            syscall("execveat", dfd, "true", argv, envp, 0)
            os._exit(99)
        os.waitpid(pid, 0)
        return pid

    pid, events = tracer.trace(run)
    (evt,) = [e for e in events if e.name == "execveat" and e.tid == pid]
    assert_header(evt, "execveat", tid=pid)
    assert evt.params["res"] == 0
    assert evt.params["exe"] == "true"
    assert args_of(evt.params["args"]) == ["--"]
    assert evt.params["trusted_exepath"] == os.path.realpath("/bin/true")


def test_procexit_on_signal(tracer):
    def run():
        pid = os.fork()
        if pid == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        os.waitpid(pid, 0)
        return pid

    pid, events = tracer.trace(run)
    (evt,) = [e for e in events if e.name == "procexit" and e.tid == pid]
    assert evt.params["sig"] == signal.SIGKILL and evt.params["ret"] == 0
    (kill,) = [e for e in events if e.name == "kill" and e.tid == pid]
    assert_header(kill, "kill", tid=pid)
    assert kill.params == {"res": 0, "pid": pid, "sig": signal.SIGKILL}


def test_credential_syscalls(tracer):
    uid, gid = os.getuid(), os.getgid()

    def run():
        return [result(syscall("setuid", uid)), result(syscall("setgid", gid)),
                result(syscall("setreuid", uid, uid)), result(syscall("setregid", gid, gid)),
                result(syscall("setresuid", uid, uid, uid)), result(syscall("setresgid", gid, gid, gid))]

    res, events = tracer.trace(run)
    assert res == [0] * 6
    assert tracer.mine(events, "setuid")[0].params == {"res": 0, "uid": uid}
    assert tracer.mine(events, "setgid")[0].params == {"res": 0, "gid": gid}
    assert tracer.mine(events, "setreuid")[0].params == {"res": 0, "ruid": uid, "euid": uid}
    assert tracer.mine(events, "setregid")[0].params == {"res": 0, "rgid": gid, "egid": gid}
    assert tracer.mine(events, "setresuid")[0].params == {"res": 0, "ruid": uid, "euid": uid, "suid": uid}
    assert tracer.mine(events, "setresgid")[0].params == {"res": 0, "rgid": gid, "egid": gid, "sgid": gid}
    for name in ("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid"):
        assert_header(tracer.mine(events, name)[0], name)


def test_setsid_prctl_capset_in_a_child(tracer):
    def run():
        pid = os.fork()
        if pid == 0:
            os.setsid()
            libc = ctypes.CDLL(None)
            libc.prctl(15, b"renamed", 0, 0, 0)  # PR_SET_NAME
            hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
            data = (ctypes.c_uint32 * 6)()
            syscall("capget", ctypes.byref(hdr), ctypes.byref(data))
            data[0] = data[1] = 1 << 21  # effective = permitted = CAP_SYS_ADMIN (low word)
            data[3] = data[4] = 0
            data[2] = data[5] = 0
            syscall("capset", ctypes.byref(hdr), ctypes.byref(data))
            os._exit(0)
        os.waitpid(pid, 0)
        return pid

    pid, events = tracer.trace(run)
    (s,) = [e for e in events if e.name == "setsid" and e.tid == pid]
    assert_header(s, "setsid", tid=pid)
    assert s.params == {"res": pid}
    (p,) = [e for e in events if e.name == "prctl" and e.tid == pid]
    assert p.params == {"res": 0, "option": 15, "arg2_str": "renamed", "arg2_int": p.params["arg2_int"]}
    (c,) = [e for e in events if e.name == "capset" and e.tid == pid]
    assert_header(c, "capset", tid=pid)
    assert c.params == {"res": 0, "cap_inheritable": 0, "cap_permitted": 1 << 21, "cap_effective": 1 << 21}


def test_unshare_setns_ptrace(tracer):
    def run():
        pid = os.fork()
        if pid == 0:
            fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
            syscall("unshare", 0x04000000)  # CLONE_NEWUTS
            syscall("setns", fd, 0x04000000)
            os._exit(0)
        os.waitpid(pid, 0)
        # attaching to pid 1 is allowed for root, but give it a pid that does not exist
        r = result(syscall("ptrace", 16, 0x7FFFFFF0, 0, 0))  # PTRACE_ATTACH
        return pid, r

    (pid, r), events = tracer.trace(run)
    (u,) = [e for e in events if e.name == "unshare" and e.tid == pid]
    assert u.params == {"res": 0, "flags": PPM_CL_CLONE_NEWUTS}
    (s,) = [e for e in events if e.name == "setns" and e.tid == pid]
    assert_header(s, "setns", tid=pid)
    assert s.params["res"] == 0 and s.params["nstype"] == PPM_CL_CLONE_NEWUTS
    (pt,) = tracer.mine(events, "ptrace")
    assert_header(pt, "ptrace")
    assert pt.params["res"] == r == -errno.ESRCH
    assert pt.params["request"] == 11 and pt.params["pid"] == 0x7FFFFFF0  # PPM_PTRACE_ATTACH
    assert pt.params["addr"] == (0, 0) and pt.params["data"] == (0, 0)


def test_kernel_facing_syscalls_fail_cleanly(tracer):
    def run():
        img = b"\x7fELF" + b"\0" * 60
        buf = ctypes.create_string_buffer(img)
        return {
            "init_module": result(syscall("init_module", buf, len(img), "p=1")),
            "finit_module": result(syscall("finit_module", 9999, "", 0)),
            "bpf": result(syscall("bpf", 0xFFFF, None, 0)),
        }

    res, events = tracer.trace(run)
    (im,) = tracer.mine(events, "init_module")
    assert_header(im, "init_module")
    assert im.params["res"] == res["init_module"] < 0
    assert im.params["length"] == 64 and im.params["uargs"] == "p=1"
    assert im.params["img"][:4] == b"\x7fELF"
    (fm,) = tracer.mine(events, "finit_module")
    assert fm.params == {"res": res["finit_module"], "fd": 9999, "uargs": "", "flags": 0}
    (b,) = tracer.mine(events, "bpf")
    assert b.params == {"fd": -errno.EINVAL, "cmd": 0xFFFF}


def test_special_fd_syscalls(tracer):
    def run():
        out = {}
        out["eventfd2"] = os.eventfd(5, os.EFD_CLOEXEC)
        out["epoll_create1"] = result(syscall("epoll_create1", 0))
        out["timerfd_create"] = result(syscall("timerfd_create", 1, 0))
        out["inotify_init1"] = result(syscall("inotify_init1", 0))
        out["userfaultfd"] = result(syscall("userfaultfd", 0))
        out["pidfd_open"] = result(syscall("pidfd_open", os.getpid(), 0))
        mask = ctypes.c_uint64(1 << (signal.SIGUSR1 - 1))
        out["signalfd4"] = result(syscall("signalfd4", -1, ctypes.byref(mask), 8, 0))
        params = (ctypes.c_uint32 * 30)()
        out["io_uring_setup"] = result(syscall("io_uring_setup", 4, ctypes.byref(params)))
        out["_uring"] = list(params[:6])
        for k, fd in out.items():
            if not k.startswith("_") and fd >= 0:
                os.close(fd)
        return out

    out, events = tracer.trace(run)
    assert tracer.mine(events, "eventfd2")[0].params == {"res": out["eventfd2"], "flags": 4096, "initval": 5}
    assert tracer.mine(events, "epoll_create1")[0].params == {"res": out["epoll_create1"], "flags": 0}
    assert tracer.mine(events, "timerfd_create")[0].params == {"res": out["timerfd_create"], "clockid": 1,
                                                                "flags": 0}
    assert tracer.mine(events, "inotify_init1")[0].params == {"res": out["inotify_init1"], "flags": 0}
    assert tracer.mine(events, "userfaultfd")[0].params["res"] == out["userfaultfd"]
    assert tracer.mine(events, "pidfd_open")[0].params == {"fd": out["pidfd_open"], "pid": os.getpid(),
                                                            "flags": 0}
    assert tracer.mine(events, "signalfd4")[0].params["res"] == out["signalfd4"]
    ur = tracer.mine(events, "io_uring_setup")[0].params
    assert ur["res"] == out["io_uring_setup"]
    if ur["res"] >= 0:
        assert [ur["sq_entries"], ur["cq_entries"], ur["flags"], ur["sq_thread_cpu"], ur["sq_thread_idle"],
                ur["features"]] == out["_uring"]
    for name in ("eventfd2", "epoll_create1", "timerfd_create", "inotify_init1", "userfaultfd", "pidfd_open",
                 "signalfd4", "io_uring_setup"):
        assert_header(tracer.mine(events, name)[0], name)


def test_limits_signals_and_memory(tracer):
    import resource

    def run():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))  # glibc uses prlimit64
        new = (ctypes.c_uint64 * 2)(soft, hard)
        old = (ctypes.c_uint64 * 2)()
        pr = result(syscall("prlimit64", 0, resource.RLIMIT_NOFILE, ctypes.byref(new), ctypes.byref(old)))
        tg = result(syscall("tgkill", os.getpid(), threading.get_native_id(), 0))
        tk = result(syscall("tkill", threading.get_native_id(), 0))
        mem = ctypes.create_string_buffer(3 * 4096)
        page = (ctypes.addressof(mem) + 4095) & ~4095
        mp = result(syscall("mprotect", page, 4096, 1))  # PROT_READ
        syscall("mprotect", page, 4096, 3)
        return soft, hard, pr, tg, tk, mp, page

    (soft, hard, pr, tg, tk, mp, page), events = tracer.trace(
        run, syscalls=["prlimit64", "tgkill", "tkill", "mprotect"])
    me = threading.get_native_id()
    prl = [e.params for e in tracer.mine(events, "prlimit")]
    assert {"res": 0, "newcur": soft, "newmax": hard, "oldcur": soft, "oldmax": hard, "pid": 0,
            "resource": 7} in prl  # RLIMIT_NOFILE
    assert_header(tracer.mine(events, "prlimit")[0], "prlimit")
    assert tracer.mine(events, "tgkill")[0].params == {"res": tg, "pid": os.getpid(), "tid": me, "sig": 0}
    assert tracer.mine(events, "tkill")[0].params == {"res": tk, "tid": me, "sig": 0}
    assert tracer.mine(events, "mprotect")[0].params == {"res": mp, "addr": page, "length": 4096, "prot": 1}


def test_chroot_and_close_range_in_a_child(tracer, tmp_path):
    def run():
        pid = os.fork()
        if pid == 0:
            r1 = result(syscall("chroot", str(tmp_path)))
            r2 = result(syscall("close_range", 100, 200, 0))
            os._exit(0 if (r1, r2) == (0, 0) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        return pid

    pid, events = tracer.trace(run)
    (ch,) = [e for e in events if e.name == "chroot" and e.tid == pid]
    assert_header(ch, "chroot", tid=pid)
    assert ch.params == {"res": 0, "path": str(tmp_path)}
    (cr,) = [e for e in events if e.name == "close_range" and e.tid == pid]
    assert_header(cr, "close_range", tid=pid)
    assert cr.params == {"res": 0, "first": 100, "last": 200, "flags": 0}


def test_execve_long_command_lines_keep_their_first_4096_bytes(tracer):
    # the args area is cut to PYFALCO_MAX_ARGS (4096) bytes whatever its length: an area of 8 KiB
    # or more once wrapped to its length modulo 8 KiB (65,540 bytes were captured as 4), which
    # hid the command line's start (and the tokens rules look for) from every rule
    for total in (5000, 8192 + 10, 65_540, 70_000, 200_000):
        marker = f"pyfalco-marker-{total}"
        n = total - len(marker) - 1      # marker\0 + fillers (each < MAX_ARG_STRLEN, 128 KiB)
        fillers = ["x" * (min(n, 100_000) - 1)] + (["x" * (n - 100_000 - 1)] if n > 100_000 else [])

        def run():
            pid = os.fork()
            if pid == 0:
                os.execve("/bin/true", ["true", marker, *fillers], {})
            os.waitpid(pid, 0)
            return pid

        pid, events = tracer.trace(run)
        (evt,) = [e for e in events if e.name == "execve" and e.tid == pid]
        raw = evt.params["args"]
        assert len(raw) == 4096, (total, len(raw))
        assert raw.startswith(marker.encode() + b"\0x"), (total, raw[:64])


def test_a_trace_keeps_its_own_process_tree_not_a_busy_stranger(tracer, tmp_path):
    """The tracer keeps the events of this process and of what it makes during the trace (a
    forked child, its own fork, a thread), not those of a busy process it did not make then: a
    busy host once put millions of events into each trace (docs/reliability.md)."""
    busy_path = str(tmp_path / "busy")
    busy = subprocess.Popen([sys.executable, "-c",
                             "import os, sys\nwhile True: os.close(os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT))",
                             busy_path])
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(busy_path) and time.monotonic() < deadline:
            time.sleep(0.01)
        child_path, grandchild_path, thread_path = (str(tmp_path / n) for n in ("child", "grandchild", "thread"))

        def run():
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(os.open(child_path, os.O_RDONLY | os.O_CREAT))
                    g = os.fork()
                    if g == 0:
                        os.close(os.open(grandchild_path, os.O_RDONLY | os.O_CREAT))
                        os._exit(0)
                    os.waitpid(g, 0)
                finally:
                    os._exit(0)
            th = threading.Thread(target=lambda: os.close(os.open(thread_path, os.O_RDONLY | os.O_CREAT)))
            th.start()
            th.join()
            os.waitpid(pid, 0)
            time.sleep(0.05)     # the busy process keeps opening meanwhile
            return pid

        pid, events = tracer.trace(run)
    finally:
        busy.kill()
        busy.wait()
    opened = [e.params["name"] for e in events if e.name == "openat"]
    assert child_path in opened and grandchild_path in opened and thread_path in opened
    assert busy_path not in opened
    assert not [e for e in events if e.tid == busy.pid]
    assert [e for e in events if e.name == "procexit" and e.tid == pid]
