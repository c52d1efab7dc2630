/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Internal declarations of the pyfalco kernel module, shared by its files:
 *   main.c         module init/exit and parameters
 *   device.c       /dev/pyfalco: open/release (consumers), ioctl, mmap
 *   ringbuf.c      per-CPU rings of a consumer: allocation, the mmap fault handler, writing
 *   tracepoints.c  sys_exit / sched_process_exec / sched_process_exit probes, the exec stash
 *   fillers.c      the pf_* helpers in kernel C + driver/abi/fillers_gen.h = one filler per syscall
 * The contract with user space is driver/abi/pyfalco_kmod.h.
 */
#ifndef PF_KMOD_H
#define PF_KMOD_H

#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/types.h>

#include "pyfalco_abi.h"
#include "pyfalco_kmod.h"

/* module parameters (main.c) */
extern unsigned int pf_max_consumers;
extern unsigned long pf_max_buffer_bytes;
extern bool pf_verbose;

#define pf_info(fmt, ...) pr_info("pyfalco: " fmt, ##__VA_ARGS__)
#define pf_debug(fmt, ...)                                          \
	do {                                                        \
		if (pf_verbose)                                     \
			pr_info("pyfalco: " fmt, ##__VA_ARGS__);    \
	} while (0)

/* One ring of one consumer on one CPU. */
struct pf_ring {
	struct pyfalco_kmod_ring *info; /* the shared header page (vmalloc_user) */
	u8 *data;                       /* buffer_bytes (vmalloc_user) */
	u64 head;                       /* the module's own copy: never read back from user memory */
};

/* One open file of /dev/pyfalco. */
struct pf_consumer {
	struct list_head node;          /* in pf_consumers (RCU) once set up */
	struct mutex lock;              /* setup, mmap, interest updates */
	u64 buffer_bytes;               /* 0 until PYFALCO_IOCTL_SETUP */
	u32 nrings;                     /* nr_cpu_ids */
	struct pf_ring *rings;          /* [nrings] */
	u8 interest[PYFALCO_SYSCALL_SLOTS];
	u32 snaplen;
	u64 boot_time_ns;               /* epoch ns at boot (realtime - boottime at start) */
	int capturing;
	int listed;
};

/* ringbuf.c */
int pf_rings_alloc(struct pf_consumer *c, u64 buffer_bytes);
void pf_rings_free(struct pf_consumer *c);
int pf_rings_mmap(struct pf_consumer *c, struct vm_area_struct *vma);
void pf_ring_write(struct pf_consumer *c, const void *rec, u32 len);
void pf_ring_count(struct pf_consumer *c, int which);
void pf_rings_stats(struct pf_consumer *c, struct pyfalco_counters *out);

#define PF_COUNT_EVT 0
#define PF_COUNT_DROP_BUFFER 1
#define PF_COUNT_DROP_SIZE 2
#define PF_COUNT_PAGE_FAULT 3
#define PF_COUNT_BUG 4

/* tracepoints.c: consumers list and probe registration */
extern struct list_head pf_consumers;
int pf_consumer_attach(struct pf_consumer *c);  /* first one registers the probes */
void pf_consumer_detach(struct pf_consumer *c); /* last one unregisters them */
/* device.c: set (for good) when the module is being removed with consumers open */
bool pf_going_away(void);
/* forced removal with consumers open: stop every consumer, flag its rings (PYFALCO_KMOD_RING_GONE)
 * and refuse new setups; returns how many were flagged */
int pf_consumers_evict(void);
int pf_tracepoints_init(void);
void pf_tracepoints_exit(void);

/* fillers.c */
int pf_scratch_init(void);
void pf_scratch_exit(void);
/* Runs the filler of syscall nr (exit) for consumer c; exec_name: the path saved at
 * sched_process_exec for a successful execve/execveat (or NULL). */
void pf_fill_syscall(struct pf_consumer *c, long nr, struct pt_regs *regs, long ret, const char *exec_name);
void pf_fill_procexit(struct pf_consumer *c, struct task_struct *p);
bool pf_has_filler(long nr);

/* device.c */
int pf_device_init(void);
/* waits until no file of /dev/pyfalco is open (only a forced removal gets here with some) */
void pf_device_drain(void);
void pf_device_exit(void);

#endif /* PF_KMOD_H */
