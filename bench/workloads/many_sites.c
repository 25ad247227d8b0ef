/* 10000 distinct allocation sites that stay live while the process idles.
 * The preprocessor expands 10000 functions site_ABCD, each with its own
 * malloc call, and 100 functions group_AB that call 100 sites each, so there
 * are 10000 call sites below 100 distinct caller stacks.
 *
 * Usage: many_sites [busy]
 * Protocol on stdin and stdout: print "waiting", read one line, allocate and
 * write one block per site (1 to 4 KiB, about 24 MiB in all), print
 * "allocated", then idle until stdin closes. With "busy" it does not idle:
 * every 10 ms it frees one site's block and allocates it again, going round
 * the sites, so that blocks keep coming and going under a tracer. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUSY_PERIOD_MS 10

#define SITE_COUNT 10000

/* Blocks go through a volatile array: GCC removes a malloc whose result is
 * never read. */
static void *volatile kept[SITE_COUNT];

#define SITE_INDEX(a, b, c, d) ((a) * 1000 + (b) * 100 + (c) * 10 + (d))

#define DEFINE_SITE(a, b, c, d)                                                     \
	__attribute__((noinline)) void site_##a##b##c##d(void)                      \
	{                                                                           \
		size_t size = 1024 + 512 * (SITE_INDEX(a, b, c, d) % 7);            \
		char *block = malloc(size);                                         \
                                                                                    \
		memset(block, (int)SITE_INDEX(a, b, c, d), size);                   \
		kept[SITE_INDEX(a, b, c, d)] = block;                               \
	}

#define CALL_SITE(a, b, c, d) site_##a##b##c##d();

/* Apply m to every four-digit index with the leading digits given. */
#define EACH_LAST_DIGIT(m, a, b, c) \
	m(a, b, c, 0) m(a, b, c, 1) m(a, b, c, 2) m(a, b, c, 3) m(a, b, c, 4) \
	m(a, b, c, 5) m(a, b, c, 6) m(a, b, c, 7) m(a, b, c, 8) m(a, b, c, 9)
#define EACH_THIRD_DIGIT(m, a, b) \
	EACH_LAST_DIGIT(m, a, b, 0) EACH_LAST_DIGIT(m, a, b, 1) EACH_LAST_DIGIT(m, a, b, 2) \
	EACH_LAST_DIGIT(m, a, b, 3) EACH_LAST_DIGIT(m, a, b, 4) EACH_LAST_DIGIT(m, a, b, 5) \
	EACH_LAST_DIGIT(m, a, b, 6) EACH_LAST_DIGIT(m, a, b, 7) EACH_LAST_DIGIT(m, a, b, 8) \
	EACH_LAST_DIGIT(m, a, b, 9)
#define EACH_SECOND_DIGIT(m, a) \
	m(a, 0) m(a, 1) m(a, 2) m(a, 3) m(a, 4) m(a, 5) m(a, 6) m(a, 7) m(a, 8) m(a, 9)
#define EACH_FIRST_DIGIT(m) \
	m(0) m(1) m(2) m(3) m(4) m(5) m(6) m(7) m(8) m(9)

#define DEFINE_SITES_OF_GROUP(a, b) EACH_THIRD_DIGIT(DEFINE_SITE, a, b)
#define DEFINE_SITES_OF_THOUSAND(a) EACH_SECOND_DIGIT(DEFINE_SITES_OF_GROUP, a)
EACH_FIRST_DIGIT(DEFINE_SITES_OF_THOUSAND)

#define DEFINE_GROUP(a, b)                                 \
	__attribute__((noinline)) void group_##a##b(void) \
	{                                                  \
		EACH_THIRD_DIGIT(CALL_SITE, a, b)          \
	}
#define DEFINE_GROUPS_OF_THOUSAND(a) EACH_SECOND_DIGIT(DEFINE_GROUP, a)
EACH_FIRST_DIGIT(DEFINE_GROUPS_OF_THOUSAND)

#define CALL_GROUP(a, b) group_##a##b();
#define CALL_GROUPS_OF_THOUSAND(a) EACH_SECOND_DIGIT(CALL_GROUP, a)

__attribute__((noinline)) static void allocate_all_sites(void)
{
	EACH_FIRST_DIGIT(CALL_GROUPS_OF_THOUSAND)
}

#define SITE_POINTER(a, b, c, d) site_##a##b##c##d,
#define SITE_POINTERS_OF_GROUP(a, b) EACH_THIRD_DIGIT(SITE_POINTER, a, b)
#define SITE_POINTERS_OF_THOUSAND(a) EACH_SECOND_DIGIT(SITE_POINTERS_OF_GROUP, a)

static void (*const sites[SITE_COUNT])(void) = {EACH_FIRST_DIGIT(SITE_POINTERS_OF_THOUSAND)};

/* Until stdin closes, free and allocate again one site's block every
 * BUSY_PERIOD_MS. */
static void churn_until_end_of_input(void)
{
	struct pollfd input = {.fd = 0, .events = POLLIN};
	char buffer[64];
	unsigned next = 0;

	while (1) {
		int ready = poll(&input, 1, BUSY_PERIOD_MS);

		if (ready > 0 && read(0, buffer, sizeof(buffer)) <= 0)
			return;
		if (ready == 0) {
			free(kept[next]);
			sites[next]();
			next = (next + 1) % SITE_COUNT;
		}
	}
}

int main(int argc, char **argv)
{
	int busy = argc > 1 && strcmp(argv[1], "busy") == 0;
	char line[64];
	char buffer[64];

	if (argc > 1 && !busy) {
		fprintf(stderr, "many_sites: unknown mode '%s': expected 'busy' or nothing\n", argv[1]);
		return 2;
	}
	printf("waiting\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 2;

	allocate_all_sites();
	printf("allocated %d sites\n", SITE_COUNT);
	fflush(stdout);

	if (busy) {
		churn_until_end_of_input();
		return 0;
	}
	while (read(0, buffer, sizeof(buffer)) > 0) {
	}
	return 0;
}
