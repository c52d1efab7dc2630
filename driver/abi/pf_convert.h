/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Linux values -> the values events carry (PPM_*), shared by the eBPF driver and the kernel
 * module: pure functions of their argument, nothing else. Include after pyfalco_abi.h; define
 * PF_CONVERT_INLINE first to change the linkage (the eBPF driver forces inlining).
 */
#ifndef PYFALCO_PF_CONVERT_H
#define PYFALCO_PF_CONVERT_H

#include "pyfalco_abi.h"

#ifndef PF_CONVERT_INLINE
#define PF_CONVERT_INLINE static inline
#endif

/* Linux O_* -> PPM_O_* (x86_64 values). */
PF_CONVERT_INLINE pf_u32 pf_open_flags(unsigned long f)
{
	pf_u32 r = 0;

	switch (f & 3) {
	case 0:
		r = PPM_O_RDONLY;
		break;
	case 1:
		r = PPM_O_WRONLY;
		break;
	case 2:
		r = PPM_O_RDWR;
		break;
	}
	if (f & 0100)
		r |= PPM_O_CREAT;
	if (f & 0200)
		r |= PPM_O_EXCL;
	if (f & 01000)
		r |= PPM_O_TRUNC;
	if (f & 02000)
		r |= PPM_O_APPEND;
	if (f & 04000)
		r |= PPM_O_NONBLOCK;
	if (f & 010000)
		r |= PPM_O_DSYNC;
	if (f & 040000)
		r |= PPM_O_DIRECT;
	if (f & 0100000)
		r |= PPM_O_LARGEFILE;
	if (f & 0200000)
		r |= PPM_O_DIRECTORY;
	if (f & 02000000)
		r |= PPM_O_CLOEXEC;
	if ((f & 04010000) == 04010000)
		r |= PPM_O_SYNC;
	if ((f & 020200000) == 020200000)
		r |= PPM_O_TMPFILE;
	return r;
}

/* Flags of fd-creating syscalls (pipe2, dup3, eventfd2, ...): like open flags, no access mode. */
PF_CONVERT_INLINE pf_u32 pf_fd_flags(unsigned long f)
{
	return pf_open_flags(f & ~3UL) & ~(pf_u32)PPM_O_RDWR;
}

/* socket()'s type flags: SOCK_NONBLOCK == O_NONBLOCK, SOCK_CLOEXEC == O_CLOEXEC. */
PF_CONVERT_INLINE pf_u32 pf_socket_type_flags(unsigned long type)
{
	return pf_fd_flags(type & (04000 | 02000000));
}

PF_CONVERT_INLINE pf_u32 pf_socket_family(unsigned long af)
{
	return (pf_u32)af; /* PPM_AF_* are the Linux values */
}

PF_CONVERT_INLINE pf_u32 pf_resolve_flags(pf_u64 f)
{
	return (pf_u32)f; /* RESOLVE_* and PPM_RESOLVE_* share bit positions */
}

/* getsockopt levels as PPM_SOCKOPT_LEVEL_*: SOL_SOCKET 1, SOL_TCP 2, anything else 0. */
PF_CONVERT_INLINE pf_u8 pf_sockopt_level(unsigned long level)
{
	return level == 1 ? 1 : (level == 6 ? 2 : 0);
}

/* The kernel's dev_t as user space sees it (new_encode_dev). */
PF_CONVERT_INLINE pf_u32 pf_encode_dev(pf_u32 kdev)
{
	pf_u32 major = kdev >> 20, minor = kdev & ((1U << 20) - 1);

	return (minor & 0xff) | (major << 8) | ((minor & ~0xffU) << 12);
}

/* Linux CLONE_* -> PPM_CL_*. */
PF_CONVERT_INLINE pf_u32 pf_clone_flags(unsigned long f)
{
	pf_u32 r = 0;

	if (f & 0x400)
		r |= PPM_CL_CLONE_FILES;
	if (f & 0x200)
		r |= PPM_CL_CLONE_FS;
	if (f & 0x80000000UL)
		r |= PPM_CL_CLONE_IO;
	if (f & 0x8000000)
		r |= PPM_CL_CLONE_NEWIPC;
	if (f & 0x40000000)
		r |= PPM_CL_CLONE_NEWNET;
	if (f & 0x20000)
		r |= PPM_CL_CLONE_NEWNS;
	if (f & 0x20000000)
		r |= PPM_CL_CLONE_NEWPID;
	if (f & 0x4000000)
		r |= PPM_CL_CLONE_NEWUTS;
	if (f & 0x8000)
		r |= PPM_CL_CLONE_PARENT;
	if (f & 0x100000)
		r |= PPM_CL_CLONE_PARENT_SETTID;
	if (f & 0x2000)
		r |= PPM_CL_CLONE_PTRACE;
	if (f & 0x800)
		r |= PPM_CL_CLONE_SIGHAND;
	if (f & 0x40000)
		r |= PPM_CL_CLONE_SYSVSEM;
	if (f & 0x10000)
		r |= PPM_CL_CLONE_THREAD;
	if (f & 0x800000)
		r |= PPM_CL_CLONE_UNTRACED;
	if (f & 0x100)
		r |= PPM_CL_CLONE_VM;
	if (f & 0x10000000)
		r |= PPM_CL_CLONE_NEWUSER;
	if (f & 0x200000)
		r |= PPM_CL_CLONE_CHILD_CLEARTID;
	if (f & 0x1000000)
		r |= PPM_CL_CLONE_CHILD_SETTID;
	if (f & 0x80000)
		r |= PPM_CL_CLONE_SETTLS;
	if (f & 0x4000)
		r |= PPM_CL_CLONE_VFORK;
	if (f & 0x2000000)
		r |= PPM_CL_CLONE_NEWCGROUP;
	return r;
}

/* Linux F_* -> PPM_FCNTL_*. */
PF_CONVERT_INLINE pf_u8 pf_fcntl_cmd(unsigned long cmd)
{
	switch (cmd) {
	case 0: return 1;	/* F_DUPFD */
	case 1: return 2;	/* F_GETFD */
	case 2: return 3;	/* F_SETFD */
	case 3: return 4;	/* F_GETFL */
	case 4: return 5;	/* F_SETFL */
	case 5: return 6;	/* F_GETLK */
	case 6: return 8;	/* F_SETLK */
	case 7: return 9;	/* F_SETLKW */
	case 8: return 10;	/* F_SETOWN */
	case 9: return 12;	/* F_GETOWN */
	case 10: return 13;	/* F_SETSIG */
	case 11: return 15;	/* F_GETSIG */
	case 15: return 21;	/* F_SETOWN_EX */
	case 16: return 22;	/* F_GETOWN_EX */
	case 1024: return 23;	/* F_SETLEASE */
	case 1025: return 24;	/* F_GETLEASE */
	case 1029: return 25;	/* F_CANCELLK */
	case 1030: return 26;	/* F_DUPFD_CLOEXEC */
	case 1026: return 27;	/* F_NOTIFY */
	case 1031: return 28;	/* F_SETPIPE_SZ */
	case 1032: return 29;	/* F_GETPIPE_SZ */
	case 36: return 30;	/* F_OFD_GETLK */
	case 37: return 31;	/* F_OFD_SETLK */
	case 38: return 32;	/* F_OFD_SETLKW */
	}
	return 0;
}

/* Linux PTRACE_* -> PPM_PTRACE_*. */
PF_CONVERT_INLINE pf_u16 pf_ptrace_request(unsigned long req)
{
	switch (req) {
	case 0: return 1;	/* TRACEME */
	case 1: return 2;	/* PEEKTEXT */
	case 2: return 3;	/* PEEKDATA */
	case 3: return 4;	/* PEEKUSR */
	case 4: return 5;	/* POKETEXT */
	case 5: return 6;	/* POKEDATA */
	case 6: return 7;	/* POKEUSR */
	case 7: return 8;	/* CONT */
	case 8: return 9;	/* KILL */
	case 9: return 10;	/* SINGLESTEP */
	case 16: return 11;	/* ATTACH */
	case 17: return 12;	/* DETACH */
	case 24: return 13;	/* SYSCALL */
	case 0x4200: return 14;	/* SETOPTIONS */
	case 0x4201: return 15;	/* GETEVENTMSG */
	case 0x4202: return 16;	/* GETSIGINFO */
	case 0x4203: return 17;	/* SETSIGINFO */
	case 0x4204: return 18;	/* GETREGSET */
	case 0x4205: return 19;	/* SETREGSET */
	case 0x4206: return 20;	/* SEIZE */
	case 0x4207: return 21;	/* INTERRUPT */
	case 0x4208: return 22;	/* LISTEN */
	case 0x4209: return 23;	/* PEEKSIGINFO */
	case 0x420a: return 24;	/* GETSIGMASK */
	case 0x420b: return 25;	/* SETSIGMASK */
	case 12: return 26;	/* GETREGS */
	case 13: return 27;	/* SETREGS */
	case 14: return 28;	/* GETFPREGS */
	case 15: return 29;	/* SETFPREGS */
	case 18: return 30;	/* GETFPXREGS */
	case 19: return 31;	/* SETFPXREGS */
	}
	return 0;
}

/* *at() and umount2/renameat2 flags as libs' driver passes them (ppm_events_public.h keeps the
 * Linux values for these; the driver keeps only the flags the event table names). */
PF_CONVERT_INLINE pf_u32 pf_unlinkat_flags(unsigned long f)
{
	return (pf_u32)(f & 0x200);			/* AT_REMOVEDIR */
}

PF_CONVERT_INLINE pf_u32 pf_linkat_flags(unsigned long f)
{
	return (pf_u32)(f & (0x400 | 0x1000));	/* AT_SYMLINK_FOLLOW, AT_EMPTY_PATH */
}

/* fchownat: libs names its AT_SYMLINK_NOFOLLOW (0x100) by the PPM_AT_SYMLINK_FOLLOW value (0x400)
 * in flags_table.c, so that is the value the event carries. */
PF_CONVERT_INLINE pf_u32 pf_fchownat_flags(unsigned long f)
{
	pf_u32 r = 0;

	if (f & 0x100)
		r |= 0x400;
	if (f & 0x1000)
		r |= 0x1000;
	return r;
}

PF_CONVERT_INLINE pf_u32 pf_umount2_flags(unsigned long f)
{
	return (pf_u32)(f & 0xf);	/* MNT_FORCE, MNT_DETACH, MNT_EXPIRE, UMOUNT_NOFOLLOW */
}

PF_CONVERT_INLINE pf_u32 pf_renameat2_flags(unsigned long f)
{
	return (pf_u32)(f & 0x7);	/* RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT */
}

/* chmod modes: the permission and set-id bits (PPM_S_* are the Linux bits). */
PF_CONVERT_INLINE pf_u32 pf_chmod_mode(unsigned long m)
{
	return (pf_u32)(m & 07777);
}

/* mount flags: PPM_MS_* are the Linux MS_* values; the historic magic number in the high half
 * (MS_MGC_VAL 0xC0ED0000) is dropped as libs' driver does. */
PF_CONVERT_INLINE pf_u32 pf_mount_flags(unsigned long f)
{
	if ((f & 0xffff0000UL) == 0xC0ED0000UL)
		f &= ~0xffff0000UL;
	return (pf_u32)f;
}

#endif /* PYFALCO_PF_CONVERT_H */
