/* SPDX-License-Identifier: Apache-2.0 */
/* The pyfalco_capture handle: settings, engine dispatch, the batch copy, stats. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "pyfalco_abi.h"

#ifndef PYFALCO_VERSION
#define PYFALCO_VERSION "0.0.0"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

uint32_t pyfalco_abi_version(void)
{
	return ((uint32_t)PYFALCO_LIB_ABI_MAJOR << 16) | PYFALCO_LIB_ABI_MINOR;
}

const char *pyfalco_version(void)
{
	return PYFALCO_VERSION;
}

#define PF_API_VERSION_STR                                                                           \
	STR(PYFALCO_API_VERSION_MAJOR) "." STR(PYFALCO_API_VERSION_MINOR) "." STR(PYFALCO_API_VERSION_PATCH)
#define PF_SCHEMA_VERSION_STR                                                                        \
	STR(PYFALCO_SCHEMA_VERSION_MAJOR) "." STR(PYFALCO_SCHEMA_VERSION_MINOR) "." STR(PYFALCO_SCHEMA_VERSION_PATCH)

const char *pyfalco_driver_api_version(void)
{
	return PF_API_VERSION_STR;
}

const char *pyfalco_driver_schema_version(void)
{
	return PF_SCHEMA_VERSION_STR;
}

const char *pyfalco_driver_versions(void)
{
	return "api=" PF_API_VERSION_STR " schema=" PF_SCHEMA_VERSION_STR;
}

int pf_fail(pyfalco_capture *h, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->error, sizeof(h->error), fmt, ap);
	va_end(ap);
	pf_log(h, PYFALCO_LOG_ERR, "%s", h->error);
	return err > 0 ? -err : (err ? err : -EINVAL);
}

void pf_log(pyfalco_capture *h, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!h->log_fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	h->log_fn(h->log_ctx, level, msg);
}

pyfalco_capture *pyfalco_capture_new(void)
{
	pyfalco_capture *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->settings.buffer_bytes = 8u << 20;
	h->settings.cpus_for_each_buffer = 2;
	h->settings.snaplen = PYFALCO_DEFAULT_SNAPLEN;
	snprintf(h->settings.kmod_device, sizeof(h->settings.kmod_device), "/dev/pyfalco");
	return h;
}

void pyfalco_capture_free(pyfalco_capture *h)
{
	if (!h)
		return;
	if (h->opened) {
		if (h->started && h->ops->stop)
			h->ops->stop(h);
		h->ops->close(h);
	}
	free(h);
}

const char *pyfalco_capture_error(const pyfalco_capture *h)
{
	return h ? h->error : "no handle";
}

void pyfalco_capture_set_log(pyfalco_capture *h, pyfalco_log_fn fn, void *ctx)
{
	h->log_fn = fn;
	h->log_ctx = ctx;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int pyfalco_capture_set(pyfalco_capture *h, const char *key, const char *value)
{
	struct pyfalco_settings *s = &h->settings;
	uint64_t v;

	h->error[0] = 0;
	if (!key || !value)
		return pf_fail(h, EINVAL, "setting: key and value are required");
	if (h->opened)
		return pf_fail(h, EBUSY, "setting %s: the capture is already open", key);
	if (!strcmp(key, "engine")) {
		if (strcmp(value, "modern_ebpf") && strcmp(value, "kmod") && strcmp(value, "replay") &&
		    strcmp(value, "nodriver"))
			return pf_fail(h, EINVAL, "setting engine: unknown engine '%s' (modern_ebpf, kmod, replay, nodriver)",
				       value);
		snprintf(s->engine, sizeof(s->engine), "%s", value);
	} else if (!strcmp(key, "buffer_bytes")) {
		if (parse_u64(value, &v) || v < 8192 || (v & (v - 1)) || v > (1ull << 31))
			return pf_fail(h, EINVAL,
				       "setting buffer_bytes: '%s' is not a power of two between 8 KiB and 2 GiB", value);
		s->buffer_bytes = v;
	} else if (!strcmp(key, "cpus_for_each_buffer")) {
		if (parse_u64(value, &v) || v > PYFALCO_MAX_CPUS)
			return pf_fail(h, EINVAL, "setting cpus_for_each_buffer: '%s' is not a number of CPUs", value);
		s->cpus_for_each_buffer = (uint32_t)v;
	} else if (!strcmp(key, "snaplen")) {
		if (parse_u64(value, &v) || v > PYFALCO_MAX_SNAPLEN)
			return pf_fail(h, EINVAL, "setting snaplen: '%s' is not between 0 and %d", value,
				       PYFALCO_MAX_SNAPLEN);
		s->snaplen = (uint32_t)v;
	} else if (!strcmp(key, "capture_file")) {
		if (strlen(value) >= sizeof(s->capture_file))
			return pf_fail(h, ENAMETOOLONG, "setting capture_file: path too long");
		snprintf(s->capture_file, sizeof(s->capture_file), "%s", value);
	} else if (!strcmp(key, "kmod_device")) {
		if (strlen(value) >= sizeof(s->kmod_device))
			return pf_fail(h, ENAMETOOLONG, "setting kmod_device: path too long");
		snprintf(s->kmod_device, sizeof(s->kmod_device), "%s", value);
	} else {
		return pf_fail(h, EINVAL, "setting: unknown key '%s'", key);
	}
	return 0;
}

static const struct pyfalco_engine_ops *find_engine(const char *name)
{
	static const struct pyfalco_engine_ops *const engines[] = {
		&pf_engine_bpf, &pf_engine_replay, &pf_engine_kmod, &pf_engine_nodriver,
	};
	size_t i;

	for (i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		if (!strcmp(engines[i]->name, name))
			return engines[i];
	return NULL;
}

int pyfalco_capture_open(pyfalco_capture *h)
{
	int rc;

	h->error[0] = 0;
	if (h->opened)
		return pf_fail(h, EBUSY, "open: the capture is already open");
	if (!h->settings.engine[0])
		return pf_fail(h, EINVAL, "open: no engine set (modern_ebpf, kmod, replay, nodriver)");
	h->ops = find_engine(h->settings.engine);
	if (!h->ops)
		return pf_fail(h, ENOTSUP, "open: engine '%s' is not built into this library", h->settings.engine);
	rc = h->ops->open(h);
	if (rc < 0)
		return rc;
	h->opened = 1;
	return 0;
}

static int need_open(pyfalco_capture *h, const char *what)
{
	if (!h->opened)
		return pf_fail(h, EBADF, "%s: the capture is not open", what);
	return 0;
}

int pyfalco_capture_select_syscalls(pyfalco_capture *h, const uint16_t *nrs, size_t count)
{
	uint8_t interest[PYFALCO_SYSCALL_SLOTS] = {0};
	size_t i;
	int rc;

	h->error[0] = 0;
	for (i = 0; i < count; i++) {
		if (nrs[i] >= PYFALCO_SYSCALL_SLOTS)
			return pf_fail(h, EINVAL, "select syscalls: syscall number %u out of range", nrs[i]);
		interest[nrs[i]] = 1;
	}
	memcpy(h->interest, interest, sizeof(interest));
	if (!h->opened || !h->ops->select_syscalls)
		return 0;
	rc = h->ops->select_syscalls(h, h->interest);
	return rc;
}

int pyfalco_capture_start(pyfalco_capture *h)
{
	int rc;

	h->error[0] = 0;
	if ((rc = need_open(h, "start")))
		return rc;
	if (h->started)
		return 0;
	if (h->ops->start && (rc = h->ops->start(h)) < 0)
		return rc;
	h->started = 1;
	return 0;
}

int pyfalco_capture_stop(pyfalco_capture *h)
{
	int rc;

	h->error[0] = 0;
	if ((rc = need_open(h, "stop")))
		return rc;
	if (!h->started)
		return 0;
	if (h->ops->stop && (rc = h->ops->stop(h)) < 0)
		return rc;
	h->started = 0;
	return 0;
}

int pyfalco_capture_next(pyfalco_capture *h, const uint8_t **evt, uint16_t *cpu, uint16_t *flags)
{
	int rc;

	if ((rc = need_open(h, "next")))
		return rc;
	rc = h->ops->next(h, evt, cpu, flags, 0);
	if (rc == 0)
		h->delivered++;
	return rc;
}

/* Mask value of next_batch_skip for a close exit that the caller applies straight from its
 * record (pyfalco.Inspector's closes no rule wants): instead of an entry of its own, its (ts, tid,
 * res, fd) is appended to the entry before it (copied event or run) as a "close trailer". An
 * entry with a trailer has PF_EF_CLOSES in its flags, its record padded to 8 bytes, then k items
 * of four 64-bit words (ts, tid, res, fd) in event order, and len = pad8(record len) + 32 * k
 * (the record's own hdr.len is unchanged). The events are applied in the same order as one by
 * one: right after the entry they follow. A close whose record is not the 2-parameter one
 * (lengths 8 and 8), or with no entry before it in the batch, is copied as any event. */
#define PF_MASK_CLOSE 3
#define PF_EF_CLOSES PYFALCO_EF_CLOSES /* pyfalco/inspector.py's _EF_CLOSES */
#define PF_CLOSE_REC_LEN (PYFALCO_EVT_HDR_SIZE + 4 + 16)

/* The batch copy of next_batch and next_batch_skip. A skipped event (skip mask) is appended to
 * the open run entry, or opens one; a copied event closes it. Runs and copied events alike
 * count toward max_events, so a batch of skipped events is as bounded as any. */
static int next_batch(pyfalco_capture *h, uint8_t *buf, size_t buflen, uint32_t max_events, int timeout_ms,
		      const uint8_t *skip, size_t masklen, size_t *used, uint32_t *nentries, uint32_t *nevents)
{
	size_t off = 0;
	size_t run = (size_t)-1; /* offset of the open run entry, if any */
	size_t last = (size_t)-1; /* offset of the last entry written, if any (close trailers) */
	uint32_t n = 0, entries = 0;
	int rc;

	*used = 0;
	*nentries = 0;
	*nevents = 0;
	if ((rc = need_open(h, "next batch")))
		return rc;
	while (n < max_events) {
		const uint8_t *evt;
		const struct pyfalco_evt_hdr *hdr;
		uint16_t cpu = 0, flags = 0;
		uint32_t len;
		size_t need;
		struct pyfalco_batch_entry *e;

		rc = h->ops->next(h, &evt, &cpu, &flags, n ? 0 : timeout_ms);
		if (rc != 0)
			break;
		hdr = (const struct pyfalco_evt_hdr *)evt;
		len = hdr->len;
		if (skip && hdr->type < masklen && skip[hdr->type] == PF_MASK_CLOSE && last != (size_t)-1 &&
		    len == PF_CLOSE_REC_LEN && hdr->nparams == 2) {
			uint16_t lens[2];
			uint64_t item[4];
			struct pyfalco_evt_hdr *lh;
			size_t at;

			memcpy(lens, evt + PYFALCO_EVT_HDR_SIZE, sizeof(lens));
			if (lens[0] == 8 && lens[1] == 8) {
				e = (struct pyfalco_batch_entry *)(buf + last);
				lh = (struct pyfalco_evt_hdr *)(buf + last + sizeof(*e));
				at = (e->flags & PF_EF_CLOSES) ? e->len : ((size_t)lh->len + 7) & ~(size_t)7;
				if (last + sizeof(*e) + at + sizeof(item) > buflen) {
					h->ops->unget(h);
					rc = 0;
					break;
				}
				if (!(e->flags & PF_EF_CLOSES)) {
					/* the record padded to 8 (its padding zeroed), then the trailer */
					memset(buf + last + sizeof(*e) + lh->len, 0, at - lh->len);
					e->flags |= PF_EF_CLOSES;
					run = (size_t)-1; /* a run's pairs can no longer grow */
				}
				item[0] = hdr->ts;
				item[1] = hdr->tid;
				memcpy(&item[2], evt + PYFALCO_EVT_HDR_SIZE + 4, 16);
				memcpy(buf + last + sizeof(*e) + at, item, sizeof(item));
				e->len = (uint32_t)(at + sizeof(item));
				off = last + sizeof(*e) + e->len;
				n++;
				continue;
			}
		}
		if (skip && hdr->type < masklen && (skip[hdr->type] == 1 || skip[hdr->type] == 2)) {
			struct pyfalco_evt_hdr *rh;
			uint64_t pair[2];
			uint16_t rtype = (uint16_t)(PYFALCO_SKIP_RUN_TYPE + 1 - skip[hdr->type]);

			/* a run holds events of one mask value: another value starts a new run */
			if (run != (size_t)-1 &&
			    ((struct pyfalco_evt_hdr *)(buf + run + sizeof(*e)))->type != rtype)
				run = (size_t)-1;
			if (run == (size_t)-1) {
				need = sizeof(*e) + PYFALCO_EVT_HDR_SIZE + sizeof(pair);
				if (off + need > buflen) {
					h->ops->unget(h);
					if (n == 0) {
						*used = need;
						return pf_fail(h, ENOSPC, "next batch: %zu bytes do not hold a run of "
							       "skipped events", buflen);
					}
					rc = 0;
					break;
				}
				run = off;
				last = off;
				e = (struct pyfalco_batch_entry *)(buf + run);
				e->cpu = cpu;
				e->flags = PYFALCO_EF_SKIP_RUN;
				e->len = PYFALCO_EVT_HDR_SIZE;
				rh = (struct pyfalco_evt_hdr *)(buf + run + sizeof(*e));
				rh->len = PYFALCO_EVT_HDR_SIZE;
				rh->type = rtype;
				rh->nparams = 0;
				entries++;
			}
			e = (struct pyfalco_batch_entry *)(buf + run);
			if (run + sizeof(*e) + e->len + sizeof(pair) > buflen) {
				h->ops->unget(h);
				rc = 0;
				break;
			}
			rh = (struct pyfalco_evt_hdr *)(buf + run + sizeof(*e));
			pair[0] = hdr->ts;
			pair[1] = hdr->tid;
			memcpy(buf + run + sizeof(*e) + e->len, pair, sizeof(pair));
			e->len += sizeof(pair);
			rh->len = e->len;
			rh->ts = hdr->ts;
			rh->tid = hdr->tid;
			rh->nparams++;
			off = (run + sizeof(*e) + e->len + 7) & ~(size_t)7;
			n++;
			continue;
		}
		need = (sizeof(*e) + len + 7) & ~(size_t)7;
		if (off + need > buflen) {
			/* keep it for the next call: the engine hands the same event out again */
			h->ops->unget(h);
			if (n == 0) {
				*used = need; /* what the caller's buffer must hold to take this event */
				return pf_fail(h, ENOSPC, "next batch: event of %u bytes does not fit in %zu bytes",
					       len, buflen);
			}
			rc = 0;
			break;
		}
		run = (size_t)-1;
		last = off;
		e = (struct pyfalco_batch_entry *)(buf + off);
		e->cpu = cpu;
		e->flags = flags;
		e->len = len;
		memcpy(buf + off + sizeof(*e), evt, len);
		off += need;
		n++;
		entries++;
	}
	*used = off;
	*nentries = entries;
	*nevents = n;
	h->delivered += n;
	if (n > 0)
		return 0;
	return rc;
}

int pyfalco_capture_next_batch(pyfalco_capture *h, uint8_t *buf, size_t buflen, uint32_t max_events,
			       int timeout_ms, size_t *used, uint32_t *nevents)
{
	uint32_t nentries;

	return next_batch(h, buf, buflen, max_events, timeout_ms, NULL, 0, used, &nentries, nevents);
}

int pyfalco_capture_next_batch_skip(pyfalco_capture *h, uint8_t *buf, size_t buflen, uint32_t max_events,
				    int timeout_ms, const uint8_t *skip, size_t masklen, size_t *used,
				    uint32_t *nentries, uint32_t *nevents)
{
	return next_batch(h, buf, buflen, max_events, timeout_ms, skip, masklen, used, nentries, nevents);
}

uint32_t pyfalco_stats_count(void)
{
	return PF_STAT_COUNT;
}

const char *pyfalco_stats_name(uint32_t i)
{
	static const char *const names[] = {
#define PF_STAT_NAME(name, desc) #name,
		PYFALCO_DRIVER_COUNTERS(PF_STAT_NAME) PYFALCO_LIB_COUNTERS(PF_STAT_NAME)
#undef PF_STAT_NAME
	};
	return i < PF_STAT_COUNT ? names[i] : NULL;
}

int pyfalco_capture_stats(pyfalco_capture *h, uint64_t *out, uint32_t n)
{
	uint64_t all[PF_STAT_COUNT] = {0};
	int rc;

	if ((rc = need_open(h, "stats")))
		return rc;
	if (h->ops->stats && (rc = h->ops->stats(h, all)) < 0)
		return rc;
	all[PF_STAT_n_evts_delivered] = h->delivered;
	if (n > PF_STAT_COUNT)
		n = PF_STAT_COUNT;
	memcpy(out, all, n * sizeof(uint64_t));
	return (int)n;
}

int pyfalco_capture_metadata(pyfalco_capture *h, uint32_t index, uint32_t *block_type, const uint8_t **body,
			     uint32_t *body_len)
{
	int rc;

	if ((rc = need_open(h, "metadata")))
		return rc;
	if (!h->ops->metadata)
		return -ENOENT;
	return h->ops->metadata(h, index, block_type, body, body_len);
}
