/* Address-space churn: map 64 KiB of anonymous memory, write its first byte
 * (one page fault), unmap it, many times.
 * Usage: mmap_churn CYCLES (default 100000) */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>

#include "bench_result.h"

#define MAPPING_BYTES (64 * 1024)

__attribute__((noinline)) static int map_touch_unmap(void)
{
	char *area = mmap(NULL, MAPPING_BYTES, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (area == MAP_FAILED)
		return -1;
	*(volatile char *)area = 1;
	return munmap(area, MAPPING_BYTES);
}

int main(int argc, char **argv)
{
	uint64_t cycles = bench_count_argument(argc, argv, 1, 100000);
	struct bench_clock start;
	struct bench_clock end;

	start = bench_clock_now();
	for (uint64_t i = 0; i < cycles; i++) {
		if (map_touch_unmap() != 0) {
			perror("mmap_churn: mmap or munmap failed");
			return 1;
		}
	}
	end = bench_clock_now();

	bench_report(start, end, cycles, "cycle");
	return 0;
}
