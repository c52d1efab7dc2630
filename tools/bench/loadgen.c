// SPDX-License-Identifier: Apache-2.0
/* Rate-limited syscall load for tools/bench/bench_agent.py: produces about RATE captured events
 * per second for SECONDS seconds, then prints what it did.
 *
 * usage: loadgen MIX RATE SECONDS
 *   MIX  open : openat(/dev/null) + close                       (2 events per iteration)
 *        mix  : of every 100 iterations, 90 openat+close, 9 UDP socket+connect(127.0.0.1:9)+close,
 *               1 openat+close of a file under /tmp; plus one fork+execve of EXEC (default
 *               /bin/true, env LOADGEN_EXEC) every 2000 iterations
 *
 * The loop runs in chunks of 64 iterations and spins (clock_gettime is a vDSO call) until the
 * chunk is due, so the rate is smooth at the scale of a few hundred microseconds. Output:
 * "iterations=N events=E seconds=S rate=R" (events = the syscalls the loop made that the
 * default selection captures; an exec adds its clone/execve/procexit and the dynamic loader's
 * calls, counted as 3 here, so the measured captured rate is taken from the capture itself).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long do_open(const char *path)
{
	int fd = openat(AT_FDCWD, path, O_RDONLY);

	if (fd >= 0)
		close(fd);
	return 2;
}

static long do_connect(const struct sockaddr_in *sa)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	if (s < 0)
		return 1;
	connect(s, (const struct sockaddr *)sa, sizeof(*sa));
	close(s);
	return 3;
}

static long do_exec(const char *prog)
{
	pid_t pid = fork();

	if (pid == 0) {
		char *argv[] = {(char *)prog, NULL};

		execv(prog, argv);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return 3;
}

int main(int argc, char **argv)
{
	const char *mix = argc > 1 ? argv[1] : "open";
	double rate = argc > 2 ? atof(argv[2]) : 100000;
	double seconds = argc > 3 ? atof(argv[3]) : 5;
	const char *prog = getenv("LOADGEN_EXEC") ? getenv("LOADGEN_EXEC") : "/bin/true";
	int is_mix = !strcmp(mix, "mix");
	struct sockaddr_in sa;
	char tmpfile[] = "/tmp/loadgen.XXXXXX";
	long iters = 0, events = 0;
	double t0, end, per_event, t;
	int fd;

	if (strcmp(mix, "open") && !is_mix) {
		fprintf(stderr, "usage: loadgen open|mix RATE SECONDS\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(9);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = mkstemp(tmpfile);
	if (fd >= 0)
		close(fd);
	per_event = 1.0 / rate;
	t0 = now_s();
	end = t0 + seconds;
	for (;;) {
		for (int k = 0; k < 64; k++, iters++) {
			if (!is_mix) {
				events += do_open("/dev/null");
				continue;
			}
			long m = iters % 100;

			if (m < 90)
				events += do_open("/dev/null");
			else if (m < 99)
				events += do_connect(&sa);
			else
				events += do_open(tmpfile);
			if (iters % 2000 == 1999)
				events += do_exec(prog);
		}
		/* wait until the events made so far are due */
		do
			t = now_s();
		while (t < t0 + events * per_event);
		if (t >= end)
			break;
	}
	unlink(tmpfile);
	t = now_s() - t0;
	printf("iterations=%ld events=%ld seconds=%.3f rate=%.0f\n", iters, events, t, events / t);
	return 0;
}
