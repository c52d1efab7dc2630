// SPDX-License-Identifier: Apache-2.0
/* Minimal consumer of Falco's 2022 kernel module (scap.ko from falcosecurity-scap-dkms), for
 * tools/kmod/bench_kmod.py only: opens /dev/scap<cpu> for every CPU, enables the capture, and
 * empties each ring by moving its tail to its head every 500 us, without reading the records
 * (the cost measured is the producer's). On SIGTERM it prints "events drops" and exits.
 * The ring header layout is that module's struct ppm_ring_buffer_info (ppm_ringbuffer.h). */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

struct scap_ring_info {
	volatile uint32_t head, tail;
	volatile uint64_t n_evts, n_drops_buffer, n_drops_pf, n_preemptions, n_context_switches;
};

#define SCAP_IOCTL_ENABLE_CAPTURE _IO('s', 1)

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	stop = 1;
}

int main(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF), i;
	struct scap_ring_info *info[512];
	uint64_t evts = 0, drops = 0;

	signal(SIGTERM, on_term);
	for (i = 0; i < n && i < 512; i++) {
		char dev[32];
		int fd;

		snprintf(dev, sizeof(dev), "/dev/scap%ld", i);
		fd = open(dev, O_RDWR | O_SYNC);
		if (fd < 0) {
			perror(dev);
			return 1;
		}
		info[i] = mmap(NULL, sizeof(*info[i]), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (info[i] == MAP_FAILED || ioctl(fd, SCAP_IOCTL_ENABLE_CAPTURE)) {
			perror(dev);
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		for (i = 0; i < n; i++)
			__atomic_store_n(&info[i]->tail, __atomic_load_n(&info[i]->head, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
		usleep(500);
	}
	for (i = 0; i < n; i++) {
		evts += info[i]->n_evts;
		drops += info[i]->n_drops_buffer;
	}
	printf("%llu %llu\n", (unsigned long long)evts, (unsigned long long)drops);
	return 0;
}
