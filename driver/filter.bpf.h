/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Kernel-side filter compiled from the rules (pyfalco/kfilter.py decides, libpyfalco kfilter.c
 * writes the globals and maps of driver/maps.bpf.h). Falco's drivers filter by syscall only; this
 * one also drops, after the filler built the record and before it reaches the ring:
 *
 *   - an open/openat/openat2 that no selected rule can match (user space proved that from the
 *     rules: pf_kf_on has the type's bit only then). An open
 *     is sent whenever one of these holds (each is a reason the rules or the state need it):
 *       * its PPM flags share a bit with pf_kf_flags_any (O_DIRECTORY always: user space names
 *         a directory fd by its path, for *at() calls and fchdir);
 *       * the fd it returned is a directory (same reason, opened without O_DIRECTORY);
 *       * the path is not one user space keeps as given, or is one a traversal rule looks for:
 *         relative, with "//", "/." (".", ".." and every hidden name), "..", a trailing "/", a
 *         byte >= 0x80, empty, or too long;
 *       * its whole path, its directory, its file name or one of its prefixes is a pattern of
 *         pf_kf_paths whose flag mask matches (hash hits; a collision only sends more).
 *   - a close of an fd whose open was dropped (held in pf_kf_held), when no rule wants close
 *     events. A dropped open is not forgotten but held (see "held opens" below): a sent event
 *     that reads its fd from user space's fd table gets it sent first, so user space's table is
 *     the one it would have without the filter.
 *
 * The record is read back from the scratch slot, so the filter sees exactly what user space
 * would have seen.
 */
#ifndef PYFALCO_FILTER_BPF_H
#define PYFALCO_FILTER_BPF_H

#include "helpers.bpf.h"
#include "fillers_list.h"
#include "pf_inlined.h"

/* pf_kf_on bits; keep in sync with libpyfalco/src/kfilter.c and pyfalco/kfilter.py */
#define PF_KF_OPEN (1u << 0)
#define PF_KF_OPENAT (1u << 1)
#define PF_KF_OPENAT2 (1u << 2)
#define PF_KF_CLOSE (1u << 3)

/* pf_kf_key.kind */
#define PF_KF_EXACT 1  /* fd.name */
#define PF_KF_PREFIX 2 /* the first len bytes of fd.name */
#define PF_KF_DIR 3    /* fd.directory ("/" for a file in the root) */
#define PF_KF_BASE 4   /* fd.filename */

#define PF_KF_ANY (1u << 31)

/* pf_kf_open's layout (and pf_kf_hold's flags_off): the record's dev and ino are left 0 until it
 * is sent (pf_run_openat_kf, pf_kf_fill) */
#define PF_KF_OPEN_FILL (1u << 31)

/* pf_kf_mkfd values */
#define PF_KF_MKFD_RET 1    /* the return value is a new fd */
#define PF_KF_MKFD_PARAMS 2 /* parameters 2 and 3 are (pipe, socketpair) */

/* The path hash (pyfalco/kfilter.py path_hash computes the same): 64-bit little-endian words,
 * the last one zero-padded (the key also carries the length), each folded in as
 * h = (h ^ w) * PRIME; h ^= h >> 32. A word per step, not a byte: the scan below costs a
 * bpf_loop step per 8 bytes of the path. A collision only sends more. */
#define PF_KF_BASIS 0xcbf29ce484222325ULL
#define PF_KF_PRIME 0x100000001b3ULL
#define PF_KF_ONES 0x0101010101010101ULL
#define PF_KF_LOW7 0x7f7f7f7f7f7f7f7fULL
#define PF_KF_HIGH 0x8080808080808080ULL

#define PF_S_IFMT 0170000
#define PF_S_IFDIR 0040000

PF_INLINE __u64 pf_kf_mix(__u64 h, __u64 w)
{
	h = (h ^ w) * PF_KF_PRIME;
	return h ^ (h >> 32);
}

/* 0x80 in each byte of w equal to c, 0 elsewhere (exact: no carry between bytes). */
PF_INLINE __u64 pf_kf_eq(__u64 w, __u64 c)
{
	__u64 t = w ^ (c * PF_KF_ONES);

	return ~(((t & PF_KF_LOW7) + PF_KF_LOW7) | t | PF_KF_LOW7);
}

/* The first n bytes of w (n < 8). */
PF_INLINE __u64 pf_kf_low(__u64 w, __u32 n)
{
	return w & ((1ULL << ((n & 7) * 8)) - 1);
}

/* The path's hash state after i words, and where its last '/' was. */
struct pf_kf_scan {
	__u8 *p;     /* the path's first byte in the scratch slot */
	__u64 h;     /* hash of the first 8 * i bytes */
	__u64 hdir;  /* hash of p[0:dirlen] */
	__u32 dirlen;
	__u32 n;     /* path length, NUL excluded */
	__u32 flags; /* the open's PPM flags */
	__u32 keep;
};

/* 1 when some pattern of this kind is len bytes long (pf_kf_kind_lens). */
PF_INLINE int pf_kf_len_used(__u32 len, __u32 kind)
{
	return pf_kf_kind_lens[kind & 7][(len >> 3) & (PYFALCO_MAX_PATH / 8 - 1)] & (1u << (len & 7));
}

PF_INLINE int pf_kf_hit(__u64 h, __u32 len, __u32 kind, __u32 flags)
{
	struct pf_kf_key k = {.hash = h, .len = len, .kind = kind};
	__u32 *m;

	__u32 bit;

	if (!pf_kf_len_used(len, kind))
		return 0;
	bit = PYFALCO_KF_HBIT(h, len, kind);
	if (!(pf_kf_hbits[(bit >> 6) & (PYFALCO_KF_HBITS / 64 - 1)] & (1ULL << (bit & 63))))
		return 0;
	m = bpf_map_lookup_elem(&pf_kf_paths, &k);

	return m && ((*m & PF_KF_ANY) || (*m & flags));
}

/* 1 when a prefix pattern of length off + k (bit k - 1 of pb) matches: h0 is the hash of the
 * first off bytes, w the next word. A global function: verified once, apart from the scan's
 * states (inline, its branches multiplied the verifier's work on every filler). */
__noinline int pf_kf_prefixes(__u64 h0, __u64 w, __u32 off, __u32 pb, __u32 flags)
{
	__u32 j;

	for (j = 1; j <= 8; j++) {
		if ((pb & (1u << (j - 1))) &&
		    pf_kf_hit(j == 8 ? pf_kf_mix(h0, w) : pf_kf_mix(h0, pf_kf_low(w, j)), off + j, PF_KF_PREFIX, flags))
			return 1;
	}
	return 0;
}

/*
 * One word (bytes 8i..8i+7) of the scan (the bpf_loop callback). The byte before the word is read
 * from the path again, not carried in *s: verifiers before 6.7 check a callback once, with *s as
 * the caller left it, so a branch on a value the callback itself stores there is seen as never
 * taken and removed as dead code (kernel 6.1 dropped every path with "//" that way). Branches here
 * may only depend on i, the path's bytes and values no iteration changes.
 */
static long pf_kf_step(__u32 i, struct pf_kf_scan *s)
{
	__u32 off = i * 8, n = s->n, rem, j;
	__u64 w, sl, dot, psl, pdot, h0, h1;
	__u8 prev, pb;

	if (off >= n)
		return 1;
	rem = n - off;
	w = *(__u64 *)&s->p[off & (PYFALCO_MAX_PATH - 1)];
	if (rem < 8)
		w = pf_kf_low(w, rem);
	prev = off ? s->p[(off - 1) & (PYFALCO_MAX_PATH - 1)] : 0;
	sl = pf_kf_eq(w, '/');
	dot = pf_kf_eq(w, '.');
	/* the same masks shifted one byte up: "the byte before is a '/'" ('.') */
	psl = (sl << 8) | (prev == '/' ? 0x80 : 0);
	pdot = (dot << 8) | (prev == '.' ? 0x80 : 0);
	/* "//", "/.", "..", a byte >= 0x80 (padding bytes are 0) */
	if ((sl & psl) || (dot & (psl | pdot)) || (w & PF_KF_HIGH)) {
		s->keep = 1;
		return 1;
	}
	h0 = s->h;
	if (sl) {
		/* the last '/' of the word: byte j; the directory is the path up to it */
		j = 0;
		if (sl >> 32) {
			j += 4;
			sl >>= 32;
		}
		if (sl >> 16) {
			j += 2;
			sl >>= 16;
		}
		if (sl >> 8)
			j += 1;
		s->dirlen = off + j;
		s->hdir = j ? pf_kf_mix(h0, pf_kf_low(w, j)) : h0;
	}
	h1 = pf_kf_mix(h0, w);
	s->h = h1;
	/* prefix patterns ending in this word (lengths off+1 .. off+8, bit k-1 for off+k) */
	pb = (pf_kf_prefix_lens[(off >> 3) & (PYFALCO_MAX_PATH / 8 - 1)] >> 1) |
	     (pf_kf_prefix_lens[((off >> 3) + 1) & (PYFALCO_MAX_PATH / 8 - 1)] << 7);
	if (rem < 8)
		pb &= (1u << rem) - 1;
	if (pb && pf_kf_prefixes(h0, w, off, pb, s->flags)) {
		s->keep = 1;
		return 1;
	}
	return 0;
}

/* The file name's hash: the bytes after the last '/', words read from there (unaligned). */
struct pf_kf_base {
	__u8 *p;
	__u64 h;
	__u32 from; /* first byte of the name */
	__u32 n;    /* path length */
};

static long pf_kf_base_step(__u32 i, struct pf_kf_base *b)
{
	__u32 off = b->from + i * 8, n = b->n;
	__u64 w;

	if (off >= n)
		return 1;
	w = *(__u64 *)&b->p[off & (PYFALCO_MAX_PATH - 1)];
	if (n - off < 8)
		w = pf_kf_low(w, n - off);
	b->h = pf_kf_mix(b->h, w);
	return 0;
}

/* 1 when some rule may match an open of this path with these flags (see the top comment). */
PF_INLINE int pf_kf_path_wanted(__u8 *p, __u32 n, __u32 flags)
{
	struct pf_kf_scan s = {};
	struct pf_kf_base b = {};

	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_loop))
		return 1; /* before 5.17: no bounded loop helper, send everything */
	if (n < 2 || n >= PYFALCO_MAX_PATH || p[0] != '/')
		return 1;
	if (p[(n - 1) & (PYFALCO_MAX_PATH - 1)] == '/') /* a trailing "/" */
		return 1;
	s.p = p;
	s.n = n;
	s.flags = flags;
	s.h = PF_KF_BASIS;
	s.hdir = PF_KF_BASIS;
	bpf_loop(PYFALCO_MAX_PATH / 8, pf_kf_step, &s, 0);
	if (s.keep)
		return 1;
	if (pf_kf_hit(s.h, n, PF_KF_EXACT, flags))
		return 1;
	if (pf_kf_len_used(n - s.dirlen - 1, PF_KF_BASE)) {
		b.p = p;
		b.h = PF_KF_BASIS;
		b.from = s.dirlen + 1;
		b.n = n;
		bpf_loop(PYFALCO_MAX_PATH / 8, pf_kf_base_step, &b, 0);
		if (pf_kf_hit(b.h, n - s.dirlen - 1, PF_KF_BASE, flags))
			return 1;
	}
	if (s.dirlen == 0) /* "/name": the directory is "/" */
		return pf_kf_hit(pf_kf_mix(PF_KF_BASIS, '/'), 1, PF_KF_DIR, flags);
	return pf_kf_hit(s.hdir, s.dirlen, PF_KF_DIR, flags);
}

PF_INLINE void pf_kf_count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&pf_kf_stats, &which);

	if (v)
		*v += 1;
}

PF_INLINE __u64 pf_kf_files(void)
{
	struct task_struct *t = bpf_get_current_task_btf();

	return (__u64)BPF_CORE_READ(t, files);
}

/* The same by a direct (BTF) load, not a bpf_probe_read_kernel call (a dropped open and its
 * close each ask once). The verifier keeps a loaded kernel pointer typed (no arithmetic on it, not
 * passed to a global function): it goes through a spare word of the scratch slot and comes back
 * a plain number (storing a pointer into memory is allowed to root and CAP_PERFMON, which the
 * driver needs anyway). volatile: the compiler must not fold the round trip away. */
PF_INLINE __u64 pf_kf_files_num(struct pf_aux *aux)
{
	volatile __u64 *spot = (volatile __u64 *)&aux->data[PF_AUX_SIZE - 16];

	*spot = (__u64)bpf_get_current_task_btf()->files;
	return *spot;
}

/*=== held opens ===
 * A dropped open's record waits in pf_kf_held, keyed like the fd it made. It reaches user space
 * (tid made the current thread's, timestamp just before the event that needs it) when a sent
 * event uses that fd (pf_kf_uses), or when a fork is about to copy the table (pf_kf_fork). Its
 * entry goes without a trace when the kernel closes the fd and user space would drop it too:
 * close (the close is dropped as well), an exec (O_CLOEXEC), close_range, an fd number made anew
 * (dup2 over it), the exit of the table's last user. The held opens are slots of an array claimed
 * with a compare-and-swap (maps.bpf.h: no lock, no allocation); pf_kf_buckets counts them per
 * bucket of tables, so that a sent event of a process holding nothing costs one array lookup.
 * All of this goes on after the filter is replaced or turned off (pf_kf_armed).
 * Not exact: unshare(CLONE_FILES) and close_range(CLOSE_RANGE_UNSHARE) give the caller a copy of
 * its table that the held opens are not keyed by (its later uses find nothing held; user space
 * reads such an fd from /proc); sys_exit does not see the old table to move them. */

#define PF_KF_ST_HELD 0
#define PF_KF_ST_CLOSES 1
#define PF_KF_ST_RELEASED 2
#define PF_KF_ST_FLUSHED 3
#define PF_KF_ST_DISCARDED 4
#define PF_KF_ST_SENT_FULL 5

#define PF_KF_WALK_FLUSH 1	   /* send every held open of the table (a fork copies it) */
#define PF_KF_WALK_PURGE 2	   /* forget every one (the table is gone, or new at a reused address) */
#define PF_KF_WALK_EXEC 3	   /* forget the O_CLOEXEC ones (an exec closed them) */
#define PF_KF_WALK_RANGE_CLOSE 4   /* close_range(first, last, 0) */
#define PF_KF_WALK_RANGE_CLOEXEC 5 /* close_range(first, last, CLOSE_RANGE_CLOEXEC) */

/* The bucket of a table (pf_kf_buckets). */
PF_INLINE struct pf_kf_bucket *pf_kf_bucket_of(__u64 files)
{
	__u32 i = (__u32)(((files >> 4) * 0x9e3779b97f4a7c15ULL) >> (64 - PF_KF_BUCKET_BITS));

	return bpf_map_lookup_elem(&pf_kf_buckets, &i);
}

PF_INLINE void pf_kf_held_add(__u64 files, __s64 n)
{
	struct pf_kf_bucket *bk = pf_kf_bucket_of(files);

	if (bk)
		__sync_fetch_and_add(&bk->held, n);
}

/* The dev and ino of a held openat record (rec->fill), read when it is sent, from the fd's file in
 * the current task's table (the held table: a held open is sent by a thread of it, or by the
 * forking parent): the file it was opened as, since a held fd that is closed or made anew is
 * forgotten, never sent. Three probe reads a dropped open no longer pays before the decision;
 * only the few held opens that are sent read them. They follow the flags: mode, dev, ino
 * (openat's layout). The created flag is not deferred: rules may select opens by it. */
PF_INLINE void pf_kf_fill(struct pf_kf_rec *rec, __u64 fd, __u64 len)
{
	struct pf_ctx c = {};
	struct inode *ino;
	struct file *f;
	__u64 off = rec->flags_off;

	if (off + 20 > len)
		return;
	off &= PF_KF_REC_MAX - 1;
	barrier_var(off);
	if (off > PF_KF_REC_MAX - 20)
		return;
	c.task = bpf_get_current_task_btf();
	f = pf_fd_file(&c, (long)fd);
	if (!f)
		return;
	ino = BPF_CORE_READ(f, f_inode);
	if (!ino)
		return;
	*(__u32 *)&rec->data[off + 8] = pf_encode_dev(BPF_CORE_READ(ino, i_sb, s_dev));
	*(__u64 *)&rec->data[off + 12] = BPF_CORE_READ(ino, i_ino);
}

/* Sends a held record (rec->len checked here) of fd on this CPU's ring, as thread tid at time ts;
 * cloexec: the PF_KF_SLOT_CLOEXEC bit of the slot's word its sender claimed (the open had
 * O_CLOEXEC, or close_range marked it: the flag is added to the record's flags, as user space
 * would have had it). */
PF_INLINE void pf_kf_emit(struct pf_kf_rec *rec, __u64 fd, __u64 ts, __u64 tid, __u64 cloexec)
{
	struct pyfalco_evt_hdr *hdr = (struct pyfalco_evt_hdr *)rec->data;
	__u64 len = rec->len;
	__u32 cpu, ring;
	void *rb;

	if (len < PYFALCO_EVT_HDR_SIZE || len > PF_KF_REC_MAX)
		return;
	hdr->ts = ts;
	hdr->tid = tid;
	if (rec->fill)
		pf_kf_fill(rec, fd, len);
	if (cloexec && rec->flags_off + 4 <= len) {
		__u64 off = rec->flags_off & (PF_KF_REC_MAX - 1);

		barrier_var(off);
		if (off <= PF_KF_REC_MAX - 4)
			*(__u32 *)&rec->data[off] |= PPM_O_CLOEXEC;
	}
	barrier_var(len);
	len &= (2 * PF_KF_REC_MAX - 1);
	if (len > PF_KF_REC_MAX)
		return;
	cpu = bpf_get_smp_processor_id();
	ring = pf_cpu_to_ring[cpu & (PYFALCO_MAX_CPUS - 1)];
	rb = bpf_map_lookup_elem(&pf_ringbufs, &ring);
	if (!rb) {
		pf_count(PF_COUNT_BUG);
		return;
	}
	if (bpf_ringbuf_output(rb, rec->data, len, BPF_RB_NO_WAKEUP))
		pf_count(PF_COUNT_DROP_BUFFER);
	else
		pf_count(PF_COUNT_EVT);
}

#define PF_READ_ONCE(x) (*(volatile __typeof__(x) *)&(x))

/* The home slot of (files, fd) in pf_kf_held; the key may be in it or the PF_KF_PROBES - 1 after. */
PF_INLINE __u32 pf_kf_home(__u64 files, __u64 fd)
{
	return (__u32)(((files >> 4) ^ (fd * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL >> (64 - PF_KF_HELD_BITS));
}

PF_INLINE struct pf_kf_slot *pf_kf_slot_at(__u32 idx)
{
	idx &= PF_KF_HELD_MAX - 1;
	return bpf_map_lookup_elem(&pf_kf_held, &idx);
}

/* The state word that a compare-and-swap from v writes to put the slot in state st: the next
 * generation, without the close-on-exec mark (maps.bpf.h). */
PF_INLINE __u64 pf_kf_next(__u64 v, __u64 st)
{
	return (v & ~(PF_KF_SLOT_GEN - 1)) + PF_KF_SLOT_GEN + st;
}

/* Frees a slot the caller claimed (state b, BUSY); xchg: a full barrier before the slot is
 * anyone's again (its record was read or written while BUSY). */
PF_INLINE void pf_kf_free(struct pf_kf_slot *s, __u64 b)
{
	__sync_lock_test_and_set(&s->state, b & ~(PF_KF_SLOT_GEN - 1));
}

/* Claims the slot whose word was read as *v (HELD; its files and fd checked after that read):
 * a compare-and-swap to the next generation in state st. The close-on-exec mark (*v -> *v |
 * PF_KF_SLOT_CLOEXEC: the same generation, so the same key, still HELD) may come in between,
 * once a generation: the swap is then tried again from the marked word. 1 when claimed; *v is
 * then the word swapped out (its PF_KF_SLOT_CLOEXEC the slot's), *nv the one swapped in. */
PF_INLINE int pf_kf_claim(struct pf_kf_slot *s, __u64 *v, __u64 st, __u64 *nv)
{
	__u64 w = *v, old;

	old = __sync_val_compare_and_swap(&s->state, w, pf_kf_next(w, st));
	if (old != w) {
		if (old != (w | PF_KF_SLOT_CLOEXEC))
			return 0; /* claimed or discarded by someone else (or marked already: old == w) */
		w = old;
		if (__sync_val_compare_and_swap(&s->state, w, pf_kf_next(w, st)) != w)
			return 0;
	}
	*v = w;
	*nv = pf_kf_next(w, st);
	return 1;
}

/* Finds the slot holding (files, fd) and claims it (pf_kf_claim) in state st: BUSY (it is the
 * caller's until pf_kf_free; *idx its index, *b its state) or FREE (forgotten). Whoever's swap
 * succeeds owns it: two threads of one table may use or close the fd at once. *was: the word it
 * had (PF_KF_SLOT_CLOEXEC). 1 when found. */
PF_INLINE int pf_kf_take(__u64 files, __u64 fd, __u64 st, __u32 *idx, __u64 *b, __u64 *was)
{
	__u32 home = pf_kf_home(files, fd), i;

#pragma unroll
	for (i = 0; i < PF_KF_PROBES; i++) {
		struct pf_kf_slot *s = pf_kf_slot_at(home + i);
		__u64 v, nv;

		if (!s)
			return 0;
		v = PF_READ_ONCE(s->state);
		if ((v & PF_KF_SLOT_STATE) != PF_KF_SLOT_HELD || PF_READ_ONCE(s->files) != files ||
		    PF_READ_ONCE(s->fd) != fd)
			continue;
		if (pf_kf_claim(s, &v, st, &nv)) {
			*idx = (home + i) & (PF_KF_HELD_MAX - 1);
			*b = nv;
			*was = v;
			return 1;
		}
	}
	return 0;
}

/* Forgets the held open of (files, fd), if any: the kernel closed that fd and user space drops
 * it at the same event. 1 when there was one. */
PF_INLINE int pf_kf_discard(__u64 files, __s64 fd)
{
	struct pf_kf_bucket *bk = pf_kf_bucket_of(files);
	__u32 idx;
	__u64 b, was;

	if (!bk || bk->held <= 0 || fd < 0)
		return 0;
	if (!pf_kf_take(files, (__u64)fd, PF_KF_SLOT_FREE, &idx, &b, &was))
		return 0;
	__sync_fetch_and_add(&bk->held, -1);
	return 1;
}

/* Sends the held open of (current files, fd) before the event being submitted (its timestamp
 * ts): user space then has the fd in its table when it reads that event. A global function: the
 * verifier checks it once. */
__noinline int pf_kf_release(__u64 files, __s64 fd, __u64 ts)
{
	struct pf_kf_slot *s;
	struct pf_kf_rec *rec;
	__u32 idx;
	__u64 b, was;

	if (!pf_kf_take(files, (__u64)fd, PF_KF_SLOT_BUSY, &idx, &b, &was))
		return 0;
	s = pf_kf_slot_at(idx);
	rec = bpf_map_lookup_elem(&pf_kf_held_recs, &idx);
	if (!s || !rec)
		return 0;
	/* sent from the slot itself: it is ours until freed */
	pf_kf_emit(rec, (__u64)fd, ts - 1, (__u32)bpf_get_current_pid_tgid(), was & PF_KF_SLOT_CLOEXEC);
	pf_kf_free(s, b);
	pf_kf_held_add(files, -1);
	pf_kf_count(PF_KF_ST_RELEASED);
	return 1;
}

struct pf_kf_walk {
	__u64 files;
	__u64 first;
	__u64 last;
	__u64 ts;
	__u64 tid;
	__u32 mode;
	__u32 removed;
};

/* bpf_for_each_map_elem callback over pf_kf_held's slots. Every branch depends on the slot or on
 * *w's fields the caller set and no iteration changes (see pf_kf_step on pre-6.7 verifiers);
 * removed is only ever added to. */
static long pf_kf_walk_cb(struct bpf_map *map, __u32 *key, struct pf_kf_slot *s, struct pf_kf_walk *w)
{
	__u32 mode = w->mode, idx = *key & (PF_KF_HELD_MAX - 1);
	struct pf_kf_rec *rec;
	/* the key read after the word (volatile reads stay in order): a swap from v then only
	 * succeeds on the key read */
	__u64 v = PF_READ_ONCE(s->state), nv, fd = PF_READ_ONCE(s->fd);

	if ((v & PF_KF_SLOT_STATE) != PF_KF_SLOT_HELD || PF_READ_ONCE(s->files) != w->files)
		return 0;
	if ((mode == PF_KF_WALK_RANGE_CLOSE || mode == PF_KF_WALK_RANGE_CLOEXEC) && (fd < w->first || fd > w->last))
		return 0;
	if (mode == PF_KF_WALK_RANGE_CLOEXEC) {
		/* the mark, in the state word (maps.bpf.h): the slot stays HELD, so a use or close of
		 * the fd by another thread meanwhile still finds it. From v: a slot discarded and taken
		 * by another key since the checks above has another generation, and the swap fails.
		 * It fails as well when the slot was claimed meanwhile (its open is being sent or
		 * forgotten) or marked already. */
		if (!(v & PF_KF_SLOT_CLOEXEC))
			__sync_val_compare_and_swap(&s->state, v, v | PF_KF_SLOT_CLOEXEC);
		return 0;
	}
	if (mode == PF_KF_WALK_EXEC && !(v & PF_KF_SLOT_CLOEXEC))
		return 0;
	rec = bpf_map_lookup_elem(&pf_kf_held_recs, &idx);
	if (!rec)
		return 0;
	if (!pf_kf_claim(s, &v, PF_KF_SLOT_BUSY, &nv))
		return 0;
	if (mode == PF_KF_WALK_FLUSH)
		pf_kf_emit(rec, fd, w->ts, w->tid, v & PF_KF_SLOT_CLOEXEC);
	pf_kf_free(s, nv);
	w->removed++;
	return 0;
}

/* One walk over the held opens of a table (PF_KF_WALK_*). Global: checked once, with mode and
 * the range unknown, so that no branch of the callback is taken for dead. */
__noinline int pf_kf_walk(__u64 files, __u32 mode, __u64 first, __u64 last)
{
	struct pf_kf_walk w = {};
	struct pf_kf_bucket *bk = pf_kf_bucket_of(files);
	__u32 i;

	if (!bk || bk->held <= 0)
		return 0;
	w.files = files;
	w.mode = mode;
	w.first = first;
	w.last = last;
	w.ts = pf_boot_time_ns + bpf_ktime_get_boot_ns();
	w.tid = (__u32)bpf_get_current_pid_tgid();
	bpf_for_each_map_elem(&pf_kf_held, pf_kf_walk_cb, &w, 0);
	if (w.removed)
		__sync_fetch_and_add(&bk->held, -(__s64)w.removed);
	for (i = 0; i < 64 && i < w.removed; i++)
		pf_kf_count(mode == PF_KF_WALK_FLUSH ? PF_KF_ST_FLUSHED : PF_KF_ST_DISCARDED);
	return w.removed;
}

/* Holds the open record being submitted (len bytes in aux) under (current files, fd): 1 when held, 0
 * when it must be sent (too long, the key's slots all taken, a table shared by processes). A
 * stale entry of that key (an fd closed unseen) is replaced, never doubled. flags_off: where the
 * flags are, | PF_KF_OPEN_FILL for an openat record whose dev and ino are read when it is sent
 * (pf_kf_fill). */
__noinline int pf_kf_hold(struct pf_aux *aux, __u32 len, __s64 fd, __u32 flags, __u32 flags_off)
{
	struct pf_kf_bucket *bk;
	struct pf_kf_slot *s;
	struct pf_kf_rec *rec;
	__u32 home, i, idx = PF_KF_HELD_MAX, free_idx = PF_KF_HELD_MAX;
	__u64 v, b = 0, free_v = 0, n;
	__u64 files;
	int stale = 0;

	if (!aux || len > PF_KF_REC_MAX || len < PYFALCO_EVT_HDR_SIZE || fd < 0)
		return 0;
	files = pf_kf_files_num(aux);
	bk = pf_kf_bucket_of(files);
	if (!bk || bk->nohold > 0)
		return 0;
	home = pf_kf_home(files, (__u64)fd);
#pragma unroll
	for (i = 0; i < PF_KF_PROBES; i++) {
		s = pf_kf_slot_at(home + i);
		if (!s)
			return 0;
		v = PF_READ_ONCE(s->state);
		if ((v & PF_KF_SLOT_STATE) == PF_KF_SLOT_HELD && PF_READ_ONCE(s->files) == files &&
		    PF_READ_ONCE(s->fd) == (__u64)fd) {
			/* an entry of that fd number is left from an fd closed unseen: this open replaces it */
			if (pf_kf_claim(s, &v, PF_KF_SLOT_BUSY, &b)) {
				idx = (home + i) & (PF_KF_HELD_MAX - 1);
				stale = 1;
				break;
			}
		} else if ((v & PF_KF_SLOT_STATE) == PF_KF_SLOT_FREE && free_idx == PF_KF_HELD_MAX) {
			free_idx = (home + i) & (PF_KF_HELD_MAX - 1);
			free_v = v;
		}
	}
	if (!stale) {
		if (free_idx >= PF_KF_HELD_MAX)
			return 0; /* the key's slots are all taken: send it */
		s = pf_kf_slot_at(free_idx);
		if (!s)
			return 0;
		b = pf_kf_next(free_v, PF_KF_SLOT_BUSY);
		if (__sync_val_compare_and_swap(&s->state, free_v, b) != free_v)
			return 0; /* taken meanwhile: send it */
		idx = free_idx;
		s->files = files;
		s->fd = (__u64)fd;
	}
	s = pf_kf_slot_at(idx);
	rec = bpf_map_lookup_elem(&pf_kf_held_recs, &idx);
	if (!s)
		return 0;
	if (!rec)
		goto fail;
	rec->len = len;
	rec->flags_off = flags_off & 0xffff;
	rec->fill = (flags_off & PF_KF_OPEN_FILL) ? 1 : 0;
	/* the record only: the rest of the slot is never read (rec->len bounds every use). n <=
	 * PF_KF_REC_MAX (checked above) again on the register itself: a bound the compiler checks
	 * on one copy while it passes a spilled one is lost to verifiers before 6.3 (6.1 refused) */
	n = len;
	asm volatile("if %[n] <= 512 goto +1; %[n] = 0" : [n] "+r"(n));
	_Static_assert(PF_KF_REC_MAX == 512, "the asm above bounds n by PF_KF_REC_MAX");
	if (n < PYFALCO_EVT_HDR_SIZE || bpf_probe_read_kernel(rec->data, n, aux->data))
		goto fail;
	/* pf_submit sets the length: the header in aux has the previous record's */
	((struct pyfalco_evt_hdr *)rec->data)->len = len;
	/* counted before it is visible: a reader that finds it also finds held > 0 */
	if (!stale)
		__sync_fetch_and_add(&bk->held, 1);
	/* O_CLOEXEC: marked from the start (an exec forgets it) */
	__sync_lock_test_and_set(&s->state, (b & ~(PF_KF_SLOT_GEN - 1)) | PF_KF_SLOT_HELD |
						     ((flags & PPM_O_CLOEXEC) ? PF_KF_SLOT_CLOEXEC : 0));
	return 1;
fail:
	if (stale)
		__sync_fetch_and_add(&bk->held, -1); /* the stale entry is gone too */
	pf_kf_free(s, b);
	return 0;
}

#define PF_KF_OPEN_LAYOUT(nparams, name_idx, name_off) ((nparams) | ((name_idx) << 8) | ((name_off) << 16))

/*
 * 1: drop this open record (layout: PF_KF_OPEN_LAYOUT(number of parameters, index of the name,
 * offset of the name in the payload): fd first, the flags right after the name; len: the
 * record's length). Dropped means held (pf_kf_hold). file_key/inode: the filler's pf_ctx
 * (file_key - 1 is the fd whose inode that is), so that the directory check reads nothing
 * again. A global function: the verifier checks it once, not in every filler.
 */
__noinline int pf_kf_open(struct pf_aux *aux, __u32 layout, __u32 len, __u64 file_key, __u64 inode)
{
	struct pf_ctx c = {};
	__u64 base, at;
	__s64 fd;
	__u32 n, flags, flags_off;
	__u32 nparams = layout & 0xff, name_idx = (layout >> 8) & 0xff, name_off = (layout >> 16) & 0xff;

	if (!aux)
		return 0;
	/* masks, not range checks: the verifier must see the bounds on the registers used */
	base = (PYFALCO_EVT_HDR_SIZE + 2 * (__u64)nparams) & 63;
	at = (PYFALCO_EVT_HDR_SIZE + 2 * (__u64)name_idx) & 63;
	barrier_var(at);
	n = *(__u16 *)&aux->data[at];
	barrier_var(base);
	fd = *(__s64 *)&aux->data[base];
	at = base + (name_off & 31) + n;
	barrier_var(at);
	at &= PF_AUX_MASK;
	flags = *(__u32 *)&aux->data[at];
	flags_off = (__u32)at;
	if (flags & pf_kf_flags_any)
		goto send;
	if (fd >= 0) {
		struct inode *ino = NULL;

		if (inode && file_key == (__u64)fd + 1) {
			ino = (struct inode *)inode;
		} else {
			struct file *f;

			c.task = bpf_get_current_task_btf();
			f = pf_fd_file(&c, fd);
			if (f)
				ino = BPF_CORE_READ(f, f_inode);
		}
		if (ino && (BPF_CORE_READ(ino, i_mode) & PF_S_IFMT) == PF_S_IFDIR)
			goto send;
	}
	at = base + name_off;
	barrier_var(at);
	at &= PF_AUX_MASK;
	/* n counts the NUL */
	if (n == 0 || pf_kf_path_wanted(&aux->data[at], n - 1, flags))
		goto send;
#ifdef PF_ABLATE_NOHOLD
	/* diagnostic build (driver/CMakeLists.txt): dropped without holding (wrong, measures it).
	 * The hold stays reachable to the compiler (pf_boot_time_ns is never 1): an argument it
	 * no longer used would be passed as garbage, which the verifier refuses. */
	if (fd >= 0 && pf_boot_time_ns == 1) {
#else
	if (fd >= 0) {
#endif
		if (!pf_kf_hold(aux, len, fd, flags, flags_off | (layout & PF_KF_OPEN_FILL))) {
			pf_kf_count(PF_KF_ST_SENT_FULL);
			goto send;
		}
	}
	/* a failed open (fd < 0) makes no fd: nothing to hold */
	pf_kf_count(PF_KF_ST_HELD);
	return 1;
send:
	/* this fd number is user space's again, whatever a held open of it was */
	pf_kf_discard(pf_kf_files_num(aux), fd);
	return 0;
}

/* 1: drop this close record (res, fd): its fd's open is held (and forgotten now). When a rule
 * wants closes, the close is sent and pf_kf_uses sends the held open just before it. */
__noinline int pf_kf_close(struct pf_aux *aux)
{
	__s64 v;

	if (!aux || !(pf_kf_on & PF_KF_CLOSE))
		return 0;
	v = *(__s64 *)&aux->data[PYFALCO_EVT_HDR_SIZE + 2 * 2 + 8];
	if (v < 0)
		return 0; /* close(-1) and the like: no fd, nothing to look up */
#ifdef PF_ABLATE_NOHOLD
	pf_kf_count(PF_KF_ST_CLOSES); /* diagnostic build: every close of an fd is dropped */
	return 1;
#endif
	if (!pf_kf_discard(pf_kf_files_num(aux), v))
		return 0;
	pf_kf_count(PF_KF_ST_CLOSES);
	return 1;
}

/* A sent event created fds: they are user space's now (a held open of that number is of an fd
 * closed without close(2): dup2 over it, close_range, exec, a files_struct reused). */
__noinline int pf_kf_forget(struct pf_aux *aux, __u32 how)
{
	__u64 base, files;
	__s64 v;
	int i;

	if (!aux)
		return 0;
	base = (PYFALCO_EVT_HDR_SIZE + 2 * (__u64)((struct pyfalco_evt_hdr *)aux->data)->nparams) & 127;
	files = pf_kf_files();
	for (i = 0; i < 3; i++) {
		if (!(how & (i == 0 ? PF_KF_MKFD_RET : PF_KF_MKFD_PARAMS)))
			continue;
		v = *(__s64 *)&aux->data[(base + 8 * i) & 255];
		if (pf_kf_discard(files, v))
			pf_kf_count(PF_KF_ST_DISCARDED);
	}
	return 0;
}

/* The event being submitted reads the fds of the parameters in mask (pf_kf_uses): send their
 * held opens first. */
__noinline int pf_kf_uses_fds(struct pf_aux *aux, __u32 mask)
{
	struct pf_kf_bucket *bk;
	__u64 files, off, ts;
	__u32 i, np, plen;

	if (!aux)
		return 0;
	files = pf_kf_files();
	bk = pf_kf_bucket_of(files);
	if (!bk || bk->held <= 0)
		return 0;
	ts = ((struct pyfalco_evt_hdr *)aux->data)->ts;
	np = ((struct pyfalco_evt_hdr *)aux->data)->nparams;
	off = PYFALCO_EVT_HDR_SIZE + 2 * (__u64)(np & (PF_MAX_PARAMS - 1));
	for (i = 0; i < 16; i++) {
		if (i >= np)
			break;
		plen = *(__u16 *)&aux->data[PYFALCO_EVT_HDR_SIZE + 2 * i];
		if ((mask & (1u << i)) && plen == 8) {
			__s64 fd = *(__s64 *)&aux->data[off & PF_AUX_MASK];

			if (fd >= 0)
				pf_kf_release(files, fd, ts);
		}
		off += plen;
	}
	return 0;
}

/* Marks a table as shared by processes (once: its bucket then holds nothing new). */
PF_INLINE void pf_kf_share(__u64 files)
{
	struct pf_kf_fstate z = {.nohold = 1}, *st = bpf_map_lookup_elem(&pf_kf_tables, &files);
	struct pf_kf_bucket *bk = pf_kf_bucket_of(files);

	if (!bk)
		return;
	if (st) {
		if (__sync_lock_test_and_set(&st->nohold, 1) == 0)
			__sync_fetch_and_add(&bk->nohold, 1);
	} else if (bpf_map_update_elem(&pf_kf_tables, &files, &z, BPF_NOEXIST) == 0) {
		__sync_fetch_and_add(&bk->nohold, 1);
	}
}

/* A table is gone (its last user exited, or its address is reused): out of pf_kf_tables and its
 * bucket's nohold count (whoever deletes the entry counts it out). */
PF_INLINE void pf_kf_unshare(__u64 files)
{
	struct pf_kf_fstate *st = bpf_map_lookup_elem(&pf_kf_tables, &files);
	struct pf_kf_bucket *bk;
	__u64 nohold;

	if (!st)
		return;
	nohold = st->nohold;
	if (bpf_map_delete_elem(&pf_kf_tables, &files) == 0 && nohold) {
		bk = pf_kf_bucket_of(files);
		if (bk)
			__sync_fetch_and_add(&bk->nohold, -1);
	}
}

/* 1 when a clone/fork tracepoint's parent/child pair needs the parent's held opens sent. */
PF_INLINE void pf_kf_fork(struct task_struct *parent, struct task_struct *child)
{
	__u64 pf = (__u64)BPF_CORE_READ(parent, files), cf = (__u64)BPF_CORE_READ(child, files);

	if (!pf || !cf)
		return;
	if (pf == cf) {
		/* CLONE_FILES: one table. Threads need nothing. Processes sharing it: user space shares
		 * it too, but an exec (or close_range with CLOSE_RANGE_UNSHARE) in one of them would copy
		 * it out of reach of the held opens: send them, and hold nothing there from now on. */
		if (BPF_CORE_READ(parent, tgid) == BPF_CORE_READ(child, tgid))
			return;
		pf_kf_share(pf);
		pf_kf_walk(pf, PF_KF_WALK_FLUSH, 0, 0);
		return;
	}
	/* a new table at an address a dead one had: what was held there is stale (the walk looks
	 * at the slots only when the address's bucket holds something) */
	pf_kf_walk(cf, PF_KF_WALK_PURGE, 0, 0);
	pf_kf_unshare(cf);
	/* a copy of the parent's table: user space copies its own table at the clone's exit (the
	 * parent's or the child's, whichever comes first), and both come after this tracepoint (the
	 * child has not run yet): send the held opens now, so that the copy has them */
	pf_kf_walk(pf, PF_KF_WALK_FLUSH, 0, 0);
}

/* A thread exits (sched_process_exit, before exit_files): when it is its table's last user (or
 * the last thread of its process, for a table no other process shares), forget the table. */
PF_INLINE void pf_kf_exit(struct task_struct *t)
{
	__u64 files = (__u64)BPF_CORE_READ(t, files);
	struct pf_kf_fstate *st;
	struct pf_kf_bucket *bk;
	int users, live;

	if (!files)
		return;
	st = bpf_map_lookup_elem(&pf_kf_tables, &files);
	bk = pf_kf_bucket_of(files);
	if (!st && (!bk || bk->held <= 0))
		return;
	users = BPF_CORE_READ(t, files, count.counter);
	live = BPF_CORE_READ(t, signal, live.counter);
	if (users > 1 && (live > 0 || (st && st->nohold)))
		return;
	pf_kf_walk(files, PF_KF_WALK_PURGE, 0, 0);
	pf_kf_unshare(files);
}

#define PF_CLOSE_RANGE_CLOEXEC (1u << 2)

/* What a sent event does to the held opens besides using fds: an exec closes the O_CLOEXEC ones,
 * close_range closes or marks a range (user space does the same at the same event). */
__noinline int pf_kf_state(struct pf_aux *aux, __u32 type)
{
	__u64 base, files;
	__s64 res;

	if (!aux)
		return 0;
	base = (PYFALCO_EVT_HDR_SIZE + 2 * (__u64)((struct pyfalco_evt_hdr *)aux->data)->nparams) & 127;
	res = *(__s64 *)&aux->data[base];
	if (res != 0)
		return 0;
	files = pf_kf_files();
	if (type == PPME_SYSCALL_CLOSE_RANGE_X) {
		__u32 first = *(__u32 *)&aux->data[(base + 8) & 255];
		__u32 last = *(__u32 *)&aux->data[(base + 12) & 255];
		__u32 fl = *(__u32 *)&aux->data[(base + 16) & 255];

		pf_kf_walk(files, (fl & PF_CLOSE_RANGE_CLOEXEC) ? PF_KF_WALK_RANGE_CLOEXEC : PF_KF_WALK_RANGE_CLOSE,
			   first, last);
	} else {
		pf_kf_walk(files, PF_KF_WALK_EXEC, 0, 0);
	}
	return 0;
}

/* The event types whose sent record changes the held opens besides their fds (pf_kf_state). */
#define PF_KF_STATE_TYPE(type)                                                                        \
	((type) == PPME_SYSCALL_EXECVE_19_X || (type) == PPME_SYSCALL_EXECVEAT_X ||                   \
	 (type) == PPME_SYSCALL_CLOSE_RANGE_X)

/* What a sent record of this type (aux's) does to the held opens before it reaches the ring: the
 * held opens of the fds it uses are sent, those of the fds it makes anew are forgotten, an exec or
 * close_range changes the table (pf_kf_send inline, pf_kf_send_rest after the tail call). */
PF_INLINE void pf_kf_held_work(struct pf_aux *aux, __u16 type)
{
	__u16 uses = pf_kf_uses[type & (PF_KF_CODES - 1)];
	__u8 mkfd = pf_kf_mkfd[type & (PF_KF_CODES - 1)];

	if (uses)
		pf_kf_uses_fds(aux, uses);
	if (mkfd)
		pf_kf_forget(aux, mkfd);
	if (PF_KF_STATE_TYPE(type))
		pf_kf_state(aux, type);
}

/* A record the filter sends (pf_kf_armed): what it does to the held opens first, then the ring. */
PF_INLINE int pf_kf_send(struct pf_ctx *c, __u16 type)
{
	/* stamped now (a dropped record needs no time; a held one gets the time of the event it is
	 * sent before) */
	pf_stamp(c);
	pf_kf_held_work(c->aux, type);
	return pf_submit_stamped(c);
}

/*
 * What a filler knows at compile time (PF_FILLER in driver/pyfalco.bpf.c): its event code (low 16
 * bits) and these. The USES and MKFD bits come from fillers_list.h (PF_KF_USES_<syscall>,
 * PF_KF_MKFD_<syscall>: the event has parameters pf_kf_uses / pf_kf_mkfd may name, by the rules
 * user space fills those tables with); without them the filler never looks the tables up.
 */
#define PF_KF_HOW_USES (1u << 16)
#define PF_KF_HOW_MKFD (1u << 17)
#define PF_KF_HOW_TAIL (1u << 18) /* a tail-called filler: the held-open work is pf_kf_send_tail's */
#define PF_KF_HOW(sc, code)                                                                           \
	((code) | (PF_KF_USES_##sc ? PF_KF_HOW_USES : 0) | (PF_KF_MKFD_##sc ? PF_KF_HOW_MKFD : 0) |   \
	 (PF_IS_INLINED(sc) ? 0 : PF_KF_HOW_TAIL))

/*
 * pf_kf_send for the tail-called fillers. pf_kf_send's work on the held opens (pf_kf_uses_fds,
 * pf_kf_forget, pf_kf_state: global functions, which the verifier checks again in every program
 * that calls them, ~5k instructions that were most of each filler's load time) is done by one
 * program, pf_kf_send_tail, tail-called with the stamped record in this CPU's scratch slot (its
 * length in the header): checked once at load. It is called only when it has something to do:
 * the event's type names fds or state changes (the same table lookups as pf_kf_send) and the
 * current fd table holds opens (each of those functions does nothing otherwise: the same bucket
 * check is their first). A tail call that fails sends nothing (counted as a driver bug): the
 * record must not reach user space before the held opens it uses. engine_bpf.c's load fails when
 * the program cannot be installed, and the chain is two deep (dispatcher, filler, this).
 */
PF_INLINE int pf_kf_send_tailed(struct pf_ctx *c, void *prog_ctx, const __u32 how)
{
	__u16 type = how & 0xffff;
	struct pf_kf_bucket *bk;
	int work = 0;

	pf_stamp(c);
	if ((how & PF_KF_HOW_USES) && pf_kf_uses[type & (PF_KF_CODES - 1)])
		work = 1;
	if ((how & PF_KF_HOW_MKFD) && pf_kf_mkfd[type & (PF_KF_CODES - 1)])
		work = 1;
	if (PF_KF_STATE_TYPE(type))
		work = 1;
	if (work) {
		bk = pf_kf_bucket_of(pf_kf_files());
		if (bk && bk->held > 0) {
			((struct pyfalco_evt_hdr *)c->aux->data)->len = c->pos;
			bpf_tail_call(prog_ctx, &pf_kf_tail_table, 0);
			pf_count(PF_COUNT_BUG);
			return 0;
		}
	}
	return pf_submit_stamped(c);
}

/* pf_kf_send_tail's body (driver/pyfalco.bpf.c): pf_kf_send's work on the record a filler left
 * in this CPU's scratch slot (stamped, its length in the header), then the ring. */
PF_INLINE int pf_kf_send_rest(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct pyfalco_evt_hdr *hdr;
	struct pf_ctx c = {};

	c.aux = bpf_map_lookup_elem(&pf_aux_maps, &cpu);
	if (!c.aux)
		return 0;
	c.cpu = cpu;
	hdr = (struct pyfalco_evt_hdr *)c.aux->data;
	c.pos = hdr->len;
	pf_kf_held_work(c.aux, hdr->type);
	return pf_submit_stamped(&c);
}

/* pf_submit with the filter in front: the fillers of driver/pyfalco.bpf.c call this one, with
 * their PF_KF_HOW (a constant: the compiler keeps only the branches of the filler's own type, and
 * a filler calls no global function it cannot need). prog_ctx: the program's context, for the
 * tail call. */
PF_INLINE int pf_kf_submit(struct pf_ctx *c, void *prog_ctx, const __u32 how)
{
	__u16 type = how & 0xffff;
	__u32 on = pf_kf_on;

	if (pf_kf_armed) {
		__u32 len = c->pos;
		int drop = 0;

		/* openat's record is built and filtered by pf_run_openat_kf (pyfalco.bpf.c), never here */
		if (type == PPME_SYSCALL_OPEN_X && (on & PF_KF_OPEN))
			drop = pf_kf_open(c->aux, PF_KF_OPEN_LAYOUT(6, 1, 8), len, c->file_key, (__u64)c->inode);
		else if (type == PPME_SYSCALL_OPENAT2_X && (on & PF_KF_OPENAT2))
			drop = pf_kf_open(c->aux, PF_KF_OPEN_LAYOUT(8, 2, 16), len, c->file_key, (__u64)c->inode);
		else if (type == PPME_SYSCALL_CLOSE_X)
			drop = pf_kf_close(c->aux);
		if (drop)
			return 0;
		if (how & PF_KF_HOW_TAIL)
			return pf_kf_send_tailed(c, prog_ctx, how);
		return pf_kf_send(c, type);
	}
	return pf_submit(c);
}

#endif
