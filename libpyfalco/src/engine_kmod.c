/* SPDX-License-Identifier: Apache-2.0 */
/* kmod: the kernel-module engine (issue 8). Until the module exists, open() says so. */
#include <errno.h>

#include "engine.h"

static int km_open(pyfalco_capture *h)
{
	return pf_fail(h, ENOTSUP,
		       "opening the kernel module engine: the pyfalco kernel module is not part of this build "
		       "yet; use engine.kind=modern_ebpf");
}

static int km_next(pyfalco_capture *h, const uint8_t **evt, uint16_t *cpu, uint16_t *flags, int timeout_ms)
{
	return -EBADF;
}

static void km_unget(pyfalco_capture *h)
{
}

static void km_close(pyfalco_capture *h)
{
}

const struct pyfalco_engine_ops pf_engine_kmod = {
	.name = "kmod",
	.open = km_open,
	.next = km_next,
	.unget = km_unget,
	.close = km_close,
};
