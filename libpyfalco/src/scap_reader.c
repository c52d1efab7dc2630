/* SPDX-License-Identifier: Apache-2.0 */
/* Capture files: the block reader. Plain and gzip files alike go through zlib's gzread, which
 * reads a plain file as it is (SCAP_FORMAT.md section 1). Offsets in messages are offsets in
 * the uncompressed stream, which for plain files are the file offsets. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "scap_file.h"

int scap_buf_reserve(struct scap_buf *b, size_t cap)
{
	uint8_t *p;
	size_t n;

	if (cap <= b->cap)
		return 0;
	n = b->cap ? b->cap : 256;
	while (n < cap)
		n *= 2;
	p = realloc(b->data, n);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = n;
	return 0;
}

void scap_buf_free(struct scap_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

enum scap_block_kind scap_block_kind(uint32_t type)
{
	switch (type) {
	case SCAP_BT_SHB:
		return SCAP_KIND_SHB;
	case SCAP_BT_MI: case SCAP_BT_MI_OLD:
	case SCAP_BT_PL_V1: case SCAP_BT_PL_V1_OLD: case SCAP_BT_PL_V2: case SCAP_BT_PL_V2_OLD:
	case SCAP_BT_PL_V3: case SCAP_BT_PL_V3_OLD: case SCAP_BT_PL_V4: case SCAP_BT_PL_V5:
	case SCAP_BT_PL_V6: case SCAP_BT_PL_V7: case SCAP_BT_PL_V8: case SCAP_BT_PL_V9:
	case SCAP_BT_FDL: case SCAP_BT_FDL_OLD: case SCAP_BT_FDL_V2:
	case SCAP_BT_IL: case SCAP_BT_IL_OLD: case SCAP_BT_IL_V2:
	case SCAP_BT_UL: case SCAP_BT_UL_OLD: case SCAP_BT_UL_V2:
		return SCAP_KIND_META;
	case SCAP_BT_EV: case SCAP_BT_EV_OLD: case SCAP_BT_EV_V2: case SCAP_BT_EV_V2_LARGE:
	case SCAP_BT_EVF: case SCAP_BT_EVF_V2: case SCAP_BT_EVF_V2_LARGE:
		return SCAP_KIND_EVENT;
	default:
		return SCAP_KIND_UNKNOWN;
	}
}

static int fail(struct scap_reader *r, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct scap_reader *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	return -err;
}

/* Why gzread stopped short: zlib's message, or "" at a plain end of file. */
static const char *gz_why(struct scap_reader *r)
{
	int errnum = Z_OK;
	const char *msg = gzerror(r->gz, &errnum);

	if (errnum == Z_ERRNO)
		return strerror(errno);
	if (errnum == Z_OK || errnum == Z_STREAM_END)
		return "";
	return msg ? msg : "zlib error";
}

/* Reads up to n bytes; returns the count read (short only at the end of the data or on error). */
static size_t read_some(struct scap_reader *r, uint8_t *dst, size_t n)
{
	size_t got = 0;

	while (got < n) {
		unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
		int k = gzread(r->gz, dst + got, chunk);

		if (k <= 0)
			break;
		got += (size_t)k;
	}
	return got;
}

int scap_reader_open(struct scap_reader *r, const char *path)
{
	int fd;

	memset(r, 0, sizeof(*r));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		return fail(r, err, "opening capture file %s: %s", path, strerror(err));
	}
	r->gz = gzdopen(fd, "rb");
	if (!r->gz) {
		close(fd);
		return fail(r, ENOMEM, "opening capture file %s: out of memory", path);
	}
	gzbuffer(r->gz, SCAP_GZ_BUFFER);
	return 0;
}

void scap_reader_close(struct scap_reader *r)
{
	if (r->gz)
		gzclose(r->gz);
	r->gz = NULL;
	scap_buf_free(&r->buf);
}

int scap_reader_next(struct scap_reader *r, uint32_t *type, const uint8_t **body, uint32_t *body_len)
{
	uint8_t hdr[8];
	uint32_t total, rest, limit;
	size_t got, n;
	enum scap_block_kind kind;

	r->block_off = r->off;
	got = read_some(r, hdr, sizeof(hdr));
	if (got == 0) {
		const char *why = gz_why(r);
		if (*why)
			return fail(r, EIO, "reading block header at offset %llu: %s", (unsigned long long)r->off, why);
		return 1;
	}
	if (got < sizeof(hdr)) {
		const char *why = gz_why(r);
		return fail(r, EIO, "truncated block header at offset %llu: %zu of 8 bytes%s%s",
			    (unsigned long long)r->off, got, *why ? ": " : "", why);
	}
	*type = scap_rd32(hdr);
	total = scap_rd32(hdr + 4);
	kind = scap_block_kind(*type);
	if (r->off == 0 && *type != SCAP_BT_SHB)
		return fail(r, EINVAL, "not a capture file: block type 0x%08x at offset 0, a section header block "
			    "(0x0a0d0d0a) expected", *type);
	if (total < 12)
		return fail(r, EINVAL, "bad block length %u at offset %llu (block type 0x%x): less than 12 bytes",
			    total, (unsigned long long)r->off, *type);
	limit = SCAP_MAX_BLOCK;
	if (kind == SCAP_KIND_EVENT && *type != SCAP_BT_EV_V2_LARGE && *type != SCAP_BT_EVF_V2_LARGE)
		limit = SCAP_MAX_SMALL_BLOCK;
	if (total - 8 > limit)
		return fail(r, EINVAL, "bad block length %u at offset %llu (block type 0x%x): more than the %u bytes "
			    "allowed for this block type", total, (unsigned long long)r->off, *type, limit);
	rest = total - 8;
	/* read in steps: memory grows with the data actually present, not with the length field */
	r->buf.len = 0;
	while (r->buf.len < rest) {
		n = rest - r->buf.len;
		if (n > SCAP_READ_STEP)
			n = SCAP_READ_STEP;
		if (scap_buf_reserve(&r->buf, r->buf.len + n))
			return fail(r, ENOMEM, "reading block at offset %llu: out of memory for %u bytes",
				    (unsigned long long)r->off, total);
		got = read_some(r, r->buf.data + r->buf.len, n);
		r->buf.len += got;
		if (got < n) {
			const char *why = gz_why(r);
			return fail(r, EIO, "truncated block at offset %llu (block type 0x%x): length %u, only %zu bytes "
				    "in the file%s%s", (unsigned long long)r->off, *type, total, r->buf.len + 8,
				    *why ? ": " : "", why);
		}
	}
	if (kind != SCAP_KIND_EVENT && scap_rd32(r->buf.data + rest - 4) != total)
		return fail(r, EINVAL, "bad block at offset %llu (block type 0x%x): trailer length %u differs from "
			    "header length %u", (unsigned long long)r->off, *type, scap_rd32(r->buf.data + rest - 4), total);
	r->off += total;
	*body = r->buf.data;
	*body_len = rest - 4;
	return 0;
}

int scap_reader_check_shb(struct scap_reader *r, const uint8_t *body, uint32_t len)
{
	uint32_t magic;
	uint16_t major;

	if (len < SCAP_SHB_BODY)
		return fail(r, EINVAL, "bad section header at offset %llu: %u bytes, at least 16 expected",
			    (unsigned long long)r->block_off, len);
	magic = scap_rd32(body);
	major = scap_rd16(body + 4);
	if (magic == SCAP_SHB_MAGIC_SWAPPED)
		return fail(r, EINVAL, "bad magic number at offset %llu: a big-endian capture file, which no "
			    "reader supports", (unsigned long long)r->block_off + 8);
	if (magic != SCAP_SHB_MAGIC)
		return fail(r, EINVAL, "bad magic number 0x%08x at offset %llu (expected 0x%08x)", magic,
			    (unsigned long long)r->block_off + 8, SCAP_SHB_MAGIC);
	if (major > 1)
		return fail(r, ENOTSUP, "section header at offset %llu: format version %u.%u is newer than 1.x",
			    (unsigned long long)r->block_off, major, scap_rd16(body + 6));
	return 0;
}
