/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kmod: the kernel-module engine. Opens the module's device (settings.kmod_device, default
 * /dev/pyfalco), checks its API and schema versions, asks for one ring per CPU of
 * settings.buffer_bytes and maps them all (driver/abi/pyfalco_kmod.h). next() hands out the
 * oldest head record across the rings without copying it, as engine_bpf.c does: the record
 * stays in its ring (tail not advanced) until the following next() call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "ring_merge.h"
#include "pyfalco_abi.h"
#include "pyfalco_kmod.h"

struct km_ring {
	struct pyfalco_kmod_ring *info; /* shared header: head (module), tail (us), counters */
	const uint8_t *data;            /* buffer_bytes, mapped twice in a row */
	uint64_t tail;                  /* local consumer position */
	uint64_t head;                  /* last head read */
	uint32_t rec_len;               /* length of the head record peeked last */
};

struct km_engine {
	pyfalco_capture *h;
	int fd;
	uint8_t *map;
	size_t map_len;
	uint64_t size;
	uint32_t nrings;
	struct km_ring *rings;
	struct pf_merge merge; /* time order across the rings (ring_merge.h) */
	uint64_t malformed;
};

static void km_close(pyfalco_capture *h)
{
	struct km_engine *k = h->engine_data;

	if (!k)
		return;
	if (k->map && k->map != MAP_FAILED)
		munmap(k->map, k->map_len);
	if (k->fd >= 0)
		close(k->fd);
	pf_merge_free(&k->merge);
	free(k->rings);
	free(k);
	h->engine_data = NULL;
}

static int km_open_error(pyfalco_capture *h, int e)
{
	const char *dev = h->settings.kmod_device;

	if (e == ENOENT || e == ENXIO || e == ENODEV)
		return pf_fail(h, ENOENT,
			       "opening the kmod engine: %s: %s (the pyfalco kernel module is not loaded: "
			       "run `pyfalco-driver-loader kmod`, or use engine.kind=modern_ebpf)",
			       dev, strerror(e));
	if (e == EBUSY)
		return pf_fail(h, EBUSY,
			       "opening the kmod engine: %s: every consumer slot of the pyfalco kernel module is "
			       "taken (module parameter max_consumers)", dev);
	if (e == EACCES || e == EPERM)
		return pf_fail(h, e, "opening the kmod engine: %s: %s (the kernel module's device needs root)", dev,
			       strerror(e));
	return pf_fail(h, e, "opening the kmod engine: %s: %s", dev, strerror(e));
}

static int km_check_versions(pyfalco_capture *h, struct km_engine *k)
{
	uint32_t api = 0, schema = 0;
	uint32_t want_api = PYFALCO_KMOD_VERSION(PYFALCO_API_VERSION_MAJOR, PYFALCO_API_VERSION_MINOR,
						 PYFALCO_API_VERSION_PATCH);
	int api_minor;

	if (ioctl(k->fd, PYFALCO_IOCTL_GET_API_VERSION, &api) || ioctl(k->fd, PYFALCO_IOCTL_GET_SCHEMA_VERSION, &schema))
		return pf_fail(h, EPROTO, "opening the kmod engine: %s does not answer the pyfalco version ioctls (%s)",
			       h->settings.kmod_device, strerror(errno));
	/* same major, and the module at least as new as the library in the minor */
	api_minor = (int)((api >> 8) & 0xff);
	if ((api >> 16) != PYFALCO_API_VERSION_MAJOR || api_minor < PYFALCO_API_VERSION_MINOR)
		return pf_fail(h, EPROTO,
			       "opening the kmod engine: the loaded module speaks API %u.%u.%u, this library needs "
			       "%u.%u.x (reload it: pyfalco-driver-loader kmod)",
			       api >> 16, (api >> 8) & 0xff, api & 0xff, want_api >> 16, (want_api >> 8) & 0xff);
	if ((schema >> 16) != PYFALCO_SCHEMA_VERSION_MAJOR)
		return pf_fail(h, EPROTO,
			       "opening the kmod engine: the loaded module writes schema %u.%u.%u, this library "
			       "reads %u.x (reload it: pyfalco-driver-loader kmod)",
			       schema >> 16, (schema >> 8) & 0xff, schema & 0xff, PYFALCO_SCHEMA_VERSION_MAJOR);
	return 0;
}

static int km_select(pyfalco_capture *h, const uint8_t *interest)
{
	struct km_engine *k = h->engine_data;
	uint8_t copy[PYFALCO_SYSCALL_SLOTS];

	memcpy(copy, interest, sizeof(copy));
	if (ioctl(k->fd, PYFALCO_IOCTL_SET_INTEREST, copy))
		return pf_fail(h, errno, "selecting syscalls on the kernel module: %s", strerror(errno));
	return 0;
}

/* Ring i's head record; NULL when there is none (yet). */
static const uint8_t *km_peek(void *ctx, uint32_t i)
{
	struct km_engine *k = ctx;
	struct km_ring *r = &k->rings[i];
	const struct pyfalco_evt_hdr *hdr;
	uint64_t avail;

	if (r->tail == r->head) {
		r->head = __atomic_load_n(&r->info->head, __ATOMIC_ACQUIRE);
		if (r->tail == r->head)
			return NULL;
	}
	avail = r->head - r->tail;
	hdr = (const struct pyfalco_evt_hdr *)(r->data + (r->tail & (k->size - 1)));
	if (avail > k->size || avail < PYFALCO_EVT_HDR_SIZE || hdr->len < PYFALCO_EVT_HDR_SIZE || hdr->len > avail) {
		/* cannot happen with a sane module: skip everything written so far */
		k->malformed++;
		r->tail = r->head;
		__atomic_store_n(&r->info->tail, r->tail, __ATOMIC_RELEASE);
		return NULL;
	}
	r->rec_len = hdr->len;
	return (const uint8_t *)hdr;
}

static void km_advance(void *ctx, uint32_t i)
{
	struct km_ring *r = &((struct km_engine *)ctx)->rings[i];

	r->tail += r->rec_len;
	__atomic_store_n(&r->info->tail, r->tail, __ATOMIC_RELEASE);
}

/*
 * Every ring is empty: has the module been removed by force (PYFALCO_KMOD_RING_GONE)? It set
 * the flag after its last record, so everything it wrote has been handed out by now; its exit
 * waits for this consumer to close the device. The error says so, with the module's counters
 * (read while it still answers): what was lost inside it, as the drop counters have it.
 */
static int km_idle(void *ctx)
{
	struct km_engine *k = ctx;
	struct pyfalco_counters c = { 0 };
	uint64_t drops;

	if (!(__atomic_load_n(&k->rings[0].info->flags, __ATOMIC_ACQUIRE) & PYFALCO_KMOD_RING_GONE))
		return 0;
	if (ioctl(k->fd, PYFALCO_IOCTL_GET_STATS, &c))
		memset(&c, 0, sizeof(c));
	drops = c.n_drops_buffer + c.n_drops_max_event_size + c.n_drops_bug;
	return pf_fail(k->h, ENODEV,
		       "the kmod engine: the pyfalco kernel module was removed by force (rmmod -f) while capturing; "
		       "every event it wrote was read (%llu), %llu were dropped before (buffer full %llu, too large "
		       "%llu, bug %llu), nothing after the removal is captured; the capture has ended (load the "
		       "module again: pyfalco-driver-loader kmod)",
		       (unsigned long long)c.n_evts, (unsigned long long)drops, (unsigned long long)c.n_drops_buffer,
		       (unsigned long long)c.n_drops_max_event_size, (unsigned long long)c.n_drops_bug);
}

static const struct pf_merge_ops km_merge_ops = {
	.peek = km_peek,
	.advance = km_advance,
	.idle = km_idle,
};

static int km_open(pyfalco_capture *h)
{
	struct pyfalco_kmod_setup setup = { .buffer_bytes = h->settings.buffer_bytes };
	struct km_engine *k;
	uint32_t snaplen = h->settings.snaplen, i;
	int err;

	k = calloc(1, sizeof(*k));
	if (!k)
		return pf_fail(h, ENOMEM, "opening the kmod engine: out of memory");
	k->fd = -1;
	k->h = h;
	h->engine_data = k;
	k->fd = open(h->settings.kmod_device, O_RDWR | O_CLOEXEC);
	if (k->fd < 0) {
		err = km_open_error(h, errno);
		goto fail;
	}
	if ((err = km_check_versions(h, k)) < 0)
		goto fail;
	if (ioctl(k->fd, PYFALCO_IOCTL_SETUP, &setup)) {
		int e = errno;

		err = pf_fail(h, e, "opening the kmod engine: allocating rings of %llu bytes: %s%s",
			      (unsigned long long)setup.buffer_bytes, strerror(e),
			      e == EINVAL ? " (above the module's max_buffer_bytes parameter?)" : "");
		goto fail;
	}
	if (setup.page_size != PYFALCO_KMOD_PAGE || setup.ncpus == 0 || setup.ncpus > PYFALCO_MAX_CPUS) {
		err = pf_fail(h, EPROTO, "opening the kmod engine: unexpected ring layout (%u rings, %u-byte pages)",
			      setup.ncpus, setup.page_size);
		goto fail;
	}
	k->size = setup.buffer_bytes;
	k->nrings = setup.ncpus;
	k->map_len = (size_t)k->nrings * PYFALCO_KMOD_CPU_SPAN(k->size);
	k->map = mmap(NULL, k->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, k->fd, 0);
	if (k->map == MAP_FAILED) {
		err = pf_fail(h, errno, "opening the kmod engine: mapping %zu bytes of rings: %s", k->map_len,
			      strerror(errno));
		goto fail;
	}
	k->rings = calloc(k->nrings, sizeof(*k->rings));
	if (!k->rings) {
		err = pf_fail(h, ENOMEM, "opening the kmod engine: out of memory");
		goto fail;
	}
	for (i = 0; i < k->nrings; i++) {
		struct km_ring *r = &k->rings[i];
		uint8_t *base = k->map + (size_t)i * PYFALCO_KMOD_CPU_SPAN(k->size);

		r->info = (struct pyfalco_kmod_ring *)base;
		r->data = base + PYFALCO_KMOD_PAGE;
		r->tail = __atomic_load_n(&r->info->head, __ATOMIC_ACQUIRE);
		__atomic_store_n(&r->info->tail, r->tail, __ATOMIC_RELEASE);
	}
	if (pf_merge_init(&k->merge, k, k->nrings)) {
		err = pf_fail(h, ENOMEM, "opening the kmod engine: out of memory");
		goto fail;
	}
	if (ioctl(k->fd, PYFALCO_IOCTL_SET_SNAPLEN, &snaplen)) {
		err = pf_fail(h, errno, "opening the kmod engine: setting the snaplen: %s", strerror(errno));
		goto fail;
	}
	if ((err = km_select(h, h->interest)) < 0)
		goto fail;
	pf_log(h, PYFALCO_LOG_INFO, "kmod: %u ring buffer(s) of %llu bytes on %s", k->nrings,
	       (unsigned long long)k->size, h->settings.kmod_device);
	return 0;
fail:
	km_close(h);
	return err;
}

static int km_start(pyfalco_capture *h)
{
	struct km_engine *k = h->engine_data;

	if (ioctl(k->fd, PYFALCO_IOCTL_START))
		return pf_fail(h, errno, "starting the kernel module capture: %s", strerror(errno));
	return 0;
}

static int km_stop(pyfalco_capture *h)
{
	struct km_engine *k = h->engine_data;

	if (ioctl(k->fd, PYFALCO_IOCTL_STOP))
		return pf_fail(h, errno, "stopping the kernel module capture: %s", strerror(errno));
	return 0;
}

static int km_next(pyfalco_capture *h, const uint8_t **evt, uint16_t *cpu, uint16_t *flags, int timeout_ms)
{
	struct km_engine *k = h->engine_data;

	*flags = 0;
	return pf_merge_next(&k->merge, &km_merge_ops, evt, cpu, timeout_ms);
}

static void km_unget(pyfalco_capture *h)
{
	struct km_engine *k = h->engine_data;

	pf_merge_unget(&k->merge);
}

static int km_stats(pyfalco_capture *h, uint64_t *out)
{
	struct km_engine *k = h->engine_data;
	struct pyfalco_counters c;

	if (ioctl(k->fd, PYFALCO_IOCTL_GET_STATS, &c))
		return pf_fail(h, errno, "reading the kernel module's counters: %s", strerror(errno));
#define PF_SUM(name, desc) out[PF_STAT_##name] += c.name;
	PYFALCO_DRIVER_COUNTERS(PF_SUM)
#undef PF_SUM
	out[PF_STAT_n_skipped_malformed] += k->malformed;
	return 0;
}

const struct pyfalco_engine_ops pf_engine_kmod = {
	.name = "kmod",
	.open = km_open,
	.select_syscalls = km_select,
	.start = km_start,
	.stop = km_stop,
	.next = km_next,
	.unget = km_unget,
	.stats = km_stats,
	.close = km_close,
};
