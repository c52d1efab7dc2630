/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel-side filter of the modern_ebpf engine: installs the filter pyfalco/kfilter.py derived
 * from the rules into the driver's globals and maps (driver/maps.bpf.h, driver/filter.bpf.h) and
 * reads what it dropped. The analysis is in Python; this file only checks and copies the spec.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "pyfalco/kfilter.h"

#define SPEC_HEADER 16
#define SPEC_PATTERN 20
#define SPEC_MKFD 1024 /* optional: the driver's pf_kf_mkfd table, one byte per event code */
#define SPEC_USES 2048 /* optional, after SPEC_MKFD: pf_kf_uses, one u16 per event code */
#define KF_NSTATS 6    /* the driver's PF_KF_NSTATS */

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

#ifdef PYFALCO_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "pyfalco_abi.h"
#include "pyfalco_bpf.skel.h"

/* engine_bpf.c: the loaded skeleton of a handle of the modern_ebpf engine, or NULL. Weak, so
 * that a build without the hook links and says ENOTSUP. */
struct pyfalco_bpf *pf_bpf_skel(pyfalco_capture *h) __attribute__((weak));

static struct pyfalco_bpf *skel_of(pyfalco_capture *h)
{
	return pf_bpf_skel ? pf_bpf_skel(h) : NULL;
}

/* the driver's struct pf_kf_key and struct pf_kf_slot (driver/maps.bpf.h) */
struct kf_key {
	uint64_t hash;
	uint32_t len;
	uint32_t kind;
};

struct kf_slot {
	/* (generation << 3) | PF_KF_SLOT_CLOEXEC (4) | the state (the low two bits): KF_SLOT_HELD
	 * holds an open, marked close-on-exec or not */
	uint64_t state;
	uint64_t files;
	uint64_t fd;
	uint64_t pad;
};
#define KF_SLOT_HELD 2
#define KF_SLOT_STATE 3

static int clear_map(int fd, size_t key_size)
{
	uint8_t key[32], next[32];
	int err = 0;

	/* delete the first key until none is left: deleting while walking skips entries */
	while (bpf_map_get_next_key(fd, NULL, next) == 0) {
		memcpy(key, next, key_size);
		if (bpf_map_delete_elem(fd, key) && errno != ENOENT) {
			err = -errno;
			break;
		}
	}
	return err;
}

int pyfalco_capture_set_kernel_filter(pyfalco_capture *h, const uint8_t *spec, size_t len)
{
	struct pyfalco_bpf *skel = skel_of(h);
	uint32_t on, flags_any, n, i;
	const uint8_t *mkfd;
	size_t rest;
	int paths, err;

	if (!skel)
		return pf_fail(h, ENOTSUP, "kernel filter: only the modern_ebpf engine filters in the kernel "
				   "(this capture uses %s%s)", h->settings.engine, h->opened ? "" : ", not opened yet");
	if (!spec || len < SPEC_HEADER || rd32(spec) != PYFALCO_KF_MAGIC)
		return pf_fail(h, EINVAL, "kernel filter: malformed spec (%zu bytes, no header)", len);
	on = rd32(spec + 4);
	flags_any = rd32(spec + 8);
	n = rd32(spec + 12);
	rest = (len - SPEC_HEADER) / SPEC_PATTERN < n ? (size_t)-1 : len - SPEC_HEADER - (size_t)n * SPEC_PATTERN;
	if (rest != 0 && rest != SPEC_MKFD && rest != SPEC_MKFD + SPEC_USES)
		return pf_fail(h, EINVAL, "kernel filter: malformed spec (%zu bytes for %u patterns)", len, n);
	if (on & ~(uint32_t)(PYFALCO_KF_OPEN | PYFALCO_KF_OPENAT | PYFALCO_KF_OPENAT2 | PYFALCO_KF_CLOSE))
		return pf_fail(h, EINVAL, "kernel filter: unknown type bits 0x%x", on);
	if (n > bpf_map__max_entries(skel->maps.pf_kf_paths))
		return pf_fail(h, E2BIG, "kernel filter: %u path patterns, the driver holds %u", n,
			       bpf_map__max_entries(skel->maps.pf_kf_paths));
	for (i = 0; i < n; i++) {
		const uint8_t *p = spec + SPEC_HEADER + (size_t)i * SPEC_PATTERN;
		uint32_t plen = rd32(p + 8), kind = rd32(p + 12);

		if (kind < PYFALCO_KF_EXACT || kind > PYFALCO_KF_BASE || plen == 0 || plen >= PYFALCO_MAX_PATH)
			return pf_fail(h, EINVAL, "kernel filter: pattern %u: kind %u, length %u", i, kind, plen);
	}
	/* off first: the driver sends everything while the tables change */
	skel->bss->pf_kf_on = 0;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	paths = bpf_map__fd(skel->maps.pf_kf_paths);
	err = clear_map(paths, sizeof(struct kf_key));
	/* the held opens (pf_kf_held, pf_kf_tables) stay: they are fds user space has not seen yet,
	 * whatever the rules; the driver keeps sending them before their use (pf_kf_armed) */
	if (err)
		return pf_fail(h, -err, "kernel filter: clearing the driver's tables: %s", strerror(-err));
	memset((void *)skel->bss->pf_kf_prefix_lens, 0, sizeof(skel->bss->pf_kf_prefix_lens));
	memset((void *)skel->bss->pf_kf_kind_lens, 0, sizeof(skel->bss->pf_kf_kind_lens));
	memset((void *)skel->bss->pf_kf_hbits, 0, sizeof(skel->bss->pf_kf_hbits));
	for (i = 0; i < n; i++) {
		const uint8_t *p = spec + SPEC_HEADER + (size_t)i * SPEC_PATTERN;
		struct kf_key k = {.hash = rd64(p), .len = rd32(p + 8), .kind = rd32(p + 12)};
		uint32_t mask = rd32(p + 16), old, bit;

		/* two patterns of one hash: either may send the event */
		if (bpf_map_lookup_elem(paths, &k, &old) == 0)
			mask |= old;
		if (bpf_map_update_elem(paths, &k, &mask, BPF_ANY))
			return pf_fail(h, errno, "kernel filter: adding pattern %u: %s", i, strerror(errno));
		if (k.kind == PYFALCO_KF_PREFIX)
			skel->bss->pf_kf_prefix_lens[k.len >> 3] |= (uint8_t)(1u << (k.len & 7));
		/* the driver looks up only lengths some pattern of the kind has */
		skel->bss->pf_kf_kind_lens[k.kind][k.len >> 3] |= (uint8_t)(1u << (k.len & 7));
		/* and only keys whose bit is set (pyfalco_abi.h) */
		bit = PYFALCO_KF_HBIT(k.hash, k.len, k.kind);
		skel->bss->pf_kf_hbits[bit >> 6] |= 1ULL << (bit & 63);
	}
	mkfd = spec + SPEC_HEADER + (size_t)n * SPEC_PATTERN;
	/* the fd tables come from the event schema: a spec without them (the "off" spec) keeps the
	 * ones installed, so that what is held is still sent and forgotten */
	if (rest >= SPEC_MKFD)
		for (i = 0; i < SPEC_MKFD && i < sizeof(skel->bss->pf_kf_mkfd); i++)
			skel->bss->pf_kf_mkfd[i] = mkfd[i];
	if (rest == SPEC_MKFD + SPEC_USES)
		for (i = 0; i < SPEC_USES / 2 && i < sizeof(skel->bss->pf_kf_uses) / 2; i++)
			skel->bss->pf_kf_uses[i] = (uint16_t)(mkfd[SPEC_MKFD + 2 * i] | mkfd[SPEC_MKFD + 2 * i + 1] << 8);
	skel->bss->pf_kf_flags_any = flags_any;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	/* holding needs the uses table: a spec without it (an older pyfalco) holds nothing, and
	 * drops no close either */
	if (on && rest == SPEC_MKFD + SPEC_USES)
		skel->bss->pf_kf_armed = 1;
	else if (!skel->bss->pf_kf_armed)
		on = 0;
	skel->bss->pf_kf_on = on;
	return 0;
}

int pyfalco_capture_kernel_filter_stats(pyfalco_capture *h, uint64_t *out, uint32_t n)
{
	struct pyfalco_bpf *skel = skel_of(h);
	int ncpus = libbpf_num_possible_cpus();
	uint64_t *per;
	uint32_t which;

	if (!skel)
		return pf_fail(h, ENOTSUP, "kernel filter: only the modern_ebpf engine filters in the kernel");
	if (!out || n < 2)
		return pf_fail(h, EINVAL, "kernel filter statistics: room for 2 counters needed");
	if (n > KF_NSTATS)
		n = KF_NSTATS;
	if (ncpus <= 0)
		return pf_fail(h, -ncpus, "kernel filter statistics: counting CPUs");
	per = calloc((size_t)ncpus, sizeof(*per));
	if (!per)
		return pf_fail(h, ENOMEM, "kernel filter statistics");
	for (which = 0; which < n; which++) {
		out[which] = 0;
		if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.pf_kf_stats), &which, per)) {
			int err = errno;

			free(per);
			return pf_fail(h, err, "kernel filter statistics: %s", strerror(err));
		}
		for (int c = 0; c < ncpus; c++)
			out[which] += per[c];
	}
	free(per);
	return (int)n;
}

int pyfalco_capture_kernel_filter_held(pyfalco_capture *h)
{
	struct pyfalco_bpf *skel = skel_of(h);
	struct kf_slot slot;
	uint32_t i, n;
	int fd, count = 0;

	if (!skel)
		return pf_fail(h, ENOTSUP, "kernel filter: only the modern_ebpf engine filters in the kernel");
	/* an array of slots (the driver claims them with a compare-and-swap): count the held ones */
	if (bpf_map__value_size(skel->maps.pf_kf_held) != sizeof(slot))
		return pf_fail(h, EPROTO, "kernel filter: pf_kf_held's slots are %u bytes, expected %zu",
			       bpf_map__value_size(skel->maps.pf_kf_held), sizeof(slot));
	fd = bpf_map__fd(skel->maps.pf_kf_held);
	n = bpf_map__max_entries(skel->maps.pf_kf_held);
	for (i = 0; i < n; i++) {
		if (bpf_map_lookup_elem(fd, &i, &slot))
			return pf_fail(h, errno, "kernel filter: reading held slot %u: %s", i, strerror(errno));
		if ((slot.state & KF_SLOT_STATE) == KF_SLOT_HELD)
			count++;
	}
	return count;
}

#else

int pyfalco_capture_set_kernel_filter(pyfalco_capture *h, const uint8_t *spec, size_t len)
{
	(void)spec;
	(void)len;
	(void)rd64;
	return pf_fail(h, ENOTSUP, "kernel filter: this libpyfalco was built without the eBPF driver");
}

int pyfalco_capture_kernel_filter_stats(pyfalco_capture *h, uint64_t *out, uint32_t n)
{
	(void)out;
	(void)n;
	return pf_fail(h, ENOTSUP, "kernel filter: this libpyfalco was built without the eBPF driver");
}

int pyfalco_capture_kernel_filter_held(pyfalco_capture *h)
{
	return pf_fail(h, ENOTSUP, "kernel filter: this libpyfalco was built without the eBPF driver");
}

#endif
