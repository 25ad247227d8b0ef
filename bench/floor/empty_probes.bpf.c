// SPDX-License-Identifier: GPL-2.0
/* Programs that do nothing, for the overhead benchmark's floor: attached
 * where memobserve attaches its allocator probes, they cost the uprobe traps
 * and nothing else. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("uprobe")
int empty_entry(void *context)
{
	return 0;
}

SEC("uretprobe")
int empty_return(void *context)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
