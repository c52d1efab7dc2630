// SPDX-License-Identifier: Apache-2.0
/* Tight syscall loops for tools/bench/bench_driver.py: prints the ns per iteration.
 * usage: syscall_loop getppid|close|openat|read N [CHUNK]
 * With CHUNK, the N iterations run in chunks of CHUNK and the fastest chunk's ns per iteration is
 * printed: on a shared machine a chunk the scheduler did not interrupt shows the cost itself
 * (other processes only add time). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* ns per iteration of n iterations, -1 on an unknown loop or a failed read */
static double run(const char *what, long n, int zero)
{
	double t0 = now_ns();
	char c;
	long i;

	if (!strcmp(what, "getppid"))
		for (i = 0; i < n; i++)
			syscall(SYS_getppid);
	else if (!strcmp(what, "close"))
		for (i = 0; i < n; i++)
			syscall(SYS_close, -1);
	else if (!strcmp(what, "openat"))
		for (i = 0; i < n; i++)
			close(openat(AT_FDCWD, "/dev/null", O_RDONLY));
	else if (!strcmp(what, "read")) {
		for (i = 0; i < n; i++) {
			if (read(zero, &c, 1) != 1)
				return -1;
		}
	} else {
		return -1;
	}
	return (now_ns() - t0) / n;
}

int main(int argc, char **argv)
{
	long n = argc > 2 ? atol(argv[2]) : 1000000, chunk = argc > 3 ? atol(argv[3]) : 0, done;
	const char *what = argc > 1 ? argv[1] : "getppid";
	int zero = open("/dev/zero", O_RDONLY);
	double best = -1, t;

	if (chunk <= 0 || chunk > n)
		chunk = n;
	for (done = 0; done < n; done += chunk) {
		t = run(what, chunk, zero);
		if (t < 0)
			return 2;
		if (best < 0 || t < best)
			best = t;
	}
	printf("%.1f\n", best);
	return 0;
}
