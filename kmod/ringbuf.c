// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Per-CPU rings of a consumer. Each ring is a header page and buffer_bytes of data, both from
 * vmalloc_user(). User space maps them all with one mmap; the fault handler below places the
 * data pages twice in a row after each header page, so records read contiguously across the
 * end of the ring (see driver/abi/pyfalco_kmod.h for the protocol).
 *
 * Writers are the tracepoint probes, which run with preemption disabled and never in interrupt
 * context: each CPU's ring has exactly one writer at a time.
 */
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/version.h>

#include "pf_kmod.h"

int pf_rings_alloc(struct pf_consumer *c, u64 buffer_bytes)
{
	u32 i, n = nr_cpu_ids;

	c->rings = kcalloc(n, sizeof(*c->rings), GFP_KERNEL);
	if (!c->rings)
		return -ENOMEM;
	c->nrings = n;
	for (i = 0; i < n; i++) {
		struct pf_ring *r = &c->rings[i];

		if (!cpu_possible(i))
			continue; /* holes in the possible map: left unmapped (faults SIGBUS) */
		r->info = vmalloc_user(PAGE_SIZE);
		r->data = vmalloc_user(buffer_bytes);
		if (!r->info || !r->data) {
			pf_rings_free(c);
			return -ENOMEM;
		}
	}
	c->buffer_bytes = buffer_bytes;
	return 0;
}

void pf_rings_free(struct pf_consumer *c)
{
	u32 i;

	if (!c->rings)
		return;
	for (i = 0; i < c->nrings; i++) {
		vfree(c->rings[i].info);
		vfree(c->rings[i].data);
	}
	kfree(c->rings);
	c->rings = NULL;
	c->nrings = 0;
	c->buffer_bytes = 0;
}

static vm_fault_t pf_vm_fault(struct vm_fault *vmf)
{
	struct pf_consumer *c = vmf->vma->vm_private_data;
	u64 data_pages = c->buffer_bytes >> PAGE_SHIFT;
	u64 span = 1 + 2 * data_pages; /* pages per CPU */
	u64 cpu = vmf->pgoff / span, off = vmf->pgoff % span;
	struct pf_ring *r;
	struct page *page;

	if (cpu >= c->nrings)
		return VM_FAULT_SIGBUS;
	r = &c->rings[cpu];
	if (!r->info)
		return VM_FAULT_SIGBUS;
	if (off == 0)
		page = vmalloc_to_page(r->info);
	else
		page = vmalloc_to_page(r->data + (((off - 1) % data_pages) << PAGE_SHIFT));
	if (!page)
		return VM_FAULT_SIGBUS;
	get_page(page);
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct pf_vm_ops = {
	.fault = pf_vm_fault,
};

int pf_rings_mmap(struct pf_consumer *c, struct vm_area_struct *vma)
{
	u64 total = (u64)c->nrings * PYFALCO_KMOD_CPU_SPAN(c->buffer_bytes);

	if (!c->buffer_bytes)
		return -ENODATA; /* PYFALCO_IOCTL_SETUP first */
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (vma->vm_pgoff != 0 || vma->vm_end - vma->vm_start > total)
		return -EINVAL;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP | VM_DONTCOPY);
#else
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP | VM_DONTCOPY;
#endif
	vma->vm_private_data = c;
	vma->vm_ops = &pf_vm_ops;
	return 0;
}

static struct pf_ring *pf_this_ring(struct pf_consumer *c)
{
	u32 cpu = smp_processor_id();

	return cpu < c->nrings ? &c->rings[cpu] : NULL;
}

void pf_ring_count(struct pf_consumer *c, int which)
{
	struct pf_ring *r = pf_this_ring(c);
	struct pyfalco_counters *k;

	if (!r || !r->info)
		return;
	k = &r->info->counters;
	switch (which) {
	case PF_COUNT_EVT:
		k->n_evts++;
		break;
	case PF_COUNT_DROP_BUFFER:
		k->n_drops_buffer++;
		break;
	case PF_COUNT_DROP_SIZE:
		k->n_drops_max_event_size++;
		break;
	case PF_COUNT_PAGE_FAULT:
		k->n_drops_page_faults++;
		break;
	default:
		k->n_drops_bug++;
		break;
	}
}

void pf_ring_write(struct pf_consumer *c, const void *rec, u32 len)
{
	struct pf_ring *r = pf_this_ring(c);
	u64 size = c->buffer_bytes, tail, used, off, first;

	if (!r || !r->info)
		return;
	/* tail comes from user memory: a bogus one only makes this consumer drop */
	tail = smp_load_acquire(&r->info->tail);
	used = r->head - tail;
	if (tail > r->head || used > size || size - used < len) {
		r->info->counters.n_drops_buffer++;
		return;
	}
	off = r->head & (size - 1);
	first = min_t(u64, len, size - off);
	memcpy(r->data + off, rec, first);
	if (first < len)
		memcpy(r->data, (const u8 *)rec + first, len - first);
	r->head += len;
	smp_store_release(&r->info->head, r->head);
	r->info->counters.n_evts++;
}

void pf_rings_stats(struct pf_consumer *c, struct pyfalco_counters *out)
{
	u32 i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < c->nrings; i++) {
		struct pyfalco_counters *k;

		if (!c->rings[i].info)
			continue;
		k = &c->rings[i].info->counters;
#define PF_SUM(name, desc) out->name += READ_ONCE(k->name);
		PYFALCO_DRIVER_COUNTERS(PF_SUM)
#undef PF_SUM
	}
}
