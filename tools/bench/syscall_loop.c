// SPDX-License-Identifier: Apache-2.0
/* Tight syscall loops for tools/bench/bench_driver.py: prints the ns per iteration.
 * usage: syscall_loop getppid|close|openat|read N */
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

int main(int argc, char **argv)
{
	long n = argc > 2 ? atol(argv[2]) : 1000000, i;
	const char *what = argc > 1 ? argv[1] : "getppid";
	char c;
	int zero = open("/dev/zero", O_RDONLY);
	double t0 = now_ns();

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
				return 1;
		}
	} else {
		return 2;
	}
	printf("%.1f\n", (now_ns() - t0) / n);
	return 0;
}
