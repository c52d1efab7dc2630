/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: a whole capture file through the replay engine, as pyfalco reads one.
 * The input is the file (plain or gzip): block parsing, zlib, the SHB and metadata blocks,
 * event blocks, v1 -> v2 headers and the enter/exit conversion (scap_convert.c), the batch copy
 * (capture.c). Every event handed out is checked against the contract callers rely on: a v2
 * header whose parameter lengths add up to its length.
 *
 * The file lives in a memfd (one per run, rewritten per input) and is opened by its
 * /proc/self/fd path, so the reader runs
 * exactly as on disk (open + gzdopen + gzread).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "pyfalco/pyfalco.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = fuzz_memfd(data, size, path, sizeof(path));
	pyfalco_capture *h;
	uint64_t stats[64];
	uint8_t *buf;
	int rc, i;

	if (fd < 0)
		return 0;
	h = pyfalco_capture_new();
	if (!h || pyfalco_capture_set(h, "engine", "replay") || pyfalco_capture_set(h, "capture_file", path))
		abort();
	if (pyfalco_capture_open(h) == 0) {
		uint32_t type, len, idx;
		const uint8_t *body;

		pyfalco_capture_start(h);
		/* a few single events first (how many: the file's last byte, mod 8), then batches in a
		 * small buffer (the unget and ENOSPC paths) */
		for (i = 0; i < (size ? data[size - 1] % 8 : 0); i++) {
			const uint8_t *evt;
			uint16_t cpu, flags;

			rc = pyfalco_capture_next(h, &evt, &cpu, &flags);
			if (rc != 0)
				break;
			fuzz_check_event(evt);
		}
		buf = malloc(FUZZ_BATCH);
		for (;;) {
			size_t used;
			uint32_t n;

			rc = pyfalco_capture_next_batch(h, buf, FUZZ_BATCH, 16, 0, &used, &n);
			if (rc == -28 /* ENOSPC: an event larger than the buffer */ && used > FUZZ_BATCH) {
				uint8_t *big = malloc(used);
				rc = pyfalco_capture_next_batch(h, big, used, 1, 0, &used, &n);
				if (rc != 0 || n != 1)
					abort(); /* the size given by ENOSPC must be enough */
				fuzz_check_batch(big, used, n);
				free(big);
				continue;
			}
			if (rc != 0)
				break;
			fuzz_check_batch(buf, used, n);
		}
		free(buf);
		pyfalco_capture_stats(h, stats, 64);
		for (idx = 0; pyfalco_capture_metadata(h, idx, &type, &body, &len) == 0; idx++)
			if (len)
				fuzz_touch(body, len);
	}
	(void)pyfalco_capture_error(h);
	pyfalco_capture_free(h);
	fuzz_memfd_done(fd);
	return 0;
}
