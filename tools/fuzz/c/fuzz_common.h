/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the libFuzzer targets (tools/fuzz/c/build.sh builds them). */
#ifndef PYFALCO_FUZZ_COMMON_H
#define PYFALCO_FUZZ_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pyfalco/pyfalco.h"

#define FUZZ_BATCH 512 /* small on purpose: batches fill up (unget) and larger events take the ENOSPC path */

/* The input as a file: a memfd, opened by the reader through /proc/self/fd/N. One memfd for the
 * whole run, rewritten per input (creating one per input cost a sixth of an execution in the
 * kernel); fuzz_memfd_done() leaves it open. */
static int fuzz_fd = -1;

static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t pathlen)
{
	size_t off = 0;

	if (fuzz_fd < 0)
		fuzz_fd = memfd_create("fuzz.scap", MFD_CLOEXEC);
	if (fuzz_fd < 0)
		abort();
	while (off < size) {
		ssize_t k = pwrite(fuzz_fd, data + off, size - off, (off_t)off);
		if (k <= 0)
			abort();
		off += (size_t)k;
	}
	if (ftruncate(fuzz_fd, (off_t)size))
		abort();
	snprintf(path, pathlen, "/proc/self/fd/%d", fuzz_fd);
	return fuzz_fd;
}

static inline void fuzz_memfd_done(int fd) { (void)fd; }

/* Reads every byte, so that ASan sees any out-of-bounds pointer handed out. */
static inline void fuzz_touch(const uint8_t *p, size_t n)
{
	volatile uint8_t acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		acc ^= p[i];
	(void)acc;
}

static inline uint32_t fuzz_rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t fuzz_rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

/* Parameter lengths are u32 for these event types (EF_LARGE_PAYLOAD), u16 otherwise. */
static inline int fuzz_large_payload(uint16_t type) { return type == 322 || type == 324 || type == 402; }

/* An event handed out must be a well-formed v2 record: its parameter lengths inside len (as in
 * libs, bytes after the last parameter are allowed). */
static inline void fuzz_check_event(const uint8_t *evt)
{
	uint32_t len = fuzz_rd32(evt + 16), nparams = fuzz_rd32(evt + 22), w, i;
	uint64_t off;

	if (len < 26)
		abort();
	fuzz_touch(evt, len);
	w = fuzz_large_payload(fuzz_rd16(evt + 20)) ? 4 : 2;
	off = 26 + (uint64_t)w * nparams;
	if (off > len)
		abort();
	for (i = 0; i < nparams; i++)
		off += w == 2 ? fuzz_rd16(evt + 26 + 2 * i) : fuzz_rd32(evt + 26 + 4 * i);
	if (off > len)
		abort();
}

static inline void fuzz_check_batch(const uint8_t *buf, size_t used, uint32_t n)
{
	size_t off = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		struct pyfalco_batch_entry e;

		if (off + sizeof(e) > used)
			abort();
		memcpy(&e, buf + off, sizeof(e));
		if (off + sizeof(e) + e.len > used || fuzz_rd32(buf + off + sizeof(e) + 16) != e.len)
			abort();
		fuzz_check_event(buf + off + sizeof(e));
		off += (sizeof(e) + e.len + 7) & ~(size_t)7;
	}
	if (off != used)
		abort();
}

#endif
