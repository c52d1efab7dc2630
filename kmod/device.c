// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * /dev/pyfalco (a misc device): every open file is a consumer with its own rings, syscall
 * selection and snaplen. open() refuses consumers beyond the max_consumers parameter (EBUSY);
 * the ioctls and the mmap layout are those of driver/abi/pyfalco_kmod.h. An open file holds
 * a reference on the module, so the module cannot be removed while anybody captures.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>

#include "pf_kmod.h"

static atomic_t pf_nopen = ATOMIC_INIT(0);

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
		WRITE_ONCE(c->capturing, 1);
		return 0;
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

void pf_device_exit(void)
{
	misc_deregister(&pf_misc);
}
