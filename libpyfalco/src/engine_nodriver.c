/* SPDX-License-Identifier: Apache-2.0 */
/* nodriver: no syscall source at all (Falco's engine.kind=nodriver); next() only times out. */
#include <errno.h>
#include <poll.h>

#include "engine.h"

static int nd_open(pyfalco_capture *h)
{
	return 0;
}

static int nd_next(pyfalco_capture *h, const uint8_t **evt, uint16_t *cpu, uint16_t *flags, int timeout_ms)
{
	if (timeout_ms != 0)
		poll(NULL, 0, timeout_ms < 0 ? 1000 : timeout_ms);
	return PYFALCO_TIMEOUT;
}

static void nd_unget(pyfalco_capture *h)
{
}

static void nd_close(pyfalco_capture *h)
{
}

const struct pyfalco_engine_ops pf_engine_nodriver = {
	.name = "nodriver",
	.open = nd_open,
	.next = nd_next,
	.unget = nd_unget,
	.close = nd_close,
};
