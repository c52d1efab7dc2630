/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Capture files: turns the events of any producer into pyfalco's one in-memory model, the
 * exit-only events of the current libs table (SCAP_FORMAT.md section 12, "the new event model"):
 *
 *   - a v1 header (no nparams) gets a v2 header; nparams is inferred as libs does (11.2);
 *   - an enter event whose syscall has an exit event is kept per thread until that exit comes,
 *     and its parameters fill the exit's missing ones (OPENAT_2_E + OPENAT_2_X/6 -> OPENAT_2_X/7);
 *   - an exit event with fewer parameters than the current table gets the rest from its enter
 *     event, matched by name, or as empty (zero-length) parameters;
 *   - an old event version (EF_OLD_VERSION) becomes the current event of the same name, its
 *     parameters matched by name, when every one of them has a place there (EXECVE_16_X ->
 *     EXECVE_19_X, OPENAT_X -> OPENAT_2_X, DUP_X -> DUP_1_X, ...); otherwise it is passed on as
 *     it is, like the events that have no current version (k8s, mesos, tracer).
 *
 * The recipe for each source event code (its "plan") is worked out from the event table the
 * first time the code is seen, so the per-event work is copying bytes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "scap_file.h"

/* Fixed on-disk width of a parameter type; 0 = variable (section 11.4). */
static uint32_t pt_size(uint8_t t)
{
	switch (t) {
	case PT_INT8: case PT_UINT8: case PT_FLAGS8: case PT_ENUMFLAGS8: case PT_SIGTYPE: case PT_L4PROTO:
	case PT_SOCKFAMILY:
		return 1;
	case PT_INT16: case PT_UINT16: case PT_FLAGS16: case PT_ENUMFLAGS16: case PT_SYSCALLID: case PT_PORT:
		return 2;
	case PT_INT32: case PT_UINT32: case PT_FLAGS32: case PT_ENUMFLAGS32: case PT_UID: case PT_GID:
	case PT_MODE: case PT_BOOL: case PT_SIGSET: case PT_FD32: case PT_PID32: case PT_IPV4ADDR:
		return 4;
	case PT_INT64: case PT_UINT64: case PT_ERRNO: case PT_FD: case PT_PID: case PT_RELTIME:
	case PT_ABSTIME: case PT_DOUBLE:
		return 8;
	case PT_IPV6ADDR:
		return 16;
	default:
		return 0;
	}
}

static int pt_signed(uint8_t t)
{
	switch (t) {
	case PT_INT8: case PT_INT16: case PT_INT32: case PT_INT64: case PT_ERRNO: case PT_FD: case PT_PID:
	case PT_FD32: case PT_PID32:
		return 1;
	default:
		return 0;
	}
}

int scap_paired_exit(uint16_t code)
{
	const struct pyfalco_event_info *e, *x;

	if (code & 1 || code + 1 >= PPM_EVENT_MAX)
		return -1;
	e = &pyfalco_event_table[code];
	x = &pyfalco_event_table[code + 1];
	if ((e->flags & EF_UNUSED) || (x->flags & EF_UNUSED) || strcmp(e->name, x->name))
		return -1;
	return code + 1;
}

int scap_event_parse(const uint8_t *evt, uint32_t avail, uint32_t *lens, uint32_t *offs, uint32_t max, char *why,
		     size_t whylen)
{
	uint32_t len, nparams, w, i, l;
	uint64_t off;
	uint16_t type;

	if (avail < PYFALCO_EVT_HDR_SIZE) {
		snprintf(why, whylen, "record of %u bytes is shorter than the 26-byte header", avail);
		return -1;
	}
	len = scap_rd32(evt + 16);
	type = scap_rd16(evt + 20);
	nparams = scap_rd32(evt + 22);
	if (len < PYFALCO_EVT_HDR_SIZE || len > avail) {
		snprintf(why, whylen, "event type %u: length %u outside the %u bytes of its block", type, len, avail);
		return -1;
	}
	w = scap_len_width(type);
	off = PYFALCO_EVT_HDR_SIZE + (uint64_t)w * nparams;
	if (off > len) {
		snprintf(why, whylen, "event type %u: %u parameter lengths do not fit in length %u", type, nparams, len);
		return -1;
	}
	for (i = 0; i < nparams; i++) {
		const uint8_t *p = evt + PYFALCO_EVT_HDR_SIZE + (size_t)w * i;
		l = w == 2 ? scap_rd16(p) : scap_rd32(p);
		if (i < max) {
			lens[i] = l;
			offs[i] = (uint32_t)off;
		}
		off += l;
		if (off > len) {
			snprintf(why, whylen, "event type %u: parameter %u length %u exceeds event length %u", type, i, l,
				 len);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* plans */

struct scap_plan_param {
	int8_t exit_idx;  /* parameter of the source event, -1 none */
	int8_t enter_idx; /* parameter of the enter event, -1 none */
};

struct scap_plan {
	uint16_t target;     /* event code produced */
	int32_t enter_code;  /* enter event merged in, -1 none */
	uint8_t positional;  /* target == source: parameters are taken by position */
	uint8_t nparams;     /* of the target */
	struct scap_plan_param p[];
};

/* The syscall behind old accept4 events is accept4, though the old tables call them accept. */
static int successor_override(uint16_t code)
{
	switch (code) {
	case PPME_SOCKET_ACCEPT4_X:
	case PPME_SOCKET_ACCEPT4_5_X:
		return PPME_SOCKET_ACCEPT4_6_X;
	default:
		return -1;
	}
}

/* Name under which the source carries target parameter `name` (renames across versions);
 * NULL when the source cannot carry it. */
static const char *source_name(uint16_t target, uint16_t source, const char *name)
{
	if (target == source)
		return name;
	if (target == PPME_SYSCALL_EXECVE_19_X || target == PPME_SYSCALL_EXECVEAT_X) {
		/* before EXECVE_19 grew a real pgid, the process group parameter was called pgid but
		 * held what is now vpgid */
		if (!strcmp(name, "vpgid"))
			return "pgid";
		if (!strcmp(name, "pgid"))
			return NULL;
	}
	if (target == PPME_SYSCALL_DUP_1_X && !strcmp(name, "oldfd"))
		return "fd"; /* DUP_E's fd */
	return name;
}

static int find_param(uint16_t code, const char *name)
{
	const struct pyfalco_event_info *e = &pyfalco_event_table[code];
	int i;

	if (!name)
		return -1;
	for (i = 0; i < e->nparams; i++)
		if (!strcmp(e->params[i].name, name))
			return i;
	return -1;
}

/* Can every parameter of `code` (and of its enter event) go somewhere in `target`? */
static int maps_fully(uint16_t code, uint16_t target)
{
	const struct pyfalco_event_info *s = &pyfalco_event_table[code];
	const struct pyfalco_event_info *t = &pyfalco_event_table[target];
	int i, j, found;

	for (i = 0; i < s->nparams; i++) {
		found = 0;
		for (j = 0; j < t->nparams && !found; j++) {
			const char *n = source_name(target, code, t->params[j].name);
			found = n && !strcmp(n, s->params[i].name);
		}
		if (!found)
			return 0;
	}
	return 1;
}

static int successor(uint16_t code)
{
	const struct pyfalco_event_info *s = &pyfalco_event_table[code];
	int t, best = -1;

	if (!(s->flags & EF_OLD_VERSION))
		return code;
	t = successor_override(code);
	if (t >= 0)
		return t;
	for (t = 0; t < PPM_EVENT_MAX; t++) {
		const struct pyfalco_event_info *e = &pyfalco_event_table[t];
		if ((t & 1) != (code & 1) || (e->flags & (EF_OLD_VERSION | EF_UNUSED)) || strcmp(e->name, s->name))
			continue;
		/* an enter event that has an exit is not a successor of an enter-only event */
		if (!(code & 1) && scap_paired_exit((uint16_t)t) >= 0)
			continue;
		best = t;
	}
	if (best < 0 || !maps_fully(code, (uint16_t)best))
		return code;
	return best;
}

static struct scap_plan *build_plan(uint16_t code)
{
	const struct pyfalco_event_info *t;
	struct scap_plan *p;
	int target = successor(code), i;

	t = &pyfalco_event_table[target];
	p = calloc(1, sizeof(*p) + t->nparams * sizeof(p->p[0]));
	if (!p)
		return NULL;
	p->target = (uint16_t)target;
	p->nparams = t->nparams;
	p->positional = target == code;
	p->enter_code = (code & 1) && scap_paired_exit(code - 1) == code ? code - 1 : -1;
	for (i = 0; i < t->nparams; i++) {
		const char *n = source_name((uint16_t)target, code, t->params[i].name);
		p->p[i].exit_idx = (int8_t)(p->positional ? i : find_param(code, n));
		p->p[i].enter_idx = (int8_t)(p->enter_code >= 0 ? find_param((uint16_t)p->enter_code, n) : -1);
	}
	return p;
}

/* ------------------------------------------------------------------------------------------ */
/* pending enter events, per thread: open addressing on tid, never shrinks (bounded by the
 * number of threads in the file) */

struct scap_pending {
	uint64_t tid;
	int32_t code; /* -1: slot holds no enter event */
	uint8_t used;
	struct scap_buf evt;
};

static uint64_t tid_hash(uint64_t tid)
{
	tid ^= tid >> 33;
	tid *= 0xff51afd7ed558ccdull;
	tid ^= tid >> 33;
	return tid;
}

static struct scap_pending *pending_find(struct scap_conv *c, uint64_t tid, int create)
{
	size_t i, mask;

	if (create && (c->pending_used + 1) * 2 > c->pending_cap) {
		size_t ncap = c->pending_cap ? c->pending_cap * 2 : 256, j;
		struct scap_pending *n = calloc(ncap, sizeof(*n));
		if (!n)
			return NULL;
		for (j = 0; j < c->pending_cap; j++) {
			struct scap_pending *o = &c->pending[j];
			if (!o->used)
				continue;
			for (i = tid_hash(o->tid) & (ncap - 1); n[i].used; i = (i + 1) & (ncap - 1))
				;
			n[i] = *o;
		}
		free(c->pending);
		c->pending = n;
		c->pending_cap = ncap;
	}
	if (!c->pending_cap)
		return NULL;
	mask = c->pending_cap - 1;
	for (i = tid_hash(tid) & mask; c->pending[i].used; i = (i + 1) & mask)
		if (c->pending[i].tid == tid)
			return &c->pending[i];
	if (!create)
		return NULL;
	c->pending[i].used = 1;
	c->pending[i].tid = tid;
	c->pending[i].code = -1;
	c->pending_used++;
	return &c->pending[i];
}

void scap_conv_init(struct scap_conv *c)
{
	memset(c, 0, sizeof(*c));
}

void scap_conv_reset(struct scap_conv *c)
{
	size_t i;

	for (i = 0; i < c->pending_cap; i++)
		c->pending[i].code = -1;
}

void scap_conv_free(struct scap_conv *c)
{
	size_t i;

	for (i = 0; i < PPM_EVENT_MAX; i++)
		free(c->plans[i]);
	for (i = 0; i < c->pending_cap; i++)
		scap_buf_free(&c->pending[i].evt);
	free(c->pending);
	scap_buf_free(&c->v2);
	scap_buf_free(&c->out);
	memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------------------------------ */

static int skip(struct scap_conv *c, int kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int skip(struct scap_conv *c, int kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	if (kind == SCAP_CONV_SKIPPED_UNKNOWN)
		c->n_unknown++;
	else
		c->n_malformed++;
	return kind;
}

/* v1 record -> v2 record in c->v2: nparams is the largest count, from the table's down, whose
 * lengths add up to the record length (SCAP_FORMAT.md 11.2). */
static int v1_to_v2(struct scap_conv *c, const uint8_t *evt, uint32_t avail, const uint8_t **out)
{
	uint32_t len, w, n, i;
	uint16_t type;

	if (avail < SCAP_EVT_V1_HDR)
		return skip(c, SCAP_CONV_SKIPPED_MALFORMED, "v1 record of %u bytes is shorter than its header", avail);
	len = scap_rd32(evt + 16);
	type = scap_rd16(evt + 20);
	if (len < SCAP_EVT_V1_HDR || len > avail)
		return skip(c, SCAP_CONV_SKIPPED_MALFORMED, "event type %u: length %u outside the %u bytes of its block",
			    type, len, avail);
	if (type >= PPM_EVENT_MAX)
		return skip(c, SCAP_CONV_SKIPPED_UNKNOWN, "unknown event type %u", type);
	w = scap_len_width(type);
	for (n = pyfalco_event_table[type].nparams + 1; n-- > 0;) {
		uint64_t total = SCAP_EVT_V1_HDR + (uint64_t)w * n;
		if (total > len)
			continue;
		for (i = 0; i < n; i++) {
			const uint8_t *p = evt + SCAP_EVT_V1_HDR + w * i;
			total += w == 2 ? scap_rd16(p) : scap_rd32(p);
		}
		if (total == len)
			break;
	}
	if (n == (uint32_t)-1)
		return skip(c, SCAP_CONV_SKIPPED_MALFORMED,
			    "event type %u: no parameter count matches length %u (v1 header)", type, len);
	if (scap_buf_reserve(&c->v2, len + 4))
		return -ENOMEM;
	memcpy(c->v2.data, evt, 16);
	scap_wr32(c->v2.data + 16, len + 4);
	scap_wr16(c->v2.data + 20, type);
	scap_wr32(c->v2.data + 22, n);
	memcpy(c->v2.data + PYFALCO_EVT_HDR_SIZE, evt + SCAP_EVT_V1_HDR, len - SCAP_EVT_V1_HDR);
	*out = c->v2.data;
	return 0;
}

/* Copies one parameter, converting the width of integers when the types differ. */
static uint32_t put_param(uint8_t *dst, const uint8_t *src, uint32_t len, uint8_t stype, uint8_t dtype)
{
	uint32_t sw = pt_size(stype), dw = pt_size(dtype);
	uint64_t v = 0;

	if (!len)
		return 0;
	if (sw && dw && sw != dw && len == sw) {
		memcpy(&v, src, sw);
		if (pt_signed(stype) && sw < 8 && (v >> (sw * 8 - 1)) & 1)
			v |= ~0ull << (sw * 8);
		memcpy(dst, &v, dw);
		return dw;
	}
	if (sw != dw && (!sw || !dw))
		return 0; /* a fixed value where a buffer is expected, or the reverse: no value */
	memcpy(dst, src, len);
	return len;
}

static uint32_t param_len_as(uint32_t len, uint8_t stype, uint8_t dtype)
{
	uint32_t sw = pt_size(stype), dw = pt_size(dtype);

	if (!len)
		return 0;
	if (sw && dw && sw != dw && len == sw)
		return dw;
	if (sw != dw && (!sw || !dw))
		return 0;
	return len;
}

int scap_conv_event(struct scap_conv *c, const uint8_t *evt, uint32_t avail, int v1, const uint8_t **out,
		    uint32_t *out_len)
{
	uint32_t lens[SCAP_MAX_PARAMS], offs[SCAP_MAX_PARAMS];
	uint32_t elens[SCAP_MAX_PARAMS], eoffs[SCAP_MAX_PARAMS];
	uint32_t len, nparams, en = 0, i, w, total;
	const struct pyfalco_event_info *info;
	const struct scap_plan *plan;
	const uint8_t *enter = NULL;
	struct scap_pending *pend;
	uint16_t type;
	uint64_t tid;
	int rc;

	if (v1) {
		rc = v1_to_v2(c, evt, avail, &evt);
		if (rc)
			return rc;
		avail = scap_rd32(evt + 16);
	}
	if (avail < PYFALCO_EVT_HDR_SIZE)
		return skip(c, SCAP_CONV_SKIPPED_MALFORMED, "record of %u bytes is shorter than the 26-byte header",
			    avail);
	type = scap_rd16(evt + 20);
	if (type >= PPM_EVENT_MAX || (pyfalco_event_table[type].flags & EF_UNUSED))
		return skip(c, SCAP_CONV_SKIPPED_UNKNOWN, "unknown event type %u", type);
	if (scap_event_parse(evt, avail, lens, offs, SCAP_MAX_PARAMS, c->why, sizeof(c->why)))
		return skip(c, SCAP_CONV_SKIPPED_MALFORMED, "%s", c->why);
	len = scap_rd32(evt + 16);
	nparams = scap_rd32(evt + 22);
	tid = scap_rd64(evt + 8);
	info = &pyfalco_event_table[type];

	if (scap_paired_exit(type) >= 0) {
		/* an enter event: keep it until its exit comes */
		pend = pending_find(c, tid, 1);
		if (!pend || scap_buf_reserve(&pend->evt, len))
			return -ENOMEM;
		memcpy(pend->evt.data, evt, len);
		pend->evt.len = len;
		pend->code = type;
		return SCAP_CONV_CONSUMED;
	}

	if (!c->plans[type] && !(c->plans[type] = build_plan(type)))
		return -ENOMEM;
	plan = c->plans[type];
	pend = (type & 1) ? pending_find(c, tid, 0) : NULL;
	if (pend && pend->code >= 0) {
		if (pend->code == plan->enter_code &&
		    !scap_event_parse(pend->evt.data, (uint32_t)pend->evt.len, elens, eoffs, SCAP_MAX_PARAMS, c->why,
				      sizeof(c->why))) {
			enter = pend->evt.data;
			en = scap_rd32(enter + 22);
			if (en > SCAP_MAX_PARAMS)
				en = SCAP_MAX_PARAMS;
		}
		pend->code = -1; /* the syscall is over, whichever enter was waiting */
	}

	if (plan->positional && nparams >= info->nparams) {
		*out = evt;
		*out_len = len;
		return SCAP_CONV_EVENT;
	}
	if (nparams > SCAP_MAX_PARAMS)
		nparams = SCAP_MAX_PARAMS; /* only for old versions with surplus parameters: dropped */

	/* build the target event: header, lengths, values */
	{
		const struct pyfalco_event_info *t = &pyfalco_event_table[plan->target];
		const struct pyfalco_event_info *e = plan->enter_code >= 0 ? &pyfalco_event_table[plan->enter_code] : NULL;
		uint32_t plen[SCAP_MAX_PARAMS], slen[SCAP_MAX_PARAMS];
		const uint8_t *psrc[SCAP_MAX_PARAMS];
		uint8_t pstype[SCAP_MAX_PARAMS];
		uint32_t n = plan->nparams, extra = 0;
		uint8_t *o;

		w = scap_len_width(plan->target);
		total = PYFALCO_EVT_HDR_SIZE + w * n;
		for (i = 0; i < n; i++) {
			const struct scap_plan_param *pp = &plan->p[i];
			slen[i] = 0;
			psrc[i] = NULL;
			pstype[i] = t->params[i].type;
			if (pp->exit_idx >= 0 && (uint32_t)pp->exit_idx < nparams) {
				psrc[i] = evt + offs[pp->exit_idx];
				slen[i] = lens[pp->exit_idx];
				pstype[i] = pp->exit_idx < info->nparams ? info->params[pp->exit_idx].type : t->params[i].type;
			} else if (enter && pp->enter_idx >= 0 && (uint32_t)pp->enter_idx < en) {
				psrc[i] = enter + eoffs[pp->enter_idx];
				slen[i] = elens[pp->enter_idx];
				pstype[i] = e->params[pp->enter_idx].type;
			}
			plen[i] = param_len_as(slen[i], pstype[i], t->params[i].type);
			if (w == 2 && plen[i] > 0xFFFF)
				plen[i] = 0;
			extra += plen[i];
		}
		total += extra;
		if (scap_buf_reserve(&c->out, total))
			return -ENOMEM;
		o = c->out.data;
		memcpy(o, evt, 16);
		scap_wr32(o + 16, total);
		scap_wr16(o + 20, plan->target);
		scap_wr32(o + 22, n);
		for (i = 0; i < n; i++) {
			if (w == 2)
				scap_wr16(o + PYFALCO_EVT_HDR_SIZE + 2 * i, (uint16_t)plen[i]);
			else
				scap_wr32(o + PYFALCO_EVT_HDR_SIZE + 4 * i, plen[i]);
		}
		o += PYFALCO_EVT_HDR_SIZE + w * n;
		for (i = 0; i < n; i++) {
			if (plen[i])
				put_param(o, psrc[i], slen[i], pstype[i], t->params[i].type);
			o += plen[i];
		}
		*out = c->out.data;
		*out_len = total;
	}
	return SCAP_CONV_EVENT;
}
