/* SPDX-License-Identifier: Apache-2.0 */
/*
 * modern_ebpf: loads the embedded CO-RE driver (driver/pyfalco.bpf.c) with its libbpf skeleton,
 * creates one BPF ring buffer per group of CPUs, and reads the rings directly (mmap'd consumer
 * and producer pages) so that next() can hand out the oldest head event across all rings
 * without copying it: the event stays in the ring until the following next() call.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "ring_merge.h"
#include "pyfalco_abi.h"

#ifdef PYFALCO_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include "pyfalco_bpf.skel.h"
#include "fillers_list.h"
#include "pf_inlined.h"
#include "syscalls_x86_64.h"

struct pf_ring {
	int fd;
	unsigned long *consumer; /* mmap'd consumer position (read-write page) */
	unsigned long *producer; /* mmap'd producer position, followed by the data pages (twice) */
	uint8_t *data;
	size_t size;
	size_t mask;
	unsigned long cons;     /* local consumer position */
	size_t head_total;      /* bytes to advance past the head record peeked last */
};

struct pf_bpf {
	struct pyfalco_bpf *skel;
	struct pf_ring *rings;
	int nrings;
	int ncpus;
	size_t page;
	struct pf_merge merge;  /* time order across the rings (ring_merge.h) */
};

/* libbpf's print callback is process-wide: route it to the handle being opened. */
static __thread pyfalco_capture *g_opening;

static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	pyfalco_capture *h = g_opening;
	char *text = NULL, *line, *save = NULL;

	if (!h || vasprintf(&text, fmt, ap) < 0)
		return 0;
	/* one call may carry a whole verifier log: log it line by line */
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		pf_log(h, level == LIBBPF_WARN ? PYFALCO_LOG_WARNING : PYFALCO_LOG_DEBUG, "libbpf: %s", line);
		if (level != LIBBPF_WARN)
			continue;
		/* keep the last words (the verifier's verdict comes last) for the error message */
		{
			size_t cur = strlen(h->error), n = strlen(line);

			if (n > 300)
				n = 300;
			if (cur + n + 2 >= sizeof(h->error)) {
				size_t drop = cur + n + 2 - sizeof(h->error) + 1;
				char *cut = strchr(h->error + drop, '\n');

				if (cut)
					memmove(h->error, cut + 1, strlen(cut + 1) + 1);
				else
					h->error[0] = 0;
				cur = strlen(h->error);
			}
			if (cur)
				strcat(h->error, "\n");
			strncat(h->error, line, n);
		}
	}
	free(text);
	return 0;
}

/* Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK, which libbpf raises: CAP_SYS_RESOURCE. */
static int memlock_charged(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return 0;
	return major < 5 || (major == 5 && minor < 11);
}

/*
 * After EPERM/EACCES: appends to the handle's message what the engine needs and what this
 * process lacks, from its effective capability set (capget: no libcap needed).
 */
static void add_permission_hint(pyfalco_capture *h)
{
	static const struct { int cap; const char *name; } caps[] = {
		{ 39, "CAP_BPF" }, { 38, "CAP_PERFMON" }, { 24, "CAP_SYS_RESOURCE" },
	};
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	char lacks[128] = "";
	size_t i, ncaps = memlock_charged() ? 3 : 2, len = strlen(h->error);
	uint64_t eff = 0;
	int known = 0;
	char *nl = strchr(h->error, '\n');

	memset(data, 0, sizeof(data));
	if (!syscall(SYS_capget, &hdr, data)) {
		known = 1;
		eff = data[0].effective | (uint64_t)data[1].effective << 32;
		for (i = 0; i < ncaps; i++)
			if (!(eff & (1ull << caps[i].cap)))
				snprintf(lacks + strlen(lacks), sizeof(lacks) - strlen(lacks), "%s%s", lacks[0] ? ", " : "",
					 caps[i].name);
	}
	if (nl)
		len = (size_t)(nl - h->error); /* the hint goes on the first line */
	h->error[len] = 0;
	snprintf(h->error + len, sizeof(h->error) - len,
		 " (the modern_ebpf engine needs root, or the capabilities CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN "
		 "stands for both)%s; %s%s)",
		 ncaps == 3 ? " and, on this kernel (before 5.11: BPF memory counts against the locked-memory limit), "
			      "CAP_SYS_RESOURCE" : "",
		 !known ? "the capabilities of this process could not be read" :
		 lacks[0] ? "this process lacks " : "this process has them, but the kernel refused: a user namespace "
						   "or a security policy may withhold them",
		 lacks);
}

static void ring_unmap(struct pf_ring *r, size_t page)
{
	if (r->consumer && r->consumer != MAP_FAILED)
		munmap(r->consumer, page);
	if (r->producer && r->producer != MAP_FAILED)
		munmap(r->producer, page + 2 * r->size);
	if (r->fd >= 0)
		close(r->fd);
	r->consumer = NULL;
	r->producer = NULL;
	r->fd = -1;
}

static void bpf_close(pyfalco_capture *h)
{
	struct pf_bpf *b = h->engine_data;
	int i;

	if (!b)
		return;
	if (b->skel)
		pyfalco_bpf__destroy(b->skel);
	for (i = 0; i < b->nrings; i++)
		ring_unmap(&b->rings[i], b->page);
	pf_merge_free(&b->merge);
	free(b->rings);
	free(b);
	h->engine_data = NULL;
}

static uint64_t ns_of(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int setup_tail_calls(pyfalco_capture *h, struct pf_bpf *b)
{
	int table = bpf_map__fd(b->skel->maps.pf_syscall_exit_tail_table);
	__u32 nr;
	int fd;

	/* the syscalls the dispatcher builds inline (pf_inlined.h) have no program */
#define PF_TAIL(sc)                                                                                   \
	PF_IF_TAILED(sc, nr = PF_NR_##sc;                                                             \
	fd = bpf_program__fd(b->skel->progs.pf_x_##sc);                                               \
	if (bpf_map_update_elem(table, &nr, &fd, BPF_ANY))                                            \
		return pf_fail(h, errno, "loading the eBPF driver: registering the %s filler: %s", #sc, \
			       strerror(errno));)
	PF_FOR_EACH_FILLER(PF_TAIL)
#undef PF_TAIL
	/* the kernel filter's held-open work for the tail-called fillers (filter.bpf.h,
	 * pf_kf_send_tailed): without it their records would be counted as driver bugs, not sent */
	table = bpf_map__fd(b->skel->maps.pf_kf_tail_table);
	nr = 0;
	fd = bpf_program__fd(b->skel->progs.pf_kf_send_tail);
	if (bpf_map_update_elem(table, &nr, &fd, BPF_ANY))
		return pf_fail(h, errno, "loading the eBPF driver: registering pf_kf_send_tail: %s", strerror(errno));
	return 0;
}

static void disable_filler_autoattach(struct pf_bpf *b)
{
#define PF_NOATTACH(sc) PF_IF_TAILED(sc, bpf_program__set_autoattach(b->skel->progs.pf_x_##sc, false);)
	PF_FOR_EACH_FILLER(PF_NOATTACH)
#undef PF_NOATTACH
	bpf_program__set_autoattach(b->skel->progs.pf_kf_send_tail, false);
}

static int setup_rings(pyfalco_capture *h, struct pf_bpf *b)
{
	int outer = bpf_map__fd(b->skel->maps.pf_ringbufs);
	size_t size = h->settings.buffer_bytes;
	int i;

	for (i = 0; i < b->nrings; i++) {
		struct pf_ring *r = &b->rings[i];
		__u32 key = i;

		r->fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "pf_ring", 0, 0, size, NULL);
		if (r->fd < 0)
			return pf_fail(h, errno, "creating ring buffer %d of %zu bytes: %s", i, size, strerror(errno));
		if (bpf_map_update_elem(outer, &key, &r->fd, BPF_ANY))
			return pf_fail(h, errno, "installing ring buffer %d: %s", i, strerror(errno));
		r->size = size;
		r->mask = size - 1;
		r->consumer = mmap(NULL, b->page, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
		if (r->consumer == MAP_FAILED)
			return pf_fail(h, errno, "mapping ring buffer %d consumer page: %s", i, strerror(errno));
		r->producer = mmap(NULL, b->page + 2 * size, PROT_READ, MAP_SHARED, r->fd, b->page);
		if (r->producer == MAP_FAILED)
			return pf_fail(h, errno, "mapping ring buffer %d data: %s", i, strerror(errno));
		r->data = (uint8_t *)r->producer + b->page;
		r->cons = __atomic_load_n(r->consumer, __ATOMIC_ACQUIRE);
	}
	return 0;
}

static int bpf_select(pyfalco_capture *h, const uint8_t *interest)
{
	struct pf_bpf *b = h->engine_data;
	volatile __u8 *dst = b->skel->bss->pf_interesting;
	int i;

	for (i = 0; i < PYFALCO_SYSCALL_SLOTS; i++)
		dst[i] = interest[i];
	return 0;
}

/* Ring i's head record, skipping discarded ones; NULL when there is none (yet). */
static const uint8_t *ring_peek(void *ctx, uint32_t i)
{
	struct pf_ring *r = &((struct pf_bpf *)ctx)->rings[i];
	unsigned long prod = __atomic_load_n(r->producer, __ATOMIC_ACQUIRE);

	while (r->cons < prod) {
		const uint8_t *rec = r->data + (r->cons & r->mask);
		uint32_t len = __atomic_load_n((const uint32_t *)rec, __ATOMIC_ACQUIRE);
		size_t total;

		if (len & BPF_RINGBUF_BUSY_BIT)
			return NULL; /* being written: not yet */
		total = ((len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT)) + BPF_RINGBUF_HDR_SZ + 7) & ~7UL;
		if (len & BPF_RINGBUF_DISCARD_BIT) {
			r->cons += total;
			__atomic_store_n(r->consumer, r->cons, __ATOMIC_RELEASE);
			continue;
		}
		r->head_total = total;
		return rec + BPF_RINGBUF_HDR_SZ;
	}
	return NULL;
}

static void ring_advance(void *ctx, uint32_t i)
{
	struct pf_ring *r = &((struct pf_bpf *)ctx)->rings[i];

	r->cons += r->head_total;
	__atomic_store_n(r->consumer, r->cons, __ATOMIC_RELEASE);
}

static const struct pf_merge_ops bpf_merge_ops = {
	.peek = ring_peek,
	.advance = ring_advance,
};

static int bpf_open(pyfalco_capture *h)
{
	struct pf_bpf *b;
	int err, i, per, template_fd = -1;

	if (access("/sys/kernel/btf/vmlinux", R_OK))
		return pf_fail(h, ENOENT,
			       "opening the modern_ebpf engine: this kernel exposes no BTF (/sys/kernel/btf/vmlinux); "
			       "use engine.kind=kmod");
	b = calloc(1, sizeof(*b));
	if (!b)
		return pf_fail(h, ENOMEM, "opening the modern_ebpf engine: out of memory");
	h->engine_data = b;
	b->page = (size_t)sysconf(_SC_PAGESIZE);
	b->ncpus = libbpf_num_possible_cpus();
	if (b->ncpus <= 0 || b->ncpus > PYFALCO_MAX_CPUS) {
		err = pf_fail(h, EINVAL, "opening the modern_ebpf engine: unsupported CPU count %d", b->ncpus);
		goto fail;
	}
	if (h->settings.buffer_bytes < 2 * b->page) {
		err = pf_fail(h, EINVAL, "opening the modern_ebpf engine: buffer_bytes must be at least two pages");
		goto fail;
	}
	per = h->settings.cpus_for_each_buffer;
	b->nrings = per == 0 ? 1 : (b->ncpus + per - 1) / per;
	b->rings = calloc(b->nrings, sizeof(*b->rings));
	if (!b->rings) {
		err = pf_fail(h, ENOMEM, "opening the modern_ebpf engine: out of memory");
		goto fail;
	}
	for (i = 0; i < b->nrings; i++)
		b->rings[i].fd = -1;

	g_opening = h;
	libbpf_set_print(libbpf_log);
	/* CO-RE against the kernel's own BTF only: without btf_custom_path, libbpf 1.1 also walks
	 * the kernel modules' BTF objects for a type the kernel lacks (a struct flavour of another
	 * kernel version), which needs CAP_SYS_ADMIN; the driver has no module types to relocate,
	 * and with this CAP_BPF + CAP_PERFMON suffice */
	{
		LIBBPF_OPTS(bpf_object_open_opts, oopts, .btf_custom_path = "/sys/kernel/btf/vmlinux");
		b->skel = pyfalco_bpf__open_opts(&oopts);
	}
	if (!b->skel) {
		err = pf_fail(h, errno, "opening the eBPF driver object: %s", strerror(errno));
		goto fail;
	}
	bpf_map__set_max_entries(b->skel->maps.pf_aux_maps, b->ncpus);
	bpf_map__set_max_entries(b->skel->maps.pf_ringbufs, b->nrings);
	/* the inner map template: a ring buffer of the configured size */
	template_fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "pf_ring_tmpl", 0, 0, h->settings.buffer_bytes, NULL);
	if (template_fd < 0) {
		err = pf_fail(h, errno, "creating a ring buffer of %llu bytes: %s",
			      (unsigned long long)h->settings.buffer_bytes, strerror(errno));
		goto fail;
	}
	bpf_map__set_inner_map_fd(b->skel->maps.pf_ringbufs, template_fd);
	disable_filler_autoattach(b);

	h->error[0] = 0;
	err = pyfalco_bpf__load(b->skel);
	close(template_fd);
	template_fd = -1;
	if (err) {
		char detail[sizeof(h->error)];
		int e = -err;

		snprintf(detail, sizeof(detail), "%s", h->error);
		if (strstr(detail, "processed ") || strstr(detail, "LOAD LOG"))
			err = pf_fail(h, e, "loading the eBPF driver: the kernel's verifier rejected a program (%s)",
				      strerror(e));
		else
			err = pf_fail(h, e, "loading the eBPF driver: %s", strerror(e));
		if (e == EPERM || e == EACCES)
			detail[0] = 0; /* libbpf's lines add nothing to "not permitted": the hint says what is */
		if (detail[0] && strlen(h->error) + 24 < sizeof(h->error)) {
			size_t room = sizeof(h->error) - strlen(h->error) - 24, dl = strlen(detail);

			strcat(h->error, "\nverifier/libbpf said:\n");
			strcat(h->error, detail + (dl > room ? dl - room : 0));
		}
		if (detail[0] && strlen(h->error) + strlen(detail) < sizeof(h->error))
			strcat(h->error, detail);
		goto fail;
	}
	h->error[0] = 0;
	if ((err = setup_rings(h, b)) < 0)
		goto fail;
	if (pf_merge_init(&b->merge, b, (uint32_t)b->nrings)) {
		err = pf_fail(h, ENOMEM, "opening the modern_ebpf engine: out of memory");
		goto fail;
	}
	if ((err = setup_tail_calls(h, b)) < 0)
		goto fail;

	b->skel->bss->pf_boot_time_ns = ns_of(CLOCK_REALTIME) - ns_of(CLOCK_BOOTTIME);
	b->skel->bss->pf_snaplen = h->settings.snaplen;
	for (i = 0; i < b->ncpus; i++)
		b->skel->bss->pf_cpu_to_ring[i] = per == 0 ? 0 : i / per;
	bpf_select(h, h->interest);

	err = pyfalco_bpf__attach(b->skel);
	if (err) {
		err = pf_fail(h, -err, "attaching the eBPF driver: %s", strerror(-err));
		goto fail;
	}
	g_opening = NULL;
	pf_log(h, PYFALCO_LOG_INFO, "modern_ebpf: %d ring buffer(s) of %llu bytes for %d CPUs", b->nrings,
	       (unsigned long long)h->settings.buffer_bytes, b->ncpus);
	return 0;
fail:
	g_opening = NULL;
	if (err == -EPERM || err == -EACCES)
		add_permission_hint(h);
	if (template_fd >= 0)
		close(template_fd);
	bpf_close(h);
	return err;
}

static int bpf_start(pyfalco_capture *h)
{
	struct pf_bpf *b = h->engine_data;

	b->skel->bss->pf_capturing = 1;
	return 0;
}

static int bpf_stop(pyfalco_capture *h)
{
	struct pf_bpf *b = h->engine_data;

	b->skel->bss->pf_capturing = 0;
	return 0;
}

static int bpf_next(pyfalco_capture *h, const uint8_t **evt, uint16_t *cpu, uint16_t *flags, int timeout_ms)
{
	struct pf_bpf *b = h->engine_data;

	*flags = 0;
	return pf_merge_next(&b->merge, &bpf_merge_ops, evt, cpu, timeout_ms);
}

static void bpf_unget(pyfalco_capture *h)
{
	struct pf_bpf *b = h->engine_data;

	pf_merge_unget(&b->merge);
}

static int bpf_stats(pyfalco_capture *h, uint64_t *out)
{
	struct pf_bpf *b = h->engine_data;
	struct pyfalco_counters *per;
	__u32 zero = 0;
	int i;

	per = calloc(b->ncpus, sizeof(*per));
	if (!per)
		return pf_fail(h, ENOMEM, "reading driver counters: out of memory");
	if (bpf_map_lookup_elem(bpf_map__fd(b->skel->maps.pf_counters), &zero, per)) {
		int e = errno;
		free(per);
		return pf_fail(h, e, "reading driver counters: %s", strerror(e));
	}
	for (i = 0; i < b->ncpus; i++) {
#define PF_SUM(name, desc) out[PF_STAT_##name] += per[i].name;
		PYFALCO_DRIVER_COUNTERS(PF_SUM)
#undef PF_SUM
	}
	free(per);
	return 0;
}

const struct pyfalco_engine_ops pf_engine_bpf = {
	.name = "modern_ebpf",
	.open = bpf_open,
	.select_syscalls = bpf_select,
	.start = bpf_start,
	.stop = bpf_stop,
	.next = bpf_next,
	.unget = bpf_unget,
	.stats = bpf_stats,
	.close = bpf_close,
};

/* kfilter.c's way to the driver: the loaded skeleton of a modern_ebpf handle, else NULL. */
struct pyfalco_bpf *pf_bpf_skel(pyfalco_capture *h)
{
	struct pf_bpf *b = h && h->ops == &pf_engine_bpf && h->opened ? h->engine_data : NULL;

	return b ? b->skel : NULL;
}

#else /* !PYFALCO_HAVE_BPF */

static int nobpf_open(pyfalco_capture *h)
{
	return pf_fail(h, ENOTSUP, "opening the modern_ebpf engine: this libpyfalco was built without the eBPF driver");
}

static int nobpf_next(pyfalco_capture *h, const uint8_t **evt, uint16_t *cpu, uint16_t *flags, int timeout_ms)
{
	return -EBADF;
}

static void nobpf_unget(pyfalco_capture *h)
{
}

static void nobpf_close(pyfalco_capture *h)
{
}

const struct pyfalco_engine_ops pf_engine_bpf = {
	.name = "modern_ebpf",
	.open = nobpf_open,
	.next = nobpf_next,
	.unget = nobpf_unget,
	.close = nobpf_close,
};
#endif
