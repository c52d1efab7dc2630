/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The time-order merge of the live engines (engine_bpf.c, engine_kmod.c): each engine has one
 * ring per CPU (or group of CPUs) and says how to read a ring's head record and how to consume
 * it (struct pf_merge_ops); the merge hands out the oldest head across the rings (by
 * pyfalco_evt_hdr.ts), without copying it, and waits (polling: neither driver wakes consumers
 * up, wakeups triple the per-syscall cost) for the first record up to a timeout.
 *
 * A record handed out stays in its ring until the following next(), which consumes it first;
 * unget() makes that next() hand the same record out again instead (the batch copy in
 * capture.c uses it when a record does not fit in the caller's buffer).
 *
 * Defined here, once, as inline functions: each engine passes its own static const ops, so the
 * compiler calls peek/advance directly (through the pointers, the drain loop was ~15% slower).
 */
#ifndef PYFALCO_RING_MERGE_H
#define PYFALCO_RING_MERGE_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "pyfalco/pyfalco.h"
#include "pyfalco_abi.h"

#define PF_MERGE_POLL_US 500

struct pf_merge_ops {
	/* ring i's head record, or NULL when it has none; does not consume it. Called again for
	 * ring i only after advance(i), or while it had none. */
	const uint8_t *(*peek)(void *ctx, uint32_t i);
	/* consumes ring i's head record, the one peek(i) returned last */
	void (*advance)(void *ctx, uint32_t i);
	/* optional, called when every ring is empty: 0 to go on waiting, or a negative errno that
	 * next() returns (the engine sets the handle's message), e.g. when the driver is gone */
	int (*idle)(void *ctx);
};

struct pf_merge {
	void *ctx;
	uint32_t nrings;
	const uint8_t **heads; /* ring i's cached head record (NULL: ask peek) */
	int32_t last;          /* ring of the record handed out last (-1: none) */
	int ungot;
};

static inline uint64_t pf_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* 0 or -ENOMEM. */
static inline int pf_merge_init(struct pf_merge *m, void *ctx, uint32_t nrings)
{
	m->ctx = ctx;
	m->nrings = nrings;
	m->last = -1;
	m->ungot = 0;
	m->heads = calloc(nrings ? nrings : 1, sizeof(*m->heads));
	return m->heads ? 0 : -ENOMEM;
}

static inline void pf_merge_free(struct pf_merge *m)
{
	free(m->heads);
	m->heads = NULL;
	m->nrings = 0;
	m->last = -1;
}

/*
 * The oldest head record across the rings; *cpu is its ring index. Same statuses and
 * timeout_ms as the engine's next() (0: do not wait, -1: forever). ops: the engine's static
 * const table (the same on every call).
 */
static inline __attribute__((always_inline)) int pf_merge_next(struct pf_merge *m, const struct pf_merge_ops *ops,
							       const uint8_t **evt, uint16_t *cpu, int timeout_ms)
{
	uint64_t deadline = 0;
	uint32_t i;

	if (m->ungot) {
		m->ungot = 0;
		*evt = m->heads[m->last];
		*cpu = (uint16_t)m->last;
		return 0;
	}
	if (m->last >= 0) {
		ops->advance(m->ctx, (uint32_t)m->last);
		m->heads[m->last] = NULL;
		m->last = -1;
	}
	for (;;) {
		/* locals: the compiler cannot tell that peek() leaves *m alone */
		const uint8_t **heads = m->heads;
		uint32_t nrings = m->nrings;
		int32_t best = -1;
		uint64_t best_ts = UINT64_MAX;

		for (i = 0; i < nrings; i++) {
			const uint8_t *head = heads[i];
			uint64_t ts;

			if (!head) {
				head = ops->peek(m->ctx, i);
				if (!head)
					continue;
				heads[i] = head;
			}
			ts = ((const struct pyfalco_evt_hdr *)head)->ts;
			if (ts < best_ts) {
				best_ts = ts;
				best = (int32_t)i;
			}
		}
		if (best >= 0) {
			m->last = best;
			*evt = heads[best];
			*cpu = (uint16_t)best;
			return 0;
		}
		/* every ring is empty: the engine may know that no more will come (driver gone) */
		if (ops->idle) {
			int rc = ops->idle(m->ctx);

			if (rc)
				return rc;
		}
		if (timeout_ms == 0)
			return PYFALCO_TIMEOUT;
		if (!deadline)
			deadline = pf_monotonic_ns() + (timeout_ms < 0 ? UINT64_MAX / 2 : (uint64_t)timeout_ms * 1000000ull);
		else if (pf_monotonic_ns() >= deadline)
			return PYFALCO_TIMEOUT;
		usleep(PF_MERGE_POLL_US);
	}
}

/* The record of the last pf_merge_next() is handed out again by the following one. */
static inline void pf_merge_unget(struct pf_merge *m)
{
	if (m->last >= 0)
		m->ungot = 1;
}

#endif
