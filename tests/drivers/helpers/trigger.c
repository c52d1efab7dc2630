// SPDX-License-Identifier: Apache-2.0
/* Triggers syscalls that Python cannot make safely (vfork shares the caller's stack).
 * Usage: trigger vfork  -> prints the child's pid, exits 0. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "vfork")) {
		pid_t pid = vfork();

		if (pid == 0)
			_exit(0);
		waitpid(pid, NULL, 0);
		printf("%d %d\n", (int)getpid(), (int)pid);
		return 0;
	}
	fprintf(stderr, "usage: trigger vfork\n");
	return 2;
}
