/* SPDX-License-Identifier: Apache-2.0 */
/* The engine vtable behind pyfalco_capture (capture.c). Each engine keeps its state in its own
 * struct, reached through capture->engine_data; all errors go through pf_fail(). */
#ifndef PYFALCO_ENGINE_H
#define PYFALCO_ENGINE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "pyfalco/pyfalco.h"
#include "pyfalco_abi.h"

struct pyfalco_engine_ops {
	const char *name;
	/* open: allocate engine_data from the capture's settings. */
	int (*open)(pyfalco_capture *h);
	int (*select_syscalls)(pyfalco_capture *h, const uint8_t *interest /* [PYFALCO_SYSCALL_SLOTS] */);
	int (*start)(pyfalco_capture *h);
	int (*stop)(pyfalco_capture *h);
	/* next: same contract as pyfalco_capture_next; timeout_ms as next_batch. */
	int (*next)(pyfalco_capture *h, const uint8_t **evt, uint16_t *cpu, uint16_t *flags, int timeout_ms);
	/* unget: the event returned by the last next() is returned again by the following next(). */
	void (*unget)(pyfalco_capture *h);
	/* stats: add this engine's counters into out[PF_STAT_*]. */
	int (*stats)(pyfalco_capture *h, uint64_t *out);
	int (*metadata)(pyfalco_capture *h, uint32_t index, uint32_t *type, const uint8_t **body, uint32_t *len);
	void (*close)(pyfalco_capture *h);
};

/* Statistics: driver counters first (PYFALCO_DRIVER_COUNTERS), then library ones. */
#define PYFALCO_LIB_COUNTERS(X)                                                      \
	X(n_evts_delivered, "events handed to the caller")                          \
	X(n_skipped_unknown, "events skipped: unknown event code")                  \
	X(n_skipped_malformed, "events skipped: malformed record")

enum pf_stat {
#define PF_STAT_ENUM(name, desc) PF_STAT_##name,
	PYFALCO_DRIVER_COUNTERS(PF_STAT_ENUM)
	PYFALCO_LIB_COUNTERS(PF_STAT_ENUM)
#undef PF_STAT_ENUM
	PF_STAT_COUNT
};

struct pyfalco_settings {
	char engine[32];
	uint64_t buffer_bytes;
	uint32_t cpus_for_each_buffer;
	uint32_t snaplen;
	char capture_file[4096];
	char kmod_device[256];
};

struct pyfalco_capture {
	const struct pyfalco_engine_ops *ops;
	void *engine_data;
	struct pyfalco_settings settings;
	int opened;
	int started;
	uint8_t interest[512];
	uint64_t delivered;
	pyfalco_log_fn log_fn;
	void *log_ctx;
	char error[1024];
};

/* Records "what: why" as the handle's error and returns -err (err given positive). */
int pf_fail(pyfalco_capture *h, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void pf_log(pyfalco_capture *h, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

extern const struct pyfalco_engine_ops pf_engine_bpf;
extern const struct pyfalco_engine_ops pf_engine_replay;
extern const struct pyfalco_engine_ops pf_engine_kmod;
extern const struct pyfalco_engine_ops pf_engine_nodriver;

#endif
