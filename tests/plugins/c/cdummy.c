/* SPDX-License-Identifier: Apache-2.0
 * A small Falco plugin for pyfalco's tests: event sourcing ("cdummy", id 999) and field extraction.
 *
 * open_params "N" produces N events, in batches of up to 3, with the payload "<i> <word>...":
 * event i carries i+1 words from a fixed list. init_config: "" or "prefix=<text>" (prepended to
 * cd.msg); "fail" makes init fail. open_params "fail" makes open fail; "garbage" makes next_batch
 * return an event that is not a plugin event; "wrongid" one with another plugin's id; "error@K"
 * makes next_batch fail after K events.
 * Build variants (-D): BAD_API (requires API 4.0.0), NEWER_MINOR (requires 3.99.0), NO_LAST_ERROR
 * (omits plugin_get_last_error), BAD_FIELDS (invalid fields JSON), EXTRACT_ONLY (no sourcing;
 * extracts cdx.len from events of the "cdummy" source), SYSCALL_EXTRACT (no sourcing; extracts
 * cds.type, cds.len and cds.src from syscall events: their libscap header and source name),
 * WITH_SCHEMA (exports a JSON init schema: an object with an optional string "prefix"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "falco_plugin_abi.h"

#define PLUGIN_ID 999
#define MAXW 8
__attribute__((unused)) static const char *WORDS[MAXW] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"};

typedef struct {
	char err[256];
	char prefix[64];
	/* extract results: owned here, valid until the next extract_fields call */
	char msg[512];
	const char *strs[MAXW];
	char words[MAXW][32];
	uint64_t u64;
	uint32_t b;
	char tostr[512];
	uint8_t ip[4];
	ss_plugin_byte_buffer ipbuf;
} state_t;

typedef struct {
	uint64_t total, next, fail_at;
	int garbage, wrongid;
	uint8_t *bufs[3];
	ss_plugin_event *ptrs[3];
} inst_t;

#ifdef BAD_API
const char *plugin_get_required_api_version(void) { return "4.0.0"; }
#elif defined(NEWER_MINOR)
const char *plugin_get_required_api_version(void) { return "3.99.0"; }
#else
const char *plugin_get_required_api_version(void) { return "3.0.0"; }
#endif

#ifdef SYSCALL_EXTRACT
#define EXTRACT_ONLY
const char *plugin_get_name(void) { return "cdsys"; }
const char *plugin_get_description(void) { return "reads the header of syscall events"; }
#elif defined(EXTRACT_ONLY)
const char *plugin_get_name(void) { return "cdummyx"; }
const char *plugin_get_description(void) { return "extracts the payload length of cdummy events"; }
#else
const char *plugin_get_name(void) { return "cdummy"; }
const char *plugin_get_description(void) { return "a test source of numbered word lists"; }
#endif
const char *plugin_get_contact(void) { return "pyfalco tests"; }
const char *plugin_get_version(void) { return "1.2.3"; }

#ifdef WITH_SCHEMA
const char *plugin_get_init_schema(uint32_t *schema_type) {
	*schema_type = 1; /* SS_PLUGIN_SCHEMA_JSON */
	return "{\"type\": \"object\", \"properties\": {\"prefix\": {\"type\": \"string\", \"maxLength\": 8}},"
	       " \"additionalProperties\": false}";
}
#endif

ss_plugin_t *plugin_init(const ss_plugin_init_input *in, ss_plugin_rc *rc) {
	state_t *s = calloc(1, sizeof(*s));
	const char *cfg = in && in->config ? in->config : "";
	if (strcmp(cfg, "fail") == 0) {
		snprintf(s->err, sizeof(s->err), "init_config 'fail' asked for a failure");
		*rc = SS_PLUGIN_FAILURE;
		return s;
	}
	if (strncmp(cfg, "prefix=", 7) == 0)
		snprintf(s->prefix, sizeof(s->prefix), "%s", cfg + 7);
	if (in && in->log_fn)
		in->log_fn(NULL, "cdummy initialised", 6);
	*rc = SS_PLUGIN_SUCCESS;
	return s;
}

void plugin_destroy(ss_plugin_t *s) { free(s); }

#ifndef NO_LAST_ERROR
const char *plugin_get_last_error(ss_plugin_t *s) { return ((state_t *)s)->err; }
#endif

#ifndef EXTRACT_ONLY
uint32_t plugin_get_id(void) { return PLUGIN_ID; }
const char *plugin_get_event_source(void) { return "cdummy"; }

ss_instance_t *plugin_open(ss_plugin_t *s, const char *params, ss_plugin_rc *rc) {
	state_t *st = s;
	if (strcmp(params, "fail") == 0) {
		snprintf(st->err, sizeof(st->err), "cannot open '%s'", params);
		*rc = SS_PLUGIN_FAILURE;
		return NULL;
	}
	inst_t *h = calloc(1, sizeof(*h));
	h->fail_at = (uint64_t)-1;
	if (strcmp(params, "garbage") == 0) {
		h->garbage = 1;
		h->total = 1;
	} else if (strcmp(params, "wrongid") == 0) {
		h->wrongid = 1;
		h->total = 2;
	} else if (strncmp(params, "error@", 6) == 0) {
		h->fail_at = strtoull(params + 6, NULL, 10);
		h->total = 1000;
	} else {
		h->total = strtoull(params, NULL, 10);
	}
	*rc = SS_PLUGIN_SUCCESS;
	return h;
}

void plugin_close(ss_plugin_t *s, ss_instance_t *h) {
	inst_t *in = h;
	(void)s;
	if (!in)
		return;
	for (int i = 0; i < 3; i++)
		free(in->bufs[i]);
	free(in);
}

const char *plugin_list_open_params(ss_plugin_t *s, ss_plugin_rc *rc) {
	(void)s;
	*rc = SS_PLUGIN_SUCCESS;
	return "[{\"value\": \"5\", \"desc\": \"five events\"}, {\"value\": \"fail\", \"desc\": \"an open error\"}]";
}

/* One event: the header, two 4-byte param lengths, the plugin id, the payload. */
static ss_plugin_event *make_event(inst_t *h, int slot, uint64_t i) {
	char payload[256];
	int n = snprintf(payload, sizeof(payload), "%llu", (unsigned long long)i);
	for (uint64_t w = 0; w <= i && w < MAXW; w++)
		n += snprintf(payload + n, sizeof(payload) - n, " %s", WORDS[w]);
	uint32_t len = 26 + 8 + 4 + (uint32_t)n;
	free(h->bufs[slot]);
	uint8_t *b = h->bufs[slot] = malloc(len);
	ss_plugin_event *e = (ss_plugin_event *)b;
	e->ts = 1700000000000000000ULL + i * 1000000ULL;
	e->tid = (uint64_t)-1;
	e->len = len;
	e->type = h->garbage ? 3 : 322;
	e->nparams = 2;
	uint32_t lens[2] = {4, (uint32_t)n};
	uint32_t id = h->wrongid ? 7 : 0; /* 0: the framework fills in the plugin's own id */
	memcpy(b + 26, lens, 8);
	memcpy(b + 34, &id, 4);
	memcpy(b + 38, payload, n);
	return e;
}

ss_plugin_rc plugin_next_batch(ss_plugin_t *s, ss_instance_t *hh, uint32_t *nevts, ss_plugin_event ***evts) {
	inst_t *h = hh;
	state_t *st = s;
	*nevts = 0;
	if (h->next >= h->fail_at) {
		snprintf(st->err, sizeof(st->err), "the source broke after %llu events", (unsigned long long)h->next);
		return SS_PLUGIN_FAILURE;
	}
	if (h->next >= h->total)
		return SS_PLUGIN_EOF;
	uint32_t n = 0;
	while (n < 3 && h->next < h->total && h->next < h->fail_at) {
		h->ptrs[n] = make_event(h, n, h->next);
		n++;
		h->next++;
	}
	*nevts = n;
	*evts = h->ptrs;
	return SS_PLUGIN_SUCCESS;
}

const char *plugin_event_to_string(ss_plugin_t *s, const ss_plugin_event_input *in) {
	state_t *st = s;
	const uint8_t *b = (const uint8_t *)in->evt;
	uint32_t dlen;
	memcpy(&dlen, b + 30, 4);
	snprintf(st->tostr, sizeof(st->tostr), "cdummy event: %.*s", (int)dlen, (const char *)(b + 38));
	return st->tostr;
}
#endif

#ifdef BAD_FIELDS
const char *plugin_get_fields(void) { return "[{\"name\": \"cd.n\", \"type\": \"uint64\""; }
#elif defined(SYSCALL_EXTRACT)
const char *plugin_get_fields(void) {
	return "[{\"name\": \"cds.type\", \"type\": \"uint64\", \"desc\": \"event type code\"},"
	       "{\"name\": \"cds.len\", \"type\": \"uint64\", \"desc\": \"event length\"},"
	       "{\"name\": \"cds.src\", \"type\": \"string\", \"desc\": \"event source\"}]";
}
const char *plugin_get_extract_event_sources(void) { return "[\"syscall\"]"; }
#elif defined(EXTRACT_ONLY)
const char *plugin_get_fields(void) {
	return "[{\"name\": \"cdx.len\", \"type\": \"uint64\", \"desc\": \"payload length\"}]";
}
const char *plugin_get_extract_event_sources(void) { return "[\"cdummy\"]"; }
#else
const char *plugin_get_fields(void) {
	return "["
	       "{\"name\": \"cd.n\", \"type\": \"uint64\", \"desc\": \"event counter\"},"
	       "{\"name\": \"cd.msg\", \"type\": \"string\", \"desc\": \"the payload, with the configured prefix\"},"
	       "{\"name\": \"cd.words\", \"type\": \"string\", \"isList\": true, \"desc\": \"the words\"},"
	       "{\"name\": \"cd.word\", \"type\": \"string\", \"arg\": {\"isRequired\": true, \"isIndex\": true},"
	       " \"desc\": \"one word by index\"},"
	       "{\"name\": \"cd.has\", \"type\": \"bool\", \"arg\": {\"isRequired\": true, \"isKey\": true},"
	       " \"desc\": \"true when the word is present\"},"
	       "{\"name\": \"cd.even\", \"type\": \"bool\", \"desc\": \"the counter is even\"},"
	       "{\"name\": \"cd.broken\", \"type\": \"string\", \"desc\": \"fails to extract on odd events\"},"
	       "{\"name\": \"cd.ip\", \"type\": \"ipaddr\", \"desc\": \"10.0.0.<counter>\"},"
	       "{\"name\": \"cd.two\", \"type\": \"string\", \"desc\": \"garbage: two values for a non-list field\"},"
	       "{\"name\": \"cd.nullstr\", \"type\": \"string\", \"desc\": \"garbage: a NULL string\"}"
	       "]";
}
#endif

/* payload of a plugin event: its bytes and length */
__attribute__((unused)) static const char *payload(const ss_plugin_event_input *in, uint32_t *len) {
	const uint8_t *b = (const uint8_t *)in->evt;
	memcpy(len, b + 30, 4);
	return (const char *)(b + 38);
}

ss_plugin_rc plugin_extract_fields(ss_plugin_t *s, const ss_plugin_event_input *in,
                                   const ss_plugin_field_extract_input *req) {
	state_t *st = s;
	uint32_t len = 0;
	uint64_t num = 0;
	__attribute__((unused)) int nw = 0;
#ifndef SYSCALL_EXTRACT /* a syscall event has no plugin payload */
	const char *p = payload(in, &len);
	char text[256];
	snprintf(text, sizeof(text), "%.*s", (int)len, p);
	num = strtoull(text, NULL, 10);
	/* words after the number */
	char *save = NULL, *tok = strtok_r(text, " ", &save);
	while ((tok = strtok_r(NULL, " ", &save)) && nw < MAXW) {
		snprintf(st->words[nw], sizeof(st->words[nw]), "%s", tok);
		st->strs[nw] = st->words[nw];
		nw++;
	}
#endif
	for (uint32_t i = 0; i < req->num_fields; i++) {
		ss_plugin_extract_field *f = &req->fields[i];
		f->res_len = 0;
#ifdef SYSCALL_EXTRACT
		(void)num;
		(void)len;
		if (f->field_id == 2) {
			st->strs[0] = in->evtsrc;
			f->res.str = st->strs;
		} else {
			st->u64 = f->field_id == 0 ? in->evt->type : in->evt->len;
			f->res.u64 = &st->u64;
		}
		f->res_len = 1;
#elif defined(EXTRACT_ONLY)
		(void)num;
		st->u64 = len;
		f->res.u64 = &st->u64;
		f->res_len = 1;
#else
		switch (f->field_id) {
		case 0:
			st->u64 = num;
			f->res.u64 = &st->u64;
			f->res_len = 1;
			break;
		case 1:
			snprintf(st->msg, sizeof(st->msg), "%s%.*s", st->prefix, (int)len, p);
			st->strs[MAXW - 1] = st->msg;
			f->res.str = &st->strs[MAXW - 1];
			f->res_len = 1;
			break;
		case 2:
			f->res.str = st->strs;
			f->res_len = nw;
			break;
		case 3:
			if (f->arg_present && f->arg_index < (uint64_t)nw) {
				f->res.str = &st->strs[f->arg_index];
				f->res_len = 1;
			}
			break;
		case 4:
			st->b = 0;
			for (int w = 0; w < nw; w++)
				if (f->arg_key && strcmp(st->words[w], f->arg_key) == 0)
					st->b = 1;
			f->res.boolean = &st->b;
			f->res_len = 1;
			break;
		case 5:
			st->b = num % 2 == 0;
			f->res.boolean = &st->b;
			f->res_len = 1;
			break;
		case 6:
			if (num % 2) {
				snprintf(st->err, sizeof(st->err), "cd.broken cannot be extracted from event %llu",
				         (unsigned long long)num);
				return SS_PLUGIN_FAILURE;
			}
			st->strs[0] = "fine";
			f->res.str = st->strs;
			f->res_len = 1;
			break;
		case 7:
			st->ip[0] = 10;
			st->ip[1] = 0;
			st->ip[2] = 0;
			st->ip[3] = (uint8_t)num;
			st->ipbuf.len = 4;
			st->ipbuf.ptr = st->ip;
			f->res.buf = &st->ipbuf;
			f->res_len = 1;
			break;
		case 8:
			st->strs[0] = "a";
			st->strs[1] = "b";
			f->res.str = st->strs;
			f->res_len = 2;
			break;
		case 9:
			st->strs[0] = NULL;
			f->res.str = st->strs;
			f->res_len = 1;
			break;
		default:
			snprintf(st->err, sizeof(st->err), "unknown field id %u", f->field_id);
			return SS_PLUGIN_FAILURE;
		}
#endif
	}
	return SS_PLUGIN_SUCCESS;
}
