// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * /dev/pyfalco (a misc device): every open file is a consumer with its own rings, syscall
 * selection and snaplen. open() refuses consumers beyond the max_consumers parameter (EBUSY);
 * the ioctls and the mmap layout are those of driver/abi/pyfalco_kmod.h. An open file holds
 * a reference on the module, so rmmod refuses to remove it while anybody captures.
 *
 * A forced removal (rmmod -f, on kernels with CONFIG_MODULE_FORCE_UNLOAD) ignores that
 * reference and runs the module's exit anyway: freeing the module under an open file would
 * crash the kernel at its next ioctl, fault or close. The exit therefore stops every consumer,
 * flags its rings PYFALCO_KMOD_RING_GONE (libpyfalco drains what is left, then ends the
 * capture with an error) and waits until the last file is closed (pf_device_drain).
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/delay.h>
#include <linux/jiffies.h>

#include "pf_kmod.h"

static atomic_t pf_nopen = ATOMIC_INIT(0);
static DEFINE_MUTEX(pf_going_lock);           /* orders START against a forced removal */
static bool pf_going;

bool pf_going_away(void)
{
	bool going;

	mutex_lock(&pf_going_lock);
	going = pf_going;
	mutex_unlock(&pf_going_lock);
	return going;
}

static int pf_open(struct inode *inode, struct file *filp)
{
	struct pf_consumer *c;

	if (atomic_inc_return(&pf_nopen) > pf_max_consumers) {
		atomic_dec(&pf_nopen);
		pf_debug("open refused: %u consumers already (max_consumers)\n", pf_max_consumers);
		return -EBUSY;
	}
	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c) {
		atomic_dec(&pf_nopen);
		return -ENOMEM;
	}
	mutex_init(&c->lock);
	c->snaplen = PYFALCO_DEFAULT_SNAPLEN;
	filp->private_data = c;
	pf_debug("consumer %p opened by %d\n", c, current->pid);
	return 0;
}

static int pf_release(struct inode *inode, struct file *filp)
{
	struct pf_consumer *c = filp->private_data;

	WRITE_ONCE(c->capturing, 0);
	pf_consumer_detach(c); /* after this no probe touches c */
	pf_rings_free(c);
	pf_debug("consumer %p closed\n", c);
	kfree(c);
	atomic_dec(&pf_nopen);
	return 0;
}

static int pf_setup(struct pf_consumer *c, void __user *arg)
{
	struct pyfalco_kmod_setup s;
	int err;

	if (copy_from_user(&s, arg, sizeof(s)))
		return -EFAULT;
	if (s.buffer_bytes < 2 * PAGE_SIZE || (s.buffer_bytes & (s.buffer_bytes - 1)) ||
	    s.buffer_bytes > pf_max_buffer_bytes)
		return -EINVAL;
	if (c->buffer_bytes)
		return -EALREADY;
	err = pf_rings_alloc(c, s.buffer_bytes);
	if (err)
		return err;
	c->boot_time_ns = ktime_get_real_ns() - ktime_get_boottime_ns();
	err = pf_consumer_attach(c);
	if (err) {
		pf_rings_free(c);
		return err;
	}
	s.ncpus = c->nrings;
	s.page_size = PAGE_SIZE;
	if (copy_to_user(arg, &s, sizeof(s)))
		return -EFAULT;
	pf_debug("consumer %p: %u rings of %llu bytes\n", c, c->nrings, (unsigned long long)c->buffer_bytes);
	return 0;
}

static long pf_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct pf_consumer *c = filp->private_data;
	void __user *uarg = (void __user *)arg;
	u8 interest[PYFALCO_SYSCALL_SLOTS];
	struct pyfalco_counters stats;
	u32 v;
	long err = 0;
	int i;

	switch (cmd) {
	case PYFALCO_IOCTL_GET_API_VERSION:
		v = PYFALCO_KMOD_VERSION(PYFALCO_API_VERSION_MAJOR, PYFALCO_API_VERSION_MINOR, PYFALCO_API_VERSION_PATCH);
		return put_user(v, (u32 __user *)uarg);
	case PYFALCO_IOCTL_GET_SCHEMA_VERSION:
		v = PYFALCO_KMOD_VERSION(PYFALCO_SCHEMA_VERSION_MAJOR, PYFALCO_SCHEMA_VERSION_MINOR,
					 PYFALCO_SCHEMA_VERSION_PATCH);
		return put_user(v, (u32 __user *)uarg);
	case PYFALCO_IOCTL_SETUP:
		mutex_lock(&c->lock);
		err = pf_setup(c, uarg);
		mutex_unlock(&c->lock);
		return err;
	case PYFALCO_IOCTL_SET_INTEREST:
		if (copy_from_user(interest, uarg, sizeof(interest)))
			return -EFAULT;
		for (i = 0; i < PYFALCO_SYSCALL_SLOTS; i++)
			WRITE_ONCE(c->interest[i], interest[i] ? 1 : 0);
		return 0;
	case PYFALCO_IOCTL_SET_SNAPLEN:
		if (get_user(v, (u32 __user *)uarg))
			return -EFAULT;
		if (v > PYFALCO_MAX_SNAPLEN)
			return -EINVAL;
		WRITE_ONCE(c->snaplen, v);
		return 0;
	case PYFALCO_IOCTL_START:
		if (!c->buffer_bytes)
			return -ENODATA;
		mutex_lock(&pf_going_lock);
		if (!pf_going)
			WRITE_ONCE(c->capturing, 1);
		else
			err = -ENODEV;
		mutex_unlock(&pf_going_lock);
		return err;
	case PYFALCO_IOCTL_STOP:
		WRITE_ONCE(c->capturing, 0);
		return 0;
	case PYFALCO_IOCTL_GET_STATS:
		mutex_lock(&c->lock);
		pf_rings_stats(c, &stats);
		mutex_unlock(&c->lock);
		return copy_to_user(uarg, &stats, sizeof(stats)) ? -EFAULT : 0;
	}
	return -ENOTTY;
}

static int pf_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct pf_consumer *c = filp->private_data;
	int err;

	mutex_lock(&c->lock);
	err = pf_rings_mmap(c, vma);
	mutex_unlock(&c->lock);
	return err;
}

static const struct file_operations pf_fops = {
	.owner = THIS_MODULE,
	.open = pf_open,
	.release = pf_release,
	.unlocked_ioctl = pf_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = pf_mmap,
	.llseek = noop_llseek,
};

static struct miscdevice pf_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = PYFALCO_KMOD_NAME,
	.fops = &pf_fops,
	.mode = 0600,
};

int pf_device_init(void)
{
	return misc_register(&pf_misc);
}

void pf_device_drain(void)
{
	int n = (int)module_refcount(THIS_MODULE), flagged;
	unsigned long next_warn = jiffies + 5 * HZ;

	if (n <= 0)
		return; /* the normal case: rmmod refuses while a file is open */
	mutex_lock(&pf_going_lock);
	pf_going = true;
	mutex_unlock(&pf_going_lock);
	flagged = pf_consumers_evict();
	pr_warn("pyfalco: removed by force with %d open capture(s): capturing stopped, %d told to close\n", n,
		flagged);
	/*
	 * Wait for the module's reference count, not for release(): __fput drops the reference
	 * after release() returns, in code that must still find the module. There is no way out
	 * before that: the module's code must outlive its open files. Short sleeps (not one long
	 * uninterruptible wait) so the hung-task detector sees this task run.
	 */
	while (module_refcount(THIS_MODULE) > 0) {
		msleep(10);
		if (time_after(jiffies, next_warn)) {
			pr_warn("pyfalco: forced removal waits for %d open capture(s) to close /dev/%s\n",
				(int)module_refcount(THIS_MODULE), PYFALCO_KMOD_NAME);
			next_warn = jiffies + 5 * HZ;
		}
	}
	synchronize_rcu(); /* module_put() runs with preemption off after its decrement */
	pr_info("pyfalco: the last capture closed\n");
}

void pf_device_exit(void)
{
	misc_deregister(&pf_misc);
}
