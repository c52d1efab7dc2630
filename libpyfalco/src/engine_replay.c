/* SPDX-License-Identifier: Apache-2.0 */
/* replay: placeholder until the capture-file reader lands (issue 5). */
#include <errno.h>

#include "engine.h"

static int rp_open(pyfalco_capture *h)
{
	return pf_fail(h, ENOTSUP, "opening capture file: the replay engine is not built yet");
}

static int rp_next(pyfalco_capture *h, const uint8_t **evt, uint16_t *cpu, uint16_t *flags, int timeout_ms)
{
	return -EBADF;
}

static void rp_unget(pyfalco_capture *h)
{
}

static void rp_close(pyfalco_capture *h)
{
}

const struct pyfalco_engine_ops pf_engine_replay = {
	.name = "replay",
	.open = rp_open,
	.next = rp_next,
	.unget = rp_unget,
	.close = rp_close,
};
