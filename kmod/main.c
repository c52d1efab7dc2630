// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * The pyfalco kernel module: module init/exit and parameters only. It writes the same event
 * records as the CO-RE eBPF driver (driver/), for kernels that cannot run that one.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>

#include "pf_kmod.h"

#define PF_STR_(x) #x
#define PF_STR(x) PF_STR_(x)

unsigned int pf_max_consumers = 4;
unsigned long pf_max_buffer_bytes = 256UL << 20;
bool pf_verbose;

static int pf_set_max_consumers(const char *val, const struct kernel_param *kp)
{
	unsigned int v;
	int err = kstrtouint(val, 0, &v);

	if (err || v < 1 || v > 64) {
		pr_err("pyfalco: max_consumers=%s: must be a number between 1 and 64\n", val);
		return -EINVAL;
	}
	*(unsigned int *)kp->arg = v;
	return 0;
}

static const struct kernel_param_ops pf_max_consumers_ops = {
	.set = pf_set_max_consumers,
	.get = param_get_uint,
};

static int pf_set_max_buffer_bytes(const char *val, const struct kernel_param *kp)
{
	unsigned long v;
	int err = kstrtoul(val, 0, &v);

	if (err || v < 2 * PAGE_SIZE || (v & (v - 1)) || v > (1UL << 31)) {
		pr_err("pyfalco: max_buffer_bytes=%s: must be a power of two between 8 KiB and 2 GiB\n", val);
		return -EINVAL;
	}
	*(unsigned long *)kp->arg = v;
	return 0;
}

static const struct kernel_param_ops pf_max_buffer_bytes_ops = {
	.set = pf_set_max_buffer_bytes,
	.get = param_get_ulong,
};

module_param_cb(max_consumers, &pf_max_consumers_ops, &pf_max_consumers, 0644);
MODULE_PARM_DESC(max_consumers, "Captures that may use the module at once, 1-64 (default 4); more get EBUSY");
module_param_cb(max_buffer_bytes, &pf_max_buffer_bytes_ops, &pf_max_buffer_bytes, 0644);
MODULE_PARM_DESC(max_buffer_bytes,
		 "Largest per-CPU ring a capture may ask for, a power of two (default 256 MiB)");
module_param_named(verbose, pf_verbose, bool, 0644);
MODULE_PARM_DESC(verbose, "Log consumers and tracepoint (de)registration to the kernel log (default off)");

static int __init pf_init(void)
{
	int err;

	err = pf_tracepoints_init();
	if (err)
		return err;
	err = pf_scratch_init();
	if (err)
		goto fail_tp;
	err = pf_device_init();
	if (err) {
		pr_err("pyfalco: registering /dev/%s: error %d\n", PYFALCO_KMOD_NAME, err);
		goto fail_scratch;
	}
	pf_info("loaded (api %d.%d.%d, schema %d.%d.%d)\n", PYFALCO_API_VERSION_MAJOR, PYFALCO_API_VERSION_MINOR,
		PYFALCO_API_VERSION_PATCH, PYFALCO_SCHEMA_VERSION_MAJOR, PYFALCO_SCHEMA_VERSION_MINOR,
		PYFALCO_SCHEMA_VERSION_PATCH);
	return 0;
fail_scratch:
	pf_scratch_exit();
fail_tp:
	pf_tracepoints_exit();
	return err;
}

static void __exit pf_exit(void)
{
	pf_device_drain(); /* no-op unless removed by force while capturing (device.c) */
	pf_device_exit();  /* no consumer left */
	pf_scratch_exit();
	pf_tracepoints_exit();
	pf_info("unloaded\n");
}

module_init(pf_init);
module_exit(pf_exit);

MODULE_LICENSE("Dual MIT/GPL");
MODULE_AUTHOR("pyfalco");
MODULE_DESCRIPTION("pyfalco syscall capture: Falco/libs scap records over per-CPU mmap'd rings");
MODULE_VERSION(PF_STR(PYFALCO_API_VERSION_MAJOR) "." PF_STR(PYFALCO_API_VERSION_MINOR) "." PF_STR(
	PYFALCO_API_VERSION_PATCH));
MODULE_INFO(api_version, PF_STR(PYFALCO_API_VERSION_MAJOR) "." PF_STR(PYFALCO_API_VERSION_MINOR) "." PF_STR(
	PYFALCO_API_VERSION_PATCH));
MODULE_INFO(schema_version, PF_STR(PYFALCO_SCHEMA_VERSION_MAJOR) "." PF_STR(
	PYFALCO_SCHEMA_VERSION_MINOR) "." PF_STR(PYFALCO_SCHEMA_VERSION_PATCH));
