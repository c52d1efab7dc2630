/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The one kernel <-> user contract of pyfalco: used by the eBPF driver, the kernel module and
 * libpyfalco. Event records are Falco/libs "scap" records (SCAP_FORMAT.md section 11):
 *
 *   +-----------------------------+  offset 0
 *   | ts      u64  ns since epoch |
 *   | tid     u64  host thread id |
 *   | len     u32  whole record   |
 *   | type    u16  event code     |
 *   | nparams u32                 |
 *   +-----------------------------+  offset 26 (PYFALCO_EVT_HDR_SIZE)
 *   | u16 len of param 0 .. n-1   |  (u32 for EF_LARGE_PAYLOAD events; drivers never emit those)
 *   +-----------------------------+
 *   | param 0 bytes | param 1 ... |  no padding; zero length = "no value"
 *   +-----------------------------+
 *
 * Drivers emit exit events only, each with every parameter of the current libs table.
 */
#ifndef PYFALCO_ABI_H
#define PYFALCO_ABI_H

#if defined(__PYFALCO_BPF__)
/* vmlinux.h provides the fixed-width types */
typedef __u8 pf_u8;
typedef __u16 pf_u16;
typedef __u32 pf_u32;
typedef __u64 pf_u64;
#elif defined(__KERNEL__)
#include <linux/types.h>
typedef u8 pf_u8;
typedef u16 pf_u16;
typedef u32 pf_u32;
typedef u64 pf_u64;
#else
#include <stdint.h>
typedef uint8_t pf_u8;
typedef uint16_t pf_u16;
typedef uint32_t pf_u32;
typedef uint64_t pf_u64;
#endif

/* Semantic versions of the API (kernel <-> user transport) and of the event schema;
 * see driver/abi/VERSIONING.md for when each number changes. */
#define PYFALCO_API_VERSION_MAJOR 1
#define PYFALCO_API_VERSION_MINOR 1 /* 1.1: pyfalco_kmod_ring.flags (forced unload) */
#define PYFALCO_API_VERSION_PATCH 0
#define PYFALCO_SCHEMA_VERSION_MAJOR 4 /* libs schema 4.x: exit events carry every parameter */
#define PYFALCO_SCHEMA_VERSION_MINOR 5
#define PYFALCO_SCHEMA_VERSION_PATCH 1

struct pyfalco_evt_hdr {
	pf_u64 ts;      /* ns since the Unix epoch */
	pf_u64 tid;     /* thread id in the host pid namespace */
	pf_u32 len;     /* whole record, header included */
	pf_u16 type;    /* event code (enum pyfalco_event_code) */
	pf_u32 nparams; /* number of u16 lengths after the header */
} __attribute__((packed));

#define PYFALCO_EVT_HDR_SIZE 26

/* The layout above is the contract between the drivers, libpyfalco and pyfalco/record.py (its
 * Python twin): a compiler or an edit that moves a field fails the build here, in each of them
 * (BPF, kernel and user space), instead of garbling records at run time. */
#define PF_ABI_ASSERT(cond, what) _Static_assert(cond, "pyfalco_abi.h: " what)
PF_ABI_ASSERT(sizeof(struct pyfalco_evt_hdr) == PYFALCO_EVT_HDR_SIZE, "the event header is 26 bytes");
PF_ABI_ASSERT(__builtin_offsetof(struct pyfalco_evt_hdr, ts) == 0, "ts at offset 0");
PF_ABI_ASSERT(__builtin_offsetof(struct pyfalco_evt_hdr, tid) == 8, "tid at offset 8");
PF_ABI_ASSERT(__builtin_offsetof(struct pyfalco_evt_hdr, len) == 16, "len at offset 16");
PF_ABI_ASSERT(__builtin_offsetof(struct pyfalco_evt_hdr, type) == 20, "type at offset 20");
PF_ABI_ASSERT(__builtin_offsetof(struct pyfalco_evt_hdr, nparams) == 22, "nparams at offset 22");

/* Limits. */
#define PYFALCO_MAX_EVENT_SIZE (64 * 1024)   /* a record never exceeds this (u16 param lengths) */
#define PYFALCO_MAX_PATH 4096                /* paths: PATH_MAX */
#define PYFALCO_MAX_ARGS 4096                /* argv / env / cgroups lists */
#define PYFALCO_MAX_SNAPLEN 16384            /* data buffers (read/write payloads) */
#define PYFALCO_DEFAULT_SNAPLEN 80           /* Falco's falco_libs.snaplen default */
#define PYFALCO_MAX_CPUS 512
#define PYFALCO_SYSCALL_SLOTS 512            /* interest table size, >= highest x86_64 nr + 1 */

/* Per-CPU driver counters, one list for every place that names them (BPF map value, kmod
 * ring info, libpyfalco stats): X(name, description). */
#define PYFALCO_DRIVER_COUNTERS(X)                                                     \
	X(n_evts, "events written to a ring buffer")                                   \
	X(n_drops_buffer, "events lost: ring buffer full")                             \
	X(n_drops_max_event_size, "events lost: record larger than the maximum size")  \
	X(n_drops_page_faults, "parameters left empty: user memory not readable")      \
	X(n_drops_bug, "events lost: internal inconsistency")

struct pyfalco_counters {
#define PF_COUNTER_FIELD(name, desc) pf_u64 name;
	PYFALCO_DRIVER_COUNTERS(PF_COUNTER_FIELD)
#undef PF_COUNTER_FIELD
};

/* one u64 per counter, no padding: the BPF map value and the kmod ioctl copy it as is */
#define PF_COUNTER_ONE(name, desc) +1
PF_ABI_ASSERT(sizeof(struct pyfalco_counters) == 8 * (0 PYFALCO_DRIVER_COUNTERS(PF_COUNTER_ONE)),
	      "struct pyfalco_counters is one u64 per counter");
#undef PF_COUNTER_ONE

/* Socket families as written in events (PPM_AF_*). */
#define PPM_AF_UNSPEC 0
#define PPM_AF_UNIX 1
#define PPM_AF_INET 2
#define PPM_AF_INET6 10
#define PPM_AF_NETLINK 16

/* Open flags as written in events (PPM_O_*; not the Linux values). */
#define PPM_O_NONE 0
#define PPM_O_RDONLY (1 << 0)
#define PPM_O_WRONLY (1 << 1)
#define PPM_O_RDWR (PPM_O_RDONLY | PPM_O_WRONLY)
#define PPM_O_CREAT (1 << 2)
#define PPM_O_APPEND (1 << 3)
#define PPM_O_DSYNC (1 << 4)
#define PPM_O_EXCL (1 << 5)
#define PPM_O_NONBLOCK (1 << 6)
#define PPM_O_SYNC (1 << 7)
#define PPM_O_TRUNC (1 << 8)
#define PPM_O_DIRECT (1 << 9)
#define PPM_O_DIRECTORY (1 << 10)
#define PPM_O_LARGEFILE (1 << 11)
#define PPM_O_CLOEXEC (1 << 12)
#define PPM_O_TMPFILE (1 << 13)
#define PPM_O_F_CREATED (1 << 14)

/* Clone flags as written in events (PPM_CL_*). */
#define PPM_CL_CLONE_FILES (1 << 0)
#define PPM_CL_CLONE_FS (1 << 1)
#define PPM_CL_CLONE_IO (1 << 2)
#define PPM_CL_CLONE_NEWIPC (1 << 3)
#define PPM_CL_CLONE_NEWNET (1 << 4)
#define PPM_CL_CLONE_NEWNS (1 << 5)
#define PPM_CL_CLONE_NEWPID (1 << 6)
#define PPM_CL_CLONE_NEWUTS (1 << 7)
#define PPM_CL_CLONE_PARENT (1 << 8)
#define PPM_CL_CLONE_PARENT_SETTID (1 << 9)
#define PPM_CL_CLONE_PTRACE (1 << 10)
#define PPM_CL_CLONE_SIGHAND (1 << 11)
#define PPM_CL_CLONE_SYSVSEM (1 << 12)
#define PPM_CL_CLONE_THREAD (1 << 13)
#define PPM_CL_CLONE_UNTRACED (1 << 14)
#define PPM_CL_CLONE_VM (1 << 15)
#define PPM_CL_CLONE_NEWUSER (1 << 20)
#define PPM_CL_CLONE_CHILD_CLEARTID (1 << 23)
#define PPM_CL_CLONE_CHILD_SETTID (1 << 24)
#define PPM_CL_CLONE_SETTLS (1 << 25)
#define PPM_CL_CLONE_STOPPED (1 << 26)
#define PPM_CL_CLONE_VFORK (1 << 27)
#define PPM_CL_CLONE_NEWCGROUP (1 << 28)

/* execve exit flags (PPM_EXE_*). */
#define PPM_EXE_WRITABLE (1 << 0)
#define PPM_EXE_UPPER_LAYER (1 << 1)
#define PPM_EXE_FROM_MEMFD (1 << 2)
#define PPM_EXE_LOWER_LAYER (1 << 3)

#define PPM_AT_FDCWD (-100)

/* l4 protocols in socket state (scap_l4_proto). */
#define SCAP_L4_UNKNOWN 0
#define SCAP_L4_NA 1
#define SCAP_L4_TCP 2
#define SCAP_L4_UDP 3
#define SCAP_L4_ICMP 4
#define SCAP_L4_RAW 5

/* The kernel filter's pattern bitmap (pf_kf_hbits in driver/maps.bpf.h): one bit per pattern's
 * (hash, length, kind), set by libpyfalco (src/kfilter.c) with the patterns. The driver looks a
 * path up in the pf_kf_paths hash map only when its bit is set: most paths whose length some
 * pattern shares ("null" beside "cron") then cost one array load instead of a hash lookup. A bit
 * set by another pattern only costs the lookup. */
#define PYFALCO_KF_HBITS (1u << 16)
#define PYFALCO_KF_HBIT(h, len, kind)                                                                  \
	((pf_u32)((((pf_u64)(h) ^ ((pf_u64)(h) >> 29) ^ ((pf_u64)(len) << 20) ^ ((pf_u64)(kind) << 45)) * \
		   0x9E3779B97F4A7C15ULL) >> 48))

#endif /* PYFALCO_ABI_H */
