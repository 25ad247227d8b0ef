/* Timing of a workload's measured region and the one result line that the
 * benchmark driver parses from its standard output. Observers print their own
 * lines around it, so the line starts with a fixed tag. */
#ifndef BENCH_RESULT_H
#define BENCH_RESULT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

struct bench_clock {
	uint64_t wall_ns;
	uint64_t cpu_ns; /* user + system time of every thread of the process */
};

static uint64_t timeval_ns(struct timeval value)
{
	return (uint64_t)value.tv_sec * 1000000000ULL + (uint64_t)value.tv_usec * 1000ULL;
}

static struct bench_clock bench_clock_now(void)
{
	struct bench_clock now;
	struct timespec wall;
	struct rusage usage;

	clock_gettime(CLOCK_MONOTONIC, &wall);
	getrusage(RUSAGE_SELF, &usage);
	now.wall_ns = (uint64_t)wall.tv_sec * 1000000000ULL + (uint64_t)wall.tv_nsec;
	now.cpu_ns = timeval_ns(usage.ru_utime) + timeval_ns(usage.ru_stime);
	return now;
}

/* Print the result line: elapsed wall and CPU time between `start` and `end`,
 * and how many operations (of the kind `unit`) ran in between. */
static void bench_report(struct bench_clock start, struct bench_clock end,
			 uint64_t operations, const char *unit)
{
	printf("memobserve-bench: wall_ns=%llu cpu_ns=%llu operations=%llu unit=%s\n",
	       (unsigned long long)(end.wall_ns - start.wall_ns),
	       (unsigned long long)(end.cpu_ns - start.cpu_ns),
	       (unsigned long long)operations, unit);
	fflush(stdout);
}

/* Parse argv[index] as a positive count, or return `fallback` when absent. */
static uint64_t bench_count_argument(int argc, char **argv, int index, uint64_t fallback)
{
	char *end = NULL;
	unsigned long long value;

	if (index >= argc)
		return fallback;
	value = strtoull(argv[index], &end, 10);
	if (!end || *end != '\0' || value == 0) {
		fprintf(stderr, "%s: invalid count '%s': expected a positive integer\n",
			argv[0], argv[index]);
		exit(2);
	}
	return value;
}

#endif
