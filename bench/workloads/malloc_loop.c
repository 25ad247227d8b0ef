/* Small malloc/free pairs in a tight loop, on one or more threads.
 * Usage: malloc_loop THREADS PAIRS_PER_THREAD
 * Each thread makes PAIRS_PER_THREAD pairs of 16 to 256 bytes and writes one
 * byte of each block. The result line counts pairs over all threads, and its
 * CPU time covers all threads. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_result.h"

#define MAX_THREADS 64

/* Blocks go through a volatile global: GCC removes a malloc whose result is
 * never read. Each thread's slot has a cache line of its own, because threads
 * writing to one shared line slow each other down more than the malloc. */
struct block_slot {
	void *volatile block;
} __attribute__((aligned(64)));

static struct block_slot last_block[MAX_THREADS];

static uint64_t pairs_per_thread;
static pthread_barrier_t start_barrier;

__attribute__((noinline)) static void allocate_and_free(unsigned thread, uint64_t i)
{
	size_t size = 16 * ((i % 16) + 1);
	char *block = malloc(size);

	block[0] = (char)i;
	last_block[thread].block = block;
	free(block);
}

static void *run_thread(void *argument)
{
	unsigned thread = (unsigned)(uintptr_t)argument;

	pthread_barrier_wait(&start_barrier);
	for (uint64_t i = 0; i < pairs_per_thread; i++)
		allocate_and_free(thread, i);
	return NULL;
}

int main(int argc, char **argv)
{
	uint64_t thread_count = bench_count_argument(argc, argv, 1, 1);
	pthread_t threads[MAX_THREADS];
	struct bench_clock start;
	struct bench_clock end;

	pairs_per_thread = bench_count_argument(argc, argv, 2, 100000);
	if (thread_count > MAX_THREADS) {
		fprintf(stderr, "malloc_loop: invalid thread count %llu: at most %d\n",
			(unsigned long long)thread_count, MAX_THREADS);
		return 2;
	}

	pthread_barrier_init(&start_barrier, NULL, (unsigned)thread_count + 1);
	for (unsigned t = 0; t < thread_count; t++) {
		if (pthread_create(&threads[t], NULL, run_thread, (void *)(uintptr_t)t) != 0) {
			fprintf(stderr, "malloc_loop: failed to create thread %u\n", t);
			return 1;
		}
	}

	/* The clock starts when every thread is created and waiting. */
	start = bench_clock_now();
	pthread_barrier_wait(&start_barrier);
	for (unsigned t = 0; t < thread_count; t++)
		pthread_join(threads[t], NULL);
	end = bench_clock_now();

	bench_report(start, end, thread_count * pairs_per_thread, "pair");
	return 0;
}
