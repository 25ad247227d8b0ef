/* A demo service with the motivating shape: much allocated, little resident.
 *
 * It reserves a 2 GiB cache up front and never fills it, reads a 256 MiB
 * table into memory, keeps 128 MiB of calloc'ed buffers that stay zero, and
 * churns small request objects. A heap profiler reports about 2.4 GiB; the
 * kernel backs about 260 MiB. Runs for argv[1] seconds (default 30). */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024UL * 1024UL)

static void *volatile cache_blocks[32];
static void *volatile table;
static void *volatile buffers[128];
static void *volatile request;

__attribute__((noinline)) void reserve_cache(void)
{
	for (int i = 0; i < 32; i++)
		cache_blocks[i] = malloc(64 * MiB);
}

__attribute__((noinline)) void load_table(void)
{
	table = malloc(256 * MiB);
	memset(table, 0x5a, 256 * MiB);
}

__attribute__((noinline)) void allocate_buffers(void)
{
	for (int i = 0; i < 128; i++)
		buffers[i] = calloc(1, MiB);
}

__attribute__((noinline)) void handle_request(int id)
{
	char *object = malloc(512 + (id % 7) * 64);

	object[0] = (char)id;
	request = object;
	free(object);
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 30;
	time_t end = time(NULL) + seconds;
	int id = 0;

	reserve_cache();
	load_table();
	allocate_buffers();
	while (time(NULL) < end) {
		for (int i = 0; i < 100; i++)
			handle_request(id++);
		usleep(10000);
	}
	return 0;
}
