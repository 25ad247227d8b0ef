/* Page faults: map anonymous memory and write one byte per page.
 * Usage: first_touch MIB (default 1024)
 * The mapping requests 4 KiB pages (MADV_NOHUGEPAGE), so that every page is
 * one fault whatever the machine's transparent huge page setting. Only the
 * writing loop is timed, not mmap or munmap. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_result.h"

__attribute__((noinline)) static void touch_pages(volatile char *area, uint64_t length,
						  uint64_t page_size)
{
	for (uint64_t offset = 0; offset < length; offset += page_size)
		area[offset] = 1;
}

int main(int argc, char **argv)
{
	uint64_t mebibytes = bench_count_argument(argc, argv, 1, 1024);
	uint64_t length = mebibytes << 20;
	uint64_t page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	struct bench_clock start;
	struct bench_clock end;
	char *area;

	area = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED) {
		perror("first_touch: failed to map memory");
		return 1;
	}
	madvise(area, length, MADV_NOHUGEPAGE);

	start = bench_clock_now();
	touch_pages(area, length, page_size);
	end = bench_clock_now();

	munmap(area, length);
	bench_report(start, end, length / page_size, "page");
	return 0;
}
