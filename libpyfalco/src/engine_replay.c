/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replay: events from a capture file (.scap, plain or gzip), in file order, through the same
 * vtable as the live engines. Needs no privilege.
 *
 * open() reads the section header and the metadata blocks up to the first event block; next()
 * reads event blocks and hands out the events the converter (scap_convert.c) produces: exit-only,
 * in the current libs layout. A section header in the event stream starts a new section of a
 * concatenated file: its metadata blocks are appended to the metadata list (after an entry for
 * the SHB itself, so callers can tell sections apart) and pending enter events are forgotten.
 *
 * Errors: a damaged block structure (bad lengths, bad magic, truncation, gzip errors) stops the
 * replay with a message naming the offset; the error is sticky. A damaged or unknown event inside
 * a sound block is skipped, counted (n_skipped_malformed / n_skipped_unknown) and logged.
 */
#include <errno.h>
#include <stdlib.h>

#include "engine.h"
#include "scap_file.h"

#define RP_MAX_SKIP_LOGS 20 /* skipped events logged at warning level; the rest at debug */

struct rp_meta {
	uint32_t type;
	uint32_t len;
	uint8_t *body;
};

struct replay {
	struct scap_reader rd;
	struct scap_conv conv;
	struct rp_meta *meta;
	size_t nmeta, capmeta;
	/* the first event block, read by open() */
	int have_block;
	uint32_t btype, blen;
	const uint8_t *bbody;
	/* the event last handed out */
	const uint8_t *cur;
	uint16_t cur_cpu, cur_flags;
	int unget;
	int err; /* sticky: once the file is unreadable, every next() says why */
	uint64_t n_records;
	uint64_t n_skip_logged;
};

static int add_meta(pyfalco_capture *h, struct replay *rp, uint32_t type, const uint8_t *body, uint32_t len)
{
	struct rp_meta *m;

	if (rp->nmeta == rp->capmeta) {
		size_t ncap = rp->capmeta ? rp->capmeta * 2 : 64;
		m = realloc(rp->meta, ncap * sizeof(*m));
		if (!m)
			return pf_fail(h, ENOMEM, "reading capture file metadata: out of memory");
		rp->meta = m;
		rp->capmeta = ncap;
	}
	m = &rp->meta[rp->nmeta];
	m->body = malloc(len ? len : 1);
	if (!m->body)
		return pf_fail(h, ENOMEM, "reading capture file metadata: out of memory");
	memcpy(m->body, body, len);
	m->type = type;
	m->len = len;
	rp->nmeta++;
	return 0;
}

static int rp_read_error(pyfalco_capture *h, struct replay *rp, int rc)
{
	rp->err = rc;
	return pf_fail(h, -rc, "reading capture file %s: %s", h->settings.capture_file, rp->rd.err);
}

static void rp_free(struct replay *rp)
{
	size_t i;

	scap_reader_close(&rp->rd);
	scap_conv_free(&rp->conv);
	for (i = 0; i < rp->nmeta; i++)
		free(rp->meta[i].body);
	free(rp->meta);
	free(rp);
}

static void rp_close(pyfalco_capture *h)
{
	if (h->engine_data)
		rp_free(h->engine_data);
	h->engine_data = NULL;
}

static int rp_open(pyfalco_capture *h)
{
	struct replay *rp;
	const uint8_t *body;
	uint32_t type, len;
	int rc;

	if (!h->settings.capture_file[0])
		return pf_fail(h, EINVAL, "opening capture file: no capture_file setting");
	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return pf_fail(h, ENOMEM, "opening capture file: out of memory");
	h->engine_data = rp;
	scap_conv_init(&rp->conv);
	rc = scap_reader_open(&rp->rd, h->settings.capture_file);
	if (rc < 0) {
		pf_fail(h, -rc, "%s", rp->rd.err);
		goto fail;
	}
	rc = scap_reader_next(&rp->rd, &type, &body, &len);
	if (rc == 1) {
		rc = pf_fail(h, EINVAL, "reading capture file %s: the file is empty", h->settings.capture_file);
		goto fail;
	}
	if (rc < 0) {
		rc = rp_read_error(h, rp, rc);
		goto fail;
	}
	if ((rc = scap_reader_check_shb(&rp->rd, body, len)) < 0 ||
	    (rc = add_meta(h, rp, type, body, len)) < 0) {
		if (rp->rd.err[0])
			rc = rp_read_error(h, rp, rc);
		goto fail;
	}
	/* metadata up to the first event block */
	for (;;) {
		rc = scap_reader_next(&rp->rd, &type, &body, &len);
		if (rc == 1) {
			pf_log(h, PYFALCO_LOG_INFO, "capture file %s has no events", h->settings.capture_file);
			break;
		}
		if (rc < 0) {
			rc = rp_read_error(h, rp, rc);
			goto fail;
		}
		switch (scap_block_kind(type)) {
		case SCAP_KIND_EVENT:
			rp->have_block = 1;
			rp->btype = type;
			rp->bbody = body;
			rp->blen = len;
			break;
		case SCAP_KIND_SHB:
			if ((rc = scap_reader_check_shb(&rp->rd, body, len)) < 0) {
				rc = rp_read_error(h, rp, rc);
				goto fail;
			}
			/* fall through */
		case SCAP_KIND_META:
			if ((rc = add_meta(h, rp, type, body, len)) < 0)
				goto fail;
			continue;
		default:
			pf_log(h, PYFALCO_LOG_DEBUG, "capture file %s: skipping block of unknown type 0x%x at offset %llu",
			       h->settings.capture_file, type, (unsigned long long)rp->rd.block_off);
			continue;
		}
		break;
	}
	return 0;
fail:
	rp_close(h);
	return rc;
}

static void log_skip(pyfalco_capture *h, struct replay *rp, uint64_t off, const char *what)
{
	int level = rp->n_skip_logged++ < RP_MAX_SKIP_LOGS ? PYFALCO_LOG_WARNING : PYFALCO_LOG_DEBUG;

	pf_log(h, level, "capture file %s: skipping event at offset %llu: %s", h->settings.capture_file,
	       (unsigned long long)off, what);
}

static int rp_next(pyfalco_capture *h, const uint8_t **evt, uint16_t *cpu, uint16_t *flags, int timeout_ms)
{
	struct replay *rp = h->engine_data;
	const uint8_t *body, *out;
	uint32_t type, len, out_len, hdr;
	int rc;

	if (rp->unget && rp->cur) {
		rp->unget = 0;
		goto deliver;
	}
	if (rp->err)
		return pf_fail(h, -rp->err, "reading capture file %s: %s", h->settings.capture_file, rp->rd.err);
	for (;;) {
		if (rp->have_block) {
			rp->have_block = 0;
			type = rp->btype;
			body = rp->bbody;
			len = rp->blen;
		} else {
			rc = scap_reader_next(&rp->rd, &type, &body, &len);
			if (rc == 1)
				return PYFALCO_EOF;
			if (rc < 0)
				return rp_read_error(h, rp, rc);
		}
		switch (scap_block_kind(type)) {
		case SCAP_KIND_EVENT:
			break;
		case SCAP_KIND_SHB:
			if ((rc = scap_reader_check_shb(&rp->rd, body, len)) < 0)
				return rp_read_error(h, rp, rc);
			scap_conv_reset(&rp->conv);
			pf_log(h, PYFALCO_LOG_INFO, "capture file %s: new section at offset %llu",
			       h->settings.capture_file, (unsigned long long)rp->rd.block_off);
			/* fall through */
		case SCAP_KIND_META:
			if ((rc = add_meta(h, rp, type, body, len)) < 0)
				return rc;
			continue;
		default:
			continue;
		}
		rp->n_records++;
		hdr = (type == SCAP_BT_EVF || type == SCAP_BT_EVF_V2 || type == SCAP_BT_EVF_V2_LARGE) ? 6 : 2;
		if (len < hdr) {
			rp->conv.n_malformed++;
			log_skip(h, rp, rp->rd.block_off, "event block too short");
			continue;
		}
		rc = scap_conv_event(&rp->conv, body + hdr, len - hdr,
				     type == SCAP_BT_EV || type == SCAP_BT_EV_OLD || type == SCAP_BT_EVF, &out, &out_len);
		if (rc == SCAP_CONV_CONSUMED)
			continue;
		if (rc == SCAP_CONV_SKIPPED_MALFORMED || rc == SCAP_CONV_SKIPPED_UNKNOWN) {
			log_skip(h, rp, rp->rd.block_off, rp->conv.why);
			continue;
		}
		if (rc < 0)
			return pf_fail(h, -rc, "reading capture file %s at offset %llu: out of memory",
				       h->settings.capture_file, (unsigned long long)rp->rd.block_off);
		rp->cur = out;
		rp->cur_cpu = scap_rd16(body);
		rp->cur_flags = (hdr == 6 && (scap_rd32(body + 2) & SCAP_DF_STATE_ONLY)) ? PYFALCO_EF_STATE_ONLY : 0;
		break;
	}
deliver:
	*evt = rp->cur;
	*cpu = rp->cur_cpu;
	*flags = rp->cur_flags;
	return 0;
}

static void rp_unget(pyfalco_capture *h)
{
	struct replay *rp = h->engine_data;

	if (rp->cur)
		rp->unget = 1;
}

static int rp_stats(pyfalco_capture *h, uint64_t *out)
{
	struct replay *rp = h->engine_data;

	out[PF_STAT_n_evts] += rp->n_records;
	out[PF_STAT_n_skipped_unknown] += rp->conv.n_unknown;
	out[PF_STAT_n_skipped_malformed] += rp->conv.n_malformed;
	return 0;
}

static int rp_metadata(pyfalco_capture *h, uint32_t index, uint32_t *type, const uint8_t **body, uint32_t *len)
{
	struct replay *rp = h->engine_data;

	if (index >= rp->nmeta)
		return -ENOENT;
	*type = rp->meta[index].type;
	*body = rp->meta[index].body;
	*len = rp->meta[index].len;
	return 0;
}

static int rp_select_syscalls(pyfalco_capture *h, const uint8_t *interest)
{
	return 0; /* a file holds what it holds */
}

const struct pyfalco_engine_ops pf_engine_replay = {
	.name = "replay",
	.open = rp_open,
	.select_syscalls = rp_select_syscalls,
	.next = rp_next,
	.unget = rp_unget,
	.stats = rp_stats,
	.metadata = rp_metadata,
	.close = rp_close,
};
