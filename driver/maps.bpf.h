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
/* the last 8 bytes of a slot are scratch for pf_forget(), the 8 before them for pf_kf_files_num()
 * (never part of an event) */

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

/* Entry 0: pf_kf_send_tail (driver/pyfalco.bpf.c), the kernel filter's work on the held opens for
 * the tail-called fillers, verified once instead of in each of them (filter.bpf.h,
 * pf_kf_send_tailed). libpyfalco's engine_bpf.c installs it before attaching, or fails the load. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} pf_kf_tail_table SEC(".maps");

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
/* 1 once a filter was installed on: from then on held opens are sent and forgotten as they are
 * used and closed, also after the filter is replaced (a rules reload) or turned off (on = 0 holds
 * nothing new). pf_kf_mkfd and pf_kf_uses come from the event schema, not the rules. */
volatile __u32 pf_kf_armed;
/* An open whose PPM flags share a bit with this mask is always sent. */
volatile __u32 pf_kf_flags_any;
/* Bit L set: look up the path's first L bytes as a PF_KF_PREFIX pattern. */
volatile __u8 pf_kf_prefix_lens[PYFALCO_MAX_PATH / 8 + 8];
/* [kind] bit L set: some pattern of that kind (PF_KF_EXACT ... PF_KF_BASE) is L bytes long; a
 * lookup of another length is skipped (most opens' names have no pattern of their length). */
volatile __u8 pf_kf_kind_lens[8][PYFALCO_MAX_PATH / 8 + 8];
/* Bit PYFALCO_KF_HBIT(hash, len, kind) set: some pattern may have that key (pyfalco_abi.h); a
 * lookup of another key is skipped. */
volatile __u64 pf_kf_hbits[PYFALCO_KF_HBITS / 64];

/* Event code -> how a sent event of that code creates fds (PF_KF_MKFD_*): their numbers leave
 * pf_kf_fds, so that only a close of an fd whose open was dropped is ever dropped. */
#define PF_KF_CODES 1024
volatile __u8 pf_kf_mkfd[PF_KF_CODES];

/* A path pattern: its hash (filter.bpf.h, pf_kf_mix), its length, its kind (PF_KF_EXACT ...). */
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

/* An fd whose open the filter held back, by (the task's files_struct, fd). */
struct pf_kf_fd {
	__u64 files;
	__u64 fd;
};

/* A held open: its record as the filler built it (PF_KF_REC_MAX bytes at most; a longer one is
 * sent). Whether it is close-on-exec is its slot's (PF_KF_SLOT_CLOEXEC in pf_kf_slot.state). */
#define PF_KF_REC_MAX 512
struct pf_kf_rec {
	__u32 len;
	__u32 pad;
	__u32 flags_off; /* where the open's flags are in data (PPM_O_CLOEXEC is added there when sent) */
	__u32 fill;	 /* 1: an openat record whose dev and ino are read when it is sent */
	__u8 data[PF_KF_REC_MAX];
};

/* Opens dropped and held until a sent event uses their fd (filter.bpf.h): a preallocated array
 * of slots, not a hash map (whose insert at the open and delete at the close, with their bucket
 * locks and element allocation, were most of a dropped open's cost). (files, fd) has a home slot
 * and PF_KF_PROBES - 1 after it; a slot is claimed with a compare-and-swap on its state word, so
 * nothing is locked. Never evicted: an evicted record would be an fd user space never learns;
 * when the slots of a key are all taken, the open is sent. PF_KF_HELD_MAX is a power of two. */
#define PF_KF_HELD_BITS 13
#define PF_KF_HELD_MAX (1u << PF_KF_HELD_BITS)
#define PF_KF_PROBES 8
/* state: (generation << 3) | PF_KF_SLOT_CLOEXEC if marked | PF_KF_SLOT_* (the low two bits).
 * Every claim or discard (FREE or HELD -> BUSY, HELD -> FREE: a compare-and-swap) adds one to
 * the generation, so one made from a stale read of the state fails (no ABA). files and fd are
 * written only while BUSY by whoever claimed it; HELD publishes them. The close-on-exec mark is
 * the one change of a HELD slot that keeps it HELD: HELD -> HELD | PF_KF_SLOT_CLOEXEC, same
 * generation (set at the hold for an O_CLOEXEC open, by close_range(CLOSE_RANGE_CLOEXEC) later),
 * so that a claim racing it sees a slot still HELD by the same key and tries once more
 * (pf_kf_claim): the mark never makes the slot BUSY, which a use or close of its fd by another
 * thread would take for "nothing held". The bit goes when the slot is claimed (the claimer
 * keeps the word it swapped). Keep these in sync with libpyfalco/src/kfilter.c (it counts the
 * held slots). */
#define PF_KF_SLOT_FREE 0
#define PF_KF_SLOT_BUSY 1
#define PF_KF_SLOT_HELD 2
#define PF_KF_SLOT_STATE 3ULL
#define PF_KF_SLOT_CLOEXEC 4ULL
#define PF_KF_SLOT_GEN 8ULL /* one generation */
/* 32 bytes: the PF_KF_PROBES slots a key may be in span four cache lines, the records are
 * apart (pf_kf_held_recs, same index) and only the claimed one is touched. */
struct pf_kf_slot {
	__u64 state;
	__u64 files;
	__u64 fd;
	__u64 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PF_KF_HELD_MAX);
	__type(key, __u32);
	__type(value, struct pf_kf_slot);
} pf_kf_held SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PF_KF_HELD_MAX);
	__type(key, __u32);
	__type(value, struct pf_kf_rec);
} pf_kf_held_recs SEC(".maps");

/* Per bucket of files_structs (a hash of the table's address): how many opens its tables hold
 * (the hooks skip every slot lookup and walk at 0) and how many of its tables are shared by
 * processes (CLONE_FILES without CLONE_THREAD: nothing is held in a bucket with one). An array,
 * not a hash by files_struct: a dropped open and its close read it with no hash-map lookup and
 * no insert for a new table. Two tables in one bucket only cost a walk or send more. */
#define PF_KF_BUCKET_BITS 12
struct pf_kf_bucket {
	__s64 held;
	__s64 nohold;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1u << PF_KF_BUCKET_BITS);
	__type(key, __u32);
	__type(value, struct pf_kf_bucket);
} pf_kf_buckets SEC(".maps");

/* The tables shared by processes (pf_kf_fork), by files_struct: counted once in their bucket's
 * nohold, and out of it when the table's last user exits (or its address is reused). */
struct pf_kf_fstate {
	__u64 nohold;
	__u64 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PF_KF_HELD_MAX);
	__type(key, __u64);
	__type(value, struct pf_kf_fstate);
} pf_kf_tables SEC(".maps");

/* Event code -> bit i set: parameter i is an fd the event uses (user space looks it up in its fd
 * table): a held open of that fd is sent first. From pyfalco/kfilter.py (the event schema). */
volatile __u16 pf_kf_uses[PF_KF_CODES];

/* What the filter did, per CPU (PF_KF_ST_*): [0] opens held, [1] closes dropped, [2] held opens
 * sent before a use, [3] sent before a fork copied the table, [4] discarded (closed by exec,
 * close_range, dup2, exit), [5] opens sent because the record was too long or the table full. */
#define PF_KF_NSTATS 6
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PF_KF_NSTATS);
	__type(key, __u32);
	__type(value, __u64);
} pf_kf_stats SEC(".maps");

#endif
