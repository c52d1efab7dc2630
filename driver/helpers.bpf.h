/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * Helpers of the eBPF driver, in three layers (each uses only the ones above it):
 *   1. event building: pf_begin, pf_push_* (write one parameter), pf_submit
 *   2. extraction: syscall arguments, fds -> struct file, sockets, paths, task fields
 *   3. the pf_* names the generated fillers (driver/abi/fillers_gen.h) call
 * Everything is __always_inline: one BPF program per filler, no BPF-to-BPF calls.
 */
#ifndef PYFALCO_HELPERS_BPF_H
#define PYFALCO_HELPERS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "maps.bpf.h"
#include "pyfalco_abi.h"
#include "pyfalco_events.h"

#define PF_CONVERT_INLINE static __always_inline
#include "pf_convert.h"

#define PF_INLINE static __always_inline
#define PF_MAX_PARAMS 32
#define PF_NAME_MAX 256		/* one path component */
#define PF_PATH_DEPTH 16	/* components walked for a path */
#define PF_CGROUP_DEPTH 16
#define PF_CGROUP_SUBSYS 14

/* Older kernels' names for fields renamed since (CO-RE flavours). */
struct kernfs_node___old {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

/* Up to 6.1, mm_struct.rss_stat is a struct of atomic counters; 6.2 made it an array of
 * percpu_counter. The type name only exists in the older kernels. */
struct mm_rss_stat___v61 {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));

struct mm_struct___v61 {
	struct mm_rss_stat___v61 rss_stat;
} __attribute__((preserve_access_index));

/* Inode timestamps: timespec64 i_ctime/i_mtime up to 6.5, __i_ctime from 6.6, __i_mtime from
 * 6.7, then i_{c,m}time_sec/_nsec from 6.11 (the vmlinux.h layout). */
struct inode___v65 {
	struct timespec64 i_ctime;
	struct timespec64 i_mtime;
} __attribute__((preserve_access_index));

struct inode___v66 {
	struct timespec64 __i_ctime;
	struct timespec64 i_mtime;
} __attribute__((preserve_access_index));

struct inode___v67 {
	struct timespec64 __i_ctime;
	struct timespec64 __i_mtime;
} __attribute__((preserve_access_index));

struct pf_ctx {
	struct pf_aux *aux;
	struct pt_regs *regs;
	struct task_struct *task;
	__u32 pos;     /* next payload byte */
	__u32 idx;     /* next parameter */
	__u32 nparams;
	__u32 exe_len; /* length of the exe parameter, to skip argv[0] in args */
	__u32 cpu;
	/* pf_fd_file's last answer (openat asks for the same fd's file three times): file_key is
	 * fd + 1, 0 when nothing is kept (a zeroed pf_ctx keeps nothing) */
	__u64 file_key;
	struct file *file;
	struct inode *inode; /* file's f_inode, read once (dev and ino both start there) */
};

/*=== 1. EVENT BUILDING ===*/

/* Kernel pointers kept in pf_ctx, taken out before a CO-RE access (pf_ctx itself is not a
 * kernel type and must stay out of BPF_CORE_READ's access chain). */
PF_INLINE struct task_struct *pf_task(struct pf_ctx *c)
{
	return c->task;
}

PF_INLINE struct pt_regs *pf_regs(struct pf_ctx *c)
{
	return c->regs;
}

PF_INLINE void pf_count(int which)
{
	__u32 zero = 0;
	struct pyfalco_counters *c = bpf_map_lookup_elem(&pf_counters, &zero);

	if (!c)
		return;
	switch (which) {
	case 0:
		c->n_evts++;
		break;
	case 1:
		c->n_drops_buffer++;
		break;
	case 2:
		c->n_drops_max_event_size++;
		break;
	case 3:
		c->n_drops_page_faults++;
		break;
	default:
		c->n_drops_bug++;
		break;
	}
}
#define PF_COUNT_EVT 0
#define PF_COUNT_DROP_BUFFER 1
#define PF_COUNT_DROP_SIZE 2
#define PF_COUNT_PAGE_FAULT 3
#define PF_COUNT_BUG 4

PF_INLINE int pf_begin(struct pf_ctx *c, struct pt_regs *regs, __u16 type, __u32 nparams)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct pyfalco_evt_hdr *hdr;

	c->aux = bpf_map_lookup_elem(&pf_aux_maps, &cpu);
	if (!c->aux)
		return -1;
	c->cpu = cpu;
	c->regs = regs;
	c->task = bpf_get_current_task_btf();
	c->idx = 0;
	c->nparams = nparams;
	c->exe_len = 0;
	c->file_key = 0;
	c->file = NULL;
	c->inode = NULL;
	c->pos = PYFALCO_EVT_HDR_SIZE + 2 * nparams;
	hdr = (struct pyfalco_evt_hdr *)c->aux->data;
	/* the timestamp is taken when the record is sent (pf_submit): a record the kernel filter
	 * drops never pays for it (bpf_ktime_get_boot_ns reads the TSC: ~20% of a sent openat's
	 * driver cost on a VM) */
	/* the current task's pid is bpf_get_current_pid_tgid()'s low half, read without a call */
	hdr->tid = (__u32)c->task->pid;
	hdr->type = type;
	hdr->nparams = nparams;
	return 0;
}

PF_INLINE void *pf_payload(struct pf_ctx *c)
{
	__u64 at = c->pos;

	/* the compiler may fold the mask when it believes it knows pos: keep it for the verifier */
	barrier_var(at);
	at &= PF_AUX_MASK;
	return &c->aux->data[at];
}

/* Address of byte off of the current parameter, provably inside the scratch slot whatever the
 * compiler does with the arithmetic (writes from there are at most PF_AUX_MAX_WRITE bytes). */
PF_INLINE __u8 *pf_at(struct pf_ctx *c, __u64 off)
{
	__u64 at = c->pos + off;

	barrier_var(at);
	at &= PF_AUX_MASK;
	return &c->aux->data[at];
}

/* Records the length of the current parameter and moves on. */
PF_INLINE void pf_param_done(struct pf_ctx *c, __u32 len)
{
	__u32 i = c->idx;

	if (i >= PF_MAX_PARAMS)
		return;
	*(__u16 *)&c->aux->data[PYFALCO_EVT_HDR_SIZE + 2 * i] = (__u16)len;
	c->idx = i + 1;
	c->pos += len;
}

PF_INLINE void pf_push_int(struct pf_ctx *c, __u64 v, __u32 size)
{
	void *p = pf_payload(c);

	switch (size) {
	case 1:
		*(__u8 *)p = (__u8)v;
		break;
	case 2:
		*(__u16 *)p = (__u16)v;
		break;
	case 4:
		*(__u32 *)p = (__u32)v;
		break;
	default:
		*(__u64 *)p = v;
		size = 8;
		break;
	}
	pf_param_done(c, size);
}

PF_INLINE void pf_push_empty(struct pf_ctx *c)
{
	pf_param_done(c, 0);
}

/*
 * bpf_probe_read_user_str, with an empty string counted as 1 byte (its NUL) on every kernel:
 * up to 6.1 the helper returns 0 for "" (strncpy_from_user_nofault counted the NUL only for
 * non-empty strings), later kernels return 1.
 */
PF_INLINE long pf_probe_user_str(void *dst, __u32 size, const void *uptr)
{
	long n = bpf_probe_read_user_str(dst, size, uptr);

	if (n == 0) {
		*(__u8 *)dst = 0;
		n = 1;
	}
	return n;
}

/* A NUL-terminated user string (the NUL is counted, as in libs). */
PF_INLINE void pf_push_user_str(struct pf_ctx *c, unsigned long uptr)
{
	long n = 0;

	if (uptr) {
		n = pf_probe_user_str(pf_payload(c), PYFALCO_MAX_PATH, (const void *)uptr);
		if (n < 0) {
			pf_count(PF_COUNT_PAGE_FAULT);
			n = 0;
		}
	}
	pf_param_done(c, (__u32)n);
}

PF_INLINE void pf_push_user_str_if(struct pf_ctx *c, unsigned long uptr, int cond)
{
	pf_push_user_str(c, cond ? uptr : 0);
}

PF_INLINE void pf_push_kernel_str(struct pf_ctx *c, const void *kptr, __u32 max)
{
	long n = 0;

	if (kptr) {
		n = bpf_probe_read_kernel_str(pf_payload(c), max & (PF_AUX_MAX_WRITE - 1), kptr);
		if (n < 0)
			n = 0;
	}
	pf_param_done(c, (__u32)n);
}

/* A user buffer of len bytes, capped by the snaplen. */
PF_INLINE void pf_push_user_buf(struct pf_ctx *c, unsigned long uptr, long len)
{
	__u64 snap = pf_snaplen;
	__u64 n;

	if (!uptr || len <= 0) {
		pf_param_done(c, 0);
		return;
	}
	n = (__u64)len > snap ? snap : (__u64)len;
	/* clamp first, then mask for the verifier only: masking first wrapped a length of 32 KiB or
	 * more to its value modulo 32 KiB whenever the snaplen global exceeded the driver's maximum
	 * (it is only checked in user space): 32,770 bytes were captured as 2 */
	if (n > PYFALCO_MAX_SNAPLEN)
		n = PYFALCO_MAX_SNAPLEN;
	/* hide the bound from the compiler so the mask below stays on the register passed */
	barrier_var(n);
	n &= (2 * PYFALCO_MAX_SNAPLEN - 1);
	if (bpf_probe_read_user(pf_payload(c), n, (const void *)uptr)) {
		pf_count(PF_COUNT_PAGE_FAULT);
		n = 0;
	}
	pf_param_done(c, (__u32)n);
}

/* The record's timestamp: now, in ns since the epoch. One clock read per sent record. */
PF_INLINE void pf_stamp(struct pf_ctx *c)
{
	((struct pyfalco_evt_hdr *)c->aux->data)->ts = pf_boot_time_ns + bpf_ktime_get_boot_ns();
}

/* Writes the record (already stamped, pf_stamp) to this CPU's ring. */
PF_INLINE int pf_submit_stamped(struct pf_ctx *c)
{
	struct pyfalco_evt_hdr *hdr = (struct pyfalco_evt_hdr *)c->aux->data;
	__u64 len = c->pos;
	__u32 cpu, ring;
	void *rb;

	if (len > PYFALCO_MAX_EVENT_SIZE) {
		pf_count(PF_COUNT_DROP_SIZE);
		return 0;
	}
	hdr->len = (__u32)len;
	barrier_var(len);
	len &= (2 * PYFALCO_MAX_EVENT_SIZE - 1);
	if (len > PYFALCO_MAX_EVENT_SIZE)
		return 0;
	cpu = c->cpu;
	ring = pf_cpu_to_ring[cpu & (PYFALCO_MAX_CPUS - 1)];
	rb = bpf_map_lookup_elem(&pf_ringbufs, &ring);
	if (!rb) {
		pf_count(PF_COUNT_BUG);
		return 0;
	}
	/* No wakeup: user space polls (a wakeup per event triples the per-syscall cost). */
	if (bpf_ringbuf_output(rb, c->aux->data, len, BPF_RB_NO_WAKEUP))
		pf_count(PF_COUNT_DROP_BUFFER);
	else
		pf_count(PF_COUNT_EVT);
	return 0;
}

PF_INLINE int pf_submit(struct pf_ctx *c)
{
	pf_stamp(c);
	return pf_submit_stamped(c);
}

/*=== 2. EXTRACTION ===*/

/*
 * Direct (BTF) loads where the verifier knows the pointer's type: the tp_btf arguments and what
 * is reached from bpf_get_current_task_btf() through struct pointers. They are plain loads with
 * a fault fixup (a faulting one reads 0, as BPF_CORE_READ), where BPF_CORE_READ costs a
 * bpf_probe_read_kernel call per hop; the hot fillers (openat, close) did ~20 such calls.
 * Pointers read by a helper (an fd table slot) are plain numbers to the verifier and still go
 * through BPF_CORE_READ.
 */
PF_INLINE unsigned long pf_arg(struct pf_ctx *c, int i)
{
	struct pt_regs *r = c->regs;

	switch (i) {
	case 0:
		return r->di;
	case 1:
		return r->si;
	case 2:
		return r->dx;
	case 3:
		return r->r10;
	case 4:
		return r->r8;
	default:
		return r->r9;
	}
}

PF_INLINE struct file *pf_fd_file(struct pf_ctx *c, long fd)
{
	struct files_struct *files;
	struct fdtable *fdt;
	struct file **arr;
	struct file *f = NULL;

	if (fd < 0)
		return NULL;
	if (c->file_key == (__u64)fd + 1)
		return c->file;
	files = pf_task(c)->files;
	if (!files)
		return NULL;
	fdt = files->fdt;
	if (!fdt || fd >= fdt->max_fds)
		return NULL;
	arr = fdt->fd;
	bpf_probe_read_kernel(&f, sizeof(f), &arr[fd]);
	c->file_key = (__u64)fd + 1;
	c->file = f;
	c->inode = NULL;
	return f;
}

/* The inode of fd's file (NULL: no file), kept in pf_ctx with the file. */
PF_INLINE struct inode *pf_fd_inode(struct pf_ctx *c, long fd)
{
	struct file *f = pf_fd_file(c, fd);

	if (!f)
		return NULL;
	if (!c->inode)
		c->inode = BPF_CORE_READ(f, f_inode);
	return c->inode;
}

PF_INLINE __u32 pf_fd_dev(struct pf_ctx *c, long fd)
{
	struct inode *ino = pf_fd_inode(c, fd);

	if (!ino)
		return 0;
	return pf_encode_dev(BPF_CORE_READ(ino, i_sb, s_dev));
}

PF_INLINE __u64 pf_fd_ino(struct pf_ctx *c, long fd)
{
	struct inode *ino = pf_fd_inode(c, fd);

	return ino ? BPF_CORE_READ(ino, i_ino) : 0;
}

#define PF_FMODE_CREATED 0x100000

PF_INLINE __u32 pf_fd_created(struct pf_ctx *c, long fd)
{
	struct file *f = pf_fd_file(c, fd);

	if (!f)
		return 0;
	return (BPF_CORE_READ(f, f_mode) & PF_FMODE_CREATED) ? PPM_O_F_CREATED : 0;
}

/* struct open_how field i (0 flags, 1 mode, 2 resolve) of openat2. */
PF_INLINE __u64 pf_open_how(struct pf_ctx *c, unsigned long uptr, int i)
{
	__u64 v[3] = {0, 0, 0};

	if (uptr)
		bpf_probe_read_user(v, sizeof(v), (const void *)uptr);
	return i == 0 ? v[0] : (i == 1 ? v[1] : v[2]);
}

/* The flags of the clone-family syscall being exited. */
PF_INLINE __u32 pf_clone_flags_of(struct pf_ctx *c)
{
	long nr = BPF_CORE_READ(pf_regs(c), orig_ax);
	__u64 f = 0;

	switch (nr) {
	case 56: /* clone */
		f = pf_arg(c, 0);
		break;
	case 435: /* clone3: struct clone_args starts with u64 flags */
		bpf_probe_read_user(&f, sizeof(f), (const void *)pf_arg(c, 0));
		break;
	case 58: /* vfork */
		f = 0x4000 | 0x100;
		break;
	default: /* fork */
		f = 0;
	}
	return pf_clone_flags(f);
}

/* The i-th int of a user int array (pipe fds), when ret says the kernel wrote it. */
PF_INLINE long pf_user_int_at(struct pf_ctx *c, unsigned long uptr, int i, long ret)
{
	int v = -1;

	if (ret < 0 || !uptr)
		return -1;
	bpf_probe_read_user(&v, sizeof(v), (const void *)(uptr + 4 * i));
	return v;
}

/* The struct sock of a socket fd, or NULL. */
PF_INLINE struct sock *pf_fd_sock(struct pf_ctx *c, long fd)
{
	struct file *f = pf_fd_file(c, fd);
	struct socket *sock;
	umode_t mode;

	if (!f)
		return NULL;
	mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & 00170000) != 0140000) /* S_ISSOCK */
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

/* For socketpair's source/peer: kernel addresses of the two ends (unix sockets). */
PF_INLINE __u64 pf_fd_sock_ptr(struct pf_ctx *c, long fd, int peer)
{
	struct sock *sk = pf_fd_sock(c, fd);

	if (!sk)
		return 0;
	if (peer)
		return (__u64)BPF_CORE_READ((struct unix_sock *)sk, peer);
	return (__u64)sk;
}

/* Writes the user sockaddr (family + address + port, libs layout) at dst, returns its size. */
PF_INLINE __u32 pf_write_user_sockaddr(struct pf_ctx *c, __u8 *dst, unsigned long uptr, long ulen, int with_family)
{
	struct sockaddr_in6 sa = {};
	__u16 family;
	__u32 off = with_family ? 1 : 0;

	if (!uptr || ulen < 2)
		return 0;
	if (bpf_probe_read_user(&sa, ulen < (long)sizeof(sa) ? (ulen & 31) : sizeof(sa), (const void *)uptr))
		return 0;
	family = sa.sin6_family;
	if (family == 2) { /* AF_INET */
		struct sockaddr_in *in = (struct sockaddr_in *)&sa;
		if (with_family)
			dst[0] = PPM_AF_INET;
		__builtin_memcpy(dst + off, &in->sin_addr.s_addr, 4);
		*(__u16 *)(dst + off + 4) = bpf_ntohs(in->sin_port);
		return off + 6;
	}
	if (family == 10) {
		if (with_family)
			dst[0] = PPM_AF_INET6;
		__builtin_memcpy(dst + off, &sa.sin6_addr, 16);
		*(__u16 *)(dst + off + 16) = bpf_ntohs(sa.sin6_port);
		return off + 18;
	}
	return 0;
}

/* A PT_SOCKADDR parameter from a user sockaddr. */
PF_INLINE void pf_push_sockaddr(struct pf_ctx *c, unsigned long uptr, unsigned long ulen)
{
	__u8 *dst = pf_payload(c);
	__u16 family = 0;
	long n;

	if (!uptr || (long)ulen < 2) {
		pf_param_done(c, 0);
		return;
	}
	bpf_probe_read_user(&family, 2, (const void *)uptr);
	if (family == 1) { /* AF_UNIX: family byte + path + NUL, abstract names lose their NUL */
		char first = 0;

		dst[0] = PPM_AF_UNIX;
		bpf_probe_read_user(&first, 1, (const void *)(uptr + 2));
		n = pf_probe_user_str(dst + 1, 108, (const void *)(uptr + 2 + (first ? 0 : 1)));
		pf_param_done(c, n > 0 ? 1 + n : 2);
		return;
	}
	pf_param_done(c, pf_write_user_sockaddr(c, dst, uptr, (long)ulen, 1));
}

PF_INLINE void pf_push_sockaddr_if(struct pf_ctx *c, unsigned long uptr, unsigned long ulen, int cond)
{
	if (cond)
		pf_push_sockaddr(c, uptr, ulen);
	else
		pf_param_done(c, 0);
}

/*
 * A PT_SOCKTUPLE parameter for socket fd: family, then source and destination. "Source" is the
 * local end for outbound traffic and the peer for an accepted connection (inbound = 1). When
 * uaddr is given (connect, sendto), it names the remote end.
 */
PF_INLINE void pf_push_socktuple_addr(struct pf_ctx *c, long fd, int inbound, unsigned long uaddr, long ulen)
{
	struct sock *sk = pf_fd_sock(c, fd);
	__u8 *dst = pf_payload(c);
	__u16 family;

	if (!sk) {
		pf_param_done(c, 0);
		return;
	}
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == 2) {
		__u32 lip = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
		__u32 rip = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		__u8 ua[24] = {};

		if (uaddr && pf_write_user_sockaddr(c, ua, uaddr, ulen, 0) == 6) {
			__builtin_memcpy(&rip, ua, 4);
			rport = *(__u16 *)(ua + 4);
		}
		dst[0] = PPM_AF_INET;
		if (inbound) {
			*(__u32 *)(dst + 1) = rip;
			*(__u16 *)(dst + 5) = rport;
			*(__u32 *)(dst + 7) = lip;
			*(__u16 *)(dst + 11) = lport;
		} else {
			*(__u32 *)(dst + 1) = lip;
			*(__u16 *)(dst + 5) = lport;
			*(__u32 *)(dst + 7) = rip;
			*(__u16 *)(dst + 11) = rport;
		}
		pf_param_done(c, 13);
		return;
	}
	if (family == 10) {
		__u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
		__u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		__u8 *a = dst + 1, *b = dst + 19;
		__u8 ua[24] = {};
		int have_ua = uaddr && pf_write_user_sockaddr(c, ua, uaddr, ulen, 0) == 18;

		dst[0] = PPM_AF_INET6;
		if (inbound) {
			a = dst + 19;
			b = dst + 1;
		}
		/* a = local end, b = remote end (16 bytes each: BPF_CORE_READ_INTO would copy sizeof(*a)) */
		bpf_core_read(a, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		*(__u16 *)(a + 16) = lport;
		if (have_ua) {
			__builtin_memcpy(b, ua, 16);
			*(__u16 *)(b + 16) = *(__u16 *)(ua + 16);
		} else {
			bpf_core_read(b, 16, &sk->__sk_common.skc_v6_daddr);
			*(__u16 *)(b + 16) = rport;
		}
		pf_param_done(c, 37);
		return;
	}
	if (family == 1) {
		struct unix_sock *us = (struct unix_sock *)sk;
		struct sock *peer = BPF_CORE_READ(us, peer);
		struct unix_address *addr;
		char first = 0;
		long n;

		dst[0] = PPM_AF_UNIX;
		*(__u64 *)(dst + 1) = (__u64)sk;
		*(__u64 *)(dst + 9) = (__u64)peer;
		/* the path: the peer's bound address when connected, else ours */
		addr = peer ? BPF_CORE_READ((struct unix_sock *)peer, addr) : NULL;
		if (!addr)
			addr = BPF_CORE_READ(us, addr);
		if (!addr) {
			dst[17] = 0;
			pf_param_done(c, 18);
			return;
		}
		bpf_probe_read_kernel(&first, 1, (void *)addr + bpf_core_field_offset(struct unix_address, name) + 2);
		n = bpf_probe_read_kernel_str(dst + 17, 108,
					      (void *)addr + bpf_core_field_offset(struct unix_address, name) + 2 +
						      (first ? 0 : 1));
		pf_param_done(c, n > 0 ? 17 + n : 18);
		return;
	}
	pf_param_done(c, 0);
}

PF_INLINE void pf_push_socktuple(struct pf_ctx *c, long fd, int inbound)
{
	pf_push_socktuple_addr(c, fd, inbound, 0, 0);
}

/* sendmsg/recvmsg: the payload of the first iovec (capped by the snaplen). */
PF_INLINE void pf_push_msg_data(struct pf_ctx *c, unsigned long umsg, long ret, int is_recv)
{
	struct user_msghdr msg = {};
	struct iovec iov = {};
	long len;

	if (!umsg || ret < 0 || bpf_probe_read_user(&msg, sizeof(msg), (const void *)umsg) || !msg.msg_iov ||
	    bpf_probe_read_user(&iov, sizeof(iov), msg.msg_iov)) {
		pf_param_done(c, 0);
		return;
	}
	len = iov.iov_len;
	if (len > ret)
		len = ret;
	pf_push_user_buf(c, (unsigned long)iov.iov_base, len);
}

/* sendmmsg/recvmmsg: msg_len of the first struct mmsghdr (bytes of the first message). */
PF_INLINE __u32 pf_mmsg_len(struct pf_ctx *c, unsigned long uvec, long ret)
{
	__u32 len = 0;

	if (!uvec || ret <= 0)
		return 0;
	bpf_probe_read_user(&len, sizeof(len), (const void *)(uvec + sizeof(struct user_msghdr)));
	return len;
}

/* The payload of the first message of sendmmsg/recvmmsg (its first iovec, snaplen-capped). */
PF_INLINE void pf_push_mmsg_data(struct pf_ctx *c, unsigned long uvec, long ret)
{
	pf_push_msg_data(c, uvec, (long)pf_mmsg_len(c, uvec, ret), 0);
}

/* recvmsg's ancillary data (SCM_RIGHTS fd passing, credentials), as the kernel wrote it. */
PF_INLINE void pf_push_msg_control(struct pf_ctx *c, unsigned long umsg, long ret)
{
	struct user_msghdr msg = {};

	if (!umsg || ret < 0 || bpf_probe_read_user(&msg, sizeof(msg), (const void *)umsg) || !msg.msg_control ||
	    !msg.msg_controllen) {
		pf_param_done(c, 0);
		return;
	}
	pf_push_user_buf(c, (unsigned long)msg.msg_control, (long)msg.msg_controllen);
}

PF_INLINE __u32 pf_msg_size(struct pf_ctx *c, unsigned long umsg)
{
	struct user_msghdr msg = {};
	struct iovec iov = {};
	__u32 total = 0;
	int i;

	if (!umsg || bpf_probe_read_user(&msg, sizeof(msg), (const void *)umsg))
		return 0;
	for (i = 0; i < 8; i++) {
		if (i >= msg.msg_iovlen)
			break;
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)msg.msg_iov + i * sizeof(iov)))
			break;
		total += iov.iov_len;
	}
	return total;
}

/*
 * Returns v, through memory the verifier does not track: the result is an unknown scalar. Used on
 * loop-carried offsets so that the states of the loop's branches converge and get pruned
 * (otherwise each distinct offset range is a new state and long loops exceed the verifier's
 * budget). The bounds that matter are re-established by masking where the offset is used.
 */
PF_INLINE __u64 pf_forget(struct pf_aux *aux, __u64 v)
{
	volatile __u64 *slot = (volatile __u64 *)&aux->data[PF_AUX_SIZE - 8];

	*slot = v;
	return *slot;
}

PF_INLINE __u8 *pf_aux_at(struct pf_aux *aux, __u64 at)
{
	barrier_var(at);
	at &= PF_AUX_MASK;
	return &aux->data[at];
}

/* Scratch areas of a slot above anything an event uses (events end below 96 KiB). */
#define PF_WIN_END (PF_AUX_SIZE - 4096) /* a path is assembled right to left, ending here */
#define PF_WIN_MAX (PYFALCO_MAX_PATH + 256)
#define PF_TMP_NAME (PF_AUX_SIZE - 4096) /* one component name */

/* Address of byte at of the path window [PF_WIN_END - 8 KiB, PF_WIN_END), provably in bounds. */
PF_INLINE __u8 *pf_win_at(struct pf_aux *aux, __u64 at)
{
	barrier_var(at);
	at &= 8191;
	return &aux->data[PF_WIN_END - 8192 + at];
}

/*
 * A path from a struct path, written at byte pos of the scratch slot: walks dentries from the
 * leaf up to the root, crossing mount points, writing each component right to left into a
 * window, then copies the assembled path into place. Components beyond PF_PATH_DEPTH or a path
 * longer than PATH_MAX lose their top. Returns the length written, NUL included.
 * A global (non-inlined) function: the verifier checks it once, not once per call site.
 */
__noinline int pf_write_path(struct pf_aux *aux, __u64 pos, __u64 dentry_p, __u64 vfsmnt_p)
{
	struct dentry *d = (struct dentry *)dentry_p, *parent, *mnt_root;
	struct vfsmount *vfsmnt = (struct vfsmount *)vfsmnt_p;
	struct mount *mnt, *mnt_parent;
	__u64 used = 0, start, len;
	long n;
	int i;

	if (!aux)
		return 0;
	mnt = (struct mount *)((void *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
	for (i = 0; i < PF_PATH_DEPTH + 8; i++) {
		mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
		parent = BPF_CORE_READ(d, d_parent);
		if (d == mnt_root) {
			mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
			if (mnt_parent == mnt || !mnt_parent)
				break;
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mnt_parent;
			vfsmnt = (struct vfsmount *)((void *)mnt + bpf_core_field_offset(struct mount, mnt));
			continue;
		}
		if (d == parent || !d)
			break;
		n = bpf_probe_read_kernel_str(&aux->data[PF_TMP_NAME], PF_NAME_MAX, BPF_CORE_READ(d, d_name.name));
		d = parent;
		if (n <= 1)
			continue;
		len = (n - 1) & (PF_NAME_MAX - 1);
		used = pf_forget(aux, used) & 8191;
		if (used + len + 1 > PF_WIN_MAX)
			break;
		start = 8192 - used - len; /* relative to the window's start */
		bpf_probe_read_kernel(pf_win_at(aux, start), len, &aux->data[PF_TMP_NAME]);
		*pf_win_at(aux, start - 1) = '/';
		used += len + 1;
	}
	used = pf_forget(aux, used) & 8191;
	if (used == 0 || used > PF_WIN_MAX) {
		*pf_aux_at(aux, pos) = '/';
		*pf_aux_at(aux, pos + 1) = 0;
		return 2;
	}
	bpf_probe_read_kernel(pf_aux_at(aux, pos), used, pf_win_at(aux, 8192 - used));
	*pf_aux_at(aux, pos + used) = 0;
	return used + 1;
}

PF_INLINE void pf_push_path(struct pf_ctx *c, struct path *kpath)
{
	__u64 d, m;

	if (!kpath) {
		pf_param_done(c, 0);
		return;
	}
	d = (__u64)BPF_CORE_READ(kpath, dentry);
	m = (__u64)BPF_CORE_READ(kpath, mnt);
	if (!d || !m) {
		pf_param_done(c, 0);
		return;
	}
	pf_param_done(c, pf_write_path(c->aux, c->pos, d, m));
}

/* One kernfs path (a cgroup), written at byte pos of the scratch slot without its NUL;
 * returns its length. A global function, checked once by the verifier. */
__noinline int pf_write_kernfs_path(struct pf_aux *aux, __u64 pos, __u64 kn_p)
{
	struct kernfs_node *comps[PF_CGROUP_DEPTH];
	struct kernfs_node *kn = (struct kernfs_node *)kn_p;
	__u64 off = 0, n = 0;
	long len;
	int i;

	if (!aux)
		return 0;
	for (i = 0; i < PF_CGROUP_DEPTH; i++) {
		struct kernfs_node *parent;

		if (!kn)
			break;
		if (bpf_core_field_exists(struct kernfs_node, __parent))
			parent = BPF_CORE_READ(kn, __parent);
		else
			parent = BPF_CORE_READ((struct kernfs_node___old *)kn, parent);
		if (!parent) /* the root node: its name is not part of the path */
			break;
		comps[n++] = kn;
		kn = parent;
	}
	if (n == 0) {
		*pf_aux_at(aux, pos) = '/';
		return 1;
	}
	for (i = PF_CGROUP_DEPTH - 1; i >= 0; i--) {
		if (i >= n)
			continue;
		off = pf_forget(aux, off) & 8191;
		*pf_aux_at(aux, pos + off) = '/';
		off++;
		len = bpf_probe_read_kernel_str(pf_aux_at(aux, pos + off), PF_NAME_MAX, BPF_CORE_READ(comps[i], name));
		if (len > 1)
			off += len - 1;
	}
	return off;
}

/*
 * The cgroups parameter: "<subsys>=<path>\0" for the main controllers. The path is the task's
 * cgroup in the unified (v2) hierarchy, or on a v1-only host the cpu controller's. Every
 * container runtime places a container's processes at the same path in every controller, so
 * one path serves them all.
 */
PF_INLINE void pf_push_task_cgroups(struct pf_ctx *c)
{
	static const char names[4][8] = {"cpuset", "cpu", "memory", "pids"};
	struct css_set *cgroups = BPF_CORE_READ(pf_task(c), cgroups);
	struct kernfs_node *kn;
	struct cgroup *cg;
	__u32 path_at, path_len, off = 0;
	int i;

	if (!cgroups) {
		pf_param_done(c, 0);
		return;
	}
	cg = BPF_CORE_READ(cgroups, dfl_cgrp);
	if (!cg || BPF_CORE_READ(cg, level) == 0) {
		struct cgroup_subsys_state *css = BPF_CORE_READ(cgroups, subsys[cpu_cgrp_id]);

		if (css)
			cg = BPF_CORE_READ(css, cgroup);
	}
	kn = cg ? BPF_CORE_READ(cg, kn) : NULL;
	/* "cpuset=" then the path, then copies for the other names */
	__builtin_memcpy(pf_at(c, 0), "cpuset=", 7);
	path_at = 7;
	path_len = pf_write_kernfs_path(c->aux, c->pos + path_at, (__u64)kn);
	if (path_len > 2048)
		path_len = 2048;
	off = path_at + path_len;
	*pf_at(c, off) = 0;
	off++;
	for (i = 1; i < 4; i++) {
		long n = bpf_probe_read_kernel_str(pf_at(c, off), 8, names[i]);

		if (n <= 1)
			break;
		off += n - 1;
		*pf_at(c, off) = '=';
		off++;
		barrier_var(path_len);
		path_len &= 4095;
		bpf_probe_read_kernel(pf_at(c, off), path_len, pf_at(c, path_at));
		off += path_len;
		*pf_at(c, off) = 0;
		off++;
	}
	pf_param_done(c, off);
}

/*=== 3. TASK FIELDS (execve and clone events) ===*/

PF_INLINE void pf_push_task_exe(struct pf_ctx *c)
{
	struct mm_struct *mm = BPF_CORE_READ(pf_task(c), mm);
	unsigned long start;
	long n = 0;

	if (mm) {
		start = BPF_CORE_READ(mm, arg_start);
		n = pf_probe_user_str(pf_payload(c), PYFALCO_MAX_PATH, (const void *)start);
		if (n < 0)
			n = 0;
	}
	if (n == 0) { /* kernel thread or unreadable: fall back to comm */
		n = bpf_probe_read_kernel_str(pf_payload(c), 16, c->task->comm);
		if (n < 0)
			n = 0;
	}
	c->exe_len = n;
	pf_param_done(c, n);
}

/* argv[1..] (after the exe parameter) or the environment, NUL-separated, up to PYFALCO_MAX_ARGS. */
PF_INLINE void pf_push_task_area(struct pf_ctx *c, int env)
{
	struct mm_struct *mm = BPF_CORE_READ(pf_task(c), mm);
	unsigned long start, end;
	long len;

	if (!mm) {
		pf_param_done(c, 0);
		return;
	}
	if (env) {
		start = BPF_CORE_READ(mm, env_start);
		end = BPF_CORE_READ(mm, env_end);
	} else {
		start = BPF_CORE_READ(mm, arg_start) + c->exe_len;
		end = BPF_CORE_READ(mm, arg_end);
	}
	len = (long)(end - start);
	if (len <= 0 || !start) {
		pf_param_done(c, 0);
		return;
	}
	/* clamp first, then mask for the verifier only: masking first wrapped an area of 8 KiB or
	 * more to its length modulo 8 KiB (a 65,540-byte command line was captured as 4 bytes) */
	if (len > PYFALCO_MAX_ARGS)
		len = PYFALCO_MAX_ARGS;
	barrier_var(len);
	len &= (2 * PYFALCO_MAX_ARGS - 1);
	if (bpf_probe_read_user(pf_payload(c), len, (const void *)start)) {
		pf_count(PF_COUNT_PAGE_FAULT);
		len = 0;
	}
	pf_param_done(c, len);
}

PF_INLINE void pf_push_task_args(struct pf_ctx *c)
{
	pf_push_task_area(c, 0);
}

PF_INLINE void pf_push_task_env(struct pf_ctx *c)
{
	pf_push_task_area(c, 1);
}

PF_INLINE void pf_push_task_comm(struct pf_ctx *c)
{
	pf_push_kernel_str(c, c->task->comm, 16);
}

PF_INLINE void pf_push_task_cwd(struct pf_ctx *c)
{
	struct fs_struct *fs = BPF_CORE_READ(pf_task(c), fs);

	if (!fs) {
		pf_param_done(c, 0);
		return;
	}
	pf_push_path(c, (struct path *)((void *)fs + bpf_core_field_offset(struct fs_struct, pwd)));
}

PF_INLINE void pf_push_task_exepath(struct pf_ctx *c)
{
	struct file *exe = BPF_CORE_READ(pf_task(c), mm, exe_file);

	if (!exe) {
		pf_param_done(c, 0);
		return;
	}
	pf_push_path(c, (struct path *)((void *)exe + bpf_core_field_offset(struct file, f_path)));
}

PF_INLINE __u64 pf_task_tid(struct pf_ctx *c)
{
	return BPF_CORE_READ(pf_task(c), pid);
}

PF_INLINE __u64 pf_task_pid(struct pf_ctx *c)
{
	return BPF_CORE_READ(pf_task(c), tgid);
}

PF_INLINE __u64 pf_task_ptid(struct pf_ctx *c)
{
	return BPF_CORE_READ(pf_task(c), real_parent, pid);
}

PF_INLINE __u64 pf_task_fdlimit(struct pf_ctx *c)
{
	return BPF_CORE_READ(pf_task(c), signal, rlim[7].rlim_cur); /* RLIMIT_NOFILE */
}

PF_INLINE __u64 pf_task_pgft(struct pf_ctx *c, int major)
{
	return major ? BPF_CORE_READ(pf_task(c), maj_flt) : BPF_CORE_READ(pf_task(c), min_flt);
}

/* vm size / rss / swap in KiB. */
PF_INLINE __u32 pf_task_vm(struct pf_ctx *c, int which)
{
	struct mm_struct *mm = BPF_CORE_READ(pf_task(c), mm);
	__s64 pages = 0;

	if (!mm)
		return 0;
	if (which == 0) {
		pages = BPF_CORE_READ(mm, total_vm);
	} else if (bpf_core_type_exists(struct mm_rss_stat___v61)) {
		/* rss_stat.count: MM_FILEPAGES 0, MM_ANONPAGES 1, MM_SWAPENTS 2, MM_SHMEMPAGES 3 */
		struct mm_struct___v61 *old = (void *)mm;

		if (which == 1)
			pages = BPF_CORE_READ(old, rss_stat.count[0].counter) +
				BPF_CORE_READ(old, rss_stat.count[1].counter) +
				BPF_CORE_READ(old, rss_stat.count[3].counter);
		else
			pages = BPF_CORE_READ(old, rss_stat.count[2].counter);
	} else if (bpf_core_type_exists(struct percpu_counter)) {
		/* rss_stat: MM_FILEPAGES 0, MM_ANONPAGES 1, MM_SWAPENTS 2, MM_SHMEMPAGES 3 */
		if (which == 1)
			pages = BPF_CORE_READ(mm, rss_stat[0].count) + BPF_CORE_READ(mm, rss_stat[1].count) +
				BPF_CORE_READ(mm, rss_stat[3].count);
		else
			pages = BPF_CORE_READ(mm, rss_stat[2].count);
	}
	return pages > 0 ? (__u32)(pages << 2) : 0; /* 4 KiB pages */
}

/* The controlling terminal as new_encode_dev(major, minor), 0 if none. */
PF_INLINE __u32 pf_task_tty(struct pf_ctx *c)
{
	struct tty_struct *tty = BPF_CORE_READ(pf_task(c), signal, tty);
	__u32 major, minor;

	if (!tty)
		return 0;
	major = BPF_CORE_READ(tty, driver, major);
	minor = BPF_CORE_READ(tty, driver, minor_start) + BPF_CORE_READ(tty, index);
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffU) << 12);
}

/* A struct pid's number in the root namespace (ns = 0) or in its own (ns = 1). */
PF_INLINE __u64 pf_pid_nr(struct pid *p, int ns)
{
	unsigned int level;

	if (!p)
		return 0;
	if (!ns)
		return BPF_CORE_READ(p, numbers[0].nr);
	level = BPF_CORE_READ(p, level);
	return BPF_CORE_READ(p, numbers[level & 31].nr);
}

PF_INLINE __u64 pf_task_pgid(struct pf_ctx *c, int ns)
{
	return pf_pid_nr(BPF_CORE_READ(pf_task(c), signal, pids[PIDTYPE_PGID]), ns);
}

PF_INLINE __u64 pf_task_vtid(struct pf_ctx *c)
{
	return pf_pid_nr(BPF_CORE_READ(pf_task(c), thread_pid), 1);
}

PF_INLINE __u64 pf_task_vpid(struct pf_ctx *c)
{
	return pf_pid_nr(BPF_CORE_READ(pf_task(c), group_leader, thread_pid), 1);
}

/* Start time (epoch ns) of the init process of the task's pid namespace. */
PF_INLINE __u64 pf_task_pidns_start(struct pf_ctx *c)
{
	struct pid *p = BPF_CORE_READ(pf_task(c), thread_pid);
	unsigned int level;
	struct task_struct *reaper;

	if (!p)
		return 0;
	level = BPF_CORE_READ(p, level);
	reaper = BPF_CORE_READ(p, numbers[level & 31].ns, child_reaper);
	if (!reaper)
		return 0;
	return pf_boot_time_ns + BPF_CORE_READ(reaper, start_boottime);
}

PF_INLINE __u32 pf_task_loginuid(struct pf_ctx *c)
{
	return BPF_CORE_READ(pf_task(c), loginuid.val);
}

PF_INLINE __u32 pf_task_uid(struct pf_ctx *c, int gid)
{
	return gid ? BPF_CORE_READ(pf_task(c), cred, egid.val) : BPF_CORE_READ(pf_task(c), cred, euid.val);
}

/* cap_inheritable (0), cap_permitted (1), cap_effective (2): 64 bits whatever kernel_cap_t is. */
PF_INLINE __u64 pf_task_cap(struct pf_ctx *c, int which)
{
	const struct cred *cred = BPF_CORE_READ(pf_task(c), cred);
	__u64 v = 0;

	if (!cred)
		return 0;
	if (which == 0)
		bpf_probe_read_kernel(&v, 8, (void *)cred + bpf_core_field_offset(struct cred, cap_inheritable));
	else if (which == 1)
		bpf_probe_read_kernel(&v, 8, (void *)cred + bpf_core_field_offset(struct cred, cap_permitted));
	else
		bpf_probe_read_kernel(&v, 8, (void *)cred + bpf_core_field_offset(struct cred, cap_effective));
	return v;
}

PF_INLINE __u64 pf_ts_ns(__s64 sec, long nsec)
{
	return sec * 1000000000ULL + nsec;
}

/* exe_ino (0), its ctime (1) and mtime (2) in epoch ns. */
PF_INLINE __u64 pf_task_exe_ino(struct pf_ctx *c, int which)
{
	struct inode *ino = BPF_CORE_READ(pf_task(c), mm, exe_file, f_inode);

	if (!ino)
		return 0;
	if (which == 0)
		return BPF_CORE_READ(ino, i_ino);
	if (which == 1) {
		if (bpf_core_field_exists(struct inode, i_ctime_sec))
			return BPF_CORE_READ(ino, i_ctime_sec) * 1000000000ULL + BPF_CORE_READ(ino, i_ctime_nsec);
		if (bpf_core_field_exists(struct inode___v66, __i_ctime))
			return pf_ts_ns(BPF_CORE_READ((struct inode___v66 *)ino, __i_ctime.tv_sec),
					BPF_CORE_READ((struct inode___v66 *)ino, __i_ctime.tv_nsec));
		if (bpf_core_field_exists(struct inode___v65, i_ctime))
			return pf_ts_ns(BPF_CORE_READ((struct inode___v65 *)ino, i_ctime.tv_sec),
					BPF_CORE_READ((struct inode___v65 *)ino, i_ctime.tv_nsec));
	} else if (which == 2) {
		if (bpf_core_field_exists(struct inode, i_mtime_sec))
			return BPF_CORE_READ(ino, i_mtime_sec) * 1000000000ULL + BPF_CORE_READ(ino, i_mtime_nsec);
		if (bpf_core_field_exists(struct inode___v67, __i_mtime))
			return pf_ts_ns(BPF_CORE_READ((struct inode___v67 *)ino, __i_mtime.tv_sec),
					BPF_CORE_READ((struct inode___v67 *)ino, __i_mtime.tv_nsec));
		if (bpf_core_field_exists(struct inode___v65, i_mtime))
			return pf_ts_ns(BPF_CORE_READ((struct inode___v65 *)ino, i_mtime.tv_sec),
					BPF_CORE_READ((struct inode___v65 *)ino, i_mtime.tv_nsec));
	}
	return 0;
}

/* The running kernel's version (libbpf fills it in at load time). */
extern int LINUX_KERNEL_VERSION __kconfig;

#define PF_OVERLAYFS_SUPER_MAGIC 0x794c7630
enum pf_overlay { PF_NOT_OVERLAY = 0, PF_OVERLAY_UPPER = 1, PF_OVERLAY_LOWER = 2 };

/*
 * Which overlayfs layer a file comes from, as libs' driver decides it: not overlayfs unless the
 * dentry's superblock is; upper when the overlay inode has an upper dentry and the dentry is an
 * upper alias (or disconnected, where the alias flag is not kept); lower otherwise. struct
 * ovl_inode is private to overlayfs (and absent from the BTF of kernels that build it as a module),
 * but it embeds the VFS inode with __upperdentry right after it: read that pointer at the inode's
 * address plus the running kernel's sizeof(struct inode). The dentry flags (OVL_E_UPPER_ALIAS is
 * bit 0) live in d_fsdata itself since 6.5 and in the struct ovl_entry it points to before.
 */
PF_INLINE enum pf_overlay pf_file_overlay_layer(struct file *f)
{
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry);
	struct dentry *upper = NULL;
	unsigned long eflags = 0;
	struct inode *ino;
	void *fsdata;

	if (!d || BPF_CORE_READ(d, d_sb, s_magic) != PF_OVERLAYFS_SUPER_MAGIC)
		return PF_NOT_OVERLAY;
	ino = BPF_CORE_READ(d, d_inode);
	if (!ino)
		return PF_NOT_OVERLAY;
	bpf_probe_read_kernel(&upper, sizeof(upper), (void *)ino + bpf_core_type_size(struct inode));
	if (!upper)
		return PF_OVERLAY_LOWER;
	if (BPF_CORE_READ(d, d_flags) & DCACHE_DISCONNECTED)
		return PF_OVERLAY_UPPER;
	fsdata = BPF_CORE_READ(d, d_fsdata);
	if (LINUX_KERNEL_VERSION >= KERNEL_VERSION(6, 5, 0))
		eflags = (unsigned long)fsdata;
	else if (fsdata)
		bpf_probe_read_kernel(&eflags, sizeof(eflags), fsdata);
	return (eflags & 1) ? PF_OVERLAY_UPPER : PF_OVERLAY_LOWER;
}

/* PPM_EXE_* flags of the new executable. */
PF_INLINE __u32 pf_task_exe_flags(struct pf_ctx *c)
{
	struct file *exe = BPF_CORE_READ(pf_task(c), mm, exe_file);
	char name[8] = {};
	__u32 flags = 0;

	if (!exe)
		return 0;
	/* memfd files are named "memfd:<name>" */
	bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(exe, f_path.dentry, d_name.name));
	if (name[0] == 'm' && name[1] == 'e' && name[2] == 'm' && name[3] == 'f' && name[4] == 'd' && name[5] == ':')
		flags |= PPM_EXE_FROM_MEMFD;
	/* writable by its owner, and the owner is the caller: the process could rewrite itself */
	if ((BPF_CORE_READ(exe, f_inode, i_mode) & 0200) &&
	    BPF_CORE_READ(exe, f_inode, i_uid.val) == BPF_CORE_READ(pf_task(c), cred, fsuid.val))
		flags |= PPM_EXE_WRITABLE;
	switch (pf_file_overlay_layer(exe)) {
	case PF_OVERLAY_UPPER:
		flags |= PPM_EXE_UPPER_LAYER;
		break;
	case PF_OVERLAY_LOWER:
		flags |= PPM_EXE_LOWER_LAYER;
		break;
	default:
		break;
	}
	return flags;
}

/* execve's filename: saved by sched_process_exec on success, read from the user on failure. */
PF_INLINE void pf_push_exec_filename(struct pf_ctx *c, unsigned long uptr, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct pf_exec_name *saved;

	if (ret < 0) {
		pf_push_user_str(c, uptr);
		return;
	}
	saved = bpf_map_lookup_elem(&pf_exec_names, &tid);
	if (!saved) {
		pf_param_done(c, 0);
		return;
	}
	pf_push_kernel_str(c, saved->name, PYFALCO_MAX_PATH);
	bpf_map_delete_elem(&pf_exec_names, &tid);
}

/* prctl's arg2 as a string, for the options that take one (PR_SET_NAME 15, PR_GET_NAME 16). */
PF_INLINE void pf_push_prctl_str(struct pf_ctx *c)
{
	unsigned long opt = pf_arg(c, 0);

	if (opt == 15 || opt == 16)
		pf_push_user_str(c, pf_arg(c, 1));
	else
		pf_param_done(c, 0);
}

/* PT_DYN with index 0 (a u64), as ptrace's addr/data. */
PF_INLINE void pf_push_dyn_u64(struct pf_ctx *c, __u64 v)
{
	__u8 *dst = pf_payload(c);

	dst[0] = 0;
	*(__u64 *)(dst + 1) = v;
	pf_param_done(c, 9);
}

/* struct io_uring_params from the user: sq_entries, cq_entries, flags, sq_thread_cpu,
 * sq_thread_idle, features (u32 each, in that order at the start of the struct). */
PF_INLINE void pf_push_uring_param(struct pf_ctx *c, int which)
{
	__u32 p[6] = {};

	bpf_probe_read_user(p, sizeof(p), (const void *)pf_arg(c, 1));
	pf_push_int(c, p[which < 6 ? which : 0], 4);
}

/* struct rlimit's rlim_cur (0) / rlim_max (1) from the user; empty without a struct. */
PF_INLINE void pf_push_rlimit(struct pf_ctx *c, unsigned long uptr, int which)
{
	__u64 r[2] = {0, 0};

	if (!uptr || bpf_probe_read_user(r, sizeof(r), (const void *)uptr)) {
		pf_param_done(c, 0);
		return;
	}
	pf_push_int(c, which ? r[1] : r[0], 8);
}

/* The path of the file behind fd (open_by_handle_at's result). */
PF_INLINE void pf_push_fd_path(struct pf_ctx *c, long fd)
{
	struct file *f = pf_fd_file(c, fd);

	if (!f) {
		pf_param_done(c, 0);
		return;
	}
	pf_push_path(c, (struct path *)((void *)f + bpf_core_field_offset(struct file, f_path)));
}

#endif
