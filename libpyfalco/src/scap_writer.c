/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Capture files: the writer, in the profile that both Debian's sysdig 0.29 (libs 2022) and
 * current Falco read (SCAP_FORMAT.md section 13):
 *
 *   SHB 1.2 without options | metadata blocks given by the caller (MI, IL_V2, UL_V2, PL_V9 with
 *   the layout-A tail, FDL_V2: pyfalco/scap/metadata.py builds them) | EV_V2 / EVF_V2 blocks
 *   (the LARGE variants only for events that need more than 64 KiB).
 *
 * pyfalco's events are exit-only with every parameter of the current table. Old readers need
 * the enter events to track state, and readers older than the current table refuse events with
 * more parameters than they know, so each exit event of a syscall that existed in 2022 is
 * written as an enter+exit pair with the 2022 parameter counts: the enter event takes its
 * parameters from the exit event, by name. The 2022 layouts are prefixes of the current ones
 * (checked against both tables), so a 2022 exit event is the current one cut short. Reading the
 * pair back merges it again (scap_convert.c); the parameters that are neither in the 2022 exit
 * event nor in the enter event come back empty (docs/capture-files.md lists them), unless the
 * writer was opened with PYFALCO_WRITER_FULL_PARAMS. Events unknown to the 2022 table (codes
 * >= 336) are written as they are; sysdig 0.29 skips them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pyfalco/pyfalco.h"
#include "scap_file.h"

struct pyfalco_writer {
	gzFile gz;
	uint32_t flags;       /* PYFALCO_WRITER_* */
	int wrote_event;      /* metadata blocks must come before the first event */
	int failed;           /* a write failed: the file is unusable */
	uint64_t n_events;    /* events given to write_event / write_batch and written */
	uint64_t n_records;   /* event records in the file (enter + exit counted apart) */
	uint64_t n_bytes;     /* uncompressed bytes written */
	struct scap_buf enter; /* the enter event being built */
	char error[512];
};

static int wfail(pyfalco_writer *w, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int wfail(pyfalco_writer *w, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, ap);
	va_end(ap);
	return -err;
}

pyfalco_writer *pyfalco_writer_new(void)
{
	return calloc(1, sizeof(struct pyfalco_writer));
}

const char *pyfalco_writer_error(const pyfalco_writer *w)
{
	return w ? w->error : "no writer";
}

static int gz_out(pyfalco_writer *w, const void *p, size_t n)
{
	int errnum = Z_OK;
	const char *msg;

	if (!n)
		return 0;
	if (gzwrite(w->gz, p, (unsigned)n) == (int)n) {
		w->n_bytes += n;
		return 0;
	}
	w->failed = 1;
	msg = gzerror(w->gz, &errnum);
	if (errnum == Z_ERRNO) {
		int err = errno ? errno : EIO;
		return wfail(w, err, "writing capture file: %s", strerror(err));
	}
	return wfail(w, EIO, "writing capture file: %s", msg ? msg : "zlib error");
}

/* One block: header, the parts of the body, zero padding, trailer. */
static int put_block(pyfalco_writer *w, uint32_t type, const void *a, uint32_t alen, const void *b, uint32_t blen)
{
	static const uint8_t zeros[4];
	uint8_t hdr[8];
	uint32_t body = alen + blen, total = (8 + body + 4 + 3) & ~3u;
	int rc;

	scap_wr32(hdr, type);
	scap_wr32(hdr + 4, total);
	if ((rc = gz_out(w, hdr, 8)) || (rc = gz_out(w, a, alen)) || (rc = gz_out(w, b, blen)) ||
	    (rc = gz_out(w, zeros, total - 12 - body)) || (rc = gz_out(w, hdr + 4, 4)))
		return rc;
	return 0;
}

int pyfalco_writer_open(pyfalco_writer *w, const char *path, uint32_t flags)
{
	uint8_t shb[SCAP_SHB_BODY];
	int fd, rc;

	w->error[0] = 0;
	if (w->gz)
		return wfail(w, EBUSY, "opening capture file %s: the writer is already open", path);
	if (flags & ~(PYFALCO_WRITER_GZIP | PYFALCO_WRITER_FULL_PARAMS))
		return wfail(w, EINVAL, "opening capture file %s: unknown flags 0x%x", path, flags);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		int err = errno;
		return wfail(w, err, "opening capture file %s for writing: %s", path, strerror(err));
	}
	w->gz = gzdopen(fd, (flags & PYFALCO_WRITER_GZIP) ? "wb6" : "wbT");
	if (!w->gz) {
		close(fd);
		return wfail(w, ENOMEM, "opening capture file %s for writing: out of memory", path);
	}
	gzbuffer(w->gz, SCAP_GZ_BUFFER);
	w->flags = flags;
	w->wrote_event = w->failed = 0;
	w->n_events = w->n_records = w->n_bytes = 0;
	/* SHB 1.2, section length unknown, no options (sysdig 0.29 cannot skip them) */
	scap_wr32(shb, SCAP_SHB_MAGIC);
	scap_wr16(shb + 4, 1);
	scap_wr16(shb + 6, 2);
	scap_wr64(shb + 8, UINT64_MAX);
	if ((rc = put_block(w, SCAP_BT_SHB, shb, sizeof(shb), NULL, 0)))
		return rc;
	return 0;
}

static int need_open(pyfalco_writer *w, const char *what)
{
	if (!w->gz)
		return wfail(w, EBADF, "%s: the writer is not open", what);
	if (w->failed)
		return wfail(w, EIO, "%s: an earlier write failed", what);
	return 0;
}

int pyfalco_writer_write_block(pyfalco_writer *w, uint32_t block_type, const uint8_t *body, uint32_t len)
{
	int rc;

	w->error[0] = 0;
	if ((rc = need_open(w, "writing metadata block")))
		return rc;
	if (scap_block_kind(block_type) == SCAP_KIND_SHB || scap_block_kind(block_type) == SCAP_KIND_EVENT)
		return wfail(w, EINVAL, "writing metadata block: 0x%x is not a metadata block type", block_type);
	if (w->wrote_event)
		return wfail(w, EINVAL, "writing metadata block 0x%x: metadata blocks go before the first event",
			     block_type);
	if (len > SCAP_MAX_BLOCK - 12)
		return wfail(w, EINVAL, "writing metadata block 0x%x: %u bytes is more than the %u allowed", block_type,
			     len, SCAP_MAX_BLOCK - 12);
	return put_block(w, block_type, body, len, NULL, 0);
}

/* One event record in an EV_V2/EVF_V2 block (LARGE when needed). */
static int put_event(pyfalco_writer *w, const uint8_t *evt, uint32_t len, uint16_t cpu, int state_only)
{
	uint8_t pre[6];
	uint32_t npre = state_only ? 6 : 2, type;

	scap_wr16(pre, cpu);
	scap_wr32(pre + 2, SCAP_DF_STATE_ONLY);
	/* libs refuses a non-LARGE event block whose total length less its 8-byte header (so
	 * body, padding and trailer) exceeds 64 KiB (SCAP_FORMAT.md section 4, point 7) */
	if (((npre + len + 4 + 3) & ~3u) > 65536)
		type = state_only ? SCAP_BT_EVF_V2_LARGE : SCAP_BT_EV_V2_LARGE;
	else
		type = state_only ? SCAP_BT_EVF_V2 : SCAP_BT_EV_V2;
	w->n_records++;
	return put_block(w, type, pre, npre, evt, len);
}

/* The event cut to its first n parameters (a prefix: same bytes, shorter lengths array). */
static int put_event_prefix(pyfalco_writer *w, const uint8_t *evt, const uint32_t *lens, uint32_t nparams, uint32_t n,
			    uint16_t cpu, int state_only)
{
	uint32_t wd = scap_len_width(scap_rd16(evt + 20)), i, data = 0, len;
	uint8_t hdr[PYFALCO_EVT_HDR_SIZE];
	int rc;

	if (n >= nparams)
		return put_event(w, evt, scap_rd32(evt + 16), cpu, state_only);
	for (i = 0; i < n; i++)
		data += lens[i];
	len = PYFALCO_EVT_HDR_SIZE + wd * n + data;
	if (scap_buf_reserve(&w->enter, len))
		return wfail(w, ENOMEM, "writing event: out of memory");
	memcpy(hdr, evt, PYFALCO_EVT_HDR_SIZE);
	scap_wr32(hdr + 16, len);
	scap_wr32(hdr + 22, n);
	memcpy(w->enter.data, hdr, PYFALCO_EVT_HDR_SIZE);
	memcpy(w->enter.data + PYFALCO_EVT_HDR_SIZE, evt + PYFALCO_EVT_HDR_SIZE, wd * n);
	memcpy(w->enter.data + PYFALCO_EVT_HDR_SIZE + wd * n, evt + PYFALCO_EVT_HDR_SIZE + wd * nparams, data);
	rc = put_event(w, w->enter.data, len, cpu, state_only);
	return rc;
}

/* The 2022 enter event of exit event evt: its parameters, by name, from the exit event. */
static int put_enter(pyfalco_writer *w, const uint8_t *evt, const uint32_t *lens, const uint32_t *offs,
		     uint32_t nparams, uint16_t cpu, int state_only)
{
	uint16_t xcode = scap_rd16(evt + 20), ecode = xcode - 1;
	const struct pyfalco_event_info *x = &pyfalco_event_table[xcode], *e = &pyfalco_event_table[ecode];
	uint32_t n = e->nparams_2022 < e->nparams ? e->nparams_2022 : e->nparams, i, j, len, data = 0;
	int src[SCAP_MAX_PARAMS];
	uint8_t *o;

	for (i = 0; i < n; i++) {
		src[i] = -1;
		for (j = 0; j < x->nparams && j < nparams && j < SCAP_MAX_PARAMS; j++)
			if (!strcmp(e->params[i].name, x->params[j].name)) {
				src[i] = (int)j;
				break;
			}
		if (src[i] >= 0)
			data += lens[src[i]];
	}
	len = PYFALCO_EVT_HDR_SIZE + 2 * n + data;
	if (scap_buf_reserve(&w->enter, len))
		return wfail(w, ENOMEM, "writing event: out of memory");
	o = w->enter.data;
	memcpy(o, evt, 16); /* ts, tid */
	scap_wr32(o + 16, len);
	scap_wr16(o + 20, ecode);
	scap_wr32(o + 22, n);
	o += PYFALCO_EVT_HDR_SIZE;
	for (i = 0; i < n; i++, o += 2)
		scap_wr16(o, (uint16_t)(src[i] >= 0 ? lens[src[i]] : 0));
	for (i = 0; i < n; i++) {
		if (src[i] < 0)
			continue;
		memcpy(o, evt + offs[src[i]], lens[src[i]]);
		o += lens[src[i]];
	}
	return put_event(w, w->enter.data, len, cpu, state_only);
}

int pyfalco_writer_write_event(pyfalco_writer *w, const uint8_t *evt, uint16_t cpu, uint16_t flags)
{
	uint32_t lens[SCAP_MAX_PARAMS], offs[SCAP_MAX_PARAMS], len, nparams, n22;
	const struct pyfalco_event_info *info;
	int state_only = flags & PYFALCO_EF_STATE_ONLY, rc;
	char why[256];
	uint16_t type;

	w->error[0] = 0;
	if ((rc = need_open(w, "writing event")))
		return rc;
	if (!evt)
		return wfail(w, EINVAL, "writing event: no event");
	len = scap_rd32(evt + 16);
	if (scap_event_parse(evt, len, lens, offs, SCAP_MAX_PARAMS, why, sizeof(why)))
		return wfail(w, EINVAL, "writing event: %s", why);
	if (len > SCAP_MAX_BLOCK - 32)
		return wfail(w, EINVAL, "writing event: %u bytes is more than the %u allowed", len, SCAP_MAX_BLOCK - 32);
	type = scap_rd16(evt + 20);
	nparams = scap_rd32(evt + 22);
	w->wrote_event = 1;
	if (type >= PPM_EVENT_MAX || pyfalco_event_table[type].nparams_2022 == 0xFF || nparams > SCAP_MAX_PARAMS) {
		rc = put_event(w, evt, len, cpu, state_only);
		goto out;
	}
	info = &pyfalco_event_table[type];
	n22 = (w->flags & PYFALCO_WRITER_FULL_PARAMS) ? nparams : info->nparams_2022;
	if ((type & 1) && scap_paired_exit(type - 1) == type &&
	    (rc = put_enter(w, evt, lens, offs, nparams, cpu, state_only)))
		goto out;
	rc = put_event_prefix(w, evt, lens, nparams, n22, cpu, state_only);
out:
	if (!rc)
		w->n_events++;
	return rc;
}

int pyfalco_writer_write_batch(pyfalco_writer *w, const uint8_t *buf, size_t used, uint32_t nevents,
			       const uint8_t *modes, uint32_t *written)
{
	size_t off = 0;
	uint32_t i;
	int rc;

	*written = 0;
	for (i = 0; i < nevents; i++) {
		struct pyfalco_batch_entry e;
		uint8_t mode = modes ? modes[i] : PYFALCO_WRITE_EVENT;

		if (off + sizeof(e) > used)
			return wfail(w, EINVAL, "writing batch: entry %u outside the %zu bytes of the batch", i, used);
		memcpy(&e, buf + off, sizeof(e));
		if (e.len < PYFALCO_EVT_HDR_SIZE || off + sizeof(e) + e.len > used ||
		    scap_rd32(buf + off + sizeof(e) + 16) != e.len)
			return wfail(w, EINVAL, "writing batch: entry %u has a bad length %u", i, e.len);
		if (mode != PYFALCO_WRITE_SKIP) {
			uint16_t flags = e.flags | (mode == PYFALCO_WRITE_STATE_ONLY ? PYFALCO_EF_STATE_ONLY : 0);
			if ((rc = pyfalco_writer_write_event(w, buf + off + sizeof(e), e.cpu, flags)))
				return rc;
			(*written)++;
		}
		off += (sizeof(e) + e.len + 7) & ~(size_t)7;
	}
	return 0;
}

int pyfalco_writer_stats(const pyfalco_writer *w, uint64_t *events, uint64_t *records, uint64_t *bytes)
{
	if (events)
		*events = w->n_events;
	if (records)
		*records = w->n_records;
	if (bytes)
		*bytes = w->n_bytes;
	return 0;
}

int pyfalco_writer_close(pyfalco_writer *w)
{
	int rc, err = 0;

	if (!w || !w->gz)
		return 0;
	rc = gzclose(w->gz);
	w->gz = NULL;
	if (rc != Z_OK && !w->failed) {
		err = rc == Z_ERRNO ? (errno ? errno : EIO) : EIO;
		wfail(w, err, "closing capture file: %s", rc == Z_ERRNO ? strerror(err) : "zlib error");
	}
	return w->failed ? -EIO : -err;
}

void pyfalco_writer_free(pyfalco_writer *w)
{
	if (!w)
		return;
	pyfalco_writer_close(w);
	scap_buf_free(&w->enter);
	free(w);
}
