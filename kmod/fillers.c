// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The fillers of the kernel module: the pf_* helpers of driver/helpers.bpf.h, in kernel C, with
 * the same names, arguments and results, then driver/abi/fillers_gen.h included under this
 * file's PF_FILLER. Both drivers therefore write every parameter the same way; where the eBPF
 * helper relies on a bpf_probe_read_* behaviour (zeroed destination on a fault, string length
 * counting the NUL), the helper here reproduces it with the same kernel primitives
 * (copy_from_user_nofault, strncpy_from_user with page faults disabled).
 *
 * Layers, as in helpers.bpf.h:
 *   1. event building: pf_begin, pf_push_*, pf_submit (into a per-CPU scratch, then the ring)
 *   2. extraction: arguments, fds -> struct file, sockets, paths, task fields
 *   3. the generated fillers and the syscall -> filler table
 * Everything runs in a tracepoint probe: preemption disabled, RCU read side held, nothing
 * sleeps. Kernel objects reached through another thread's state (a socket's peer) are read
 * with copy_from_kernel_nofault, as the eBPF driver reads them with bpf_probe_read_kernel.
 */
#include <linux/binfmts.h>
#include <linux/cgroup.h>
#include <linux/cred.h>
#include <linux/dcache.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/kernfs.h>
#include <linux/mm.h>
#include <linux/net.h>
#include <linux/pid_namespace.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/socket.h>
#include <linux/timekeeping.h>
#include <linux/tty.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <linux/un.h>
#include <linux/version.h>
#include <linux/vmalloc.h>
#include <net/af_unix.h>
#include <net/sock.h>
#include <uapi/linux/in.h>
#include <uapi/linux/in6.h>

#include "pf_kmod.h"
#include "pyfalco_events.h"
#include "pf_convert.h"
#include "fillers_list.h"
#include "syscalls_x86_64.h"

#define PF_MAX_PARAMS 32
/* Per-CPU scratch: the event is built in [0, PF_EVT_AREA); the rest holds temporary strings. */
#define PF_SCRATCH_SIZE (128 * 1024)
#define PF_EVT_AREA (96 * 1024)
#define PF_TMP_PATH (PF_EVT_AREA)                       /* d_path's buffer, PYFALCO_MAX_PATH */
#define PF_TMP_CGROUP (PF_EVT_AREA + PYFALCO_MAX_PATH)  /* one cgroup path */
/* the largest single parameter any helper writes */
#define PF_MAX_WRITE PYFALCO_MAX_SNAPLEN

struct pf_ctx {
	u8 *buf;
	struct pt_regs *regs;
	struct task_struct *task;
	struct pf_consumer *cons;
	const char *exec_name; /* sched_process_exec's saved path, for execve's filename */
	u32 pos;               /* next payload byte */
	u32 idx;               /* next parameter */
	u32 nparams;
	u32 exe_len;           /* length of the exe parameter, to skip argv[0] in args */
};

static u8 **pf_scratch; /* [nr_cpu_ids] */
static DEFINE_PER_CPU(int, pf_scratch_busy);

int pf_scratch_init(void)
{
	int cpu;

	pf_scratch = kcalloc(nr_cpu_ids, sizeof(*pf_scratch), GFP_KERNEL);
	if (!pf_scratch)
		return -ENOMEM;
	for_each_possible_cpu(cpu) {
		pf_scratch[cpu] = vmalloc(PF_SCRATCH_SIZE);
		if (!pf_scratch[cpu]) {
			pf_scratch_exit();
			return -ENOMEM;
		}
	}
	return 0;
}

void pf_scratch_exit(void)
{
	int cpu;

	if (!pf_scratch)
		return;
	for_each_possible_cpu(cpu)
		vfree(pf_scratch[cpu]);
	kfree(pf_scratch);
	pf_scratch = NULL;
}

/*=== 1. EVENT BUILDING ===*/

static __always_inline struct task_struct *pf_task(struct pf_ctx *c)
{
	return c->task;
}

static void pf_count(struct pf_ctx *c, int which)
{
	pf_ring_count(c->cons, which);
}

static int pf_begin(struct pf_ctx *c, u16 type, u32 nparams)
{
	struct pyfalco_evt_hdr *hdr = (struct pyfalco_evt_hdr *)c->buf;

	if (nparams > PF_MAX_PARAMS)
		return -1;
	c->idx = 0;
	c->nparams = nparams;
	c->exe_len = 0;
	c->pos = PYFALCO_EVT_HDR_SIZE + 2 * nparams;
	hdr->ts = c->cons->boot_time_ns + ktime_get_boottime_ns();
	hdr->tid = (u32)current->pid;
	hdr->type = type;
	hdr->nparams = nparams;
	return 0;
}

/* Where the current parameter goes; the event area always has PF_MAX_WRITE bytes of room past
 * PYFALCO_MAX_EVENT_SIZE, and pf_param_done stops moving once the event is too large. */
static __always_inline u8 *pf_payload(struct pf_ctx *c)
{
	return c->buf + c->pos;
}

static void pf_param_done(struct pf_ctx *c, u32 len)
{
	u32 i = c->idx;

	if (i >= PF_MAX_PARAMS)
		return;
	*(u16 *)(c->buf + PYFALCO_EVT_HDR_SIZE + 2 * i) = (u16)len;
	c->idx = i + 1;
	if (c->pos + len <= PYFALCO_MAX_EVENT_SIZE + 1)
		c->pos += len;
	else
		c->pos = PYFALCO_MAX_EVENT_SIZE + 1; /* dropped at submit (n_drops_max_event_size) */
}

static void pf_push_int(struct pf_ctx *c, u64 v, u32 size)
{
	void *p = pf_payload(c);

	switch (size) {
	case 1:
		*(u8 *)p = (u8)v;
		break;
	case 2:
		*(u16 *)p = (u16)v;
		break;
	case 4:
		*(u32 *)p = (u32)v;
		break;
	default:
		*(u64 *)p = v;
		size = 8;
		break;
	}
	pf_param_done(c, size);
}

static __maybe_unused void pf_push_empty(struct pf_ctx *c)
{
	pf_param_done(c, 0);
}

/* bpf_probe_read_user: n bytes or an error, the destination zeroed on error. */
static long pf_read_user(void *dst, u32 n, unsigned long uptr)
{
	long err = copy_from_user_nofault(dst, (const void __user *)uptr, n);

	if (err)
		memset(dst, 0, n);
	return err;
}

/* bpf_probe_read_user_str: the length copied with its NUL (truncated strings end in a NUL at
 * max - 1), or an error with the destination zeroed. */
static long pf_read_user_str(void *dst, u32 max, unsigned long uptr)
{
	long n;

	if (!max)
		return 0;
	pagefault_disable();
	n = strncpy_from_user(dst, (const char __user *)uptr, max);
	pagefault_enable();
	if (n < 0) {
		memset(dst, 0, max);
		return n;
	}
	if (n >= max) {
		((char *)dst)[max - 1] = 0;
		return max;
	}
	return n + 1;
}

/* bpf_probe_read_kernel_str for kernel strings the probe may read directly. */
static long pf_read_kernel_str(void *dst, u32 max, const char *src)
{
	size_t n;

	if (!max)
		return 0;
	n = strnlen(src, max - 1);
	memcpy(dst, src, n);
	((char *)dst)[n] = 0;
	return n + 1;
}

/* The same for memory that may change or go away under us (another task's objects). */
static long pf_read_kernel_str_nofault(void *dst, u32 max, const void *src)
{
	u32 i;

	for (i = 0; i + 1 < max; i++) {
		char ch;

		if (copy_from_kernel_nofault(&ch, (const char *)src + i, 1)) {
			memset(dst, 0, max);
			return -EFAULT;
		}
		((char *)dst)[i] = ch;
		if (!ch)
			return i + 1;
	}
	((char *)dst)[i] = 0;
	return max;
}

/* A NUL-terminated user string (the NUL is counted, as in libs). */
static void pf_push_user_str(struct pf_ctx *c, unsigned long uptr)
{
	long n = 0;

	if (uptr) {
		n = pf_read_user_str(pf_payload(c), PYFALCO_MAX_PATH, uptr);
		if (n < 0) {
			pf_count(c, PF_COUNT_PAGE_FAULT);
			n = 0;
		}
	}
	pf_param_done(c, (u32)n);
}

static __maybe_unused void pf_push_user_str_if(struct pf_ctx *c, unsigned long uptr, int cond)
{
	pf_push_user_str(c, cond ? uptr : 0);
}

static void pf_push_kernel_str(struct pf_ctx *c, const char *kptr, u32 max)
{
	long n = 0;

	if (kptr)
		n = pf_read_kernel_str(pf_payload(c), max, kptr);
	pf_param_done(c, (u32)n);
}

/* A user buffer of len bytes, capped by the snaplen. */
static void pf_push_user_buf(struct pf_ctx *c, unsigned long uptr, long len)
{
	u64 n;

	if (!uptr || len <= 0) {
		pf_param_done(c, 0);
		return;
	}
	n = min_t(u64, (u64)len, READ_ONCE(c->cons->snaplen));
	if (n > PYFALCO_MAX_SNAPLEN)
		n = PYFALCO_MAX_SNAPLEN;
	if (pf_read_user(pf_payload(c), n, uptr)) {
		pf_count(c, PF_COUNT_PAGE_FAULT);
		n = 0;
	}
	pf_param_done(c, (u32)n);
}

static int pf_submit(struct pf_ctx *c)
{
	struct pyfalco_evt_hdr *hdr = (struct pyfalco_evt_hdr *)c->buf;

	if (c->pos > PYFALCO_MAX_EVENT_SIZE) {
		pf_count(c, PF_COUNT_DROP_SIZE);
		return 0;
	}
	hdr->len = c->pos;
	pf_ring_write(c->cons, c->buf, c->pos);
	return 0;
}

/*=== 2. EXTRACTION ===*/

static unsigned long pf_arg(struct pf_ctx *c, int i)
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

/* The file behind fd in the current task, with a reference (fput it), or NULL. */
static struct file *pf_fd_file(struct pf_ctx *c, long fd)
{
	if (fd < 0 || fd > INT_MAX)
		return NULL;
	return fget_raw((unsigned int)fd);
}

static u32 pf_fd_dev(struct pf_ctx *c, long fd)
{
	struct file *f = pf_fd_file(c, fd);
	u32 v;

	if (!f)
		return 0;
	v = pf_encode_dev(file_inode(f)->i_sb->s_dev);
	fput(f);
	return v;
}

static u64 pf_fd_ino(struct pf_ctx *c, long fd)
{
	struct file *f = pf_fd_file(c, fd);
	u64 v;

	if (!f)
		return 0;
	v = file_inode(f)->i_ino;
	fput(f);
	return v;
}

static u32 pf_fd_created(struct pf_ctx *c, long fd)
{
	struct file *f = pf_fd_file(c, fd);
	u32 v;

	if (!f)
		return 0;
	v = (f->f_mode & FMODE_CREATED) ? PPM_O_F_CREATED : 0;
	fput(f);
	return v;
}

/* struct open_how field i (0 flags, 1 mode, 2 resolve) of openat2. */
static u64 pf_open_how(struct pf_ctx *c, unsigned long uptr, int i)
{
	u64 v[3] = { 0, 0, 0 };

	if (uptr)
		pf_read_user(v, sizeof(v), uptr);
	return i == 0 ? v[0] : (i == 1 ? v[1] : v[2]);
}

/* The flags of the clone-family syscall being exited. */
static u32 pf_clone_flags_of(struct pf_ctx *c)
{
	long nr = c->regs->orig_ax;
	u64 f = 0;

	switch (nr) {
	case 56: /* clone */
		f = pf_arg(c, 0);
		break;
	case 435: /* clone3: struct clone_args starts with u64 flags */
		pf_read_user(&f, sizeof(f), pf_arg(c, 0));
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
static long pf_user_int_at(struct pf_ctx *c, unsigned long uptr, int i, long ret)
{
	int v = -1;

	if (ret < 0 || !uptr)
		return -1;
	pf_read_user(&v, sizeof(v), uptr + 4 * i);
	return v;
}

/* The struct sock of a socket fd, with the file's reference in *fp (fput it), or NULL. */
static struct sock *pf_fd_sock(struct pf_ctx *c, long fd, struct file **fp)
{
	struct file *f = pf_fd_file(c, fd);
	struct socket *sock;

	*fp = NULL;
	if (!f)
		return NULL;
	sock = S_ISSOCK(file_inode(f)->i_mode) ? sock_from_file(f) : NULL;
	if (!sock || !sock->sk) {
		fput(f);
		return NULL;
	}
	*fp = f;
	return sock->sk;
}

/* A pointer field of another kernel object, read as the eBPF driver does (no fault, no lock). */
static void *pf_kptr(const void *at)
{
	void *v = NULL;

	if (copy_from_kernel_nofault(&v, at, sizeof(v)))
		return NULL;
	return v;
}

/* For socketpair's source/peer: kernel addresses of the two ends (unix sockets). */
static u64 pf_fd_sock_ptr(struct pf_ctx *c, long fd, int peer)
{
	struct file *f;
	struct sock *sk = pf_fd_sock(c, fd, &f);
	u64 v;

	if (!sk)
		return 0;
	v = peer ? (u64)(unsigned long)pf_kptr(&unix_sk(sk)->peer) : (u64)(unsigned long)sk;
	fput(f);
	return v;
}

/* Writes the user sockaddr (family + address + port, libs layout) at dst, returns its size. */
static u32 pf_write_user_sockaddr(struct pf_ctx *c, u8 *dst, unsigned long uptr, long ulen, int with_family)
{
	struct sockaddr_in6 sa = {};
	u16 family;
	u32 off = with_family ? 1 : 0;

	if (!uptr || ulen < 2)
		return 0;
	if (pf_read_user(&sa, ulen < (long)sizeof(sa) ? (ulen & 31) : sizeof(sa), uptr))
		return 0;
	family = sa.sin6_family;
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&sa;

		if (with_family)
			dst[0] = PPM_AF_INET;
		memcpy(dst + off, &in->sin_addr.s_addr, 4);
		*(u16 *)(dst + off + 4) = ntohs(in->sin_port);
		return off + 6;
	}
	if (family == AF_INET6) {
		if (with_family)
			dst[0] = PPM_AF_INET6;
		memcpy(dst + off, &sa.sin6_addr, 16);
		*(u16 *)(dst + off + 16) = ntohs(sa.sin6_port);
		return off + 18;
	}
	return 0;
}

/* A PT_SOCKADDR parameter from a user sockaddr. */
static void pf_push_sockaddr(struct pf_ctx *c, unsigned long uptr, unsigned long ulen)
{
	u8 *dst = pf_payload(c);
	u16 family = 0;
	long n;

	if (!uptr || (long)ulen < 2) {
		pf_param_done(c, 0);
		return;
	}
	pf_read_user(&family, 2, uptr);
	if (family == AF_UNIX) { /* family byte + path + NUL, abstract names lose their NUL */
		char first = 0;

		dst[0] = PPM_AF_UNIX;
		pf_read_user(&first, 1, uptr + 2);
		n = pf_read_user_str(dst + 1, 108, uptr + 2 + (first ? 0 : 1));
		pf_param_done(c, n > 0 ? 1 + n : 2);
		return;
	}
	pf_param_done(c, pf_write_user_sockaddr(c, dst, uptr, (long)ulen, 1));
}

static __maybe_unused void pf_push_sockaddr_if(struct pf_ctx *c, unsigned long uptr, unsigned long ulen, int cond)
{
	if (cond)
		pf_push_sockaddr(c, uptr, ulen);
	else
		pf_param_done(c, 0);
}

/* A unix socket's bound path (sun_path of its address) at dst, NUL included; its length. */
static long pf_unix_path(u8 *dst, struct sock *sk)
{
	struct unix_address *addr = pf_kptr(&unix_sk(sk)->addr);
	const char *path;
	char first = 0;

	if (!addr)
		return -1;
	path = (const char *)addr + offsetof(struct unix_address, name) + offsetof(struct sockaddr_un, sun_path);
	if (copy_from_kernel_nofault(&first, path, 1))
		return -1;
	return pf_read_kernel_str_nofault(dst, 108, path + (first ? 0 : 1));
}

/*
 * A PT_SOCKTUPLE parameter for socket fd: family, then source and destination. "Source" is the
 * local end for outbound traffic and the peer for an accepted connection (inbound = 1). When
 * uaddr is given (connect, sendto), it names the remote end.
 */
static void pf_push_socktuple_addr(struct pf_ctx *c, long fd, int inbound, unsigned long uaddr, long ulen)
{
	struct file *f;
	struct sock *sk = pf_fd_sock(c, fd, &f);
	u8 *dst = pf_payload(c);
	u16 family;

	if (!sk) {
		pf_param_done(c, 0);
		return;
	}
	family = READ_ONCE(sk->sk_family);
	if (family == AF_INET) {
		u32 lip = READ_ONCE(sk->sk_rcv_saddr);
		u16 lport = READ_ONCE(sk->sk_num);
		u32 rip = READ_ONCE(sk->sk_daddr);
		u16 rport = ntohs(READ_ONCE(sk->sk_dport));
		u8 ua[24] = {};

		if (uaddr && pf_write_user_sockaddr(c, ua, uaddr, ulen, 0) == 6) {
			memcpy(&rip, ua, 4);
			rport = *(u16 *)(ua + 4);
		}
		dst[0] = PPM_AF_INET;
		if (inbound) {
			*(u32 *)(dst + 1) = rip;
			*(u16 *)(dst + 5) = rport;
			*(u32 *)(dst + 7) = lip;
			*(u16 *)(dst + 11) = lport;
		} else {
			*(u32 *)(dst + 1) = lip;
			*(u16 *)(dst + 5) = lport;
			*(u32 *)(dst + 7) = rip;
			*(u16 *)(dst + 11) = rport;
		}
		pf_param_done(c, 13);
	} else if (family == AF_INET6) {
		u16 lport = READ_ONCE(sk->sk_num);
		u16 rport = ntohs(READ_ONCE(sk->sk_dport));
		u8 *a = dst + 1, *b = dst + 19;
		u8 ua[24] = {};
		int have_ua = uaddr && pf_write_user_sockaddr(c, ua, uaddr, ulen, 0) == 18;

		dst[0] = PPM_AF_INET6;
		if (inbound) {
			a = dst + 19;
			b = dst + 1;
		}
		/* a = local end, b = remote end */
		memcpy(a, &sk->sk_v6_rcv_saddr, 16);
		*(u16 *)(a + 16) = lport;
		if (have_ua) {
			memcpy(b, ua, 16);
			*(u16 *)(b + 16) = *(u16 *)(ua + 16);
		} else {
			memcpy(b, &sk->sk_v6_daddr, 16);
			*(u16 *)(b + 16) = rport;
		}
		pf_param_done(c, 37);
	} else if (family == AF_UNIX) {
		struct sock *peer = pf_kptr(&unix_sk(sk)->peer);
		long n = -1;

		dst[0] = PPM_AF_UNIX;
		*(u64 *)(dst + 1) = (u64)(unsigned long)sk;
		*(u64 *)(dst + 9) = (u64)(unsigned long)peer;
		/* the path: the peer's bound address when connected, else ours */
		if (peer)
			n = pf_unix_path(dst + 17, peer);
		if (n < 0)
			n = pf_unix_path(dst + 17, sk);
		if (n <= 0) {
			dst[17] = 0;
			n = 1;
		}
		pf_param_done(c, 17 + n);
	} else {
		pf_param_done(c, 0);
	}
	fput(f);
}

static void pf_push_socktuple(struct pf_ctx *c, long fd, int inbound)
{
	pf_push_socktuple_addr(c, fd, inbound, 0, 0);
}

/* sendmsg/recvmsg: the payload of the first iovec (capped by the snaplen). */
static void pf_push_msg_data(struct pf_ctx *c, unsigned long umsg, long ret, int is_recv)
{
	struct user_msghdr msg = {};
	struct iovec iov = {};
	long len;

	if (!umsg || ret < 0 || pf_read_user(&msg, sizeof(msg), umsg) || !msg.msg_iov ||
	    pf_read_user(&iov, sizeof(iov), (unsigned long)msg.msg_iov)) {
		pf_param_done(c, 0);
		return;
	}
	len = iov.iov_len;
	if (len > ret)
		len = ret;
	pf_push_user_buf(c, (unsigned long)iov.iov_base, len);
}

/* recvmsg's ancillary data (SCM_RIGHTS fd passing, credentials), as the kernel wrote it. */
static __maybe_unused void pf_push_msg_control(struct pf_ctx *c, unsigned long umsg, long ret)
{
	struct user_msghdr msg = {};

	if (!umsg || ret < 0 || pf_read_user(&msg, sizeof(msg), umsg) || !msg.msg_control || !msg.msg_controllen) {
		pf_param_done(c, 0);
		return;
	}
	pf_push_user_buf(c, (unsigned long)msg.msg_control, (long)msg.msg_controllen);
}

/* sendmmsg/recvmmsg: msg_len of the first struct mmsghdr (bytes of the first message), once the
 * syscall says it handled one. */
static u32 pf_mmsg_len(struct pf_ctx *c, unsigned long uvec, long ret)
{
	u32 len = 0;

	if (!uvec || ret <= 0)
		return 0;
	pf_read_user(&len, sizeof(len), uvec + sizeof(struct user_msghdr));
	return len;
}

/* The payload of the first message of sendmmsg/recvmmsg (its first iovec, snaplen-capped). */
static void pf_push_mmsg_data(struct pf_ctx *c, unsigned long uvec, long ret)
{
	pf_push_msg_data(c, uvec, (long)pf_mmsg_len(c, uvec, ret), 0);
}

static u32 pf_msg_size(struct pf_ctx *c, unsigned long umsg)
{
	struct user_msghdr msg = {};
	struct iovec iov = {};
	u32 total = 0;
	int i;

	if (!umsg || pf_read_user(&msg, sizeof(msg), umsg))
		return 0;
	for (i = 0; i < 8; i++) {
		if (i >= msg.msg_iovlen)
			break;
		if (pf_read_user(&iov, sizeof(iov), (unsigned long)msg.msg_iov + i * sizeof(iov)))
			break;
		total += iov.iov_len;
	}
	return total;
}

/*
 * A path from a struct path: d_path relative to the task's root (the eBPF driver walks up to
 * the root of the mount namespace; both agree outside chroots). A deleted file's " (deleted)"
 * suffix is dropped, as the eBPF walk never writes it. Length written, NUL included.
 */
static void pf_push_path(struct pf_ctx *c, const struct path *kpath)
{
	char *tmp = (char *)c->buf + PF_TMP_PATH;
	char *p;
	size_t n;

	if (!kpath || !kpath->dentry || !kpath->mnt) {
		pf_param_done(c, 0);
		return;
	}
	p = d_path(kpath, tmp, PYFALCO_MAX_PATH);
	if (IS_ERR(p)) {
		pf_param_done(c, 0);
		return;
	}
	n = strlen(p);
	if (d_unlinked(kpath->dentry) && n > 10 && !strcmp(p + n - 10, " (deleted)"))
		n -= 10;
	memmove(pf_payload(c), p, n);
	pf_payload(c)[n] = 0;
	pf_param_done(c, n + 1);
}

/*
 * The cgroups parameter: "<subsys>=<path>\0" for the main controllers. The path is the task's
 * cgroup in the unified (v2) hierarchy, or on a v1-only host the cpu controller's (see the
 * eBPF driver's pf_push_task_cgroups).
 */
static void pf_push_task_cgroups(struct pf_ctx *c)
{
	static const char *const names[4] = { "cpuset", "cpu", "memory", "pids" };
	char *path = (char *)c->buf + PF_TMP_CGROUP;
	struct css_set *cset;
	struct cgroup *cg;
	u8 *dst = pf_payload(c);
	u32 off = 0;
	int len = 0, i;

	cset = task_css_set(pf_task(c));
	if (!cset) {
		pf_param_done(c, 0);
		return;
	}
	cg = cset->dfl_cgrp;
	if (!cg || cg->level == 0) {
		struct cgroup_subsys_state *css = cset->subsys[cpu_cgrp_id];

		if (css)
			cg = css->cgroup;
	}
	if (cg && cg->kn)
		len = kernfs_path_from_node(cg->kn, NULL, path, 2049);
	if (len <= 0 || !cg || !cg->kn) {
		path[0] = '/';
		len = 1;
	}
	if (len > 2048)
		len = 2048;
	for (i = 0; i < 4; i++) {
		size_t nl = strlen(names[i]);

		memcpy(dst + off, names[i], nl);
		off += nl;
		dst[off++] = '=';
		memcpy(dst + off, path, len);
		off += len;
		dst[off++] = 0;
	}
	pf_param_done(c, off);
}

/*=== 3. TASK FIELDS (execve and clone events) ===*/

static void pf_push_task_exe(struct pf_ctx *c)
{
	struct mm_struct *mm = pf_task(c)->mm;
	long n = 0;

	if (mm) {
		n = pf_read_user_str(pf_payload(c), PYFALCO_MAX_PATH, mm->arg_start);
		if (n < 0)
			n = 0;
	}
	if (n == 0) /* kernel thread or unreadable: fall back to comm */
		n = pf_read_kernel_str(pf_payload(c), 16, pf_task(c)->comm);
	c->exe_len = n;
	pf_param_done(c, n);
}

/* argv[1..] (after the exe parameter) or the environment, NUL-separated, up to PYFALCO_MAX_ARGS. */
static void pf_push_task_area(struct pf_ctx *c, int env)
{
	struct mm_struct *mm = pf_task(c)->mm;
	unsigned long start, end;
	long len;

	if (!mm) {
		pf_param_done(c, 0);
		return;
	}
	if (env) {
		start = mm->env_start;
		end = mm->env_end;
	} else {
		start = mm->arg_start + c->exe_len;
		end = mm->arg_end;
	}
	len = (long)(end - start);
	if (len <= 0 || !start) {
		pf_param_done(c, 0);
		return;
	}
	if (len > PYFALCO_MAX_ARGS)
		len = PYFALCO_MAX_ARGS;
	if (pf_read_user(pf_payload(c), len, start)) {
		pf_count(c, PF_COUNT_PAGE_FAULT);
		len = 0;
	}
	pf_param_done(c, len);
}

static void pf_push_task_args(struct pf_ctx *c)
{
	pf_push_task_area(c, 0);
}

static void pf_push_task_env(struct pf_ctx *c)
{
	pf_push_task_area(c, 1);
}

static void pf_push_task_comm(struct pf_ctx *c)
{
	pf_push_kernel_str(c, pf_task(c)->comm, 16);
}

static void pf_push_task_cwd(struct pf_ctx *c)
{
	struct fs_struct *fs = pf_task(c)->fs;
	struct path pwd;

	if (!fs) {
		pf_param_done(c, 0);
		return;
	}
	/* no references taken (path_put may sleep): dentries and mounts are freed after an RCU
	 * grace period, and the probe holds the RCU read side */
	spin_lock(&fs->lock);
	pwd = fs->pwd;
	spin_unlock(&fs->lock);
	pf_push_path(c, &pwd);
}

static struct file *pf_exe_file(struct pf_ctx *c)
{
	struct mm_struct *mm = pf_task(c)->mm;

	return mm ? rcu_dereference(mm->exe_file) : NULL;
}

static void pf_push_task_exepath(struct pf_ctx *c)
{
	struct file *exe = pf_exe_file(c);

	if (!exe) {
		pf_param_done(c, 0);
		return;
	}
	pf_push_path(c, &exe->f_path);
}

static u64 pf_task_tid(struct pf_ctx *c)
{
	return pf_task(c)->pid;
}

static u64 pf_task_pid(struct pf_ctx *c)
{
	return pf_task(c)->tgid;
}

static u64 pf_task_ptid(struct pf_ctx *c)
{
	struct task_struct *parent = rcu_dereference(pf_task(c)->real_parent);

	return parent ? parent->pid : 0;
}

static u64 pf_task_fdlimit(struct pf_ctx *c)
{
	return READ_ONCE(pf_task(c)->signal->rlim[RLIMIT_NOFILE].rlim_cur);
}

static u64 pf_task_pgft(struct pf_ctx *c, int major)
{
	return major ? pf_task(c)->maj_flt : pf_task(c)->min_flt;
}

/* vm size / rss / swap in KiB. */
static u32 pf_task_vm(struct pf_ctx *c, int which)
{
	struct mm_struct *mm = pf_task(c)->mm;
	s64 pages;

	if (!mm)
		return 0;
	if (which == 0)
		pages = mm->total_vm;
	else if (which == 1)
		pages = get_mm_counter(mm, MM_FILEPAGES) + get_mm_counter(mm, MM_ANONPAGES) +
			get_mm_counter(mm, MM_SHMEMPAGES);
	else
		pages = get_mm_counter(mm, MM_SWAPENTS);
	return pages > 0 ? (u32)(pages << (PAGE_SHIFT - 10)) : 0;
}

/* The controlling terminal as new_encode_dev(major, minor), 0 if none. */
static u32 pf_task_tty(struct pf_ctx *c)
{
	struct tty_struct *tty = get_current_tty();
	u32 major, minor;

	if (!tty)
		return 0;
	major = tty->driver->major;
	minor = tty->driver->minor_start + tty->index;
	tty_kref_put(tty);
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffU) << 12);
}

/* A struct pid's number in the root namespace (ns = 0) or in its own (ns = 1). */
static u64 pf_pid_nr(struct pid *p, int ns)
{
	if (!p)
		return 0;
	return ns ? p->numbers[p->level].nr : p->numbers[0].nr;
}

static u64 pf_task_pgid(struct pf_ctx *c, int ns)
{
	return pf_pid_nr(task_pgrp(pf_task(c)), ns);
}

static u64 pf_task_vtid(struct pf_ctx *c)
{
	return pf_pid_nr(task_pid(pf_task(c)), 1);
}

static u64 pf_task_vpid(struct pf_ctx *c)
{
	return pf_pid_nr(task_pid(pf_task(c)->group_leader), 1);
}

/* Start time (epoch ns) of the init process of the task's pid namespace. */
static u64 pf_task_pidns_start(struct pf_ctx *c)
{
	struct pid *p = task_pid(pf_task(c));
	struct task_struct *reaper;

	if (!p)
		return 0;
	reaper = p->numbers[p->level].ns->child_reaper;
	if (!reaper)
		return 0;
	return c->cons->boot_time_ns + reaper->start_boottime;
}

static u32 pf_task_loginuid(struct pf_ctx *c)
{
#ifdef CONFIG_AUDIT
	return from_kuid(&init_user_ns, pf_task(c)->loginuid);
#else
	return (u32)-1;
#endif
}

static u32 pf_task_uid(struct pf_ctx *c, int gid)
{
	const struct cred *cred = rcu_dereference(pf_task(c)->cred);

	return gid ? from_kgid(&init_user_ns, cred->egid) : from_kuid(&init_user_ns, cred->euid);
}

/* cap_inheritable (0), cap_permitted (1), cap_effective (2): 64 bits whatever kernel_cap_t is. */
static u64 pf_task_cap(struct pf_ctx *c, int which)
{
	const struct cred *cred = rcu_dereference(pf_task(c)->cred);
	const kernel_cap_t *cap;
	u64 v = 0;

	if (!cred)
		return 0;
	cap = which == 0 ? &cred->cap_inheritable : (which == 1 ? &cred->cap_permitted : &cred->cap_effective);
	memcpy(&v, cap, min(sizeof(v), sizeof(*cap)));
	return v;
}

/* exe_ino (0), its ctime (1) and mtime (2) in epoch ns. */
static u64 pf_task_exe_ino(struct pf_ctx *c, int which)
{
	struct file *exe = pf_exe_file(c);
	struct inode *ino = exe ? file_inode(exe) : NULL;
	struct timespec64 ts;

	if (!ino)
		return 0;
	if (which == 0)
		return ino->i_ino;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0)
	ts = which == 1 ? inode_get_ctime(ino) : inode_get_mtime(ino);
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
	ts = which == 1 ? inode_get_ctime(ino) : ino->i_mtime;
#else
	ts = which == 1 ? ino->i_ctime : ino->i_mtime;
#endif
	return (u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

#define PF_OVERLAYFS_SUPER_MAGIC 0x794c7630
enum pf_overlay { PF_NOT_OVERLAY = 0, PF_OVERLAY_UPPER = 1, PF_OVERLAY_LOWER = 2 };

/*
 * Which overlayfs layer a file comes from, as libs' driver decides it (the eBPF driver's
 * pf_file_overlay_layer does the same): not overlayfs unless the dentry's superblock is; upper
 * when the overlay inode has an upper dentry and the dentry is an upper alias (or disconnected,
 * where the alias flag is not kept); lower otherwise. struct ovl_inode is private to overlayfs,
 * but it embeds the VFS inode with __upperdentry right after it. The dentry flags
 * (OVL_E_UPPER_ALIAS is bit 0) live in d_fsdata itself since 6.5 and in the struct ovl_entry it
 * points to (flags first) before.
 */
static enum pf_overlay pf_file_overlay_layer(struct file *f)
{
	struct dentry *d = f->f_path.dentry;
	struct dentry *upper;
	struct inode *ino;
	unsigned long eflags;

	if (!d || !d->d_sb || d->d_sb->s_magic != PF_OVERLAYFS_SUPER_MAGIC)
		return PF_NOT_OVERLAY;
	ino = d_inode(d);
	if (!ino)
		return PF_NOT_OVERLAY;
	upper = READ_ONCE(*(struct dentry **)((char *)ino + sizeof(struct inode)));
	if (!upper)
		return PF_OVERLAY_LOWER;
	if (READ_ONCE(d->d_flags) & DCACHE_DISCONNECTED)
		return PF_OVERLAY_UPPER;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	eflags = (unsigned long)READ_ONCE(d->d_fsdata);
#else
	{
		unsigned long *oe = READ_ONCE(d->d_fsdata);

		eflags = oe ? READ_ONCE(*oe) : 0;
	}
#endif
	return (eflags & 1) ? PF_OVERLAY_UPPER : PF_OVERLAY_LOWER;
}

/* PPM_EXE_* flags of the new executable. */
static u32 pf_task_exe_flags(struct pf_ctx *c)
{
	struct file *exe = pf_exe_file(c);
	const struct cred *cred = rcu_dereference(pf_task(c)->cred);
	struct inode *ino;
	u32 flags = 0;

	if (!exe)
		return 0;
	ino = file_inode(exe);
	/* memfd files are named "memfd:<name>" */
	if (!strncmp((const char *)exe->f_path.dentry->d_name.name, "memfd:", 6))
		flags |= PPM_EXE_FROM_MEMFD;
	/* writable by its owner, and the owner is the caller: the process could rewrite itself */
	if ((ino->i_mode & 0200) && uid_eq(ino->i_uid, cred->fsuid))
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
static void pf_push_exec_filename(struct pf_ctx *c, unsigned long uptr, long ret)
{
	if (ret < 0) {
		pf_push_user_str(c, uptr);
		return;
	}
	if (!c->exec_name) {
		pf_param_done(c, 0);
		return;
	}
	pf_push_kernel_str(c, c->exec_name, PYFALCO_MAX_PATH);
}

/* prctl's arg2 as a string, for the options that take one (PR_SET_NAME 15, PR_GET_NAME 16). */
static void pf_push_prctl_str(struct pf_ctx *c)
{
	unsigned long opt = pf_arg(c, 0);

	if (opt == 15 || opt == 16)
		pf_push_user_str(c, pf_arg(c, 1));
	else
		pf_param_done(c, 0);
}

/* PT_DYN with index 0 (a u64), as ptrace's addr/data. */
static void pf_push_dyn_u64(struct pf_ctx *c, u64 v)
{
	u8 *dst = pf_payload(c);

	dst[0] = 0;
	memcpy(dst + 1, &v, 8);
	pf_param_done(c, 9);
}

/* struct io_uring_params from the user: sq_entries, cq_entries, flags, sq_thread_cpu,
 * sq_thread_idle, features (u32 each, in that order at the start of the struct). */
static void pf_push_uring_param(struct pf_ctx *c, int which)
{
	u32 p[6] = {};

	pf_read_user(p, sizeof(p), pf_arg(c, 1));
	pf_push_int(c, p[which < 6 ? which : 0], 4);
}

/* struct rlimit's rlim_cur (0) / rlim_max (1) from the user; empty without a struct. */
static void pf_push_rlimit(struct pf_ctx *c, unsigned long uptr, int which)
{
	u64 r[2] = { 0, 0 };

	if (!uptr || pf_read_user(r, sizeof(r), uptr)) {
		pf_param_done(c, 0);
		return;
	}
	pf_push_int(c, which ? r[1] : r[0], 8);
}

/* The path of the file behind fd (open_by_handle_at's result). */
static void pf_push_fd_path(struct pf_ctx *c, long fd)
{
	struct file *f = pf_fd_file(c, fd);

	if (!f) {
		pf_param_done(c, 0);
		return;
	}
	pf_push_path(c, &f->f_path);
	fput(f);
}

/*=== 4. THE GENERATED FILLERS ===*/

typedef int (*pf_filler_fn)(struct pf_ctx *ctx, long ret);

/* pf_fill_<sc>: begins the event, then runs the generated body pf_body_<sc>. */
#define PF_FILLER(sc, code, np)                                          \
	static int pf_body_##sc(struct pf_ctx *ctx, long ret);           \
	static int pf_fill_##sc(struct pf_ctx *ctx, long ret)            \
	{                                                                \
		if (pf_begin(ctx, code, np))                             \
			return 0;                                        \
		return pf_body_##sc(ctx, ret);                           \
	}                                                                \
	static int pf_body_##sc(struct pf_ctx *ctx, long ret)

#include "fillers_gen.h"

static const pf_filler_fn pf_fillers[PYFALCO_SYSCALL_SLOTS] = {
#define PF_TABLE_ENTRY(sc) [PF_NR_##sc] = pf_fill_##sc,
	PF_FOR_EACH_FILLER(PF_TABLE_ENTRY)
#undef PF_TABLE_ENTRY
};

bool pf_has_filler(long nr)
{
	return nr >= 0 && nr < PYFALCO_SYSCALL_SLOTS && pf_fillers[nr];
}

/* The scratch of this CPU, or NULL when a probe on it is already building an event. */
static u8 *pf_scratch_get(void)
{
	int *busy = this_cpu_ptr(&pf_scratch_busy);

	if (*busy)
		return NULL;
	*busy = 1;
	return pf_scratch[smp_processor_id()];
}

static void pf_scratch_put(void)
{
	*this_cpu_ptr(&pf_scratch_busy) = 0;
}

void pf_fill_syscall(struct pf_consumer *cons, long nr, struct pt_regs *regs, long ret, const char *exec_name)
{
	struct pf_ctx c = { .regs = regs, .task = current, .cons = cons, .exec_name = exec_name };

	if (!pf_has_filler(nr))
		return;
	c.buf = pf_scratch_get();
	if (!c.buf) {
		pf_ring_count(cons, PF_COUNT_BUG);
		return;
	}
	pf_fillers[nr](&c, ret);
	pf_scratch_put();
}

/* procexit (PPME_PROCEXIT_1_E): every thread's exit, with the wait status split as libs does. */
void pf_fill_procexit(struct pf_consumer *cons, struct task_struct *p)
{
	struct pf_ctx c = { .regs = NULL, .task = current, .cons = cons };
	s32 code;

	c.buf = pf_scratch_get();
	if (!c.buf) {
		pf_ring_count(cons, PF_COUNT_BUG);
		return;
	}
	if (pf_begin(&c, PPME_PROCEXIT_1_E, 5))
		goto out;
	code = p->exit_code;
	/* Parameter 1: status (type: PT_ERRNO) */
	pf_push_int(&c, (s64)code, 8);
	/* Parameter 2: ret (type: PT_ERRNO) */
	pf_push_int(&c, (s64)((code >> 8) & 0xff), 8);
	/* Parameter 3: sig (type: PT_SIGTYPE) */
	pf_push_int(&c, code & 0x7f, 1);
	/* Parameter 4: core (type: PT_UINT8) */
	pf_push_int(&c, (code & 0x80) ? 1 : 0, 1);
	/* Parameter 5: reaper_tid (type: PT_PID) */
	pf_push_int(&c, 0, 8);
	pf_submit(&c);
out:
	pf_scratch_put();
}
