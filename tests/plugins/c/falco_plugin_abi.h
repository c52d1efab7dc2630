/* SPDX-License-Identifier: Apache-2.0
 * The subset of Falco's plugin ABI (plugin API 3.x, userspace/plugin/plugin_types.h and plugin_api.h
 * in falcosecurity/libs) that the test plugins use, written from the documented layout. */
#pragma once
#include <stdint.h>

#define SS_PLUGIN_SUCCESS 0
#define SS_PLUGIN_FAILURE 1
#define SS_PLUGIN_TIMEOUT (-1)
#define SS_PLUGIN_EOF 2
typedef int32_t ss_plugin_rc;
typedef uint32_t ss_plugin_bool;
typedef void ss_plugin_t;
typedef void ss_instance_t;
typedef void ss_plugin_owner_t;

enum { FTYPE_UINT64 = 8, FTYPE_STRING = 9, FTYPE_RELTIME = 20, FTYPE_ABSTIME = 21, FTYPE_BOOL = 25,
       FTYPE_IPADDR = 40, FTYPE_IPNET = 41 };

#pragma pack(push, 1)
typedef struct ss_plugin_event {
	uint64_t ts;
	uint64_t tid;
	uint32_t len;
	uint16_t type;
	uint32_t nparams;
} ss_plugin_event;
#pragma pack(pop)

typedef struct { const ss_plugin_event *evt; uint64_t evtnum; const char *evtsrc; } ss_plugin_event_input;
typedef struct { uint32_t len; const void *ptr; } ss_plugin_byte_buffer;

typedef struct {
	union { const char **str; uint64_t *u64; uint32_t *u32; ss_plugin_bool *boolean; ss_plugin_byte_buffer *buf; } res;
	uint64_t res_len;
	uint32_t field_id;
	const char *field;
	const char *arg_key;
	uint64_t arg_index;
	ss_plugin_bool arg_present;
	uint32_t ftype;
	ss_plugin_bool flist;
} ss_plugin_extract_field;

typedef void (*ss_plugin_log_fn_t)(const char *component, const char *msg, int sev);

typedef struct {
	const char *config;
	ss_plugin_owner_t *owner;
	const char *(*get_owner_last_error)(ss_plugin_owner_t *o);
	const void *tables;
	ss_plugin_log_fn_t log_fn;
} ss_plugin_init_input;

typedef struct {
	ss_plugin_owner_t *owner;
	const char *(*get_owner_last_error)(ss_plugin_owner_t *o);
	uint32_t num_fields;
	ss_plugin_extract_field *fields;
	void *table_reader[4];
	void *table_reader_ext;
} ss_plugin_field_extract_input;
