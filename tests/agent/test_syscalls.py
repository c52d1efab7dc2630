# SPDX-License-Identifier: Apache-2.0
"""base_syscalls semantics: what the driver is asked for."""

from __future__ import annotations

from pyfalco.agent.syscalls import DRIVER_SET, IGNORED_SET, REPAIR_SET, STATE_SET, select_syscalls


def test_state_set_is_falcos():
    for name in ("clone", "clone3", "execve", "execveat", "open", "openat", "openat2", "close", "connect",
                 "accept4", "socket", "dup2", "fcntl", "setuid", "chdir", "prlimit64", "setrlimit", "umount2",
                 "getsockopt", "open_by_handle_at", "memfd_create"):
        assert name in STATE_SET, name
    assert "read" not in STATE_SET and "write" not in STATE_SET
    assert {"read", "write", "readv", "writev", "pread64", "pwrite64"} <= IGNORED_SET


def test_default_selection_is_rules_plus_state():
    sel = select_syscalls(["open", "openat", "execve", "procexit", "chmod"])
    assert "chmod" in sel.syscalls and STATE_SET & DRIVER_SET <= sel.syscalls
    assert sel.other_events == {"procexit"}
    assert "kill" not in sel.syscalls and "ptrace" not in sel.syscalls
    assert sel.syscalls <= DRIVER_SET


def test_io_syscalls_of_rules_are_left_out_unless_all():
    sel = select_syscalls(["read", "open"])
    assert "read" not in sel.syscalls and sel.ignored_in_rules == {"read"}
    sel = select_syscalls(["read", "open"], {"all": True})
    assert "read" in sel.syscalls and sel.syscalls == DRIVER_SET


def test_custom_set_replaces_state_and_bang_removes():
    sel = select_syscalls(["openat"], {"custom_set": ["execve", "clone", "!openat"]})
    assert sel.syscalls == {"execve", "clone"}
    sel = select_syscalls(["openat"], {"custom_set": ["kill"], "repair": True})
    assert sel.syscalls == ({"openat", "kill"} | REPAIR_SET) & DRIVER_SET


def test_event_names_that_are_not_syscall_names():
    sel = select_syscalls(["umount2", "prlimit"], {"custom_set": ["clone"]})
    assert {"umount2", "prlimit64", "clone"} <= sel.syscalls


def test_describe_names_everything():
    text = select_syscalls(["read", "openat"]).describe()
    assert "Syscalls requested from the driver" in text and "ignored I/O syscalls used by rules" in text
