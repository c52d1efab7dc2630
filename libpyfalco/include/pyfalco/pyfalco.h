/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file pyfalco.h
 * @brief libpyfalco: one capture API over the eBPF driver, the kernel module and capture files.
 *
 * Return convention, for every function returning int: 0 (or a documented positive status)
 * on success, a negative errno on failure; the handle's message (pyfalco_capture_error())
 * then says what was being done and why. No function prints or exits; diagnostics go to the
 * log callback. There is no global state: every call works on one handle, and two handles are
 * independent. A handle is not thread-safe; use one thread per handle.
 *
 * Lifecycle: pyfalco_capture_new -> pyfalco_capture_set (engine, settings) -> pyfalco_capture_open
 * -> [pyfalco_capture_select_syscalls] -> pyfalco_capture_start -> next / next_batch ...
 * -> pyfalco_capture_stop -> pyfalco_capture_free.
 */
#ifndef PYFALCO_H
#define PYFALCO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** ABI version of this header: Python refuses a library whose major differs. */
#define PYFALCO_LIB_ABI_MAJOR 1
#define PYFALCO_LIB_ABI_MINOR 1

/** Statuses returned by next / next_batch besides 0 and -errno. */
#define PYFALCO_TIMEOUT 1 /**< no event within the timeout (live engines) */
#define PYFALCO_EOF 2     /**< end of the capture file (replay engine) */

/** Log levels of the log callback (syslog numbering). */
#define PYFALCO_LOG_ERR 3
#define PYFALCO_LOG_WARNING 4
#define PYFALCO_LOG_INFO 6
#define PYFALCO_LOG_DEBUG 7

typedef struct pyfalco_capture pyfalco_capture;
typedef void (*pyfalco_log_fn)(void *ctx, int level, const char *msg);

/** Per-event flags in a batch entry (pyfalco_batch_entry.flags). */
#define PYFALCO_EF_STATE_ONLY 1 /**< from a capture file: update state, do not show (SCAP_DF_STATE_ONLY) */
#define PYFALCO_EF_SKIP_RUN 2 /**< a run of skipped events (pyfalco_capture_next_batch_skip), not an event */
#define PYFALCO_EF_CLOSES 4 /**< the entry carries close trailers (next_batch_skip, mask value 3) */

/**
 * A batch is a run of entries laid end to end in the caller's buffer:
 *   struct pyfalco_batch_entry (8 bytes) | event record (hdr.len bytes) | pad to 8
 * so entry i+1 starts at the next multiple of 8 after entry i's record.
 */
struct pyfalco_batch_entry {
	uint16_t cpu;   /**< CPU (or buffer) the event came from */
	uint16_t flags; /**< PYFALCO_EF_* */
	uint32_t len;   /**< length of the event record that follows */
};
/* pyfalco/record.py reads entries as "<HHI": the layout may not move */
#ifdef __cplusplus
static_assert(sizeof(struct pyfalco_batch_entry) == 8, "struct pyfalco_batch_entry is 8 bytes");
#else
_Static_assert(sizeof(struct pyfalco_batch_entry) == 8, "struct pyfalco_batch_entry is 8 bytes");
#endif

/** @return (PYFALCO_LIB_ABI_MAJOR << 16) | PYFALCO_LIB_ABI_MINOR of the built library. */
uint32_t pyfalco_abi_version(void);
/** @return the library version string, e.g. "0.1.0". */
const char *pyfalco_version(void);
/**
 * @return the version of the kernel <-> user transport that this library speaks and that its
 * embedded eBPF driver and the kernel module of the same tree implement, e.g. "1.1.0"
 * (PYFALCO_API_VERSION_* of driver/abi/pyfalco_abi.h; when each part changes:
 * driver/abi/VERSIONING.md). The kmod engine refuses a module of another major or an older minor.
 */
const char *pyfalco_driver_api_version(void);
/** @return the version of the event schema (records, parameters) the drivers write, e.g. "4.5.1". */
const char *pyfalco_driver_schema_version(void);
/** @return both as one string: "api=1.1.0 schema=4.5.1". */
const char *pyfalco_driver_versions(void);

/** @return a new handle, or NULL when out of memory. */
pyfalco_capture *pyfalco_capture_new(void);
/** Stops, closes and frees the handle; NULL is accepted. */
void pyfalco_capture_free(pyfalco_capture *h);
/** @return the last error message of the handle ("" if none); valid until the next call. */
const char *pyfalco_capture_error(const pyfalco_capture *h);
/** Sets the log callback (NULL to silence). */
void pyfalco_capture_set_log(pyfalco_capture *h, pyfalco_log_fn fn, void *ctx);

/**
 * Sets one setting before open. Keys:
 *   engine                modern_ebpf | kmod | replay | nodriver   (required)
 *   buffer_bytes          bytes per ring buffer (power of two, >= 2 pages; default 8 MiB)
 *   cpus_for_each_buffer  0 = one buffer for all CPUs, N = one per N CPUs (default 2)
 *   snaplen               bytes of I/O data kept per event (default 80, max 16384)
 *   capture_file          path of the .scap file (replay)
 *   kmod_device           device path prefix for the kernel module (default /dev/pyfalco)
 * @return 0, -EINVAL for an unknown key or bad value, -EBUSY after open.
 */
int pyfalco_capture_set(pyfalco_capture *h, const char *key, const char *value);

/** Opens the engine (loads and attaches the driver, or opens the file). */
int pyfalco_capture_open(pyfalco_capture *h);

/**
 * Selects the syscalls that produce events: an array of native syscall numbers. Replaces the
 * previous selection; takes effect immediately, also while capturing. Tracepoint events
 * (procexit) are always produced. Ignored by the replay engine.
 */
int pyfalco_capture_select_syscalls(pyfalco_capture *h, const uint16_t *nrs, size_t count);

int pyfalco_capture_start(pyfalco_capture *h);
int pyfalco_capture_stop(pyfalco_capture *h);

/**
 * Next event in time order across all buffers (file order for replay).
 * *evt points into engine-owned memory, valid until the next call on the handle.
 * @return 0, PYFALCO_TIMEOUT, PYFALCO_EOF or -errno.
 */
int pyfalco_capture_next(pyfalco_capture *h, const uint8_t **evt, uint16_t *cpu, uint16_t *flags);

/**
 * Copies up to max_events events, in time order, into buf as pyfalco_batch_entry runs.
 * Waits up to timeout_ms (0: do not wait, -1: forever) for the first event, never for more.
 * @param used   bytes written into buf
 * @param nevents number of entries written
 * @return 0 (at least one event), PYFALCO_TIMEOUT, PYFALCO_EOF, or -errno
 *         (-ENOSPC: the next event alone does not fit in buflen; *used is then the buffer
 *         size it needs, and the event is handed out again by the next call).
 */
int pyfalco_capture_next_batch(pyfalco_capture *h, uint8_t *buf, size_t buflen, uint32_t max_events,
			       int timeout_ms, size_t *used, uint32_t *nevents);

/** Event type of the record that stands for a run of skipped events in a skip batch. */
#define PYFALCO_SKIP_RUN_TYPE 0xFFFF
/**
 * pyfalco_capture_next_batch, except that events whose type t has t < masklen and skip[t] != 0
 * are not copied: each run of them between two copied events becomes one entry (flags
 * PYFALCO_EF_SKIP_RUN) whose record is an event header (ts and tid of the run's last event,
 * type PYFALCO_SKIP_RUN_TYPE + 1 - v for mask value v (a run holds one value), nparams = k, the number of events in the run) followed by k
 * pairs (uint64 ts, uint64 tid, as in the header), one per skipped event in order. The caller keeps exact event
 * numbers and per-thread activity times without a trip per event.
 * Mask value 3 (close trailers, for a close exit event type): such an event whose record is the
 * two-parameter one (lengths 8, 8) is not an entry of its own but four uint64 (ts, tid, res, fd)
 * appended to the entry before it in the batch, which then has PYFALCO_EF_CLOSES in its flags, its
 * record padded to 8 and its entry length pad8(hdr.len) + 32 * (closes it carries); the caller
 * applies them right after that entry (event order). With no entry before it, or another record
 * layout, the close is copied as any event.
 * @param nentries entries written (copied events and runs)
 * @param nevents  events read (copied and skipped); both count toward max_events
 */
int pyfalco_capture_next_batch_skip(pyfalco_capture *h, uint8_t *buf, size_t buflen, uint32_t max_events,
				    int timeout_ms, const uint8_t *skip, size_t masklen, size_t *used,
				    uint32_t *nentries, uint32_t *nevents);

/** Number of statistics and their names: stats are read as an array of uint64_t. */
uint32_t pyfalco_stats_count(void);
const char *pyfalco_stats_name(uint32_t i);
/** Fills out[0..n) with the statistics (summed over CPUs). @return number written or -errno. */
int pyfalco_capture_stats(pyfalco_capture *h, uint64_t *out, uint32_t n);

/**
 * Metadata blocks of a capture file (replay), in file order: machine info, process list,
 * fd lists, users, interfaces. The body is the raw block body (SCAP_FORMAT.md sections 6-10).
 * @return 0, or -ENOENT past the last block; pointers valid until free.
 */
int pyfalco_capture_metadata(pyfalco_capture *h, uint32_t index, uint32_t *block_type,
			     const uint8_t **body, uint32_t *body_len);

/* ======================================================================================== */
/* Capture file writer (libpyfalco/src/scap_writer.c; format: docs/capture-files.md).       */
/* ======================================================================================== */
/*
 * Writes .scap files that Debian's sysdig 0.29 and current Falco both read
 * (SCAP_FORMAT.md section 13): SHB 1.2, the metadata blocks given by the caller (pyfalco/scap
 * builds MI, IL_V2, UL_V2, PL_V9, FDL_V2 from an InitialState), then one EV_V2 block per event
 * record (EVF_V2 with dump_flags=1 for state-only events, the LARGE variants above 64 KiB).
 * Each exit event of a syscall known to the 2022 tables is written as an enter+exit pair with
 * the 2022 parameter counts; reading the file back gives the same exit-only events, except
 * the parameters listed in docs/capture-files.md, which come back empty (none with
 * PYFALCO_WRITER_FULL_PARAMS, whose exit events keep every parameter: sysdig 0.29 ignores the
 * extra ones, readers older than the current table refuse them).
 * Same return convention as the capture API; the message is pyfalco_writer_error().
 */
typedef struct pyfalco_writer pyfalco_writer;

#define PYFALCO_WRITER_GZIP 1u        /**< gzip-compress the whole file */
#define PYFALCO_WRITER_FULL_PARAMS 2u /**< exit events keep all their parameters (exact round trip) */

/** Per-entry modes of pyfalco_writer_write_batch. */
#define PYFALCO_WRITE_SKIP 0       /**< not written (e.g. the filter condition did not match) */
#define PYFALCO_WRITE_EVENT 1      /**< written as a normal event */
#define PYFALCO_WRITE_STATE_ONLY 2 /**< written for state only: readers update state, do not show it */

/** @return a new writer, or NULL when out of memory. */
pyfalco_writer *pyfalco_writer_new(void);
/** Creates (truncates) path and writes the section header. flags: PYFALCO_WRITER_*. */
int pyfalco_writer_open(pyfalco_writer *w, const char *path, uint32_t flags);
/**
 * Writes one metadata block (MI 0x201, PL 0x215, FDL 0x218, IL 0x219, UL 0x220, ... as the
 * raw body, SCAP_FORMAT.md sections 6-10) before the first event. -EINVAL for an SHB or event
 * block type, or after an event was written.
 */
int pyfalco_writer_write_block(pyfalco_writer *w, uint32_t block_type, const uint8_t *body, uint32_t len);
/**
 * Writes one event in pyfalco's model (v2 header, exit-only, current layout; any event code is
 * accepted). flags: PYFALCO_EF_STATE_ONLY writes it as a state-only event. -EINVAL when the
 * record is malformed (lengths past hdr.len).
 */
int pyfalco_writer_write_event(pyfalco_writer *w, const uint8_t *evt, uint16_t cpu, uint16_t flags);
/**
 * Writes the events of a batch filled by pyfalco_capture_next_batch (used bytes, nevents
 * entries). modes: NULL to write every event, or one PYFALCO_WRITE_* per entry. An entry's
 * own PYFALCO_EF_STATE_ONLY flag is kept. *written: events written.
 */
int pyfalco_writer_write_batch(pyfalco_writer *w, const uint8_t *buf, size_t used, uint32_t nevents,
			       const uint8_t *modes, uint32_t *written);
/** Events written, event records in the file (enter and exit apart), uncompressed bytes. */
int pyfalco_writer_stats(const pyfalco_writer *w, uint64_t *events, uint64_t *records, uint64_t *bytes);
/** Flushes and closes the file (idempotent). -EIO when any write or the flush failed. */
int pyfalco_writer_close(pyfalco_writer *w);
/** Closes (if needed) and frees; NULL is accepted. */
void pyfalco_writer_free(pyfalco_writer *w);
/** @return the writer's last error message ("" if none). */
const char *pyfalco_writer_error(const pyfalco_writer *w);
/* ======================================================================================== */
/* End of capture file writer section.                                                      */
/* ======================================================================================== */

#ifdef __cplusplus
}
#endif
#endif /* PYFALCO_H */
