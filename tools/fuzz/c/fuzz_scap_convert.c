/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the event converters in both directions.
 *
 * Input: byte 0 = options (bit 0: write gzip, bit 1: write with PYFALCO_WRITER_FULL_PARAMS),
 * then chunks of (u16 size with bit 15 = "v1 header", size bytes of record). Each chunk goes
 * through scap_conv_event (v1 -> v2, enter/exit merging with per-thread pending state, old
 * versions -> current ones). Every event it produces must be a well-formed record; it is then
 * written with the capture writer (which splits it into the 2022 enter+exit pair) and the file
 * is read back through the replay engine. Oracles: nothing the writer wrote is malformed when
 * read back, the same number of events comes back, and with FULL_PARAMS the events come back
 * byte for byte.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "scap_file.h"

#define MAX_KEEP 256 /* events kept for the byte-for-byte comparison */

struct kept {
	uint8_t *evt;
	uint32_t len;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scap_conv conv;
	struct kept keep[MAX_KEEP];
	uint32_t nkeep = 0, nwritten = 0, nread = 0, i;
	pyfalco_writer *w;
	uint8_t opts;
	size_t off = 1;
	char path[64];
	int fd, rc;

	if (size < 1)
		return 0;
	opts = data[0];
	fd = fuzz_memfd(NULL, 0, path, sizeof(path));
	w = pyfalco_writer_new();
	if (!w || pyfalco_writer_open(w, path, (opts & 1 ? PYFALCO_WRITER_GZIP : 0) |
						   (opts & 2 ? PYFALCO_WRITER_FULL_PARAMS : 0)))
		abort();
	scap_conv_init(&conv);
	while (off + 2 <= size) {
		uint16_t hdr = (uint16_t)(data[off] | data[off + 1] << 8);
		uint32_t n = hdr & 0x7FFF, out_len;
		const uint8_t *out;
		uint8_t *chunk;

		off += 2;
		if (n > size - off)
			n = (uint32_t)(size - off);
		/* a copy of exactly n bytes: ASan catches any read past the record */
		chunk = malloc(n ? n : 1);
		memcpy(chunk, data + off, n);
		off += n;
		rc = scap_conv_event(&conv, chunk, n, hdr >> 15, &out, &out_len);
		if (rc == SCAP_CONV_EVENT) {
			if (out_len != fuzz_rd32(out + 16))
				abort();
			fuzz_check_event(out);
			rc = pyfalco_writer_write_event(w, out, 0, 0);
			if (rc == 0) {
				nwritten++;
				if (nkeep < MAX_KEEP) {
					keep[nkeep].evt = malloc(out_len);
					memcpy(keep[nkeep].evt, out, out_len);
					keep[nkeep++].len = out_len;
				}
			} else {
				abort(); /* a converted event must be writable */
			}
		} else if (rc < SCAP_CONV_SKIPPED_UNKNOWN || rc > SCAP_CONV_EVENT) {
			abort(); /* -ENOMEM is not expected for these sizes */
		}
		free(chunk);
	}
	scap_conv_free(&conv);
	if (pyfalco_writer_close(w))
		abort();
	pyfalco_writer_free(w);

	/* read the file back */
	{
		pyfalco_capture *h = pyfalco_capture_new();
		uint64_t stats[64] = {0};
		int n;

		pyfalco_capture_set(h, "engine", "replay");
		pyfalco_capture_set(h, "capture_file", path);
		if (pyfalco_capture_open(h) || pyfalco_capture_start(h))
			abort();
		for (;;) {
			const uint8_t *evt;
			uint16_t cpu, flags;

			rc = pyfalco_capture_next(h, &evt, &cpu, &flags);
			if (rc == PYFALCO_EOF)
				break;
			if (rc != 0)
				abort(); /* our own file must read to its end */
			fuzz_check_event(evt);
			if ((opts & 2) && nread < nkeep &&
			    (fuzz_rd32(evt + 16) != keep[nread].len || memcmp(evt, keep[nread].evt, keep[nread].len)))
				abort(); /* FULL_PARAMS: the round trip is exact */
			nread++;
		}
		n = pyfalco_capture_stats(h, stats, 64);
		for (i = 0; n > 0 && i < (uint32_t)n; i++)
			if (!strcmp(pyfalco_stats_name(i), "n_skipped_malformed") && stats[i])
				abort(); /* the writer wrote something its reader calls malformed */
		if (nread != nwritten)
			abort();
		pyfalco_capture_free(h);
	}
	for (i = 0; i < nkeep; i++)
		free(keep[i].evt);
	fuzz_memfd_done(fd);
	return 0;
}
