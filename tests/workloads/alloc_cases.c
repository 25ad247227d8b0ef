/* Allocation patterns with known numbers, one per case name (argv[1]).
 * Pointers go to volatile globals so that the compiler keeps every call. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "workload_protocol.h"

#define MiB (1024UL * 1024UL)

static void *volatile kept[256];
static void *volatile sink;

/* 512 MiB in 64 MiB blocks, never touched. */
__attribute__((noinline)) void allocate_untouched(void)
{
	for (int i = 0; i < 8; i++)
		kept[i] = malloc(64 * MiB);
}

/* 256 MiB, all written. */
__attribute__((noinline)) void allocate_written(void)
{
	kept[8] = malloc(256 * MiB);
	memset(kept[8], 1, 256 * MiB);
}

/* 256 MiB, half written. */
__attribute__((noinline)) void allocate_half_written(void)
{
	kept[9] = malloc(256 * MiB);
	memset(kept[9], 1, 128 * MiB);
}

static void run_sites(void)
{
	allocate_untouched();
	allocate_written();
	allocate_half_written();
}

/* 1 GiB from calloc, one element written. */
__attribute__((noinline)) void allocate_zeroed(void)
{
	int *block = calloc(256 * MiB, sizeof(int));

	block[12345] = 7;
	kept[10] = block;
}

/* 100 anonymous 1 MiB mappings, written; every other one unmapped, then
 * 256 KiB unmapped from the middle of a survivor: 49.75 MiB stay mapped. */
__attribute__((noinline)) void map_and_unmap(void)
{
	char *maps[100];

	for (int i = 0; i < 100; i++) {
		maps[i] = mmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (maps[i] == MAP_FAILED)
			_exit(3);
		memset(maps[i], 1, MiB);
	}
	for (int i = 1; i < 100; i += 2)
		munmap(maps[i], MiB);
	munmap(maps[0] + 384 * 1024, 256 * 1024);
}

/* A read-only mapping of a 64 MiB file, read end to end. */
__attribute__((noinline)) void map_file(const char *path)
{
	int fd = open(path, O_RDONLY);
	volatile uint64_t sum = 0;
	const uint64_t *words;

	if (fd < 0)
		_exit(4);
	words = mmap(NULL, 64 * MiB, PROT_READ, MAP_PRIVATE, fd, 0);
	if (words == MAP_FAILED)
		_exit(5);
	for (size_t i = 0; i < 64 * MiB / sizeof(*words); i += 512)
		sum += words[i];
	kept[11] = (void *)words;
	close(fd);
}

__attribute__((noinline)) void fail_allocations(void)
{
	for (int i = 0; i < 10; i++)
		sink = malloc(SIZE_MAX / 2);
}

__attribute__((noinline)) void realloc_from_null(void) { kept[12] = realloc(NULL, 123); }

__attribute__((noinline)) void calloc_array(void) { kept[13] = calloc(1000, 24); }

__attribute__((noinline)) void grow_by_realloc(void)
{
	void *block = malloc(100);

	kept[14] = realloc(block, 1000000);
}

__attribute__((noinline)) void free_by_realloc(void)
{
	void *block = malloc(50);

	sink = realloc(block, 0);
}

static void run_edges(void)
{
	fail_allocations();
	realloc_from_null();
	calloc_array();
	grow_by_realloc();
	free_by_realloc();
}

/* 1000 blocks of 100 bytes from one site, and every other one freed. */
__attribute__((noinline)) void allocate_and_free_half(void)
{
	static void *blocks[1000];

	for (int i = 0; i < 1000; i++)
		blocks[i] = malloc(100);
	for (int i = 0; i < 1000; i += 2)
		free(blocks[i]);
}

/* Each of two threads leaks 100000 blocks of 4 bytes from one site. */
__attribute__((noinline)) void leak_small_blocks(void)
{
	for (int i = 0; i < 100000; i++)
		sink = malloc(4);
}

static void *leak_thread(void *unused)
{
	(void)unused;
	leak_small_blocks();
	return NULL;
}

static void run_leak_threads(void)
{
	pthread_t threads[2];

	for (int i = 0; i < 2; i++)
		pthread_create(&threads[i], NULL, leak_thread, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
}

/* 2^16 call paths: bit n of `path` chooses which of two call sites calls the
 * next level, so every value of `path` gives a distinct stack. */
__attribute__((noinline)) void descend(int level, unsigned path);

__attribute__((noinline)) void descend_left(int level, unsigned path) { descend(level, path); }
__attribute__((noinline)) void descend_right(int level, unsigned path) { descend(level, path); }

__attribute__((noinline)) void descend(int level, unsigned path)
{
	if (level == 16) {
		sink = malloc(64);
		return;
	}
	if (path & (1u << level))
		descend_right(level + 1, path);
	else
		descend_left(level + 1, path);
	__asm__ volatile("" ::: "memory"); /* keep the calls from becoming jumps */
}

__attribute__((noinline)) void map_after_churn(void)
{
	char *block = mmap(NULL, 32 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	memset(block, 1, 32 * MiB);
	kept[20] = block;
}

static void run_paths(unsigned count)
{
	for (unsigned path = 0; path < count; path++)
		descend(0, path);
}

/* Small malloc and free pairs for `seconds`, then 32 MiB mapped and
 * written: a target whose allocator probes cost more than its own work. */
__attribute__((noinline)) void churn_then_map(int seconds)
{
	time_t end = time(NULL) + seconds;
	unsigned long pairs = 0;

	while (time(NULL) < end) {
		for (int i = 0; i < 1000; i++) {
			sink = malloc(32);
			free(sink);
		}
		pairs += 1000;
	}
	printf("pairs %lu\n", pairs);
	map_after_churn();
}

/* Pairs of malloc and free until `end`, each thread with its own block, as
 * busy services allocate: at most one block per thread is live. */
__attribute__((noinline)) void churn_until(time_t end)
{
	void *volatile block;

	while (time(NULL) < end) {
		for (int i = 0; i < 1000; i++) {
			block = malloc(32 + i);
			free(block);
		}
	}
}

static void *churn_thread(void *argument)
{
	churn_until(*(time_t *)argument);
	return NULL;
}

static void churn_in_threads(int count, int seconds)
{
	pthread_t threads[16];
	time_t end = time(NULL) + seconds;

	if (count > 16)
		count = 16;
	for (int i = 0; i < count; i++)
		pthread_create(&threads[i], NULL, churn_thread, &end);
	for (int i = 0; i < count; i++)
		pthread_join(threads[i], NULL);
}

/* A thread that waits in read() on a pipe that is never written, so that its
 * stack pointer is visible in /proc/PID/task/TID/syscall. */
static pthread_barrier_t thread_started;
static char *volatile thread_stack_address;

static void *wait_forever(void *unused)
{
	char local = 0;
	char byte;
	int fds[2];

	(void)unused;
	thread_stack_address = &local;
	if (pipe(fds) != 0)
		_exit(6);
	pthread_barrier_wait(&thread_started);
	(void)!read(fds[0], &byte, 1);
	return NULL;
}

/* Before memobserve attaches: 64 MiB of anonymous memory, all written, and
 * a waiting thread. Prints both addresses for the test. */
static void map_before_attach(void)
{
	pthread_t thread;
	char *block = mmap(NULL, 64 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (block == MAP_FAILED)
		_exit(3);
	memset(block, 1, 64 * MiB);
	kept[15] = block;
	pthread_barrier_init(&thread_started, NULL, 2);
	pthread_create(&thread, NULL, wait_forever, NULL);
	pthread_barrier_wait(&thread_started);
	printf("premapped %p\nthread-stack %p\n", (void *)block, (void *)thread_stack_address);
}

/* After memobserve attaches: 32 MiB of anonymous memory, all written. */
__attribute__((noinline)) void map_after_attach(void)
{
	char *block = mmap(NULL, 32 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (block == MAP_FAILED)
		_exit(3);
	memset(block, 1, 32 * MiB);
	kept[16] = block;
	printf("postmapped %p\n", (void *)block);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "";

	if (!strcmp(name, "premapped"))
		map_before_attach();
	wait_for_go();
	if (!strcmp(name, "sites"))
		run_sites();
	else if (!strcmp(name, "calloc"))
		allocate_zeroed();
	else if (!strcmp(name, "mmaps"))
		map_and_unmap();
	else if (!strcmp(name, "filemap") && argc > 2)
		map_file(argv[2]);
	else if (!strcmp(name, "edges"))
		run_edges();
	else if (!strcmp(name, "leak-threads"))
		run_leak_threads();
	else if (!strcmp(name, "half-freed"))
		allocate_and_free_half();
	else if (!strcmp(name, "churn"))
		churn_then_map(argc > 2 ? atoi(argv[2]) : 4);
	else if (!strcmp(name, "churn-threads") && argc > 3)
		churn_in_threads(atoi(argv[2]), atoi(argv[3]));
	else if (!strcmp(name, "premapped"))
		map_after_attach();
	else if (!strcmp(name, "paths"))
		run_paths(argc > 2 ? (unsigned)atoi(argv[2]) : 50000);
	else {
		fprintf(stderr, "unknown case '%s'\n", name);
		return 2;
	}
	hold_until_stdin_closes();
	return 0;
}
