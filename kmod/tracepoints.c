// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The module's hooks: sys_exit (every syscall exit: one array load decides whether anybody
 * wants it), sched_process_exec (remembers the path execve was given: the user pointer is gone
 * at exit) and sched_process_exit (procexit). They are registered while at least one consumer
 * is set up, so a loaded but idle module costs the system nothing.
 *
 * sched_process_fork is not hooked: on x86_64 a new task returns to user space through the
 * syscall exit path, so the child's clone/fork exit event comes from sys_exit as in the eBPF
 * driver, and both drivers emit the same events.
 */
#include <linux/rculist.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/tracepoint.h>
#include <linux/binfmts.h>
#include <linux/vmalloc.h>
#include <linux/compat.h>
#include <asm/syscall.h>

#include "pf_kmod.h"
#include "syscalls_x86_64.h"

LIST_HEAD(pf_consumers);
static DEFINE_MUTEX(pf_consumers_lock);
static int pf_nconsumers_listed;

/*=== the execve path stash ===*/

/* A successful execve's path, saved at sched_process_exec by thread id until its sys_exit.
 * A small direct-mapped table: a collision between two threads exec'ing at the same instant
 * leaves the second one's filename empty, as the eBPF driver's LRU map would on overflow. */
#define PF_EXEC_SLOTS 64

struct pf_exec_name {
	pid_t tid;      /* 0: free */
	int nr;         /* the syscall that exec'd (execve or execveat) */
	char name[PYFALCO_MAX_PATH];
};

static struct pf_exec_name *pf_exec_names; /* [PF_EXEC_SLOTS] */
static DEFINE_SPINLOCK(pf_exec_lock);

static int pf_anyone_capturing(void)
{
	struct pf_consumer *c;

	list_for_each_entry_rcu(c, &pf_consumers, node)
		if (READ_ONCE(c->capturing))
			return 1;
	return 0;
}

static void pf_probe_exec(void *data, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct pf_exec_name *slot;
	unsigned long flags;

	rcu_read_lock();
	if (!pf_anyone_capturing() || !bprm->filename) {
		rcu_read_unlock();
		return;
	}
	rcu_read_unlock();
	slot = &pf_exec_names[current->pid % PF_EXEC_SLOTS];
	spin_lock_irqsave(&pf_exec_lock, flags);
	slot->tid = current->pid;
	slot->nr = syscall_get_nr(current, task_pt_regs(current));
	strscpy(slot->name, bprm->filename, sizeof(slot->name));
	/* an execveat relative to a dirfd names its binary "/dev/fd/<dirfd>/<path>": some kernels
	 * report it with execve's number at sys_exit, so remember which one it was */
	if (!strncmp(slot->name, "/dev/fd/", 8))
		slot->nr = PF_NR_execveat;
	spin_unlock_irqrestore(&pf_exec_lock, flags);
}

/* Takes the saved path of the current thread into buf; returns the syscall it came from, or -1. */
static int pf_exec_take(char *buf, size_t len)
{
	struct pf_exec_name *slot = &pf_exec_names[current->pid % PF_EXEC_SLOTS];
	unsigned long flags;
	int nr = -1;

	spin_lock_irqsave(&pf_exec_lock, flags);
	if (slot->tid == current->pid) {
		strscpy(buf, slot->name, len);
		nr = slot->nr;
		slot->tid = 0;
	}
	spin_unlock_irqrestore(&pf_exec_lock, flags);
	return nr;
}

/*=== probes ===*/

/* Room for the stashed exec path while its event is built (one per CPU: probes run with
 * preemption disabled). */
static DEFINE_PER_CPU(char[PYFALCO_MAX_PATH], pf_exec_buf);

static void pf_probe_sys_exit(void *data, struct pt_regs *regs, long ret)
{
	long nr = syscall_get_nr(current, regs);
	const char *exec_name = NULL;
	struct pf_consumer *c;

	if (nr < 0 || nr >= PYFALCO_SYSCALL_SLOTS || !pf_has_filler(nr) || in_compat_syscall())
		return;
	rcu_read_lock();
	if (nr == PF_NR_execve && ret == 0) {
		char *buf = this_cpu_ptr(pf_exec_buf);
		int saved = pf_exec_take(buf, PYFALCO_MAX_PATH);

		if (saved >= 0) {
			exec_name = buf;
			if (saved == PF_NR_execveat)
				nr = PF_NR_execveat;
		}
	}
	list_for_each_entry_rcu(c, &pf_consumers, node) {
		if (!READ_ONCE(c->capturing) || !READ_ONCE(c->interest[nr]))
			continue;
		pf_fill_syscall(c, nr, regs, ret, exec_name);
	}
	rcu_read_unlock();
}

static void pf_probe_process_exit(void *data, struct task_struct *p)
{
	struct pf_consumer *c;
	struct pf_exec_name *slot = &pf_exec_names[p->pid % PF_EXEC_SLOTS];

	if (READ_ONCE(slot->tid) == p->pid) {
		unsigned long flags;

		spin_lock_irqsave(&pf_exec_lock, flags);
		if (slot->tid == p->pid)
			slot->tid = 0;
		spin_unlock_irqrestore(&pf_exec_lock, flags);
	}
	rcu_read_lock();
	list_for_each_entry_rcu(c, &pf_consumers, node) {
		if (READ_ONCE(c->capturing))
			pf_fill_procexit(c, p);
	}
	rcu_read_unlock();
}

/*=== registration ===*/

struct pf_tp {
	const char *name;
	void *probe;
	struct tracepoint *tp;
	int registered;
};

static struct pf_tp pf_tps[] = {
	{ "sys_exit", pf_probe_sys_exit },
	{ "sched_process_exec", pf_probe_exec },
	{ "sched_process_exit", pf_probe_process_exit },
};

static void pf_find_tp(struct tracepoint *tp, void *priv)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(pf_tps); i++)
		if (!strcmp(tp->name, pf_tps[i].name))
			pf_tps[i].tp = tp;
}

static void pf_unregister_all(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(pf_tps); i++) {
		if (!pf_tps[i].registered)
			continue;
		tracepoint_probe_unregister(pf_tps[i].tp, pf_tps[i].probe, NULL);
		pf_tps[i].registered = 0;
	}
	tracepoint_synchronize_unregister();
}

static int pf_register_all(void)
{
	size_t i;
	int err;

	for (i = 0; i < ARRAY_SIZE(pf_tps); i++) {
		err = tracepoint_probe_register(pf_tps[i].tp, pf_tps[i].probe, NULL);
		if (err) {
			pr_err("pyfalco: attaching to tracepoint %s: error %d\n", pf_tps[i].name, err);
			pf_unregister_all();
			return err;
		}
		pf_tps[i].registered = 1;
	}
	pf_debug("tracepoints attached\n");
	return 0;
}

int pf_consumer_attach(struct pf_consumer *c)
{
	int err = 0;

	mutex_lock(&pf_consumers_lock);
	if (pf_going_away())
		err = -ENODEV; /* the module is being removed by force */
	else if (pf_nconsumers_listed == 0)
		err = pf_register_all();
	if (!err) {
		list_add_tail_rcu(&c->node, &pf_consumers);
		c->listed = 1;
		pf_nconsumers_listed++;
	}
	mutex_unlock(&pf_consumers_lock);
	return err;
}

void pf_consumer_detach(struct pf_consumer *c)
{
	mutex_lock(&pf_consumers_lock);
	if (c->listed) {
		list_del_rcu(&c->node);
		c->listed = 0;
		if (--pf_nconsumers_listed == 0)
			pf_unregister_all(); /* waits for every running probe */
		else
			synchronize_rcu(); /* no probe still writes to c's rings */
	}
	mutex_unlock(&pf_consumers_lock);
}

int pf_consumers_evict(void)
{
	struct pf_consumer *c;
	int n = 0;
	u32 i;

	mutex_lock(&pf_consumers_lock);
	list_for_each_entry(c, &pf_consumers, node)
		WRITE_ONCE(c->capturing, 0);
	/* every probe that still saw capturing set has returned: the rings hold their last record */
	synchronize_rcu();
	list_for_each_entry(c, &pf_consumers, node) {
		for (i = 0; i < c->nrings; i++)
			if (c->rings[i].info)
				smp_store_release(&c->rings[i].info->flags,
						  c->rings[i].info->flags | PYFALCO_KMOD_RING_GONE);
		n++;
	}
	mutex_unlock(&pf_consumers_lock);
	return n;
}

int pf_tracepoints_init(void)
{
	size_t i;

	for_each_kernel_tracepoint(pf_find_tp, NULL);
	for (i = 0; i < ARRAY_SIZE(pf_tps); i++) {
		if (!pf_tps[i].tp) {
			pr_err("pyfalco: this kernel has no %s tracepoint (CONFIG_FTRACE_SYSCALLS / "
			       "CONFIG_TRACEPOINTS needed)\n", pf_tps[i].name);
			return -ENOENT;
		}
	}
	pf_exec_names = vzalloc(sizeof(*pf_exec_names) * PF_EXEC_SLOTS);
	return pf_exec_names ? 0 : -ENOMEM;
}

void pf_tracepoints_exit(void)
{
	vfree(pf_exec_names);
	pf_exec_names = NULL;
}
