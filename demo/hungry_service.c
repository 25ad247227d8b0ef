/* A demo service with the motivating shape: much allocated, little resident.
 *
 * It reserves a 2 GiB cache up front and never fills it, reads a 256 MiB
 * table into memory, keeps 128 MiB of calloc'ed buffers that stay zero, and
 * churns small request objects. A heap profiler reports about 2.4 GiB; the
 * kernel backs about 260 MiB. Runs for argv[1] seconds (default 30). With
 * "leak" as argv[2] it also keeps a growing session cache: every second,
 * 4 MiB written and 16 MiB reserved and never touched. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024UL * 1024UL)

static void *volatile cache_blocks[32];
static void *volatile table;
static void *volatile buffers[128];
static void *volatile request;
static void *volatile sessions[4096];

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

/* The leak: session state that is never released. */
__attribute__((noinline)) void remember_session(int second)
{
	char *state = malloc(4 * MiB);

	memset(state, 1, 4 * MiB);
	sessions[(2 * second) % 4096] = state;
	sessions[(2 * second + 1) % 4096] = malloc(16 * MiB);
}

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 30;
	int leak = argc > 2 && strcmp(argv[2], "leak") == 0;
	time_t start = time(NULL);
	time_t end = start + seconds;
	time_t last = start;
	int id = 0;

	reserve_cache();
	load_table();
	allocate_buffers();
	while (time(NULL) < end) {
		for (int i = 0; i < 100; i++)
			handle_request(id++);
		if (leak && time(NULL) != last) {
			last = time(NULL);
			remember_session((int)(last - start));
		}
		usleep(10000);
	}
	return 0;
}
