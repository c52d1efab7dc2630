/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel-side filtering compiled from the rules (modern_ebpf engine; src/kfilter.c, the driver's
 * driver/filter.bpf.h). pyfalco/kfilter.py derives the filter from the loaded rules and binds
 * these functions itself (they are optional: a library without them has no kernel filter).
 */
#ifndef PYFALCO_KFILTER_H
#define PYFALCO_KFILTER_H

#include <stddef.h>
#include <stdint.h>

#include "pyfalco/pyfalco.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bits of the spec's "on" word: the event types the driver may drop. */
#define PYFALCO_KF_OPEN (1u << 0)
#define PYFALCO_KF_OPENAT (1u << 1)
#define PYFALCO_KF_OPENAT2 (1u << 2)
#define PYFALCO_KF_CLOSE (1u << 3)
/* Pattern kinds. */
#define PYFALCO_KF_EXACT 1
#define PYFALCO_KF_PREFIX 2
#define PYFALCO_KF_DIR 3
#define PYFALCO_KF_BASE 4
/* Pattern mask bit: any flags. */
#define PYFALCO_KF_ANY (1u << 31)
#define PYFALCO_KF_MAGIC 0x324b4650u /* "PFK2": the path hash of session 5 (word at a time); "PFKF" specs hashed bytes (FNV-1a) */

/*
 * Installs a filter, replacing the previous one (effective at once, also while capturing).
 * spec (little-endian): u32 magic, u32 on, u32 flags_any, u32 npatterns, then npatterns x
 * { u64 path hash (pyfalco.kfilter.path_hash), u32 len, u32 kind, u32 flag mask } (20 bytes each), then optionally 1024
 * bytes, one per event code: 1 when a sent event of that code returns a new fd, 2 when its
 * parameters 2 and 3 are new fds (pipe, socketpair), then optionally 1024 u16, one per event code:
 * bit i set when parameter i is an fd the event reads from the fd table (a held open of it is
 * sent first). on = 0 turns the filter off. @return 0, -EINVAL (malformed spec), -ENOTSUP (engine other than modern_ebpf,
 * or not open yet) or -errno from the kernel.
 */
int pyfalco_capture_set_kernel_filter(pyfalco_capture *h, const uint8_t *spec, size_t len);

/* out[0] = opens dropped (held) in the kernel, out[1] = closes dropped, out[2] = held opens sent
 * before an event used their fd, out[3] = sent before a fork copied the table, out[4] = held
 * opens forgotten (their fd closed by exec, close_range, dup2, exit), out[5] = opens sent because
 * the record was too long or the table of held opens full. @return the number written (n at
 * most, 2 at least) or -errno. */
int pyfalco_capture_kernel_filter_stats(pyfalco_capture *h, uint64_t *out, uint32_t n);

/* How many opens the driver holds now. @return the count or -errno. */
int pyfalco_capture_kernel_filter_held(pyfalco_capture *h);

#ifdef __cplusplus
}
#endif
#endif
