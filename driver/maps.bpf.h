/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/* Every map and every global of the eBPF driver, in one place. User space (libpyfalco
 * engine_bpf.c) sizes the maps before load and writes the .bss globals after load. */
#ifndef PYFALCO_MAPS_BPF_H
#define PYFALCO_MAPS_BPF_H

#include "pyfalco_abi.h"

/* Scratch space an event is built in before it is copied to a ring buffer: one slot per CPU.
 * Payload offsets are masked with PF_AUX_MASK and no single write exceeds PF_AUX_MAX_WRITE,
 * so every access stays inside the slot (the verifier checks exactly that). */
#define PF_AUX_SIZE (128 * 1024)
#define PF_AUX_MASK (64 * 1024 - 1)
#define PF_AUX_MAX_WRITE (32 * 1024)
/* the last 8 bytes of a slot are scratch for pf_forget() (never part of an event) */

struct pf_aux {
	__u8 data[PF_AUX_SIZE];
};

/*=== BPF GLOBALS (.bss, written by user space after load) ===*/

/* 1 for each syscall number user space asked for. */
volatile __u8 pf_interesting[PYFALCO_SYSCALL_SLOTS];
/* CPU -> ring buffer index in pf_ringbufs. */
volatile __u32 pf_cpu_to_ring[PYFALCO_MAX_CPUS];
/* Add to bpf_ktime_get_boot_ns() to get ns since the epoch. */
volatile __u64 pf_boot_time_ns;
/* Bytes of I/O payload kept per event. */
volatile __u32 pf_snaplen;
/* Events are produced only while this is 1 (capture started). */
volatile __u32 pf_capturing;
/* ABI versions, read by user space to check it talks to the driver it expects. */
const volatile __u32 pf_api_version = (PYFALCO_API_VERSION_MAJOR << 16) | (PYFALCO_API_VERSION_MINOR << 8) |
				      PYFALCO_API_VERSION_PATCH;

/*=== MAPS ===*/

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set to the number of possible CPUs before load */
	__type(key, __u32);
	__type(value, struct pf_aux);
} pf_aux_maps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pyfalco_counters);
} pf_counters SEC(".maps");

/* Ring buffers (BPF_MAP_TYPE_RINGBUF), one per group of CPUs: user space creates them, sets the
 * inner map template before load and installs them after. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1); /* set to the number of rings before load */
	__type(key, __u32);
	__type(value, __u32);
} pf_ringbufs SEC(".maps");

/* syscall number -> filler program (bpf_tail_call from the dispatcher). */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, PYFALCO_SYSCALL_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} pf_syscall_exit_tail_table SEC(".maps");

/* The path execve was called with, saved at sched_process_exec for the execve exit event
 * (the user pointer is gone by then). Keyed by thread id. */
struct pf_exec_name {
	char name[PYFALCO_MAX_PATH];
	__u64 nr; /* the syscall that exec'd (execve or execveat) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct pf_exec_name);
} pf_exec_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pf_exec_name);
} pf_exec_scratch SEC(".maps");

/*=== KERNEL-SIDE FILTER (filter.bpf.h; written by libpyfalco kfilter.c from pyfalco/kfilter.py) ===*/

/* PF_KF_* bits: which event types the filter may drop (0: the filter is off). */
volatile __u32 pf_kf_on;
/* An open whose PPM flags share a bit with this mask is always sent. */
volatile __u32 pf_kf_flags_any;
/* Bit L set: look up the path's first L bytes as a PF_KF_PREFIX pattern. */
volatile __u8 pf_kf_prefix_lens[PYFALCO_MAX_PATH / 8 + 8];

/* Event code -> how a sent event of that code creates fds (PF_KF_MKFD_*): their numbers leave
 * pf_kf_fds, so that only a close of an fd whose open was dropped is ever dropped. */
#define PF_KF_CODES 1024
volatile __u8 pf_kf_mkfd[PF_KF_CODES];

/* A path pattern: FNV-1a 64 of its bytes, its length, its kind (PF_KF_EXACT ...). */
struct pf_kf_key {
	__u64 hash;
	__u32 len;
	__u32 kind;
};

/* pattern -> PPM flag mask: an open matching the pattern is sent when its flags share a bit
 * with the mask (PF_KF_ANY: whatever its flags). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pf_kf_key);
	__type(value, __u32);
} pf_kf_paths SEC(".maps");

/* fds whose open the filter dropped, by (the task's files_struct, fd): their close is dropped too. */
struct pf_kf_fd {
	__u64 files;
	__u64 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pf_kf_fd);
	__type(value, __u8);
} pf_kf_fds SEC(".maps");

/* What the filter dropped, per CPU: [0] opens, [1] closes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} pf_kf_stats SEC(".maps");

#endif
