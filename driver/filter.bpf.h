/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Kernel-side filter compiled from the rules (pyfalco/kfilter.py decides, libpyfalco kfilter.c
 * writes the globals and maps of driver/maps.bpf.h). Falco's drivers filter by syscall only; this
 * one also drops, after the filler built the record and before it reaches the ring:
 *
 *   - an open/openat/openat2 that no selected rule can match and whose fd nothing reads later
 *     (user space proved that from the rules: pf_kf_on has the type's bit only then). An open
 *     is sent whenever one of these holds (each is a reason the rules or the state need it):
 *       * its PPM flags share a bit with pf_kf_flags_any (O_DIRECTORY always: user space names
 *         a directory fd by its path, for *at() calls and fchdir);
 *       * the fd it returned is a directory (same reason, opened without O_DIRECTORY);
 *       * the path is not one user space keeps as given, or is one a traversal rule looks for:
 *         relative, with "//", "/." (".", ".." and every hidden name), "..", a trailing "/", a
 *         byte >= 0x80, empty, or too long;
 *       * its whole path, its directory, its file name or one of its prefixes is a pattern of
 *         pf_kf_paths whose flag mask matches (hash hits; a collision only sends more).
 *   - a close of an fd whose open was dropped (pf_kf_fds), when no rule wants close events. An
 *     fd number leaves pf_kf_fds when its close is seen, and when a sent event creates an fd of
 *     that number (pf_kf_mkfd: the fd went away without close(2), by dup2, close_range, exec).
 *
 * The record is read back from the scratch slot, so the filter sees exactly what user space
 * would have seen.
 */
#ifndef PYFALCO_FILTER_BPF_H
#define PYFALCO_FILTER_BPF_H

#include "helpers.bpf.h"

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

/* pf_kf_mkfd values */
#define PF_KF_MKFD_RET 1    /* the return value is a new fd */
#define PF_KF_MKFD_PARAMS 2 /* parameters 2 and 3 are (pipe, socketpair) */

#define PF_FNV_BASIS 0xcbf29ce484222325ULL
#define PF_FNV_PRIME 0x100000001b3ULL

#define PF_S_IFMT 0170000
#define PF_S_IFDIR 0040000

struct pf_kf_scan {
	__u8 *p; /* the path's first byte in the scratch slot */
	__u64 h; /* FNV-1a of p[0:i] */
	__u64 hbase; /* FNV-1a of the bytes after the last '/' */
	__u64 hdir; /* FNV-1a of p[0:last '/'] */
	__u32 dirlen;
	__u32 baselen;
	__u32 n; /* path length, NUL excluded */
	__u32 flags; /* the open's PPM flags */
	__u32 keep;
};

PF_INLINE int pf_kf_hit(__u64 h, __u32 len, __u32 kind, __u32 flags)
{
	struct pf_kf_key k = {.hash = h, .len = len, .kind = kind};
	__u32 *m = bpf_map_lookup_elem(&pf_kf_paths, &k);

	return m && ((*m & PF_KF_ANY) || (*m & flags));
}

/*
 * One byte of the scan (the bpf_loop callback). The byte before it is read from the path again,
 * not carried in *s: verifiers before 6.7 check a callback once, with *s as the caller left it,
 * so a branch on a value the callback itself stores there (prev was 0 on that one pass) is seen
 * as never taken and removed as dead code. Kernel 6.1 dropped every path with "//" that way.
 * Branches here may only depend on i, the path's bytes and values no iteration changes.
 */
static long pf_kf_step(__u32 i, struct pf_kf_scan *s)
{
	__u32 c, prev, at;

	if (i >= s->n)
		return 1;
	c = s->p[i & (PYFALCO_MAX_PATH - 1)];
	prev = i ? s->p[(i - 1) & (PYFALCO_MAX_PATH - 1)] : 0;
	if (c == '/') {
		if (prev == '/') {
			s->keep = 1;
			return 1;
		}
		s->hdir = s->h;
		s->dirlen = i;
		s->hbase = PF_FNV_BASIS;
		s->baselen = 0;
	} else {
		if ((c == '.' && (prev == '/' || prev == '.')) || c >= 0x80) {
			s->keep = 1;
			return 1;
		}
		s->hbase = (s->hbase ^ c) * PF_FNV_PRIME;
		s->baselen++;
	}
	s->h = (s->h ^ c) * PF_FNV_PRIME;
	at = (i + 1) & (PYFALCO_MAX_PATH - 1);
	if ((pf_kf_prefix_lens[at >> 3] & (1u << (at & 7))) && pf_kf_hit(s->h, i + 1, PF_KF_PREFIX, s->flags)) {
		s->keep = 1;
		return 1;
	}
	return 0;
}

/* 1 when some rule may match an open of this path with these flags (see the top comment). */
PF_INLINE int pf_kf_path_wanted(__u8 *p, __u32 n, __u32 flags)
{
	struct pf_kf_scan s = {};

	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_loop))
		return 1; /* before 5.17: no bounded loop helper, send everything */
	if (n < 2 || n >= PYFALCO_MAX_PATH || p[0] != '/')
		return 1;
	s.p = p;
	s.n = n;
	s.flags = flags;
	s.h = PF_FNV_BASIS;
	s.hbase = PF_FNV_BASIS;
	s.hdir = PF_FNV_BASIS;
	bpf_loop(PYFALCO_MAX_PATH, pf_kf_step, &s, 0);
	if (s.keep || p[(n - 1) & (PYFALCO_MAX_PATH - 1)] == '/') /* a trailing "/" */
		return 1;
	if (pf_kf_hit(s.h, n, PF_KF_EXACT, flags) || pf_kf_hit(s.hbase, s.baselen, PF_KF_BASE, flags))
		return 1;
	if (s.dirlen == 0) /* "/name": the directory is "/" */
		return pf_kf_hit(('/' ^ PF_FNV_BASIS) * PF_FNV_PRIME, 1, PF_KF_DIR, flags);
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

/*
 * 1: drop this open record (parameters: fd first, the name at name_off of the payload, the flags
 * right after the name). A global function: the verifier checks it once, not in every filler.
 */
__noinline int pf_kf_open(struct pf_aux *aux, __u32 nparams, __u32 name_idx, __u32 name_off)
{
	struct pf_ctx c = {};
	__u64 base, at;
	__s64 fd;
	__u32 n, flags;
	struct pf_kf_fd k;
	__u8 one = 1;

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
	if (flags & pf_kf_flags_any)
		goto send;
	if (fd >= 0) {
		struct file *f;

		c.task = bpf_get_current_task_btf();
		f = pf_fd_file(&c, fd);
		if (f && (BPF_CORE_READ(f, f_inode, i_mode) & PF_S_IFMT) == PF_S_IFDIR)
			goto send;
	}
	at = base + name_off;
	barrier_var(at);
	at &= PF_AUX_MASK;
	/* n counts the NUL */
	if (n == 0 || pf_kf_path_wanted(&aux->data[at], n - 1, flags))
		goto send;
	if (fd >= 0) {
		k.files = pf_kf_files();
		k.fd = (__u64)fd;
		bpf_map_update_elem(&pf_kf_fds, &k, &one, BPF_ANY);
	}
	pf_kf_count(0);
	return 1;
send:
	if (fd >= 0) {
		/* this fd number is user space's again, whatever an earlier dropped open left */
		k.files = pf_kf_files();
		k.fd = (__u64)fd;
		bpf_map_delete_elem(&pf_kf_fds, &k);
	}
	return 0;
}

/* 1: drop this close record (res, fd): its fd's open was dropped. */
__noinline int pf_kf_close(struct pf_aux *aux)
{
	struct pf_kf_fd k;
	__s64 v;

	if (!aux)
		return 0;
	v = *(__s64 *)&aux->data[PYFALCO_EVT_HDR_SIZE + 2 * 2 + 8];
	if (v < 0)
		return 0; /* close(-1) and the like: no fd, nothing to look up */
	k.files = pf_kf_files();
	k.fd = (__u64)v;
	if (!bpf_map_lookup_elem(&pf_kf_fds, &k))
		return 0;
	bpf_map_delete_elem(&pf_kf_fds, &k);
	if (!(pf_kf_on & PF_KF_CLOSE))
		return 0;
	pf_kf_count(1);
	return 1;
}

/* A sent event created fds: they are user space's now (pf_kf_fds may hold their numbers from an
 * fd closed without close(2): dup2 over it, close_range, exec, a files_struct reused). */
__noinline int pf_kf_forget(struct pf_aux *aux, __u32 how)
{
	struct pf_kf_fd k;
	__u64 base;
	__s64 v;
	int i;

	if (!aux)
		return 0;
	base = (PYFALCO_EVT_HDR_SIZE + 2 * (__u64)((struct pyfalco_evt_hdr *)aux->data)->nparams) & 127;
	k.files = pf_kf_files();
	for (i = 0; i < 3; i++) {
		if (!(how & (i == 0 ? PF_KF_MKFD_RET : PF_KF_MKFD_PARAMS)))
			continue;
		v = *(__s64 *)&aux->data[(base + 8 * i) & 255];
		if (v >= 0) {
			k.fd = (__u64)v;
			bpf_map_delete_elem(&pf_kf_fds, &k);
		}
	}
	return 0;
}

/* pf_submit with the filter in front: the fillers of driver/pyfalco.bpf.c call this one. */
PF_INLINE int pf_kf_submit(struct pf_ctx *c)
{
	__u32 on = pf_kf_on;

	if (on) {
		__u16 type = ((struct pyfalco_evt_hdr *)c->aux->data)->type;
		int drop = 0;

		if (type == PPME_SYSCALL_OPENAT_2_X && (on & PF_KF_OPENAT))
			drop = pf_kf_open(c->aux, 7, 2, 16);
		else if (type == PPME_SYSCALL_OPEN_X && (on & PF_KF_OPEN))
			drop = pf_kf_open(c->aux, 6, 1, 8);
		else if (type == PPME_SYSCALL_OPENAT2_X && (on & PF_KF_OPENAT2))
			drop = pf_kf_open(c->aux, 8, 2, 16);
		else if (type == PPME_SYSCALL_CLOSE_X)
			drop = pf_kf_close(c->aux);
		if (drop)
			return 0;
		if (pf_kf_mkfd[type & (PF_KF_CODES - 1)])
			pf_kf_forget(c->aux, pf_kf_mkfd[type & (PF_KF_CODES - 1)]);
	}
	return pf_submit(c);
}

#endif
