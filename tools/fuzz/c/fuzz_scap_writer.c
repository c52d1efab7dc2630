/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the capture writer's API with arbitrary input, then the file read back.
 *
 * Input: byte 0 = options (bit 0: gzip, bit 1: PYFALCO_WRITER_FULL_PARAMS), then operations:
 *   0x00 u32 block_type u16 n  body[n]           pyfalco_writer_write_block
 *   0x01 u16 n record[n]                          pyfalco_writer_write_event (its len field is set
 *                                                 to n: the API takes a record of hdr.len bytes)
 *   0x02 u8 nevents u16 n buf[n] u8 m modes[m]    pyfalco_writer_write_batch (modes NULL if m == 0)
 * Calls may be refused (-EINVAL: a malformed record or batch entry, a block after the events);
 * nothing else may fail. Oracles on the file read back through the replay engine: it opens, reads
 * to its end without an error, no event the writer wrote is malformed to the reader, and the
 * metadata blocks come back as written, in order.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "scap_file.h"

#define MAX_META 64

struct meta {
	uint32_t type;
	uint32_t len;
	uint8_t *body;
};

static int take(const uint8_t *data, size_t size, size_t *off, void *dst, size_t n)
{
	if (*off + n > size)
		return -1;
	memcpy(dst, data + *off, n);
	*off += n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct meta meta[MAX_META];
	uint32_t nmeta = 0, i;
	pyfalco_writer *w;
	size_t off = 1;
	char path[64];
	int fd, rc;

	if (size < 1)
		return 0;
	fd = fuzz_memfd(NULL, 0, path, sizeof(path));
	w = pyfalco_writer_new();
	if (!w || pyfalco_writer_open(w, path, data[0] & 3))
		abort();
	while (off < size) {
		uint8_t op = data[off++] % 3;

		if (op == 0) {
			uint32_t type;
			uint16_t n;
			uint8_t *body;

			if (take(data, size, &off, &type, 4) || take(data, size, &off, &n, 2) || off + n > size)
				break;
			body = malloc(n ? n : 1);
			memcpy(body, data + off, n);
			off += n;
			rc = pyfalco_writer_write_block(w, type, body, n);
			/* blocks of unknown type are written, and skipped by the reader (as libs does) */
			if (rc == 0 && nmeta < MAX_META && scap_block_kind(type) == SCAP_KIND_META) {
				meta[nmeta].type = type;
				meta[nmeta].len = n;
				meta[nmeta++].body = body;
			} else {
				if (rc != 0 && rc != -EINVAL)
					abort();
				free(body);
			}
		} else if (op == 1) {
			uint16_t n;
			uint8_t *rec;

			if (take(data, size, &off, &n, 2) || off + n > size)
				break;
			if (n < 26)
				n = 26 <= size - off ? 26 : (uint16_t)(size - off);
			if (n < 26) {
				off = size;
				break;
			}
			rec = malloc(n);
			memcpy(rec, data + off, n);
			off += n;
			memcpy(rec + 16, &(uint32_t){n}, 4);
			rc = pyfalco_writer_write_event(w, rec, 0, 0);
			if (rc != 0 && rc != -EINVAL)
				abort();
			free(rec);
		} else {
			uint8_t nev, m;
			uint16_t n;
			uint8_t *buf, *modes = NULL;
			uint32_t written;

			if (take(data, size, &off, &nev, 1) || take(data, size, &off, &n, 2) || off + n > size)
				break;
			buf = malloc(n ? n : 1);
			memcpy(buf, data + off, n);
			off += n;
			if (take(data, size, &off, &m, 1) || off + m > size) {
				free(buf);
				break;
			}
			if (m) {
				/* one mode per entry: the API reads nevents of them */
				modes = calloc(nev ? nev : 1, 1);
				memcpy(modes, data + off, m < nev ? m : nev);
				off += m;
			}
			rc = pyfalco_writer_write_batch(w, buf, n, nev, modes, &written);
			if (rc != 0 && rc != -EINVAL)
				abort();
			free(modes);
			free(buf);
		}
	}
	if (pyfalco_writer_close(w))
		abort();
	pyfalco_writer_free(w);

	/* read it back */
	{
		pyfalco_capture *h = pyfalco_capture_new();
		uint64_t stats[64] = {0};
		uint32_t type, len, idx, k = 0;
		const uint8_t *body;
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
				abort(); /* a file the writer wrote must read to its end */
			fuzz_check_event(evt);
		}
		n = pyfalco_capture_stats(h, stats, 64);
		for (i = 0; n > 0 && i < (uint32_t)n; i++)
			if (!strcmp(pyfalco_stats_name(i), "n_skipped_malformed") && stats[i])
				abort();
		/* metadata: the SHB first, then the blocks as written (with their zero padding) */
		for (idx = 1; pyfalco_capture_metadata(h, idx, &type, &body, &len) == 0; idx++, k++) {
			if (k >= nmeta)
				break; /* more than MAX_META were written: not all kept for comparison */
			if (type != meta[k].type || len < meta[k].len || len - meta[k].len > 3 ||
			    memcmp(body, meta[k].body, meta[k].len))
				abort();
			while (len > meta[k].len)
				if (body[--len])
					abort();
		}
		if (k < nmeta)
			abort(); /* a block written is missing */
		pyfalco_capture_free(h);
	}
	for (i = 0; i < nmeta; i++)
		free(meta[i].body);
	fuzz_memfd_done(fd);
	return 0;
}
