/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The kernel module's transport (kmod/ <-> libpyfalco engine_kmod.c): one character device,
 * /dev/pyfalco, with per-CPU ring buffers mapped into the consumer's address space.
 *
 * Each open file is one consumer with its own rings, syscall selection and snaplen (the module
 * serves up to its max_consumers parameter at once and refuses more with EBUSY). A consumer:
 *
 *   1. PYFALCO_IOCTL_GET_API_VERSION / GET_SCHEMA_VERSION: check the module speaks this ABI;
 *   2. PYFALCO_IOCTL_SETUP(struct pyfalco_kmod_setup): ring size (a power of two, >= 2 pages);
 *      the module allocates one ring per possible CPU and returns their count;
 *   3. mmap(NULL, ncpus * PYFALCO_KMOD_CPU_SPAN(size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0):
 *
 *        cpu 0: [ struct pyfalco_kmod_ring (1 page) ][ data: size bytes ][ data again: size bytes ]
 *        cpu 1: ...
 *
 *      The data pages are mapped twice back to back, so a record that wraps around the end of
 *      the ring reads as one contiguous block at data + (tail & (size - 1)).
 *   4. SET_INTEREST (u8[PYFALCO_SYSCALL_SLOTS]), SET_SNAPLEN (u32), then START / STOP.
 *
 * Records are the scap records of pyfalco_abi.h, back to back without padding. head and tail
 * are free-running byte counts (never masked): the module writes a record at head, publishes
 * head with release semantics; the consumer reads up to head, then stores tail (release). The
 * module never writes a record that does not fit in size - (head - tail) bytes: it counts a
 * drop (n_drops_buffer) instead. The counters are the module's per-CPU driver counters.
 */
#ifndef PYFALCO_KMOD_H
#define PYFALCO_KMOD_H

#include "pyfalco_abi.h"

#ifdef __KERNEL__
#include <linux/ioctl.h>
#else
#include <sys/ioctl.h>
#endif

#define PYFALCO_KMOD_NAME "pyfalco"
#define PYFALCO_KMOD_DEVICE "/dev/pyfalco"
#define PYFALCO_KMOD_PAGE 4096 /* x86_64: the ring header occupies one page */

struct pyfalco_kmod_ring {
	pf_u64 head;                      /* bytes written by the module (it alone writes it) */
	pf_u64 tail;                      /* bytes consumed (the consumer alone writes it) */
	struct pyfalco_counters counters; /* this CPU's driver counters for this consumer */
	pf_u32 flags;                     /* PYFALCO_KMOD_RING_* (API 1.1), written by the module */
	pf_u32 reserved;
};

/*
 * The module is being removed by force (rmmod -f / delete_module with O_TRUNC) while this
 * consumer is open: it has stopped writing (every record before is in the ring, every one
 * after is lost), and its exit waits until the consumer closes the device. Set in every ring
 * of every consumer, after the last record (release), so a consumer that finds its rings
 * empty and this flag set has read everything the module wrote.
 */
#define PYFALCO_KMOD_RING_GONE 1u

PF_ABI_ASSERT(sizeof(struct pyfalco_kmod_ring) <= PYFALCO_KMOD_PAGE, "the ring header fits in its page");

#define PYFALCO_KMOD_CPU_SPAN(size) ((pf_u64)PYFALCO_KMOD_PAGE + 2 * (pf_u64)(size))

struct pyfalco_kmod_setup {
	pf_u64 buffer_bytes; /* in: ring size per CPU */
	pf_u32 ncpus;        /* out: number of rings (possible CPUs), in CPU order */
	pf_u32 page_size;    /* out: the ring header's size (PYFALCO_KMOD_PAGE) */
};
PF_ABI_ASSERT(sizeof(struct pyfalco_kmod_setup) == 16, "struct pyfalco_kmod_setup is 16 bytes (ioctl number)");

/* (major << 16) | (minor << 8) | patch, as pyfalco_abi.h's versions. */
#define PYFALCO_KMOD_VERSION(maj, min, pat) (((pf_u32)(maj) << 16) | ((pf_u32)(min) << 8) | (pf_u32)(pat))

#define PYFALCO_IOCTL_MAGIC 'p'
#define PYFALCO_IOCTL_GET_API_VERSION _IOR(PYFALCO_IOCTL_MAGIC, 1, pf_u32)
#define PYFALCO_IOCTL_GET_SCHEMA_VERSION _IOR(PYFALCO_IOCTL_MAGIC, 2, pf_u32)
#define PYFALCO_IOCTL_SETUP _IOWR(PYFALCO_IOCTL_MAGIC, 3, struct pyfalco_kmod_setup)
#define PYFALCO_IOCTL_SET_INTEREST _IOW(PYFALCO_IOCTL_MAGIC, 4, pf_u8[PYFALCO_SYSCALL_SLOTS])
#define PYFALCO_IOCTL_SET_SNAPLEN _IOW(PYFALCO_IOCTL_MAGIC, 5, pf_u32)
#define PYFALCO_IOCTL_START _IO(PYFALCO_IOCTL_MAGIC, 6)
#define PYFALCO_IOCTL_STOP _IO(PYFALCO_IOCTL_MAGIC, 7)
/* the sums of every CPU's counters of this consumer */
#define PYFALCO_IOCTL_GET_STATS _IOR(PYFALCO_IOCTL_MAGIC, 8, struct pyfalco_counters)

#endif /* PYFALCO_KMOD_H */
