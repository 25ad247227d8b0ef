/* Processes of the container test, one role per argv[1]. Each runs inside
 * the test's cgroups and namespaces, from a root that holds its own copy of
 * libc. Pointers go to volatile globals so that the compiler keeps every call.
 *
 *   main     4 GiB of address space never touched, 300 MiB written
 *   late     128 MiB written, in 16 MiB blocks
 *   spawner  runs "short" 100 times, one after the other
 *   short    1 MiB allocated, one page written, gone after 50 ms */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "workload_protocol.h"

#define MiB (1024UL * 1024UL)
#define SHORT_RUNS 100

static void *volatile kept[128];

/* 64 blocks of 64 MiB: allocated and mapped, never faulted in. */
__attribute__((noinline)) void allocate_address_space(void)
{
	for (int i = 0; i < 64; i++)
		kept[i] = malloc(64 * MiB);
}

__attribute__((noinline)) void write_resident(void)
{
	kept[64] = malloc(300 * MiB);
	memset(kept[64], 1, 300 * MiB);
}

__attribute__((noinline)) void allocate_late(void)
{
	for (int i = 0; i < 8; i++) {
		kept[65 + i] = malloc(16 * MiB);
		memset(kept[65 + i], 1, 16 * MiB);
	}
}

__attribute__((noinline)) void short_lived_allocation(void)
{
	char *block = malloc(MiB);

	block[0] = 1;
	kept[80] = block;
}

static void sleep_ms(long milliseconds)
{
	struct timespec delay = {milliseconds / 1000, (milliseconds % 1000) * 1000000L};

	nanosleep(&delay, NULL);
}

static int spawn_short_runs(const char *self)
{
	for (int i = 0; i < SHORT_RUNS; i++) {
		pid_t child = fork();
		int status;

		if (child < 0)
			return 1;
		if (child == 0) {
			execl(self, self, "short", (char *)NULL);
			_exit(127);
		}
		if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *role = argc > 1 ? argv[1] : "";

	if (strcmp(role, "short") == 0) {
		short_lived_allocation();
		sleep_ms(50);
		return 0;
	}
	wait_for_go();
	if (strcmp(role, "main") == 0) {
		allocate_address_space();
		write_resident();
	} else if (strcmp(role, "late") == 0) {
		allocate_late();
	} else if (strcmp(role, "spawner") == 0) {
		if (spawn_short_runs(argv[0]) != 0) {
			fprintf(stderr, "container_cases: a short run failed\n");
			return 1;
		}
	} else {
		fprintf(stderr, "usage: container_cases main|late|spawner|short\n");
		return 2;
	}
	hold_until_stdin_closes();
	return 0;
}
