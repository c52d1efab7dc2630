# SPDX-License-Identifier: Apache-2.0
"""libs' flag and enum tables of event parameters (``PPM_*`` values, SCAP_FORMAT.md 11.5) and their
names, for the event layer (``Event.flag_names``) and the field layer (evt.arg.*, evt.args).

The values are libs', which are not always the Linux ones. A flags value renders as the names of
the table entries it contains, in table order, each entry's bits removed once matched (so
``O_RDWR`` wins over ``O_WRONLY``); an enum value renders as the name of its exact value.
"""

from __future__ import annotations

__all__ = ["FLAGS", "ENUMS", "CAP_NAMES", "render_flags", "render_enum"]

FLAGS: dict[str, tuple[tuple[str, int], ...]] = {
    "file_flags": (
        ("O_LARGEFILE", 1 << 11), ("O_DIRECTORY", 1 << 10), ("O_DIRECT", 1 << 9), ("O_TRUNC", 1 << 8),
        ("O_SYNC", 1 << 7), ("O_NONBLOCK", 1 << 6), ("O_EXCL", 1 << 5), ("O_DSYNC", 1 << 4),
        ("O_APPEND", 1 << 3), ("O_CREAT", 1 << 2), ("O_RDWR", 3), ("O_WRONLY", 2), ("O_RDONLY", 1),
        ("O_CLOEXEC", 1 << 12), ("O_NONE", 0), ("O_TMPFILE", 1 << 13), ("O_F_CREATED", 1 << 14),
        ("O_NOFOLLOW", 1 << 15), ("O_NOATIME", 1 << 16), ("O_PATH", 1 << 17), ("O_NOCTTY", 1 << 18),
    ),
    "clone_flags": (
        ("CLONE_FILES", 1 << 0), ("CLONE_FS", 1 << 1), ("CLONE_IO", 1 << 2), ("CLONE_NEWIPC", 1 << 3),
        ("CLONE_NEWNET", 1 << 4), ("CLONE_NEWNS", 1 << 5), ("CLONE_NEWPID", 1 << 6), ("CLONE_NEWUTS", 1 << 7),
        ("CLONE_PARENT", 1 << 8), ("CLONE_PARENT_SETTID", 1 << 9), ("CLONE_PTRACE", 1 << 10),
        ("CLONE_SIGHAND", 1 << 11), ("CLONE_SYSVSEM", 1 << 12), ("CLONE_THREAD", 1 << 13),
        ("CLONE_UNTRACED", 1 << 14), ("CLONE_VM", 1 << 15), ("CLONE_INVERTED", 1 << 16),
        ("NAME_CHANGED", 1 << 17), ("CLOSED", 1 << 18), ("ACTIVE", 1 << 19), ("CLONE_NEWUSER", 1 << 20),
        ("PIPE_SRC", 1 << 21), ("PIPE_DST", 1 << 22),
        ("CLONE_CHILD_CLEARTID", 1 << 23), ("CLONE_CHILD_SETTID", 1 << 24), ("CLONE_SETTLS", 1 << 25),
        ("CLONE_STOPPED", 1 << 26), ("CLONE_VFORK", 1 << 27), ("CLONE_NEWCGROUP", 1 << 28),
        ("CHILD_IN_PIDNS", 1 << 29),
    ),
    "execve_flags": (
        ("EXE_WRITABLE", 1), ("EXE_UPPER_LAYER", 2), ("EXE_FROM_MEMFD", 4), ("EXE_LOWER_LAYER", 8),
    ),
    "creat_flags": (("FD_UPPER_LAYER_CREAT", 1), ("FD_LOWER_LAYER_CREAT", 2)),
    "prot_flags": (("PROT_READ", 1), ("PROT_WRITE", 2), ("PROT_EXEC", 4), ("PROT_SEM", 8),
                   ("PROT_GROWSDOWN", 16), ("PROT_GROWSUP", 32), ("PROT_SAO", 64), ("PROT_NONE", 0)),
    "access_flags": (("F_OK", 0), ("R_OK", 4), ("W_OK", 2), ("X_OK", 1)),
    "memfd_create_flags": (("MFD_CLOEXEC", 1), ("MFD_ALLOW_SEALING", 2), ("MFD_HUGETLB", 4)),
    # libs ppm_events_public.h: the *at() flags keep the Linux values (PPM_AT_REMOVEDIR 0x200,
    # PPM_AT_SYMLINK_FOLLOW 0x400, PPM_AT_EMPTY_PATH 0x1000); flags_table.c names fchownat's
    # AT_SYMLINK_NOFOLLOW by the PPM_AT_SYMLINK_FOLLOW value
    "unlinkat_flags": (("AT_REMOVEDIR", 0x200),),
    "linkat_flags": (("AT_SYMLINK_FOLLOW", 0x400), ("AT_EMPTY_PATH", 0x1000)),
    "fchownat_flags": (("AT_SYMLINK_NOFOLLOW", 0x400), ("AT_EMPTY_PATH", 0x1000)),
    "renameat2_flags": (("RENAME_NOREPLACE", 1), ("RENAME_EXCHANGE", 2), ("RENAME_WHITEOUT", 4)),
    "umount_flags": (("FORCE", 1), ("DETACH", 2), ("EXPIRE", 4), ("NOFOLLOW", 8)),
    # PPM_S_* are the Linux mode bits; table order as libs' chmod_mode / mknod_mode
    "chmod_mode": (("S_IXOTH", 1 << 0), ("S_IWOTH", 1 << 1), ("S_IROTH", 1 << 2), ("S_IXGRP", 1 << 3),
                   ("S_IWGRP", 1 << 4), ("S_IRGRP", 1 << 5), ("S_IXUSR", 1 << 6), ("S_IWUSR", 1 << 7),
                   ("S_IRUSR", 1 << 8), ("S_ISVTX", 1 << 9), ("S_ISGID", 1 << 10), ("S_ISUID", 1 << 11)),
    "mmap_flags": tuple((n, 1 << i) for i, n in enumerate((
        "MAP_SHARED", "MAP_PRIVATE", "MAP_FIXED", "MAP_ANONYMOUS", "MAP_32BIT", "MAP_RENAME", "MAP_NORESERVE",
        "MAP_POPULATE", "MAP_NONBLOCK", "MAP_GROWSDOWN", "MAP_DENYWRITE", "MAP_EXECUTABLE", "MAP_INHERIT",
        "MAP_FILE", "MAP_LOCKED"))),
    "execveat_flags": (("AT_EMPTY_PATH", 1), ("AT_SYMLINK_NOFOLLOW", 2)),
    "epoll_create1_flags": (("EPOLL_CLOEXEC", 1),),
    "close_range_flags": (("CLOSE_RANGE_UNSHARE", 1 << 1), ("CLOSE_RANGE_CLOEXEC", 1 << 2)),
    "mount_flags": (
        ("RDONLY", 1), ("NOSUID", 2), ("NODEV", 4), ("NOEXEC", 8), ("SYNCHRONOUS", 16), ("REMOUNT", 32),
        ("MANDLOCK", 64), ("DIRSYNC", 128), ("NOATIME", 1024), ("NODIRATIME", 2048), ("BIND", 4096),
        ("MOVE", 8192), ("REC", 16384), ("SILENT", 32768), ("POSIXACL", 1 << 16), ("UNBINDABLE", 1 << 17),
        ("PRIVATE", 1 << 18), ("SLAVE", 1 << 19), ("SHARED", 1 << 20), ("RELATIME", 1 << 21),
        ("KERNMOUNT", 1 << 22), ("I_VERSION", 1 << 23), ("STRICTATIME", 1 << 24), ("LAZYTIME", 1 << 25),
    ),
}

FLAGS["mknod_mode"] = FLAGS["chmod_mode"] + (
    ("S_IFREG", 0o100000), ("S_IFCHR", 0o20000), ("S_IFBLK", 0o60000), ("S_IFIFO", 0o10000), ("S_IFSOCK", 0o140000))

ENUMS: dict[str, dict[int, str]] = {
    "socket_families": dict(enumerate((
        "AF_UNSPEC", "AF_LOCAL", "AF_INET", "AF_AX25", "AF_IPX", "AF_APPLETALK", "AF_NETROM", "AF_BRIDGE",
        "AF_ATMPVC", "AF_X25", "AF_INET6", "AF_ROSE", "AF_DECnet", "AF_NETBEUI", "AF_SECURITY", "AF_KEY",
        "AF_NETLINK", "AF_PACKET", "AF_ASH", "AF_ECONET", "AF_ATMSVC", "AF_RDS", "AF_SNA", "AF_IRDA",
        "AF_PPPOX", "AF_WANPIPE", "AF_LLC", "AF_IB", "AF_MPLS", "AF_CAN", "AF_TIPC", "AF_BLUETOOTH",
        "AF_IUCV", "AF_RXRPC", "AF_ISDN", "AF_PHONET", "AF_IEEE802154", "AF_CAIF", "AF_ALG", "AF_NFC",
        "AF_VSOCK", "AF_KCM", "AF_QIPCRTR", "AF_SMC", "AF_XDP", "AF_MCTP"))),
    "ptrace_requests": dict(enumerate((
        "PTRACE_UNKNOWN", "PTRACE_TRACEME", "PTRACE_PEEKTEXT", "PTRACE_PEEKDATA", "PTRACE_PEEKUSR",
        "PTRACE_POKETEXT", "PTRACE_POKEDATA", "PTRACE_POKEUSR", "PTRACE_CONT", "PTRACE_KILL",
        "PTRACE_SINGLESTEP", "PTRACE_ATTACH", "PTRACE_DETACH", "PTRACE_SYSCALL", "PTRACE_SETOPTIONS",
        "PTRACE_GETEVENTMSG", "PTRACE_GETSIGINFO", "PTRACE_SETSIGINFO", "PTRACE_GETREGSET",
        "PTRACE_SETREGSET", "PTRACE_SEIZE", "PTRACE_INTERRUPT", "PTRACE_LISTEN", "PTRACE_PEEKSIGINFO",
        "PTRACE_GETSIGMASK", "PTRACE_SETSIGMASK", "PTRACE_GETREGS", "PTRACE_SETREGS", "PTRACE_GETFPREGS",
        "PTRACE_SETFPREGS", "PTRACE_GETFPXREGS", "PTRACE_SETFPXREGS", "PTRACE_OLDSETOPTIONS",
        "PTRACE_GET_THREAD_AREA", "PTRACE_SET_THREAD_AREA", "PTRACE_ARCH_PRCTL", "PTRACE_SYSEMU",
        "PTRACE_SYSEMU_SINGLESTEP", "PTRACE_SINGLEBLOCK"))),
    "fcntl_commands": {
        0: "F_UNKNOWN", 1: "F_DUPFD", 2: "F_GETFD", 3: "F_SETFD", 4: "F_GETFL", 5: "F_SETFL", 6: "F_GETLK",
        8: "F_SETLK", 9: "F_SETLKW", 10: "F_SETOWN", 12: "F_GETOWN", 13: "F_SETSIG", 15: "F_GETSIG",
        21: "F_SETOWN_EX", 22: "F_GETOWN_EX", 23: "F_SETLEASE", 24: "F_GETLEASE", 25: "F_CANCELLK",
        26: "F_DUPFD_CLOEXEC", 27: "F_NOTIFY", 28: "F_SETPIPE_SZ", 29: "F_GETPIPE_SZ", 30: "F_OFD_GETLK",
        31: "F_OFD_SETLK", 32: "F_OFD_SETLKW"},
    "shutdown_how": {0: "SHUT_RD", 1: "SHUT_WR", 2: "SHUT_RDWR"},
    # PPM_PR_* are the Linux PR_* values (the drivers pass the option as given)
    "prctl_options": {3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE", 7: "PR_GET_KEEPCAPS", 8: "PR_SET_KEEPCAPS",
                      15: "PR_SET_NAME", 16: "PR_GET_NAME", 21: "PR_GET_SECCOMP", 22: "PR_SET_SECCOMP",
                      23: "PR_CAPBSET_READ", 24: "PR_CAPBSET_DROP", 27: "PR_GET_SECUREBITS",
                      28: "PR_SET_SECUREBITS", 33: "PR_MCE_KILL", 35: "PR_SET_MM", 36: "PR_SET_CHILD_SUBREAPER",
                      37: "PR_GET_CHILD_SUBREAPER", 38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS",
                      40: "PR_GET_TID_ADDRESS", 41: "PR_SET_THP_DISABLE", 42: "PR_GET_THP_DISABLE",
                      47: "PR_CAP_AMBIENT"},
    "lseek_whence": {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END"},
}

CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)


def render_flags(table: str, value: int) -> str:
    """The names of a flags value (``O_RDWR|O_CREAT``), "" for a table that is not known."""
    entries = FLAGS.get(table)
    if entries is None:
        return ""
    if value == 0:
        for name, bits in entries:
            if bits == 0:
                return name
        return ""
    out = []
    rest = value
    for name, bits in entries:
        if bits and rest & bits == bits:
            out.append(name)
            rest &= ~bits
    return "|".join(out)


def render_enum(table: str, value: int) -> str:
    """The name of an enum value, "" when it has none."""
    return ENUMS.get(table, {}).get(value, "")
