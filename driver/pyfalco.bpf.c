// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The pyfalco CO-RE eBPF driver. One tp_btf program on sys_exit reads the syscall number and
 * checks the interest table (the only cost of a syscall nobody asked for), then runs the
 * syscall's filler, generated from driver/abi/fillers.yaml: inline for close and openat, by a
 * tail call for the others. Tracepoint programs add procexit
 * and remember execve's filename. Records of open/openat/openat2/close go through the filter
 * compiled from the rules (filter.bpf.h) before the ring; with the filter armed, a tail-called
 * filler whose record uses or makes fds (or is an exec, close_range) while the current fd table
 * holds dropped opens tail-calls pf_kf_send_tail, which does that work and sends it: the
 * filter's global functions are verified once at load, not in each of ~95 fillers (load time
 * ~16 s -> ~1.5 s on the development host, docs/performance.md session 10).
 */
#include "helpers.bpf.h"
#include "filter.bpf.h"
#include "syscalls_x86_64.h"
#include "pf_inlined.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* One tail-called program per filler, pf_x_<syscall>; pf_run_<syscall> is its body. The
 * dispatcher runs the commonest syscalls' inline instead (pf_inlined.h: close, and openat through
 * pf_run_openat_kf): those have no program. The filler's body (fillers_gen.h) submits with
 * pf_submit(ctx): here pf_kf_submit with the filler's compile-time facts (pf_how_, PF_KF_HOW) and
 * the program's context (pf_prog_ctx_, for pf_kf_send_tail). */
#define PF_FILLER(sc, code, np)                                                                      \
	static __always_inline int pf_fill_##sc(struct pf_ctx *ctx, long ret, void *pf_prog_ctx_,   \
						const __u32 pf_how_);                                \
	static __always_inline int pf_run_##sc(void *prog_ctx, struct pt_regs *regs, long ret)       \
	{                                                                                            \
		struct pf_ctx c;                                                                     \
		if (pf_begin(&c, regs, code, np))                                                    \
			return 0;                                                                    \
		return pf_fill_##sc(&c, ret, prog_ctx, PF_KF_HOW(sc, code));                         \
	}                                                                                            \
	PF_IF_TAILED(sc, SEC("tp_btf/sys_exit")                                                      \
	int BPF_PROG(pf_x_##sc, struct pt_regs *regs, long ret)                                      \
	{                                                                                            \
		return pf_run_##sc(ctx, regs, ret);                                                  \
	})                                                                                           \
	static __always_inline int pf_fill_##sc(struct pf_ctx *ctx, long ret, void *pf_prog_ctx_,   \
						const __u32 pf_how_)

/* the fillers submit through the kernel-side filter (filter.bpf.h) */
#define pf_submit(c) pf_kf_submit(c, pf_prog_ctx_, pf_how_)
#include "fillers_gen.h"
#undef pf_submit

/* The kernel filter's work on the held opens for the tail-called fillers' records (filter.bpf.h,
 * pf_kf_send_tailed), then the ring: entry 0 of pf_kf_tail_table, never attached. */
SEC("tp_btf/sys_exit")
int BPF_PROG(pf_kf_send_tail, struct pt_regs *regs, long ret)
{
	return pf_kf_send_rest();
}

/*
 * openat, the commonest event and the one the kernel filter drops most: fillers_gen.h's record
 * (keep the two in step: the parity and filter tests compare it with the kernel module's and
 * with the unfiltered capture's), but the decision comes before dev and ino are read (three
 * probe reads: the inode's i_sb, s_dev and i_ino, which only a sent record needs): a sent open
 * reads them after the decision, a held one when it is sent (pf_kf_fill). The fd's file, its
 * inode and the created flag are read before it: the directory check needs the inode, and
 * rules may select opens by the created flag (evt.is_open_create: pf_kf_flags_any or a
 * pattern's flag mask).
 */
static __always_inline int pf_run_openat_kf(struct pt_regs *regs, long ret)
{
	struct pf_ctx c;
	struct inode *ino;
	__u64 at;
	__u32 flags_at;

	if (pf_begin(&c, regs, PPME_SYSCALL_OPENAT_2_X, 7))
		return 0;
	/* Parameter 1: fd (type: PT_FD) */
	pf_push_int(&c, ret, 8);
	/* Parameter 2: dirfd (type: PT_FD) */
	pf_push_int(&c, (long)(int)pf_arg(&c, 0), 8);
	/* Parameter 3: name (type: PT_FSRELPATH) */
	pf_push_user_str(&c, pf_arg(&c, 1));
	/* Parameter 4: flags (type: PT_FLAGS32) */
	flags_at = c.pos;
	pf_push_int(&c, pf_open_flags(pf_arg(&c, 2)) | pf_fd_created(&c, ret), 4);
	/* Parameter 5: mode (type: PT_UINT32) */
	pf_push_int(&c, pf_arg(&c, 3), 4);
	/* Parameters 6 and 7: dev (PT_UINT32) and ino (PT_UINT64), written below */
	pf_push_int(&c, 0, 4);
	pf_push_int(&c, 0, 8);
	if (!pf_kf_armed || !(pf_kf_on & PF_KF_OPENAT))
		goto fill;
	ino = pf_fd_inode(&c, ret);
	if (pf_kf_open(c.aux, PF_KF_OPEN_LAYOUT(7, 2, 16) | PF_KF_OPEN_FILL, c.pos, c.file_key, (__u64)ino))
		return 0;
fill:
	at = flags_at;
	barrier_var(at);
	at &= PF_AUX_MASK;
	*(__u32 *)&c.aux->data[(at + 8) & PF_AUX_MASK] = pf_fd_dev(&c, ret);
	*(__u64 *)&c.aux->data[(at + 12) & PF_AUX_MASK] = pf_fd_ino(&c, ret);
	if (pf_kf_armed)
		return pf_kf_send(&c, PPME_SYSCALL_OPENAT_2_X);
	return pf_submit(&c);
}

/* Every syscall exit: the interest check, then the syscall's filler. */
SEC("tp_btf/sys_exit")
int BPF_PROG(pf_sys_exit, struct pt_regs *regs, long ret)
{
	/* a direct (BTF) load: tp_btf's regs is a kernel pointer the verifier knows; BPF_CORE_READ
	 * would be a bpf_probe_read_kernel call on every syscall of the system */
	__u32 nr = (__u32)regs->orig_ax;

#ifdef PF_ABLATE_EMPTY
	return 0; /* diagnostic build (driver/CMakeLists.txt): the cost of the tracepoint alone */
#endif
	if (nr >= PYFALCO_SYSCALL_SLOTS || !pf_interesting[nr])
		return 0;
	if (!pf_capturing)
		return 0;
	if (nr == PF_NR_execve && ret == 0) {
		/* a successful execveat exits with execve's number: sched_process_exec saw the real one */
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		struct pf_exec_name *n = bpf_map_lookup_elem(&pf_exec_names, &tid);

		if (n && n->nr == PF_NR_execveat) {
			if (!pf_interesting[PF_NR_execveat])
				return 0;
			nr = PF_NR_execveat;
		}
	}
	/* close and openat (the commonest events) are built right here: a tail call is an indirect
	 * jump, through a retpoline on kernels with that mitigation. Their fillers have no tail-called
	 * program (pf_inlined.h lists them: keep it in step). */
	if (nr == PF_NR_close)
		return pf_run_close(ctx, regs, ret);
	if (nr == PF_NR_openat)
		return pf_run_openat_kf(regs, ret);
	bpf_tail_call(ctx, &pf_syscall_exit_tail_table, nr);
	return 0;
}

/* The path a successful execve was given, for the execve exit event's filename parameter. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(pf_sched_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 zero = 0;
	struct pf_exec_name *n = bpf_map_lookup_elem(&pf_exec_scratch, &zero);
	struct pt_regs *regs;

	if (!n || !pf_capturing)
		return 0;
	if (bpf_probe_read_kernel_str(n->name, sizeof(n->name), BPF_CORE_READ(bprm, filename)) <= 0)
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	n->nr = BPF_CORE_READ(regs, orig_ax);
	/* Some kernels (6.18 here) report a successful execveat with execve's number at both
	 * sched_process_exec and sys_exit. An execveat relative to a dirfd names its binary
	 * "/dev/fd/<dirfd>/<path>": recognise that one. */
	if (n->name[0] == '/' && n->name[1] == 'd' && n->name[2] == 'e' && n->name[3] == 'v' && n->name[4] == '/' &&
	    n->name[5] == 'f' && n->name[6] == 'd' && n->name[7] == '/')
		n->nr = PF_NR_execveat;
	bpf_map_update_elem(&pf_exec_names, &tid, n, BPF_ANY);
	return 0;
}

/* A fork copies the parent's fd table (before the child runs, and so before either clone exit):
 * the kernel filter sends the opens it holds there, so that user space's copy has them. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(pf_sched_fork, struct task_struct *parent, struct task_struct *child)
{
	if (pf_capturing && pf_kf_armed)
		pf_kf_fork(parent, child);
	return 0;
}

/* procexit (PPME_PROCEXIT_1_E): every thread's exit, with the wait status split as libs does. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(pf_sched_exit, struct task_struct *p)
{
	struct pf_ctx c;
	__s32 code;
	__u32 zero = 0;

	if (!pf_capturing)
		return 0;
	if (pf_kf_armed)
		pf_kf_exit(p); /* the kernel filter's held opens of a table nobody uses any more */
	if (pf_begin(&c, NULL, PPME_PROCEXIT_1_E, 5))
		return 0;
	code = BPF_CORE_READ(pf_task(&c), exit_code);
	/* Parameter 1: status (type: PT_ERRNO) */
	pf_push_int(&c, (__s64)code, 8);
	/* Parameter 2: ret (type: PT_ERRNO) */
	pf_push_int(&c, (__s64)((code >> 8) & 0xff), 8);
	/* Parameter 3: sig (type: PT_SIGTYPE) */
	pf_push_int(&c, code & 0x7f, 1);
	/* Parameter 4: core (type: PT_UINT8) */
	pf_push_int(&c, (code & 0x80) ? 1 : 0, 1);
	/* Parameter 5: reaper_tid (type: PT_PID) */
	pf_push_int(&c, zero, 8);
	return pf_submit(&c);
}
